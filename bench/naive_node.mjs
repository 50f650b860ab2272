// The Node `ws` baseline for `make bench`: one message per tick to every client, as a Node
// broadcaster does it (and as bench/naive.py does in aiohttp): the same wire format (`hello`,
// `subscribe` -> `snapshot`, then a `delta` per tick), no conflation, no throttling. Its market
// is a random walk of `--symbols` symbols ticking `--rate` times a second in total.
//   node naive_node.mjs --port 0 --symbols 50 --rate 1000
import http from "node:http";
import { performance } from "node:perf_hooks";
import { WebSocketServer } from "ws";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1] ?? "1"]);
    return acc;
  }, []),
);
const nsym = Number(args.symbols ?? 50);
const rate = Number(args.rate ?? 1000);
const now = () => performance.timeOrigin + performance.now();

const names = Array.from({ length: nsym }, (_, i) => `S${String(i).padStart(3, "0")}`);
const book = {};
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
for (const s of names) book[s] = { symbol: s, price: 100, ts: now(), volume: 0 };

const clients = new Map(); // ws -> { seq }
const server = http.createServer((_, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocketServer({ server, path: "/ws", perMessageDeflate: false });
wss.on("connection", (ws) => {
  const state = { seq: 0 };
  ws.send(JSON.stringify({
    type: "hello", v: 1, session: "naive-node", throttle_ms: 0, symbols: names, news_last_id: 0,
  }));
  ws.on("message", (data) => {
    let req;
    try { req = JSON.parse(data); } catch { return; }
    if (req.op === "subscribe") {
      state.seq++;
      ws.send(JSON.stringify({ type: "snapshot", seq: state.seq, quotes: book }));
      clients.set(ws, state);
    }
  });
  ws.on("close", () => clients.delete(ws));
  ws.on("error", () => clients.delete(ws));
});

function tick() {
  const s = names[Math.floor(rnd() * nsym)];
  const q = book[s];
  q.price = Math.max(0.01, +(q.price * (1 + (rnd() - 0.5) * 0.002)).toFixed(2));
  q.ts = now();
  q.volume += 1;
  for (const [ws, state] of clients) {
    state.seq++;
    ws.send(JSON.stringify({ type: "delta", seq: state.seq, t: now(), quotes: { [s]: q } }));
  }
}

// Ticks spread evenly: each 1 ms timer emits the ticks due by now.
let emitted = 0;
const t0 = now();
setInterval(() => {
  const due = Math.floor(((now() - t0) / 1000) * rate);
  while (emitted < due) { tick(); emitted++; }
}, 1);

server.listen({ host: args.host ?? "127.0.0.1", port: Number(args.port ?? 0), backlog: 4096 }, () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}`);
});

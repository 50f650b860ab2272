// Load generator for `make bench`: opens N clients (ramped), subscribes, and measures
// every quote's latency (receive time - quote ts) in log-bucket histograms (memory stays flat).
// Prints one JSON object on stdout at the end. Usage:
//   node loadgen.mjs --url ws://127.0.0.1:8080/ws --clients 1000 --duration 20 \
//        [--ramp 2000] [--inflight 1000] [--symbols '*' | --subset 5] [--throttle 100] [--warmup 3]
//        [--parse 50] [--first 0] [--local-address 127.0.0.2,127.0.0.3] [--sync] [--connect-wait 120]
//        [--transport ws | msgpack | sse]
// Transports: `ws` JSON text frames over a WebSocket (the default); `msgpack` the same
// WebSocket offering the `ticker.v1.msgpack` subprotocol (binary frames, @msgpack/msgpack
// decodes them); `sse` Server-Sent Events (`GET /sse?symbols=...`, the query instead of ops).
// With --sync it says {"event":"ready"} on stderr once connected and warmed up, and starts
// measuring when a line arrives on stdin (so that several generators measure the same period).
// Two kinds of client in one process, each with its own latency histogram:
// - *parse* clients (--parse of them, every (clients / parse)th) do what a real client must: JSON.parse every frame
//   and apply each delta to their copy of the quotes; their latency is the one to trust.
// - *scan* clients drain cheaply: they read type, seq and every `ts` in place (scan.mjs) and
//   allocate nothing, so thousands of them cost the generator little CPU.
// It also reports its own CPU (process.cpuUsage) and event-loop delay over the measured period: a
// generator that saturates its core adds its own queueing to every latency it measures.
// Connections open at up to --ramp per second with at most --inflight handshakes pending, so a
// busy server is never sent more connects than it accepts (an overflowing listen queue drops them
// and the clients wait out TCP's retransmission backoff: seconds, not load). Prints
// {"event":"measuring"} on stderr when the measured period starts.
import http from "node:http";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { decode as unpack } from "@msgpack/msgpack";
import { WebSocket } from "ws";
import { SseSplitter, scanFrame, scanMsgpack } from "./scan.mjs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]?.startsWith("--") ? "1" : all[i + 1] ?? "1"]);
    return acc;
  }, []),
);
const url = args.url;
const clients = Number(args.clients ?? 100);
const duration = Number(args.duration ?? 20) * 1000;
const warmup = Number(args.warmup ?? 3) * 1000;
const ramp = Number(args.ramp ?? 2000); // connections per second
const inflight = Number(args.inflight ?? 1000); // handshakes pending at once (2 x 1,000 < a 4,096 listen queue)
const symbols = (args.symbols ?? "*").split(",");
const throttle = args.throttle === undefined ? null : Number(args.throttle);
const subset = Number(args.subset ?? 0); // >0: each client watches that many symbols
const parseN = Number(args.parse ?? 0); // how many clients parse every frame
const first = Number(args.first ?? 0); // this process's first client number (watchlists)
const localAddresses = args["local-address"] ? args["local-address"].split(",") : [];
const transport = args.transport ?? "ws"; // ws (JSON) | msgpack | sse
if (!["ws", "msgpack", "sse"].includes(transport)) throw new Error(`unknown --transport ${transport}`);

const now = () => performance.timeOrigin + performance.now();

// Histogram: bucket i covers [MIN * 1.01^i, MIN * 1.01^(i+1)) ms, 0.01 ms .. ~1e6 ms; a
// percentile is its bucket's geometric middle, so figures are within 0.5 % (1 ms at 200 ms).
const BASE = 1.01, MIN = 0.01, NB = 1900;
class Histogram {
  constructor() { this.b = new Float64Array(NB); this.n = 0; this.max = 0; this.sum = 0; }
  record(lat) {
    if (lat < MIN) lat = MIN;
    let i = Math.floor(Math.log(lat / MIN) / Math.log(BASE));
    if (i >= NB) i = NB - 1;
    this.b[i]++; this.n++; this.sum += lat;
    if (lat > this.max) this.max = lat;
  }
  pct(p) {
    const target = this.n * p;
    let acc = 0;
    for (let i = 0; i < NB; i++) {
      acc += this.b[i];
      if (acc >= target) return Math.min(this.max, MIN * Math.pow(BASE, i + 0.5));
    }
    return this.max;
  }
  report() {
    if (!this.n) return null;
    return {
      p50: +this.pct(0.5).toFixed(2), p95: +this.pct(0.95).toFixed(2), p99: +this.pct(0.99).toFixed(2),
      max: +this.max.toFixed(2), mean: +(this.sum / this.n).toFixed(2), n: this.n,
    };
  }
}
const scanHist = new Histogram(), parseHist = new Histogram();
// Per kind of client: frames, bytes, quotes received while measuring.
const count = { scan: { frames: 0, bytes: 0, quotes: 0 }, parse: { frames: 0, bytes: 0, quotes: 0 } };

let pending = 0;
let connected = 0, open = 0, errors = 0, seqGaps = 0;
const closeCodes = {};
const errorKinds = {};
let measuring = false;
const sockets = [];

// The symbols one client watches: all of them (--symbols), or a watchlist of `subset` picked
// deterministically per client from the server's list.
function watchlist(i, known) {
  if (!(subset > 0 && known.length)) return symbols;
  const g = first + i, want = [];
  for (let k = 0; k < subset; k++) want.push(known[(g * 7919 + k * 104729) % known.length]);
  return [...new Set(want)];
}

// One client's reading of the server's frames (any transport): `decode` turns a frame into a
// message (parse clients), `scan` reads it in place (scan clients).
function reader(i, decode, scan) {
  // Parse clients spread evenly over the connection order: a server writes to its clients in
  // some order (Ticker: the order they joined), and the first ones get each frame first.
  const every = Math.max(1, Math.floor(clients / parseN));
  const parses = parseN > 0 && i % every === 0 && i / every < parseN;
  const book = parses ? {} : null; // a parse client's copy of its quotes
  let seq = 0;
  return (data, t, size = data.length) => {
    if (parses) {
      // What a real client does: decode the frame, apply it to its quotes, then read them.
      const m = decode(data);
      const kind = m.type;
      if (kind === "snapshot") Object.assign(book, m.quotes);
      else if (kind === "delta") {
        for (const s in m.quotes) {
          const d = m.quotes[s], q = book[s];
          if (q === undefined) book[s] = d; else Object.assign(q, d);
        }
      }
      if (!measuring) { if (m.seq) seq = m.seq; return; }
      const c = count.parse;
      c.frames++; c.bytes += size;
      if (m.seq !== undefined) { if (seq && m.seq !== seq + 1) seqGaps++; seq = m.seq; }
      if (kind === "delta") {
        for (const s in m.quotes) { c.quotes++; parseHist.record(t - book[s].ts); }
      } else if (kind === "snapshot") c.quotes += Object.keys(m.quotes).length;
      return;
    }
    const f = scan(data);
    if (!measuring) { if (f.seq) seq = f.seq; return; }
    const c = count.scan;
    c.frames++; c.bytes += size;
    if (f.kind === null) return;
    if (f.seq !== null) { if (seq && f.seq !== seq + 1) seqGaps++; seq = f.seq; }
    c.quotes += f.ts.length;
    if (f.kind === "delta") for (const ts of f.ts) scanHist.record(t - ts);
  };
}

function failed(e) {
  errors++;
  const k = String(e.code ?? e.message).slice(0, 60);
  errorKinds[k] = (errorKinds[k] ?? 0) + 1;
}

// A WebSocket client: JSON text frames (`ticker.v1`, or nothing offered) or MessagePack binary
// frames (`ticker.v1.msgpack`). Its ops go as JSON text either way (the server takes both).
function startWs(i) {
  // (UTF-8 is not checked: the frames are read as bytes, below.)
  const opts = { perMessageDeflate: false, skipUTF8Validation: true };
  if (localAddresses.length) opts.localAddress = localAddresses[i % localAddresses.length];
  const ws = transport === "msgpack"
    ? new WebSocket(url, ["ticker.v1.msgpack"], opts)
    : new WebSocket(url, opts);
  const read = transport === "msgpack"
    ? reader(i, (d) => unpack(d), scanMsgpack)
    : reader(i, (d) => JSON.parse(d), scanFrame);
  let pendingHere = true, opened = false, greeted = false;
  pending++;
  const settled = () => { if (pendingHere) { pendingHere = false; pending--; } };
  ws.on("open", () => {
    settled();
    opened = true; connected++; open++;
    if (transport === "msgpack" && ws.protocol !== "ticker.v1.msgpack") {
      failed({ code: `subprotocol ${JSON.stringify(ws.protocol)}` });
    }
    if (throttle !== null) ws.send(JSON.stringify({ op: "throttle", ms: throttle }));
  });
  ws.on("message", (data) => {
    const t = now();
    if (!greeted) {
      greeted = true;
      const m = transport === "msgpack" ? unpack(data) : JSON.parse(data);
      if (m.type !== "hello") { errors++; return; }
      ws.send(JSON.stringify({ op: "subscribe", symbols: watchlist(i, m.symbols) }));
      return;
    }
    read(data, t);
  });
  ws.on("error", (e) => { settled(); failed(e); });
  ws.on("close", (code) => { settled(); if (opened) open--; closeCodes[code] = (closeCodes[code] ?? 0) + 1; });
  sockets.push(ws);
}

// A Server-Sent Events client: `GET /sse?symbols=...&throttle_ms=...`, read as a byte stream
// (Node's http undoes the chunked encoding); each event's `data:` is the JSON message. Bytes
// count the events as they arrive (their `event:`/`id:` lines included).
function startSse(i) {
  const u = new URL(url.replace(/^ws/, "http").replace(/\/ws$/, "/sse"));
  u.searchParams.set("symbols", watchlist(i, knownSymbols).join(","));
  if (throttle !== null) u.searchParams.set("throttle_ms", String(throttle));
  const opts = {
    host: u.hostname, port: u.port, path: u.pathname + u.search, agent: false,
    headers: { Accept: "text/event-stream" },
  };
  if (localAddresses.length) opts.localAddress = localAddresses[i % localAddresses.length];
  const read = reader(i, (d) => JSON.parse(d), scanFrame);
  const split = new SseSplitter();
  let pendingHere = true, opened = false;
  pending++;
  const settled = () => { if (pendingHere) { pendingHere = false; pending--; } };
  const req = http.get(opts, (res) => {
    settled();
    if (res.statusCode !== 200) {
      failed({ code: `HTTP ${res.statusCode}` });
      res.resume();
      return;
    }
    opened = true; connected++; open++;
    res.on("data", (chunk) => {
      const t = now();
      const events = split.push(chunk);
      // The chunk's bytes spread over the events it completed (a chunk is usually one event).
      const size = events.length ? chunk.length / events.length : 0;
      for (const data of events) read(data, t, size);
    });
    res.on("close", () => { if (opened) { opened = false; open--; closeCodes.sse_end = (closeCodes.sse_end ?? 0) + 1; } });
    res.on("error", failed);
  });
  req.on("error", (e) => { settled(); failed(e); });
  sockets.push({ terminate: () => req.destroy() });
}

const start = transport === "sse" ? startSse : startWs;

// SSE clients name their symbols in the URL: the list comes from /api/symbols first.
let knownSymbols = [];
if (transport === "sse" && subset > 0) {
  const api = url.replace(/^ws/, "http").replace(/\/ws$/, "/api/symbols");
  knownSymbols = (await (await fetch(api)).json()).symbols.map((s) => s.symbol);
}

let started = 0;
const t0 = now();
const batch = Math.max(1, Math.round(ramp / 100));
const ramper = setInterval(() => {
  for (let k = 0; k < batch && started < clients && pending < inflight; k++) start(started++);
  if (started >= clients) clearInterval(ramper);
}, 10);
// Wait until everyone is connected: at most --connect-wait (120) s after the ramp could have ended, and no longer
// than 20 s without one more connection (a server stuck behind its backlog connects nobody
// else). Then warm up, then measure.
const connectWait = Number(args["connect-wait"] ?? 120) * 1000;
const deadline = now() + (clients / ramp) * 1000 + connectWait;
let seen = connected, progressAt = now();
while (connected < clients && now() < deadline && now() - progressAt < 20000) {
  await new Promise((r) => setTimeout(r, 50));
  if (connected > seen) { seen = connected; progressAt = now(); }
}
clearInterval(ramper);
const connectSeconds = (now() - t0) / 1000;
await new Promise((r) => setTimeout(r, warmup));
if (args.sync) {
  // Several generators measure the same period: say we are ready, wait for "go" on stdin.
  process.stderr.write(JSON.stringify({ event: "ready" }) + "\n");
  await new Promise((r) => process.stdin.once("data", r));
  process.stdin.pause();
}
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const cpu0 = process.cpuUsage();
measuring = true;
process.stderr.write(JSON.stringify({ event: "measuring" }) + "\n");
const m0 = now();
await new Promise((r) => setTimeout(r, duration));
measuring = false;
const secs = (now() - m0) / 1000;
const cpu = process.cpuUsage(cpu0);
loopDelay.disable();
const frames = count.scan.frames + count.parse.frames;
const bytes = count.scan.bytes + count.parse.bytes;
const updates = count.scan.quotes + count.parse.quotes;
const result = {
  clients, connected, still_open: open, connect_s: +connectSeconds.toFixed(2),
  seconds: +secs.toFixed(2), frames, frames_per_s: Math.round(frames / secs),
  updates, updates_per_s: Math.round(updates / secs), bytes, bytes_per_s: Math.round(bytes / secs),
  latency_ms: scanHist.report(), latency_parse_ms: parseHist.report(),
  parse_clients: Math.min(parseN, clients), counts: count,
  cpu_pct: +((100 * (cpu.user + cpu.system)) / 1000 / (secs * 1000)).toFixed(1),
  loop_delay_ms: { p50: +(loopDelay.percentile(50) / 1e6).toFixed(2), p99: +(loopDelay.percentile(99) / 1e6).toFixed(2), max: +(loopDelay.max / 1e6).toFixed(2) },
  errors, error_kinds: errorKinds, seq_gaps: seqGaps, close_codes: closeCodes,
};
process.stdout.write(JSON.stringify(result) + "\n");
for (const ws of sockets) ws.terminate();
process.exit(0);

// Load generator for `make bench`: opens N WebSocket clients (ramped), subscribes, and measures
// every quote's latency (receive time - quote ts) in a log-bucket histogram (memory stays flat).
// Prints one JSON object on stdout at the end. Usage:
//   node loadgen.mjs --url ws://127.0.0.1:8080/ws --clients 1000 --duration 20 \
//        [--ramp 2000] [--inflight 1000] [--symbols '*' | --subset 5] [--throttle 100] [--warmup 3]
// Connections open at up to --ramp per second with at most --inflight handshakes pending, so a
// busy server is never sent more connects than it accepts (an overflowing listen queue drops them
// and the clients wait out TCP's retransmission backoff: seconds, not load). Prints
// {"event":"measuring"} on stderr when the measured period starts.
import { WebSocket } from "ws";
import { performance } from "node:perf_hooks";
import { scanFrame } from "./scan.mjs";

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

const now = () => performance.timeOrigin + performance.now();

// Histogram: bucket i covers [MIN * 1.01^i, MIN * 1.01^(i+1)) ms, 0.01 ms .. ~1e6 ms; a
// percentile is its bucket's geometric middle, so figures are within 0.5 % (1 ms at 200 ms).
const BASE = 1.01, MIN = 0.01, NB = 1900;
const hist = new Float64Array(NB);
let measured = 0, maxLat = 0, sumLat = 0;
function record(lat) {
  if (lat < MIN) lat = MIN;
  let i = Math.floor(Math.log(lat / MIN) / Math.log(BASE));
  if (i >= NB) i = NB - 1;
  hist[i]++; measured++; sumLat += lat;
  if (lat > maxLat) maxLat = lat;
}
function pct(p) {
  const target = measured * p;
  let acc = 0;
  for (let i = 0; i < NB; i++) {
    acc += hist[i];
    if (acc >= target) return Math.min(maxLat, MIN * Math.pow(BASE, i + 0.5));
  }
  return maxLat;
}

let pending = 0;
let connected = 0, open = 0, frames = 0, updates = 0, errors = 0, seqGaps = 0, bytes = 0;
const closeCodes = {};
const errorKinds = {};
let measuring = false;
const sockets = [];

function start(i) {
  // (UTF-8 is not checked: the frames are read as bytes, below.)
  const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
  let seq = 0, pendingHere = true, opened = false, greeted = false;
  pending++;
  const settled = () => { if (pendingHere) { pendingHere = false; pending--; } };
  ws.on("open", () => {
    settled();
    opened = true; connected++; open++;
    if (throttle !== null) ws.send(JSON.stringify({ op: "throttle", ms: throttle }));
  });
  ws.on("message", (data) => {
    const t = now();
    if (!greeted) {
      greeted = true;
      const m = JSON.parse(data);
      if (m.type !== "hello") { errors++; return; }
      let want = symbols;
      if (subset > 0 && m.symbols.length) {
        // A watchlist: `subset` symbols picked deterministically per client.
        want = [];
        for (let k = 0; k < subset; k++) want.push(m.symbols[(i * 7919 + k * 104729) % m.symbols.length]);
      }
      ws.send(JSON.stringify({ op: "subscribe", symbols: [...new Set(want)] }));
      return;
    }
    const f = scanFrame(data);
    if (!measuring) { if (f.seq) seq = f.seq; return; }
    frames++; bytes += data.length;
    if (f.kind === null) return;
    if (f.seq !== null) { if (seq && f.seq !== seq + 1) seqGaps++; seq = f.seq; }
    updates += f.ts.length;
    if (f.kind === "delta") for (const ts of f.ts) record(t - ts);
  });
  ws.on("error", (e) => { settled(); errors++; const k = String(e.code ?? e.message).slice(0, 60); errorKinds[k] = (errorKinds[k] ?? 0) + 1; });
  ws.on("close", (code) => { settled(); if (opened) open--; closeCodes[code] = (closeCodes[code] ?? 0) + 1; });
  sockets.push(ws);
}

let started = 0;
const t0 = now();
const batch = Math.max(1, Math.round(ramp / 100));
const ramper = setInterval(() => {
  for (let k = 0; k < batch && started < clients && pending < inflight; k++) start(started++);
  if (started >= clients) clearInterval(ramper);
}, 10);
// Wait until everyone is connected: at most 120 s after the ramp could have ended, and no longer
// than 20 s without one more connection (a server stuck behind its backlog connects nobody
// else). Then warm up, then measure.
const deadline = now() + (clients / ramp) * 1000 + 120000;
let seen = connected, progressAt = now();
while (connected < clients && now() < deadline && now() - progressAt < 20000) {
  await new Promise((r) => setTimeout(r, 50));
  if (connected > seen) { seen = connected; progressAt = now(); }
}
clearInterval(ramper);
const connectSeconds = (now() - t0) / 1000;
await new Promise((r) => setTimeout(r, warmup));
measuring = true;
process.stderr.write(JSON.stringify({ event: "measuring" }) + "\n");
const m0 = now();
await new Promise((r) => setTimeout(r, duration));
measuring = false;
const secs = (now() - m0) / 1000;
const result = {
  clients, connected, still_open: open, connect_s: +connectSeconds.toFixed(2),
  seconds: +secs.toFixed(2), frames, frames_per_s: Math.round(frames / secs),
  updates, updates_per_s: Math.round(updates / secs), bytes_per_s: Math.round(bytes / secs),
  latency_ms: measured ? {
    p50: +pct(0.5).toFixed(2), p95: +pct(0.95).toFixed(2), p99: +pct(0.99).toFixed(2),
    max: +maxLat.toFixed(2), mean: +(sumLat / measured).toFixed(2), n: measured,
  } : null,
  errors, error_kinds: errorKinds, seq_gaps: seqGaps, close_codes: closeCodes,
};
process.stdout.write(JSON.stringify(result) + "\n");
for (const ws of sockets) ws.terminate();
process.exit(0);

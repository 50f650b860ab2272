// The JS client (web/ticker-client.js) against real `ticker serve` processes, in Node with the
// `ws` package (tests/js/package.json; `make test` installs it): subscribe and the merged book
// equals GET /api/quotes; bars equal GET /api/bars; an error frame rejects the request that
// caused it; a seq gap (a delta dropped on its way in) is resynced; news resumes across a server
// restart on the same port with no item missed or repeated. Over Server-Sent Events
// (sseTransport with Node's fetch) the same client keeps its book, window, news and live bars,
// and a watchlist change reopens the stream.
//
// The server is `python -m ticker serve --port 0 ...` (its first stdout line is `listening on
// http://HOST:PORT`), run by $TICKER_PYTHON, else the repository's .venv/bin/python, else
// python3. When none of them can start ticker, these tests are skipped with the reason.
// Timeouts are generous (a loaded 2-core machine) and scale with TICKER_TEST_TIMEOUT_FACTOR.
// node --test tests/js/
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { TickerClient, TickerError, sseTransport, webSocketTransport } from "../../web/ticker-client.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FACTOR = Number(process.env.TICKER_TEST_TIMEOUT_FACTOR) || 1;
const S = 1000 * FACTOR; // one second, scaled

/** The WebSocket constructor: the `ws` package, else the global (Node >= 22). */
async function webSocketImpl() {
  try {
    return (await import("ws")).WebSocket;
  } catch {
    return globalThis.WebSocket ?? null;
  }
}

/** The Python that runs ticker here, or a one-line reason why there is none. */
function findPython() {
  const candidates = [process.env.TICKER_PYTHON, join(ROOT, ".venv/bin/python"), "python3"].filter(
    (p) => p && (p === "python3" || existsSync(p)),
  );
  const tried = [];
  for (const py of candidates) {
    const r = spawnSync(py, ["-c", "import ticker.net.server"], { cwd: ROOT, timeout: 60_000 });
    if (r.status === 0) return { python: py };
    const why = r.error ? r.error.code : String(r.stderr).trim().split("\n").at(-1) || `exit ${r.status}`;
    tried.push(`${py}: ${why}`);
  }
  return { reason: `no python can import ticker (set TICKER_PYTHON): ${tried.join("; ")}` };
}

/** A `ticker serve` subprocess; `url` from its first stdout line. */
class Server {
  static async start(python, args) {
    const srv = new Server();
    srv.log = [];
    srv.proc = spawn(python, ["-m", "ticker", "serve", ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    srv.proc.stderr.on("data", (d) => srv.log.push(String(d)));
    srv.exited = new Promise((resolve) => srv.proc.on("exit", resolve));
    srv.url = await new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`no 'listening on' in ${30 * S} ms: ${srv.stderr()}`)), 30 * S);
      srv.proc.stdout.on("data", (d) => {
        out += d;
        const nl = out.indexOf("\n");
        if (nl < 0) return;
        clearTimeout(timer);
        const line = out.slice(0, nl).trim();
        if (line.startsWith("listening on ")) resolve(line.split(" ").at(-1));
        else reject(new Error(`server did not start: ${line} ${srv.stderr()}`));
      });
      srv.proc.on("exit", (code) => reject(new Error(`server exited (${code}): ${srv.stderr()}`)));
    });
    srv.proc.stdout.resume();
    return srv;
  }

  get wsUrl() {
    return this.url.replace("http://", "ws://") + "/ws";
  }

  get port() {
    return Number(this.url.split(":").at(-1));
  }

  stderr() {
    return this.log.join("").slice(-2000);
  }

  async get(path) {
    const r = await fetch(this.url + path);
    assert.equal(r.status, 200, `${path}: ${r.status}`);
    return r.json();
  }

  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const killer = setTimeout(() => this.proc.kill("SIGKILL"), 10 * S);
    await this.exited;
    clearTimeout(killer);
  }
}

/** Wait until `cond()` (async allowed) is truthy; fail after `ms` with `what`. */
async function until(cond, what, ms = 20 * S) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let env = null; // {python, WebSocket} or {reason}
const servers = [];
const clients = [];
let dir = null;

before(async () => {
  const WebSocket = await webSocketImpl();
  if (!WebSocket) throw new Error("no WebSocket for node: `npm ci --prefix tests/js` (make test does)");
  const py = findPython();
  env = py.reason ? py : { python: py.python, WebSocket };
  dir = mkdtempSync(join(tmpdir(), "ticker-jsclient-"));
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function serve(...args) {
  const srv = await Server.start(env.python, args.includes("--port") ? args : ["--port", "0", ...args]);
  servers.push(srv);
  return srv;
}

function client(url, opts = {}) {
  const c = new TickerClient(url, { WebSocket: env.WebSocket, timeoutMs: 20 * S, ...opts });
  clients.push(c);
  return c;
}

/** 600 ticks of AAA and BBB over 60 s of market time; replayed at 10x it runs 6 s, then holds. */
function replayFile() {
  const t0 = 1_700_000_000_000;
  const rows = ["ts,symbol,price,size,bid,ask"];
  for (let i = 0; i < 300; i++) {
    for (const [j, sym] of ["AAA", "BBB"].entries()) {
      const p = 100 + j * 50 + ((i * 7) % 13) / 10;
      rows.push(`${t0 + i * 200 + j},${sym},${p.toFixed(2)},${1 + (i % 5)},${(p - 0.05).toFixed(2)},${(p + 0.05).toFixed(2)}`);
    }
  }
  const path = join(dir, "ticks.csv");
  writeFileSync(path, rows.join("\n") + "\n");
  return path;
}

test("subscribe: the merged book equals GET /api/quotes; bars equal GET /api/bars; errors reject", async (t) => {
  if (env.reason) return t.skip(env.reason);
  const srv = await serve("--feed", `replay:path=${replayFile()},speed=10`);
  const c = client(srv.wsUrl);
  let deltas = 0;
  c.on("delta", () => deltas++);
  await c.connect(); // (its hello may come before the replay has listed its symbols)
  assert.deepEqual(await c.subscribe(["*"], { throttleMs: 50 }), ["*"]);
  const live = await c.bars("AAA", "1s", { limit: 5000, live: true });
  assert.ok(Array.isArray(live));

  // The replay ends and holds its last state: the book is the server's, field for field.
  await until(async () => (await srv.get("/healthz")).feeds[0].state === "finished", "the replay to finish", 60 * S);
  const want = (await srv.get("/api/quotes")).quotes;
  await until(() => JSON.stringify(sorted(c.quotes)) === JSON.stringify(sorted(want)), "book == /api/quotes", 10 * S);
  assert.deepEqual(Object.fromEntries(c.quotes), want);
  assert.ok(deltas > 0, "deltas were merged into the book");

  // Bars: the request's answer equals the HTTP API's, shape [t, o, h, l, c, v].
  const bars = await c.bars("aaa", "1m", { limit: 500 });
  assert.deepEqual(bars, (await srv.get("/api/bars?symbol=AAA&interval=1m&limit=500")).bars);
  assert.ok(bars.length >= 1 && bars.every((b) => b.length === 6));
  assert.deepEqual(await c.bars("AAA", "1m", { limit: 1 }), bars.slice(-1));

  // An error frame rejects the request that caused it (and only it).
  const errors = [];
  c.on("error", (m) => errors.push(m.code));
  const [sub, badIv, ok] = await Promise.allSettled([
    c.subscribe(["AAA", "NOPE"]),
    c.bars("AAA", "7m"),
    c.throttle(333),
  ]);
  assert.ok(sub.reason instanceof TickerError);
  assert.equal(sub.reason.code, "unknown_symbol");
  assert.deepEqual(sub.reason.symbols, ["NOPE"]);
  assert.deepEqual(sub.reason.ack.symbols, ["AAA"]); // the known one is subscribed
  assert.equal(badIv.reason.code, "bad_interval");
  assert.equal(ok.value, 330); // quantized by the server
  assert.deepEqual(errors.sort(), ["bad_interval", "unknown_symbol"]);
  await assert.rejects(c.request({ op: "frobnicate" }), (e) => e.code === "unknown_op");
  assert.equal(c.status().live, true); // the connection is still fine
});

function sorted(book) {
  const o = book instanceof Map ? Object.fromEntries(book) : book;
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, Object.fromEntries(Object.entries(o[k]).sort())]));
}

test("a seq gap (a delta lost on its way in) is answered by one resync and a fresh snapshot", async (t) => {
  if (env.reason) return t.skip(env.reason);
  const srv = await serve("--feed", "sim:symbols=5,rate=200,seed=3");
  const sent = [];
  let armed = false;
  let dropped = null;
  let c = null;
  const base = webSocketTransport(env.WebSocket);
  const lossy = (url, protocols, on) => {
    const conn = base(url, protocols, {
      ...on,
      message(m) {
        if (armed && dropped === null && m.type === "delta") {
          dropped = m; // lost: what the book now lacks is marked, so a snapshot shows
          for (const q of c.quotes.values()) q.marked = true;
          return;
        }
        on.message(m);
      },
    });
    return {
      get open() {
        return conn.open;
      },
      send(obj) {
        sent.push(obj);
        return conn.send(obj);
      },
      close: () => conn.close(),
    };
  };
  c = client(srv.wsUrl, { transport: lossy });
  const snapshots = [];
  c.on("snapshot", (s) => snapshots.push(s));
  await c.connect();
  await c.subscribe(["*"], { throttleMs: 50 });
  await until(() => c.quotes.size === 5 && snapshots.length > 0, "the subscribe's snapshot");
  armed = true;
  await until(() => dropped !== null, "a delta to drop");
  await until(() => c.session.gaps === 1, "the next delta to show the gap");
  await until(
    () => snapshots.some((s) => s.seq > dropped.seq) && [...c.quotes.values()].every((q) => !q.marked),
    "the resync's snapshot",
  );
  assert.equal(sent.filter((m) => m.op === "resync").length, 1);
  assert.equal(c.session.gaps, 1);
  assert.equal(c.quotes.size, 5);
});

test("news resumes across a server restart on the same port: none missed, none twice", async (t) => {
  if (env.reason) return t.skip(env.reason);
  const first = await serve("--feed", "simnews:rate=1200,seed=1", "--feed", "sim:symbols=3,seed=1");
  const port = first.port;
  const c = client(first.wsUrl, { retry: { baseMs: 50, maxMs: 300 } });
  const got = [];
  c.on("news", (item) => got.push(item.id));
  await c.connect();
  await c.news(["*"]);
  await until(() => got.length >= 10, "news from the first server");
  await sleep(1 * S);
  const servedFirst = (await first.get("/api/news?limit=10000")).items.map((i) => i.id);
  await first.stop();
  const upTo = got.length;

  const second = await serve("--port", String(port), "--feed", "simnews:rate=1200,seed=2");
  assert.equal(second.port, port);
  await until(() => c.connects >= 2, "the reconnect");
  await until(() => got.length >= upTo + 10, "news from the second server");
  await sleep(1 * S);
  const servedSecond = (await second.get("/api/news?limit=10000")).items.map((i) => i.id);
  c.close();

  assert.deepEqual(got, [...got].sort((a, b) => a - b), "in order");
  assert.equal(new Set(got).size, got.length, "none twice");
  const have = new Set(got);
  const missedFirst = servedFirst.filter((id) => id >= got[0] && !have.has(id));
  assert.deepEqual(missedFirst, [], "none of the first server's missed");
  const last = got.at(-1);
  const missedSecond = servedSecond.filter((id) => id <= last && !have.has(id));
  assert.deepEqual(missedSecond, [], "none of the second server's missed (the outage's included)");
  assert.ok(servedSecond.some((id) => have.has(id)), "the second server's items arrived");
  assert.ok(Math.min(...servedSecond) > Math.max(...servedFirst), "ids keep increasing");
});

test("over SSE (sseTransport, Node's fetch): book, window, news once, live bars polled, a reopen", async (t) => {
  if (env.reason) return t.skip(env.reason);
  const srv = await serve("--feed", `replay:path=${replayFile()},speed=10`, "--feed", "simnews:rate=1200,seed=4");
  const c = client(srv.wsUrl, { transport: sseTransport(fetch, { pollMinMs: 200 }) });
  const news = [];
  c.on("news", (n) => news.push(n.id));
  const chart = new Map(); // t -> bar: the `bars` answer, then `bar` updates (a fresh `bars` replaces)
  c.on("bars", (m) => {
    if (m.interval !== "1s") return;
    chart.clear();
    for (const b of m.bars) chart.set(b[0], b);
  });
  c.on("bar", (m) => chart.set(m.bar[0], m.bar));
  const hello = await c.connect();
  assert.equal(hello.type, "hello");
  assert.equal(await c.throttle(55), 60); // quantized as the server does
  assert.deepEqual(await c.subscribe(["AAA"]), ["AAA"]);
  await c.news(["*"]);
  await c.bars("AAA", "1s", { limit: 5000, live: true });
  await until(() => c.quotes.has("AAA") && news.length >= 5, "quotes and news over SSE");
  assert.equal(c.quotes.has("BBB"), false);
  assert.equal(c.status().live, true);
  await c.subscribe(["BBB"]); // a new query: the stream is reopened
  await until(() => c.quotes.has("BBB"), "BBB after the reopen");
  const errors = [];
  c.on("error", (m) => errors.push(m));
  await assert.rejects(c.request({ op: "fields", fields: ["colour"] }), (e) => e.code === "bad_request");
  assert.equal(c.status().live, true, "a refused query leaves the stream as it was");

  await until(async () => (await srv.get("/healthz")).feeds.find((f) => f.name.startsWith("replay"))?.state === "finished", "the replay to finish", 60 * S);
  const want = (await srv.get("/api/quotes?symbols=AAA,BBB")).quotes;
  await until(() => JSON.stringify(sorted(c.quotes)) === JSON.stringify(sorted(want)), "book == /api/quotes", 10 * S);
  const served = (await srv.get("/api/bars?symbol=AAA&interval=1s&limit=5000")).bars;
  await until(() => JSON.stringify([...chart.values()]) === JSON.stringify(served), "polled bars == /api/bars", 10 * S);
  assert.deepEqual(news, [...news].sort((a, b) => a - b), "news in order");
  assert.equal(new Set(news).size, news.length, "no news item twice across the reopens");
  const have = new Set(news);
  const servedNews = (await srv.get("/api/news?limit=10000")).items.map((i) => i.id);
  const missed = servedNews.filter((id) => id >= news[0] && id <= news.at(-1) && !have.has(id));
  assert.deepEqual(missed, [], "none missed across the reopens");
});

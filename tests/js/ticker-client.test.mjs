// Unit tests for the JS client (web/ticker-client.js) over a scripted transport: no server, no
// socket. The handshake and what a reconnect asks for again, requests settled at their fence,
// errors as TickerError, news never twice, a seq gap resynced, and no browser global touched.
// The same client against a real `ticker serve`: client.int.test.mjs. node --test tests/js/
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { TickerClient, TickerError, sseTransport, webSocketTransport } from "../../web/ticker-client.js";

/** A transport whose "server" is the test: `sent` is what the client sent, `say` answers. */
function scripted() {
  const links = [];
  const transport = (url, protocols, on) => {
    const link = {
      url,
      protocols,
      on,
      sent: [],
      open: false,
      send(obj) {
        this.sent.push(obj);
        return true;
      },
      close() {
        if (!this.open) return;
        this.open = false;
        queueMicrotask(() => on.close(1000, ""));
      },
      accept() {
        this.open = true;
        on.open();
      },
      say(m) {
        on.message(m);
      },
      hangUp() {
        this.open = false;
        on.close(1006, "");
      },
    };
    links.push(link);
    return link;
  };
  return { links, transport };
}

const HELLO = { type: "hello", v: 1, session: "s", throttle_ms: 100, symbols: ["AAPL", "MSFT"], news_last_id: 5 };
const tick = () => new Promise((r) => setTimeout(r, 0));

/** Wait until `cond()`; fail after a generous deadline (a loaded machine fires timers late). */
async function until(cond, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Answer every request the link sent since `from` with an ack (and `extra(msg)`), then pong. */
function answer(link, from = 0, extra = () => []) {
  for (const m of link.sent.slice(from)) {
    if (m.op === "ping") link.say({ type: "pong", t: m.t });
    else if (m.id !== undefined) {
      const fields = m.op === "throttle" ? { ms: m.ms } : m.op === "subscribe" ? { symbols: m.symbols } : {};
      link.say({ type: "ack", id: m.id, ...fields });
      for (const f of extra(m)) link.say(f);
    }
  }
  return link.sent.length;
}

const made = [];
afterEach(() => {
  for (const c of made.splice(0)) c.close(); // no timer outlives its test, even a failed one
});

function client(opts = {}) {
  const { links, transport } = scripted();
  const c = new TickerClient("ws://h/ws", { transport, retry: { baseMs: 1, maxMs: 2 }, ...opts });
  made.push(c);
  return { c, links };
}

test("source: no DOM, window, page URL or storage in the client module", () => {
  const src = readFileSync(new URL("../../web/ticker-client.js", import.meta.url), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
  for (const name of ["document", "window", "location", "navigator", "localStorage", "sessionStorage", "fetch", "requestAnimationFrame"]) {
    assert.doesNotMatch(src, new RegExp(`(?<![.\\w$])${name}(?![\\w$])`), name);
  }
  for (const [, spec] of src.matchAll(/^import\b[^;]*\bfrom\s+["']([^"']+)["']/gm)) {
    assert.match(spec, /^\.\/logic\/[\w-]+\.js$/, `imports ${spec}: only the pure modules`);
  }
});

test("no WebSocket anywhere: a clear TypeError; a token rides as a subprotocol or ?token=", () => {
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket;
  try {
    assert.throws(() => new TickerClient("ws://h/ws"), /pass \{WebSocket\}/);
  } finally {
    if (saved) globalThis.WebSocket = saved;
  }
  const { c, links } = client({ token: "abc" });
  c.connect();
  assert.deepEqual(links[0].protocols, ["ticker.v1", "bearer.abc"]);
  assert.equal(links[0].url, "ws://h/ws");
  c.close();
  const other = client({ token: "a b" });
  other.c.connect();
  assert.equal(other.links[0].url, "ws://h/ws?token=a%20b");
  other.c.close();
});

test("requests resolve at their fence; an error frame rejects with code, symbols and ack", async () => {
  const { c, links } = client();
  const ready = c.connect();
  const link = links[0];
  link.accept();
  link.say(HELLO);
  assert.deepEqual(await ready, HELLO);
  assert.deepEqual(await Promise.race([c.subscribe(["AAPL", "NOPE"]).catch((e) => e), tick().then(() => "pending")]), "pending");
  const sub = link.sent.find((m) => m.op === "subscribe");
  assert.deepEqual(link.sent.at(-1), { op: "ping", t: -1 });
  link.say({ type: "ack", id: sub.id, symbols: ["AAPL"] });
  link.say({ type: "error", code: "unknown_symbol", message: "unknown symbols: NOPE", id: sub.id, symbols: ["NOPE"] });
  const errors = [];
  c.on("error", (m) => errors.push(m.code));
  const p = c.subscribe(["MSFT"]);
  const rejected = c.bars("AAPL", "7m").catch((e) => e);
  await tick(); // the fence goes out after this turn's requests
  const from = link.sent.length - 3; // subscribe, bars, then their one fence
  assert.deepEqual(link.sent.slice(from).map((m) => m.op), ["subscribe", "bars", "ping"]);
  link.say({ type: "pong", t: -1 });
  link.say({ type: "ack", id: link.sent[from].id, symbols: ["MSFT"] });
  link.say({ type: "error", code: "bad_interval", message: "m", id: link.sent[from + 1].id, finest: "1s" });
  link.say({ type: "pong", t: link.sent[from + 2].t });
  assert.deepEqual(await p, ["MSFT"]);
  const err = await rejected;
  assert.ok(err instanceof TickerError);
  assert.equal(err.code, "bad_interval");
  assert.equal(err.frame.finest, "1s");
  assert.deepEqual(errors, ["bad_interval"]);
  c.close();
});

test("the first subscribe's partial error; bars resolve with the bars; not connected rejects", async () => {
  const { c, links } = client();
  const offline = await c.subscribe(["AAPL"]).catch((e) => e);
  assert.equal(offline.code, "disconnected"); // but kept: asked for on connect
  c.connect();
  const link = links[0];
  link.accept();
  link.say(HELLO);
  assert.deepEqual(link.sent.map((m) => m.op), ["subscribe", "ping"].slice(0, 1));
  await tick();
  const sub = c.subscribe(["NOPE"]).catch((e) => e);
  const bars = c.bars("aapl", "1min", { limit: 2 });
  await tick();
  const [s, b, f] = link.sent.slice(-3);
  link.say({ type: "ack", id: s.id, symbols: [] });
  link.say({ type: "error", code: "unknown_symbol", message: "m", id: s.id, symbols: ["NOPE"] });
  link.say({ type: "ack", id: b.id, symbol: "AAPL", interval: "1m" });
  link.say({ type: "bars", symbol: "AAPL", interval: "1m", bars: [[1, 2, 3, 0, 2, 5]] });
  link.say({ type: "pong", t: f.t });
  const err = await sub;
  assert.deepEqual([err.code, err.symbols, err.ack.symbols], ["unknown_symbol", ["NOPE"], []]);
  assert.deepEqual(await bars, [[1, 2, 3, 0, 2, 5]]);
  c.close();
  assert.equal((await c.resync().catch((e) => e)).code, "disconnected");
});

test("book, seq gap resync, news once; a reconnect asks again for all of it, news since the last", async () => {
  const { c, links } = client();
  const quotes = [];
  const news = [];
  const steps = [];
  c.on("quote", (q) => quotes.push([q.symbol, q.quote.price, q.snapshot === true]));
  c.on("news", (n) => news.push(n.id));
  c.on("status", (s) => steps.push(s.step));
  c.connect();
  let link = links[0];
  link.accept();
  link.say(HELLO);
  c.throttle(250).catch(() => {});
  c.subscribe(["*"]).catch(() => {});
  c.news(["*"]).catch(() => {});
  c.bars("AAPL", "1m", { live: true }).catch(() => {});
  await tick();
  answer(link, 0, (m) =>
    m.op === "news" ? [] : m.op === "bars" ? [{ type: "bars", symbol: "AAPL", interval: "1m", bars: [] }] : [],
  );
  link.say({ type: "snapshot", seq: 1, quotes: { AAPL: { symbol: "AAPL", price: 1, ts: 1 } } });
  await tick();
  assert.equal(c.status().live, true);
  link.say({ type: "delta", seq: 2, t: 0, quotes: { AAPL: { price: 2, ts: 2, w_count: 3 } } });
  link.say({ type: "delta", seq: 4, t: 0, quotes: { MSFT: { price: 9, ts: 3 } } }); // 3 is lost
  assert.deepEqual(link.sent.at(-1), { op: "resync" });
  assert.equal(c.session.gaps, 1);
  link.say({ type: "delta", seq: 6, t: 0, quotes: {} }); // one resync per gap until its snapshot
  assert.equal(link.sent.filter((m) => m.op === "resync").length, 1);
  assert.deepEqual(Object.fromEntries(c.quotes), {
    AAPL: { symbol: "AAPL", price: 2, ts: 2 },
    MSFT: { symbol: "MSFT", price: 9, ts: 3 },
  });
  assert.deepEqual(quotes, [["AAPL", 1, true], ["AAPL", 2, false], ["MSFT", 9, false]]);
  for (const id of [10, 11, 11, 9, 12]) link.say({ type: "news", id, ts: 0, headline: "h", source: "s", symbols: [] });
  assert.deepEqual(news, [10, 11, 12]);

  // The server goes away; the next link gets the window, the symbols, news since 12 and the bars.
  const before = link.sent.length;
  link.hangUp();
  assert.equal(c.status().step, "waiting");
  await new Promise((r) => setTimeout(r, 20));
  link = links[1];
  assert.ok(link, "redialled");
  link.accept();
  link.say({ ...HELLO, throttle_ms: 100 });
  await tick();
  assert.deepEqual(
    link.sent.filter((m) => m.op !== "ping").map(({ id, ...m }) => m),
    [
      { op: "throttle", ms: 250 },
      { op: "subscribe", symbols: ["*"] },
      { op: "news", topics: ["*"], since: 12 },
      { op: "bars", symbol: "AAPL", interval: "1m", limit: 500, live: true },
    ],
  );
  assert.equal(c.status().live, false);
  answer(link);
  for (const id of [12, 13]) link.say({ type: "news", id, ts: 0, headline: "h", source: "s", symbols: [] });
  await tick();
  assert.deepEqual(news, [10, 11, 12, 13]);
  assert.equal(c.status().live, true);
  assert.ok(before > 0);
  assert.deepEqual(steps.filter((s, i) => s !== steps[i - 1]), [
    "connecting", "handshake", "subscribing", "live", "waiting", "reconnecting", "handshake", "subscribing", "live",
  ]);
  c.close();
  assert.equal(c.status().step, "closed");
});

/** Poll `cond` until true (fail after `ms`): timers fire late on a loaded machine. */
async function waitFor(cond, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("a handshake that takes too long is abandoned and redialled", async () => {
  const { c, links } = client({ connectTimeoutMs: 10 });
  c.connect(); // never accepted
  await waitFor(() => links.length >= 2, "the redial");
  assert.equal(c.status().step === "live", false);
});

test("a silent link is dropped and redialled; the heartbeat pings meanwhile", async () => {
  let t = 0;
  const { c, links } = client({ now: () => t, pingEveryMs: 5, silenceMs: 100 });
  c.connect();
  const link = links[0];
  link.accept(); // at once: before any timer can fire
  link.say(HELLO);
  await waitFor(() => link.sent.some((m) => m.op === "ping" && m.t === 0), "a heartbeat ping");
  assert.equal(links.length, 1); // not silent yet (t has not moved)
  t = 1000; // silent since 0
  await waitFor(() => links.length >= 2, "the redial after the silence");
});

test("webSocketTransport: JSON text frames both ways, nothing else", () => {
  const made = [];
  class FakeWS {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.out = [];
      made.push(this);
    }
    send(s) {
      this.out.push(s);
    }
    close(code) {
      this.closedWith = code;
    }
  }
  const got = [];
  const conn = webSocketTransport(FakeWS)("ws://h/ws", undefined, {
    open: () => got.push("open"),
    message: (m) => got.push(m),
    close: (code) => got.push(["close", code]),
  });
  const ws = made[0];
  assert.equal(conn.send({ op: "ping" }), false); // not open yet
  ws.readyState = 1;
  ws.onopen();
  assert.equal(conn.open, true);
  conn.send({ op: "ping", t: 1 });
  assert.deepEqual(ws.out, ['{"op":"ping","t":1}']);
  for (const data of ['{"type":"pong","t":1}', "nope", "[1]", "null", new Uint8Array(2)]) ws.onmessage({ data });
  ws.onerror();
  ws.onclose({ code: 1006, reason: "" });
  conn.close();
  assert.deepEqual(got, ["open", { type: "pong", t: 1 }, ["close", 1006]]);
  assert.equal(ws.closedWith, 1000);
});

test("fallback: WebSocket attempts that end before hello, three in a row: the fallback, then a probe back", async () => {
  const ws = scripted();
  const fb = scripted();
  fb.transport.label = "SSE";
  const c = new TickerClient("ws://h/ws", {
    transport: ws.transport,
    fallback: fb.transport,
    fallbackPolicy: { probeMs: 30 },
    retry: { baseMs: 1, maxMs: 2 },
    connectTimeoutMs: 5000,
  });
  made.push(c);
  const steps = [];
  c.on("status", (s) => steps.push(s.transport));
  c.connect();
  await c.subscribe(["AAPL"]).catch(() => {}); // kept; asked for on whichever transport
  // The proxy refuses the upgrade: each WebSocket closes before its hello.
  for (let i = 0; i < 3; i++) {
    await until(() => ws.links.length === i + 1, `ws attempt ${i + 1}`);
    ws.links[i].hangUp();
  }
  await until(() => fb.links.length === 1, "the fallback dialled");
  assert.equal(ws.links.length, 3);
  assert.equal(fb.links[0].url, "ws://h/ws"); // (the transport maps it to /sse)
  const link = fb.links[0];
  link.accept();
  link.say(HELLO);
  await tick();
  answer(link);
  await until(() => c.session.live, "live over the fallback");
  assert.equal(c.status().transport, "SSE");
  assert.equal(c.session.transport, "SSE");
  assert.deepEqual(link.sent.find((m) => m.op === "subscribe").symbols, ["AAPL"]);
  // The probe: a WebSocket beside the fallback; no hello (still refused): it backs off.
  await until(() => ws.links.length === 4, "a probe");
  assert.equal(c.conn, link, "the fallback stays in use while probing");
  ws.links[3].hangUp();
  await until(() => ws.links.length === 5, "a second probe");
  // This one gets a hello: WebSockets work again; the client moves over and asks again.
  ws.links[4].accept();
  ws.links[4].say(HELLO);
  await until(() => ws.links.length === 6, "redialled over the WebSocket");
  assert.equal(link.open, false, "the fallback was closed");
  const back = ws.links[5];
  back.accept();
  back.say(HELLO);
  await tick();
  answer(back);
  await until(() => c.session.live, "live over the WebSocket");
  assert.equal(c.status().transport, "ws");
  assert.ok(back.sent.some((m) => m.op === "subscribe"));
  assert.ok(steps.includes("SSE") && steps.at(-1) === "ws");
});

test("fallback: a WebSocket that said hello once is redialled as before (no switch on one drop)", async () => {
  const ws = scripted();
  const fb = scripted();
  const c = new TickerClient("ws://h/ws", { transport: ws.transport, fallback: fb.transport, retry: { baseMs: 1, maxMs: 2 } });
  made.push(c);
  c.connect();
  ws.links[0].accept();
  ws.links[0].say(HELLO);
  await tick();
  ws.links[0].hangUp(); // had its hello: an ordinary drop
  await until(() => ws.links.length === 2, "redialled");
  ws.links[1].hangUp();
  await until(() => ws.links.length === 3, "redialled");
  assert.equal(fb.links.length, 0);
});

test("sseTransport: /sse beside /ws, the token as a header, one reopen per turn, the close comment's code", async () => {
  const calls = []; // {url, init, push(text), end()}
  const fakeFetch = async (url, init) => {
    let ctrl;
    const body = new ReadableStream({ start: (c) => (ctrl = c) });
    const call = {
      url,
      init,
      push: (text) => ctrl.enqueue(new TextEncoder().encode(text)),
      end: () => ctrl.close(),
    };
    init.signal?.addEventListener("abort", () => ctrl.error(new Error("aborted")));
    calls.push(call);
    if (url.includes("/api/bars")) {
      return new Response(JSON.stringify({ symbol: "AAPL", interval: "1m", bars: [[60000, 1, 1, 1, 1, 1]] }), { status: 200 });
    }
    return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
  };
  const transport = sseTransport(fakeFetch, { pollMinMs: 60000 });
  assert.equal(transport.label, "SSE");
  const got = [];
  let opened = 0;
  let closed = null;
  const conn = transport("wss://h:8443/ws", ["ticker.v1", "bearer.tok"], {
    open: () => opened++,
    message: (m) => got.push(m),
    close: (code, reason) => (closed = { code, reason }),
  });
  try {
    await sseScript(conn, calls, got, () => opened, () => closed);
  } finally {
    conn.close(); // (its poll timer never outlives the test)
  }
});

async function sseScript(conn, calls, got, opened, closed) {
  await until(() => calls.length === 1, "the stream");
  assert.equal(calls[0].url, "https://h:8443/sse?");
  assert.equal(calls[0].init.headers.Authorization, "Bearer tok");
  assert.equal(calls[0].init.headers.Accept, "text/event-stream");
  calls[0].push(`event: hello\ndata: ${JSON.stringify(HELLO)}\n\n: keep-alive\n\n`);
  await until(() => got.length === 1, "the hello");
  assert.equal(opened(), 1);
  assert.equal(conn.open, true);
  // Two ops in one turn: one reopen, with both in its query; acked at its hello.
  conn.send({ op: "subscribe", symbols: ["AAPL"], id: 1 });
  conn.send({ op: "news", topics: ["*"], since: 5, id: 2 });
  conn.send({ op: "bars", symbol: "AAPL", interval: "1m", limit: 10, id: 3 });
  await until(() => calls.length === 3, "the reopen and the bars request");
  const stream = calls.find((c) => c.url.includes("/sse?symbols"));
  assert.equal(stream.url, "https://h:8443/sse?symbols=AAPL&news=*&since=5");
  assert.equal(calls.find((c) => c.url.includes("/api/bars")).url, "https://h:8443/api/bars?symbol=AAPL&interval=1m&limit=10");
  stream.push(`event: hello\ndata: ${JSON.stringify(HELLO)}\n\nevent: snapshot\ndata: {"type":"snapshot","seq":1,"quotes":{}}\n\n`);
  await until(() => got.some((m) => m.type === "bars"), "the acks, the snapshot and the bars");
  // The answers in the order of the ops (the bars' HTTP answer waited behind the acks), then
  // the new stream's events.
  assert.deepEqual(got.slice(1).map((m) => m.type + (m.id ?? "")), ["ack1", "ack2", "ack3", "bars", "snapshot"]);
  // The server ends the stream (a slow consumer): the link closes with its code.
  stream.push(": close 1013 slow consumer\n");
  stream.end();
  await until(() => closed() !== null, "the close");
  assert.deepEqual(closed(), { code: 1013, reason: "slow consumer" });
  assert.equal(conn.open, false);
}

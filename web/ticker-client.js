// The Ticker client (docs/protocol.md) as one ES module, no build step: served at
// /static/ticker-client.js for pages, and usable from Node >= 20 with the `ws` package (or the
// global WebSocket of Node >= 22, of browsers, of Deno). No DOM, window or page URL in here: the
// dashboard's browser parts (online and visibility events, the page's token) live in client.js.
//
// It connects, takes the hello, asks for what the caller asked for (window, symbols, news,
// live bars) and, after every reconnect (exponential backoff with jitter), asks for it again:
// news `since` the last item delivered, so nothing is missed or repeated across a server restart.
// A `seq` gap sends a `resync`; a link silent past `silenceMs` (our pings included) is dropped
// and redialled. Requests are answered by promise: each op goes out with an `id` and a `ping`
// fence behind it (logic/requests.js); the first `error` the server sends about it rejects the
// promise with a TickerError (`code`, `symbols`, `ack`). The merged book is `client.quotes`.
//
// The I/O shell around the pure Session (logic/session.js), book (logic/book.js) and Requests
// (logic/requests.js). The wire is a small transport interface (`webSocketTransport`), so
// another transport (another encoding, SSE) can be dropped in without touching the rest.
// `sseTransport` is one: `GET /sse` read with fetch, the ops answered by reopening the stream or
// over HTTP (logic/sse.js). Given as `fallback`, it takes over when WebSockets cannot be opened
// (a proxy that refuses `Upgrade`), and a WebSocket is tried again now and then
// (logic/fallback.js).
//
//   import { TickerClient } from "/static/ticker-client.js";      // a page
//   import { TickerClient } from "./web/ticker-client.js";         // Node, with:
//   import WebSocket from "ws";
//   const c = new TickerClient("ws://127.0.0.1:8080/ws", { WebSocket });
//   c.on("quote", ({ symbol, quote }) => ...);  c.on("news", (item) => ...);
//   await c.connect();  await c.subscribe(["AAPL"], { throttleMs: 100 });  await c.news(["*"]);
//   const bars = await c.bars("AAPL", "1m", { limit: 500 });   // [[t, o, h, l, c, v], ...]
//   c.close();

import { wsAuth } from "./logic/access.js";
import { applyDelta, applySnapshot } from "./logic/book.js";
import { Fallback } from "./logic/fallback.js";
import { Requests } from "./logic/requests.js";
import { Session } from "./logic/session.js";
import { SseLink, SseParser, barsQuery, closeComment } from "./logic/sse.js";

/** The defaults (ms): like the Python client's (ticker.client). */
export const DEFAULTS = Object.freeze({
  retry: Object.freeze({ baseMs: 250, maxMs: 5000 }), // backoff: each wait in [cap/2, cap]
  pingEveryMs: 5000, // our heartbeat ping (a silent link shows)
  silenceMs: 15000, // no frame at all for this long: the link is dead
  connectTimeoutMs: 6000, // an opening handshake that takes longer is abandoned
  timeoutMs: 10000, // a request with no answer by then is rejected (`timeout`)
});

/** An `error` frame about a request (docs/protocol.md "Errors"), or the request's loss. */
export class TickerError extends Error {
  /**
   * @param {string} code the error code (`unknown_symbol`, ...; `disconnected` and `timeout`
   *   when no answer will come)
   * @param {string} message
   * @param {{symbols?: string[], ack?: object|null, frame?: object|null}} [more] the symbols
   *   it names; the request's `ack` when part of it was applied (the known symbols of a
   *   `subscribe` that also named unknown ones); the `error` frame itself (e.g. `finest`)
   */
  constructor(code, message, { symbols = [], ack = null, frame = null } = {}) {
    super(`${code}: ${message}`);
    this.name = "TickerError";
    this.code = code;
    this.symbols = Array.isArray(symbols) ? symbols : [];
    this.ack = ack;
    this.frame = frame;
  }
}

/** What the client dispatches: `event.detail` holds the data (CustomEvent's shape). */
export class TickerEvent extends Event {
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

/**
 * The transport interface, and its WebSocket JSON implementation.
 *
 * A transport is `open(url, protocols, handlers) -> connection` where `handlers` is
 * `{open(), message(obj), close(code, reason)}` (`close` once, also when opening failed) and the
 * connection is `{open: boolean, send(obj) -> boolean, close()}`. Messages are decoded
 * objects: the encoding is the transport's business.
 *
 * @param {typeof WebSocket} WebSocketImpl a WHATWG-style WebSocket constructor (the browser's,
 *   Node 22's global, or the `ws` package's default export)
 */
export function webSocketTransport(WebSocketImpl) {
  return (url, protocols, on) => {
    const ws = new WebSocketImpl(url, protocols);
    ws.onopen = () => on.open();
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return; // JSON travels in text frames
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (m !== null && typeof m === "object" && !Array.isArray(m)) on.message(m);
    };
    ws.onerror = () => {}; // a close event follows (and `ws` throws on an unheard error)
    ws.onclose = (ev) => on.close(ev.code, ev.reason);
    return {
      get open() {
        return ws.readyState === 1;
      },
      send(obj) {
        if (ws.readyState !== 1) return false;
        ws.send(JSON.stringify(obj));
        return true;
      },
      close() {
        ws.close(1000);
      },
    };
  };
}

/**
 * The Server-Sent Events transport: `GET /sse` (docs/protocol.md), read with `fetch` (a
 * streamed body), for where a WebSocket cannot be opened. Given the client's WebSocket URL
 * (`ws://host/ws`), it reads `http://host/sse` and asks `http://host/api/bars`. The stream is one
 * way: an op that changes what the client asks for (`subscribe`, `unsubscribe`, `news`,
 * `throttle`, `fields`, `resync`) reopens the stream with the new query (the ops of one turn
 * together: one reopen) and is acknowledged at the new stream's hello; news resumes with `since`
 * the last item delivered. `bars` is answered by `GET /api/bars`; a live bars stream is polled
 * at the window (at least every `pollMinMs`, 1 s), sending `bar` for the bars that changed (a
 * fresh `bars` when the history went back, as after a replay seek). `ping` is answered while the
 * stream is alive (its keep-alive comment comes every 15 s), so a dead stream is still noticed.
 *
 * Why fetch and not `EventSource`: the token goes in an `Authorization` header (an EventSource
 * could only put it in the URL, where proxies log it), the keep-alive comments are seen (a
 * silent link shows), reconnecting stays the client's (its backoff, its fallback decision), and
 * the same code runs in Node >= 20 (tests/js/client.int.test.mjs) and in browsers.
 *
 * @param {typeof fetch} fetchImpl a WHATWG fetch whose response bodies stream (browsers',
 *   Node >= 18's global)
 * @param {{pollMinMs?: number, aliveMs?: number, now?: () => number}} [opts]
 */
export function sseTransport(fetchImpl, opts = {}) {
  if (typeof fetchImpl !== "function") throw new TypeError("sseTransport(fetchImpl): a function");
  const clock = opts.now ?? (() => Date.now());
  const transport = (url, protocols, on) => {
    const link = new SseLink(opts);
    const u = new URL(url);
    const http = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
    const prefix = `${http}//${u.host}${u.pathname.replace(/\/ws$/, "")}`;
    const token = u.searchParams.get("token");
    const tokenQuery = token === null ? "" : `token=${encodeURIComponent(token)}`;
    const withToken = (q) => [q, tokenQuery].filter(Boolean).join("&");
    const auth = {};
    const bearer = (protocols ?? []).find((p) => p.startsWith("bearer."));
    if (bearer) auth.Authorization = `Bearer ${bearer.slice("bearer.".length)}`;

    let isOpen = false;
    let closed = false;
    let current = null; // the AbortController of the stream being read
    let reopenQueued = false;
    let pollTimer = null;
    const polling = new Set(); // poll keys in flight

    const deliver = (msgs) => {
      for (const m of msgs) if (!closed) on.message(m);
    };
    const finish = (code, reason) => {
      if (closed) return;
      closed = true;
      isOpen = false;
      if (current) current.abort();
      clearTimeout(pollTimer);
      on.close(code, reason);
    };
    const get = async (path, query, init = {}) => {
      const r = await fetchImpl(`${prefix}${path}?${withToken(query)}`, {
        ...init,
        headers: { ...auth, ...(init.headers ?? {}) },
        cache: "no-store",
      });
      return r;
    };
    const json = async (r) => {
      try {
        return await r.json();
      } catch {
        return null;
      }
    };

    async function read(gen, query, ctrl) {
      let r;
      try {
        r = await get("/sse", query, { headers: { Accept: "text/event-stream" }, signal: ctrl.signal });
      } catch {
        if (gen === link.gen) finish(1006, "unreachable");
        return;
      }
      if (gen !== link.gen || closed) {
        ctrl.abort();
        return;
      }
      if (r.status === 400 && isOpen) {
        // The new query was refused (`too_many_symbols`, ...): its ops fail, the last good
        // query is opened again.
        const { msgs, reopen } = link.refused(gen, await json(r));
        deliver(msgs);
        if (reopen) openStream();
        else finish(1008, "refused");
        return;
      }
      if (!r.ok || !r.body) {
        finish(1006, `HTTP ${r.status}`);
        return;
      }
      if (!isOpen) {
        isOpen = true;
        on.open();
      }
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      let end = null;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || gen !== link.gen || closed) break;
          link.bytes(clock());
          for (const item of parser.push(decoder.decode(value, { stream: true }))) {
            if (item.kind === "comment") {
              end = closeComment(item.text) ?? end;
              continue;
            }
            let obj;
            try {
              obj = JSON.parse(item.data);
            } catch {
              continue;
            }
            deliver(link.event(gen, item.event, obj));
          }
        }
      } catch {
        // aborted (a newer stream took over) or reset: below
      }
      if (gen === link.gen) finish(end?.code ?? 1006, end?.reason ?? "stream ended");
    }

    function openStream() {
      if (current) current.abort();
      const ctrl = new AbortController();
      current = ctrl;
      const query = link.reopen();
      read(link.gen, query, ctrl);
    }

    function queueReopen() {
      if (reopenQueued) return;
      reopenQueued = true;
      queueMicrotask(() => {
        reopenQueued = false;
        if (!closed && link.dirty) openStream();
      });
    }

    async function answerBars(req) {
      let status = 0;
      let body = null;
      try {
        const r = await get("/api/bars", barsQuery(req));
        status = r.status;
        body = await json(r);
      } catch {
        // unreachable: answered as an error below
      }
      if (closed) return;
      deliver(link.barsAnswer(req, status, body));
      schedulePoll();
    }

    function schedulePoll() {
      if (closed || pollTimer !== null || link.streams.size === 0) return;
      pollTimer = setTimeout(() => {
        pollTimer = null;
        poll();
        schedulePoll();
      }, link.pollMs());
    }

    function poll() {
      for (const { key, query } of link.polls()) {
        if (polling.has(key)) continue;
        polling.add(key);
        (async () => {
          try {
            const body = await json(await get("/api/bars", query));
            if (closed) return;
            const { msgs, reset } = link.polled(key, body?.bars);
            deliver(msgs);
            const again = reset ? link.refetchQuery(key) : null;
            if (again !== null) {
              const whole = await json(await get("/api/bars", again));
              if (!closed) deliver(link.refetched(key, whole?.bars));
            }
          } catch {
            // the next poll tries again
          } finally {
            polling.delete(key);
          }
        })();
      }
    }

    openStream();
    return {
      get open() {
        return isOpen && !closed;
      },
      send(obj) {
        if (!isOpen || closed) return false;
        const { reopen, bars } = link.send(obj, clock());
        if (reopen) queueReopen();
        if (bars) answerBars(bars);
        const msgs = link.drain();
        // Answered after this turn, as a server would: the caller registers the request first.
        if (msgs.length) queueMicrotask(() => deliver(msgs));
        return true;
      },
      close() {
        queueMicrotask(() => finish(1000, ""));
      },
    };
  };
  transport.label = "SSE";
  return transport;
}

const quiet = () => {};

export class TickerClient extends EventTarget {
  /**
   * @param {string} url the server's WebSocket URL, `ws://host:port/ws` (`wss://` behind TLS)
   * @param {object} [opts]
   * @param {string|null} [opts.token] a client token (sent as the subprotocol `bearer.<token>`,
   *   or as `?token=` when it has characters a subprotocol cannot carry)
   * @param {typeof WebSocket} [opts.WebSocket] the WebSocket constructor (default: the global)
   * @param {Function} [opts.transport] a transport (see webSocketTransport) instead
   * @param {Function} [opts.fallback] a transport for when the WebSocket cannot be opened
   *   (`sseTransport(fetch)`): taken after a few attempts in a row end before the hello; a
   *   WebSocket is tried again now and then (logic/fallback.js)
   * @param {{after?: number, probeMs?: number, probeMaxMs?: number}} [opts.fallbackPolicy]
   * @param {boolean} [opts.reconnect] reconnect when the link drops (default true)
   * @param {{baseMs?: number, maxMs?: number}} [opts.retry] the reconnect backoff
   * @param {(hello: object, client: TickerClient) => (void|Promise<void>)} [opts.setup] runs
   *   after every hello, after the client asked again for what it holds; the requests it
   *   makes (awaited or not) are part of the handshake: the status is `live` once every one
   *   is answered
   * @param {() => number} [opts.now] the clock (ms since the epoch)
   * @param {number} [opts.pingEveryMs] @param {number} [opts.silenceMs]
   * @param {number} [opts.connectTimeoutMs] @param {number} [opts.timeoutMs]
   */
  constructor(url, opts = {}) {
    super();
    this.url = url;
    this.token = opts.token ?? null;
    const WS = opts.WebSocket ?? globalThis.WebSocket;
    this.transport = opts.transport ?? (WS ? webSocketTransport(WS) : null);
    if (!this.transport) {
      throw new TypeError("no WebSocket: pass {WebSocket} (e.g. `import WebSocket from 'ws'`)");
    }
    this.fallback = opts.fallback ?? null;
    this.choice = new Fallback(opts.fallbackPolicy);
    this.opts = { ...DEFAULTS, ...opts };
    this.reconnect = opts.reconnect ?? true;
    this.setup = opts.setup ?? null;
    this.now = opts.now ?? (() => Date.now());
    this.random = opts.random ?? Math.random;

    /** @type {Map<string, object>} symbol -> the merged quote, always current */
    this.quotes = new Map();
    this.session = new Session(() => this.emit("status", this.status()), this.opts.retry);
    this.requests = new Requests();
    this.hello = null; // the last hello
    this.serverThrottle = null; // the window the server confirmed (ms)
    this.connects = 0; // hellos received

    // What the caller asked for: asked for again after every reconnect.
    this.window = null; // ms
    this.symbols = new Set(); // as asked ("*" included)
    this.excluded = new Set(); // unsubscribed while "*" is
    this.topics = null; // news topics (null: no news)
    this.streams = new Map(); // "symbol interval" -> live bars request

    this.conn = null;
    this.via = null; // the fallback's label while the connection uses it (null: the WebSocket)
    this.greeted = false; // this connection had its hello
    this.probeTimer = null;
    this.handshake = null; // the requests of the handshake in progress (null: none)
    this.lastFrameAt = 0;
    this.retryTimer = null;
    this.connectTimer = null;
    this.pingTimer = null;
    this.fenceQueued = false;
    this.started = false;
    this.closed = false;
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(quiet);
  }

  // Events

  emit(type, detail) {
    this.dispatchEvent(new TickerEvent(type, detail));
  }

  /**
   * Listen to `type` with `fn(detail)`; returns the function that stops it. Types: `quote`
   * ({symbol, quote, changes, snapshot, prevPrice, wHigh, wLow, wCount}), `snapshot`
   * ({seq, symbols}), `delta` ({seq, t, updates}), `news` (the item), `bars` and `bar` (the
   * messages), `hello`, `status` ({step, live, attempt, retryAt, rtt}), `error` (every `error`
   * frame, those that reject a request included).
   */
  on(type, fn) {
    const h = (ev) => fn(ev.detail);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  /** The connection's state: step (`connecting`, `handshake`, `subscribing`, `live`, `waiting`,
   * `reconnecting`, `closed`), live, failed attempts, when the next one is due, round trip, and
   * `transport` (`ws`, or the fallback's label: `SSE`). */
  status() {
    const s = this.session;
    const transport = this.via ?? "ws";
    return { step: s.step, live: s.live, attempt: s.attempt, retryAt: s.retryAt, rtt: s.rtt, transport };
  }

  // Lifecycle

  /**
   * Start (or, when the link is down, dial now instead of waiting for the backoff). Resolves
   * with the first hello; it keeps trying until then. Rejects only when closed first.
   * @returns {Promise<object>}
   */
  connect() {
    if (this.closed) return Promise.reject(new TickerError("closed", "client closed"));
    if (!this.started) {
      this.started = true;
      this.pingTimer = setInterval(() => this.heartbeat(), this.opts.pingEveryMs);
    }
    if (!this.conn) this.dial();
    return this.ready;
  }

  /** Close the link and stop: pending requests reject (`disconnected`), no reconnect. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.probeTimer);
    const conn = this.conn;
    this.conn = null;
    if (conn) conn.close();
    this.session.closed();
    this.requests.dropAll();
    this.readyReject(new TickerError("closed", "client closed"));
    this.session.setStep("closed");
  }

  dial() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const fallback = this.fallback !== null && this.choice.active;
    this.via = fallback ? (this.fallback.label ?? "fallback") : null;
    this.session.transport = this.via;
    this.greeted = false;
    this.session.begin();
    this.handshake = null;
    const transport = fallback ? this.fallback : this.transport;
    const { protocols, url } = this.target();
    let conn = null;
    const handlers = {
      open: () => {
        if (this.conn !== conn) return;
        clearTimeout(this.connectTimer);
        this.lastFrameAt = this.now();
        this.session.setStep("handshake");
      },
      message: (m) => {
        if (this.conn !== conn) return;
        this.lastFrameAt = this.now();
        this.onMessage(m, conn);
      },
      close: () => {
        if (this.conn === conn) this.lost();
      },
    };
    try {
      conn = transport(url, protocols, handlers);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.conn = conn;
    this.connectTimer = setTimeout(() => {
      if (this.conn === conn && !conn.open) this.drop(conn);
    }, this.opts.connectTimeoutMs);
  }

  /** Give up on `conn` ourselves (silent, or its handshake too slow): its close won't count. */
  drop(conn) {
    this.session.dropped();
    this.lost();
    conn.close();
  }

  /** The URL and subprotocols to dial, with the token (logic/access.js). */
  target() {
    const { protocols, query } = wsAuth(this.token);
    const url = query ? this.url + (this.url.includes("?") ? "&" : "?") + query.slice(1) : this.url;
    return { protocols, url };
  }

  /** The link is gone: its requests fail; reconnect after the backoff. */
  lost() {
    clearTimeout(this.connectTimer);
    clearTimeout(this.probeTimer);
    this.conn = null;
    this.handshake = null;
    this.session.closed();
    this.requests.dropAll();
    if (this.closed) return;
    if (!this.reconnect) {
      this.close();
      return;
    }
    // Attempts that end before their hello, a few in a row: the other transport, at once.
    if (this.fallback !== null && !this.greeted && this.choice.failed()) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.dial(), 0);
      return;
    }
    this.scheduleReconnect();
  }

  // The fallback

  /** While live on the fallback: a WebSocket probe after the policy's delay. */
  scheduleProbe() {
    clearTimeout(this.probeTimer);
    this.probeTimer = null;
    if (this.closed || this.via === null) return;
    this.probeTimer = setTimeout(() => this.probe(), this.choice.probeDelay());
  }

  /** Open a WebSocket beside the fallback: its hello moves the client back to WebSockets. */
  probe() {
    this.probeTimer = null;
    if (this.closed || this.via === null || this.conn === null) return;
    const { protocols, url } = this.target();
    let settled = false;
    let conn = null;
    let timer = null;
    const end = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (conn) conn.close();
      if (this.closed || this.via === null) return;
      if (!ok) {
        this.choice.probeFailed();
        this.scheduleProbe();
        return;
      }
      this.choice.probeOk();
      // Over to the WebSocket: the new connection asks again for everything (news `since`).
      const old = this.conn;
      if (old) {
        this.session.dropped();
        this.lost();
        old.close();
      }
      if (!this.closed) this.dial();
    };
    try {
      conn = this.transport(url, protocols, {
        open: () => {},
        message: (m) => {
          if (m.type === "hello") end(true);
        },
        close: () => end(false),
      });
    } catch {
      end(false);
      return;
    }
    timer = setTimeout(() => end(false), this.opts.connectTimeoutMs);
  }

  scheduleReconnect() {
    const delay = this.session.retry(this.now(), this.random);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.dial(), delay);
  }

  heartbeat() {
    const conn = this.conn;
    if (!conn || !conn.open) return;
    if (this.now() - this.lastFrameAt > this.opts.silenceMs) {
      // A dead link can take minutes to report its close: drop it and reconnect now.
      this.drop(conn);
      return;
    }
    conn.send({ op: "ping", t: this.now() });
  }

  // Requests

  /** Send a message as it is (no id, no answer awaited). False when not connected. */
  send(obj) {
    const conn = this.conn;
    return conn !== null && conn.open && conn.send(obj);
  }

  /**
   * Send an op with a fresh `id`. Resolves with its `ack` (a `bars` request's with `bars`),
   * once everything the server says about it is in; rejects with a TickerError on its first
   * `error` frame, or `disconnected` (not connected, or the link dropped first), or `timeout`.
   * The promise carries the request's `id` (null when not sent).
   * @returns {Promise<object> & {id: number|null}}
   */
  request(obj) {
    let resolve;
    let reject;
    const p = /** @type {Promise<object> & {id: number|null}} */ (
      new Promise((res, rej) => {
        resolve = res;
        reject = rej;
      })
    );
    const conn = this.conn;
    if (conn === null || !conn.open || !this.session.connected) {
      p.id = null;
      reject(new TickerError("disconnected", "not connected"));
      return p;
    }
    let timer = null;
    const msg = this.requests.open(obj, (o) => {
      clearTimeout(timer);
      if (o.lost) reject(new TickerError(o.lost, `no answer to ${obj.op}`, { ack: o.ack }));
      else if (o.errors.length) {
        const e = o.errors[0];
        const more = { symbols: e.symbols, ack: o.ack, frame: e };
        reject(new TickerError(String(e.code), String(e.message ?? ""), more));
      } else resolve(obj.op === "bars" ? { ...o.ack, bars: o.bars ?? [] } : (o.ack ?? {}));
    });
    timer = setTimeout(() => this.requests.expire(msg.id), this.opts.timeoutMs);
    conn.send(msg);
    this.queueFence();
    if (this.handshake !== null) this.handshake.push(p.catch(quiet));
    p.id = msg.id;
    return p;
  }

  /** One `ping` behind every request sent in this turn of the event loop. */
  queueFence() {
    if (this.fenceQueued) return;
    this.fenceQueued = true;
    queueMicrotask(() => {
      this.fenceQueued = false;
      const f = this.requests.fence();
      if (f !== null) this.send(f);
    });
  }

  /**
   * Subscribe to `symbols` (`"*"`: all, current and future), the window first when given.
   * Kept: asked for again after a reconnect, even while not connected now.
   * @returns {Promise<string[]>} the symbols subscribed (the server's names)
   */
  async subscribe(symbols, { throttleMs } = {}) {
    const names = [...symbols];
    for (const s of names) {
      this.symbols.add(s);
      this.excluded.delete(s);
    }
    if (throttleMs !== undefined) await this.throttle(throttleMs);
    const ack = await this.request({ op: "subscribe", symbols: names });
    return ack.symbols ?? [];
  }

  /** Stop receiving `symbols` (kept: not asked for again after a reconnect). */
  async unsubscribe(symbols) {
    const names = [...symbols];
    for (const s of names) {
      if (s === "*") {
        this.symbols.clear();
        this.excluded.clear();
      } else if (this.symbols.has("*")) this.excluded.add(s);
      this.symbols.delete(s);
    }
    return this.request({ op: "unsubscribe", symbols: names });
  }

  /**
   * News on `topics` (symbols, or `"*"`; `[]` stops it). With `since`, first every retained item
   * after that id; without, from the last item delivered (or from now). Kept: a reconnect asks
   * again `since` the last item delivered, and an item is never delivered twice.
   * @returns {Promise<object>} the ack (`topics`, `oldest_id`, `last_id`)
   */
  async news(topics, { since } = {}) {
    const list = [...topics];
    this.topics = list.length ? list : null;
    const s = this.session;
    if (since !== undefined && since !== null) s.newsCursor = since;
    const req = { op: "news", topics: list };
    if (s.newsCursor !== null) req.since = s.newsCursor;
    const ack = await this.request(req);
    // Asked from now: the stream starts after the server's last item, and so does a resume.
    if (s.newsCursor === null && typeof ack.last_id === "number") s.newsCursor = ack.last_id;
    return ack;
  }

  /** Set the window (ms; 0: every update). Kept. @returns {Promise<number>} the effective ms */
  async throttle(ms) {
    this.window = ms;
    const ack = await this.request({ op: "throttle", ms });
    if (typeof ack.ms === "number") {
      this.serverThrottle = ack.ms;
      this.emit("status", this.status());
    }
    return ack.ms ?? ms;
  }

  /** A fresh `snapshot` of everything subscribed. */
  resync() {
    return this.request({ op: "resync" });
  }

  /**
   * Bars of `symbol` (`[[t, open, high, low, close, volume], ...]`, oldest first). With
   * `live`, `bar` events follow (and a fresh `bars` event whenever the stream starts over); the
   * stream is kept: asked for again after a reconnect until `unbars`.
   * @returns {Promise<number[][]>}
   */
  async bars(symbol, interval = "1m", { limit = 500, before, live = false } = {}) {
    const req = { op: "bars", symbol, interval, limit, live };
    if (before !== undefined) req.before = before;
    if (live && before === undefined) this.streams.set(`${symbol} ${interval}`, req);
    const ack = await this.request(req);
    return ack.bars;
  }

  /** Stop a live bars stream. */
  unbars(symbol, interval) {
    this.streams.delete(`${symbol} ${interval}`);
    return this.request({ op: "unbars", symbol, interval });
  }

  // Frames

  onMessage(m, conn) {
    switch (m.type) {
      case "hello":
        return this.onHello(m, conn);
      case "snapshot":
        return this.onSnapshot(m);
      case "delta":
        return this.onDelta(m);
      case "news":
        if (this.session.news(m.id)) this.emit("news", m);
        return undefined;
      case "bars":
        this.requests.bars(m);
        return this.emit("bars", m);
      case "bar":
        return this.emit("bar", m);
      case "ack":
        this.requests.ack(m);
        return undefined;
      case "pong":
        if (!this.requests.pong(m)) this.session.pong(m, this.now());
        return undefined;
      case "error":
        this.requests.error(m);
        return this.emit("error", m);
      default:
        return undefined;
    }
  }

  async onHello(m, conn) {
    const s = this.session;
    this.hello = m;
    this.serverThrottle = typeof m.throttle_ms === "number" ? m.throttle_ms : null;
    this.connects++;
    this.handshake = [];
    this.greeted = true;
    this.choice.hello();
    if (this.via !== null) this.scheduleProbe();
    s.hello();
    this.restore(m);
    this.emit("hello", m);
    this.readyResolve(m);
    if (this.setup) {
      try {
        await this.setup(m, this);
      } catch (err) {
        this.emit("error", { type: "error", code: "setup", message: String(err) });
      }
    }
    // Live once every request of the handshake is answered (those made while waiting too).
    while (this.conn === conn && this.handshake !== null && this.handshake.length) {
      const batch = this.handshake;
      this.handshake = [];
      await Promise.all(batch);
    }
    if (this.conn !== conn) return;
    this.handshake = null;
    s.ready();
  }

  /** After a reconnect: the window, the symbols, the news (since the last item), the bars. */
  restore(hello) {
    if (this.window !== null && this.window !== hello.throttle_ms) {
      this.throttle(this.window).catch(quiet);
    }
    if (this.symbols.size) this.subscribe([...this.symbols]).catch(quiet);
    if (this.excluded.size) {
      this.request({ op: "unsubscribe", symbols: [...this.excluded] }).catch(quiet);
    }
    if (this.topics !== null) this.news(this.topics).catch(quiet);
    for (const req of this.streams.values()) this.request(req).catch(quiet);
  }

  onSnapshot(m) {
    this.session.snapshot(m.seq);
    const quotes = m.quotes || {};
    const symbols = applySnapshot(this.quotes, quotes);
    for (const symbol of symbols) {
      const quote = this.quotes.get(symbol);
      this.emit("quote", { symbol, quote, changes: quotes[symbol], snapshot: true });
    }
    this.emit("snapshot", { seq: m.seq, symbols });
  }

  onDelta(m) {
    if (this.session.delta(m.seq)) this.send({ op: "resync" });
    const updates = applyDelta(this.quotes, m.quotes || {});
    for (const u of updates) this.emit("quote", u);
    this.emit("delta", { seq: m.seq, t: m.t, updates });
  }
}

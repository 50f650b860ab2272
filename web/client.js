// The dashboard's side of the protocol client: a thin browser adapter over ticker-client.js
// (connect, hello, throttle, subscribe, news `since` resume, resync on a seq gap, reconnect with
// backoff, a silent link dropped: all there). What is the browser's stays here: the page's URL
// and token, the `online` event (retry now), the hidden tab's slow window, the first news over
// HTTP, and the hooks that tell the features what came in. Where the WebSocket cannot be
// opened (a proxy that refuses `Upgrade`), the client falls back to Server-Sent Events
// (`sseTransport`: the status says `live · SSE`) and tries the WebSocket again now and then.

import { CLIENT_TOKEN, api } from "./api.js";
import { now } from "./dom.js";
import { desiredWindow } from "./logic/connection.js";
import { RETRY } from "./logic/session.js";
import { TickerClient, sseTransport } from "./ticker-client.js";

const quiet = () => {};
const PROBE_MS = 1000; // while the link is down: is the server back? (then connect at once)

/**
 * @typedef {object} ClientHooks
 * @property {() => void} status the session's step or the server's throttle changed
 * @property {(hello: object) => void} hello a hello, before this connection subscribes
 * @property {() => string[]} watchlist the symbols to subscribe to (first connection)
 * @property {(symbols: string[]) => void} snapshot these symbols' quotes were replaced
 * @property {(updates: object[]) => void} delta a delta's updates (logic/book.js applyDelta)
 * @property {(item: object, live: boolean) => void} news a news item (live: from the stream)
 * @property {(msg: object) => void} bars a `bars` message (a chart's bars, replacing what it holds)
 * @property {(msg: object) => void} bar a `bar` message (one bar of a live `bars` stream)
 * @property {(msg: object) => void} error an `error` message
 * @property {() => void} resumed the news stream was asked for (the handshake is complete)
 */

export class Client {
  /** @param {ClientHooks} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.windowMs = null; // this tab's chosen window (null: the server default)
    this.serverDefault = null;
    this.subscribed = false; // the watchlist was asked for (the client keeps it from then on)
    this.probing = false; // a /healthz probe is in flight (the link is down)
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const tc = new TickerClient(`${proto}//${location.host}/ws`, {
      token: CLIENT_TOKEN,
      WebSocket,
      fallback: sseTransport((url, init) => fetch(url, init)),
      retry: RETRY,
      now,
      setup: (m) => this.setup(m),
    });
    this.tc = tc;
    this.book = tc.quotes;
    this.session = tc.session;
    tc.on("status", () => hooks.status());
    tc.on("snapshot", (d) => hooks.snapshot(d.symbols));
    tc.on("delta", (d) => hooks.delta(d.updates));
    tc.on("news", (item) => hooks.news(item, true));
    tc.on("bars", (m) => hooks.bars(m));
    tc.on("bar", (m) => hooks.bar(m));
    tc.on("error", (m) => hooks.error(m));
  }

  /** When the last frame arrived (wall clock, ms; 0: none yet): the offline "as of". */
  get lastFrameAt() {
    return this.tc.lastFrameAt;
  }

  /** The window the server confirmed (ms; null before the first hello). */
  get serverThrottle() {
    return this.tc.serverThrottle;
  }

  /** Browser events: back online retries at once; a hidden tab asks for a slow window. */
  wire() {
    window.addEventListener("online", () => {
      if (!this.tc.conn) this.connect();
    });
    // A hidden tab asks for a slow window; back in view it asks for its own again, and the
    // server answers a window change with a fresh snapshot: the catch-up.
    document.addEventListener("visibilitychange", () => this.sendThrottle());
    // While the link is down, a cheap probe each second: the moment the server answers, connect
    // (live again within about a second of its return, whatever the backoff's next wait).
    setInterval(() => this.probe(), PROBE_MS);
  }

  async probe() {
    if (this.probing || this.tc.session.connected || this.tc.conn) return;
    this.probing = true;
    try {
      const r = await fetch("/healthz", { cache: "no-store", signal: AbortSignal.timeout(900) });
      if (r.ok && !this.tc.session.connected && !this.tc.conn) this.connect();
    } catch {
      /* still down */
    } finally {
      this.probing = false;
    }
  }

  connect() {
    this.tc.connect().catch(quiet);
  }

  /** Every hello: the features learn the symbols; the first connection asks for the
   * watchlist, the window and the news (the client asks again for them after a reconnect). */
  async setup(m) {
    const tc = this.tc;
    this.serverDefault = m.throttle_ms;
    this.hooks.hello(m);
    const wanted = this.wantedWindow();
    if (tc.window === null && wanted !== m.throttle_ms) tc.throttle(wanted).catch(quiet);
    if (!this.subscribed) {
      this.subscribed = true;
      const symbols = this.hooks.watchlist();
      if (symbols.length) tc.subscribe(symbols).catch(quiet);
    }
    if (tc.topics === null) {
      const connects = tc.connects;
      await this.latestNews(m);
      if (tc.connects !== connects || !tc.session.connected) return; // the next hello asks
      tc.news(["*"], { since: tc.session.newsCursor }).catch(quiet);
    }
    this.hooks.resumed();
  }

  /** First connection: the latest items over HTTP; the stream resumes after them. */
  async latestNews(hello) {
    const s = this.tc.session;
    if (s.newsCursor !== null) return;
    try {
      const r = await api("/api/news?limit=100");
      const body = await r.json();
      const items = body.items || [];
      for (const it of items) if (typeof it.id === "number") this.hooks.news(it, false);
      s.resumeAfter(items, body.last_id);
    } catch {
      s.newsCursor = hello.news_last_id ?? 0;
    }
  }

  send(msg) {
    return this.tc.send(msg);
  }

  /** Send an op with a fresh `id` (returned: its `ack` or `error` carries it; null: offline). */
  request(msg) {
    const p = this.tc.request(msg);
    p.catch(quiet); // its `error` reaches the hooks
    return p.id;
  }

  subscribe(symbols) {
    this.tc.subscribe(symbols).catch(quiet);
  }

  unsubscribe(symbols) {
    this.tc.unsubscribe(symbols).catch(quiet);
  }

  /** The window to show in the window control (this tab's, else the server's default). */
  shownWindow() {
    return desiredWindow(false, this.windowMs, this.serverDefault);
  }

  /** This tab's window changed (ms): the server is told at once when connected. */
  setWindow(ms) {
    this.windowMs = ms;
    this.sendThrottle();
  }

  /** The window to ask the server for now (a hidden tab asks for a slow one). */
  wantedWindow() {
    return desiredWindow(document.hidden, this.windowMs, this.serverDefault);
  }

  /** Ask for the wanted window (kept by the client across reconnects), once a hello told the
   * server's default. */
  sendThrottle() {
    if (this.serverDefault === null) return;
    this.tc.throttle(this.wantedWindow()).catch(quiet);
  }
}

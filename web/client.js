// The WebSocket protocol client (docs/protocol.md): connect, hello, throttle, subscribe, news
// resume (`since`), resync on a seq gap, reconnect with backoff, drop a silent link. The I/O
// shell around the pure Session (logic/session.js) and book (logic/book.js): the socket, the
// timers, and the one fetch of the first news. What the data means is the hooks' business.

import { WS_AUTH, api } from "./api.js";
import { now } from "./dom.js";
import { applyDelta, applySnapshot } from "./logic/book.js";
import { desiredWindow } from "./logic/connection.js";
import { Session } from "./logic/session.js";

const PING_EVERY_MS = 5000;
const SILENCE_MS = 15000; // no frame at all for this long (pings included): the link is dead
const CONNECT_TIMEOUT_MS = 6000;

/**
 * @typedef {object} ClientHooks
 * @property {() => void} status the session's step or the server's throttle changed
 * @property {(hello: object) => void} hello a hello, before this connection subscribes
 * @property {() => string[]} watchlist the symbols to subscribe to
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
    this.session = new Session(() => hooks.status());
    this.book = new Map(); // symbol -> quote
    this.ws = null;
    this.retryTimer = null;
    this.lastFrameAt = 0;
    this.windowMs = null; // this tab's chosen window (null: the server default)
    this.serverDefault = null;
    this.serverThrottle = null;
  }

  /** Listeners and the liveness ping; then connect(). */
  wire() {
    window.addEventListener("online", () => {
      if (!this.ws) this.connect();
    });
    // A hidden tab asks for a slow window; back in view it asks for its own again, and the
    // server answers a window change with a fresh snapshot: the catch-up.
    document.addEventListener("visibilitychange", () => {
      if (this.session.connected) this.sendThrottle();
    });
    // Liveness: our pings make a silent link visible (the server's WebSocket pings are not).
    setInterval(() => this.heartbeat(), PING_EVERY_MS);
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws${WS_AUTH.query}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.session.begin();
    let ws;
    try {
      ws = new WebSocket(this.url(), WS_AUTH.protocols);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    const timer = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(timer);
      this.lastFrameAt = now();
      this.session.setStep("handshake");
    };
    ws.onmessage = (ev) => {
      this.lastFrameAt = now();
      this.onMessage(JSON.parse(ev.data));
    };
    ws.onclose = () => {
      clearTimeout(timer);
      if (this.ws !== ws) return;
      this.ws = null;
      this.session.closed();
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    const delay = this.session.retry(now());
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  heartbeat() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (now() - this.lastFrameAt > SILENCE_MS) {
      // A dead link can take minutes to report its close: drop it and reconnect now.
      this.ws = null;
      this.session.dropped();
      ws.close();
      this.scheduleReconnect();
      return;
    }
    this.send({ op: "ping", t: now() });
  }

  send(obj) {
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  /** Send an op with a fresh `id` (returned: its `ack` or `error` carries it). */
  request(obj, onAck) {
    const msg = this.session.request(obj, onAck);
    this.send(msg);
    return msg.id;
  }

  subscribe(symbols) {
    this.request({ op: "subscribe", symbols });
  }

  unsubscribe(symbols) {
    this.send({ op: "unsubscribe", symbols });
  }

  /** The window to show in the window control (this tab's, else the server's default). */
  shownWindow() {
    return desiredWindow(false, this.windowMs, this.serverDefault);
  }

  /** This tab's window changed (ms): the server is told at once when connected. */
  setWindow(ms) {
    this.windowMs = ms;
    if (this.session.connected) this.sendThrottle();
  }

  /** The window to ask the server for now (a hidden tab asks for a slow one). */
  wantedWindow() {
    return desiredWindow(document.hidden, this.windowMs, this.serverDefault);
  }

  sendThrottle() {
    const ms = this.wantedWindow();
    this.request({ op: "throttle", ms }, (ack) => {
      this.serverThrottle = ack.ms;
      this.hooks.status();
    });
  }

  onMessage(m) {
    switch (m.type) {
      case "hello":
        return this.onHello(m);
      case "snapshot":
        return this.onSnapshot(m);
      case "delta":
        return this.onDelta(m);
      case "news":
        return this.onNews(m, true);
      case "bars":
        return this.hooks.bars(m);
      case "bar":
        return this.hooks.bar(m);
      case "ack":
        return this.session.ack(m);
      case "pong":
        return this.session.pong(m, now());
      case "error":
        return this.hooks.error(m);
      default:
        return undefined;
    }
  }

  async onHello(m) {
    const s = this.session;
    s.hello();
    this.serverDefault = m.throttle_ms;
    this.serverThrottle = m.throttle_ms;
    this.hooks.hello(m);
    // Order matters: throttle before subscribe, so the subscribe's snapshot is the only one.
    if (this.wantedWindow() !== m.throttle_ms) this.sendThrottle();
    s.setStep("subscribing");
    const symbols = this.hooks.watchlist();
    if (symbols.length) {
      this.request({ op: "subscribe", symbols }, (ack) => {
        // No known symbol among them: no snapshot will come, and none is needed.
        if (!ack.symbols || ack.symbols.length === 0) s.snapshotSkipped();
      });
    } else {
      s.snapshotSkipped();
    }
    const ws = this.ws;
    await this.resumeNews(m);
    if (this.ws !== ws) return; // that connection is gone; the next hello resumes
    s.setStep("news");
    this.request({ op: "news", topics: ["*"], since: s.newsCursor }, () => s.newsAcked());
    this.hooks.resumed();
  }

  async resumeNews(hello) {
    const s = this.session;
    if (s.newsCursor !== null) return;
    // First connection: the latest items over HTTP, then the stream from there on.
    try {
      const r = await api("/api/news?limit=100");
      const body = await r.json();
      const items = body.items || [];
      for (const it of items) this.onNews(it, false);
      s.resumeAfter(items, body.last_id);
    } catch {
      s.newsCursor = hello.news_last_id ?? 0;
    }
  }

  onSnapshot(m) {
    const s = this.session;
    s.snapshot(m.seq);
    this.hooks.snapshot(applySnapshot(this.book, m.quotes || {}));
    s.snapshotApplied();
  }

  onDelta(m) {
    if (this.session.delta(m.seq)) this.send({ op: "resync" });
    this.hooks.delta(applyDelta(this.book, m.quotes || {}));
  }

  onNews(item, live) {
    if (typeof item.id !== "number") return;
    this.session.news(item.id);
    this.hooks.news(item, live);
  }
}

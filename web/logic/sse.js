// The client's side of `GET /sse` (docs/protocol.md "Server-Sent Events"): the event-stream
// parser, and the link that makes a one-way stream look like a connection to the client
// (ticker-client.js). The stream's query stands for the requests (`symbols`, `news` and `since`,
// `throttle_ms`, `max_bps`, `fields`); the client still sends ops, and the link answers each:
// an op that changes the query asks for the stream to be reopened with the new query and is
// acknowledged once the new stream says hello (a `resync` reopens it too); `bars` is answered
// over HTTP (`GET /api/bars`), and a live bars stream is polled (the SSE stream carries no bars);
// a `ping` gets its `pong` in order, behind the answers before it. Every stream starts its own
// `seq` at 1: the link renumbers, so the client sees one stream without gaps.
// Pure: no fetch, timers or streams. The transport (`sseTransport` in ticker-client.js) opens
// the streams, makes the HTTP requests, runs the poll timer and hands in what arrives.

import { INTERVALS, MAX_LIMIT } from "./bars.js";

/** What the link needs of the clock (ms): a stream silent for longer is not answered pings. */
export const SSE = Object.freeze({
  aliveMs: 20000, // the server writes a comment line every 15 s: a live stream is never quieter
  pollMinMs: 1000, // a live bars stream is polled at the window, but no more often than this
  maxWindowMs: 10000, // the server's window maximum (docs/protocol.md "Quantized windows")
});

// Parsing (the WHATWG HTML event-stream format)

/**
 * The event-stream parser: text in (chunks cut anywhere), events and comments out. An event is
 * `{kind: "event", event, data, id}` (`event` defaults to `message`; `id` is the stream's last
 * event id, null before one); a comment line is `{kind: "comment", text}`.
 */
export class SseParser {
  constructor() {
    this.buf = "";
    this.event = "";
    this.data = [];
    this.lastId = null;
    this.cr = false; // the previous chunk ended in \r: a \n opening this one belongs to it
  }

  /** @param {string} text @returns {object[]} what the text completes, in order */
  push(text) {
    if (this.cr && text.startsWith("\n")) text = text.slice(1);
    this.cr = text.endsWith("\r");
    const lines = (this.buf + text).split(/\r\n|\r|\n/);
    this.buf = lines.pop(); // (incomplete; "" after a line end)
    const out = [];
    for (const line of lines) this.line(line, out);
    return out;
  }

  line(line, out) {
    if (line === "") {
      if (this.data.length) {
        out.push({ kind: "event", event: this.event || "message", data: this.data.join("\n"), id: this.lastId });
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) {
      out.push({ kind: "comment", text: line.slice(1).replace(/^ /, "") });
      return;
    }
    const i = line.indexOf(":");
    const name = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (name === "event") this.event = value;
    else if (name === "data") this.data.push(value);
    else if (name === "id" && !value.includes("\0")) this.lastId = value;
  }
}

/** The close code and reason of a comment that ends a stream (`close 1013 slow consumer`). */
export function closeComment(text) {
  const m = /^close (\d{4})(?: (.*))?$/.exec(text);
  return m ? { code: Number(m[1]), reason: m[2] ?? "" } : null;
}

// The query

/** The window the server makes of a requested one (clamped; 10 ms steps to 1 s, then 100 ms). */
export function effectiveWindow(ms, maxMs = SSE.maxWindowMs) {
  const v = Math.min(Number(ms), maxMs);
  if (!(v > 0)) return 0;
  if (v <= 1000) return Math.max(10, Math.round(v / 10) * 10);
  return Math.min(maxMs, Math.round(v / 100) * 100);
}

const list = (items) => [...items].map((s) => encodeURIComponent(s)).join(",");

/**
 * The `/sse` query (no `?`) for what the client asked for. `since` (the last news id delivered)
 * only with news.
 * @param {{throttleMs: number|null, maxBps: number|null, fields: string[]|null,
 *          symbols: Set<string>, topics: string[]|null}} want
 * @param {number|null} since
 */
export function sseQuery(want, since = null) {
  const q = [];
  if (want.throttleMs !== null) q.push(`throttle_ms=${want.throttleMs}`);
  if (want.maxBps !== null) q.push(`max_bps=${want.maxBps}`);
  if (want.fields !== null && want.fields.length) q.push(`fields=${list(want.fields)}`);
  if (want.symbols.size) q.push(`symbols=${list(want.symbols)}`);
  if (want.topics !== null && want.topics.length) {
    q.push(`news=${list(want.topics)}`);
    if (since !== null) q.push(`since=${since}`);
  }
  return q.join("&");
}

/** The `/api/bars` query (no `?`) of a `bars` op. */
export function barsQuery({ symbol, interval, limit, before }) {
  let q = `symbol=${encodeURIComponent(symbol)}&interval=${encodeURIComponent(interval)}&limit=${limit}`;
  if (before !== undefined && before !== null) q += `&before=${before}`;
  return q;
}

// Live bars by polling

/**
 * What a poll of `/api/bars` (the last `limit` bars) says about a live stream whose last bar is
 * `last` (null: none yet): the `bar` updates to send (the last bar changed, later ones opened),
 * or `reset` when the polled bars cannot be joined to it (history went back, as after a replay
 * seek; or more bars opened than the poll holds): then the whole stream is fetched again and
 * sent as a fresh `bars`.
 * @returns {{bars: number[][], reset: boolean}}
 */
export function barUpdates(last, polled, limit) {
  const rows = Array.isArray(polled) ? polled.filter((b) => Array.isArray(b) && b.length >= 5) : [];
  if (!rows.length) return { bars: [], reset: false };
  if (last === null) return { bars: rows, reset: false };
  const t = last[0];
  if (rows.at(-1)[0] < t) return { bars: [], reset: true };
  if (rows[0][0] > t && rows.length >= limit) return { bars: [], reset: true };
  const out = [];
  for (const b of rows) {
    if (b[0] < t) continue;
    if (b[0] === t && sameBar(b, last)) continue;
    out.push(b);
  }
  return { bars: out, reset: false };
}

function sameBar(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Bars a poll asks for: those that may have opened since the last poll, and some slack. */
export function pollLimit(interval, pollMs) {
  const width = INTERVALS[interval] ?? 1000;
  return Math.min(MAX_LIMIT, Math.ceil(pollMs / width) + 3);
}

// The link

/**
 * One connection's worth of streams, as the client sees one connection. Methods return the
 * messages to hand to the client now (in order); `send` also says what to do.
 */
export class SseLink {
  constructor(opts = SSE) {
    this.opts = { ...SSE, ...opts };
    this.want = { throttleMs: null, maxBps: null, fields: null, symbols: new Set(), topics: null };
    this.excluded = new Set(); // unsubscribed while "*" is: not expressible in a query, filtered
    this.newsCursor = null; // the last news id delivered (a reopened stream resumes after it)
    this.gen = 0; // streams opened
    this.helloGen = 0; // the newest stream that said hello
    this.hello = null; // its hello
    this.greeted = false; // the client has its (first) hello
    this.seqBase = 0; // what this stream's seq 1 becomes
    this.lastSeq = 0; // the last seq handed on
    this.dirty = false; // the query changed since the stream was opened
    this.opening = null; // what the newest stream was opened for
    this.good = null; // what the newest stream that said hello was opened for
    this.outbox = []; // {msgs, ready, gen?} answers in order; a pending one holds those behind it
    this.streams = new Map(); // "symbol interval" -> live bars {symbol, interval, limit, last}
    this.lastBytesAt = 0;
  }

  // The client's ops

  /**
   * An op from the client. Returns `{reopen, bars}`: `reopen` when the stream must be opened
   * again with `query()` (the caller batches the ops of one turn into one reopen), `bars` a
   * `bars` op to answer over HTTP (then `barsAnswer`).
   */
  send(m, now) {
    const w = this.want;
    let changed = false;
    let bars = null;
    const id = m.id;
    const ack = (extra = {}) => (id === undefined ? null : { type: "ack", id, ...extra });
    switch (m.op) {
      case "ping":
        if (typeof m.t === "number" && m.t > 0 && now - this.lastBytesAt > this.opts.aliveMs) break;
        this.reply([{ type: "pong", t: m.t }]);
        break;
      case "throttle": {
        const ms = effectiveWindow(m.ms);
        changed = w.throttleMs !== ms;
        w.throttleMs = ms;
        if (typeof m.max_bps === "number") {
          const bps = m.max_bps > 0 ? m.max_bps : null;
          changed = changed || w.maxBps !== bps;
          w.maxBps = bps;
        }
        const extra = w.maxBps !== null ? { ms, max_bps: w.maxBps } : { ms };
        this.answer(changed, [ack(extra)]);
        break;
      }
      case "fields": {
        const fields = Array.isArray(m.fields) && m.fields.length ? m.fields.map(String) : null;
        changed = String(w.fields) !== String(fields);
        w.fields = fields;
        this.answer(changed, [ack({ fields: fields ?? [] })]);
        break;
      }
      case "subscribe": {
        const names = Array.isArray(m.symbols) ? m.symbols.map(String) : [];
        for (const s of names) {
          if (!w.symbols.has(s)) changed = true;
          w.symbols.add(s);
          this.excluded.delete(s);
        }
        this.answer(changed, [{ type: "ack", id, symbols: names, pending: true }]);
        break;
      }
      case "unsubscribe": {
        const names = Array.isArray(m.symbols) ? m.symbols.map(String) : [];
        for (const s of names) {
          if (s === "*") {
            changed = changed || w.symbols.size > 0;
            w.symbols.clear();
            this.excluded.clear();
          } else if (w.symbols.delete(s)) changed = true;
          else if (w.symbols.has("*")) this.excluded.add(s);
        }
        this.answer(changed, [ack({ symbols: names })]);
        break;
      }
      case "news": {
        const topics = Array.isArray(m.topics) && m.topics.length ? m.topics.map(String) : null;
        changed = String(w.topics) !== String(topics);
        w.topics = topics;
        if (typeof m.since === "number" && (this.newsCursor === null || m.since > this.newsCursor)) {
          this.newsCursor = m.since;
        }
        this.answer(changed, [{ type: "ack", id, topics: topics ?? [], pending: true }]);
        break;
      }
      case "resync":
        this.answer(true, [ack()]);
        changed = true;
        break;
      case "bars": {
        const req = {
          id,
          symbol: String(m.symbol),
          interval: String(m.interval),
          limit: Number.isFinite(m.limit) ? m.limit : 500,
          before: m.before,
          live: m.live !== false && (m.before === undefined || m.before === null),
        };
        this.outbox.push({ msgs: [], ready: false, bars: req });
        bars = req;
        break;
      }
      case "unbars":
        this.streams.delete(`${m.symbol} ${m.interval}`);
        this.reply([ack({ symbol: m.symbol, interval: m.interval })]);
        break;
      default:
        this.reply([{ type: "error", code: "unknown_op", message: `not over SSE: ${m.op}`, id }]);
    }
    if (changed) this.dirty = true;
    return { reopen: changed, bars };
  }

  /** Answers that need no stream. */
  reply(msgs) {
    this.outbox.push({ msgs: msgs.filter(Boolean), ready: true });
  }

  /** Answers that hold until a stream opened after this op says hello (when it changed the query). */
  answer(changed, msgs) {
    if (!changed && !this.dirty && this.helloGen === this.gen && this.hello !== null) {
      this.outbox.push({ msgs: msgs.filter(Boolean).map((m) => this.complete(m)).filter(Boolean), ready: true });
    } else this.outbox.push({ msgs: msgs.filter(Boolean), ready: false, gen: this.gen + (this.dirty || changed ? 1 : 0) });
  }

  /** An ack that waited for a hello gets what the hello tells (the server's symbol names, news). */
  complete(m) {
    if (!m.pending) return m;
    const { pending, ...ack } = m;
    const hello = this.hello ?? {};
    if (ack.symbols !== undefined) {
      const known = new Map((hello.symbols ?? []).map((s) => [String(s).toUpperCase(), s]));
      ack.symbols = ack.symbols.map((s) => known.get(s.toUpperCase()) ?? s);
    }
    if (ack.topics !== undefined) ack.last_id = hello.news_last_id ?? null;
    return ack.id === undefined ? null : ack;
  }

  // The streams

  /** Open the next stream: its query (no `?`). Answers waiting for it go out at its hello. */
  reopen() {
    this.gen++;
    this.dirty = false;
    this.opening = cloneWant(this.want);
    return sseQuery(this.want, this.want.topics !== null ? this.newsCursor : null);
  }

  /** Bytes came in on the current stream (a comment counts: it is the server's keep-alive). */
  bytes(now) {
    this.lastBytesAt = now;
  }

  /** An event of stream `gen` (older streams' events are dropped). */
  event(gen, name, obj) {
    if (gen !== this.gen || obj === null || typeof obj !== "object") return this.drain();
    const out = [];
    switch (name) {
      case "hello":
        this.hello = obj;
        this.helloGen = gen;
        this.good = this.opening;
        this.seqBase = this.lastSeq;
        if (!this.greeted) {
          this.greeted = true;
          out.push(obj);
        }
        for (const e of this.outbox) {
          if (!e.ready && e.gen !== undefined && e.gen <= gen) {
            e.msgs = e.msgs.map((m) => this.complete(m)).filter(Boolean);
            e.ready = true;
          }
        }
        return [...out, ...this.drain()];
      case "snapshot":
      case "delta": {
        const seq = typeof obj.seq === "number" ? this.seqBase + obj.seq : obj.seq;
        if (typeof seq === "number") this.lastSeq = seq;
        out.push({ ...obj, seq, quotes: this.filter(obj.quotes) });
        break;
      }
      case "news":
        if (typeof obj.id === "number" && (this.newsCursor === null || obj.id > this.newsCursor)) {
          this.newsCursor = obj.id;
        }
        out.push(obj);
        break;
      default:
        out.push(obj);
    }
    return [...this.drain(), ...out];
  }

  /**
   * Stream `gen` was refused with HTTP 400 (its query: `{error, message}`): the ops waiting for
   * it fail with that error, and the query goes back to the last one that said hello. Returns
   * the messages and whether to reopen (false: no query ever worked, the link is lost).
   */
  refused(gen, body) {
    const code = String(body?.error ?? "bad_request");
    const message = String(body?.message ?? "refused");
    for (const e of this.outbox) {
      if (!e.ready && e.gen !== undefined && e.gen <= gen) {
        e.msgs = e.msgs.filter((m) => m && m.id !== undefined).map((m) => ({ type: "error", code, message, id: m.id }));
        e.ready = true;
      }
    }
    if (this.good !== null) {
      this.want = cloneWant(this.good);
      this.dirty = true;
    }
    return { msgs: this.drain(), reopen: this.good !== null };
  }

  /** The polls of the live bars streams: `{key, query}` for `GET /api/bars`. */
  polls() {
    const ms = this.pollMs();
    return [...this.streams].map(([key, s]) => ({
      key,
      query: barsQuery({ symbol: s.symbol, interval: s.interval, limit: pollLimit(s.interval, ms) }),
    }));
  }

  /** The query that fetches a live stream whole again (after a `reset`). */
  refetchQuery(key) {
    const s = this.streams.get(key);
    return s ? barsQuery(s) : null;
  }

  filter(quotes) {
    if (!this.excluded.size || !quotes) return quotes;
    const out = {};
    for (const s in quotes) if (!this.excluded.has(s)) out[s] = quotes[s];
    return out;
  }

  // Bars over HTTP

  /**
   * The answer to a `bars` op: `status` and the JSON body of `GET /api/bars`. 200 gives the
   * `ack` and the `bars` message (and, when live, a poll of it); another status the `error`.
   */
  barsAnswer(req, status, body) {
    const e = this.outbox.find((x) => x.bars === req);
    const msgs = [];
    if (status === 200 && body && Array.isArray(body.bars)) {
      const symbol = body.symbol ?? req.symbol;
      const interval = body.interval ?? req.interval;
      if (req.id !== undefined) msgs.push({ type: "ack", id: req.id, symbol, interval, limit: req.limit });
      msgs.push({ type: "bars", symbol, interval, bars: body.bars });
      if (req.live) {
        // Asking again for the same (symbol, interval) replaces the stream.
        this.streams.set(`${symbol} ${interval}`, { symbol, interval, limit: req.limit, last: body.bars.at(-1) ?? null });
        if (symbol !== req.symbol || interval !== req.interval) this.streams.delete(`${req.symbol} ${req.interval}`);
      }
    } else {
      const err = { type: "error", code: String(body?.error ?? "unavailable"), message: String(body?.message ?? `HTTP ${status}`) };
      if (req.id !== undefined) err.id = req.id;
      if (body?.finest !== undefined) err.finest = body.finest;
      msgs.push(err);
    }
    if (e) {
      e.msgs = msgs;
      e.ready = true;
      return this.drain();
    }
    return msgs;
  }

  /** How often the live bars streams are polled (ms): at the window, at least `pollMinMs`. */
  pollMs() {
    const w = this.want.throttleMs ?? this.hello?.throttle_ms ?? 0;
    return Math.max(this.opts.pollMinMs, w);
  }

  /** A poll of a live stream (`key`) returned `bars`: `bar` messages, or `reset` (fetch it all). */
  polled(key, bars) {
    const s = this.streams.get(key);
    if (!s) return { msgs: [], reset: false };
    const limit = pollLimit(s.interval, this.pollMs());
    const { bars: changed, reset } = barUpdates(s.last, bars, limit);
    if (reset) return { msgs: [], reset: true };
    if (changed.length) s.last = changed.at(-1);
    return { msgs: changed.map((bar) => ({ type: "bar", symbol: s.symbol, interval: s.interval, bar })), reset: false };
  }

  /** A live stream fetched again after a reset: a fresh `bars` that replaces the client's. */
  refetched(key, bars) {
    const s = this.streams.get(key);
    if (!s || !Array.isArray(bars)) return [];
    s.last = bars.at(-1) ?? null;
    return [{ type: "bars", symbol: s.symbol, interval: s.interval, bars }];
  }

  // The outbox

  /** The answers that are ready, in order, up to the first that is not. */
  drain() {
    const out = [];
    while (this.outbox.length && this.outbox[0].ready) out.push(...this.outbox.shift().msgs);
    return out;
  }
}

function cloneWant(w) {
  return { ...w, symbols: new Set(w.symbols), fields: w.fields && [...w.fields], topics: w.topics && [...w.topics] };
}

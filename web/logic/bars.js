// Chart bars from the server's `bars` stream (docs/protocol.md, "Bars (extension)"): the intervals,
// the bars of one (symbol, interval) as the chart holds them (a `bars` message replaces them, a
// `bar` message replaces the bar with the same `t` or appends a later one), which ops to send when
// the chart moves to another symbol or interval or the connection is new, and where to fall back
// when the server answers `bad_interval`. Pure: no DOM, no socket; chartpanel.js sends and draws.

import { lowerBound } from "./series.js";

/** Every bar interval the server serves, finest first, with its width in ms. */
export const INTERVALS = Object.freeze({
  "1s": 1000,
  "5s": 5000,
  "15s": 15000,
  "1m": 60000,
  "5m": 300000,
  "15m": 900000,
  "1h": 3600000,
  "1d": 86400000,
});
export const INTERVAL_NAMES = Object.freeze(Object.keys(INTERVALS));

/** The most bars one `bars` request may ask for (the protocol's `limit` is 1-5000). */
export const MAX_LIMIT = 5000;

/** An interval name as the server spells it (`1min`, remembered by earlier versions, is `1m`); null if unknown. */
export function intervalName(name) {
  if (name === "1min") return "1m";
  return Object.hasOwn(INTERVALS, name) ? name : null;
}

/**
 * Where to go after `bad_interval` for `requested`: the interval the server's message names as
 * the data's own (the finest one coarser than `requested`: "this symbol's data has 1m bars: 1s
 * bars cannot be made from it"), else the next coarser one; null when there is none.
 * @param {string} requested
 * @param {string} [message] the error's text
 */
export function fallbackInterval(requested, message = "") {
  const i = INTERVAL_NAMES.indexOf(requested);
  if (i < 0) return "1s";
  const named = new Set(String(message).match(/\b\d+[smhd]\b/g) || []);
  for (let j = i + 1; j < INTERVAL_NAMES.length; j++) {
    if (named.has(INTERVAL_NAMES[j])) return INTERVAL_NAMES[j];
  }
  return INTERVAL_NAMES[i + 1] ?? null;
}

/** The coarser of two intervals (null counts as none). */
export function coarser(a, b) {
  if (!b) return a;
  if (!a) return b;
  return INTERVALS[a] >= INTERVALS[b] ? a : b;
}

/** One wire bar `[t, o, h, l, c, v]` with finite numbers, else null. */
function row(b) {
  if (!Array.isArray(b) || b.length < 5) return null;
  const r = [b[0], b[1], b[2], b[3], b[4], b[5] ?? 0];
  return r.every(Number.isFinite) ? r : null;
}

const FIELDS = ["t", "open", "high", "low", "close", "volume"];

/**
 * The bars of one (symbol, interval), oldest first, in columns (what plotly takes), bounded to
 * `maxBars` (the oldest dropped). `version` bumps on every change.
 */
export class BarStore {
  constructor(intervalMs, maxBars = MAX_LIMIT) {
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
    this.intervalMs = intervalMs;
    this.maxBars = maxBars;
    this.version = 0;
    this.clear();
  }

  get length() {
    return this.t.length;
  }

  clear() {
    for (const k of FIELDS) this[k] = [];
    this.version++;
  }

  /** A `bars` message's bars: they replace everything held (rows out of order or broken are dropped). */
  replace(bars) {
    this.clear();
    for (const b of Array.isArray(bars) ? bars : []) {
      const r = row(b);
      if (r && (this.t.length === 0 || r[0] > this.t[this.t.length - 1])) this.push(r);
    }
    this.trim();
    return this.t.length;
  }

  /**
   * A `bar` message's bar. Returns "update" (it replaced the bar with the same `t`), "append"
   * (a later bar) or "skip" (broken, or older than the last bar and not one held).
   */
  apply(bar) {
    const r = row(bar);
    if (!r) return "skip";
    const n = this.t.length;
    const t = r[0];
    if (n === 0 || t > this.t[n - 1]) {
      this.push(r);
      this.trim();
      this.version++;
      return "append";
    }
    // The forming bar (the common case) is the last; a correction of an older one is found by
    // binary search.
    const i = this.t[n - 1] === t ? n - 1 : indexOf(this.t, t);
    if (i < 0) return "skip";
    for (let k = 1; k < FIELDS.length; k++) this[FIELDS[k]][i] = r[k];
    this.version++;
    return "update";
  }

  /** The bars as wire rows (tests compare them with the server's). */
  rows() {
    return this.t.map((t, i) => [t, this.open[i], this.high[i], this.low[i], this.close[i], this.volume[i]]);
  }

  push(r) {
    for (let k = 0; k < FIELDS.length; k++) this[FIELDS[k]].push(r[k]);
  }

  trim() {
    const extra = this.t.length - this.maxBars;
    if (extra > 0) for (const k of FIELDS) this[k].splice(0, extra);
  }
}

/** Index of `x` in sorted `a`, or -1. */
function indexOf(a, x) {
  const i = lowerBound(a, x);
  return a[i] === x ? i : -1;
}

/**
 * The chart's one live `bars` stream on the connection: which ops to send when the chart moves,
 * and which `bars`/`bar` messages are its own (a late answer for the previous symbol is not).
 */
export class BarStream {
  constructor() {
    this.symbol = null;
    this.interval = null;
    this.live = false; // a `bars` op for (symbol, interval) went out on this connection
  }

  /** The messages of a move to (symbol, interval): `unbars` of the previous stream, then `bars`. */
  open(symbol, interval, limit) {
    const out = [];
    if (this.live && (this.symbol !== symbol || this.interval !== interval)) {
      out.push({ op: "unbars", symbol: this.symbol, interval: this.interval });
    }
    this.symbol = symbol;
    this.interval = interval;
    this.live = false;
    if (symbol && interval) {
      out.push(barsOp(symbol, interval, limit));
      this.live = true;
    }
    return out;
  }

  /** A new connection has no stream: ask again (the fresh `bars` replaces what the chart holds). */
  reconnect(limit) {
    this.live = false;
    if (!this.symbol || !this.interval) return [];
    this.live = true;
    return [barsOp(this.symbol, this.interval, limit)];
  }

  /** A `bars`/`bar`/`error` message about this stream. */
  owns(m) {
    return !!m && m.symbol === this.symbol && m.interval === this.interval;
  }
}

function barsOp(symbol, interval, limit) {
  const n = Math.max(1, Math.min(MAX_LIMIT, Math.floor(limit) || 500));
  return { op: "bars", symbol, interval, limit: n };
}

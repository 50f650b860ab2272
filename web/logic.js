// Pure client logic for the Ticker dashboard: no DOM, no network, no timers, no globals.
// Loaded by the page (ES module) and by node's test runner (tests/js/). The I/O shell is app.js.

export const INTERVALS = Object.freeze({ "1s": 1000, "5s": 5000, "1min": 60000 });
export const WINDOWS = Object.freeze([0, 100, 250, 1000]);
export const HIDDEN_WINDOW_MS = 5000;
export const DEFAULT_MAX_POINTS = 5000;

// ---------------------------------------------------------------------------------------------
// Quotes: snapshot / delta application (PROTOCOL.md)

const WINDOW_FIELDS = new Set(["w_high", "w_low", "w_count"]);

/**
 * Replace the quotes of every symbol in a snapshot.
 * @param {Map<string, object>} book symbol -> quote (mutated)
 * @param {Record<string, object>} quotes the snapshot's `quotes`
 * @returns {string[]} the symbols set
 */
export function applySnapshot(book, quotes) {
  const out = [];
  for (const sym in quotes) {
    const q = { ...quotes[sym] };
    q.symbol = sym;
    book.set(sym, q);
    out.push(sym);
  }
  return out;
}

/**
 * Fold a delta's changed fields into the book. Window fields (w_high, w_low, w_count) describe
 * the conflated ticks of this delta only, so they are returned, not stored.
 * @param {Map<string, object>} book symbol -> quote (mutated)
 * @param {Record<string, object>} quotes the delta's `quotes`
 * @returns {{symbol: string, quote: object, prevPrice: number|undefined,
 *            prevVolume: number|undefined, priced: boolean, wHigh: number|undefined,
 *            wLow: number|undefined, wCount: number|undefined}[]}
 */
export function applyDelta(book, quotes) {
  const out = [];
  for (const sym in quotes) {
    const d = quotes[sym];
    let q = book.get(sym);
    if (q === undefined) {
      q = { symbol: sym };
      book.set(sym, q);
    }
    const prevPrice = q.price;
    const prevVolume = q.volume;
    for (const k in d) {
      if (!WINDOW_FIELDS.has(k)) q[k] = d[k];
    }
    out.push({
      symbol: sym,
      quote: q,
      prevPrice,
      prevVolume,
      priced: d.price !== undefined || d.w_count !== undefined,
      wHigh: d.w_high,
      wLow: d.w_low,
      wCount: d.w_count,
    });
  }
  return out;
}

/**
 * What a frame's `seq` says about the stream: "first", "ok" (exactly +1), "gap" (missed frames:
 * ask for a resync) or "stale" (not newer: ignore the seq, keep the data).
 */
export function seqStatus(lastSeq, seq) {
  if (lastSeq === null || lastSeq === undefined) return "first";
  if (seq === lastSeq + 1) return "ok";
  return seq > lastSeq ? "gap" : "stale";
}

/** Volume traded between two cumulative readings; 0 when unknown or when the session reset. */
export function volumeStep(prev, next) {
  if (typeof prev !== "number" || typeof next !== "number") return 0;
  const d = next - prev;
  return d > 0 ? d : 0;
}

// ---------------------------------------------------------------------------------------------
// Bars (candlesticks) built from live updates, merged with /api/history backfill

/**
 * Time bars of one symbol, bounded to `maxPoints` (oldest dropped). The last bar is the forming
 * one and is updated in place; a conflated update's window high/low widen the bar so spikes
 * between two frames stay visible.
 */
export class BarSeries {
  constructor(intervalMs, maxPoints = DEFAULT_MAX_POINTS) {
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
    this.intervalMs = intervalMs;
    this.maxPoints = maxPoints;
    this.t = [];
    this.open = [];
    this.high = [];
    this.low = [];
    this.close = [];
    this.volume = [];
    this.lastTs = -Infinity; // newest update folded in (raw ts, ms)
    this.version = 0; // bumps on every change (renderers compare it)
  }

  get length() {
    return this.t.length;
  }

  bucket(ts) {
    return Math.floor(ts / this.intervalMs) * this.intervalMs;
  }

  /**
   * Fold one update. Returns "update" (forming bar changed), "new" (a bar was opened) or "skip"
   * (older than the forming bar, or not a number).
   * @param {number} ts event time (ms)
   * @param {number} price last price
   * @param {{wHigh?: number, wLow?: number, volume?: number}} [opts]
   */
  add(ts, price, opts = {}) {
    if (!Number.isFinite(ts) || !Number.isFinite(price)) return "skip";
    const b = this.bucket(ts);
    const n = this.t.length;
    let hi = price;
    let lo = price;
    if (Number.isFinite(opts.wHigh) && opts.wHigh > hi) hi = opts.wHigh;
    if (Number.isFinite(opts.wLow) && opts.wLow < lo) lo = opts.wLow;
    const vol = Number.isFinite(opts.volume) && opts.volume > 0 ? opts.volume : 0;
    if (ts > this.lastTs) this.lastTs = ts;
    if (n > 0 && b === this.t[n - 1]) {
      const i = n - 1;
      if (hi > this.high[i]) this.high[i] = hi;
      if (lo < this.low[i]) this.low[i] = lo;
      this.close[i] = price;
      this.volume[i] += vol;
      this.version++;
      return "update";
    }
    if (n > 0 && b < this.t[n - 1]) return "skip";
    this.t.push(b);
    this.open.push(price);
    this.high.push(hi);
    this.low.push(lo);
    this.close.push(price);
    this.volume.push(vol);
    this.trim();
    this.version++;
    return "new";
  }

  /**
   * Merge `/api/history` bars: local bars older than the first history bar are kept, the rest is
   * replaced by history (the server saw every tick; this client only saw conflated frames).
   * @param {{t: number[], open: number[], high: number[], low: number[], close: number[],
   *          volume: number[]}} bars columnar bars, oldest first
   * @param {number|null} lastTs the newest tick in them
   */
  merge(bars, lastTs) {
    const m = bars.t.length;
    if (m === 0) return;
    const keep = lowerBound(this.t, bars.t[0]);
    for (const k of ["t", "open", "high", "low", "close", "volume"]) {
      this[k] = this[k].slice(0, keep).concat(bars[k]);
    }
    if (Number.isFinite(lastTs) && lastTs > this.lastTs) this.lastTs = lastTs;
    this.trim();
    this.version++;
  }

  trim() {
    const extra = this.t.length - this.maxPoints;
    if (extra > 0) {
      for (const k of ["t", "open", "high", "low", "close", "volume"]) this[k].splice(0, extra);
    }
  }
}

/**
 * A price line with its window high/low band, bounded to `maxPoints`. One point per update.
 * `added` counts points appended since the renderer last called `take()`, so it can extend the
 * plot incrementally instead of redrawing it.
 */
export class LineSeries {
  constructor(maxPoints = DEFAULT_MAX_POINTS) {
    this.maxPoints = maxPoints;
    this.x = [];
    this.y = [];
    this.hi = [];
    this.lo = [];
    this.added = 0;
    this.reset = true; // true: the renderer must redraw everything
    this.version = 0;
  }

  get length() {
    return this.x.length;
  }

  get lastTs() {
    return this.x.length ? this.x[this.x.length - 1] : -Infinity;
  }

  /** Append one update; returns false (and keeps nothing) when not newer than the last point. */
  add(ts, price, opts = {}) {
    if (!Number.isFinite(ts) || !Number.isFinite(price) || ts <= this.lastTs) return false;
    let hi = price;
    let lo = price;
    if (Number.isFinite(opts.wHigh) && opts.wHigh > hi) hi = opts.wHigh;
    if (Number.isFinite(opts.wLow) && opts.wLow < lo) lo = opts.wLow;
    this.x.push(ts);
    this.y.push(price);
    this.hi.push(hi);
    this.lo.push(lo);
    this.added++;
    const extra = this.x.length - this.maxPoints;
    if (extra > 0) for (const k of ["x", "y", "hi", "lo"]) this[k].splice(0, extra);
    this.version++;
    return true;
  }

  /**
   * Merge history bars as points at each bar's middle (close, with high/low as the band); local
   * points from the first bar on are replaced.
   */
  merge(bars, intervalMs) {
    const m = bars.t.length;
    if (m === 0) return;
    const keep = lowerBound(this.x, bars.t[0]);
    const half = intervalMs / 2;
    this.x = this.x.slice(0, keep).concat(bars.t.map((t) => t + half));
    this.y = this.y.slice(0, keep).concat(bars.close);
    this.hi = this.hi.slice(0, keep).concat(bars.high);
    this.lo = this.lo.slice(0, keep).concat(bars.low);
    const extra = this.x.length - this.maxPoints;
    if (extra > 0) for (const k of ["x", "y", "hi", "lo"]) this[k].splice(0, extra);
    this.reset = true;
    this.version++;
  }

  /** What the renderer must do now: {full: true} or {full: false, from: index}; then resets. */
  take() {
    const full = this.reset || this.added >= this.x.length;
    const from = this.x.length - this.added;
    this.added = 0;
    this.reset = false;
    return full ? { full: true, from: 0 } : { full: false, from };
  }
}

/**
 * Bars [a, b) of a BarSeries merged `k` intervals at a time (groups aligned on k x interval, so
 * they do not shift as bars are added): what a chart draws when more bars are in view than it
 * can draw quickly. k = 1 is a plain copy.
 */
export function coarsenBars(s, a, b, k = 1) {
  const w = s.intervalMs * k;
  const out = { t: [], open: [], high: [], low: [], close: [], volume: [] };
  let m = 0;
  for (let i = Math.max(0, a); i < Math.min(b, s.t.length); i++) {
    const g = Math.floor(s.t[i] / w) * w;
    if (m && out.t[m - 1] === g) {
      const j = m - 1;
      if (s.high[i] > out.high[j]) out.high[j] = s.high[i];
      if (s.low[i] < out.low[j]) out.low[j] = s.low[i];
      out.close[j] = s.close[i];
      out.volume[j] += s.volume[i];
    } else {
      out.t.push(g);
      out.open.push(s.open[i]);
      out.high.push(s.high[i]);
      out.low.push(s.low[i]);
      out.close.push(s.close[i]);
      out.volume.push(s.volume[i]);
      m++;
    }
  }
  return out;
}

/**
 * Points [a, b) of a LineSeries reduced to one per `w` ms of time (buckets aligned on multiples
 * of w): the last price of each bucket, with the band widened to the bucket's highest high and
 * lowest low, so no spike is lost. What a chart draws when it holds more points than pixels.
 */
export function decimateLine(s, a, b, w) {
  const out = { x: [], y: [], hi: [], lo: [] };
  let m = 0;
  let g = NaN;
  for (let i = Math.max(0, a); i < Math.min(b, s.x.length); i++) {
    const k = Math.floor(s.x[i] / w);
    if (m && k === g) {
      const j = m - 1;
      out.x[j] = s.x[i];
      out.y[j] = s.y[i];
      if (s.hi[i] > out.hi[j]) out.hi[j] = s.hi[i];
      if (s.lo[i] < out.lo[j]) out.lo[j] = s.lo[i];
    } else {
      g = k;
      out.x.push(s.x[i]);
      out.y.push(s.y[i]);
      out.hi.push(s.hi[i]);
      out.lo.push(s.lo[i]);
      m++;
    }
  }
  return out;
}

/** First index i with a[i] >= x in a sorted array. */
export function lowerBound(a, x) {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The y of the point nearest in x (sorted xs); undefined when empty. */
export function nearestY(xs, ys, x) {
  const n = xs.length;
  if (n === 0) return undefined;
  const i = lowerBound(xs, x);
  if (i === 0) return ys[0];
  if (i >= n) return ys[n - 1];
  return x - xs[i - 1] <= xs[i] - x ? ys[i - 1] : ys[i];
}

/** [lo, hi] of the values of `lows`/`highs` whose x lies in [x0, x1]; null when none. */
export function visibleRange(xs, lows, highs, x0, x1) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = lowerBound(xs, x0); i < xs.length && xs[i] <= x1; i++) {
    if (lows[i] < lo) lo = lows[i];
    if (highs[i] > hi) hi = highs[i];
  }
  return lo <= hi ? [lo, hi] : null;
}

// ---------------------------------------------------------------------------------------------
// Axis ranges

/** A "nice" step (1, 2, 2.5 or 5 times a power of ten) at least `raw`. */
export function niceStep(raw) {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/**
 * The axis range to show for data spanning [lo, hi]: the previous range while the data still
 * fits inside it and fills at least `minFill` of it, else a fresh one, padded and snapped to nice
 * steps. A range that only changes when it must keeps the chart calm (no axis jitter on every
 * tick) and spares plotly an axis redraw per frame.
 * @param {[number, number]|null} prev
 * @returns {[number, number]}
 */
export function stickyRange(prev, lo, hi, { pad = 0.06, minFill = 0.45 } = {}) {
  if (prev && lo >= prev[0] && hi <= prev[1] && hi - lo >= minFill * (prev[1] - prev[0])) {
    return prev;
  }
  const span = hi - lo || Math.abs(hi) * 0.002 || 1;
  const step = niceStep((span * (1 + 2 * pad)) / 8);
  const a = Math.floor((lo - span * pad) / step) * step;
  const b = Math.ceil((hi + span * pad) / step) * step;
  // Round away float noise from the multiplications (e.g. 228.60000000000002).
  const r = (v) => Number(v.toPrecision(12));
  return [r(a), r(b)];
}

// ---------------------------------------------------------------------------------------------
// Sparklines: one point per bucket (last price), bounded

export class SparkSeries {
  constructor(bucketMs = 1000, maxPoints = 120) {
    this.bucketMs = bucketMs;
    this.maxPoints = maxPoints;
    this.t = [];
    this.v = [];
  }

  add(ts, price) {
    if (!Number.isFinite(ts) || !Number.isFinite(price)) return;
    const b = Math.floor(ts / this.bucketMs) * this.bucketMs;
    const n = this.t.length;
    if (n && b === this.t[n - 1]) {
      this.v[n - 1] = price;
      return;
    }
    if (n && b < this.t[n - 1]) return;
    this.t.push(b);
    this.v.push(price);
    if (this.t.length > this.maxPoints) {
      this.t.shift();
      this.v.shift();
    }
  }

  merge(bars) {
    const keep = lowerBound(this.t, bars.t[0] ?? Infinity);
    this.t = this.t.slice(0, keep).concat(bars.t);
    this.v = this.v.slice(0, keep).concat(bars.close);
    const extra = this.t.length - this.maxPoints;
    if (extra > 0) {
      this.t.splice(0, extra);
      this.v.splice(0, extra);
    }
  }
}

/**
 * A sparkline's geometry in a w x h box: polyline points (time on x, first to last point
 * spanning the width; price on y, padded), whether it ends at or above where it started, and
 * the y of `baseline` (e.g. the previous close) when it falls inside the range, else null.
 */
export function sparkGeometry(t, v, w, h, baseline, pad = 2) {
  const n = v.length;
  if (n < 2) return { points: "", up: true, base: null };
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of v) {
    if (p < lo) lo = p;
    if (p > hi) hi = p;
  }
  const span = hi - lo || 1;
  const t0 = t[0];
  const tSpan = t[n - 1] - t0 || 1;
  const y = (p) => Math.round((pad + (h - 2 * pad) * (1 - (p - lo) / span)) * 10) / 10;
  const parts = new Array(n);
  for (let i = 0; i < n; i++) {
    parts[i] = `${Math.round(((t[i] - t0) / tSpan) * w * 10) / 10},${y(v[i])}`;
  }
  const base = typeof baseline === "number" && baseline > lo && baseline < hi ? y(baseline) : null;
  return { points: parts.join(" "), up: v[n - 1] >= v[0], base };
}

// ---------------------------------------------------------------------------------------------
// News: dedupe by id, newest first, bounded

export class NewsStore {
  constructor(max = 500) {
    this.max = max;
    this.items = []; // newest first (descending id)
    this.ids = new Set();
    this.lastId = null; // highest id seen (the `since` of a resume)
  }

  /** Add one item; false when its id was seen before (or it has no numeric id). */
  add(item) {
    const id = item && item.id;
    if (typeof id !== "number" || this.ids.has(id)) return false;
    this.ids.add(id);
    const items = this.items;
    if (items.length === 0 || id > items[0].id) {
      items.unshift(item);
    } else {
      // Rare (backfill after live items): keep descending order.
      let i = 0;
      while (i < items.length && items[i].id > id) i++;
      items.splice(i, 0, item);
    }
    if (this.lastId === null || id > this.lastId) this.lastId = id;
    while (items.length > this.max) this.ids.delete(items.pop().id);
    return true;
  }

  /** Items (newest first) tagged with `tag`, or all when tag is null. */
  filtered(tag, limit = Infinity) {
    const out = [];
    for (const it of this.items) {
      if (out.length >= limit) break;
      if (tag === null || (it.symbols || []).includes(tag)) out.push(it);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Reconnect backoff: exponential with "equal jitter" (never 0, so a fleet of tabs does not
// reconnect in lock-step after a server restart, and never more than maxMs)

export function backoffDelay(attempt, opts = {}, random = Math.random) {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? 15000;
  const factor = opts.factor ?? 2;
  const cap = Math.min(max, base * Math.pow(factor, Math.max(0, attempt)));
  return cap / 2 + random() * (cap / 2);
}

/** After how many failed attempts the status says "offline" rather than "reconnecting". */
export const OFFLINE_AFTER = 6;

export function connectionState({ online = true, failures = 0, connected = false }) {
  if (connected) return "live";
  if (!online || failures >= OFFLINE_AFTER) return "offline";
  return "reconnecting";
}

// ---------------------------------------------------------------------------------------------
// Rates and latency

/** Median of a numeric array (undefined when empty); does not modify it. */
export function median(values) {
  if (!values.length) return undefined;
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Counts events in one-second buckets; `rate(now)` is the count of the last full second, or
 * null while no full second has been observed yet (a partial first second would under-report).
 */
export class RateMeter {
  constructor() {
    this.second = null;
    this.first = null;
    this.count = 0;
    this.last = 0;
  }

  add(now, n = 1) {
    const s = Math.floor(now / 1000);
    if (this.first === null) this.first = s;
    if (s !== this.second) {
      this.last = this.second !== null && s === this.second + 1 ? this.count : 0;
      this.second = s;
      this.count = 0;
    }
    this.count += n;
  }

  rate(now) {
    const s = Math.floor(now / 1000);
    if (this.first === null || s <= this.first + 1) return null;
    if (this.second === s) return this.last;
    if (this.second === s - 1) return this.count;
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Watchlist: persistence, search, sort

export const MAX_WATCH = 200;

/** A stored watchlist (JSON text) -> a clean list of symbols, or null when unusable. */
export function parseWatchlist(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  const out = [];
  for (const s of v) {
    if (typeof s !== "string") continue;
    const u = s.trim().toUpperCase();
    if (u && u.length <= 32 && !out.includes(u)) out.push(u);
    if (out.length >= MAX_WATCH) break;
  }
  return out;
}

/** Symbols matching `query`: prefix matches first, then substring; excludes `exclude`. */
export function searchSymbols(all, query, exclude = [], limit = 8) {
  const q = query.trim().toUpperCase();
  if (!q) return [];
  const ex = new Set(exclude);
  const pre = [];
  const sub = [];
  for (const s of all) {
    if (ex.has(s)) continue;
    if (s.startsWith(q)) pre.push(s);
    else if (s.includes(q)) sub.push(s);
  }
  return pre.concat(sub).slice(0, limit);
}

export const SORT_KEYS = Object.freeze([
  "symbol", "price", "change", "change_pct", "bid", "ask", "volume", "ts",
]);

/** Symbols ordered by a quote field (missing values last); key null keeps the given order. */
export function sortSymbols(symbols, book, key, dir = 1) {
  if (!key) return symbols.slice();
  const val = (s) => (key === "symbol" ? s : book.get(s)?.[key]);
  return symbols
    .map((s, i) => ({ s, i, v: val(s) }))
    .sort((a, b) => {
      const am = a.v === undefined || a.v === null;
      const bm = b.v === undefined || b.v === null;
      if (am || bm) return am === bm ? a.i - b.i : am ? 1 : -1;
      if (a.v < b.v) return -dir;
      if (a.v > b.v) return dir;
      return a.i - b.i;
    })
    .map((x) => x.s);
}

// ---------------------------------------------------------------------------------------------
// Formatting (tabular figures are a CSS matter; these only pick digits and signs)

const MINUS = "\u2212";
const fmtCache = new Map();

function numberFormat(digits) {
  let f = fmtCache.get(digits);
  if (!f) {
    f = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    fmtCache.set(digits, f);
  }
  return f;
}

export function priceDigits(p) {
  return Math.abs(p) >= 1 ? 2 : 4;
}

export function fmtPrice(p) {
  if (typeof p !== "number" || !Number.isFinite(p)) return "\u2014";
  return numberFormat(priceDigits(p)).format(p);
}

function signed(v, digits, suffix = "") {
  if (typeof v !== "number" || !Number.isFinite(v)) return "\u2014";
  const s = numberFormat(digits).format(Math.abs(v));
  if (Number(s.replace(/,/g, "")) === 0) return s + suffix;
  return (v > 0 ? "+" : MINUS) + s + suffix;
}

export function fmtChange(v, price) {
  return signed(v, typeof price === "number" ? priceDigits(price) : 2);
}

export function fmtPct(v) {
  return signed(v, 2, "%");
}

/** ▲ for a rise, ▼ for a fall, a middle dot when flat or unknown (colour is not the only cue). */
export function arrow(change) {
  if (typeof change !== "number" || !Number.isFinite(change) || change === 0) return "\u00b7";
  return change > 0 ? "\u25b2" : "\u25bc";
}

export function direction(change) {
  if (typeof change !== "number" || !Number.isFinite(change) || change === 0) return "flat";
  return change > 0 ? "up" : "down";
}

/** Volume in at most 5 characters: 1,234 · 12.3K · 123K · 1.23M · 12.3M · 123M · 1.23B. */
export function fmtVolume(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "\u2014";
  const a = Math.abs(v);
  if (a < 1e4) return numberFormat(0).format(v);
  for (const [unit, div] of [["K", 1e3], ["M", 1e6], ["B", 1e9], ["T", 1e12]]) {
    const x = v / div;
    if (Math.abs(x) < 999.5 || unit === "T") {
      const d = Math.abs(x) < 9.995 ? 2 : Math.abs(x) < 99.95 ? 1 : 0;
      return x.toFixed(d) + unit;
    }
  }
  return String(v);
}

function pad2(n) {
  return n < 10 ? "0" + n : String(n);
}

/** HH:MM:SS in local time. */
export function fmtTime(ts) {
  if (typeof ts !== "number" || !Number.isFinite(ts)) return "\u2014";
  const d = new Date(ts);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

export function fmtMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "\u2014";
  if (ms >= 10000) return (ms / 1000).toFixed(0) + " s";
  if (ms >= 1000) return (ms / 1000).toFixed(1) + " s";
  return Math.round(ms) + " ms";
}

/** Epoch ms shifted so that plotly's UTC date axis shows local wall-clock time. */
export function plotTime(ts, tzOffsetMin) {
  return ts - tzOffsetMin * 60000;
}

// ---------------------------------------------------------------------------------------------
// Replay (issue 4's contract): GET /api/replay -> {"feeds": [...]}

/**
 * The replay feeds to show controls for; [] for a 404, a bad body or no replay. `speed` null
 * means "max" (as fast as possible).
 */
export function replayFeeds(status, body) {
  if (status !== 200 || !body || !Array.isArray(body.feeds)) return [];
  return body.feeds
    .filter((f) => f && typeof f === "object" && typeof f.state === "string")
    .map((f) => ({ ...f, speed: f.speed === null || f.speed === "max" ? "max" : f.speed }));
}

/** A replay's position as a fraction of its span (0..1), or null when unknown. */
export function replayProgress(f) {
  if (!f || !Number.isFinite(f.start) || !Number.isFinite(f.end) || !Number.isFinite(f.clock)) {
    return null;
  }
  if (f.end <= f.start) return 1;
  return Math.min(1, Math.max(0, (f.clock - f.start) / (f.end - f.start)));
}

/**
 * Upper-cased symbols that any feed reports as stale in a `/healthz` body (`feeds[].stale`):
 * its upstream has stopped updating them.
 */
export function staleSymbols(health) {
  const out = new Set();
  const feeds = health && Array.isArray(health.feeds) ? health.feeds : [];
  for (const f of feeds) {
    if (!f || !Array.isArray(f.stale)) continue;
    for (const s of f.stale) if (typeof s === "string") out.add(s.toUpperCase());
  }
  return out;
}

// Access (README "Access control"): `?token=` in the page URL is a client token, `#admin=` the
// admin token (a fragment never leaves the browser, so no server or proxy log sees it).

const HTTP_TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/; // RFC 9110 tchar: a valid subprotocol

/**
 * How to hand a client token to `/ws`: as the subprotocol `bearer.<token>` offered together with
 * `ticker.v1` (kept out of URLs and access logs), or, when the token has characters a
 * subprotocol cannot carry, as `?token=`. No token: neither.
 */
export function wsAuth(token) {
  if (!token) return { protocols: undefined, query: "" };
  if (HTTP_TOKEN.test(token)) return { protocols: ["ticker.v1", `bearer.${token}`], query: "" };
  return { protocols: undefined, query: `?token=${encodeURIComponent(token)}` };
}

/** `#admin=<token>` out of a location hash: `{admin, hash}` with the rest of the hash kept. */
export function adminFromHash(hash) {
  const h = (hash || "").replace(/^#/, "");
  if (!h) return { admin: null, hash: "" };
  let admin = null;
  const rest = [];
  for (const part of h.split("&")) {
    if (part.startsWith("admin=")) {
      try {
        admin = decodeURIComponent(part.slice(6)) || null;
      } catch {
        admin = part.slice(6) || null;
      }
    } else if (part) rest.push(part);
  }
  return { admin, hash: rest.length ? `#${rest.join("&")}` : "" };
}

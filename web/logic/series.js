// Chart data: time bars (candlesticks) and a price line built from live updates, merged with
// /api/history backfill, bounded, and reduced (coarser candles, a decimated line) for drawing.
// Pure: no DOM, no plotly; chart.js draws what these hold.

export const INTERVALS = Object.freeze({ "1s": 1000, "5s": 5000, "1min": 60000 });
export const DEFAULT_MAX_POINTS = 5000;

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

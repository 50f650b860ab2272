// Chart data reduced for drawing: the bars in view (logic/bars.js holds them) merged into coarser
// candles when there are more than a chart can draw quickly, and the lookups the chart needs.
// Pure: no DOM, no plotly; chart.js draws what these give.

export const DEFAULT_MAX_POINTS = 5000;

/**
 * Bars [a, b) of a BarStore (logic/bars.js) merged `k` intervals at a time (groups aligned on k x interval, so
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

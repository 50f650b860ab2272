// Axis ranges for the price chart: nice steps, and ranges that stay put while the data fits.
// Pure: no DOM, no plotly.

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

const DAY_MS = 86400000;

/**
 * The time axis' tick and hover formats (plotly's d3 time formats; the axis is UTC, the bars'
 * market clock) for bars of `intervalMs` with `t0`..`t1` (ms) in view: dates only for daily bars,
 * the date with the time when the view crosses a UTC midnight, the time alone within one day
 * (with seconds below a minute).
 * @returns {{tickformat: string, hoverformat: string}}
 */
export function timeFormats(intervalMs, t0, t1) {
  if (intervalMs >= DAY_MS) return { tickformat: "%Y-%m-%d", hoverformat: "%a %Y-%m-%d" };
  const secs = intervalMs < 60000;
  const time = secs ? "%H:%M:%S" : "%H:%M";
  const hover = `%Y-%m-%d ${time} UTC`;
  const days = Number.isFinite(t0) && Number.isFinite(t1) && Math.floor(t0 / DAY_MS) !== Math.floor(t1 / DAY_MS);
  return { tickformat: days ? `%b %d ${time}` : time, hoverformat: hover };
}

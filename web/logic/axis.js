// Axis ranges for the price chart: nice steps, and ranges that stay put while the data fits.
// Pure: no DOM, no plotly.

import { decimalsOf } from "./format.js";

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

/**
 * Linear price ticks for the range [lo, hi] with at most `maxTicks` of them: a nice step and
 * labels with enough decimals to tell every tick apart (the step's), and never fewer than the
 * symbol's own `digits` (so the axis reads like the quotes). Plotly's own ticks with a fixed
 * ",.2f" format wrote "3.30" five times for a 0.005 step.
 * @returns {{dtick: number, tick0: number, tickformat: string, decimals: number}}
 */
export function priceTicks(lo, hi, maxTicks, digits = 2) {
  const n = Math.max(2, Math.floor(maxTicks));
  const dtick = niceStep((hi - lo) / n);
  // The step's own decimals (2.5e-5 -> 6), from its text (log10 would miss the 5 of 0.25).
  const decimals = Math.max(digits, decimalsOf(Number(dtick.toPrecision(6))));
  return { dtick, tick0: 0, tickformat: `,.${decimals}f`, decimals };
}

const TIME_STEPS = [
  1e3, 2e3, 5e3, 10e3, 15e3, 30e3,
  60e3, 120e3, 300e3, 600e3, 900e3, 1800e3,
  3600e3, 7200e3, 10800e3, 21600e3, 43200e3,
  DAY_MS, 2 * DAY_MS, 7 * DAY_MS, 14 * DAY_MS, 28 * DAY_MS,
];

/**
 * The time axis' tick step (ms) for `spanMs` in view with at most `maxTicks` ticks: a whole
 * number of seconds, minutes, hours or days, never finer than the labels' resolution
 * (`minStep`: 1 s when they show seconds, 1 min when not, a day for dates), so no two ticks
 * carry the same label ("15:00:00, 15:00:00").
 */
export function timeStep(spanMs, maxTicks, minStep = 1000) {
  const raw = spanMs / Math.max(1, Math.floor(maxTicks));
  for (const s of TIME_STEPS) if (s >= raw && s >= minStep) return s;
  const weeks = 7 * DAY_MS;
  return Math.max(minStep, Math.ceil(raw / weeks) * weeks);
}

// Sparklines: one point per bucket (the last price), bounded, and their SVG geometry.
// Pure: no DOM; watchlist.js puts the geometry into each row's polyline.

import { lowerBound } from "./series.js";

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

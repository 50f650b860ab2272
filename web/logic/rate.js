// Rates and latency for the status bar: a median, and updates counted per whole second.
// Pure: the caller passes the clock.

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

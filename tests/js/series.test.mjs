// Unit tests for chart series (web/logic/series.js): bars, the line, merging, coarsening, decimation: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { BarSeries, LineSeries, coarsenBars, decimateLine, lowerBound, nearestY, visibleRange } from "../../web/logic/series.js";

const T0 = 1732640000000; // a whole minute

test("updates in one interval form one bar updated in place", () => {
  const s = new BarSeries(1000);
  assert.equal(s.add(T0 + 10, 100, { volume: 5 }), "new");
  assert.equal(s.add(T0 + 300, 101), "update");
  assert.equal(s.add(T0 + 600, 99.5, { volume: 2 }), "update");
  assert.equal(s.add(T0 + 999, 100.2), "update");
  assert.deepEqual(
    [s.t, s.open, s.high, s.low, s.close, s.volume],
    [[T0], [100], [101], [99.5], [100.2], [7]],
  );
  assert.equal(s.add(T0 + 1000, 100.3), "new");
  assert.deepEqual(s.t, [T0, T0 + 1000]);
  assert.equal(s.open[1], 100.3);
});

test("conflated window high/low widen the bar (spikes stay visible)", () => {
  const s = new BarSeries(5000);
  s.add(T0, 100);
  s.add(T0 + 100, 100.1, { wHigh: 104, wLow: 99 });
  assert.equal(s.high[0], 104);
  assert.equal(s.low[0], 99);
  assert.equal(s.close[0], 100.1);
  // Window values inside the bar's range change nothing.
  s.add(T0 + 200, 100.2, { wHigh: 101, wLow: 100 });
  assert.deepEqual([s.high[0], s.low[0]], [104, 99]);
  // A new bar opened by a conflated delta starts with its window range.
  s.add(T0 + 5000, 100, { wHigh: 100.5, wLow: 98 });
  assert.deepEqual([s.open[1], s.high[1], s.low[1], s.close[1]], [100, 100.5, 98, 100]);
});

test("updates older than the forming bar are skipped", () => {
  const s = new BarSeries(1000);
  s.add(T0 + 2000, 1);
  assert.equal(s.add(T0 + 500, 2), "skip");
  assert.equal(s.add(NaN, 2), "skip");
  assert.equal(s.length, 1);
});

test("bars are bounded to maxPoints, oldest dropped", () => {
  const s = new BarSeries(1000, 5);
  for (let i = 0; i < 12; i++) s.add(T0 + i * 1000, i);
  assert.equal(s.length, 5);
  assert.deepEqual(s.close, [7, 8, 9, 10, 11]);
  assert.deepEqual(s.t, [7, 8, 9, 10, 11].map((i) => T0 + i * 1000));
});

test("history merges: older local bars kept, the rest replaced, then live continues", () => {
  const s = new BarSeries(1000);
  for (let i = 0; i < 5; i++) s.add(T0 + i * 1000 + 1, 100 + i);
  const hist = {
    t: [T0 + 3000, T0 + 4000, T0 + 5000],
    open: [1, 2, 3], high: [1, 2, 3], low: [1, 2, 3], close: [1, 2, 3], volume: [9, 9, 9],
  };
  s.merge(hist, T0 + 5500);
  assert.deepEqual(s.t, [T0, T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000, T0 + 5000]);
  assert.deepEqual(s.close, [100, 101, 102, 1, 2, 3]);
  assert.equal(s.lastTs, T0 + 5500);
  // The forming bar keeps updating in place.
  assert.equal(s.add(T0 + 5600, 3.5), "update");
  assert.equal(s.close.at(-1), 3.5);
  assert.equal(s.high.at(-1), 3.5);
  // An empty history changes nothing.
  const before = s.t.slice();
  s.merge({ t: [], open: [], high: [], low: [], close: [], volume: [] }, null);
  assert.deepEqual(s.t, before);
});

test("a bar interval must be positive", () => {
  assert.throws(() => new BarSeries(0), RangeError);
});

test("line series: one point per newer update, band from window high/low, bounded", () => {
  const s = new LineSeries(3);
  assert.equal(s.add(T0, 10), true);
  assert.equal(s.add(T0, 11), false); // not newer
  s.add(T0 + 1, 11, { wHigh: 12, wLow: 9 });
  assert.deepEqual([s.hi[1], s.lo[1]], [12, 9]);
  assert.deepEqual(s.take(), { full: true, from: 0 }); // first draw is a full one
  s.add(T0 + 2, 12);
  s.add(T0 + 3, 13);
  assert.equal(s.length, 3);
  assert.deepEqual(s.x, [T0 + 1, T0 + 2, T0 + 3]);
  assert.deepEqual(s.take(), { full: false, from: 1 }); // extend with the 2 new points
  assert.deepEqual(s.take(), { full: false, from: 3 }); // nothing new
});

test("line series merges history as mid-bar points and asks for a full redraw", () => {
  const s = new LineSeries();
  s.add(T0 + 100, 1);
  s.add(T0 + 2500, 2);
  s.take();
  s.merge({ t: [T0 + 2000], open: [5], high: [6], low: [4], close: [5.5], volume: [1] }, 1000);
  assert.deepEqual([s.x, s.y, s.hi, s.lo], [[T0 + 100, T0 + 2500], [1, 5.5], [1, 6], [1, 4]]);
  assert.equal(s.take().full, true);
});

test("nearest point and visible range", () => {
  const xs = [10, 20, 30, 40];
  const ys = [1, 2, 3, 4];
  assert.equal(lowerBound(xs, 25), 2);
  assert.equal(nearestY(xs, ys, 24), 2);
  assert.equal(nearestY(xs, ys, 26), 3);
  assert.equal(nearestY(xs, ys, 0), 1);
  assert.equal(nearestY(xs, ys, 99), 4);
  assert.equal(nearestY([], [], 1), undefined);
  assert.deepEqual(visibleRange(xs, [1, 0.5, 3, 4], [2, 9, 3, 4], 15, 35), [0.5, 9]);
  assert.equal(visibleRange(xs, ys, ys, 50, 60), null);
});

test("coarser candles: k intervals merged, aligned on time, OHLCV kept", () => {
  const B = Math.floor(T0 / 3000) * 3000; // a multiple of 3 s
  const s = new BarSeries(1000);
  const prices = [5, 7, 4, 6, 8, 3, 9];
  prices.forEach((p, i) => s.add(B + i * 1000, p, { volume: 1 }));
  assert.deepEqual(coarsenBars(s, 0, s.length, 1).close, prices); // k = 1 copies
  const c = coarsenBars(s, 0, s.length, 3);
  assert.deepEqual(c.t, [B, B + 3000, B + 6000]);
  assert.deepEqual(c.open, [5, 6, 9]);
  assert.deepEqual(c.high, [7, 8, 9]);
  assert.deepEqual(c.low, [4, 3, 9]);
  assert.deepEqual(c.close, [4, 3, 9]);
  assert.deepEqual(c.volume, [3, 3, 1]);
  // Aligned on time, not on index: starting one bar later gives the same groups.
  assert.deepEqual(coarsenBars(s, 1, s.length, 3).t, [B, B + 3000, B + 6000]);
  assert.deepEqual(coarsenBars(s, 2, 4, 1).close, [4, 6]);
  assert.deepEqual(coarsenBars(s, 5, 99, 1).close, [3, 9]);
});

test("line decimation: one point per bucket, the band keeps every spike", () => {
  const s = new LineSeries();
  const B = Math.floor(T0 / 1000) * 1000;
  const pts = [[0, 10, 12, 9], [300, 11, 11, 11], [900, 10.5, 10.5, 8], [1000, 12, 12, 12],
    [1999, 13, 15, 13], [2500, 14, 14, 14]];
  for (const [dt, p, h, l] of pts) s.add(B + dt, p, { wHigh: h, wLow: l });
  const d = decimateLine(s, 0, s.length, 1000);
  assert.deepEqual(d.x, [B + 900, B + 1999, B + 2500]);
  assert.deepEqual(d.y, [10.5, 13, 14]); // the last price in each bucket
  assert.deepEqual(d.hi, [12, 15, 14]);
  assert.deepEqual(d.lo, [8, 12, 14]);
  // A bucket as small as the points: nothing merged.
  assert.deepEqual(decimateLine(s, 0, s.length, 1).y, pts.map((p) => p[1]));
  assert.deepEqual(decimateLine(s, 3, 5, 1000).y, [13]);
});

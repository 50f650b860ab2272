// Unit tests for chart drawing data (web/logic/series.js): coarser candles, lookups: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { BarStore } from "../../web/logic/bars.js";
import { coarsenBars, lowerBound, nearestY, visibleRange } from "../../web/logic/series.js";

const T0 = 1732640000000; // a whole minute

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
  const s = new BarStore(1000);
  const prices = [5, 7, 4, 6, 8, 3, 9];
  s.replace(prices.map((p, i) => [B + i * 1000, p, p, p, p, 1]));
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

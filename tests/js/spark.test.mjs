// Unit tests for sparklines (web/logic/spark.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { SparkSeries, sparkGeometry } from "../../web/logic/spark.js";

const T0 = 1732640000000; // a whole minute

test("sparkline keeps the last price per bucket, bounded", () => {
  const s = new SparkSeries(1000, 3);
  s.add(T0 + 1, 1);
  s.add(T0 + 900, 2);
  s.add(T0 + 1000, 3);
  s.add(T0 + 500, 99); // older bucket: ignored
  assert.deepEqual(s.v, [2, 3]);
  s.add(T0 + 2000, 4);
  s.add(T0 + 3000, 5);
  assert.deepEqual(s.v, [3, 4, 5]);
  s.merge({ t: [T0 + 3000, T0 + 4000], close: [6, 7] });
  assert.deepEqual(s.v, [4, 6, 7]);
});

test("sparkline geometry: time across, price up, baseline only inside the range", () => {
  const g = sparkGeometry([0, 1000, 3000], [10, 12, 11], 100, 20, 11.5);
  assert.equal(g.points, "0,18 33.3,2 100,10");
  assert.equal(g.up, true);
  assert.equal(g.base, 6);
  assert.equal(sparkGeometry([0, 1], [5, 4], 100, 20, 99).base, null);
  assert.equal(sparkGeometry([0, 1], [5, 4], 100, 20).up, false);
  assert.deepEqual(sparkGeometry([0], [5], 100, 20), { points: "", up: true, base: null });
  // A flat line sits at the bottom pad, not NaN.
  assert.equal(sparkGeometry([0, 1], [5, 5], 100, 20).points, "0,18 100,18");
});

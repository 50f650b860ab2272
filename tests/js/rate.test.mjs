// Unit tests for the rate meter and median (web/logic/rate.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { RateMeter, median } from "../../web/logic/rate.js";

const T0 = 1732640000000; // a whole minute

test("rate meter reports the last full second", () => {
  const r = new RateMeter();
  assert.equal(r.rate(T0), null);
  r.add(T0 + 100, 3); // first (partial) second: not reported
  r.add(T0 + 900, 2);
  assert.equal(r.rate(T0 + 950), null);
  assert.equal(r.rate(T0 + 1500), null);
  r.add(T0 + 1200, 7);
  r.add(T0 + 2200, 1);
  assert.equal(r.rate(T0 + 2500), 7);
  assert.equal(r.rate(T0 + 3100), 1);
  assert.equal(r.rate(T0 + 9000), 0);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(median([]), undefined);
});

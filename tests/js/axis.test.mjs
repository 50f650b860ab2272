// Unit tests for axis ranges (web/logic/axis.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { niceStep, stickyRange, timeFormats } from "../../web/logic/axis.js";

test("axis ranges snap to nice steps and stay put while the data fits", () => {
  assert.equal(niceStep(0.03), 0.05);
  assert.equal(niceStep(0.2), 0.2);
  assert.equal(niceStep(2.2), 2.5);
  assert.equal(niceStep(7), 10);
  const r = stickyRange(null, 228.61, 229.38);
  assert.ok(r[0] < 228.61 && r[1] > 229.38, String(r));
  const step = niceStep(((229.38 - 228.61) * 1.12) / 8);
  for (const v of r) assert.ok(Math.abs(v / step - Math.round(v / step)) < 1e-9, String(r));
  // Small moves inside it: the very same range (no axis redraw).
  assert.equal(stickyRange(r, 228.7, 229.3), r);
  // Data outside it, or filling too little of it: a new range around the data.
  const up = stickyRange(r, 228.7, 229.9);
  assert.ok(up[1] >= 229.9 && up !== r);
  const shrunk = stickyRange(r, 229.0, 229.05);
  assert.ok(shrunk[0] >= r[0] && shrunk[1] <= r[1] && shrunk[1] - shrunk[0] < r[1] - r[0]);
  // A flat series still gets some height.
  const flat = stickyRange(null, 50, 50);
  assert.ok(flat[0] < 50 && flat[1] > 50);
});

test("time axis: dates for daily bars, dates with times across days, times within a day", () => {
  const day = Date.UTC(2019, 10, 5);
  assert.deepEqual(timeFormats(86400000, day, day + 30 * 86400000), {
    tickformat: "%Y-%m-%d",
    hoverformat: "%a %Y-%m-%d",
  });
  const intraday = timeFormats(60000, day + 9.5 * 3600000, day + 16 * 3600000);
  assert.equal(intraday.tickformat, "%H:%M");
  assert.equal(intraday.hoverformat, "%Y-%m-%d %H:%M UTC");
  assert.equal(timeFormats(60000, day + 9.5 * 3600000, day + 33 * 3600000).tickformat, "%b %d %H:%M");
  assert.equal(timeFormats(1000, day + 1000, day + 2000).tickformat, "%H:%M:%S");
  assert.equal(timeFormats(5000, day - 1000, day + 2000).tickformat, "%b %d %H:%M:%S");
  // Nothing in view yet: the time alone.
  assert.equal(timeFormats(1000, NaN, NaN).tickformat, "%H:%M:%S");
});

test("price ticks: every label distinct, never fewer decimals than the quotes", async () => {
  const { priceTicks } = await import("../../web/logic/axis.js");
  const labels = (lo, hi, t) => {
    const out = [];
    const d = t.decimals;
    for (let v = Math.ceil(lo / t.dtick) * t.dtick; v <= hi + 1e-12; v += t.dtick) out.push(v.toFixed(d));
    return out;
  };
  for (const [lo, hi, digits] of [
    [3.28, 3.31, 2],
    [228.61, 229.38, 2],
    [1.08301, 1.08342, 5],
    [0.00001201, 0.00001262, 8],
    [64000, 66000, 0],
  ]) {
    const t = priceTicks(lo, hi, 6, digits);
    const ls = labels(lo, hi, t);
    assert.ok(ls.length >= 2, `${lo}..${hi}: ${ls}`);
    assert.equal(new Set(ls).size, ls.length, `duplicate labels ${ls}`);
    assert.ok(t.decimals >= digits);
    assert.equal(t.tickformat, `,.${t.decimals}f`);
  }
  assert.equal(priceTicks(3.28, 3.31, 10, 2).decimals, 3); // a 0.005 step needs 3
  assert.equal(priceTicks(100, 200, 5, 2).decimals, 2);
});

test("time ticks: whole steps, never finer than the labels' resolution", async () => {
  const { timeStep } = await import("../../web/logic/axis.js");
  assert.equal(timeStep(3000, 8), 1000); // never below a second (labels show seconds)
  assert.equal(timeStep(120e3, 6), 30e3);
  assert.equal(timeStep(10 * 60e3, 8, 60e3), 120e3);
  assert.equal(timeStep(3 * 60e3, 8, 60e3), 60e3); // minutes labels: at least a minute
  assert.equal(timeStep(30 * 86400e3, 6, 86400e3), 7 * 86400e3);
  assert.ok(timeStep(5 * 365 * 86400e3, 6, 86400e3) >= 28 * 86400e3);
});

// Unit tests for remembered settings (web/logic/prefs.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { intParam, parsePrefs } from "../../web/logic/prefs.js";

const reader = (stored) => (key, dflt) => (key in stored ? stored[key] : dflt);

test("nothing stored: the defaults (the server's default window, its first symbols)", () => {
  assert.deepEqual(parsePrefs(reader({})), {
    interval: "1s",
    mode: "candles",
    log: false,
    windowMs: null,
    watch: [],
    watchStored: false,
    selected: null,
    sortKey: null,
    sortDir: 1,
  });
});

test("stored settings are read back, unusable ones fall back", () => {
  const p = parsePrefs(
    reader({ interval: "5s", mode: "line", log: "1", window: "250", watchlist: '["aapl","MSFT"]', selected: "MSFT", sort: "price:-1" }),
  );
  assert.deepEqual(p, {
    interval: "5s",
    mode: "line",
    log: true,
    windowMs: 250,
    watch: ["AAPL", "MSFT"],
    watchStored: true,
    selected: "MSFT",
    sortKey: "price",
    sortDir: -1,
  });
  const bad = parsePrefs(reader({ interval: "2h", mode: "bars", window: "7", watchlist: "{", sort: "bogus:1" }));
  assert.deepEqual(
    [bad.interval, bad.mode, bad.windowMs, bad.watch, bad.watchStored, bad.sortKey],
    ["1s", "candles", null, [], false, null],
  );
  // Every bar interval is remembered; the 1-minute one of earlier versions was spelled 1min.
  assert.equal(parsePrefs(reader({ interval: "1d" })).interval, "1d");
  assert.equal(parsePrefs(reader({ interval: "1min" })).interval, "1m");
  // 0 ms is a window (Number("") is 0 too, but an empty value is none).
  assert.equal(parsePrefs(reader({ window: "0" })).windowMs, 0);
  assert.equal(parsePrefs(reader({ window: "" })).windowMs, null);
  assert.deepEqual(parsePrefs(reader({ sort: "symbol:1" })).sortDir, 1);
  // An empty stored list is a choice (not the default list).
  assert.deepEqual(parsePrefs(reader({ watchlist: "[]" })).watchStored, true);
});

test("integer URL parameters are clamped, defaulted when missing or junk", () => {
  assert.equal(intParam("20", 10, 50000, 5000), 20);
  assert.equal(intParam("3", 10, 50000, 5000), 10);
  assert.equal(intParam("999999", 10, 50000, 5000), 50000);
  assert.equal(intParam(null, 10, 50000, 5000), 5000);
  assert.equal(intParam("abc", 10, 50000, 5000), 5000);
});

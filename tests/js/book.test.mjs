// Unit tests for the quote book (web/logic/book.js): snapshots, deltas, seq, volume steps: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { applyDelta, applySnapshot, seqStatus, volumeStep } from "../../web/logic/book.js";

const T0 = 1732640000000; // a whole minute

test("a snapshot replaces each symbol's quote", () => {
  const book = new Map([["AAPL", { symbol: "AAPL", price: 1, bid: 0.9 }]]);
  const syms = applySnapshot(book, { AAPL: { symbol: "AAPL", price: 2, ts: T0 } });
  assert.deepEqual(syms, ["AAPL"]);
  assert.deepEqual(book.get("AAPL"), { symbol: "AAPL", price: 2, ts: T0 });
});

test("a delta merges changed fields and keeps the rest", () => {
  const book = new Map();
  applySnapshot(book, {
    AAPL: { symbol: "AAPL", price: 189.31, bid: 189.3, ask: 189.32, volume: 100, ts: T0 },
  });
  const [u] = applyDelta(book, { AAPL: { price: 189.4, volume: 130, ts: T0 + 100 } });
  assert.equal(u.symbol, "AAPL");
  assert.equal(u.prevPrice, 189.31);
  assert.equal(u.prevVolume, 100);
  assert.equal(u.priced, true);
  assert.deepEqual(book.get("AAPL"), {
    symbol: "AAPL", price: 189.4, bid: 189.3, ask: 189.32, volume: 130, ts: T0 + 100,
  });
});

test("window high/low/count are returned, never stored in the quote", () => {
  const book = new Map();
  const [u] = applyDelta(book, {
    MSFT: { price: 10, ts: T0, w_high: 12, w_low: 9, w_count: 5 },
  });
  assert.deepEqual([u.wHigh, u.wLow, u.wCount], [12, 9, 5]);
  assert.deepEqual(book.get("MSFT"), { symbol: "MSFT", price: 10, ts: T0 });
  const [v] = applyDelta(book, { MSFT: { bid: 9.9, ts: T0 + 1 } });
  assert.equal(v.priced, false);
  assert.equal(v.wHigh, undefined);
});

test("a symbol first seen in a delta is created", () => {
  const book = new Map();
  applyDelta(book, { NEW: { symbol: "NEW", price: 5, ts: T0 } });
  assert.equal(book.get("NEW").price, 5);
});

test("seq: +1 is in order, a jump is a gap, an older one is stale", () => {
  assert.equal(seqStatus(null, 1), "first");
  assert.equal(seqStatus(4, 5), "ok");
  assert.equal(seqStatus(4, 7), "gap");
  assert.equal(seqStatus(4, 4), "stale");
});

test("volume steps are cumulative differences, never negative", () => {
  assert.equal(volumeStep(100, 130), 30);
  assert.equal(volumeStep(500, 20), 0); // a restarted session
  assert.equal(volumeStep(undefined, 20), 0);
});

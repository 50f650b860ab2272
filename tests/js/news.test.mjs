// Unit tests for the news store (web/logic/news.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { NewsStore } from "../../web/logic/news.js";

test("news: newest first, duplicates refused, lastId is the resume point", () => {
  const n = new NewsStore(3);
  assert.equal(n.add({ id: 5, symbols: ["AAPL"] }), true);
  assert.equal(n.add({ id: 7, symbols: ["MSFT"] }), true);
  assert.equal(n.add({ id: 5, symbols: ["AAPL"] }), false);
  assert.equal(n.add({ id: 6, symbols: ["AAPL", "MSFT"] }), true); // late: sorted in
  assert.deepEqual(n.items.map((i) => i.id), [7, 6, 5]);
  assert.equal(n.lastId, 7);
  assert.deepEqual(n.filtered("AAPL").map((i) => i.id), [6, 5]);
  assert.deepEqual(n.filtered(null, 1).map((i) => i.id), [7]);
  n.add({ id: 8, symbols: [] });
  assert.deepEqual(n.items.map((i) => i.id), [8, 7, 6]); // bounded
  assert.equal(n.add({ headline: "no id" }), false);
});

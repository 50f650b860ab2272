// Unit tests for the watchlist's decisions (web/logic/watchlist.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  nextSort,
  parseWatchlist,
  rowMove,
  searchSymbols,
  sortPref,
  sortSymbols,
  staleSymbols,
} from "../../web/logic/watchlist.js";

test("stored watchlists are cleaned up or refused", () => {
  assert.deepEqual(parseWatchlist('["aapl", "MSFT", "AAPL", 3, " tsla "]'), ["AAPL", "MSFT", "TSLA"]);
  assert.equal(parseWatchlist("{"), null);
  assert.equal(parseWatchlist('{"a": 1}'), null);
});

test("symbol search: prefix matches first, then substring, minus excluded", () => {
  const all = ["AAPL", "MA", "AMZN", "META", "GOOGL"];
  assert.deepEqual(searchSymbols(all, "a", ["AAPL"]), ["AMZN", "MA", "META"]);
  assert.deepEqual(searchSymbols(all, "  "), []);
  assert.deepEqual(searchSymbols(all, "goo"), ["GOOGL"]);
});

test("sorting by a quote field, missing values last", () => {
  const book = new Map([
    ["A", { price: 3, change_pct: -1 }],
    ["B", { price: 1, change_pct: 2 }],
    ["C", {}],
  ]);
  assert.deepEqual(sortSymbols(["A", "B", "C"], book, "price", 1), ["B", "A", "C"]);
  assert.deepEqual(sortSymbols(["A", "B", "C"], book, "change_pct", -1), ["B", "A", "C"]);
  assert.deepEqual(sortSymbols(["C", "B", "A"], book, "symbol", 1), ["A", "B", "C"]);
  assert.deepEqual(sortSymbols(["C", "B"], book, null), ["C", "B"]);
});

test("staleSymbols collects every feed's stale list, upper-cased, ignoring junk", () => {
  const h = {
    feeds: [
      { name: "sim", state: "running" },
      { name: "binance", stale: ["btcusdt", "ETHUSDT"] },
      { name: "coinbase", stale: ["BTC-USD", 7, null] },
      null,
    ],
  };
  assert.deepEqual([...staleSymbols(h)].sort(), ["BTC-USD", "BTCUSDT", "ETHUSDT"]);
  assert.equal(staleSymbols(null).size, 0);
  assert.equal(staleSymbols({ feeds: "x" }).size, 0);
});

test("header clicks: a new column sorts, a second click reverses, a third restores the list", () => {
  let s = { key: null, dir: 1 };
  const clicks = [];
  for (const k of ["symbol", "symbol", "symbol", "price", "price", "price", "change", "volume"]) {
    s = nextSort(s, k);
    clicks.push(sortPref(s.key, s.dir));
  }
  assert.deepEqual(clicks, ["symbol:1", "symbol:-1", "", "price:-1", "price:1", "", "change:-1", "volume:-1"]);
});

test("keyboard moves: one row, ten rows, the ends, clamped; other keys are not moves", () => {
  assert.equal(rowMove("ArrowDown", 3, 20), 4);
  assert.equal(rowMove("ArrowDown", 19, 20), 19);
  assert.equal(rowMove("ArrowUp", 0, 20), 0);
  assert.equal(rowMove("ArrowUp", 5, 20), 4);
  assert.equal(rowMove("PageDown", 15, 20), 19);
  assert.equal(rowMove("PageDown", 2, 20), 12);
  assert.equal(rowMove("PageUp", 4, 20), 0);
  assert.equal(rowMove("Home", 9, 20), 0);
  assert.equal(rowMove("End", 9, 20), 19);
  assert.equal(rowMove("Enter", 9, 20), null);
  assert.equal(rowMove("x", 9, 20), null);
});

test("symbol search by company name, after the ticker matches", () => {
  const all = ["AAPL", "MSFT", "AMD", "MS", "GOOGL"];
  const names = new Map([
    ["AAPL", "Apple Inc."],
    ["MSFT", "Microsoft Corporation"],
    ["AMD", "Advanced Micro Devices, Inc."],
    ["MS", "Morgan Stanley"],
  ]);
  assert.deepEqual(searchSymbols(all, "apple", [], 8, names), ["AAPL"]);
  assert.deepEqual(searchSymbols(all, "micro", [], 8, names), ["MSFT", "AMD"]);
  // Ticker matches first, then names.
  assert.deepEqual(searchSymbols(all, "ms", [], 8, names), ["MSFT", "MS"]);
  assert.deepEqual(searchSymbols(all, "soft", [], 8, names), ["MSFT"]);
  assert.deepEqual(searchSymbols(all, "stan", ["MS"], 8, names), []);
  assert.deepEqual(searchSymbols(all, "apple", []), []); // no names: tickers only
});

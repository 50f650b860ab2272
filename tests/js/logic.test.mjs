// Unit tests for the dashboard's pure client logic (web/logic.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  BarSeries,
  LineSeries,
  NewsStore,
  RateMeter,
  SparkSeries,
  applyDelta,
  applySnapshot,
  arrow,
  backoffDelay,
  coarsenBars,
  decimateLine,
  connectionState,
  fmtChange,
  fmtPct,
  fmtPrice,
  fmtVolume,
  lowerBound,
  median,
  nearestY,
  niceStep,
  parseWatchlist,
  replayFeeds,
  replayProgress,
  searchSymbols,
  seqStatus,
  sortSymbols,
  sparkGeometry,
  stickyRange,
  visibleRange,
  volumeStep,
  staleSymbols,
  wsAuth,
  adminFromHash,
} from "../../web/logic.js";

const T0 = 1732640000000; // a whole minute

// ---------------------------------------------------------------------------------------------
// Delta application

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

// ---------------------------------------------------------------------------------------------
// Bar building

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

// ---------------------------------------------------------------------------------------------
// News

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

// ---------------------------------------------------------------------------------------------
// Backoff

test("backoff grows exponentially, is capped, and is jittered within [cap/2, cap]", () => {
  const opts = { baseMs: 500, maxMs: 8000 };
  assert.equal(backoffDelay(0, opts, () => 0), 250);
  assert.equal(backoffDelay(0, opts, () => 1), 500);
  assert.equal(backoffDelay(3, opts, () => 1), 4000);
  assert.equal(backoffDelay(4, opts, () => 1), 8000);
  assert.equal(backoffDelay(40, opts, () => 1), 8000);
  assert.equal(backoffDelay(40, opts, () => 0), 4000);
  for (let a = 0; a < 12; a++) {
    const cap = Math.min(8000, 500 * 2 ** a);
    for (const r of [0, 0.3, 0.999]) {
      const d = backoffDelay(a, opts, () => r);
      assert.ok(d >= cap / 2 && d <= cap, `attempt ${a}: ${d}`);
    }
  }
  // The jitter really comes from the random source.
  assert.notEqual(backoffDelay(2, opts, () => 0.1), backoffDelay(2, opts, () => 0.9));
});

test("connection state: live, reconnecting, then offline after repeated failures", () => {
  assert.equal(connectionState({ connected: true }), "live");
  assert.equal(connectionState({ failures: 1 }), "reconnecting");
  assert.equal(connectionState({ failures: 6 }), "offline");
  assert.equal(connectionState({ online: false }), "offline");
});

// ---------------------------------------------------------------------------------------------
// Rates, watchlist, formatting, replay

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

test("formatting: digits, signs, arrows, volume", () => {
  assert.equal(fmtPrice(1234.5), "1,234.50");
  assert.equal(fmtPrice(0.12345), "0.1235");
  assert.equal(fmtPrice(undefined), "\u2014");
  assert.equal(fmtChange(0.68, 228.68), "+0.68");
  assert.equal(fmtChange(-1.5, 10), "\u22121.50");
  assert.equal(fmtChange(0, 10), "0.00");
  assert.equal(fmtPct(0.2982), "+0.30%");
  assert.equal(fmtPct(-0.001), "0.00%");
  assert.equal(arrow(1), "\u25b2");
  assert.equal(arrow(-1), "\u25bc");
  assert.equal(arrow(0), "\u00b7");
  assert.equal(fmtVolume(1234), "1,234");
  assert.equal(fmtVolume(12345), "12.3K");
  assert.equal(fmtVolume(2500000), "2.50M");
  assert.equal(fmtVolume(39_612_345), "39.6M");
  assert.equal(fmtVolume(123_456), "123K");
  assert.equal(fmtVolume(999_700), "1.00M");
  assert.equal(fmtVolume(4.2e9), "4.20B");
});

test("replay controls appear only for a 200 with replay feeds", () => {
  const feed = { name: "replay", state: "playing", speed: 1, clock: 5, start: 0, end: 10 };
  assert.deepEqual(replayFeeds(200, { feeds: [feed] }), [feed]);
  assert.deepEqual(replayFeeds(200, { feeds: [] }), []);
  assert.deepEqual(replayFeeds(404, null), []);
  assert.deepEqual(replayFeeds(200, { feeds: [{ name: "x" }] }), []);
  assert.equal(replayFeeds(200, { feeds: [{ ...feed, speed: null }] })[0].speed, "max");
  assert.equal(replayProgress(feed), 0.5);
  assert.equal(replayProgress({ ...feed, clock: 99 }), 1);
  assert.equal(replayProgress({ ...feed, start: null }), null);
});

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

test("wsAuth: a token goes in the subprotocol offer, beside ticker.v1", () => {
  assert.deepEqual(wsAuth(null), { protocols: undefined, query: "" });
  assert.deepEqual(wsAuth(""), { protocols: undefined, query: "" });
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln-_";
  assert.deepEqual(wsAuth(jwt), { protocols: ["ticker.v1", `bearer.${jwt}`], query: "" });
  // Characters a subprotocol cannot carry: the query string instead.
  assert.deepEqual(wsAuth("a b/c="), { protocols: undefined, query: "?token=a%20b%2Fc%3D" });
});

test("adminFromHash takes #admin= and keeps the rest of the hash", () => {
  assert.deepEqual(adminFromHash(""), { admin: null, hash: "" });
  assert.deepEqual(adminFromHash("#admin=s3cret"), { admin: "s3cret", hash: "" });
  assert.deepEqual(adminFromHash("#x=1&admin=a%20b&y"), { admin: "a b", hash: "#x=1&y" });
  assert.deepEqual(adminFromHash("#chart"), { admin: null, hash: "#chart" });
  assert.deepEqual(adminFromHash("#admin="), { admin: null, hash: "" });
  assert.deepEqual(adminFromHash("#admin=%E0%A4%A"), { admin: "%E0%A4%A", hash: "" });
});

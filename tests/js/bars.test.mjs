// Unit tests for the chart's bars (web/logic/bars.js): the store a `bars`/`bar` stream builds, the
// ops of a move, the `bad_interval` fallback: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  BarStore,
  BarStream,
  INTERVALS,
  INTERVAL_NAMES,
  coarser,
  fallbackInterval,
  intervalName,
} from "../../web/logic/bars.js";

const T0 = 1572946200000; // 2019-11-05 09:30 UTC, the S&P file's first bar

test("the intervals are the protocol's, finest first; 1min is 1m", () => {
  assert.deepEqual(INTERVAL_NAMES, ["1s", "5s", "15s", "1m", "5m", "15m", "1h", "1d"]);
  for (let i = 1; i < INTERVAL_NAMES.length; i++) {
    assert.ok(INTERVALS[INTERVAL_NAMES[i]] > INTERVALS[INTERVAL_NAMES[i - 1]]);
  }
  assert.equal(intervalName("1min"), "1m");
  assert.equal(intervalName("1d"), "1d");
  assert.equal(intervalName("2h"), null);
  assert.equal(intervalName("toString"), null);
});

test("a bars message replaces, a bar replaces the same t or appends a later one", () => {
  const s = new BarStore(60000);
  s.apply([T0 - 60000, 1, 1, 1, 1, 1]);
  s.replace([
    [T0, 10, 12, 9, 11, 100],
    [T0 + 60000, 11, 11.5, 10.5, 11.2, 50],
  ]);
  assert.deepEqual(s.t, [T0, T0 + 60000]);
  assert.equal(s.apply([T0 + 60000, 11, 11.8, 10.5, 11.7, 70]), "update");
  assert.deepEqual(s.rows().at(-1), [T0 + 60000, 11, 11.8, 10.5, 11.7, 70]);
  assert.equal(s.apply([T0 + 120000, 11.7, 11.7, 11.7, 11.7, 5]), "append");
  // A correction of an older bar is applied in place; an unknown older t is skipped.
  assert.equal(s.apply([T0, 10, 13, 9, 11, 100]), "update");
  assert.equal(s.high[0], 13);
  assert.equal(s.apply([T0 + 30000, 1, 1, 1, 1, 1]), "skip");
  assert.equal(s.apply([T0 + 180000, NaN, 1, 1, 1, 1]), "skip");
  assert.equal(s.apply("junk"), "skip");
  assert.equal(s.length, 3);
  // A fresh bars message (after a seek) replaces everything, even with older bars.
  s.replace([[T0 - 120000, 5, 6, 4, 5.5, 1]]);
  assert.deepEqual(s.rows(), [[T0 - 120000, 5, 6, 4, 5.5, 1]]);
  // Broken or out-of-order rows of a bars message are dropped; volume defaults to 0.
  s.replace([[T0, 1, 2, 0.5, 1.5], [T0 - 1, 1, 1, 1, 1, 1], [T0 + 1000, "x", 1, 1, 1, 1], null]);
  assert.deepEqual(s.rows(), [[T0, 1, 2, 0.5, 1.5, 0]]);
  s.replace(undefined);
  assert.equal(s.length, 0);
});

test("the store is bounded, the oldest bars dropped", () => {
  const s = new BarStore(1000, 3);
  s.replace([0, 1, 2, 3, 4].map((i) => [T0 + i * 1000, i, i, i, i, 1]));
  assert.deepEqual(s.close, [2, 3, 4]);
  s.apply([T0 + 5000, 5, 5, 5, 5, 1]);
  assert.deepEqual(s.t, [T0 + 3000, T0 + 4000, T0 + 5000]);
  assert.throws(() => new BarStore(0), RangeError);
});

// A reference server: trades folded into bars of `iv` ms; what a `bars` request answers (the last
// `limit` bars) and the `bar` messages of a live stream, with the protocol's guarantees (final
// values before a later bar; more than `burst` bars closed at once: a fresh `bars` instead).
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

function serverRun(seed, { iv = 1000, trades = 400, limit = 50, burst = 5 } = {}) {
  const r = rng(seed);
  const history = []; // every bar, [t, o, h, l, c, v]
  const msgs = [];
  let t = T0 + Math.floor(r() * 1000);
  let price = 100;
  let sent = 0; // bars up to this index sent final (or in a bars message)
  const fold = (ts, p, v) => {
    const b = Math.floor(ts / iv) * iv;
    const last = history.at(-1);
    if (last && last[0] === b) {
      last[2] = Math.max(last[2], p);
      last[3] = Math.min(last[3], p);
      last[4] = p;
      last[5] += v;
    } else {
      history.push([b, p, p, p, p, v]);
    }
  };
  // History before the client asks.
  for (let i = 0; i < 60; i++) {
    t += Math.floor(r() * 900);
    price += r() - 0.5;
    fold(t, price, 1 + Math.floor(r() * 10));
  }
  msgs.push({ type: "bars", bars: history.slice(-limit).map((b) => b.slice()) });
  sent = history.length - 1; // the forming bar is the last one sent
  for (let i = 0; i < trades; i++) {
    // Mostly small steps; now and then a long gap (bars close in a burst, as at speed=max).
    t += r() < 0.03 ? Math.floor(r() * 12000) : Math.floor(r() * 700);
    price += r() - 0.5;
    fold(t, Math.round(price * 100) / 100, 1 + Math.floor(r() * 10));
    const closed = history.length - 1 - sent;
    if (closed > burst) {
      msgs.push({ type: "bars", bars: history.slice(-limit).map((b) => b.slice()) });
    } else {
      for (let j = sent; j < history.length; j++) msgs.push({ type: "bar", bar: history[j].slice() });
    }
    sent = history.length - 1;
  }
  return { history, msgs };
}

test("property: applying the stream gives the server's history (random runs)", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const limit = 20 + (seed % 40);
    const iv = [1000, 5000, 60000][seed % 3];
    const { history, msgs } = serverRun(seed, { iv, limit, burst: 1 + (seed % 7) });
    const s = new BarStore(iv, limit);
    for (const m of msgs) {
      if (m.type === "bars") s.replace(m.bars);
      else assert.notEqual(s.apply(m.bar), "skip", `seed ${seed}`);
    }
    assert.deepEqual(s.rows(), history.slice(-limit), `seed ${seed}`);
    // Every bar's values are its own: high >= open, close >= low.
    for (let i = 0; i < s.length; i++) {
      assert.ok(s.high[i] >= Math.max(s.open[i], s.close[i]) && s.low[i] <= Math.min(s.open[i], s.close[i]));
    }
  }
});

test("property: a stream that starts again from a fresh bars at any point still ends equal", () => {
  for (let seed = 1; seed <= 50; seed++) {
    const { history, msgs } = serverRun(seed, { limit: 500, burst: 3 });
    const cut = Math.floor(msgs.length / 2);
    const s = new BarStore(1000, 500);
    // A reconnect: the client held some bars, a fresh bars message replaces them, the rest follows.
    for (const m of msgs.slice(0, cut)) if (m.type === "bar") s.apply(m.bar);
    s.replace(history.slice(0, 1)); // whatever the fresh answer held
    s.replace(msgs[0].bars);
    for (const m of msgs.slice(1)) if (m.type === "bars") s.replace(m.bars);
    else s.apply(m.bar);
    assert.deepEqual(s.rows(), history.slice(-500), `seed ${seed}`);
  }
});

test("a move sends unbars for the previous stream, then bars; a reconnect asks again", () => {
  const st = new BarStream();
  assert.deepEqual(st.open("SPX", "1m", 2000), [{ op: "bars", symbol: "SPX", interval: "1m", limit: 2000 }]);
  assert.ok(st.owns({ symbol: "SPX", interval: "1m" }));
  assert.ok(!st.owns({ symbol: "SPX", interval: "1s" }));
  assert.ok(!st.owns(null));
  assert.deepEqual(st.open("SPX", "5m", 99999), [
    { op: "unbars", symbol: "SPX", interval: "1m" },
    { op: "bars", symbol: "SPX", interval: "5m", limit: 5000 },
  ]);
  // The same stream again (a redraw): asked again, nothing to stop.
  assert.deepEqual(st.open("SPX", "5m", 10), [{ op: "bars", symbol: "SPX", interval: "5m", limit: 10 }]);
  assert.deepEqual(st.reconnect(300), [{ op: "bars", symbol: "SPX", interval: "5m", limit: 300 }]);
  assert.deepEqual(st.open("AAPL", "1s", 0), [
    { op: "unbars", symbol: "SPX", interval: "5m" },
    { op: "bars", symbol: "AAPL", interval: "1s", limit: 500 },
  ]);
  assert.deepEqual(new BarStream().reconnect(300), []);
  assert.deepEqual(st.open(null, "1s", 10), [{ op: "unbars", symbol: "AAPL", interval: "1s" }]);
  assert.deepEqual(st.open(null, "1s", 10), []);
});

test("bad_interval falls back to the data's own interval, else the next coarser one", () => {
  const msg = "this symbol's data has 1m bars: 1s bars cannot be made from it";
  assert.equal(fallbackInterval("1s", msg), "1m");
  assert.equal(fallbackInterval("15s", msg), "1m");
  assert.equal(fallbackInterval("5s", "no"), "15s");
  assert.equal(fallbackInterval("1h", "this symbol's data has 1d bars"), "1d");
  assert.equal(fallbackInterval("1d", "whatever"), null);
  assert.equal(fallbackInterval("bogus"), "1s");
  assert.equal(coarser("1s", "1m"), "1m");
  assert.equal(coarser("1d", "1m"), "1d");
  assert.equal(coarser("5s", null), "5s");
  assert.equal(coarser(null, "5s"), "5s");
});

// Unit tests for formatting (web/logic/format.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  arrow,
  escapeHtml,
  fmtChange,
  fmtClock,
  fmtMs,
  fmtPct,
  fmtPrice,
  fmtTime,
  plotDate,
  plotMs,
  fmtVolume,
  wrapHtml,
} from "../../web/logic/format.js";

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

test("times: the UTC clock (whatever the zone), durations", () => {
  const t = Date.UTC(2019, 10, 6, 9, 30, 5);
  assert.equal(fmtTime(t), "09:30:05");
  assert.equal(fmtClock(t), "2019-11-06 09:30:05");
  assert.equal(fmtClock(NaN), "\u2014");
  assert.equal(fmtTime(undefined), "\u2014");
  assert.equal(fmtMs(12.3), "12 ms");
  assert.equal(fmtMs(1234), "1.2 s");
  assert.equal(fmtMs(12345), "12 s");
  assert.equal(fmtMs(null), "\u2014");
  assert.equal(fmtClock(Date.UTC(2019, 0, 2, 23, 59, 59)), "2019-01-02 23:59:59");
});

test("plotly's date text is UTC, and reads back", () => {
  const t = Date.UTC(2019, 10, 8, 15, 59, 0, 250);
  assert.equal(plotDate(t), "2019-11-08 15:59:00.250");
  assert.equal(plotMs(plotDate(t)), t);
  assert.equal(plotMs("2019-11-08 15:59"), Date.UTC(2019, 10, 8, 15, 59));
  assert.equal(plotMs("2019-11-08"), Date.UTC(2019, 10, 8));
  assert.equal(plotMs(12.5), 12.5);
});

test("hover text: escaped, wrapped at word boundaries", () => {
  assert.equal(escapeHtml('<a href="x">&</a>'), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
  assert.equal(wrapHtml("aaa bbb ccc", 7), "aaa bbb<br>ccc");
  assert.equal(wrapHtml("<b> wins", 56), "&lt;b&gt; wins");
  assert.equal(wrapHtml("averyveryverylongword x", 5), "averyveryverylongword<br>x");
});

test("precision per symbol: from the prices seen, or a tick size; fmtPrice with it", async () => {
  const { Precision, decimalsOf, minDigits } = await import("../../web/logic/format.js");
  assert.equal(decimalsOf(228.37), 2);
  assert.equal(decimalsOf(1.08345), 5);
  assert.equal(decimalsOf(2.5e-7), 8);
  assert.equal(decimalsOf(2e-7), 7);
  assert.equal(decimalsOf(1.23e-9), 8); // capped
  assert.equal(decimalsOf(0.1 + 0.2), 8); // float noise stops at the cap
  assert.equal(decimalsOf(42), 0);
  assert.equal(minDigits(0.00001234), 8);
  assert.equal(minDigits(0.5), 4);
  assert.equal(minDigits(500), 2);
  const p = new Precision();
  assert.equal(p.digits("AAPL", 228.4), 2); // unknown: the default
  p.note("AAPL", { price: 228.4, bid: 228.39, ask: 228.41 });
  assert.equal(p.digits("AAPL", 228.4), 2);
  p.note("EURUSD", { price: 1.0834, bid: 1.08345, ask: 1.0835 });
  assert.equal(p.digits("EURUSD", 1.08), 5);
  assert.equal(fmtPrice(1.08, p.digits("EURUSD", 1.08)), "1.08000"); // pips kept
  p.note("PEPE", { price: 0.00001234 });
  assert.equal(fmtPrice(0.00001234, p.digits("PEPE", 0.00001234)), "0.00001234"); // not "0.0000"
  p.note("ES", { price: 5000.25, tick_size: 0.25 });
  p.note("ES", { price: 5000.5 });
  assert.equal(p.digits("ES", 5000.5), 2); // the tick size rules
  p.note("BTC", { price: 65000, tick_size: 1 });
  assert.equal(fmtPrice(65000, p.digits("BTC", 65000)), "65,000");
  assert.equal(fmtChange(0.00000012, 0.00001234, 8), "+0.00000012");
  p.forget("PEPE");
  assert.equal(p.digits("PEPE", 0.5), 4);
});

test("crosshair readout: time, O/H/L/C with the symbol's decimals, volume", async () => {
  const { fmtReadout } = await import("../../web/logic/format.js");
  const t = Date.UTC(2024, 4, 1, 12, 0, 5);
  const b = { t: [t], open: [1.0834], high: [1.08351], low: [1.0833], close: [1.0835], volume: [12345] };
  assert.equal(fmtReadout(b, 0, 5), "2024-05-01 12:00:05  O 1.08340  H 1.08351  L 1.08330  C 1.08350  V 12.3K");
  assert.ok(fmtReadout(b, 0, 2, 86400000).startsWith("2024-05-01  O 1.08"));
});

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

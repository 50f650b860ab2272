// The load generator's frame reader (bench/scan.mjs) against JSON.parse: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { readNumber, scanFrame } from "../../bench/scan.mjs";

function viaJson(text) {
  const m = JSON.parse(text);
  const kind = m.type === "delta" || m.type === "snapshot" ? m.type : null;
  if (kind === null) return { kind, seq: null, ts: [] };
  const ts = Object.values(m.quotes ?? {}).filter((q) => q.ts !== undefined).map((q) => q.ts);
  return { kind, seq: m.seq ?? null, ts };
}

function close(a, b) {
  assert.equal(a.kind, b.kind);
  assert.equal(a.seq, b.seq);
  assert.equal(a.ts.length, b.ts.length);
  a.ts.forEach((x, i) => assert.ok(Math.abs(x - b.ts[i]) < 1e-3, `${x} vs ${b.ts[i]}`));
}

test("frames read in place match JSON.parse (orjson and json.dumps spacing)", () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let n = 0; n < 500; n++) {
    const quotes = {};
    const k = Math.floor(rnd() * 6);
    for (let j = 0; j < k; j++) {
      const sym = `S${j}`;
      quotes[sym] = { symbol: sym, price: +(rnd() * 1000).toFixed(2), ts: 1.7e12 + rnd() * 1e9 };
      if (rnd() < 0.3) delete quotes[sym].ts;
    }
    const type = ["delta", "snapshot", "ack", "news"][Math.floor(rnd() * 4)];
    const msg = { type, seq: Math.floor(rnd() * 1e6) + 1, t: 1.7e12, quotes };
    const compact = JSON.stringify(msg);
    const spaced = compact.replace(/":/g, '": ').replace(/,"/g, ', "');
    close(scanFrame(Buffer.from(compact)), viaJson(compact));
    close(scanFrame(Buffer.from(spaced)), viaJson(spaced));
  }
});

test("numbers: negative, fraction, exponent, none", () => {
  const n = (s) => readNumber(Buffer.from(s), 0);
  assert.equal(n("42,"), 42);
  assert.equal(n("-3.5}"), -3.5);
  assert.equal(n("1.5e3,"), 1500);
  assert.ok(Math.abs(n("1732640000123.4}") - 1732640000123.4) < 1e-3);
  assert.ok(Number.isNaN(n("null")));
});

test("frames of other types carry no quotes", () => {
  assert.deepEqual(scanFrame(Buffer.from('{"type":"hello","seq":3}')), { kind: null, seq: null, ts: [] });
  assert.deepEqual(scanFrame(Buffer.from("[]")), { kind: null, seq: null, ts: [] });
});

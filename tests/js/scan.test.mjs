// The load generator's frame readers (bench/scan.mjs) against JSON.parse and a MessagePack decoder: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { encode } from "@msgpack/msgpack";

import { readMsgpackNumber, readNumber, scanFrame, scanMsgpack, SseSplitter } from "../../bench/scan.mjs";

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

// `count` random messages of every type (delta, snapshot, ack, news), 0-5 quotes each, some
// without `ts`; `ts` fractional ms or whole ms (a uint64 in MessagePack), `seq` in every
// MessagePack integer width.
function randomMessages(seed, count) {
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const out = [];
  for (let n = 0; n < count; n++) {
    const quotes = {};
    const k = Math.floor(rnd() * 6);
    for (let j = 0; j < k; j++) {
      const sym = `S${j}`;
      const ts = rnd() < 0.5 ? 1.7e12 + Math.floor(rnd() * 1e9) : 1.7e12 + rnd() * 1e9;
      quotes[sym] = { symbol: sym, price: +(rnd() * 1000).toFixed(2), ts, size: Math.floor(rnd() * 300) };
      if (rnd() < 0.3) delete quotes[sym].ts;
    }
    const type = ["delta", "snapshot", "ack", "news"][Math.floor(rnd() * 4)];
    const seq = [5, 200, 70000, 5e6][Math.floor(rnd() * 4)] + Math.floor(rnd() * 100);
    out.push({ type, seq, t: 1.7e12, quotes });
  }
  return out;
}

test("frames read in place match JSON.parse (orjson and json.dumps spacing)", () => {
  for (const msg of randomMessages(7, 500)) {
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

// MessagePack frames (ticker.v1.msgpack), encoded by @msgpack/msgpack: integers in their smallest
// form, floats as float64, as the server's msgspec encodes them.

test("MessagePack frames read in place match a MessagePack decoder", () => {
  for (const msg of randomMessages(11, 500)) {
    close(scanMsgpack(Buffer.from(encode(msg))), viaJson(JSON.stringify(msg)));
  }
});

test("MessagePack numbers: every integer and float form, and none", () => {
  for (const v of [0, 7, 127, -1, -32, -33, 200, -200, 60000, -30000, 4e9, -2e9, 2 ** 40, -(2 ** 40), 1.5, -0.25, 1732640000123.4]) {
    const b = Buffer.from(encode(v));
    assert.equal(readMsgpackNumber(b, 0), v, `${v} as ${b.toString("hex")}`);
  }
  assert.ok(Number.isNaN(readMsgpackNumber(Buffer.from(encode("x")), 0)));
  assert.ok(Number.isNaN(readMsgpackNumber(Buffer.from([0xcb, 1, 2]), 0))); // cut short
  assert.deepEqual(scanMsgpack(Buffer.from(encode({ type: "hello", seq: 1 }))), { kind: null, seq: null, ts: [] });
});

test("SSE events split out of a stream cut at every byte", () => {
  const events = [
    'event: hello\ndata: {"type":"hello"}\n\n',
    ": keep-alive\n\n",
    'event: delta\ndata: {"type":"delta","seq":2}\n\n',
    'event: news\nid: 42\ndata: {"type":"news","id":42}\n\n',
    'event: delta\r\ndata: {"type":"delta","seq":3}\r\n\r\n',
    "data: first\ndata: second\n\n",
  ];
  const want = ['{"type":"hello"}', '{"type":"delta","seq":2}', '{"type":"news","id":42}', '{"type":"delta","seq":3}', "first\nsecond"];
  const stream = Buffer.from(events.join(""));
  for (let cut = 1; cut <= stream.length; cut++) {
    const split = new SseSplitter();
    const got = [];
    for (let p = 0; p < stream.length; p += cut) got.push(...split.push(stream.subarray(p, p + cut)).map(String));
    assert.deepEqual(got, want, `cut every ${cut} bytes`);
  }
});

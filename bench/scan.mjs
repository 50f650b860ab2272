// What the load generator needs of a server frame, read straight from its bytes: its type
// (delta/snapshot), seq, and every quote's `ts`. JSON.parse of every frame made the load
// generator cost more CPU per frame than the server it measures; this reads the few fields in
// place (Buffer.indexOf is native) and allocates nothing. Accepts `"key": value` with or without
// spaces (Ticker's orjson and the naive baseline's json.dumps).
const TYPE = Buffer.from('"type":');
const SEQ = Buffer.from('"seq":');
const TS = Buffer.from('"ts":');
const DELTA = Buffer.from('"delta"');
const SNAPSHOT = Buffer.from('"snapshot"');

// Whether b holds `needle` at p (false past its end, where Buffer.compare would throw).
function at(b, p, needle) {
  return p + needle.length <= b.length && b.compare(needle, 0, needle.length, p, p + needle.length) === 0;
}

function skipSpaces(b, p) {
  while (b[p] === 32) p++;
  return p;
}

// The JSON number at b[p..] (NaN when there is none).
export function readNumber(b, p) {
  const start = p;
  let neg = false;
  if (b[p] === 45) { neg = true; p++; }
  let v = 0, digits = 0;
  while (b[p] >= 48 && b[p] <= 57) { v = v * 10 + (b[p] - 48); p++; digits++; }
  if (b[p] === 46) {
    p++;
    let f = 0.1;
    while (b[p] >= 48 && b[p] <= 57) { v += (b[p] - 48) * f; f /= 10; p++; digits++; }
  }
  if (b[p] === 101 || b[p] === 69) { // an exponent: rare, let V8 read it
    p++;
    if (b[p] === 43 || b[p] === 45) p++;
    while (b[p] >= 48 && b[p] <= 57) p++;
    return parseFloat(b.toString("latin1", start, p));
  }
  if (!digits) return NaN;
  return neg ? -v : v;
}

// {kind: "delta" | "snapshot" | null, seq: number | null, ts: number[]} of one frame.
export function scanFrame(b) {
  let p = b.indexOf(TYPE);
  if (p < 0) return { kind: null, seq: null, ts: [] };
  p = skipSpaces(b, p + TYPE.length);
  const kind = at(b, p, DELTA) ? "delta" : at(b, p, SNAPSHOT) ? "snapshot" : null;
  if (kind === null) return { kind, seq: null, ts: [] };
  const q = b.indexOf(SEQ);
  const seq = q < 0 ? null : readNumber(b, skipSpaces(b, q + SEQ.length));
  const ts = [];
  for (let k = b.indexOf(TS); k >= 0; k = b.indexOf(TS, k + TS.length)) {
    ts.push(readNumber(b, skipSpaces(b, k + TS.length)));
  }
  return { kind, seq, ts };
}

// The same, for a MessagePack frame (subprotocol ticker.v1.msgpack: one map per frame, the JSON
// message's keys and values): keys are fixstr, so `"ts":` is the bytes a2 74 73 and the number
// follows in any of MessagePack's integer or float forms.
const M_TYPE = Buffer.from([0xa4, 0x74, 0x79, 0x70, 0x65]);
const M_SEQ = Buffer.from([0xa3, 0x73, 0x65, 0x71]);
const M_TS = Buffer.from([0xa2, 0x74, 0x73]);
const M_DELTA = Buffer.from([0xa5, ...Buffer.from("delta")]);
const M_SNAPSHOT = Buffer.from([0xa8, ...Buffer.from("snapshot")]);

// The MessagePack number at b[p] (NaN when there is none).
export function readMsgpackNumber(b, p) {
  const t = b[p];
  if (t === undefined) return NaN;
  if (t <= 0x7f) return t;
  if (t >= 0xe0) return t - 0x100;
  if (p + 1 >= b.length) return NaN;
  switch (t) {
    case 0xcb: return p + 9 <= b.length ? b.readDoubleBE(p + 1) : NaN;
    case 0xca: return p + 5 <= b.length ? b.readFloatBE(p + 1) : NaN;
    case 0xcc: return b[p + 1];
    case 0xcd: return p + 3 <= b.length ? b.readUInt16BE(p + 1) : NaN;
    case 0xce: return p + 5 <= b.length ? b.readUInt32BE(p + 1) : NaN;
    case 0xcf: return p + 9 <= b.length ? Number(b.readBigUInt64BE(p + 1)) : NaN;
    case 0xd0: return b.readInt8(p + 1);
    case 0xd1: return p + 3 <= b.length ? b.readInt16BE(p + 1) : NaN;
    case 0xd2: return p + 5 <= b.length ? b.readInt32BE(p + 1) : NaN;
    case 0xd3: return p + 9 <= b.length ? Number(b.readBigInt64BE(p + 1)) : NaN;
    default: return NaN;
  }
}

// scanFrame for a MessagePack frame.
export function scanMsgpack(b) {
  const p = b.indexOf(M_TYPE);
  if (p < 0) return { kind: null, seq: null, ts: [] };
  const v = p + M_TYPE.length;
  const kind = at(b, v, M_DELTA) ? "delta" : at(b, v, M_SNAPSHOT) ? "snapshot" : null;
  if (kind === null) return { kind, seq: null, ts: [] };
  const q = b.indexOf(M_SEQ);
  const seq = q < 0 ? null : readMsgpackNumber(b, q + M_SEQ.length);
  const ts = [];
  for (let k = b.indexOf(M_TS); k >= 0; k = b.indexOf(M_TS, k + M_TS.length)) {
    ts.push(readMsgpackNumber(b, k + M_TS.length));
  }
  return { kind, seq, ts };
}

// Server-Sent Events off a byte stream: push() each chunk as it arrives, get back the `data:`
// of every event it completed (a Buffer each; the event's `event:`/`id:` lines are skipped, as
// the data carries its own `type`). Comment lines (`: keep-alive`) end no event. Events are
// separated by a blank line; the server writes `\n` line ends (the WHATWG format allows
// `\r\n` too: those are handled).
export class SseSplitter {
  constructor() { this.rest = null; }

  push(chunk) {
    let b = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    const out = [];
    let start = 0;
    for (;;) {
      let end = b.indexOf("\n\n", start);
      let sep = 2;
      const crlf = b.indexOf("\r\n\r\n", start);
      if (crlf >= 0 && (end < 0 || crlf < end)) { end = crlf; sep = 4; }
      if (end < 0) break;
      const data = dataOf(b, start, end);
      if (data !== null) out.push(data);
      start = end + sep;
    }
    this.rest = start < b.length ? Buffer.from(b.subarray(start)) : null;
    return out;
  }
}

const DATA = Buffer.from("data:");

function dataOf(b, start, end) {
  // One event's lines: the `data:` ones joined by "\n" (ours have one).
  const parts = [];
  let p = start;
  while (p < end) {
    let nl = b.indexOf(10, p);
    if (nl < 0 || nl > end) nl = end;
    let lineEnd = nl;
    if (lineEnd > p && b[lineEnd - 1] === 13) lineEnd--;
    if (p + DATA.length <= lineEnd && at(b, p, DATA)) {
      let v = p + DATA.length;
      if (b[v] === 32) v++;
      parts.push(b.subarray(v, lineEnd));
    }
    p = nl + 1;
  }
  if (!parts.length) return null;
  return parts.length === 1 ? parts[0] : Buffer.concat(parts.flatMap((x, i) => (i ? [Buffer.from("\n"), x] : [x])));
}

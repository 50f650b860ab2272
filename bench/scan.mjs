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
  const kind = b.compare(DELTA, 0, DELTA.length, p, p + DELTA.length) === 0
    ? "delta"
    : b.compare(SNAPSHOT, 0, SNAPSHOT.length, p, p + SNAPSHOT.length) === 0 ? "snapshot" : null;
  if (kind === null) return { kind, seq: null, ts: [] };
  const q = b.indexOf(SEQ);
  const seq = q < 0 ? null : readNumber(b, skipSpaces(b, q + SEQ.length));
  const ts = [];
  for (let k = b.indexOf(TS); k >= 0; k = b.indexOf(TS, k + TS.length)) {
    ts.push(readNumber(b, skipSpaces(b, k + TS.length)));
  }
  return { kind, seq, ts };
}

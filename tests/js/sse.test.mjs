// Unit tests for the client's side of GET /sse (web/logic/sse.js): the event-stream parser, the
// query, the link that answers ops (reopen, hello, acks in order, seq renumbered, news resumed),
// bars over HTTP and their polling. node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  SseLink,
  SseParser,
  barUpdates,
  barsQuery,
  closeComment,
  effectiveWindow,
  pollLimit,
  sseQuery,
} from "../../web/logic/sse.js";

test("parser: events cut anywhere, CRLF/CR/LF, comments, ids, multi-line data", () => {
  const p = new SseParser();
  const text = 'event: hello\ndata: {"type":"hello"}\n\n: keep\r\nevent: news\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\ndata:x\r\rretry: 5\n\n';
  const out = [];
  for (let i = 0; i < text.length; i += 3) out.push(...p.push(text.slice(i, i + 3)));
  assert.deepEqual(out, [
    { kind: "event", event: "hello", data: '{"type":"hello"}', id: null },
    { kind: "comment", text: "keep" },
    { kind: "event", event: "news", data: "a\nb", id: "7" },
    { kind: "event", event: "message", data: "x", id: "7" },
  ]);
  // A \r at a chunk's end and its \n at the next one's start are one line end.
  const q = new SseParser();
  assert.deepEqual([...q.push("data: 1\r"), ...q.push("\n\r"), ...q.push("\n")], [
    { kind: "event", event: "message", data: "1", id: null },
  ]);
  // An event without data is not dispatched; `event` resets at each blank line.
  assert.deepEqual(new SseParser().push("event: x\n\ndata: y\n\n"), [
    { kind: "event", event: "message", data: "y", id: null },
  ]);
});

test("close comments: the WebSocket close code the same condition gets", () => {
  assert.deepEqual(closeComment("close 1013 slow consumer"), { code: 1013, reason: "slow consumer" });
  assert.deepEqual(closeComment("close 1001"), { code: 1001, reason: "" });
  assert.equal(closeComment(""), null);
  assert.equal(closeComment("closed"), null);
});

test("query: only what is asked for; since only with news; names encoded", () => {
  const want = { throttleMs: null, maxBps: null, fields: null, symbols: new Set(), topics: null };
  assert.equal(sseQuery(want, 5), "");
  const full = { throttleMs: 250, maxBps: 2000, fields: ["price"], symbols: new Set(["AAPL", "BRK.B", "A&B"]), topics: ["*"] };
  assert.equal(sseQuery(full, 42), "throttle_ms=250&max_bps=2000&fields=price&symbols=AAPL,BRK.B,A%26B&news=*&since=42");
  assert.equal(sseQuery({ ...full, topics: [] }, 42), "throttle_ms=250&max_bps=2000&fields=price&symbols=AAPL,BRK.B,A%26B");
  assert.equal(sseQuery({ ...full, fields: [] }, null).includes("fields"), false);
  assert.equal(barsQuery({ symbol: "AAPL", interval: "1m", limit: 5 }), "symbol=AAPL&interval=1m&limit=5");
  assert.equal(barsQuery({ symbol: "A", interval: "1s", limit: 1, before: 9 }), "symbol=A&interval=1s&limit=1&before=9");
});

test("windows as the server makes them", () => {
  assert.equal(effectiveWindow(0), 0);
  assert.equal(effectiveWindow(-5), 0);
  assert.equal(effectiveWindow(3), 10);
  assert.equal(effectiveWindow(333), 330);
  assert.equal(effectiveWindow(1234), 1200);
  assert.equal(effectiveWindow(99999), 10000);
});

const HELLO = { type: "hello", v: 1, session: "s", throttle_ms: 100, symbols: ["AAPL", "MSFT"], news_last_id: 50 };

/** A link with its first stream open and greeted. */
function greeted() {
  const link = new SseLink();
  assert.equal(link.reopen(), "");
  assert.deepEqual(link.event(1, "hello", HELLO), [HELLO]);
  return link;
}

test("link: ops that change the query reopen once, and are acked at the new stream's hello", () => {
  const link = greeted();
  assert.deepEqual(link.send({ op: "throttle", ms: 333, id: 1 }, 0), { reopen: true, bars: null });
  assert.deepEqual(link.send({ op: "subscribe", symbols: ["aapl", "NOPE"], id: 2 }, 0), { reopen: true, bars: null });
  assert.deepEqual(link.send({ op: "news", topics: ["*"], since: 60, id: 3 }, 0), { reopen: true, bars: null });
  link.send({ op: "ping", t: -1 }, 0); // the fence
  assert.deepEqual(link.drain(), [], "nothing before the new stream says hello");
  assert.equal(link.reopen(), "throttle_ms=330&symbols=aapl,NOPE&news=*&since=60");
  // An event of the old stream is dropped; the new stream's hello is not shown again.
  assert.deepEqual(link.event(1, "delta", { type: "delta", seq: 9, quotes: {} }), []);
  assert.deepEqual(link.event(2, "hello", { ...HELLO, news_last_id: 70 }), [
    { type: "ack", id: 1, ms: 330 },
    { type: "ack", id: 2, symbols: ["AAPL", "NOPE"] },
    { type: "ack", id: 3, topics: ["*"], last_id: 70 },
    { type: "pong", t: -1 },
  ]);
  // Asking again for the same is answered at once, without a reopen.
  assert.deepEqual(link.send({ op: "subscribe", symbols: ["aapl"], id: 4 }, 0), { reopen: false, bars: null });
  assert.deepEqual(link.drain(), [{ type: "ack", id: 4, symbols: ["AAPL"] }]);
});

test("link: seq runs on across streams; news resumes after the last item; '*' exclusions filtered", () => {
  const link = greeted();
  link.send({ op: "subscribe", symbols: ["*"] }, 0);
  link.send({ op: "news", topics: ["*"] }, 0);
  link.reopen();
  link.event(2, "hello", HELLO);
  assert.equal(link.event(2, "snapshot", { type: "snapshot", seq: 1, quotes: { AAPL: { price: 1 } } })[0].seq, 1);
  assert.equal(link.event(2, "delta", { type: "delta", seq: 2, quotes: {} })[0].seq, 2);
  link.event(2, "news", { type: "news", id: 77 });
  link.send({ op: "unsubscribe", symbols: ["MSFT"], id: 5 }, 0); // under "*": no reopen
  assert.deepEqual(link.drain(), [{ type: "ack", id: 5, symbols: ["MSFT"] }]);
  const [d] = link.event(2, "delta", { type: "delta", seq: 3, quotes: { AAPL: { price: 2 }, MSFT: { price: 3 } } });
  assert.deepEqual(d.quotes, { AAPL: { price: 2 } });
  link.send({ op: "resync", id: 6 }, 0);
  assert.equal(link.reopen(), "symbols=*&news=*&since=77");
  link.event(3, "hello", HELLO);
  assert.deepEqual(link.drain(), []);
  const [snap] = link.event(3, "snapshot", { type: "snapshot", seq: 1, quotes: {} });
  assert.equal(snap.seq, 4, "the new stream's seq 1 follows the old stream's last");
});

test("link: a refused query fails its ops and goes back to the last query that worked", () => {
  const link = greeted();
  link.send({ op: "subscribe", symbols: ["AAPL"], id: 1 }, 0);
  link.reopen();
  link.event(2, "hello", HELLO);
  assert.deepEqual(link.drain(), []);
  link.send({ op: "fields", fields: ["colour"], id: 2 }, 0);
  link.send({ op: "ping", t: -3 }, 0);
  link.reopen();
  const { msgs, reopen } = link.refused(3, { error: "bad_request", message: "unknown field colour" });
  assert.deepEqual(msgs, [
    { type: "error", code: "bad_request", message: "unknown field colour", id: 2 },
    { type: "pong", t: -3 },
  ]);
  assert.equal(reopen, true);
  assert.equal(link.reopen(), "symbols=AAPL");
});

test("link: heartbeat pings are answered only while the stream is alive; fences always", () => {
  const link = greeted();
  link.bytes(1000);
  link.send({ op: "ping", t: 5 }, 1000 + 19000);
  assert.deepEqual(link.drain(), [{ type: "pong", t: 5 }]);
  link.send({ op: "ping", t: 6 }, 1000 + 21000); // silent for 21 s: no pong, the client drops it
  link.send({ op: "ping", t: -1 }, 1000 + 21000);
  assert.deepEqual(link.drain(), [{ type: "pong", t: -1 }]);
  link.send({ op: "wat", id: 9 }, 0);
  assert.equal(link.drain()[0].code, "unknown_op");
});

test("link: bars over HTTP in order with the acks; live streams polled; errors carry finest", () => {
  const link = greeted();
  const { bars: req } = link.send({ op: "bars", symbol: "aapl", interval: "1m", limit: 3, id: 1 }, 0);
  assert.deepEqual(req, { id: 1, symbol: "aapl", interval: "1m", limit: 3, before: undefined, live: true });
  link.send({ op: "ping", t: -1 }, 0);
  assert.deepEqual(link.drain(), [], "the fence waits for the HTTP answer");
  const rows = [[60000, 1, 2, 0.5, 1.5, 10], [120000, 1.5, 1.6, 1.4, 1.5, 3]];
  assert.deepEqual(link.barsAnswer(req, 200, { symbol: "AAPL", interval: "1m", bars: rows }), [
    { type: "ack", id: 1, symbol: "AAPL", interval: "1m", limit: 3 },
    { type: "bars", symbol: "AAPL", interval: "1m", bars: rows },
    { type: "pong", t: -1 },
  ]);
  assert.deepEqual(link.polls(), [{ key: "AAPL 1m", query: "symbol=AAPL&interval=1m&limit=4" }]);
  // The forming bar changed and a new one opened: two `bar` messages.
  const next = [rows[0], [120000, 1.5, 1.7, 1.4, 1.7, 5], [180000, 1.7, 1.7, 1.7, 1.7, 1]];
  assert.deepEqual(link.polled("AAPL 1m", next).msgs.map((m) => m.bar[0]), [120000, 180000]);
  assert.deepEqual(link.polled("AAPL 1m", next).msgs, []);
  // History went back (a replay seek): fetched whole again, as one fresh `bars`.
  assert.equal(link.polled("AAPL 1m", [rows[0]]).reset, true);
  assert.equal(link.refetchQuery("AAPL 1m"), "symbol=AAPL&interval=1m&limit=3");
  assert.deepEqual(link.refetched("AAPL 1m", [rows[0]]), [{ type: "bars", symbol: "AAPL", interval: "1m", bars: [rows[0]] }]);
  link.send({ op: "unbars", symbol: "AAPL", interval: "1m", id: 2 }, 0);
  assert.deepEqual(link.polls(), []);

  const { bars: bad } = link.send({ op: "bars", symbol: "AAPL", interval: "1s", limit: 5, id: 3 }, 0);
  link.drain();
  assert.deepEqual(link.barsAnswer(bad, 400, { error: "bad_interval", message: "1m data", finest: "1m" }), [
    { type: "error", code: "bad_interval", message: "1m data", id: 3, finest: "1m" },
  ]);
  assert.deepEqual(link.polls(), []);
  // A page of older history is not a live stream.
  const { bars: page } = link.send({ op: "bars", symbol: "AAPL", interval: "1m", limit: 5, before: 9, live: true }, 0);
  assert.equal(page.live, false);
});

test("bar updates: joined to the last bar held, or a reset", () => {
  const last = [120, 1, 1, 1, 1, 1];
  assert.deepEqual(barUpdates(null, [[60, 1, 1, 1, 1, 1]], 3), { bars: [[60, 1, 1, 1, 1, 1]], reset: false });
  assert.deepEqual(barUpdates(last, [], 3), { bars: [], reset: false });
  assert.deepEqual(barUpdates(last, [[60, 1, 1, 1, 1, 1], last], 3), { bars: [], reset: false });
  // More bars opened than a poll holds: bars in between may be missing.
  assert.deepEqual(barUpdates(last, [[180], [240], [300]].map((b) => [...b, 1, 1, 1, 1, 1]), 3).reset, true);
  // Fewer than the poll asked for: that is every bar there is (no empty bars), nothing missed.
  assert.deepEqual(barUpdates(last, [[300, 1, 1, 1, 1, 1]], 3), { bars: [[300, 1, 1, 1, 1, 1]], reset: false });
  assert.equal(barUpdates(last, [[60, 1, 1, 1, 1, 1]], 3).reset, true);
  assert.equal(pollLimit("1s", 1000), 4);
  assert.equal(pollLimit("1m", 1000), 4);
  assert.equal(pollLimit("1s", 5000), 8);
});

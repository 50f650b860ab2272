// Unit tests for the protocol session (web/logic/session.js): the handshake, acks, seq gaps and
// resyncs, the news resume point, and the backoff's attempts. node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { Session } from "../../web/logic/session.js";

function session() {
  const steps = [];
  const s = new Session((step) => steps.push(step));
  return { s, steps };
}

test("live once hello, the snapshot and the news ack are in, in either order", () => {
  const { s, steps } = session();
  s.begin();
  s.hello();
  s.snapshot(1);
  s.snapshotApplied();
  assert.equal(s.live, false);
  s.newsAcked();
  assert.equal(s.live, true);
  assert.equal(s.everLive, true);
  assert.deepEqual(steps, ["connecting", "resync", "live"]);

  const other = session();
  other.s.begin();
  other.s.hello();
  other.s.newsAcked();
  assert.equal(other.s.live, false);
  other.s.snapshotSkipped(); // nothing known to subscribe to: no snapshot comes
  assert.equal(other.s.live, true);
  assert.deepEqual(other.steps, ["connecting", "live"]);
});

test("no hello, no live; the handshake's snapshot step runs once", () => {
  const { s, steps } = session();
  s.begin();
  s.snapshot(1);
  s.snapshotApplied();
  s.newsAcked();
  assert.equal(s.live, false);
  s.snapshotApplied();
  assert.deepEqual(steps, ["connecting", "resync"]);
  s.hello();
  s.maybeLive();
  assert.equal(s.live, true);
});

test("a seq gap asks for one resync; the next snapshot is the new baseline", () => {
  const { s } = session();
  s.begin();
  s.snapshot(10);
  assert.equal(s.snapshots, 1);
  assert.equal(s.delta(11), false);
  assert.equal(s.delta(13), true); // missed 12
  assert.equal(s.resyncPending, true);
  assert.equal(s.delta(15), false); // already asked
  assert.equal(s.lastSeq, 15);
  assert.equal(s.delta(14), false); // stale: seq ignored
  assert.equal(s.lastSeq, 15);
  s.snapshot(20);
  assert.equal(s.resyncPending, false);
  assert.equal(s.lastSeq, 20);
  assert.equal(s.delta(21), false);
  assert.equal(s.delta(23), true);
  s.snapshot(5); // older than the stream: not a baseline
  assert.equal(s.lastSeq, 23);
  assert.equal(s.snapshots, 3);
});

test("requests get increasing ids; an ack runs its callback once; a new connection drops them", () => {
  const { s } = session();
  const acked = [];
  const a = s.request({ op: "subscribe", symbols: ["AAPL"] }, (m) => acked.push(m.id));
  assert.deepEqual(a, { op: "subscribe", symbols: ["AAPL"], id: 1 });
  const b = s.request({ op: "throttle", ms: 100 });
  assert.equal(b.id, 2);
  s.ack({ type: "ack", id: 1 });
  s.ack({ type: "ack", id: 1 });
  assert.deepEqual(acked, [1]);
  const c = s.request({ op: "news" }, (m) => acked.push(m.id));
  s.begin();
  s.ack({ type: "ack", id: c.id });
  assert.deepEqual(acked, [1]);
  assert.equal(s.request({ op: "x" }).id, 4); // ids keep increasing across connections
});

test("backoff: attempts count up while failing, start afresh after a live link", () => {
  const { s, steps } = session();
  s.begin();
  assert.equal(s.retry(1000, () => 1), 500);
  assert.equal(s.retryAt, 1500);
  assert.equal(s.retry(2000, () => 1), 1000);
  assert.equal(s.attempt, 2);
  assert.deepEqual(steps, ["connecting", "waiting", "waiting"]);
  s.begin();
  assert.equal(s.step, "connecting"); // never live yet
  s.hello();
  s.snapshotSkipped();
  s.newsAcked();
  assert.equal(s.attempt, 0);
  s.closed();
  assert.deepEqual([s.live, s.connected, s.attempt], [false, false, 0]);
  assert.equal(s.retry(0, () => 1), 500);
  s.begin();
  assert.equal(s.step, "reconnecting");
  s.closed(); // not live: the count goes on
  assert.equal(s.attempt, 1);
  s.dropped();
  assert.deepEqual([s.live, s.connected, s.attempt], [false, false, 1]);
});

test("news resume point: set by the first fetch, then moved by every newer item", () => {
  const { s } = session();
  s.news(50);
  assert.equal(s.newsCursor, null); // nothing to resume from before the first fetch
  s.resumeAfter([{ id: 7 }, { id: 9 }, { id: "x" }, { id: 8 }], 3);
  assert.equal(s.newsCursor, 9);
  s.news(12);
  s.news(10);
  assert.equal(s.newsCursor, 12);
  const empty = session().s;
  empty.resumeAfter([], 40);
  assert.equal(empty.newsCursor, 40);
  empty.resumeAfter([], undefined);
  assert.equal(empty.newsCursor, 0);
});

test("a pong's echo of our ping time is the round trip", () => {
  const { s } = session();
  s.pong({ type: "pong", t: 1000 }, 1012.5);
  assert.equal(s.rtt, 12.5);
  s.pong({ type: "pong" }, 2000);
  assert.equal(s.rtt, 12.5);
});

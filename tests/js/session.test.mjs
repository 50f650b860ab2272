// Unit tests for the protocol session (web/logic/session.js): the handshake, seq gaps and
// resyncs, the news resume point, and the backoff's attempts. node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { Session } from "../../web/logic/session.js";

function session() {
  const steps = [];
  const s = new Session((step) => steps.push(step));
  return { s, steps };
}

test("live once the hello is in and the handshake's requests are answered", () => {
  const { s, steps } = session();
  s.begin();
  s.ready(); // no hello: not live
  assert.equal(s.live, false);
  s.hello();
  assert.equal(s.connected, true);
  s.ready();
  assert.equal(s.live, true);
  assert.equal(s.everLive, true);
  s.ready(); // once
  assert.deepEqual(steps, ["connecting", "subscribing", "live"]);
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
  assert.equal(s.gaps, 2);
});

test("backoff: attempts count up while failing, start afresh after a live link", () => {
  const { s, steps } = session();
  s.begin();
  assert.equal(s.retry(1000, () => 1), 500);
  assert.equal(s.retryAt, 1500);
  assert.equal(s.retry(2000, () => 1), 1000);
  assert.equal(s.attempt, 2);
  assert.deepEqual(steps, ["connecting", "waiting", "waiting"]);
  const custom = new Session(() => {}, { baseMs: 250, maxMs: 5000 });
  assert.equal(custom.retry(0, () => 1), 250);
  for (let i = 0; i < 10; i++) custom.retry(0, () => 1);
  assert.equal(custom.retry(0, () => 1), 5000); // capped
  s.begin();
  assert.equal(s.step, "connecting"); // never live yet
  s.hello();
  s.ready();
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

test("news: each id delivered once, past the resume point; the first fetch sets it", () => {
  const { s } = session();
  assert.equal(s.news(50), true); // nothing to resume from yet: new
  assert.equal(s.newsCursor, 50);
  assert.equal(s.news(50), false); // again (a `since` replay overlapping)
  assert.equal(s.news(49), false);
  assert.equal(s.news("x"), false);
  assert.equal(s.news(51), true);
  s.resumeFrom(40); // older: the resume point stays
  assert.equal(s.newsCursor, 51);
  s.resumeFrom(60);
  assert.equal(s.news(55), false);
  const fresh = session().s;
  fresh.resumeAfter([{ id: 7 }, { id: 9 }, { id: "x" }, { id: 8 }], 3);
  assert.equal(fresh.newsCursor, 9);
  assert.equal(fresh.news(9), false);
  assert.equal(fresh.news(12), true);
  assert.equal(fresh.newsCursor, 12);
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
  s.pong({ type: "pong", t: -3 }, 2000); // a request's fence, not a time
  assert.equal(s.rtt, 12.5);
});

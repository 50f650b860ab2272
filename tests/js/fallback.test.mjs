// Unit tests for the WebSocket/SSE fallback decision (web/logic/fallback.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { FALLBACK, Fallback } from "../../web/logic/fallback.js";

test("three attempts in a row that end before a hello switch to the fallback", () => {
  const f = new Fallback();
  assert.equal(FALLBACK.after, 3);
  assert.deepEqual([f.failed(), f.failed()], [false, false]);
  assert.equal(f.active, false);
  assert.equal(f.failed(), true);
  assert.equal(f.active, true);
});

test("a hello in between starts the count afresh", () => {
  const f = new Fallback();
  f.failed();
  f.failed();
  f.hello();
  assert.deepEqual([f.failed(), f.failed(), f.failed()], [false, false, true]);
});

test("an outage fails both: the transports alternate", () => {
  const f = new Fallback({ after: 2 });
  f.failed();
  f.failed();
  assert.equal(f.active, true);
  f.failed();
  assert.equal(f.failed(), true);
  assert.equal(f.active, false, "back to the WebSocket");
});

test("probes back off while they fail; one that works leaves the fallback", () => {
  const f = new Fallback({ probeMs: 10, probeMaxMs: 50 });
  for (let i = 0; i < 3; i++) f.failed();
  assert.deepEqual([f.probeDelay()], [10]);
  const delays = [];
  for (let i = 0; i < 4; i++) {
    f.probeFailed();
    delays.push(f.probeDelay());
  }
  assert.deepEqual(delays, [20, 40, 50, 50]);
  f.probeOk();
  assert.equal(f.active, false);
  assert.equal(f.probeDelay(), 10);
});

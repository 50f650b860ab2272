// Unit tests for connection state (web/logic/connection.js): backoff, states, windows, the status line: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  HIDDEN_WINDOW_MS,
  backoffDelay,
  connectionState,
  connectionStatus,
  desiredWindow,
} from "../../web/logic/connection.js";

test("backoff grows exponentially, is capped, and is jittered within [cap/2, cap]", () => {
  const opts = { baseMs: 500, maxMs: 8000 };
  assert.equal(backoffDelay(0, opts, () => 0), 250);
  assert.equal(backoffDelay(0, opts, () => 1), 500);
  assert.equal(backoffDelay(3, opts, () => 1), 4000);
  assert.equal(backoffDelay(4, opts, () => 1), 8000);
  assert.equal(backoffDelay(40, opts, () => 1), 8000);
  assert.equal(backoffDelay(40, opts, () => 0), 4000);
  for (let a = 0; a < 12; a++) {
    const cap = Math.min(8000, 500 * 2 ** a);
    for (const r of [0, 0.3, 0.999]) {
      const d = backoffDelay(a, opts, () => r);
      assert.ok(d >= cap / 2 && d <= cap, `attempt ${a}: ${d}`);
    }
  }
  // The jitter really comes from the random source.
  assert.notEqual(backoffDelay(2, opts, () => 0.1), backoffDelay(2, opts, () => 0.9));
});

test("connection state: live, reconnecting, then offline after repeated failures", () => {
  assert.equal(connectionState({ connected: true }), "live");
  assert.equal(connectionState({ failures: 1 }), "reconnecting");
  assert.equal(connectionState({ failures: 6 }), "offline");
  assert.equal(connectionState({ online: false }), "offline");
});

test("the window asked for: slow when hidden, else the tab's, else the server's default", () => {
  assert.equal(desiredWindow(true, 250, 100), HIDDEN_WINDOW_MS);
  assert.equal(desiredWindow(false, 250, 100), 250);
  assert.equal(desiredWindow(false, 0, 100), 0); // 0 ms is a choice, not "unset"
  assert.equal(desiredWindow(false, null, 1000), 1000);
  assert.equal(desiredWindow(false, null, null), 100);
});

test("status line: connecting steps, then the retry countdown, offline, live with rtt", () => {
  const base = { live: false, everLive: false, attempt: 0, step: "connecting", retryAt: 0, rtt: null };
  assert.deepEqual(connectionStatus(base), { state: "connecting", detail: "" });
  assert.deepEqual(connectionStatus({ ...base, step: "handshake" }), {
    state: "connecting",
    detail: "handshake…",
  });
  const waiting = { ...base, attempt: 3, step: "waiting", retryAt: 11200 };
  assert.deepEqual(connectionStatus(waiting, { now: 10000 }), {
    state: "reconnecting",
    detail: "retry in 1.2 s · attempt 3",
  });
  assert.equal(connectionStatus({ ...waiting, retryAt: 0 }, { now: 10000 }).detail, "retry in 0.0 s · attempt 3");
  assert.equal(connectionStatus({ ...waiting, attempt: 6 }).state, "offline");
  assert.equal(connectionStatus(waiting, { online: false }).state, "offline");
  const again = { ...base, everLive: true, step: "subscribing" };
  assert.deepEqual(connectionStatus(again), { state: "reconnecting", detail: "subscribing…" });
  assert.deepEqual(connectionStatus({ ...again, step: "handshake" }).detail, "handshake…");
  assert.deepEqual(connectionStatus({ ...base, live: true, rtt: 12.3 }), { state: "live", detail: "rtt 12 ms" });
  assert.deepEqual(connectionStatus({ ...base, live: true }), { state: "live", detail: "" });
  // On the fallback the status names it instead of a round trip (a local one, meaningless).
  assert.deepEqual(connectionStatus({ ...base, live: true, rtt: 0, transport: "SSE" }), { state: "live", detail: "SSE" });
  assert.equal(connectionStatus({ ...base, transport: "SSE" }).state, "connecting");
});

// Unit tests for the replay bar's decisions (web/logic/replay.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { playCommand, replayFeeds, replayLabel, replayProgress, speedCommand } from "../../web/logic/replay.js";

test("replay controls appear only for a 200 with replay feeds", () => {
  const feed = { name: "replay", state: "playing", speed: 1, clock: 5, start: 0, end: 10 };
  assert.deepEqual(replayFeeds(200, { feeds: [feed] }), [feed]);
  assert.deepEqual(replayFeeds(200, { feeds: [] }), []);
  assert.deepEqual(replayFeeds(404, null), []);
  assert.deepEqual(replayFeeds(200, { feeds: [{ name: "x" }] }), []);
  assert.equal(replayFeeds(200, { feeds: [{ ...feed, speed: null }] })[0].speed, "max");
  assert.equal(replayProgress(feed), 0.5);
  assert.equal(replayProgress({ ...feed, clock: 99 }), 1);
  assert.equal(replayProgress({ ...feed, start: null }), null);
});

test("replay bar: the state line and the commands its controls send", () => {
  const feed = { name: "replay", state: "playing", speed: 1, clock: 5, start: 0, end: 10 };
  assert.equal(replayLabel(feed), "playing · 50%");
  assert.equal(replayLabel({ state: "paused" }), "paused");
  assert.deepEqual(playCommand(feed), { action: "pause" });
  assert.deepEqual(playCommand({ ...feed, state: "paused" }), { action: "resume" });
  assert.deepEqual(speedCommand("max"), { action: "speed", speed: "max" });
  assert.deepEqual(speedCommand("0.25"), { action: "speed", speed: 0.25 });
});

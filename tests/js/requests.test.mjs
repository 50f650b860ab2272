// Unit tests for requests answered by promise (web/logic/requests.js): ids, one ping fence per
// burst, what the server says before the fence's pong, bars matched by the ack's names, losses.
// node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { Requests } from "../../web/logic/requests.js";

function opened() {
  const r = new Requests();
  const done = [];
  const open = (obj) => r.open(obj, (o) => done.push(o));
  return { r, done, open };
}

test("ids increase; one fence covers every request since the last; its pong settles them", () => {
  const { r, done, open } = opened();
  assert.deepEqual(open({ op: "throttle", ms: 250 }), { op: "throttle", ms: 250, id: 1 });
  assert.equal(open({ op: "subscribe", symbols: ["AAPL"] }).id, 2);
  assert.deepEqual(r.fence(), { op: "ping", t: -1 });
  assert.equal(r.fence(), null); // nothing new to fence
  open({ op: "news", topics: ["*"] });
  assert.deepEqual(r.fence(), { op: "ping", t: -2 });
  assert.equal(r.ack({ type: "ack", id: 1, ms: 250 }), true);
  assert.equal(r.ack({ type: "ack", id: 2, symbols: ["AAPL"] }), true);
  assert.equal(r.ack({ type: "ack", id: 99 }), false);
  assert.equal(r.pong({ type: "pong", t: 1732640000000 }), false); // the heartbeat's
  assert.equal(r.pong({ type: "pong", t: -1 }), true);
  assert.deepEqual(
    done.map((o) => [o.id, o.ack.id, o.errors.length, o.lost]),
    [
      [1, 1, 0, null],
      [2, 2, 0, null],
    ],
  );
  assert.equal(r.pong({ type: "pong", t: -1 }), false); // once
  r.pong({ type: "pong", t: -2 });
  assert.equal(done[2].ack, null); // no ack came: the caller decides
  assert.equal(r.pending.size, 0);
});

test("errors before the fence belong to their request; a partly applied one keeps its ack", () => {
  const { r, done, open } = opened();
  open({ op: "subscribe", symbols: ["AAPL", "NOPE"] });
  const f = r.fence();
  r.ack({ type: "ack", id: 1, symbols: ["AAPL"] });
  const err = { type: "error", code: "unknown_symbol", message: "m", id: 1, symbols: ["NOPE"] };
  assert.equal(r.error(err), true);
  assert.equal(r.error({ type: "error", code: "bad_json", message: "m" }), false); // no id
  r.pong({ type: "pong", t: f.t });
  assert.deepEqual(done[0].errors, [err]);
  assert.deepEqual(done[0].ack.symbols, ["AAPL"]);
});

test("a bars answer goes to the pending bars request its ack names", () => {
  const { r, done, open } = opened();
  open({ op: "bars", symbol: "aapl", interval: "1min", limit: 2 });
  open({ op: "bars", symbol: "MSFT", interval: "1m" });
  const f = r.fence();
  const rows = [[1, 2, 3, 1, 2, 10]];
  assert.equal(r.bars({ type: "bars", symbol: "AAPL", interval: "1m", bars: rows }), false); // no ack yet
  r.ack({ type: "ack", id: 1, symbol: "AAPL", interval: "1m" });
  r.ack({ type: "ack", id: 2, symbol: "MSFT", interval: "1m" });
  assert.equal(r.bars({ type: "bars", symbol: "MSFT", interval: "1m", bars: [] }), true);
  assert.equal(r.bars({ type: "bars", symbol: "AAPL", interval: "1m", bars: rows }), true);
  assert.equal(r.bars({ type: "bars", symbol: "AAPL", interval: "1m", bars: rows }), false); // taken
  r.pong({ type: "pong", t: f.t });
  assert.deepEqual(done.map((o) => o.bars), [rows, []]);
});

test("a timeout loses one request; a dropped link loses every pending one", () => {
  const { r, done, open } = opened();
  open({ op: "resync" });
  open({ op: "throttle", ms: 0 });
  r.fence();
  open({ op: "subscribe", symbols: ["A"] });
  r.expire(2);
  r.expire(2);
  assert.deepEqual(done.map((o) => [o.id, o.lost]), [[2, "timeout"]]);
  r.dropAll();
  assert.deepEqual(done.map((o) => [o.id, o.lost]), [
    [2, "timeout"],
    [1, "disconnected"],
    [3, "disconnected"],
  ]);
  assert.equal(r.fence(), null);
  assert.equal(r.pong({ type: "pong", t: -1 }), false);
  assert.equal(open({ op: "resync" }).id, 4); // ids go on: a late answer matches nothing
});

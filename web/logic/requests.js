// Requests answered by promise (docs/protocol.md): each op goes out with a fresh `id`; a `ping`
// sent right after it is its fence. The server answers a connection's messages in order, so
// everything it says about a request (its `ack`, its `error`s, a `bars` request's `bars`) comes
// before the `pong` of that fence: at the pong the request is settled. One fence covers every
// request opened since the previous one (a burst of requests costs one ping). Fence pings carry
// a negative `t`, so they are never taken for the heartbeat's (a wall-clock time).
// Pure: the caller sends the messages, runs the timers and turns an outcome into a promise.

/**
 * @typedef {object} Outcome what the server said about one request, settled at its fence
 * @property {number} id the request's id
 * @property {object} request the request as sent
 * @property {object|null} ack its `ack` (null: none came)
 * @property {object[]} errors its `error` frames (the first one rejects it)
 * @property {Array<number[]>|null} bars a `bars` request's `bars` (null: none came)
 * @property {string|null} lost why no answer will come (`disconnected`, `timeout`), else null
 */

export class Requests {
  constructor() {
    this.nextId = 1; // ids keep increasing across connections: a late answer matches nothing
    this.nextFence = 1;
    this.pending = new Map(); // id -> entry
    this.unfenced = []; // ids opened since the last fence
    this.fences = new Map(); // fence t -> ids
  }

  /**
   * A request's message with a fresh `id`; `settle(outcome)` runs once, at its fence's pong,
   * or when it is lost.
   * @param {object} obj the op without `id`
   * @param {(o: Outcome) => void} settle
   * @returns {object} the message to send
   */
  open(obj, settle) {
    const id = this.nextId++;
    const msg = { ...obj, id };
    this.pending.set(id, { id, request: msg, settle, ack: null, errors: [], bars: null });
    this.unfenced.push(id);
    return msg;
  }

  /** The fence for every request opened since the last one (null: none is needed). */
  fence() {
    if (this.unfenced.length === 0) return null;
    const t = -this.nextFence++;
    this.fences.set(t, this.unfenced);
    this.unfenced = [];
    return { op: "ping", t };
  }

  /** An `ack`: true when it belongs to a pending request. */
  ack(m) {
    const p = this.pending.get(m.id);
    if (!p) return false;
    p.ack = m;
    return true;
  }

  /** An `error` frame: true when it belongs to a pending request. */
  error(m) {
    const p = this.pending.get(m.id);
    if (!p) return false;
    p.errors.push(m);
    return true;
  }

  /**
   * A `bars` message: the answer of the oldest pending `bars` request whose ack names the same
   * (symbol, interval) (the ack carries the server's names: `aapl`/`1min` become `AAPL`/`1m`).
   * True when one took it.
   */
  bars(m) {
    for (const p of this.pending.values()) {
      if (p.request.op !== "bars" || p.bars !== null || p.ack === null) continue;
      if (p.ack.symbol === m.symbol && p.ack.interval === m.interval) {
        p.bars = Array.isArray(m.bars) ? m.bars : [];
        return true;
      }
    }
    return false;
  }

  /** A `pong`: true when it is a fence's (its requests are settled). */
  pong(m) {
    const ids = this.fences.get(m.t);
    if (!ids) return false;
    this.fences.delete(m.t);
    for (const id of ids) this.finish(id, null);
    return true;
  }

  /** One request will get no answer (its timer ran out): settled as lost. */
  expire(id) {
    this.finish(id, "timeout");
  }

  /** The connection is gone: every pending request is settled as lost. */
  dropAll() {
    const ids = [...this.pending.keys()];
    this.unfenced = [];
    this.fences.clear();
    for (const id of ids) this.finish(id, "disconnected");
  }

  finish(id, lost) {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.settle({ id, request: p.request, ack: p.ack, errors: p.errors, bars: p.bars, lost });
  }
}

// The protocol session of one tab (docs/protocol.md): the handshake after every (re)connect
// (hello, then the subscribe's snapshot and the news ack make it live), request ids and their
// acks, the seq baseline (a gap asks for one resync), the news resume point, and the failed
// attempts behind the backoff. Pure: client.js owns the socket and the timers and does what
// these methods decide; `onStep` tells it the step changed (the status bar shows it).

import { seqStatus } from "./book.js";
import { backoffDelay } from "./connection.js";

const RETRY = Object.freeze({ baseMs: 500, maxMs: 15000 });

export class Session {
  /** @param {(step: string) => void} [onStep] called on every step change */
  constructor(onStep = () => {}) {
    this.onStep = onStep;
    this.step = "connecting";
    this.connected = false; // socket open and hello received
    this.live = false; // resynced (snapshot) and news resumed
    this.everLive = false;
    this.attempt = 0; // consecutive failed connection attempts
    this.retryAt = 0;
    this.gotSnapshot = false;
    this.gotNews = false;
    this.lastSeq = null;
    this.resyncPending = false;
    this.rtt = null;
    this.snapshots = 0;
    this.newsCursor = null; // resume point: highest news id seen or known to be covered
    this.nextId = 1;
    this.acks = new Map();
  }

  setStep(step) {
    this.step = step;
    this.onStep(step);
  }

  /** A new connection attempt: nothing of the previous connection's handshake carries over. */
  begin() {
    this.connected = false;
    this.live = false;
    this.gotSnapshot = false;
    this.gotNews = false;
    this.lastSeq = null;
    this.resyncPending = false;
    this.acks.clear();
    this.setStep(this.everLive ? "reconnecting" : "connecting");
  }

  /** The attempt failed or the link closed: how long to wait (ms) before the next one. */
  retry(now, random = Math.random) {
    const delay = backoffDelay(this.attempt, RETRY, random);
    this.attempt++;
    this.retryAt = now + delay;
    this.setStep("waiting");
    return delay;
  }

  /** The socket closed. A link that was live starts the backoff afresh. */
  closed() {
    const wasLive = this.live;
    this.connected = false;
    this.live = false;
    if (wasLive) this.attempt = 0;
  }

  /** We dropped a silent link ourselves (its close event no longer counts). */
  dropped() {
    this.connected = false;
    this.live = false;
  }

  /** A request's message (with a fresh `id`); `onAck` runs when its ack arrives. */
  request(obj, onAck) {
    const id = this.nextId++;
    if (onAck) this.acks.set(id, onAck);
    return { ...obj, id };
  }

  /** An `ack`: runs its request's callback, once. */
  ack(m) {
    const cb = this.acks.get(m.id);
    if (cb) {
      this.acks.delete(m.id);
      cb(m);
    }
  }

  hello() {
    this.connected = true;
  }

  pong(m, now) {
    if (typeof m.t === "number") this.rtt = now - m.t;
  }

  /** A snapshot (the subscribe's, a resync's or a window change's): the new seq baseline. */
  snapshot(seq) {
    if (seqStatus(this.lastSeq, seq) !== "stale" || this.lastSeq === null) this.lastSeq = seq;
    this.resyncPending = false;
    this.snapshots++;
  }

  /** After a snapshot's quotes are in: the handshake's snapshot step is done (once). */
  snapshotApplied() {
    if (this.gotSnapshot) return;
    this.gotSnapshot = true;
    if (!this.live) this.setStep("resync");
    this.maybeLive();
  }

  /** No snapshot will come (nothing to subscribe, or no symbol the server knows): none needed. */
  snapshotSkipped() {
    this.gotSnapshot = true;
    this.maybeLive();
  }

  /**
   * A delta's seq. True when a `resync` must be sent: missed frames (the values in this delta are
   * still the latest, but fields we never saw are stale), and no resync already asked for.
   */
  delta(seq) {
    const st = seqStatus(this.lastSeq, seq);
    const resync = st === "gap" && !this.resyncPending;
    if (resync) this.resyncPending = true;
    if (st !== "stale") this.lastSeq = seq;
    return resync;
  }

  /** A news item with a numeric id came in: the resume point moves past it. */
  news(id) {
    if (this.newsCursor !== null && id > this.newsCursor) this.newsCursor = id;
  }

  /** The first connection fetched the latest news over HTTP: the stream resumes after them. */
  resumeAfter(items, lastId) {
    let top = null;
    for (const it of items) if (typeof it.id === "number" && (top === null || it.id > top)) top = it.id;
    this.newsCursor = Math.max(top ?? 0, lastId ?? 0);
  }

  newsAcked() {
    this.gotNews = true;
    this.maybeLive();
  }

  maybeLive() {
    if (this.connected && this.gotSnapshot && this.gotNews && !this.live) {
      this.live = true;
      this.everLive = true;
      this.attempt = 0;
      this.setStep("live");
    }
  }
}

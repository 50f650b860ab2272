// The protocol session of one client (docs/protocol.md): the steps of a (re)connect (hello, then
// the handshake's requests answered: live), the seq baseline (a gap asks for one resync), the
// news resume point and dedupe, and the failed attempts behind the backoff. Pure: the client
// (ticker-client.js) owns the socket and the timers and does what these methods decide;
// `onStep` tells it the step changed (the dashboard's status bar shows it).

import { seqStatus } from "./book.js";
import { backoffDelay } from "./connection.js";

/** The dashboard's reconnect backoff: 0.5 s doubling to 5 s, jittered (README "Behaviour"). */
export const RETRY = Object.freeze({ baseMs: 500, maxMs: 5000 });

export class Session {
  /**
   * @param {(step: string) => void} [onStep] called on every step change
   * @param {{baseMs?: number, maxMs?: number, factor?: number}} [retry] the backoff
   */
  constructor(onStep = () => {}, retry = RETRY) {
    this.onStep = onStep;
    this.retryOpts = retry;
    this.step = "connecting";
    this.connected = false; // socket open and hello received
    this.live = false; // the handshake's requests (subscribe, news, ...) are answered
    this.everLive = false;
    this.attempt = 0; // consecutive failed connection attempts
    this.retryAt = 0;
    this.lastSeq = null;
    this.resyncPending = false;
    this.gaps = 0; // seq gaps seen (each answered by one resync)
    this.rtt = null;
    this.snapshots = 0;
    this.newsCursor = null; // resume point: highest news id seen or known to be covered
    this.transport = null; // the fallback's name (`SSE`) while on it; null: the WebSocket
  }

  setStep(step) {
    this.step = step;
    this.onStep(step);
  }

  /** A new connection attempt: nothing of the previous connection's handshake carries over. */
  begin() {
    this.connected = false;
    this.live = false;
    this.lastSeq = null;
    this.resyncPending = false;
    this.setStep(this.everLive ? "reconnecting" : "connecting");
  }

  /** The attempt failed or the link closed: how long to wait (ms) before the next one. */
  retry(now, random = Math.random) {
    const delay = backoffDelay(this.attempt, this.retryOpts, random);
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

  /** The server's hello: the handshake's requests go out next. */
  hello() {
    this.connected = true;
    this.setStep("subscribing");
  }

  /** Every request of the handshake is answered: live (the backoff starts afresh). */
  ready() {
    if (!this.connected || this.live) return;
    this.live = true;
    this.everLive = true;
    this.attempt = 0;
    this.setStep("live");
  }

  pong(m, now) {
    if (typeof m.t === "number" && m.t > 0) this.rtt = now - m.t;
  }

  /** A snapshot (the subscribe's, a resync's or a window change's): the new seq baseline. */
  snapshot(seq) {
    if (seqStatus(this.lastSeq, seq) !== "stale" || this.lastSeq === null) this.lastSeq = seq;
    this.resyncPending = false;
    this.snapshots++;
  }

  /**
   * A delta's seq. True when a `resync` must be sent: missed frames (the values in this delta are
   * still the latest, but fields we never saw are stale), and no resync already asked for.
   */
  delta(seq) {
    const st = seqStatus(this.lastSeq, seq);
    const resync = st === "gap" && !this.resyncPending;
    if (resync) {
      this.resyncPending = true;
      this.gaps++;
    }
    if (st !== "stale") this.lastSeq = seq;
    return resync;
  }

  /**
   * A news item's id. True when it is new (past the resume point, which moves to it); false for
   * one already delivered (a `since` replay overlapping what came before) or without an id.
   */
  news(id) {
    if (typeof id !== "number") return false;
    if (this.newsCursor !== null && id <= this.newsCursor) return false;
    this.newsCursor = id;
    return true;
  }

  /** News is asked for from `since` on: items up to it count as delivered. */
  resumeFrom(since) {
    if (typeof since === "number" && (this.newsCursor === null || since > this.newsCursor)) {
      this.newsCursor = since;
    }
  }

  /** The first connection fetched the latest news over HTTP: the stream resumes after them. */
  resumeAfter(items, lastId) {
    let top = null;
    for (const it of items) if (typeof it.id === "number" && (top === null || it.id > top)) top = it.id;
    this.newsCursor = Math.max(top ?? 0, lastId ?? 0);
  }
}

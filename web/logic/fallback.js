// When to leave the WebSocket for the fallback transport (Server-Sent Events) and when to try the
// WebSocket again. A proxy that refuses `Upgrade` makes every WebSocket attempt fail before the
// server's hello (the handshake is refused, or the socket closes at once): after `after` such
// attempts in a row (about 1-2 s with the dashboard's backoff) the next attempt goes over the
// fallback. While live on the fallback a WebSocket is opened beside it now and then (a probe:
// after `probeMs`, doubling to `probeMaxMs` while it keeps failing); a probe's hello moves the
// client back to the WebSocket. An outage fails both: `after` fallback attempts in a row without
// a hello go back to the WebSocket, so the two alternate (with the backoff growing) until one
// works. A reload starts over with the WebSocket. Pure: the client (ticker-client.js) opens the
// connections and runs the timers.

export const FALLBACK = Object.freeze({
  after: 3, // attempts in a row that end before a hello: then the other transport
  probeMs: 10000, // first WebSocket probe after the fallback is live
  probeMaxMs: 300000, // probes back off to one every 5 minutes
});

export class Fallback {
  /** @param {{after?: number, probeMs?: number, probeMaxMs?: number}} [opts] */
  constructor(opts = {}) {
    this.opts = { ...FALLBACK, ...opts };
    this.active = false; // the next attempts go over the fallback
    this.failures = 0; // attempts in a row, on the current transport, that ended before a hello
    this.probes = 0; // failed probes since the fallback went live
  }

  /** An attempt ended before its hello. True when the next one goes over the other transport. */
  failed() {
    this.failures++;
    if (this.failures < this.opts.after) return false;
    this.failures = 0;
    this.probes = 0;
    this.active = !this.active;
    return true;
  }

  /** A hello: the transport in use works. */
  hello() {
    this.failures = 0;
  }

  /** How long (ms) to stay on the fallback before the next WebSocket probe. */
  probeDelay() {
    return Math.min(this.opts.probeMaxMs, this.opts.probeMs * 2 ** this.probes);
  }

  /** A probe ended without a hello: the next one waits longer. */
  probeFailed() {
    this.probes++;
  }

  /** A probe's hello: WebSockets work (again); the next attempt goes over the WebSocket. */
  probeOk() {
    this.active = false;
    this.failures = 0;
    this.probes = 0;
  }
}

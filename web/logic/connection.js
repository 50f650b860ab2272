// Connection state: the reconnect backoff, the throttle window this tab asks for, and the status
// bar's state and detail. Pure: the caller passes the clock, `navigator.onLine` and visibility.

import { fmtMs } from "./format.js";

export const WINDOWS = Object.freeze([0, 100, 250, 1000]);
export const HIDDEN_WINDOW_MS = 5000;

/**
 * Reconnect backoff: exponential with "equal jitter" (never 0, so a fleet of tabs does not
 * reconnect in lock-step after a server restart, and never more than maxMs).
 */
export function backoffDelay(attempt, opts = {}, random = Math.random) {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? 15000;
  const factor = opts.factor ?? 2;
  const cap = Math.min(max, base * Math.pow(factor, Math.max(0, attempt)));
  return cap / 2 + random() * (cap / 2);
}

/** After how many failed attempts the status says "offline" rather than "reconnecting". */
export const OFFLINE_AFTER = 6;

export function connectionState({ online = true, failures = 0, connected = false }) {
  if (connected) return "live";
  if (!online || failures >= OFFLINE_AFTER) return "offline";
  return "reconnecting";
}

/**
 * The throttle window (ms) to ask the server for: a hidden tab asks for a slow one; otherwise
 * the tab's own choice, else the server's default.
 */
export function desiredWindow(hidden, windowMs, serverDefault) {
  if (hidden) return HIDDEN_WINDOW_MS;
  return windowMs ?? serverDefault ?? 100;
}

/**
 * The status bar's connection state and detail for a Session (session.js): `live` (with the
 * ping's round trip, or the fallback transport's name: `live · SSE`), `connecting` with its step until the first failure, then `reconnecting` or
 * `offline` with the retry countdown or the step in progress.
 * @returns {{state: string, detail: string}}
 */
export function connectionStatus(s, { online = true, now = 0 } = {}) {
  // Over the fallback the round trip is the transport's own (no ping reaches the server): the
  // status says which transport instead.
  if (s.live && s.transport) return { state: "live", detail: s.transport };
  if (s.live) return { state: "live", detail: s.rtt !== null ? `rtt ${fmtMs(s.rtt)}` : "" };
  if (!s.everLive && s.attempt === 0) {
    return { state: "connecting", detail: s.step === "connecting" ? "" : s.step + "…" };
  }
  const state = connectionState({ online, failures: s.attempt });
  if (s.step === "waiting") {
    const secs = Math.max(0, (s.retryAt - now) / 1000);
    return { state, detail: `retry in ${secs.toFixed(1)} s · attempt ${s.attempt}` };
  }
  return { state, detail: s.step + "…" };
}

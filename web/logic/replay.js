// The replay bar's decisions (README "Replay": GET /api/replay -> {"feeds": [...]}, POST to
// control it). Pure: replay.js does the fetching and the DOM.

/**
 * The replay feeds to show controls for; [] for a 404, a bad body or no replay. `speed` null
 * means "max" (as fast as possible).
 */
export function replayFeeds(status, body) {
  if (status !== 200 || !body || !Array.isArray(body.feeds)) return [];
  return body.feeds
    .filter((f) => f && typeof f === "object" && typeof f.state === "string")
    .map((f) => ({ ...f, speed: f.speed === null || f.speed === "max" ? "max" : f.speed }));
}

/** A replay's position as a fraction of its span (0..1), or null when unknown. */
export function replayProgress(f) {
  if (!f || !Number.isFinite(f.start) || !Number.isFinite(f.end) || !Number.isFinite(f.clock)) {
    return null;
  }
  if (f.end <= f.start) return 1;
  return Math.min(1, Math.max(0, (f.clock - f.start) / (f.end - f.start)));
}

/** The state line: "playing · 42%" (no percentage while the span is unknown). */
export function replayLabel(f) {
  const pct = replayProgress(f);
  return f.state + (pct === null ? "" : ` · ${Math.round(pct * 100)}%`);
}

/** The POST body for the play/pause button: pause a playing replay, else resume it. */
export function playCommand(f) {
  return { action: f.state === "playing" ? "pause" : "resume" };
}

/** The POST body for a speed picked in the select ("max" or a number as text). */
export function speedCommand(value) {
  return { action: "speed", speed: value === "max" ? "max" : Number(value) };
}

// Settings read back from storage (ticker.v1.*) and from the page URL, checked: anything unusable
// falls back to its default. Pure: the caller passes the reader.

import { intervalName } from "./bars.js";
import { WINDOWS } from "./connection.js";
import { SORT_KEYS, parseWatchlist } from "./watchlist.js";

/**
 * The remembered settings.
 * @param {(key: string, dflt: any) => any} load the stored text of `key`, or `dflt`
 */
export function parsePrefs(load) {
  const iv = load("interval", "1s");
  const windowText = load("window", "");
  const w = Number(windowText);
  const wl = parseWatchlist(load("watchlist", "null"));
  const out = {
    interval: intervalName(iv) ?? "1s", // "1min" (remembered by earlier versions) is "1m"
    mode: load("mode", "candles") === "line" ? "line" : "candles",
    log: load("log", "0") === "1", // a log price scale
    windowMs: WINDOWS.includes(w) && windowText !== "" ? w : null, // null: the server's default
    watch: wl ?? [],
    watchStored: wl !== null, // false: the default list (the server's first symbols) is used
    selected: load("selected", null),
    sortKey: null,
    sortDir: 1,
  };
  const sk = load("sort", "");
  if (sk) {
    const [k, d] = sk.split(":");
    if (SORT_KEYS.includes(k)) {
      out.sortKey = k;
      out.sortDir = d === "-1" ? -1 : 1;
    }
  }
  return out;
}

/** An integer URL parameter clamped to [lo, hi]; `dflt` when missing or not a number. */
export function intParam(text, lo, hi, dflt) {
  const v = Number.parseInt(text ?? "", 10);
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
}

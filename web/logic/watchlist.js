// The watchlist's decisions: stored lists, symbol search, sorting (and what a header click does
// to it), keyboard moves, and the symbols /healthz reports stale. Pure: watchlist.js is the DOM.

export const MAX_WATCH = 200;

/** A stored watchlist (JSON text) -> a clean list of symbols, or null when unusable. */
export function parseWatchlist(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(v)) return null;
  const out = [];
  for (const s of v) {
    if (typeof s !== "string") continue;
    const u = s.trim().toUpperCase();
    if (u && u.length <= 32 && !out.includes(u)) out.push(u);
    if (out.length >= MAX_WATCH) break;
  }
  return out;
}

/**
 * Symbols matching `query`: ticker prefix matches first, then ticker substrings, then company
 * names (`names`: symbol -> name, where a feed gives them) by a word's start, then anywhere in
 * them; excludes `exclude`.
 */
export function searchSymbols(all, query, exclude = [], limit = 8, names = null) {
  const q = query.trim().toUpperCase();
  if (!q) return [];
  const ex = new Set(exclude);
  const tiers = [[], [], [], []];
  for (const s of all) {
    if (ex.has(s)) continue;
    if (s.startsWith(q)) tiers[0].push(s);
    else if (s.includes(q)) tiers[1].push(s);
    else {
      const name = names?.get(s)?.toUpperCase();
      if (!name) continue;
      const at = name.indexOf(q);
      if (at < 0) continue;
      // A word's start ("micro" in "Advanced Micro Devices") ranks before the middle of one.
      const wordStart = at === 0 || /[^A-Z0-9]/.test(name[at - 1]);
      tiers[wordStart ? 2 : 3].push(s);
    }
  }
  return tiers.flat().slice(0, limit);
}

export const SORT_KEYS = Object.freeze([
  "symbol", "price", "change", "change_pct", "bid", "ask", "volume", "ts",
]);

/** Symbols ordered by a quote field (missing values last); key null keeps the given order. */
export function sortSymbols(symbols, book, key, dir = 1) {
  if (!key) return symbols.slice();
  const val = (s) => (key === "symbol" ? s : book.get(s)?.[key]);
  return symbols
    .map((s, i) => ({ s, i, v: val(s) }))
    .sort((a, b) => {
      const am = a.v === undefined || a.v === null;
      const bm = b.v === undefined || b.v === null;
      if (am || bm) return am === bm ? a.i - b.i : am ? 1 : -1;
      if (a.v < b.v) return -dir;
      if (a.v > b.v) return dir;
      return a.i - b.i;
    })
    .map((x) => x.s);
}

/**
 * The sort after a click on the header of `clicked`: a new column sorts (symbols A→Z, numbers
 * largest first), a second click reverses it, a third goes back to the list's own order (key
 * null; the direction is kept, as it was).
 */
export function nextSort({ key, dir }, clicked) {
  const first = clicked === "symbol" ? 1 : -1;
  if (key !== clicked) return { key: clicked, dir: first };
  if (dir === first) return { key, dir: -dir };
  return { key: null, dir };
}

/** The stored form of a sort ("price:-1"), "" for none. */
export function sortPref(key, dir) {
  return key ? `${key}:${dir}` : "";
}

const PAGE_ROWS = 10;

/**
 * Where a navigation key moves the selection from row `i` of `n`: ↑/↓ one row, PgUp/PgDn ten,
 * Home/End the ends. null for any other key.
 */
export function rowMove(key, i, n) {
  switch (key) {
    case "ArrowDown":
      return Math.min(n - 1, i + 1);
    case "ArrowUp":
      return Math.max(0, i - 1);
    case "Home":
      return 0;
    case "End":
      return n - 1;
    case "PageDown":
      return Math.min(n - 1, i + PAGE_ROWS);
    case "PageUp":
      return Math.max(0, i - PAGE_ROWS);
    default:
      return null;
  }
}

/**
 * Upper-cased symbols that any feed reports as stale in a `/healthz` body (`feeds[].stale`):
 * its upstream has stopped updating them.
 */
export function staleSymbols(health) {
  const out = new Set();
  const feeds = health && Array.isArray(health.feeds) ? health.feeds : [];
  for (const f of feeds) {
    if (!f || !Array.isArray(f.stale)) continue;
    for (const s of f.stale) if (typeof s === "string") out.add(s.toUpperCase());
  }
  return out;
}

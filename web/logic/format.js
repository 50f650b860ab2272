// Formatting: prices, changes, volumes, times, and the text of chart hover labels. Tabular figures
// are a CSS matter; these only pick digits and signs. Pure: no DOM.

const MINUS = "\u2212";
const fmtCache = new Map();

function numberFormat(digits) {
  let f = fmtCache.get(digits);
  if (!f) {
    f = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    fmtCache.set(digits, f);
  }
  return f;
}

/** The default decimals when nothing is known of a symbol: 2, or 4 below 1. */
export function priceDigits(p) {
  return Math.abs(p) >= 1 ? 2 : 4;
}

export const MAX_DIGITS = 8;

/**
 * The decimals a number is written with (its shortest round-trip form): 228.37 -> 2,
 * 1.08345 -> 5, 2.5e-7 -> 7; at most MAX_DIGITS (float noise such as 0.1 + 0.2 stops there).
 */
export function decimalsOf(x) {
  if (typeof x !== "number" || !Number.isFinite(x) || Number.isInteger(x)) return 0;
  const s = String(Math.abs(x));
  const e = s.indexOf("e-");
  if (e >= 0) {
    const mant = s.slice(0, e);
    const dot = mant.indexOf(".");
    return Math.min(MAX_DIGITS, Number(s.slice(e + 2)) + (dot < 0 ? 0 : mant.length - dot - 1));
  }
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : Math.min(MAX_DIGITS, s.length - dot - 1);
}

/**
 * Per-symbol price precision, learnt from the data: the decimals of a feed's tick size when it
 * gives one (`tick_size`), else the most decimals seen in its prices (bid, ask, last), never fewer
 * than 2 at 1 or more (prices read as money) nor fewer than the 4 significant digits a price below
 * 1 needs. So sub-cent crypto keeps its digits and FX its pips, and a stock stays at cents.
 */
export class Precision {
  constructor() {
    this.seen = new Map(); // symbol -> decimals seen (or of its tick size)
    this.tick = new Set(); // symbols whose decimals come from a tick size
  }

  /** A quote's prices (and tick size, if any) of `sym`. */
  note(sym, q) {
    if (!q) return;
    if (typeof q.tick_size === "number" && q.tick_size > 0) {
      this.seen.set(sym, decimalsOf(q.tick_size));
      this.tick.add(sym);
      return;
    }
    if (this.tick.has(sym)) return;
    let d = this.seen.get(sym) ?? 0;
    for (const v of [q.price, q.bid, q.ask]) {
      if (typeof v === "number") d = Math.max(d, decimalsOf(v));
    }
    this.seen.set(sym, d);
  }

  /** Decimals to show `sym`'s prices with (`p`: a price of it, for a symbol not seen yet). */
  digits(sym, p) {
    const d = this.seen.get(sym);
    const ref = typeof p === "number" && Number.isFinite(p) ? p : null;
    if (d === undefined) return ref === null ? 2 : priceDigits(ref);
    if (this.tick.has(sym)) return d;
    return Math.max(d, minDigits(ref));
  }

  forget(sym) {
    this.seen.delete(sym);
    this.tick.delete(sym);
  }
}

/** The fewest decimals a price is shown with: 2 from 1 up, else enough for 4 significant digits. */
export function minDigits(p) {
  if (p === null || p === 0 || Math.abs(p) >= 1) return 2;
  return Math.min(MAX_DIGITS, Math.max(2, 3 - Math.floor(Math.log10(Math.abs(p)))));
}

/** A price with `digits` decimals (default: priceDigits). */
export function fmtPrice(p, digits) {
  if (typeof p !== "number" || !Number.isFinite(p)) return "\u2014";
  return numberFormat(digits ?? priceDigits(p)).format(p);
}

function signed(v, digits, suffix = "") {
  if (typeof v !== "number" || !Number.isFinite(v)) return "\u2014";
  const s = numberFormat(digits).format(Math.abs(v));
  if (Number(s.replace(/,/g, "")) === 0) return s + suffix;
  return (v > 0 ? "+" : MINUS) + s + suffix;
}

/** A change in price, signed, with the price's decimals (`digits`, else priceDigits of `price`). */
export function fmtChange(v, price, digits) {
  return signed(v, digits ?? (typeof price === "number" ? priceDigits(price) : 2));
}

export function fmtPct(v) {
  return signed(v, 2, "%");
}

/** ▲ for a rise, ▼ for a fall, a middle dot when flat or unknown (colour is not the only cue). */
export function arrow(change) {
  if (typeof change !== "number" || !Number.isFinite(change) || change === 0) return "\u00b7";
  return change > 0 ? "\u25b2" : "\u25bc";
}

export function direction(change) {
  if (typeof change !== "number" || !Number.isFinite(change) || change === 0) return "flat";
  return change > 0 ? "up" : "down";
}

/** Volume in at most 5 characters: 1,234 · 12.3K · 123K · 1.23M · 12.3M · 123M · 1.23B. */
export function fmtVolume(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "\u2014";
  const a = Math.abs(v);
  if (a < 1e4) return numberFormat(0).format(v);
  for (const [unit, div] of [["K", 1e3], ["M", 1e6], ["B", 1e9], ["T", 1e12]]) {
    const x = v / div;
    if (Math.abs(x) < 999.5 || unit === "T") {
      const d = Math.abs(x) < 9.995 ? 2 : Math.abs(x) < 99.95 ? 1 : 0;
      return x.toFixed(d) + unit;
    }
  }
  return String(v);
}

function pad2(n) {
  return n < 10 ? "0" + n : String(n);
}

// Every time on the dashboard is UTC: the market clock the server's bars are aligned to (a 1d bar
// starts at UTC midnight; a replayed file's naive times are taken as UTC), the chart's time axis,
// the replay clock, the quotes' and news' times. One clock, whatever the browser's zone.

/** HH:MM:SS (UTC). */
export function fmtTime(ts) {
  if (typeof ts !== "number" || !Number.isFinite(ts)) return "\u2014";
  const d = new Date(ts);
  return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
}

export function fmtMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "\u2014";
  if (ms >= 10000) return (ms / 1000).toFixed(0) + " s";
  if (ms >= 1000) return (ms / 1000).toFixed(1) + " s";
  return Math.round(ms) + " ms";
}

/**
 * Epoch ms as plotly's date text "YYYY-MM-DD HH:MM:SS.sss" (UTC). Plotly reads a number on a date
 * axis in the browser's zone, but its date text as it is: text keeps the axis on the UTC clock.
 */
export function plotDate(ms) {
  return new Date(ms).toISOString().slice(0, 23).replace("T", " ");
}

/** Plotly's date text (UTC, as plotDate writes it, or a date alone) or a number -> epoch ms. */
export function plotMs(v) {
  if (typeof v === "number") return v;
  const s = String(v).trim();
  return Date.parse(s.length <= 10 ? `${s}T00:00:00Z` : `${s.replace(" ", "T")}Z`);
}

/** YYYY-MM-DD HH:MM:SS (UTC; the replay's market clock); an em dash when unknown. */
export function fmtClock(ms) {
  if (!Number.isFinite(ms)) return "\u2014";
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${fmtTime(ms)}`;
}

/** Text made safe for plotly's hover labels (they are HTML). */
export function escapeHtml(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

/** Escaped text broken into lines of at most `width` characters (words kept whole), joined by <br>. */
export function wrapHtml(s, width = 56) {
  const words = String(s).split(/\s+/);
  const lines = [];
  let cur = "";
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else {
      cur = cur ? cur + " " + w : w;
    }
  }
  if (cur) lines.push(cur);
  return lines.map(escapeHtml).join("<br>");
}

/**
 * The crosshair's readout of bar `i` of columns `b` (t, open, high, low, close, volume): its time
 * (UTC; the date alone for daily bars) and O/H/L/C with `digits` decimals, and its volume.
 */
export function fmtReadout(b, i, digits, widthMs = 1000) {
  const t = b.t[i];
  const when = widthMs >= 86400000 ? fmtClock(t).slice(0, 10) : fmtClock(t);
  const p = (v) => fmtPrice(v, digits);
  return `${when}  O ${p(b.open[i])}  H ${p(b.high[i])}  L ${p(b.low[i])}  C ${p(b.close[i])}  V ${fmtVolume(b.volume[i])}`;
}

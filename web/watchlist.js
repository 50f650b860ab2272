// The watchlist: one row per symbol (last with a flash on each change, change, bid/ask, volume,
// time, a 2-minute sparkline), selection and keyboard navigation, sorting, add/remove
// (remembered), rows greyed out (unknown to the server) or dimmed (stale upstream). Rows are
// drawn in the frame's table pass (frame.js), never straight from a message.

import { $, now } from "./dom.js";
import { arrow, direction, fmtChange, fmtPct, fmtPrice, fmtTime, fmtVolume } from "./logic/format.js";
import {
  MAX_WATCH,
  nextSort,
  rowMove,
  sortPref,
  sortSymbols,
  staleSymbols,
} from "./logic/watchlist.js";
import { Sparklines } from "./sparklines.js";
import { save } from "./storage.js";

const DEFAULT_WATCH_MAX = 60;
const FLASH_MS = 300;
const SORT_EVERY_MS = 1000;
const SELECT_SETTLE_MS = 150;
const STALE_POLL_MS = 5000;
const STALE_POLL_HIDDEN_MS = 15000;
const UNDO_MS = 8000; // how long a removal can be undone
const CELLS = ["sym", "spark", "last", "chg", "pct", "bid", "ask", "vol", "time", "x"];

export class Watchlist {
  /**
   * @param {{market: {book: Map<string, object>, known: string[]}, prefs: object,
   *          charted: () => string|null, onSelect: () => void,
   *          subscribe: (symbols: string[]) => void, unsubscribe: (symbols: string[]) => void,
   *          schedule: () => void}} deps
   */
  constructor({ market, prefs, charted, onSelect, subscribe, unsubscribe, schedule }) {
    Object.assign(this, { market, charted, onSelect, subscribe, unsubscribe, schedule });
    this.symbols = prefs.watch;
    this.stored = prefs.watchStored; // the list came from storage (not the default)
    this.selected = prefs.selected;
    this.sortKey = prefs.sortKey;
    this.sortDir = prefs.sortDir;
    this.sortedAt = 0;
    this.tbody = $("wl-body");
    this.rows = new Map(); // symbol -> row (its elements and what they show)
    this.sparklines = new Sparklines({ market, schedule });
    this.dirty = new Set(); // symbols whose row must be redrawn
    this.flashing = new Set();
    this.allDirty = true;
    this.selectTimer = null;
    this.staleTimer = null;
    this.undoable = null; // {sym, at}: the last removal, while its toast shows
    this.toastTimer = null;
    this.sparklines.onNames = () => this.nameRows();
  }

  wire() {
    this.tbody.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-symbol]");
      if (!tr) return;
      if (ev.target.closest(".rm")) this.remove(tr.dataset.symbol);
      else this.select(tr.dataset.symbol, { focus: true });
    });
    this.tbody.addEventListener("keydown", (ev) => this.onKey(ev));
    $("toast-undo").addEventListener("click", () => this.undo());
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "z" && (ev.ctrlKey || ev.metaKey) && this.undoable && !ev.target.closest("input, textarea")) {
        ev.preventDefault();
        this.undo();
      }
    });
    for (const b of document.querySelectorAll("th button[data-sort]")) {
      b.addEventListener("click", () => this.sortBy(b.dataset.sort));
    }
  }

  /** The first hello: the default list unless one was remembered, a selection, the rows. */
  init(known) {
    if (!this.stored) this.symbols = known.slice(0, DEFAULT_WATCH_MAX);
    if (!this.selected || !this.symbols.includes(this.selected)) this.selected = this.symbols[0] ?? null;
    this.tbody.textContent = "";
    this.rows.clear();
    for (const sym of this.symbols) this.tbody.appendChild(this.makeRow(sym).tr);
    this.markSelected();
    this.allDirty = true;
    this.schedule();
  }

  // Data in -----------------------------------------------------------------------------------

  /** A snapshot's quote. */
  snapshotQuote(sym, q) {
    this.dirty.add(sym);
    this.rows.get(sym)?.tr.classList.remove("unknown");
    this.sparklines.add(sym, q.ts, q.price);
  }

  /** A delta's update; true when it moved a listed symbol's price (the chart wants it too). */
  deltaUpdate(u) {
    const row = this.rows.get(u.symbol);
    if (!row) return false;
    this.dirty.add(u.symbol);
    const q = u.quote;
    if (!u.priced || typeof q.price !== "number") return false;
    if (typeof u.prevPrice === "number" && q.price !== u.prevPrice) row.flash = q.price > u.prevPrice ? 1 : -1;
    this.sparklines.add(u.symbol, q.ts, q.price);
    return true;
  }

  /**
   * Remembered symbols this server does not know (now): kept, greyed out, so a server restarted
   * with other feeds does not silently shrink the user's list.
   */
  markUnknown(symbols) {
    for (const sym of symbols) {
      const row = this.rows.get(String(sym).toUpperCase());
      if (row) {
        row.tr.classList.add("unknown");
        row.tr.title = "not known to this server";
      }
    }
    const list = symbols.map((s) => String(s).toUpperCase()).join(", ");
    if (list) this.toast(`${list}: not known to this server`);
  }

  /** A message at the bottom of the screen for a while, with an Undo button when `undo`. */
  toast(text, undo = false) {
    $("toast-text").textContent = text;
    $("toast-undo").hidden = !undo;
    $("toast").hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      $("toast").hidden = true;
      this.undoable = null;
    }, UNDO_MS);
  }

  /** Put the last removed symbol back where it was. */
  undo() {
    const u = this.undoable;
    if (!u) return;
    this.undoable = null;
    clearTimeout(this.toastTimer);
    $("toast").hidden = true;
    this.add(u.sym, u.at);
  }

  /** The company names (where the server knows them) in the symbol cells' titles. */
  nameRows() {
    for (const [sym, row] of this.rows) {
      const name = this.market.names?.get(sym);
      if (name && row.cells.sym.title === sym) row.cells.sym.title = `${sym} · ${name}`;
    }
  }

  /** Poll /healthz: symbols an upstream feed reports stale (`feeds[].stale`) are dimmed. */
  async checkStale() {
    let h = null;
    try {
      const r = await fetch("/healthz");
      if (r.ok) h = await r.json();
    } catch {
      h = null;
    }
    if (h) {
      const stale = staleSymbols(h);
      for (const [sym, row] of this.rows) {
        const on = stale.has(sym.toUpperCase());
        row.tr.classList.toggle("stale", on);
        if (on) row.tr.title = "stale: its upstream has stopped updating it";
        else if (row.tr.title.startsWith("stale")) row.tr.title = "";
      }
    }
    clearTimeout(this.staleTimer);
    this.staleTimer = setTimeout(() => this.checkStale(), document.hidden ? STALE_POLL_HIDDEN_MS : STALE_POLL_MS);
  }

  // Rows --------------------------------------------------------------------------------------

  makeRow(sym) {
    const tr = document.createElement("tr");
    tr.setAttribute("role", "row"); // explicit: CSS lays rows out as grid, not as a table
    tr.dataset.symbol = sym;
    tr.tabIndex = -1;
    tr.setAttribute("aria-selected", "false");
    const cells = {};
    for (const c of CELLS) {
      const td = document.createElement("td");
      td.className = c;
      td.setAttribute("role", c === "sym" ? "rowheader" : "gridcell");
      tr.appendChild(td);
      cells[c] = td;
    }
    cells.sym.textContent = sym;
    const name = this.market.names?.get(sym);
    cells.sym.title = name ? `${sym} · ${name}` : sym; // a long symbol is cut on screen
    cells.spark.appendChild(this.sparklines.create(sym));
    const arr = document.createElement("span");
    arr.className = "arr";
    arr.setAttribute("aria-hidden", "true");
    const chgText = document.createTextNode("");
    cells.chg.append(arr, chgText);
    cells.x.appendChild(removeButton(sym));
    const row = { tr, cells, arr, chgText, cache: {}, flash: 0, flashUntil: 0, dir: "" };
    this.rows.set(sym, row);
    return row;
  }

  renderRow(sym, row) {
    const q = this.market.book.get(sym);
    if (!q) return;
    const c = row.cells;
    const d = this.market.precision.digits(sym, q.price);
    setText(row, "last", c.last, fmtPrice(q.price, d));
    const dir = direction(q.change);
    if (row.dir !== dir) {
      row.dir = dir;
      c.chg.className = "chg " + dir;
      c.pct.className = "pct " + dir;
    }
    setText(row, "arr", row.arr, arrow(q.change));
    const chg = fmtChange(q.change, q.price, d);
    if (row.cache.chg !== chg) {
      row.cache.chg = chg;
      row.chgText.data = chg;
    }
    setText(row, "pct", c.pct, fmtPct(q.change_pct));
    setText(row, "bid", c.bid, fmtPrice(q.bid, d));
    setText(row, "ask", c.ask, fmtPrice(q.ask, d));
    setText(row, "vol", c.vol, fmtVolume(q.volume));
    setText(row, "time", c.time, fmtTime(q.ts));
    if (row.flash) {
      // A brief tint, switched on here and off in a later frame: two style changes per flash and
      // no per-frame animation (an animated background repaints the table 60 times a second).
      const cls = row.flash > 0 ? "last fu" : "last fd";
      if (c.last.className !== cls) c.last.className = cls;
      row.flashUntil = now() + FLASH_MS;
      row.flash = 0;
      this.flashing.add(row);
    }
  }

  /** End the flashes that are due; returns when the next one ends (Infinity: none). */
  endFlashes(t) {
    let next = Infinity;
    for (const row of this.flashing) {
      if (t >= row.flashUntil) {
        row.cells.last.className = "last";
        this.flashing.delete(row);
      } else if (row.flashUntil < next) {
        next = row.flashUntil;
      }
    }
    return next;
  }

  // The frame's table pass (frame.js) ---------------------------------------------------------

  /** Rows to redraw. */
  pending() {
    return this.dirty.size > 0;
  }

  /** When a sparkline wants drawing (Infinity: none). */
  sparksDueAt() {
    return this.sparklines.next;
  }

  /** Redraw every row and sparkline on the next pass. */
  markAllDirty() {
    this.allDirty = true;
  }

  /** Start of a frame: a pending full redraw marks every row. */
  prepare() {
    if (!this.allDirty) return;
    this.allDirty = false;
    for (const sym of this.rows.keys()) this.dirty.add(sym);
    this.sparklines.markAll(this.rows.keys());
  }

  draw(t) {
    if (this.sortKey) this.applySort(false);
    for (const sym of this.dirty) {
      const row = this.rows.get(sym);
      if (row) this.renderRow(sym, row);
    }
    this.dirty.clear();
    this.sparklines.draw(t);
  }

  // Selection, add, remove --------------------------------------------------------------------

  markSelected() {
    for (const [sym, row] of this.rows) {
      const on = sym === this.selected;
      row.tr.setAttribute("aria-selected", on ? "true" : "false");
      row.tr.tabIndex = on ? 0 : -1;
    }
    if (this.selected && !this.rows.has(this.selected)) {
      const first = this.rows.values().next().value;
      if (first) first.tr.tabIndex = 0;
    }
  }

  select(sym, { focus = false } = {}) {
    if (!sym || !this.rows.has(sym)) return;
    const changed = sym !== this.selected;
    this.selected = sym;
    save("selected", sym);
    this.markSelected();
    const row = this.rows.get(sym);
    if (focus) row.tr.focus({ preventScroll: false });
    row.tr.scrollIntoView({ block: "nearest" });
    if (changed) this.onSelect();
  }

  selectSoon(sym) {
    // Arrow keys move the highlight at once; the chart follows when the key rests (one fetch).
    this.selected = sym;
    this.markSelected();
    this.rows.get(sym)?.tr.focus();
    clearTimeout(this.selectTimer);
    this.selectTimer = setTimeout(() => {
      save("selected", sym);
      this.onSelect();
    }, SELECT_SETTLE_MS);
  }

  focusSelected() {
    this.rows.get(this.selected)?.tr.focus();
  }

  /** Add `sym` (at the end, or at position `at`: an undone removal). */
  add(sym, at = null) {
    sym = sym.toUpperCase();
    if (this.symbols.includes(sym)) {
      this.select(sym, { focus: true });
      return;
    }
    if (this.symbols.length >= MAX_WATCH) return;
    const i = at === null ? this.symbols.length : Math.min(at, this.symbols.length);
    const before = this.rows.get(this.symbols[i])?.tr ?? null;
    this.symbols.splice(i, 0, sym);
    this.remember();
    this.tbody.insertBefore(this.makeRow(sym).tr, before);
    this.subscribe([sym]);
    this.sparklines.backfill([sym]);
    this.select(sym);
    this.sortedAt = 0;
    this.schedule();
  }

  remove(sym) {
    const i = this.symbols.indexOf(sym);
    if (i < 0) return;
    const order = this.order();
    const pos = order.indexOf(sym);
    this.symbols.splice(i, 1);
    this.undoable = { sym, at: i };
    this.toast(`Removed ${sym}`, true);
    const row = this.rows.get(sym);
    const hadFocus = row && row.tr.contains(document.activeElement);
    row?.tr.remove();
    this.rows.delete(sym);
    this.sparklines.forget(sym);
    this.market.book.delete(sym);
    this.remember();
    this.unsubscribe([sym]);
    if (this.selected === sym) {
      const rest = order.filter((s) => s !== sym);
      const next = rest[Math.min(pos, rest.length - 1)] ?? null;
      this.selected = null;
      if (next) this.select(next, { focus: hadFocus });
      else this.markSelected();
    }
  }

  remember() {
    this.stored = true;
    save("watchlist", JSON.stringify(this.symbols));
  }

  onKey(ev) {
    const tr = ev.target.closest("tr[data-symbol]");
    if (!tr) return;
    const sym = tr.dataset.symbol;
    const order = this.order();
    const i = order.indexOf(sym);
    const j = rowMove(ev.key, i, order.length);
    if (j !== null) {
      ev.preventDefault();
      if (j !== i) this.selectSoon(order[j]);
    } else if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      clearTimeout(this.selectTimer);
      if (this.charted() !== sym) {
        this.selected = null;
        this.select(sym, { focus: true });
      }
    } else if (ev.key === "Delete" || ev.key === "Backspace") {
      ev.preventDefault();
      this.remove(sym);
    }
  }

  // Sorting -----------------------------------------------------------------------------------

  /** The symbols in the order shown. */
  order() {
    return Array.from(this.tbody.children, (tr) => tr.dataset.symbol);
  }

  sortBy(key) {
    ({ key: this.sortKey, dir: this.sortDir } = nextSort({ key: this.sortKey, dir: this.sortDir }, key));
    save("sort", sortPref(this.sortKey, this.sortDir));
    this.renderSortHeaders();
    if (this.sortKey) {
      this.applySort(true);
    } else {
      const frag = document.createDocumentFragment();
      for (const s of this.symbols) frag.appendChild(this.rows.get(s).tr);
      this.tbody.appendChild(frag);
    }
  }

  /** Reorder the rows (at most once a second while prices move, unless forced). */
  applySort(force) {
    const t = now();
    if (!force && t - this.sortedAt < SORT_EVERY_MS) return;
    this.sortedAt = t;
    const order = sortSymbols(this.symbols, this.market.book, this.sortKey, this.sortDir);
    const cur = this.order();
    if (order.length === cur.length && order.every((s, i) => s === cur[i])) return;
    const active = document.activeElement;
    const frag = document.createDocumentFragment();
    for (const s of order) {
      const row = this.rows.get(s);
      if (row) frag.appendChild(row.tr);
    }
    this.tbody.appendChild(frag);
    if (active && this.tbody.contains(active)) active.focus({ preventScroll: true });
  }

  renderSortHeaders() {
    for (const b of document.querySelectorAll("th button[data-sort]")) {
      const th = b.parentElement;
      if (b.dataset.sort === this.sortKey) th.setAttribute("aria-sort", this.sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }
}

function setText(row, key, el, text) {
  if (row.cache[key] !== text) {
    row.cache[key] = text;
    el.textContent = text;
  }
}

function removeButton(sym) {
  const rm = document.createElement("button");
  rm.type = "button";
  rm.className = "rm";
  rm.tabIndex = -1;
  rm.textContent = "×";
  rm.setAttribute("aria-label", `Remove ${sym}`);
  return rm;
}

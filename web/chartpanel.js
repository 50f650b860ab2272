// The chart panel: the price chart (chart.js) of the selected symbol, backfilled from
// /api/history when opened and after every reconnect, fed live prices; its header (symbol, last,
// change), the interval and mode controls, Live ⇥, the theme, the box's size.

import { api, historyUrl } from "./api.js";
import { PriceChart } from "./chart.js";
import { $ } from "./dom.js";
import { volumeStep } from "./logic/book.js";
import { arrow, direction, fmtChange, fmtPct, fmtPrice } from "./logic/format.js";
import { save } from "./storage.js";
import { onThemeChange, readTheme } from "./theme.js";

const LINE_HISTORY_POINTS = 900;
const BAR_HISTORY_MAX = 2000;
const NEWS_MARKERS = 100;

export class ChartPanel {
  /**
   * @param {{maxPoints: number, prefs: {interval: string, mode: string},
   *          market: {book: Map<string, object>, known: string[]}, selected: () => string|null,
   *          recentNews: (sym: string, limit: number) => object[], schedule: () => void}} deps
   */
  constructor({ maxPoints, prefs, market, selected, recentNews, schedule }) {
    this.maxPoints = maxPoints;
    this.market = market;
    this.selected = selected;
    this.recentNews = recentNews;
    this.schedule = schedule;
    this.interval = prefs.interval;
    this.mode = prefs.mode;
    this.theme = readTheme();
    this.chart = new PriceChart($("price-chart"), {
      maxPoints,
      onFollow: (on) => {
        $("follow").hidden = on;
      },
    });
  }

  wire() {
    for (const b of document.querySelectorAll("[data-interval]")) {
      b.addEventListener("click", () => this.setView("interval", b.dataset.interval));
    }
    for (const b of document.querySelectorAll("[data-mode]")) {
      b.addEventListener("click", () => this.setView("mode", b.dataset.mode));
    }
    $("follow").addEventListener("click", () => {
      this.chart.follow();
      this.schedule();
    });
    onThemeChange((theme) => {
      this.theme = theme;
      this.chart.setTheme(theme);
      this.schedule();
    });
    // The chart's box changes size with the layout, not only with the window.
    let resizeRaf = 0;
    new ResizeObserver(() => {
      if (resizeRaf) return;
      resizeRaf = requestAnimationFrame(() => {
        resizeRaf = 0;
        this.chart.resize(window.Plotly);
        this.schedule();
      });
    }).observe($("price-chart").parentElement);
  }

  /** `what` is "interval" or "mode": a new value is remembered and reopens the chart. */
  setView(what, value) {
    if (this[what] === value) return;
    this[what] = value;
    save(what, value);
    this.open();
  }

  /** Open the chart of the selected symbol (a new symbol, interval or mode). */
  open() {
    const sym = this.selected();
    if (!sym) return;
    this.chart.open(sym, this.interval, this.mode);
    this.chart.setTheme(this.theme);
    for (const it of this.recentNews(sym, NEWS_MARKERS).reverse()) this.chart.addNews(it);
    this.drawHead();
    this.syncSegs();
    this.loadHistory();
    this.schedule();
  }

  /** Backfill from /api/history (merged with what the chart has: never duplicated). */
  async loadHistory() {
    const chart = this.chart;
    const key = chart.key;
    const sym = this.selected();
    const line = this.mode === "line";
    const limit = line ? LINE_HISTORY_POINTS : Math.min(this.maxPoints, BAR_HISTORY_MAX);
    const url = historyUrl(sym, line ? "1s" : this.interval, limit);
    if (!chart.loading) chart.beginBackfill();
    if (!this.market.known.includes(sym)) {
      chart.endBackfill(); // this server has no history of it (and would answer 404)
      return;
    }
    let body = null;
    try {
      const r = await api(url);
      if (r.ok) body = await r.json();
    } catch {
      body = null;
    }
    if (chart.key !== key) return; // the user moved on meanwhile
    if (body) chart.backfill(body);
    else chart.endBackfill();
    this.schedule();
  }

  /** A snapshot's quote: the charted symbol's price is a point. */
  snapshotQuote(sym, q) {
    if (sym === this.selected()) this.chart.update(q.ts, q.price, {});
  }

  /** A delta's priced update (logic/book.js applyDelta) of the charted symbol. */
  deltaUpdate(u) {
    if (u.symbol !== this.selected()) return;
    const q = u.quote;
    this.chart.update(q.ts, q.price, {
      wHigh: u.wHigh,
      wLow: u.wLow,
      volume: volumeStep(u.prevVolume, q.volume),
    });
  }

  /** Draw everything again on the next frame (after a pause or a hidden spell). */
  redrawAll() {
    this.chart.needsFull = true;
    this.chart.dirty = true;
  }

  drawHead() {
    const sym = this.selected();
    $("chart-sym").textContent = sym ?? "—";
    const q = sym ? this.market.book.get(sym) : null;
    const el = $("chart-last");
    const text = q
      ? `${fmtPrice(q.price)}|${arrow(q.change)} ${fmtChange(q.change, q.price)} (${fmtPct(q.change_pct)})|${direction(q.change)}`
      : "";
    if (el.dataset.v === text) return;
    el.dataset.v = text;
    el.textContent = "";
    if (!q) return;
    const [p, ch, dir] = text.split("|");
    const a = document.createElement("span");
    a.textContent = p;
    const b = document.createElement("span");
    b.className = "sub " + dir;
    b.textContent = ch;
    el.append(a, b);
  }

  syncSegs() {
    for (const b of document.querySelectorAll("[data-interval]")) {
      b.setAttribute("aria-pressed", String(b.dataset.interval === this.interval));
      b.disabled = this.mode === "line";
    }
    for (const b of document.querySelectorAll("[data-mode]")) {
      b.setAttribute("aria-pressed", String(b.dataset.mode === this.mode));
    }
  }
}

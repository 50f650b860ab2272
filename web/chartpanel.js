// The chart panel: the price chart (chart.js) of the selected symbol, fed by the server's `bars`
// stream (docs/protocol.md "Bars": one `bars` answer, then `bar` updates; a fresh `bars` after a
// replay seek or a reconnect replaces everything); its header (symbol, last, change), the
// interval and mode controls, Live ⇥, the theme, the box's size. An interval finer than the
// symbol's data (`bad_interval`: 1s of a 1-minute bar file) falls back to the data's own.

import { PriceChart } from "./chart.js";
import { $ } from "./dom.js";
import { BarStream, INTERVALS, coarser, fallbackInterval } from "./logic/bars.js";
import { arrow, direction, fmtChange, fmtPct, fmtPrice } from "./logic/format.js";
import { save } from "./storage.js";
import { onThemeChange, readTheme } from "./theme.js";

const BARS_LIMIT = 2000; // bars asked for (and held, with ?points= lower): a day of 1-minute bars
const NEWS_MARKERS = 100;

export class ChartPanel {
  /**
   * @param {{maxPoints: number, prefs: {interval: string, mode: string},
   *          market: {book: Map<string, object>, known: string[]}, selected: () => string|null,
   *          recentNews: (sym: string, limit: number) => object[], schedule: () => void,
   *          request: (msg: object) => number, send: (msg: object) => void}} deps
   *   `request` sends an op with a fresh id (returned), `send` one without
   */
  constructor({ maxPoints, prefs, market, selected, recentNews, schedule, request, send }) {
    this.maxPoints = maxPoints;
    this.market = market;
    this.selected = selected;
    this.recentNews = recentNews;
    this.schedule = schedule;
    this.request = request;
    this.send = send;
    this.interval = prefs.interval; // the one chosen (remembered); a symbol's data may be coarser
    this.mode = prefs.mode;
    this.log = prefs.log === true;
    this.theme = readTheme();
    this.stream = new BarStream();
    this.finest = new Map(); // symbol -> its finest interval that worked, after a bad_interval
    this.requestId = null; // the `bars` op in flight (its errors carry the id)
    this.chart = new PriceChart($("price-chart"), {
      maxPoints,
      msg: $("chart-msg"),
      readout: $("readout"),
      digits: (sym, p) => market.precision.digits(sym, p),
      onFollow: (on) => {
        $("follow").hidden = on;
      },
    });
  }

  get limit() {
    return Math.min(this.maxPoints, BARS_LIMIT);
  }

  wire() {
    for (const b of document.querySelectorAll("[data-interval]")) {
      b.addEventListener("click", () => this.chooseInterval(b.dataset.interval));
    }
    for (const b of document.querySelectorAll("[data-mode]")) {
      b.addEventListener("click", () => this.setMode(b.dataset.mode));
    }
    $("log-scale").addEventListener("click", () => this.setLog(!this.log));
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

  /** A new interval is remembered and reopens the chart. */
  chooseInterval(interval) {
    if (this.interval === interval || !(interval in INTERVALS)) return;
    this.interval = interval;
    save("interval", interval);
    this.open();
  }

  /** Candles or line: the same bars, no new stream. */
  setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    save("mode", mode);
    this.chart.setMode(mode);
    this.syncSegs();
    this.schedule();
  }

  /** A log price scale, or linear (remembered). */
  setLog(on) {
    this.log = on;
    save("log", on ? "1" : "0");
    this.chart.setLog(on);
    this.syncSegs();
    this.schedule();
  }

  /** The interval the chart of `sym` shows: the chosen one, or its data's finest when coarser. */
  shownInterval(sym) {
    return coarser(this.interval, this.finest.get(sym) ?? null);
  }

  /**
   * Open the chart of the selected symbol (a new symbol or interval) and move the `bars` stream
   * to it. The same chart again (the selection re-announced) changes nothing.
   */
  open() {
    const sym = this.selected();
    if (!sym) return;
    const iv = this.shownInterval(sym);
    const chart = this.chart;
    this.note(this.fallbackNote(sym, iv));
    this.syncSegs();
    if (chart.symbol === sym && chart.interval === iv && this.stream.live && this.stream.owns({ symbol: sym, interval: iv })) {
      return;
    }
    chart.open(sym, iv, this.mode);
    chart.setLog(this.log);
    chart.setTheme(this.theme);
    for (const it of this.recentNews(sym, NEWS_MARKERS).reverse()) chart.addNews(it);
    this.drawHead();
    this.sendAll(this.stream.open(sym, iv, this.limit));
    this.schedule();
  }

  /** A new connection (after the first): ask for the stream again; its `bars` replaces the chart. */
  reconnect() {
    if (!this.stream.symbol) return this.open();
    this.sendAll(this.stream.reconnect(this.limit));
  }

  sendAll(msgs) {
    for (const m of msgs) {
      if (m.op === "bars") this.requestId = this.request(m);
      else this.send(m);
    }
  }

  /** A `bars` message: the chart's bars replaced (when it is this chart's stream). */
  onBars(m) {
    if (!this.stream.owns(m)) return;
    this.chart.setBars(m.bars);
    this.schedule();
  }

  /** A `bar` message: one bar of this chart's stream, new or changed. */
  onBar(m) {
    if (!this.stream.owns(m)) return;
    this.chart.applyBar(m.bar);
    this.schedule();
  }

  /**
   * An `error` message; true when it answered this chart's `bars` op. `bad_interval` moves the
   * chart to the data's own interval (or the next coarser one, until one works).
   */
  onError(m) {
    if (this.requestId === null || m.id !== this.requestId) return false;
    const sym = this.stream.symbol;
    const iv = this.stream.interval;
    this.requestId = null;
    if (m.code === "bad_interval" && sym && iv) {
      // The server names the data's finest interval (`finest`); older servers only in the text.
      const next = m.finest && m.finest !== iv ? m.finest : fallbackInterval(iv, m.message);
      if (next) {
        this.finest.set(sym, next);
        this.open();
        return true;
      }
    }
    this.chart.loading = false;
    this.note(`${sym} ${iv}: ${m.message || m.code}`);
    return true;
  }

  /** The note shown when the chosen interval is finer than what the symbol's data has. */
  fallbackNote(sym, shown) {
    return shown === this.interval ? "" : `${this.interval} unavailable: ${shown} data`;
  }

  note(text) {
    const el = $("chart-note");
    if (el.textContent !== text) el.textContent = text;
    el.title = text;
  }

  /** Draw everything again on the next frame (after a pause or a hidden spell). */
  redrawAll() {
    this.chart.needsFull = true;
    this.chart.dirty = true;
  }

  drawHead() {
    this.chart.showMsg();
    const sym = this.selected();
    $("chart-sym").textContent = sym ?? "—";
    const q = sym ? this.market.book.get(sym) : null;
    const d = q ? this.market.precision.digits(sym, q.price) : 2;
    const el = $("chart-last");
    const text = q
      ? `${fmtPrice(q.price, d)}|${arrow(q.change)} ${fmtChange(q.change, q.price, d)} (${fmtPct(q.change_pct)})|${direction(q.change)}`
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
    const sym = this.selected();
    const shown = sym ? this.shownInterval(sym) : this.interval;
    const finest = sym ? this.finest.get(sym) : undefined;
    for (const b of document.querySelectorAll("[data-interval]")) {
      const iv = b.dataset.interval;
      b.setAttribute("aria-pressed", String(iv === shown));
      // Finer than the symbol's data: the server has no such bars.
      const finer = finest !== undefined && INTERVALS[iv] < INTERVALS[finest];
      b.classList.toggle("na", finer);
      b.title = finer ? `${sym}'s data has ${finest} bars` : "";
    }
    for (const b of document.querySelectorAll("[data-mode]")) {
      b.setAttribute("aria-pressed", String(b.dataset.mode === this.mode));
    }
    $("log-scale").setAttribute("aria-pressed", String(this.log));
  }
}

// The watchlist's sparklines: the last two minutes of each symbol, one point per second
// (logic/spark.js), backfilled from /api/history, drawn as SVG polylines within a per-frame
// budget in the frame's table pass.

import { api, historyUrl } from "./api.js";
import { coarser, fallbackInterval } from "./logic/bars.js";
import { SparkSeries, sparkGeometry } from "./logic/spark.js";

const SPARK_POINTS = 120;
const SPARK_W = 100; // sparkline viewBox units (stretched to the cell)
const SPARK_H = 20;
const SPARK_EVERY_MS = 1000;
const SPARKS_PER_FRAME = 8;
const SPARK_FETCHES = 3; // history requests in flight at once
const SVG_NS = "http://www.w3.org/2000/svg";

export class Sparklines {
  /** @param {{market: {book: Map<string, object>, known: string[]}, schedule: () => void}} deps */
  constructor({ market, schedule }) {
    this.market = market;
    this.schedule = schedule;
    this.views = new Map(); // symbol -> its polyline, baseline and what they show
    this.series = new Map(); // symbol -> SparkSeries
    this.dirty = new Set();
    this.drawn = new Map(); // symbol -> when its sparkline was last drawn
    this.next = Infinity; // when a budgeted-out or not yet due sparkline wants drawing
  }

  /**
   * The SVG for a new row. An SVG polyline, not a canvas: 50 canvases are 50 layers for the
   * compositor to place on every frame; a polyline is a few display items in the table's own
   * layer. Its colour comes from CSS, so a theme change needs no redraw.
   */
  create(sym) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    // The baseline (the previous close) waits above the box until it falls inside the range.
    const base = document.createElementNS(SVG_NS, "line");
    base.setAttribute("class", "base");
    base.setAttribute("x1", "0");
    base.setAttribute("x2", String(SPARK_W));
    base.setAttribute("y1", "-10");
    base.setAttribute("y2", "-10");
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("class", "line");
    svg.append(base, line);
    this.views.set(sym, { line, base, points: "", cls: "", y: "" });
    return svg;
  }

  /** A listed symbol's price (others are ignored). */
  add(sym, ts, price) {
    if (!this.views.has(sym)) return;
    this.seriesFor(sym).add(ts, price);
    this.dirty.add(sym);
  }

  forget(sym) {
    this.views.delete(sym);
    this.series.delete(sym);
  }

  markAll(symbols) {
    for (const sym of symbols) this.dirty.add(sym);
  }

  seriesFor(sym) {
    let s = this.series.get(sym);
    if (!s) {
      s = new SparkSeries(1000, SPARK_POINTS);
      this.series.set(sym, s);
    }
    return s;
  }

  /** Symbol -> the finest interval its data has (`/api/symbols`), so no request is refused. */
  async finestIntervals() {
    try {
      const r = await api("/api/symbols");
      if (!r.ok) return new Map();
      const body = await r.json();
      // The same list names the symbols, where a feed knows their names (the search uses them).
      for (const s of body.symbols || []) {
        if (typeof s.name === "string" && s.name) this.market.names?.set(s.symbol, s.name);
      }
      this.onNames?.();
      return new Map((body.symbols || []).filter((s) => s.finest).map((s) => [s.symbol, s.finest]));
    } catch {
      return new Map();
    }
  }

  /** Start with the last two minutes of 1 s bars, or the data's own when coarser (a few requests at a time). */
  async backfill(symbols) {
    const queue = symbols.filter((sym) => this.market.known.includes(sym));
    const finest = await this.finestIntervals();
    const worker = async () => {
      while (queue.length) {
        const sym = queue.shift();
        try {
          let r = await api(historyUrl(sym, coarser("1s", finest.get(sym) ?? null), SPARK_POINTS));
          if (r.status === 400) {
            // bad_interval: the symbol's data is coarser (a replayed 1-minute or daily bar file);
            // its message names the data's interval.
            const err = await r.json().catch(() => ({}));
            const iv = fallbackInterval("1s", err.message);
            if (iv) r = await api(historyUrl(sym, iv, SPARK_POINTS));
          }
          if (!r.ok) continue;
          const body = await r.json();
          if (body.bars && body.bars.t.length) {
            this.seriesFor(sym).merge(body.bars);
            this.dirty.add(sym);
            this.schedule();
          }
        } catch {
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: SPARK_FETCHES }, worker));
  }

  /**
   * Sparklines have one point per second: each is redrawn at most once a second, and a frame
   * draws only a few of them, so 50 rows never land in one long frame.
   */
  draw(t) {
    let budget = SPARKS_PER_FRAME;
    let next = Infinity;
    for (const sym of this.dirty) {
      const due = (this.drawn.get(sym) ?? 0) + SPARK_EVERY_MS;
      if (t < due || budget <= 0) {
        next = Math.min(next, budget <= 0 ? t + 16 : due);
        continue;
      }
      budget--;
      this.drawOne(sym);
      this.drawn.set(sym, t);
      this.dirty.delete(sym);
    }
    this.next = next;
  }

  drawOne(sym) {
    const v = this.views.get(sym);
    const s = this.series.get(sym);
    if (!v || !s) return;
    const g = sparkGeometry(s.t, s.v, SPARK_W, SPARK_H, this.market.book.get(sym)?.prev_close);
    if (g.points !== v.points) {
      v.points = g.points;
      v.line.setAttribute("points", g.points);
    }
    const cls = g.up ? "up" : "down";
    if (v.cls !== cls) {
      v.cls = cls;
      v.line.setAttribute("class", "line " + cls);
    }
    const y = g.base === null ? "-10" : String(g.base);
    if (v.y !== y) {
      v.y = y;
      v.base.setAttribute("y1", y);
      v.base.setAttribute("y2", y);
    }
  }
}

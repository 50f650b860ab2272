// The price chart: one plotly graph div, drawn at most once per animation frame (frame.js), of the
// bars the server streams (docs/protocol.md "Bars"; chartpanel.js asks for them, logic/bars.js
// holds them). Candles, or a line of the closes with the bars' high/low as a band. Only the bars in
// view (plus half a view either side) go to plotly, merged into coarser candles when there are
// too many. The time axis is UTC, the market clock of the bars.

import { stickyRange, timeFormats } from "./logic/axis.js";
import { BarStore, INTERVALS } from "./logic/bars.js";
import { escapeHtml, plotDate, plotMs, wrapHtml } from "./logic/format.js";
import { DEFAULT_MAX_POINTS, coarsenBars, lowerBound, nearestY, visibleRange } from "./logic/series.js";

const FOLLOW_BARS = 120; // bars in view while following the live edge
const MAX_DRAWN_BARS = 400; // more than this in view: drawn as coarser candles
const MAX_MARKERS = 100;
const COST_FACTOR = 4; // at most one draw per 4 draw-costs: <= ~25% of the main thread
const MAX_GAP_MS = 250; // however slow a draw, the chart still moves 4 times a second

export class PriceChart {
  /**
   * @param {HTMLElement} gd the graph div
   * @param {{maxPoints?: number, onFollow?: (following: boolean) => void, msg?: HTMLElement}} opts
   */
  constructor(gd, opts = {}) {
    this.gd = gd;
    this.maxPoints = opts.maxPoints ?? DEFAULT_MAX_POINTS;
    this.onFollow = opts.onFollow ?? (() => {});
    this.msg = opts.msg ?? null; // the box's note while there is nothing to draw
    this.symbol = null;
    this.interval = "1s";
    this.mode = "candles";
    this.bars = null; // logic/bars.js BarStore of (symbol, interval)
    this.news = []; // {ts, headline, source}
    this.theme = null;
    this.following = true;
    this.loading = false; // waiting for the `bars` answer
    this.dirty = false;
    this.needsFull = true; // draw at once (not after the min gap): a new view, not an update
    this.revision = 0;
    this.renders = 0;
    this.listening = false;
    this.lastRender = -Infinity;
    this.cost = null; // moving average of a draw's cost (ms)
    this.yRange = null;
    this.volRange = null;
    this.drawnBars = 0;
    this.coarsen = 1;
  }

  get key() {
    return `${this.symbol}|${this.interval}|${this.mode}`;
  }

  /** A new chart (symbol or interval changed): no bars until the server's `bars` answer. */
  open(symbol, interval, mode = this.mode) {
    this.symbol = symbol;
    this.interval = interval;
    this.mode = mode;
    this.bars = new BarStore(INTERVALS[interval], this.maxPoints);
    this.loading = true;
    this.news = [];
    this.reset();
    this.showMsg();
  }

  /**
   * The note over the chart's box while nothing is drawn: no axes of an empty plot (-1..4, every
   * label 00:00:00), but what the chart waits for.
   */
  showMsg() {
    if (!this.msg) return;
    const n = this.bars ? this.bars.length : 0;
    let text = "";
    if (!window.Plotly) text = "Loading chart…";
    else if (this.loading) text = "Loading bars…";
    else if (!n) text = "No bars yet";
    else if (!this.renders) text = "Loading chart…";
    if (this.msg.textContent !== text) this.msg.textContent = text;
    this.msg.hidden = text === "";
  }

  /** Candles or line: the same bars, drawn another way. */
  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.reset();
  }

  reset() {
    this.following = true;
    this.yRange = null;
    this.volRange = null;
    this.onFollow(true);
    this.needsFull = true;
    this.dirty = true;
  }

  /** A `bars` message of this chart: it replaces every bar held (a first answer, a seek, a reconnect). */
  setBars(rows) {
    if (!this.bars) return;
    this.bars.replace(rows);
    this.loading = false;
    this.showMsg();
    this.yRange = null;
    this.volRange = null;
    this.needsFull = true;
    this.dirty = true;
  }

  /** A `bar` message of this chart: the same `t` replaced, a later one appended. */
  applyBar(row) {
    if (!this.bars || this.bars.apply(row) === "skip") return;
    this.dirty = true;
  }

  addNews(item) {
    if (!item || !(item.symbols || []).includes(this.symbol)) return;
    this.news.push(item);
    if (this.news.length > MAX_MARKERS) this.news.shift();
    this.needsFull = true;
    this.dirty = true;
  }

  setTheme(theme) {
    this.theme = theme;
    this.needsFull = true;
    this.dirty = true;
  }

  follow() {
    this.following = true;
    this.onFollow(true);
    this.needsFull = true;
    this.dirty = true;
  }

  /** Total points in the graph's traces (what the tests watch grow). */
  pointCount() {
    return (this.gd.data || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
  }

  // Drawing ------------------------------------------------------------------------------------

  layout(view, xRange, yRange, volRange) {
    const th = this.theme;
    const candles = this.mode === "candles";
    const axis = {
      gridcolor: th.grid,
      linecolor: th.line,
      zeroline: false,
      tickfont: { size: 10, color: th.muted },
      automargin: false,
    };
    const lay = {
      uirevision: this.key,
      datarevision: this.revision,
      paper_bgcolor: th.panel,
      plot_bgcolor: th.panel,
      font: { family: th.font, size: 11, color: th.text },
      margin: { l: 8, r: 58, t: 6, b: 22 },
      showlegend: false,
      dragmode: "pan",
      hovermode: "x",
      hoverlabel: { bgcolor: th.panel2, bordercolor: th.line, font: { color: th.text, size: 11 } },
      xaxis: withRange(this.xAxis(axis, view), xRange),
      yaxis: withRange(
        { ...axis, side: "right", tickformat: ",.2f", domain: candles ? [0.2, 1] : [0, 1], fixedrange: false },
        yRange,
      ),
    };
    if (candles) {
      lay.yaxis2 = {
        ...axis,
        domain: [0, 0.16],
        side: "right",
        showgrid: false,
        showticklabels: false,
        fixedrange: true,
        range: volRange || [0, 1],
        autorange: false,
      };
    }
    return lay;
  }

  /** The UTC time axis; its formats follow the bars' width and whether the view crosses days. */
  xAxis(axis, view) {
    const { tickformat, hoverformat } = timeFormats(view.widthMs, view.t0, view.t1);
    return {
      ...axis,
      type: "date",
      rangeslider: { visible: false },
      showspikes: true,
      spikemode: "across",
      spikethickness: 1,
      spikecolor: this.theme.muted,
      spikedash: "dot",
      hoverformat,
      ticklabeloverflow: "hide past domain", // never under the price labels on the right
      // One fixed format per view (tickformatstops is evaluated per tick on every draw).
      tickformat,
    };
  }

  markers(xs, ys, lastT) {
    const th = this.theme;
    const mx = [];
    const my = [];
    const text = [];
    if (xs.length) {
      const first = xs[0];
      for (const n of this.news) {
        const x = n.ts;
        // Only news within the bars' time (a replay's bars are years before a live feed's news).
        if (!(x >= first && x <= lastT)) continue;
        const y = nearestY(xs, ys, x);
        if (y === undefined) continue;
        mx.push(plotDate(x));
        my.push(y);
        text.push(`${wrapHtml(n.headline)}<br><span style="color:${th.muted}">${escapeHtml(n.source || "")}</span>`);
      }
    }
    return {
      type: "scatter",
      mode: "markers",
      x: mx,
      y: my,
      text,
      hovertemplate: "%{text}<extra></extra>",
      marker: { symbol: "triangle-down", size: 9, color: th.accent, line: { width: 1, color: th.panel } },
      cliponaxis: false,
    };
  }

  /** The time window in view (epoch ms): the last bars while following, else the user's (plotly's UTC text). */
  window() {
    const s = this.bars;
    const n = s.length;
    const iv = s.intervalMs;
    if (n && this.following) {
      // By index, not by time: a market's nights and weekends do not empty the view. Both edges
      // move only when a bar opens: no axis redraw while the forming bar updates.
      return [s.t[Math.max(0, n - FOLLOW_BARS)] - iv * 0.75, s.t[n - 1] + iv * 4];
    }
    const r = n ? this.gd._fullLayout?.xaxis?.range : null;
    return r ? r.map(plotMs) : [-Infinity, Infinity];
  }

  /** The bars to draw: those in view plus half a view either side (for panning), coarsened when too many. */
  view() {
    const s = this.bars;
    const n = s.length;
    const iv = s.intervalMs;
    const [x0, x1] = this.window();
    // Plotly redraws every bar it is given, visible or not (5,000 candles: ~400 ms). So it gets
    // the bars in view plus half a view either side for panning, merged into coarser candles
    // when that is still more than MAX_DRAWN_BARS.
    const margin = this.following ? iv : (x1 - x0) / 2;
    const a = Number.isFinite(x0) ? lowerBound(s.t, x0 - margin - iv) : 0;
    const b = Number.isFinite(x1) ? lowerBound(s.t, x1 + margin) : n;
    const k = Math.max(1, Math.ceil((b - a) / MAX_DRAWN_BARS));
    const bars = coarsenBars(s, a, b, k);
    const finite = Number.isFinite(x0) && Number.isFinite(x1);
    const m = bars.t.length;
    const t0 = finite ? x0 : m ? bars.t[0] : NaN;
    const t1 = finite ? x1 : m ? bars.t[m - 1] : NaN;
    this.drawnBars = m;
    this.coarsen = k;
    return { bars, x0, x1, finite, t0, t1, widthMs: iv * k };
  }

  /** Traces and axis ranges for the view: candles and volume, or the line of closes in its band. */
  traces() {
    const view = this.view();
    const { bars, x0, x1, finite } = view;
    const x = bars.t;
    const lastT = x.length ? x[x.length - 1] + view.widthMs : -Infinity;
    const candles = this.mode === "candles";
    // Plotly gets UTC date text, not epoch numbers (it would show those in the browser's zone).
    const xd = x.map(plotDate);
    const traces = candles
      ? [...ohlcvTraces(this.theme, this.symbol, xd, bars), this.markers(x, bars.high, lastT)]
      : [...lineTraces(this.theme, this.symbol, xd, bars), this.markers(x, bars.close, lastT)];
    let xRange = null;
    let yRange = null;
    let volRange = null;
    if (x.length && finite) {
      const { low, high, volume } = bars;
      xRange = [plotDate(x0), plotDate(x1)];
      const vr = visibleRange(x, low, high, x0, x1);
      if (vr) yRange = this.yRange = stickyRange(this.yRange, vr[0], vr[1]);
      if (candles) {
        const vv = visibleRange(x, volume, volume, x0, x1);
        const vmax = vv && vv[1] > 0 ? vv[1] : 1;
        const r = stickyRange(this.volRange, 0, vmax, { pad: 0.05, minFill: 0.3 });
        volRange = this.volRange = r[0] === 0 ? r : [0, r[1]];
      }
    }
    return { traces, layout: this.layout(view, xRange, yRange, volRange) };
  }

  /**
   * Draw if anything changed since the last draw, at most once per animation frame and, under
   * load, no more often than every few render costs (a plotly redraw is a full one: axes, traces,
   * hover layers), so the chart never takes more than about a quarter of the main thread.
   * @param {object} Plotly
   * @param {number} t now (ms)
   * @returns {number} 0 when done (or nothing to do), else when to call again (ms)
   */
  render(Plotly, t) {
    if (!this.dirty || !this.bars || !this.theme || !Plotly) return 0;
    if (!this.bars.length) {
      // Nothing to draw (yet): the note says so; the first bar makes the chart dirty again.
      this.dirty = false;
      this.showMsg();
      return 0;
    }
    const due = this.lastRender + this.minGap();
    if (t < due && !this.needsFull) return due;
    this.dirty = false;
    const t0 = performance.now();
    const gd = this.gd;
    const config = { displayModeBar: false, displaylogo: false, responsive: false, scrollZoom: true };
    this.revision++;
    const { traces, layout } = this.traces();
    Plotly.react(gd, traces, layout, config);
    this.needsFull = false;
    this.renders++;
    if (this.msg && !this.msg.hidden) this.showMsg();
    const cost = performance.now() - t0;
    this.cost = this.cost === null ? cost : this.cost * 0.8 + cost * 0.2;
    this.lastRender = t;
    if (!this.listening && gd.on) {
      this.listening = true;
      gd.on("plotly_relayout", (ev) => this.onRelayout(ev));
    }
    return 0;
  }

  /** When render() will draw (0: at once), or Infinity when there is nothing to draw. */
  dueAt() {
    if (!this.dirty || !this.bars || !this.theme) return Infinity;
    return this.needsFull ? 0 : this.lastRender + this.minGap();
  }

  minGap() {
    return this.cost === null ? 0 : Math.min(MAX_GAP_MS, Math.max(0, this.cost * COST_FACTOR));
  }

  onRelayout(ev) {
    if (!ev) return;
    if (ev["xaxis.autorange"] === true || ev["xaxis.autorange"] === "reversed") {
      if (!this.following) this.follow();
      return;
    }
    if ("xaxis.range[0]" in ev || "xaxis.range" in ev) {
      if (this.following) {
        this.following = false;
        this.onFollow(false);
      }
      // Refit y to what the user now looks at.
      this.needsFull = true;
      this.dirty = true;
    }
  }

  resize(Plotly) {
    if (this.renders && Plotly) Plotly.Plots.resize(this.gd);
  }
}

/** A fixed axis range, or autorange when there is none. */
function withRange(ax, range) {
  if (range) {
    ax.range = range;
    ax.autorange = false;
  } else {
    ax.autorange = true;
  }
  return ax;
}

/** The candlestick and volume traces of bars drawn at `x`. */
function ohlcvTraces(th, symbol, x, bars) {
  const { open, high, low, close, volume } = bars;
  const volColor = close.map((c, i) => (c >= open[i] ? th.upVol : th.downVol));
  return [
    {
      type: "candlestick",
      name: symbol,
      x,
      open,
      high,
      low,
      close,
      increasing: { line: { color: th.up, width: 1 }, fillcolor: th.up },
      decreasing: { line: { color: th.down, width: 1 }, fillcolor: th.down },
      whiskerwidth: 0,
      hoverlabel: { namelength: 0 },
    },
    {
      type: "bar",
      x,
      y: volume,
      yaxis: "y2",
      marker: { color: volColor, line: { width: 0 } },
      hoverinfo: "skip",
    },
  ];
}

/** The line of closes in the band of the bars' highs and lows (trace 2 is the line). */
function lineTraces(th, symbol, x, bars) {
  const band = th.band;
  return [
    { type: "scatter", mode: "lines", x, y: bars.high, line: { width: 0, color: band }, hoverinfo: "skip" },
    {
      type: "scatter",
      mode: "lines",
      x: x.slice(),
      y: bars.low,
      line: { width: 0, color: band },
      fill: "tonexty",
      fillcolor: band,
      hoverinfo: "skip",
    },
    {
      type: "scatter",
      mode: "lines",
      name: symbol,
      x: x.slice(),
      y: bars.close,
      line: { width: 1.4, color: th.accent },
      hovertemplate: "%{y:,.2f}<extra></extra>",
    },
  ];
}

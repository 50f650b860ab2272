// The price chart: one plotly graph div, drawn at most once per animation frame (frame.js), of the
// bars the server streams (docs/protocol.md "Bars"; chartpanel.js asks for them, logic/bars.js
// holds them). Candles, or a line of the closes with the bars' high/low as a band. Only the bars in
// view (plus half a view either side) go to plotly, merged into coarser candles when there are
// too many. The time axis is UTC, the market clock of the bars.

import { priceTicks, stickyRange, timeFormats, timeStep } from "./logic/axis.js";
import { BarStore, INTERVALS } from "./logic/bars.js";
import { escapeHtml, fmtPrice, fmtReadout, plotDate, plotMs, wrapHtml } from "./logic/format.js";
import { DEFAULT_MAX_POINTS, coarsenBars, lowerBound, nearestY, visibleRange } from "./logic/series.js";

const FOLLOW_BARS = 120; // bars in view while following the live edge
const MAX_DRAWN_BARS = 400; // more than this in view: drawn as coarser candles
const MAX_MARKERS = 100;
const COST_FACTOR = 4; // at most one draw per 4 draw-costs: <= ~25% of the main thread
const MAX_GAP_MS = 250; // however slow a draw, the chart still moves 4 times a second
const PX_PER_Y_TICK = 44;
const PX_PER_X_TICK = 120;
const DAY_MS = 86400000;

export class PriceChart {
  /**
   * @param {HTMLElement} gd the graph div
   * @param {{maxPoints?: number, onFollow?: (following: boolean) => void, msg?: HTMLElement,
   *          readout?: HTMLElement, digits?: (sym: string, p: number) => number}} opts
   *   `readout`: the crosshair's text (the bar under the pointer, else the last);
   *   `digits`: the symbol's price decimals (logic/format.js Precision)
   */
  constructor(gd, opts = {}) {
    this.gd = gd;
    this.maxPoints = opts.maxPoints ?? DEFAULT_MAX_POINTS;
    this.onFollow = opts.onFollow ?? (() => {});
    this.msg = opts.msg ?? null; // the box's note while there is nothing to draw
    this.readout = opts.readout ?? null;
    this.digits = opts.digits ?? ((_sym, p) => (Math.abs(p) >= 1 ? 2 : 4));
    this.log = false; // a log price scale
    this.drawn = null; // the bars last drawn (the crosshair's readout reads them)
    this.hovered = -1; // the drawn bar under the pointer (-1: none)
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

  /** A log price scale, or linear. */
  setLog(on) {
    if (on === this.log) return;
    this.log = on;
    this.yRange = null;
    this.needsFull = true;
    this.dirty = true;
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

  layout(view, xRange, yRange, volRange, last) {
    const th = this.theme;
    const candles = this.mode === "candles";
    const axis = {
      gridcolor: th.grid,
      linecolor: th.line,
      zeroline: false,
      tickfont: { size: 10, color: th.muted },
      automargin: false,
    };
    const h = this.gd.clientHeight || 300;
    const priceDomain = candles ? [0.2, 1] : [0, 1];
    const digits = this.digits(this.symbol, last ?? (yRange ? yRange[1] : 1));
    const yaxis = { ...axis, side: "right", domain: priceDomain, fixedrange: false, hoverformat: `,.${digits}f` };
    if (this.log) {
      yaxis.type = "log";
      yaxis.tickformat = `,.${digits}f`;
      yaxis.nticks = Math.max(3, Math.floor((h * (priceDomain[1] - priceDomain[0])) / PX_PER_Y_TICK));
    } else if (yRange) {
      // Our own ticks: a label per tick, each different, with the symbol's decimals.
      const t = priceTicks(yRange[0], yRange[1], (h * (priceDomain[1] - priceDomain[0])) / PX_PER_Y_TICK, digits);
      Object.assign(yaxis, { tickmode: "linear", dtick: t.dtick, tick0: t.tick0, tickformat: t.tickformat });
    } else {
      yaxis.tickformat = `,.${digits}f`;
    }
    const lay = {
      uirevision: this.key,
      datarevision: this.revision,
      paper_bgcolor: th.panel,
      plot_bgcolor: th.panel,
      font: { family: th.font, size: 11, color: th.text },
      margin: { l: 8, r: 62, t: 6, b: 22 },
      showlegend: false,
      dragmode: "pan",
      hovermode: "x",
      hoverdistance: 30,
      hoverlabel: { bgcolor: th.panel2, bordercolor: th.line, font: { color: th.text, size: 11 } },
      xaxis: withRange(this.xAxis(axis, view, xRange), xRange),
      yaxis: withRange(yaxis, yRange),
      ...this.lastPrice(last, digits),
    };
    if (candles) {
      // The volume scale: a couple of labels (1.2K, 3M) at the right of its pane.
      lay.yaxis2 = {
        ...axis,
        domain: [0, 0.16],
        side: "right",
        showgrid: false,
        showticklabels: true,
        nticks: 2,
        tickformat: "~s",
        tickfont: { size: 9, color: th.muted },
        fixedrange: true,
        range: volRange || [0, 1],
        autorange: false,
      };
    }
    return lay;
  }

  /** The last price as a dotted line across the chart and a label on the price axis. */
  lastPrice(last, digits) {
    if (typeof last !== "number") return {};
    const th = this.theme;
    const bars = this.drawn;
    const n = bars ? bars.close.length : 0;
    const up = n < 2 || bars.close[n - 1] >= bars.open[n - 1];
    const color = up ? th.up : th.down;
    return {
      shapes: [
        {
          type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: last, y1: last,
          line: { color, width: 1, dash: "dot" }, layer: "below",
        },
      ],
      annotations: [
        {
          xref: "paper", x: 1, xanchor: "left", yref: "y", y: last, yanchor: "middle",
          text: fmtPrice(last, digits), showarrow: false, bgcolor: color, borderpad: 2,
          font: { color: th.onAccent, size: 10 }, name: "last-price",
        },
      ],
    };
  }

  /** The UTC time axis; its formats follow the bars' width and whether the view crosses days. */
  xAxis(axis, view, xRange) {
    const { tickformat, hoverformat } = timeFormats(view.widthMs, view.t0, view.t1);
    const ticks = {};
    if (xRange) {
      // Whole seconds, minutes, hours or days apart, and never finer than the labels show.
      const minStep = view.widthMs >= DAY_MS ? DAY_MS : tickformat.includes("%S") ? 1000 : 60000;
      const n = (this.gd.clientWidth || 600) / PX_PER_X_TICK;
      Object.assign(ticks, { tickmode: "linear", tick0: "2000-01-03", dtick: timeStep(view.x1 - view.x0, n, minStep) });
    }
    return {
      ...ticks,
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
      // Large enough to see and to hover (a 9 px triangle on a candle's high was neither).
      marker: { symbol: "triangle-down", size: 14, color: th.accent, line: { width: 1.5, color: th.panel } },
      hoverlabel: { bgcolor: th.panel2, bordercolor: th.accent },
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
    this.drawn = { ...bars, widthMs: view.widthMs };
    const traces = candles
      ? [...ohlcvTraces(this.theme, this.symbol, xd, bars), this.markers(x, bars.high, lastT)]
      : [
          ...lineTraces(this.theme, this.symbol, xd, bars, this.digits(this.symbol, bars.close.at(-1) ?? 1)),
          this.markers(x, bars.close, lastT),
        ];
    let xRange = null;
    let yRange = null;
    let volRange = null;
    if (x.length && finite) {
      const { low, high, volume } = bars;
      xRange = [plotDate(x0), plotDate(x1)];
      const vr = visibleRange(x, low, high, x0, x1);
      if (vr && this.log && vr[0] > 0) {
        // A log axis' range is in powers of ten.
        yRange = [Math.log10(vr[0] * 0.995), Math.log10(vr[1] * 1.005)];
      } else if (vr && !this.log) {
        yRange = this.yRange = stickyRange(this.yRange, vr[0], vr[1]);
      }
      if (candles) {
        const vv = visibleRange(x, volume, volume, x0, x1);
        const vmax = vv && vv[1] > 0 ? vv[1] : 1;
        const r = stickyRange(this.volRange, 0, vmax, { pad: 0.05, minFill: 0.3 });
        volRange = this.volRange = r[0] === 0 ? r : [0, r[1]];
      }
    }
    const last = bars.close.length ? bars.close[bars.close.length - 1] : null;
    return { traces, layout: this.layout(view, xRange, this.log ? null : yRange, volRange, last), logRange: this.log ? yRange : null };
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
    const { traces, layout, logRange } = this.traces();
    if (logRange) withRange(layout.yaxis, logRange);
    Plotly.react(gd, traces, layout, config);
    this.showReadout();
    this.describe();
    this.needsFull = false;
    this.renders++;
    if (this.msg && !this.msg.hidden) this.showMsg();
    const cost = performance.now() - t0;
    this.cost = this.cost === null ? cost : this.cost * 0.8 + cost * 0.2;
    this.lastRender = t;
    if (!this.listening && gd.on) {
      this.listening = true;
      gd.on("plotly_relayout", (ev) => this.onRelayout(ev));
      gd.on("plotly_hover", (ev) => {
        const pt = ev?.points?.find((p) => p.curveNumber === 0 || p.data?.type === "candlestick") ?? ev?.points?.[0];
        this.hovered = pt && pt.curveNumber !== undefined ? pt.pointIndex ?? pt.pointNumber ?? -1 : -1;
        this.showReadout();
      });
      gd.on("plotly_unhover", () => {
        this.hovered = -1;
        this.showReadout();
      });
    }
    return 0;
  }

  /** The crosshair's readout: time, O/H/L/C and volume of the bar under the pointer, else the last. */
  showReadout() {
    const el = this.readout;
    const b = this.drawn;
    if (!el || !b) return;
    const n = b.t.length;
    let i = this.hovered >= 0 && this.hovered < n ? this.hovered : n - 1;
    if (this.mode === "line" && this.hovered >= 0) i = Math.min(this.hovered, n - 1);
    const text = i >= 0 ? fmtReadout(b, i, this.digits(this.symbol, b.close[i]), b.widthMs) : "";
    if (el.textContent !== text) el.textContent = text;
  }

  /** The chart's text alternative: what it shows, in words. */
  describe() {
    const b = this.drawn;
    const n = b ? b.t.length : 0;
    if (!n) return;
    const d = this.digits(this.symbol, b.close[n - 1]);
    const lo = Math.min(...b.low);
    const hi = Math.max(...b.high);
    const label =
      `${this.symbol} ${this.interval} ${this.mode === "candles" ? "candlestick" : "line"} chart` +
      `${this.log ? " (log scale)" : ""}: ${n} bars, low ${fmtPrice(lo, d)}, high ${fmtPrice(hi, d)},` +
      ` last ${fmtPrice(b.close[n - 1], d)}`;
    if (this.gd.getAttribute("aria-label") !== label) this.gd.setAttribute("aria-label", label);
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
function lineTraces(th, symbol, x, bars, digits) {
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
      hovertemplate: `%{y:,.${digits}f}<extra></extra>`,
    },
  ];
}

// The price chart: one plotly graph div, fed by chartpanel.js, drawn at most once per animation
// frame (frame.js).
// Candles: Plotly.react of the bars near the live edge (the forming bar changes in place).
// Line: Plotly.extendTraces of the new points (bounded by maxPoints), react only when reset.

import { niceStep, stickyRange } from "./logic/axis.js";
import { escapeHtml, plotTime, wrapHtml } from "./logic/format.js";
import {
  BarSeries,
  DEFAULT_MAX_POINTS,
  INTERVALS,
  LineSeries,
  coarsenBars,
  decimateLine,
  lowerBound,
  nearestY,
  visibleRange,
} from "./logic/series.js";

const FOLLOW_BARS = 120; // bars in view while following the live edge
const MAX_DRAWN_BARS = 400; // more than this in view: drawn as coarser candles
const MAX_DRAWN_POINTS = 800; // more line points than this: decimated by time
const MAX_MARKERS = 100;
const COST_FACTOR = 4; // at most one draw per 4 draw-costs: <= ~25% of the main thread
const MAX_GAP_MS = 250; // however slow a draw, the chart still moves 4 times a second
const TZ = new Date().getTimezoneOffset();

/** Plotly's date-axis range value (a "YYYY-MM-DD HH:MM:SS.sss" string or ms) -> plot ms. */
function rangeMs(v) {
  if (typeof v === "number") return v;
  return Date.parse(String(v).replace(" ", "T") + (String(v).length <= 10 ? "T00:00:00Z" : "Z"));
}

export class PriceChart {
  /**
   * @param {HTMLElement} gd the graph div
   * @param {{maxPoints?: number, onFollow?: (following: boolean) => void}} opts
   */
  constructor(gd, opts = {}) {
    this.gd = gd;
    this.maxPoints = opts.maxPoints ?? DEFAULT_MAX_POINTS;
    this.onFollow = opts.onFollow ?? (() => {});
    this.symbol = null;
    this.interval = "1s";
    this.mode = "candles";
    this.series = null;
    this.news = []; // {ts, headline, source}
    this.theme = null;
    this.following = true;
    this.loading = false;
    this.buffer = [];
    this.dirty = false;
    this.plotted = false; // the graph holds this.series' traces (extendTraces is safe)
    this.needsFull = true;
    this.revision = 0;
    this.renders = 0;
    this.ready = false;
    this.listening = false;
    this.lastRender = -Infinity;
    this.decimated = false;
    this.cost = null; // moving average of a draw's cost (ms)
  }

  get key() {
    return `${this.symbol}|${this.interval}|${this.mode}`;
  }

  get intervalMs() {
    return this.mode === "line" ? INTERVALS["1s"] : INTERVALS[this.interval];
  }

  /** Start a new chart (symbol, interval or mode changed): empty series, waiting for backfill. */
  open(symbol, interval, mode) {
    this.symbol = symbol;
    this.interval = interval;
    this.mode = mode;
    this.series =
      mode === "line" ? new LineSeries(this.maxPoints) : new BarSeries(INTERVALS[interval], this.maxPoints);
    this.news = [];
    this.following = true;
    this.yRange = null;
    this.volRange = null;
    this.onFollow(true);
    this.beginBackfill();
    this.plotted = false;
    this.needsFull = true;
    this.dirty = true;
  }

  /** Live updates are buffered until the backfill arrives (history holds them already). */
  beginBackfill() {
    this.loading = true;
    this.buffer = [];
  }

  /** Merge `/api/history` (body of the response) and replay buffered updates newer than it. */
  backfill(body) {
    const s = this.series;
    if (s && body && body.bars) {
      if (this.mode === "line") s.merge(body.bars, body.interval_ms);
      else s.merge(body.bars, body.last_ts);
    }
    this.endBackfill(body && Number.isFinite(body.last_ts) ? body.last_ts : -Infinity);
  }

  endBackfill(lastTs = -Infinity) {
    const buf = this.buffer;
    this.loading = false;
    this.buffer = [];
    for (const u of buf) if (u[0] > lastTs) this.update(u[0], u[1], u[2]);
    this.needsFull = true;
    this.dirty = true;
  }

  /** One live update of the charted symbol. */
  update(ts, price, opts) {
    if (!this.series) return;
    if (this.loading) {
      if (this.buffer.length < this.maxPoints) this.buffer.push([ts, price, opts]);
      return;
    }
    this.series.add(ts, price, opts);
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

  layout(xRange, yRange, volRange) {
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
      xaxis: withRange(this.xAxis(axis), xRange),
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

  xAxis(axis) {
    const minutes = this.mode === "candles" && this.interval === "1min";
    return {
      ...axis,
      type: "date",
      rangeslider: { visible: false },
      showspikes: true,
      spikemode: "across",
      spikethickness: 1,
      spikecolor: this.theme.muted,
      spikedash: "dot",
      hoverformat: minutes ? "%b %d %H:%M" : "%H:%M:%S",
      ticklabeloverflow: "hide past domain", // never under the price labels on the right
      // One fixed format (tickformatstops is evaluated per tick on every draw).
      tickformat: minutes ? "%H:%M" : "%H:%M:%S",
    };
  }

  markers(xs, ys) {
    const th = this.theme;
    const mx = [];
    const my = [];
    const text = [];
    if (xs.length) {
      const first = xs[0];
      for (const n of this.news) {
        const x = plotTime(n.ts, TZ);
        if (x < first) continue;
        const y = nearestY(xs, ys, x);
        if (y === undefined) continue;
        mx.push(x);
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

  /** The candles' time window in view (plot time): the live edge while following, else the user's. */
  candleView() {
    const s = this.series;
    const n = s.length;
    const iv = s.intervalMs;
    if (n && this.following) {
      // Both edges move only when a bar opens: no axis redraw while the forming bar updates.
      const last = plotTime(s.t[n - 1], TZ);
      return [Math.max(plotTime(s.t[0], TZ), last - FOLLOW_BARS * iv) - iv * 0.25, last + iv * 4];
    }
    const r = n ? this.gd._fullLayout?.xaxis?.range : null;
    return r ? r.map(rangeMs) : [-Infinity, Infinity];
  }

  candleTraces() {
    const s = this.series;
    const n = s.length;
    const iv = s.intervalMs;
    const shift = TZ * 60000; // plot time + shift = epoch ms
    const [x0, x1] = this.candleView();
    // Plotly redraws every bar it is given, visible or not (5,000 candles: ~400 ms). So it gets
    // the bars in view plus half a view either side for panning, merged into coarser candles
    // when that is still more than MAX_DRAWN_BARS.
    const margin = this.following ? iv : (x1 - x0) / 2;
    const a = Number.isFinite(x0) ? lowerBound(s.t, x0 - margin + shift - iv) : 0;
    const b = Number.isFinite(x1) ? lowerBound(s.t, x1 + margin + shift) : n;
    const k = Math.max(1, Math.ceil((b - a) / MAX_DRAWN_BARS));
    const bars = coarsenBars(s, a, b, k);
    const half = (iv * k) / 2;
    const x = bars.t.map((t) => plotTime(t + half, TZ));
    const traces = [...ohlcvTraces(this.theme, this.symbol, x, bars), this.markers(x, bars.high)];
    let xRange = null;
    let yRange = null;
    let volRange = null;
    if (x.length && Number.isFinite(x0) && Number.isFinite(x1)) {
      const { low, high, volume } = bars;
      xRange = [x0, x1];
      const vr = visibleRange(x, low, high, x0, x1);
      if (vr) yRange = this.yRange = stickyRange(this.yRange, vr[0], vr[1]);
      const vv = visibleRange(x, volume, volume, x0, x1);
      const vmax = vv && vv[1] > 0 ? vv[1] : 1;
      const r = stickyRange(this.volRange, 0, vmax, { pad: 0.05, minFill: 0.3 });
      volRange = this.volRange = r[0] === 0 ? r : [0, r[1]];
    }
    this.drawnBars = x.length;
    this.coarsen = k;
    return { traces, xRange, yRange, volRange };
  }

  /**
   * The line's traces. While the line has no more points than the chart has room for, they are
   * the series itself (and render() extends them incrementally); past that, plotly gets the
   * points in view decimated to one per time bucket (a full redraw costs per point).
   */
  lineTraces() {
    const th = this.theme;
    const s = this.series;
    const n = s.length;
    let a = 0;
    let b = n;
    if (!this.following) {
      const r = this.gd._fullLayout?.xaxis?.range;
      if (r) {
        const shift = TZ * 60000;
        const [x0, x1] = r.map(rangeMs);
        const margin = (x1 - x0) / 2;
        a = lowerBound(s.x, x0 - margin + shift);
        b = lowerBound(s.x, x1 + margin + shift);
      }
    }
    let d;
    if (b - a > MAX_DRAWN_POINTS) {
      const w = niceStep((s.x[b - 1] - s.x[a]) / MAX_DRAWN_POINTS);
      d = decimateLine(s, a, b, w);
      this.decimated = true;
    } else {
      d = { x: s.x.slice(a, b), y: s.y.slice(a, b), hi: s.hi.slice(a, b), lo: s.lo.slice(a, b) };
      this.decimated = a > 0 || b < n;
    }
    const x = d.x.map((t) => plotTime(t, TZ));
    const band = th.band;
    return [
      { type: "scatter", mode: "lines", x, y: d.hi, line: { width: 0, color: band }, hoverinfo: "skip" },
      {
        type: "scatter",
        mode: "lines",
        x: x.slice(),
        y: d.lo,
        line: { width: 0, color: band },
        fill: "tonexty",
        fillcolor: band,
        hoverinfo: "skip",
      },
      {
        type: "scatter",
        mode: "lines",
        name: this.symbol,
        x: x.slice(),
        y: d.y,
        line: { width: 1.4, color: th.accent },
        hovertemplate: "%{y:,.2f}<extra></extra>",
      },
      this.markers(x, d.y),
    ];
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
    if (!this.dirty || !this.series || !this.theme || !Plotly) return 0;
    const due = this.lastRender + this.minGap();
    if (t < due && !this.needsFull) return due;
    this.dirty = false;
    const t0 = performance.now();
    const gd = this.gd;
    const config = { displayModeBar: false, displaylogo: false, responsive: false, scrollZoom: true };
    if (this.mode === "line") {
      const step = this.series.take();
      const n = this.series.length;
      // Incremental only while the graph holds exactly the series (not decimated, not a view).
      const exact = this.following && !this.decimated && n <= MAX_DRAWN_POINTS;
      if (!this.plotted || this.needsFull || step.full || !exact) {
        this.revision++;
        // Following: both axes autorange (the whole bounded line is in view). Not following:
        // keep the range the user panned or zoomed to.
        const fl = this.following ? null : gd._fullLayout;
        const xr = fl?.xaxis?.range ? fl.xaxis.range.map(rangeMs) : null;
        const yr = fl?.yaxis?.range ? fl.yaxis.range.slice() : null;
        const lay = this.layout(xr, yr, null);
        Plotly.react(gd, this.lineTraces(), lay, config);
      } else if (step.from < n) {
        const s = this.series;
        const xs = [];
        for (let i = step.from; i < n; i++) xs.push(plotTime(s.x[i], TZ));
        Plotly.extendTraces(
          gd,
          { x: [xs, xs.slice(), xs.slice()], y: [s.hi.slice(step.from), s.lo.slice(step.from), s.y.slice(step.from)] },
          [0, 1, 2],
          this.maxPoints,
        );
      } else {
        return 0;
      }
    } else {
      this.revision++;
      const { traces, xRange, yRange, volRange } = this.candleTraces();
      Plotly.react(gd, traces, this.layout(xRange, yRange, volRange), config);
    }
    this.plotted = true;
    this.needsFull = false;
    this.renders++;
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
    if (!this.dirty || !this.series || !this.theme) return Infinity;
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
      // Candles: refit y to what the user now looks at.
      if (this.mode === "candles") {
        this.needsFull = true;
        this.dirty = true;
      }
    }
  }

  resize(Plotly) {
    if (this.plotted && Plotly) Plotly.Plots.resize(this.gd);
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

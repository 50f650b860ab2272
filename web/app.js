// Ticker dashboard: wires the modules together. Each feature owns its DOM and its wiring
// (README "Dashboard" lists them); the decisions live in the pure modules under logic/. Data
// flows client.js (WebSocket) -> the features below -> frame.js (one requestAnimationFrame).

import { param, takeAdminFromHash } from "./api.js";
import { ChartPanel } from "./chartpanel.js";
import { Client } from "./client.js";
import { now } from "./dom.js";
import { FrameLoop } from "./frame.js";
import { NewsPanel } from "./news.js";
import { ReplayBar } from "./replay.js";
import { SearchBox } from "./search.js";
import { StatusBar } from "./status.js";
import { load } from "./storage.js";
import { Watchlist } from "./watchlist.js";
import { intParam, parsePrefs } from "./logic/prefs.js";
import { Precision } from "./logic/format.js";
import { DEFAULT_MAX_POINTS } from "./logic/series.js";

takeAdminFromHash();

// ?points=N bounds every chart trace (default 5,000).
const MAX_POINTS = intParam(param("points"), 10, 50000, DEFAULT_MAX_POINTS);
const prefs = parsePrefs(load);
let initialized = false; // rows built (first hello)
const PLOTLY_LATEST_MS = 3000;
let plotlyAsked = false; // plotly.js's script is in the page (loading or loaded)
const PRICES_LATEST_MS = 1000;
// What waits for the first prices: run when the first snapshot is on screen, or after
// PRICES_LATEST_MS without one (no symbols listed, none known).
let waiting = [];
function afterFirstPrices(fn) {
  if (!waiting) return fn();
  waiting.push(fn);
  setTimeout(firstPrices, PRICES_LATEST_MS);
}
function firstPrices() {
  const fns = waiting;
  waiting = null;
  for (const fn of fns || []) fn();
}

const frame = new FrameLoop();
const schedule = () => frame.schedule();
const replay = new ReplayBar();
const news = new NewsPanel({ schedule });

const client = new Client({
  status: () => status.render(),
  hello: onHello,
  watchlist: () => watch.symbols,
  snapshot: onSnapshot,
  delta: onDelta,
  news: (item, live) => {
    if (!news.add(item, live)) return;
    panel.chart.addNews(item);
    schedule();
  },
  bars: (m) => panel.onBars(m),
  bar: (m) => panel.onBar(m),
  error: onError,
  resumed: () => replay.check(),
});
// What every feature reads: the quotes, and the symbols the server knows (from its hello).
// `precision`: each symbol's price decimals, learnt from its quotes (logic/format.js).
const market = { book: client.book, known: [], names: new Map(), precision: new Precision() };

const watch = new Watchlist({
  market,
  prefs,
  charted: () => panel.chart.symbol,
  onSelect: () => panel.open(),
  subscribe: (symbols) => client.subscribe(symbols),
  unsubscribe: (symbols) => client.unsubscribe(symbols),
  schedule,
});
const search = new SearchBox({ market, watch });
const panel = new ChartPanel({
  maxPoints: MAX_POINTS,
  prefs,
  market,
  selected: () => watch.selected,
  recentNews: (sym, limit) => news.recent(sym, limit),
  schedule,
  request: (msg) => client.request(msg),
  send: (msg) => client.send(msg),
});
const status = new StatusBar({
  client,
  replaying: () => replay.active(),
  onPause: (paused) => {
    if (!paused) redrawAll();
    schedule();
  },
});

frame.attach({
  chart: panel.chart,
  paused: () => status.paused,
  table: {
    prepare: () => watch.prepare(),
    wants: () => watch.pending() || news.pending(),
    sparksDue: (t) => watch.sparksDueAt() <= t,
    draw(t) {
      watch.draw(t);
      if (news.pending()) news.draw();
      panel.drawHead();
    },
    chores: (t) => Math.min(watch.endFlashes(t), watch.sparksDueAt()),
  },
});

function onHello(m) {
  market.known = Array.isArray(m.symbols) ? m.symbols.slice() : [];
  if (!initialized) {
    initialized = true;
    watch.init(market.known);
    status.syncWindow();
    // The chart's bars (up to 2,000) and the sparklines' history come after the first prices:
    // the server answers ops in order, and the snapshot is what the first paint waits for.
    afterFirstPrices(() => {
      loadPlotly();
      panel.open();
      watch.sparklines.backfill(watch.symbols);
    });
  } else {
    // A new connection has no bars stream: ask again (the fresh `bars` replaces the chart's).
    panel.reconnect();
    if (!window.Plotly && !plotlyAsked) {
      panel.note("");
      loadPlotly();
    }
  }
}

// Quotes feed the watchlist (rows, sparklines) and the chart's header; the chart itself draws
// the server's bars.
function onSnapshot(symbols) {
  for (const sym of symbols) {
    const q = market.book.get(sym);
    market.precision.note(sym, q);
    watch.snapshotQuote(sym, q);
  }
  schedule();
  // After this frame has painted the rows.
  if (symbols.length && waiting) requestAnimationFrame(() => setTimeout(firstPrices, 0));
}

function onDelta(updates) {
  status.noteUpdates(now(), updates);
  for (const u of updates) {
    market.precision.note(u.symbol, u.quote);
    watch.deltaUpdate(u);
  }
  schedule();
}

function onError(m) {
  panel.onError(m); // the chart's own `bars` op (bad_interval: its fallback)
  if (m.code === "unknown_symbol" && Array.isArray(m.symbols)) watch.markUnknown(m.symbols);
  else if (m.code === "rate_limited") status.note("rate limited");
}

/** Everything drawn again on the next frame: after a pause, or back from a hidden tab. */
function redrawAll() {
  watch.markAllDirty();
  panel.redrawAll();
}

// Test and benchmark hook (read-only use): the browser tests read S.book and S.snapshots, the
// benchmark the chart's counters.
const S = {
  book: market.book,
  market,
  get snapshots() {
    return client.session.snapshots;
  },
  client,
  watch,
  news,
  replay,
  status,
  frame,
};
window.__ticker = { S, chart: panel.chart };

client.wire();
watch.wire();
search.wire();
panel.wire();
news.wire();
status.wire();
replay.wire();
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  redrawAll();
  schedule();
});

watch.checkStale();
watch.renderSortHeaders();
panel.syncSegs();
status.render();
client.connect();

// plotly.js (4.8 MB, ~1.4 MB gzipped) is fetched once the first prices are on screen, so on a slow
// link it does not compete with the page's modules, the quotes and the news; the chart draws when
// it has run. Cached (an immutable URL), it is there at once on the next visit.
function loadPlotly() {
  if (plotlyAsked || window.Plotly) return;
  plotlyAsked = true;
  const s = document.createElement("script");
  s.src = document.querySelector('meta[name="plotly-src"]')?.content || "/vendor/plotly.min.js";
  s.async = true;
  s.onload = () => {
    panel.drawHead();
    schedule();
  };
  s.onerror = () => {
    // Asked for again with the next hello (the server is back).
    s.remove();
    plotlyAsked = false;
    panel.note("chart library not loaded yet: waiting for the server");
  };
  document.head.appendChild(s);
}
// Without a server (no hello) the chart's library still comes, a little later.
setTimeout(loadPlotly, PLOTLY_LATEST_MS);

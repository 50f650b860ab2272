// Ticker dashboard: the I/O shell. WebSocket + fetch in, DOM + plotly out, all drawing batched
// into one requestAnimationFrame. Decisions (deltas, bars, backoff, formatting) live in logic.js.

import * as L from "./logic.js";
import { PriceChart } from "./chart.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STORE = "ticker.v1.";
const NEWS_DOM_MAX = 200;
const SPARK_POINTS = 120;
const SPARK_W = 100; // sparkline viewBox units (stretched to the cell)
const SPARK_H = 20;
const DEFAULT_WATCH_MAX = 60;
const PING_EVERY_MS = 5000;
const SILENCE_MS = 15000; // no frame at all for this long (pings included): the link is dead
const CONNECT_TIMEOUT_MS = 6000;
const FLASH_MS = 300;
const FRESH_MS = 2000;
const SPARK_EVERY_MS = 1000;
const SPARKS_PER_FRAME = 8;
const TABLE_MAX_LAG_MS = 100;
const TABLE_MIN_GAP_MS = 50;
const FRAME_MS = 16;
const CHORE_SLACK_MS = 150;

// Access (README "Access control"): a client token from `?token=` goes to /ws and the APIs; an
// admin token from `#admin=` (then dropped from the address bar) or asked for, for replay control.
const TOKEN = params.get("token");
const WS_AUTH = L.wsAuth(TOKEN);
const AUTH = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
const ADMIN_KEY = "ticker.admin";
{
  const { admin, hash } = L.adminFromHash(location.hash);
  if (admin) {
    try {
      sessionStorage.setItem(ADMIN_KEY, admin);
    } catch {
      /* storage off: it is asked for when needed */
    }
    history.replaceState(null, "", location.pathname + location.search + hash);
  }
}

/** fetch() with the page's client token, if any. */
function api(url, init = {}) {
  return fetch(url, { ...init, headers: { ...AUTH, ...(init.headers || {}) } });
}

function adminToken() {
  try {
    return sessionStorage.getItem(ADMIN_KEY);
  } catch {
    return null;
  }
}

function intParam(name, lo, hi, dflt) {
  const v = Number.parseInt(params.get(name) ?? "", 10);
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
}

// ?points=N bounds every chart trace (default 5,000).
const MAX_POINTS = intParam("points", 10, 50000, L.DEFAULT_MAX_POINTS);
const now = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// State

const S = {
  ws: null,
  connected: false, // socket open and hello received
  live: false, // resynced (snapshot) and news resumed
  everLive: false,
  attempt: 0, // consecutive failed connection attempts
  retryAt: 0,
  retryTimer: null,
  step: "connecting",
  lastFrameAt: 0,
  lastSeq: null,
  resyncPending: false,
  gotSnapshot: false,
  gotNews: false,
  rtt: null,
  snapshots: 0,

  initialized: false, // rows built (first hello)
  known: [],
  watch: [],
  watchStored: false, // the watchlist came from localStorage (not the default)
  book: new Map(),
  sparks: new Map(),
  selected: null,
  interval: "1s",
  mode: "candles",
  windowMs: null, // this tab's chosen window (null: the server default)
  serverDefault: null,
  serverThrottle: null,
  paused: false,

  news: new L.NewsStore(1000),
  newsCursor: null, // resume point: highest news id seen or known to be covered
  newsFilter: null,
  newsQueue: [],
  newsFull: true,

  sortKey: null,
  sortDir: 1,
  sortedAt: 0,

  rate: new L.RateMeter(),
  latency: [],
  rows: new Map(),
  dirty: new Set(),
  dirtySparks: new Set(),
  sparkDrawn: new Map(), // symbol -> when its sparkline was last drawn
  flashing: new Set(),
  wake: 0, // a timer that schedules a frame for pending flashes/sparklines/chart
  wakeWhen: 0,
  tableAt: 0,
  nextSpark: Infinity,
  allDirty: true,
  raf: 0,
  frames: 0,
  nextId: 1,
  acks: new Map(),
  replay: [],
  replayTimer: null,
  replayDragging: false,
};

const chart = new PriceChart($("price-chart"), {
  maxPoints: MAX_POINTS,
  onFollow: (on) => {
    $("follow").hidden = on;
  },
});

// Test and benchmark hook (read-only use).
window.__ticker = { S, chart, L };

// ---------------------------------------------------------------------------------------------
// Preferences

function load(key, dflt) {
  try {
    const v = localStorage.getItem(STORE + key);
    return v === null ? dflt : v;
  } catch {
    return dflt;
  }
}

function save(key, value) {
  try {
    localStorage.setItem(STORE + key, value);
  } catch {
    /* private mode or quota: preferences are a nicety */
  }
}

function saveWatch() {
  save("watchlist", JSON.stringify(S.watch));
}

function loadPrefs() {
  const iv = load("interval", "1s");
  S.interval = iv in L.INTERVALS ? iv : "1s";
  S.mode = load("mode", "candles") === "line" ? "line" : "candles";
  const w = Number(load("window", ""));
  S.windowMs = L.WINDOWS.includes(w) && load("window", "") !== "" ? w : null;
  const wl = L.parseWatchlist(load("watchlist", "null"));
  S.watch = wl ?? [];
  S.watchStored = wl !== null;
  S.selected = load("selected", null);
  const sk = load("sort", "");
  if (sk) {
    const [k, d] = sk.split(":");
    if (L.SORT_KEYS.includes(k)) {
      S.sortKey = k;
      S.sortDir = d === "-1" ? -1 : 1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Theme (CSS variables are the single source; plotly reads them)

function readTheme() {
  const cs = getComputedStyle(document.documentElement);
  const v = (n) => cs.getPropertyValue(n).trim();
  const light = matchMedia("(prefers-color-scheme: light)").matches;
  return {
    panel: v("--panel"),
    panel2: v("--panel-2"),
    line: v("--line-2"),
    grid: v("--line"),
    text: v("--text"),
    muted: v("--muted"),
    faint: v("--faint"),
    accent: v("--accent"),
    up: v("--up"),
    down: v("--down"),
    upVol: light ? "rgba(22, 121, 79, 0.35)" : "rgba(63, 182, 139, 0.35)",
    downVol: light ? "rgba(196, 58, 47, 0.35)" : "rgba(229, 98, 91, 0.35)",
    band: light ? "rgba(31, 111, 214, 0.14)" : "rgba(91, 156, 245, 0.16)",
    font: v("--font") || "system-ui, sans-serif",
  };
}

let theme = readTheme();
matchMedia("(prefers-color-scheme: light)").addEventListener("change", () => {
  theme = readTheme();
  chart.setTheme(theme);
  schedule();
});

// ---------------------------------------------------------------------------------------------
// Connection

function wsUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws${WS_AUTH.query}`;
}

function send(obj) {
  const ws = S.ws;
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(obj));
    return true;
  }
  return false;
}

function request(obj, onAck) {
  const id = S.nextId++;
  if (onAck) S.acks.set(id, onAck);
  send({ ...obj, id });
  return id;
}

function setStep(step) {
  S.step = step;
  renderStatus();
}

function connect() {
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  S.connected = false;
  S.live = false;
  S.gotSnapshot = false;
  S.gotNews = false;
  S.lastSeq = null;
  S.resyncPending = false;
  S.acks.clear();
  setStep(S.everLive ? "reconnecting" : "connecting");
  let ws;
  try {
    ws = new WebSocket(wsUrl(), WS_AUTH.protocols);
  } catch {
    scheduleReconnect();
    return;
  }
  S.ws = ws;
  const timer = setTimeout(() => {
    if (ws.readyState === WebSocket.CONNECTING) ws.close();
  }, CONNECT_TIMEOUT_MS);
  ws.onopen = () => {
    clearTimeout(timer);
    S.lastFrameAt = now();
    setStep("handshake");
  };
  ws.onmessage = (ev) => {
    S.lastFrameAt = now();
    onMessage(JSON.parse(ev.data));
  };
  ws.onclose = () => {
    clearTimeout(timer);
    if (S.ws !== ws) return;
    S.ws = null;
    const wasLive = S.live;
    S.connected = false;
    S.live = false;
    if (wasLive) S.attempt = 0;
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  const delay = L.backoffDelay(S.attempt, { baseMs: 500, maxMs: 15000 });
  S.attempt++;
  S.retryAt = now() + delay;
  S.step = "waiting";
  clearTimeout(S.retryTimer);
  S.retryTimer = setTimeout(connect, delay);
  renderStatus();
}

window.addEventListener("online", () => {
  if (!S.ws) connect();
});
window.addEventListener("offline", renderStatus);

// Liveness: our pings make a silent link visible (the server's WebSocket pings are not).
setInterval(() => {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return;
  if (now() - S.lastFrameAt > SILENCE_MS) {
    // A dead link can take minutes to report its close: drop it and reconnect now.
    const ws = S.ws;
    S.ws = null;
    S.connected = false;
    S.live = false;
    ws.close();
    scheduleReconnect();
    return;
  }
  send({ op: "ping", t: now() });
}, PING_EVERY_MS);

function desiredWindow() {
  if (document.hidden) return L.HIDDEN_WINDOW_MS;
  return S.windowMs ?? S.serverDefault ?? 100;
}

function sendThrottle() {
  const ms = desiredWindow();
  request({ op: "throttle", ms }, (ack) => {
    S.serverThrottle = ack.ms;
    renderStatus();
  });
}

// ---------------------------------------------------------------------------------------------
// Messages

function onMessage(m) {
  switch (m.type) {
    case "hello":
      return onHello(m);
    case "snapshot":
      return onSnapshot(m);
    case "delta":
      return onDelta(m);
    case "news":
      return onNews(m, true);
    case "ack": {
      const cb = S.acks.get(m.id);
      if (cb) {
        S.acks.delete(m.id);
        cb(m);
      }
      return undefined;
    }
    case "pong":
      if (typeof m.t === "number") S.rtt = now() - m.t;
      return undefined;
    case "error":
      return onError(m);
    default:
      return undefined;
  }
}

async function onHello(m) {
  S.connected = true;
  S.known = Array.isArray(m.symbols) ? m.symbols.slice() : [];
  S.serverDefault = m.throttle_ms;
  S.serverThrottle = m.throttle_ms;
  if (!S.initialized) {
    S.initialized = true;
    if (!S.watchStored) S.watch = S.known.slice(0, DEFAULT_WATCH_MAX);
    if (!S.selected || !S.watch.includes(S.selected)) S.selected = S.watch[0] ?? null;
    buildRows();
    syncWindowSelect();
    openChart();
    backfillSparks(S.watch);
  } else if (S.selected) {
    // Resume: fill what the chart missed while we were away (history merges, no duplicates).
    loadHistory();
  }
  // Order matters: throttle before subscribe, so the subscribe's snapshot is the only one.
  if (desiredWindow() !== m.throttle_ms) sendThrottle();
  setStep("subscribing");
  if (S.watch.length) {
    request({ op: "subscribe", symbols: S.watch }, (ack) => {
      // No known symbol among them: no snapshot will come, and none is needed.
      if (!ack.symbols || ack.symbols.length === 0) {
        S.gotSnapshot = true;
        maybeLive();
      }
    });
  } else {
    S.gotSnapshot = true;
  }
  const ws = S.ws;
  await resumeNews(m);
  if (S.ws !== ws) return; // that connection is gone; the next hello resumes
  requestNews();
  checkReplay();
}

async function resumeNews(hello) {
  if (S.newsCursor === null) {
    // First connection: the latest items over HTTP, then the stream from there on.
    try {
      const r = await api("/api/news?limit=100");
      const body = await r.json();
      for (const it of body.items || []) onNews(it, false);
      S.newsCursor = Math.max(S.news.lastId ?? 0, body.last_id ?? 0);
    } catch {
      S.newsCursor = hello.news_last_id ?? 0;
    }
  }
}

function requestNews() {
  setStep("news");
  request({ op: "news", topics: ["*"], since: S.newsCursor }, () => {
    S.gotNews = true;
    maybeLive();
  });
}

function maybeLive() {
  if (S.connected && S.gotSnapshot && S.gotNews && !S.live) {
    S.live = true;
    S.everLive = true;
    S.attempt = 0;
    setStep("live");
  }
}

function onSnapshot(m) {
  const st = L.seqStatus(S.lastSeq, m.seq);
  if (st !== "stale" || S.lastSeq === null) S.lastSeq = m.seq;
  S.resyncPending = false;
  S.snapshots++;
  const syms = L.applySnapshot(S.book, m.quotes || {});
  for (const sym of syms) {
    const q = S.book.get(sym);
    S.dirty.add(sym);
    S.rows.get(sym)?.tr.classList.remove("unknown");
    sparkAdd(sym, q.ts, q.price);
    if (sym === S.selected) chart.update(q.ts, q.price, {});
  }
  if (!S.gotSnapshot) {
    S.gotSnapshot = true;
    if (!S.live) setStep("resync");
    maybeLive();
  }
  schedule();
}

function onDelta(m) {
  const st = L.seqStatus(S.lastSeq, m.seq);
  if (st === "gap" && !S.resyncPending) {
    // Missed frames: the values below are still the latest, but fields we never saw are stale.
    S.resyncPending = true;
    send({ op: "resync" });
  }
  if (st !== "stale") S.lastSeq = m.seq;
  const t = now();
  const updates = L.applyDelta(S.book, m.quotes || {});
  S.rate.add(t, updates.length);
  for (const u of updates) {
    const q = u.quote;
    // Feed-to-screen latency is meaningless for a replay (its ts is market time, not now).
    if (!S.replay.length && typeof q.ts === "number" && S.latency.length < 20000) {
      S.latency.push(t - q.ts);
    }
    if (!S.rows.has(u.symbol)) continue;
    S.dirty.add(u.symbol);
    if (u.priced && typeof q.price === "number") {
      if (typeof u.prevPrice === "number" && q.price !== u.prevPrice) {
        const row = S.rows.get(u.symbol);
        row.flash = q.price > u.prevPrice ? 1 : -1;
      }
      sparkAdd(u.symbol, q.ts, q.price);
      if (u.symbol === S.selected) {
        chart.update(q.ts, q.price, {
          wHigh: u.wHigh,
          wLow: u.wLow,
          volume: L.volumeStep(u.prevVolume, q.volume),
        });
      }
    }
  }
  schedule();
}

function onNews(item, live) {
  if (typeof item.id !== "number") return;
  if (S.newsCursor !== null && item.id > S.newsCursor) S.newsCursor = item.id;
  if (!S.news.add(item)) return;
  item._fresh = live;
  S.newsQueue.push(item);
  chart.addNews(item);
  schedule();
}

function onError(m) {
  if (m.code === "unknown_symbol" && Array.isArray(m.symbols)) {
    // A remembered symbol this server does not know (now): keep it, greyed out, so a server
    // restarted with other feeds does not silently shrink the user's list.
    for (const sym of m.symbols) {
      const row = S.rows.get(String(sym).toUpperCase());
      if (row) {
        row.tr.classList.add("unknown");
        row.tr.title = "not known to this server";
      }
    }
  } else if (m.code === "rate_limited") {
    $("conn-detail").textContent = "rate limited";
  }
}

// ---------------------------------------------------------------------------------------------
// History backfill

function historyUrl(sym, interval, limit) {
  return `/api/history?symbol=${encodeURIComponent(sym)}&interval=${interval}&limit=${limit}`;
}

function openChart() {
  if (!S.selected) return;
  chart.open(S.selected, S.interval, S.mode);
  chart.setTheme(theme);
  for (const it of S.news.filtered(S.selected, 100).reverse()) chart.addNews(it);
  updateChartHead();
  syncSegs();
  loadHistory();
  schedule();
}

async function loadHistory() {
  const key = chart.key;
  const line = S.mode === "line";
  const url = historyUrl(S.selected, line ? "1s" : S.interval, line ? 900 : Math.min(MAX_POINTS, 2000));
  if (!chart.loading) chart.beginBackfill();
  if (!S.known.includes(S.selected)) {
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
  schedule();
}

async function backfillSparks(symbols) {
  const queue = symbols.filter((sym) => S.known.includes(sym));
  const worker = async () => {
    while (queue.length) {
      const sym = queue.shift();
      try {
        const r = await api(historyUrl(sym, "1s", SPARK_POINTS));
        if (!r.ok) continue;
        const body = await r.json();
        if (body.bars && body.bars.t.length) {
          sparkFor(sym).merge(body.bars);
          S.dirtySparks.add(sym);
          schedule();
        }
      } catch {
        return;
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}

function sparkFor(sym) {
  let s = S.sparks.get(sym);
  if (!s) {
    s = new L.SparkSeries(1000, SPARK_POINTS);
    S.sparks.set(sym, s);
  }
  return s;
}

function sparkAdd(sym, ts, price) {
  if (!S.rows.has(sym)) return;
  sparkFor(sym).add(ts, price);
  S.dirtySparks.add(sym);
}

// ---------------------------------------------------------------------------------------------
// Watchlist DOM

const tbody = $("wl-body");
const CELLS = ["sym", "spark", "last", "chg", "pct", "bid", "ask", "vol", "time", "x"];

function makeRow(sym) {
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
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  const base = document.createElementNS(SVG_NS, "line");
  base.setAttribute("class", "base");
  base.setAttribute("x1", "0");
  base.setAttribute("x2", String(SPARK_W));
  base.setAttribute("y1", "-10");
  base.setAttribute("y2", "-10");
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("class", "line");
  svg.append(base, line);
  cells.spark.appendChild(svg);
  const arr = document.createElement("span");
  arr.className = "arr";
  arr.setAttribute("aria-hidden", "true");
  const chgText = document.createTextNode("");
  cells.chg.append(arr, chgText);
  const rm = document.createElement("button");
  rm.type = "button";
  rm.className = "rm";
  rm.tabIndex = -1;
  rm.textContent = "×";
  rm.setAttribute("aria-label", `Remove ${sym}`);
  cells.x.appendChild(rm);
  const row = {
    tr,
    cells,
    spark: line,
    sparkBaseLine: base,
    sparkPoints: "",
    sparkCls: "",
    sparkBase: "",
    arr,
    chgText,
    cache: {},
    flash: 0,
    flashUntil: 0,
    dir: "",
  };
  S.rows.set(sym, row);
  return row;
}

function buildRows() {
  tbody.textContent = "";
  S.rows.clear();
  for (const sym of S.watch) tbody.appendChild(makeRow(sym).tr);
  markSelected();
  S.allDirty = true;
  schedule();
}

function setText(row, key, el, text) {
  if (row.cache[key] !== text) {
    row.cache[key] = text;
    el.textContent = text;
  }
}

function renderRow(sym, row) {
  const q = S.book.get(sym);
  if (!q) return;
  const c = row.cells;
  setText(row, "last", c.last, L.fmtPrice(q.price));
  const dir = L.direction(q.change);
  if (row.dir !== dir) {
    row.dir = dir;
    c.chg.className = "chg " + dir;
    c.pct.className = "pct " + dir;
  }
  setText(row, "arr", row.arr, L.arrow(q.change));
  const chg = L.fmtChange(q.change, q.price);
  if (row.cache.chg !== chg) {
    row.cache.chg = chg;
    row.chgText.data = chg;
  }
  setText(row, "pct", c.pct, L.fmtPct(q.change_pct));
  setText(row, "bid", c.bid, L.fmtPrice(q.bid));
  setText(row, "ask", c.ask, L.fmtPrice(q.ask));
  setText(row, "vol", c.vol, L.fmtVolume(q.volume));
  setText(row, "time", c.time, L.fmtTime(q.ts));
  if (row.flash) {
    // A brief tint, switched on here and off in a later frame: two style changes per flash and
    // no per-frame animation (an animated background repaints the table 60 times a second).
    const cls = row.flash > 0 ? "last fu" : "last fd";
    if (c.last.className !== cls) c.last.className = cls;
    row.flashUntil = now() + FLASH_MS;
    row.flash = 0;
    S.flashing.add(row);
  }
}

function endFlashes(t) {
  let next = Infinity;
  for (const row of S.flashing) {
    if (t >= row.flashUntil) {
      row.cells.last.className = "last";
      S.flashing.delete(row);
    } else if (row.flashUntil < next) {
      next = row.flashUntil;
    }
  }
  return next;
}

const SVG_NS = "http://www.w3.org/2000/svg";

function drawSpark(sym) {
  // An SVG polyline, not a canvas: 50 canvases are 50 layers for the compositor to place on
  // every frame; a polyline is a few display items in the table's own layer. Its colour comes
  // from CSS, so a theme change needs no redraw.
  const row = S.rows.get(sym);
  const s = S.sparks.get(sym);
  if (!row || !s) return;
  const g = L.sparkGeometry(s.t, s.v, SPARK_W, SPARK_H, S.book.get(sym)?.prev_close);
  if (g.points !== row.sparkPoints) {
    row.sparkPoints = g.points;
    row.spark.setAttribute("points", g.points);
  }
  const cls = g.up ? "up" : "down";
  if (row.sparkCls !== cls) {
    row.sparkCls = cls;
    row.spark.setAttribute("class", "line " + cls);
  }
  const y = g.base === null ? "-10" : String(g.base);
  if (row.sparkBase !== y) {
    row.sparkBase = y;
    row.sparkBaseLine.setAttribute("y1", y);
    row.sparkBaseLine.setAttribute("y2", y);
  }
}

function markSelected() {
  for (const [sym, row] of S.rows) {
    const on = sym === S.selected;
    row.tr.setAttribute("aria-selected", on ? "true" : "false");
    row.tr.tabIndex = on ? 0 : -1;
  }
  if (S.selected && !S.rows.has(S.selected)) {
    const first = S.rows.values().next().value;
    if (first) first.tr.tabIndex = 0;
  }
}

function selectSymbol(sym, { focus = false } = {}) {
  if (!sym || !S.rows.has(sym)) return;
  const changed = sym !== S.selected;
  S.selected = sym;
  save("selected", sym);
  markSelected();
  const row = S.rows.get(sym);
  if (focus) row.tr.focus({ preventScroll: false });
  row.tr.scrollIntoView({ block: "nearest" });
  if (changed) openChart();
}

let selectTimer = null;
function selectSoon(sym) {
  // Arrow keys move the highlight at once; the chart follows when the key rests (one fetch).
  S.selected = sym;
  markSelected();
  S.rows.get(sym)?.tr.focus();
  clearTimeout(selectTimer);
  selectTimer = setTimeout(() => {
    save("selected", sym);
    openChart();
  }, 150);
}

function addSymbol(sym) {
  sym = sym.toUpperCase();
  if (S.watch.includes(sym)) {
    selectSymbol(sym, { focus: true });
    return;
  }
  if (S.watch.length >= L.MAX_WATCH) return;
  S.watch.push(sym);
  S.watchStored = true;
  saveWatch();
  tbody.appendChild(makeRow(sym).tr);
  request({ op: "subscribe", symbols: [sym] });
  backfillSparks([sym]);
  selectSymbol(sym);
  S.sortedAt = 0;
  schedule();
}

function removeSymbol(sym) {
  const i = S.watch.indexOf(sym);
  if (i < 0) return;
  const order = currentOrder();
  const pos = order.indexOf(sym);
  S.watch.splice(i, 1);
  const row = S.rows.get(sym);
  const hadFocus = row && row.tr.contains(document.activeElement);
  row?.tr.remove();
  S.rows.delete(sym);
  S.sparks.delete(sym);
  S.book.delete(sym);
  S.watchStored = true;
  saveWatch();
  send({ op: "unsubscribe", symbols: [sym] });
  if (S.selected === sym) {
    const rest = order.filter((s) => s !== sym);
    const next = rest[Math.min(pos, rest.length - 1)] ?? null;
    S.selected = null;
    if (next) selectSymbol(next, { focus: hadFocus });
    else markSelected();
  }
}

function currentOrder() {
  return Array.from(tbody.children, (tr) => tr.dataset.symbol);
}

function applySort(force) {
  const t = now();
  if (!force && t - S.sortedAt < 1000) return;
  S.sortedAt = t;
  const order = L.sortSymbols(S.watch, S.book, S.sortKey, S.sortDir);
  const cur = currentOrder();
  if (order.length === cur.length && order.every((s, i) => s === cur[i])) return;
  const active = document.activeElement;
  const frag = document.createDocumentFragment();
  for (const s of order) {
    const row = S.rows.get(s);
    if (row) frag.appendChild(row.tr);
  }
  tbody.appendChild(frag);
  if (active && tbody.contains(active)) active.focus({ preventScroll: true });
}

function renderSortHeaders() {
  for (const b of document.querySelectorAll("th button[data-sort]")) {
    const th = b.parentElement;
    if (b.dataset.sort === S.sortKey) th.setAttribute("aria-sort", S.sortDir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}

// ---------------------------------------------------------------------------------------------
// News DOM

const newsList = $("news-list");

function newsItem(it) {
  const li = document.createElement("li");
  li.dataset.newsId = String(it.id);
  const time = document.createElement("time");
  time.className = "news-time";
  time.dateTime = new Date(it.ts).toISOString();
  time.textContent = L.fmtTime(it.ts);
  const head = document.createElement(it.url ? "a" : "span");
  head.className = "news-head";
  head.textContent = it.headline;
  if (it.url) {
    head.href = it.url;
    head.target = "_blank";
    head.rel = "noopener noreferrer";
  }
  if (it.summary) head.title = it.summary;
  const meta = document.createElement("div");
  meta.className = "news-meta";
  const src = document.createElement("span");
  src.className = "news-src";
  src.textContent = it.source || "";
  meta.appendChild(src);
  for (const s of it.symbols || []) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tag" + (s === S.newsFilter ? " on" : "");
    b.dataset.tag = s;
    b.textContent = s;
    b.setAttribute("aria-label", `Show news for ${s}`);
    meta.appendChild(b);
  }
  li.append(time, head, meta);
  return li;
}

function renderNews() {
  if (S.newsFull) {
    S.newsFull = false;
    S.newsQueue = [];
    const frag = document.createDocumentFragment();
    for (const it of S.news.filtered(S.newsFilter, NEWS_DOM_MAX)) frag.appendChild(newsItem(it));
    newsList.textContent = "";
    newsList.appendChild(frag);
    return;
  }
  if (!S.newsQueue.length) return;
  const queue = S.newsQueue;
  S.newsQueue = [];
  const topId = Number(newsList.firstElementChild?.dataset.newsId ?? -Infinity);
  for (const it of queue.sort((a, b) => a.id - b.id)) {
    if (S.newsFilter !== null && !(it.symbols || []).includes(S.newsFilter)) continue;
    if (!S.news.ids.has(it.id)) continue; // already evicted from the bounded store
    if (it.id < topId) {
      // Out of order (a backfill behind live items): rebuild in order.
      S.newsFull = true;
      renderNews();
      return;
    }
    const li = newsItem(it);
    if (it._fresh) {
      // A static highlight for a moment (two repaints, not an animation's sixty a second).
      li.classList.add("fresh");
      setTimeout(() => li.classList.remove("fresh"), FRESH_MS);
    }
    newsList.insertBefore(li, newsList.firstChild);
  }
  while (newsList.childElementCount > NEWS_DOM_MAX) newsList.lastElementChild.remove();
}

function setNewsFilter(tag) {
  S.newsFilter = tag;
  $("news-filter").hidden = tag === null;
  $("news-filter-tag").textContent = tag ?? "";
  S.newsFull = true;
  schedule();
}

// ---------------------------------------------------------------------------------------------
// Status bar

const statusEl = document.querySelector('[data-testid="status"]');
let lastStatus = "";

function renderStatus() {
  const t = now();
  let state;
  let detail = "";
  if (S.live) {
    state = "live";
    detail = S.rtt !== null ? `rtt ${L.fmtMs(S.rtt)}` : "";
  } else if (!S.everLive && S.attempt === 0) {
    state = "connecting";
    detail = S.step === "connecting" ? "" : S.step + "…";
  } else {
    state = L.connectionState({ online: navigator.onLine, failures: S.attempt });
    if (S.step === "waiting") {
      const secs = Math.max(0, (S.retryAt - t) / 1000);
      detail = `retry in ${secs.toFixed(1)} s · attempt ${S.attempt}`;
    } else if (S.step === "news") {
      detail = `news since #${S.newsCursor}…`;
    } else {
      detail = S.step + "…";
    }
  }
  const throttle = S.serverThrottle === null ? "—" : `${S.serverThrottle} ms`;
  const lat = L.median(S.latency);
  S.latency.length = 0;
  let latText = lat === undefined ? (S.live ? $("m-latency").textContent : "—") : L.fmtMs(lat);
  if (S.replay.length) latText = "replay";
  const r = S.live ? S.rate.rate(t) : null;
  const rate = r === null ? "—" : r.toLocaleString("en-US");
  const key = [state, detail, throttle, latText, rate, S.paused].join("|");
  if (key === lastStatus) return;
  lastStatus = key;
  statusEl.dataset.state = state;
  statusEl.classList.toggle("paused", S.paused);
  $("conn-state").textContent = state;
  $("conn-detail").textContent = detail;
  $("m-throttle").textContent = throttle;
  $("m-latency").textContent = latText;
  $("m-rate").textContent = rate;
}

setInterval(renderStatus, 500);

function syncWindowSelect() {
  const sel = $("window");
  const ms = S.windowMs ?? S.serverDefault ?? 100;
  if (![...sel.options].some((o) => Number(o.value) === ms)) {
    const o = document.createElement("option");
    o.value = String(ms);
    o.textContent = `${ms} ms`;
    sel.appendChild(o);
  }
  sel.value = String(ms);
}

// ---------------------------------------------------------------------------------------------
// Chart header and controls

function updateChartHead() {
  $("chart-sym").textContent = S.selected ?? "—";
  const q = S.selected ? S.book.get(S.selected) : null;
  const el = $("chart-last");
  const text = q
    ? `${L.fmtPrice(q.price)}|${L.arrow(q.change)} ${L.fmtChange(q.change, q.price)} (${L.fmtPct(q.change_pct)})|${L.direction(q.change)}`
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

function syncSegs() {
  for (const b of document.querySelectorAll("[data-interval]")) {
    b.setAttribute("aria-pressed", String(b.dataset.interval === S.interval));
    b.disabled = S.mode === "line";
  }
  for (const b of document.querySelectorAll("[data-mode]")) {
    b.setAttribute("aria-pressed", String(b.dataset.mode === S.mode));
  }
}

// ---------------------------------------------------------------------------------------------
// Frame: everything visible is drawn here, at most once per animation frame

function schedule() {
  if (!S.raf) S.raf = requestAnimationFrame(frame);
}

function wakeAt(when, t) {
  if (S.wake) {
    if (when >= S.wakeWhen) return;
    clearTimeout(S.wake);
  }
  S.wakeWhen = when;
  S.wake = setTimeout(() => {
    S.wake = 0;
    schedule();
  }, Math.max(0, when - t));
}

function frame() {
  S.raf = 0;
  S.frames++;
  if (S.paused) return;
  const t = now();
  if (S.allDirty) {
    S.allDirty = false;
    for (const sym of S.rows.keys()) {
      S.dirty.add(sym);
      S.dirtySparks.add(sym);
    }
  }
  // One heavy thing per frame: a chart draw or a table pass (each can take a good part of a
  // frame, together they would make a long task). The chart goes first unless the table has
  // waited too long; the table refreshes at most every TABLE_MIN_GAP_MS (20 times a second is
  // more than eyes read; the flash marks each change).
  const tableWants = S.dirty.size > 0 || S.newsFull || S.newsQueue.length > 0;
  const tableAt = tableWants ? S.tableAt + TABLE_MIN_GAP_MS : Infinity;
  const sparksDue = S.nextSpark <= t;
  if (window.Plotly && chart.dueAt() <= t && !(tableAt <= t && t - S.tableAt > TABLE_MAX_LAG_MS)) {
    chart.render(window.Plotly, t);
  } else if (tableAt <= t || sparksDue) {
    drawTable(t);
  }
  const pending = Math.min(
    S.dirty.size > 0 || S.newsFull || S.newsQueue.length > 0
      ? S.tableAt + TABLE_MIN_GAP_MS
      : Infinity,
    chart.dueAt(),
  );
  // Ending flashes and drawing due sparklines ride on the next data frame; a timer frame only
  // comes for them when the data is quiet (each frame has a fixed cost: layerize, commit).
  const chores = Math.min(endFlashes(t), S.nextSpark) + CHORE_SLACK_MS;
  if (pending <= t + FRAME_MS) schedule();
  else if (Math.min(pending, chores) < Infinity) wakeAt(Math.min(pending, chores), t);
}

function drawTable(t) {
  S.tableAt = t;
  if (S.sortKey) applySort(false);
  for (const sym of S.dirty) {
    const row = S.rows.get(sym);
    if (row) renderRow(sym, row);
  }
  S.dirty.clear();
  // Sparklines have one point per second: each is redrawn at most once a second, and a frame
  // draws only a few of them, so 50 rows never land in one long frame.
  let budget = SPARKS_PER_FRAME;
  let nextSpark = Infinity;
  for (const sym of S.dirtySparks) {
    const due = (S.sparkDrawn.get(sym) ?? 0) + SPARK_EVERY_MS;
    if (t < due || budget <= 0) {
      nextSpark = Math.min(nextSpark, budget <= 0 ? t + 16 : due);
      continue;
    }
    budget--;
    drawSpark(sym);
    S.sparkDrawn.set(sym, t);
    S.dirtySparks.delete(sym);
  }
  S.nextSpark = nextSpark;
  if (S.newsFull || S.newsQueue.length) renderNews();
  updateChartHead();
}

// ---------------------------------------------------------------------------------------------
// Stale symbols: upstream feeds report symbols that stopped updating (/healthz feeds[].stale)

async function checkStale() {
  let h = null;
  try {
    const r = await fetch("/healthz");
    if (r.ok) h = await r.json();
  } catch {
    h = null;
  }
  if (h) {
    S.stale = L.staleSymbols(h);
    for (const [sym, row] of S.rows) {
      const on = S.stale.has(sym.toUpperCase());
      row.tr.classList.toggle("stale", on);
      if (on) row.tr.title = "stale: its upstream has stopped updating it";
      else if (row.tr.title.startsWith("stale")) row.tr.title = "";
    }
  }
  clearTimeout(S.staleTimer);
  S.staleTimer = setTimeout(checkStale, document.hidden ? 15000 : 5000);
}
checkStale();

// ---------------------------------------------------------------------------------------------
// Replay control bar (issue 4's contract: GET/POST /api/replay)

async function checkReplay() {
  let status = 0;
  let body = null;
  try {
    const r = await api("/api/replay");
    status = r.status;
    if (r.ok) body = await r.json();
  } catch {
    status = 0;
  }
  S.replay = L.replayFeeds(status, body);
  renderReplay();
  clearTimeout(S.replayTimer);
  if (S.replay.length) S.replayTimer = setTimeout(checkReplay, document.hidden ? 5000 : 1000);
}

function fmtClock(ms) {
  if (!Number.isFinite(ms)) return "—";
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${L.fmtTime(ms)}`;
}

function renderReplay() {
  const bar = $("replay");
  const f = S.replay[0];
  bar.hidden = !f;
  if (!f) return;
  const playing = f.state === "playing";
  const play = $("replay-play");
  play.textContent = playing ? "❚❚" : "▶";
  play.setAttribute("aria-label", playing ? "Pause replay" : "Resume replay");
  play.disabled = f.state === "finished";
  const speed = $("replay-speed");
  if (document.activeElement !== speed) {
    const v = String(f.speed);
    if (![...speed.options].some((o) => o.value === v)) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = `${v}×`;
      speed.appendChild(o);
    }
    speed.value = v;
  }
  const scrub = $("replay-scrub");
  const known = L.replayProgress(f) !== null;
  scrub.disabled = !known;
  if (known) {
    scrub.min = String(f.start);
    scrub.max = String(f.end);
    scrub.step = "1000";
    if (!S.replayDragging) scrub.value = String(f.clock);
  }
  $("replay-clock").textContent = fmtClock(S.replayDragging ? Number(scrub.value) : f.clock);
  const pct = L.replayProgress(f);
  $("replay-state").textContent = f.state + (pct === null ? "" : ` · ${Math.round(pct * 100)}%`);
}

async function replayCommand(body) {
  const post = (admin) =>
    api("/api/replay", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        ...(admin ? { Authorization: `Bearer ${admin}` } : {}),
      },
      body: JSON.stringify(body),
    });
  try {
    const r = await post(adminToken());
    if (r.status === 401) {
      // The server has an admin token: ask once, keep it for this tab only.
      const admin = window.prompt("Admin token for replay control");
      if (admin) {
        try {
          sessionStorage.setItem(ADMIN_KEY, admin);
        } catch {
          /* used once, then asked again */
        }
        await post(admin);
      }
    }
  } finally {
    checkReplay();
  }
}

// ---------------------------------------------------------------------------------------------
// Events

function wireEvents() {
  tbody.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-symbol]");
    if (!tr) return;
    if (ev.target.closest(".rm")) {
      removeSymbol(tr.dataset.symbol);
      return;
    }
    selectSymbol(tr.dataset.symbol, { focus: true });
  });

  tbody.addEventListener("keydown", (ev) => {
    const tr = ev.target.closest("tr[data-symbol]");
    if (!tr) return;
    const order = currentOrder();
    const i = order.indexOf(tr.dataset.symbol);
    let j = null;
    switch (ev.key) {
      case "ArrowDown":
        j = Math.min(order.length - 1, i + 1);
        break;
      case "ArrowUp":
        j = Math.max(0, i - 1);
        break;
      case "Home":
        j = 0;
        break;
      case "End":
        j = order.length - 1;
        break;
      case "PageDown":
        j = Math.min(order.length - 1, i + 10);
        break;
      case "PageUp":
        j = Math.max(0, i - 10);
        break;
      case "Enter":
      case " ":
        ev.preventDefault();
        clearTimeout(selectTimer);
        if (chart.symbol !== tr.dataset.symbol) {
          S.selected = null;
          selectSymbol(tr.dataset.symbol, { focus: true });
        }
        return;
      case "Delete":
      case "Backspace":
        ev.preventDefault();
        removeSymbol(tr.dataset.symbol);
        return;
      default:
        return;
    }
    ev.preventDefault();
    if (j !== null && j !== i) selectSoon(order[j]);
  });

  for (const b of document.querySelectorAll("th button[data-sort]")) {
    b.addEventListener("click", () => {
      const k = b.dataset.sort;
      if (S.sortKey !== k) {
        S.sortKey = k;
        S.sortDir = k === "symbol" ? 1 : -1;
      } else if (S.sortDir === (k === "symbol" ? 1 : -1)) {
        S.sortDir = -S.sortDir;
      } else {
        S.sortKey = null;
      }
      save("sort", S.sortKey ? `${S.sortKey}:${S.sortDir}` : "");
      renderSortHeaders();
      if (S.sortKey) applySort(true);
      else {
        const frag = document.createDocumentFragment();
        for (const s of S.watch) frag.appendChild(S.rows.get(s).tr);
        tbody.appendChild(frag);
      }
    });
  }

  // Search / add
  const input = $("search");
  const list = $("search-list");
  let results = [];
  let active = 0;
  const renderResults = () => {
    list.textContent = "";
    list.hidden = results.length === 0;
    results.forEach((s, i) => {
      const li = document.createElement("li");
      li.role = "option";
      li.id = `opt-${s}`;
      li.dataset.symbol = s;
      li.textContent = s;
      li.setAttribute("aria-selected", String(i === active));
      list.appendChild(li);
    });
    input.setAttribute("aria-activedescendant", results.length ? `opt-${results[active]}` : "");
  };
  input.addEventListener("input", () => {
    results = L.searchSymbols(S.known, input.value, S.watch);
    active = 0;
    renderResults();
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (results.length) {
        active = (active + (ev.key === "ArrowDown" ? 1 : results.length - 1)) % results.length;
        renderResults();
      }
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      const sym = results[active] ?? (S.known.includes(input.value.trim().toUpperCase()) ? input.value.trim().toUpperCase() : null);
      if (sym) {
        addSymbol(sym);
        input.value = "";
        results = [];
        renderResults();
      }
    } else if (ev.key === "Escape") {
      input.value = "";
      results = [];
      renderResults();
      S.rows.get(S.selected)?.tr.focus();
    }
  });
  input.addEventListener("blur", () => setTimeout(() => {
    results = [];
    renderResults();
  }, 150));
  list.addEventListener("mousedown", (ev) => {
    const li = ev.target.closest("li[data-symbol]");
    if (!li) return;
    ev.preventDefault();
    addSymbol(li.dataset.symbol);
    input.value = "";
    results = [];
    renderResults();
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "/" && !ev.target.closest("input, select, textarea")) {
      ev.preventDefault();
      input.focus();
    }
  });

  // Chart controls
  for (const b of document.querySelectorAll("[data-interval]")) {
    b.addEventListener("click", () => {
      if (S.interval === b.dataset.interval) return;
      S.interval = b.dataset.interval;
      save("interval", S.interval);
      openChart();
    });
  }
  for (const b of document.querySelectorAll("[data-mode]")) {
    b.addEventListener("click", () => {
      if (S.mode === b.dataset.mode) return;
      S.mode = b.dataset.mode;
      save("mode", S.mode);
      openChart();
    });
  }
  $("follow").addEventListener("click", () => {
    chart.follow();
    schedule();
  });

  // News tags filter
  newsList.addEventListener("click", (ev) => {
    const tag = ev.target.closest("button.tag");
    if (!tag) return;
    setNewsFilter(S.newsFilter === tag.dataset.tag ? null : tag.dataset.tag);
  });
  $("news-filter-tag").addEventListener("click", () => setNewsFilter(null));

  // Status controls
  $("window").addEventListener("change", (ev) => {
    S.windowMs = Number(ev.target.value);
    save("window", String(S.windowMs));
    if (S.connected) sendThrottle();
  });
  $("pause").addEventListener("click", () => {
    S.paused = !S.paused;
    $("pause").setAttribute("aria-pressed", String(S.paused));
    $("pause").textContent = S.paused ? "Resume" : "Pause";
    if (!S.paused) {
      S.allDirty = true;
      chart.needsFull = true;
      chart.dirty = true;
    }
    renderStatus();
    schedule();
  });

  // A hidden tab asks for a slow window; back in view it asks for its own again, and the server
  // answers a window change with a fresh snapshot: the catch-up.
  document.addEventListener("visibilitychange", () => {
    if (S.connected) sendThrottle();
    if (!document.hidden) {
      S.allDirty = true;
      chart.needsFull = true;
      chart.dirty = true;
      schedule();
      if (S.replay.length) checkReplay();
    }
  });

  // Replay controls
  $("replay-play").addEventListener("click", () => {
    const f = S.replay[0];
    if (f) replayCommand({ action: f.state === "playing" ? "pause" : "resume" });
  });
  $("replay-speed").addEventListener("change", (ev) => {
    const v = ev.target.value;
    replayCommand({ action: "speed", speed: v === "max" ? "max" : Number(v) });
  });
  const scrub = $("replay-scrub");
  scrub.addEventListener("input", () => {
    S.replayDragging = true;
    $("replay-clock").textContent = fmtClock(Number(scrub.value));
  });
  scrub.addEventListener("change", () => {
    S.replayDragging = false;
    replayCommand({ action: "seek", to: Number(scrub.value) });
  });

  // The chart's box changes size with the layout, not only with the window.
  let resizeRaf = 0;
  new ResizeObserver(() => {
    if (resizeRaf) return;
    resizeRaf = requestAnimationFrame(() => {
      resizeRaf = 0;
      chart.resize(window.Plotly);
      schedule();
    });
  }).observe($("price-chart").parentElement);
}

// ---------------------------------------------------------------------------------------------
// Start

loadPrefs();
renderSortHeaders();
syncSegs();
wireEvents();
renderStatus();
connect();
// plotly.min.js is a deferred classic script: it has run before this module; draw once it is.
if (!window.Plotly) window.addEventListener("load", schedule);

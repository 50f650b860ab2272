// The status bar: the connection's state and step, feed-to-screen latency, updates per second,
// the server's throttle; the window control and Pause.

import { $, now } from "./dom.js";
import { connectionStatus } from "./logic/connection.js";
import { fmtMs, fmtTime } from "./logic/format.js";
import { RateMeter, median } from "./logic/rate.js";
import { save } from "./storage.js";

const STATUS_EVERY_MS = 500;
const LATENCY_SAMPLES_MAX = 20000;

export class StatusBar {
  /**
   * @param {{client: import("./client.js").Client, replaying: () => boolean,
   *          onPause: (paused: boolean) => void}} deps
   */
  constructor({ client, replaying, onPause }) {
    this.client = client;
    this.replaying = replaying;
    this.onPause = onPause;
    this.el = document.querySelector('[data-testid="status"]');
    this.rate = new RateMeter();
    this.latency = [];
    this.paused = false;
    this.shown = ""; // what the bar shows, as one string (nothing to do when unchanged)
  }

  wire() {
    window.addEventListener("offline", () => this.render());
    setInterval(() => this.render(), STATUS_EVERY_MS);
    $("window").addEventListener("change", (ev) => {
      const ms = Number(ev.target.value);
      save("window", String(ms));
      this.client.setWindow(ms);
    });
    $("pause").addEventListener("click", () => this.togglePause());
    $("retry").addEventListener("click", () => this.retryNow());
  }

  /** Connect again at once instead of waiting out the backoff (the client's own connect()). */
  retryNow() {
    if (this.client.tc.conn) return; // already trying, or back
    this.client.connect();
    this.render();
  }

  /** A delta's updates: counted for upd/s, and their feed-to-screen latency sampled. */
  noteUpdates(t, updates) {
    this.rate.add(t, updates.length);
    // Feed-to-screen latency is meaningless for a replay (its ts is market time, not now).
    if (this.replaying()) return;
    for (const u of updates) {
      const ts = u.quote.ts;
      if (typeof ts === "number" && this.latency.length < LATENCY_SAMPLES_MAX) this.latency.push(t - ts);
    }
  }

  togglePause() {
    this.paused = !this.paused;
    const b = $("pause");
    b.setAttribute("aria-pressed", String(this.paused));
    b.textContent = this.paused ? "Resume" : "Pause";
    this.render();
    this.onPause(this.paused);
  }

  render() {
    const t = now();
    const s = this.client.session;
    const { state, detail } = connectionStatus(s, { online: navigator.onLine, now: t });
    const ms = this.client.serverThrottle;
    const throttle = ms === null ? "—" : `${ms} ms`;
    const lat = median(this.latency);
    this.latency.length = 0;
    let latText = lat === undefined ? (s.live ? $("m-latency").textContent : "—") : fmtMs(lat);
    if (this.replaying()) latText = "replay";
    const r = s.live ? this.rate.rate(t) : null;
    const rate = r === null ? "—" : r.toLocaleString("en-US");
    // Off the live stream, what is on screen is as of the last frame received: dimmed, and said.
    const stale = state !== "live" && state !== "connecting" && this.client.book.size > 0;
    const asOf = stale && this.client.lastFrameAt ? `as of ${fmtTime(this.client.lastFrameAt)} UTC` : "";
    const key = [state, detail, throttle, latText, rate, this.paused, asOf, s.transport].join("|");
    if (key === this.shown) return;
    this.shown = key;
    document.body.classList.toggle("stale", stale);
    $("as-of").textContent = asOf;
    $("as-of").hidden = !asOf;
    $("retry").hidden = state === "live" || state === "connecting";
    this.el.dataset.state = state;
    this.el.dataset.transport = s.transport ?? "ws"; // (`SSE` on the fallback)
    this.el.classList.toggle("paused", this.paused);
    $("conn-state").textContent = state;
    $("conn-detail").textContent = detail;
    $("m-throttle").textContent = throttle;
    $("m-latency").textContent = latText;
    $("m-rate").textContent = rate;
  }

  /** A note in the detail slot until the status next changes (e.g. "rate limited"). */
  note(text) {
    $("conn-detail").textContent = text;
  }

  /** The window control shows this tab's window (an unlisted server default gets an option). */
  syncWindow() {
    const sel = $("window");
    const ms = this.client.shownWindow();
    if (![...sel.options].some((o) => Number(o.value) === ms)) {
      const o = document.createElement("option");
      o.value = String(ms);
      o.textContent = `${ms} ms`;
      sel.appendChild(o);
    }
    sel.value = String(ms);
  }
}

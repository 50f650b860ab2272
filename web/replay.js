// The replay bar (README "Replay": GET/POST /api/replay): shown only while the server runs a
// replay; play/pause, speed, a scrubber over the replay's span (seeks on release), the market
// clock. Commands need the admin token when the server has one (api.js).

import { $ } from "./dom.js";
import { adminToken, api, rememberAdmin } from "./api.js";
import { fmtClock } from "./logic/format.js";
import { playCommand, replayFeeds, replayLabel, replayProgress, speedCommand } from "./logic/replay.js";

const POLL_MS = 1000;
const POLL_HIDDEN_MS = 5000;

export class ReplayBar {
  constructor() {
    this.feeds = []; // logic/replay.js replayFeeds: [] when no replay runs
    this.timer = null;
    this.dragging = false; // the scrubber is held: the clock shows its position
  }

  /** A replay is running (its quotes' `ts` is market time, not now). */
  active() {
    return this.feeds.length > 0;
  }

  wire() {
    $("replay-play").addEventListener("click", () => {
      const f = this.feeds[0];
      if (f) this.command(playCommand(f));
    });
    $("replay-speed").addEventListener("change", (ev) => this.command(speedCommand(ev.target.value)));
    const scrub = $("replay-scrub");
    scrub.addEventListener("input", () => {
      this.dragging = true;
      $("replay-clock").textContent = fmtClock(Number(scrub.value));
    });
    scrub.addEventListener("change", () => {
      this.dragging = false;
      this.command({ action: "seek", to: Number(scrub.value) });
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.active()) this.check();
    });
  }

  async check() {
    let status = 0;
    let body = null;
    try {
      const r = await api("/api/replay");
      status = r.status;
      if (r.ok) body = await r.json();
    } catch {
      status = 0;
    }
    this.feeds = replayFeeds(status, body);
    this.render();
    clearTimeout(this.timer);
    if (this.active()) this.timer = setTimeout(() => this.check(), document.hidden ? POLL_HIDDEN_MS : POLL_MS);
  }

  render() {
    const f = this.feeds[0];
    $("replay").hidden = !f;
    if (!f) return;
    const playing = f.state === "playing";
    const play = $("replay-play");
    play.textContent = playing ? "❚❚" : "▶";
    play.setAttribute("aria-label", playing ? "Pause replay" : "Resume replay");
    play.disabled = f.state === "finished";
    this.renderSpeed(f);
    const scrub = $("replay-scrub");
    const known = replayProgress(f) !== null;
    scrub.disabled = !known;
    if (known) {
      scrub.min = String(f.start);
      scrub.max = String(f.end);
      scrub.step = "1000";
      if (!this.dragging) scrub.value = String(f.clock);
    }
    $("replay-clock").textContent = fmtClock(this.dragging ? Number(scrub.value) : f.clock);
    $("replay-state").textContent = replayLabel(f);
  }

  /** The speed select follows the server (an unlisted speed gets an option), unless in use. */
  renderSpeed(f) {
    const speed = $("replay-speed");
    if (document.activeElement === speed) return;
    const v = String(f.speed);
    if (![...speed.options].some((o) => o.value === v)) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = `${v}×`;
      speed.appendChild(o);
    }
    speed.value = v;
  }

  async command(body) {
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
          rememberAdmin(admin);
          await post(admin);
        }
      }
    } finally {
      this.check();
    }
  }
}

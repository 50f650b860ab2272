// The frame: everything visible is drawn here, in one requestAnimationFrame, at most once per
// frame, and at most one heavy job per frame: a chart draw or a table pass (each can take a good
// part of a frame; together they would make a long task).

import { now } from "./dom.js";

const TABLE_MAX_LAG_MS = 100;
const TABLE_MIN_GAP_MS = 50;
const FRAME_MS = 16;
const CHORE_SLACK_MS = 150;

/**
 * @typedef {object} TablePass the light DOM work: watchlist rows, sparklines, news, chart header
 * @property {() => void} prepare start of a frame
 * @property {() => boolean} wants rows or news to draw
 * @property {(t: number) => boolean} sparksDue a sparkline is due
 * @property {(t: number) => void} draw the pass
 * @property {(t: number) => number} chores end due flashes; when the next chore is due
 */

export class FrameLoop {
  constructor() {
    this.raf = 0;
    this.frames = 0;
    this.wake = 0; // a timer that schedules a frame for pending flashes/sparklines/chart
    this.wakeWhen = 0;
    this.tableAt = 0;
    this.parts = null;
  }

  /**
   * @param {{chart: import("./chart.js").PriceChart, table: TablePass, paused: () => boolean}} parts
   */
  attach(parts) {
    this.parts = parts;
  }

  schedule() {
    if (!this.raf) this.raf = requestAnimationFrame(() => this.frame());
  }

  wakeAt(when, t) {
    if (this.wake) {
      if (when >= this.wakeWhen) return;
      clearTimeout(this.wake);
    }
    this.wakeWhen = when;
    this.wake = setTimeout(() => {
      this.wake = 0;
      this.schedule();
    }, Math.max(0, when - t));
  }

  frame() {
    this.raf = 0;
    this.frames++;
    if (!this.parts || this.parts.paused()) return;
    const { chart, table } = this.parts;
    const t = now();
    table.prepare();
    // The chart goes first unless the table has waited too long; the table refreshes at most
    // every TABLE_MIN_GAP_MS (20 times a second is more than eyes read; the flash marks each
    // change).
    const tableAt = table.wants() ? this.tableAt + TABLE_MIN_GAP_MS : Infinity;
    const sparksDue = table.sparksDue(t);
    if (window.Plotly && chart.dueAt() <= t && !(tableAt <= t && t - this.tableAt > TABLE_MAX_LAG_MS)) {
      chart.render(window.Plotly, t);
    } else if (tableAt <= t || sparksDue) {
      this.tableAt = t;
      table.draw(t);
    }
    const pending = Math.min(table.wants() ? this.tableAt + TABLE_MIN_GAP_MS : Infinity, chart.dueAt());
    // Ending flashes and drawing due sparklines ride on the next data frame; a timer frame only
    // comes for them when the data is quiet (each frame has a fixed cost: layerize, commit).
    const chores = table.chores(t) + CHORE_SLACK_MS;
    if (pending <= t + FRAME_MS) this.schedule();
    else if (Math.min(pending, chores) < Infinity) this.wakeAt(Math.min(pending, chores), t);
  }
}

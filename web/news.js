// The news panel: newest first, each id once (logic/news.js), a tag filter, a brief highlight for
// items that arrive live. New items are queued and drawn in the frame's table pass (frame.js).

import { $ } from "./dom.js";
import { fmtTime } from "./logic/format.js";
import { NewsStore } from "./logic/news.js";

const STORE_MAX = 1000;
const NEWS_DOM_MAX = 200;
const FRESH_MS = 2000;

export class NewsPanel {
  /** @param {{schedule: () => void}} deps */
  constructor({ schedule }) {
    this.schedule = schedule;
    this.store = new NewsStore(STORE_MAX);
    this.filter = null; // the tag shown, or null for all
    this.queue = []; // added since the last draw
    this.full = true; // the list must be rebuilt
    this.list = $("news-list");
  }

  wire() {
    this.list.addEventListener("click", (ev) => {
      const tag = ev.target.closest("button.tag");
      if (!tag) return;
      this.setFilter(this.filter === tag.dataset.tag ? null : tag.dataset.tag);
    });
    $("news-filter-tag").addEventListener("click", () => this.setFilter(null));
  }

  /** One item; false when its id was seen before. `live`: from the stream (highlighted). */
  add(item, live) {
    if (!this.store.add(item)) return false;
    item._fresh = live;
    this.queue.push(item);
    return true;
  }

  /** The newest `limit` items tagged `sym`, newest first. */
  recent(sym, limit) {
    return this.store.filtered(sym, limit);
  }

  /** Something to draw. */
  pending() {
    return this.full || this.queue.length > 0;
  }

  setFilter(tag) {
    this.filter = tag;
    $("news-filter").hidden = tag === null;
    $("news-filter-tag").textContent = tag ?? "";
    this.full = true;
    this.schedule();
  }

  draw() {
    if (this.full) {
      this.rebuild();
      return;
    }
    if (!this.queue.length) return;
    const queue = this.queue;
    this.queue = [];
    const list = this.list;
    const topId = Number(list.firstElementChild?.dataset.newsId ?? -Infinity);
    for (const it of queue.sort((a, b) => a.id - b.id)) {
      if (this.filter !== null && !(it.symbols || []).includes(this.filter)) continue;
      if (!this.store.ids.has(it.id)) continue; // already evicted from the bounded store
      if (it.id < topId) {
        // Out of order (a backfill behind live items): rebuild in order.
        this.rebuild();
        return;
      }
      const li = this.item(it);
      if (it._fresh) {
        // A static highlight for a moment (two repaints, not an animation's sixty a second).
        li.classList.add("fresh");
        setTimeout(() => li.classList.remove("fresh"), FRESH_MS);
      }
      list.insertBefore(li, list.firstChild);
    }
    while (list.childElementCount > NEWS_DOM_MAX) list.lastElementChild.remove();
  }

  rebuild() {
    this.full = false;
    this.queue = [];
    const frag = document.createDocumentFragment();
    for (const it of this.store.filtered(this.filter, NEWS_DOM_MAX)) frag.appendChild(this.item(it));
    this.list.textContent = "";
    this.list.appendChild(frag);
  }

  item(it) {
    const li = document.createElement("li");
    li.dataset.newsId = String(it.id);
    const time = document.createElement("time");
    time.className = "news-time";
    time.dateTime = new Date(it.ts).toISOString();
    time.textContent = fmtTime(it.ts);
    const head = document.createElement(it.url ? "a" : "span");
    head.className = "news-head";
    head.textContent = it.headline;
    if (it.url) {
      head.href = it.url;
      head.target = "_blank";
      head.rel = "noopener noreferrer";
    }
    if (it.summary) head.title = it.summary;
    li.append(time, head, this.meta(it));
    return li;
  }

  /** Source and symbol tags (a tag is a button: it filters the list). */
  meta(it) {
    const meta = document.createElement("div");
    meta.className = "news-meta";
    const src = document.createElement("span");
    src.className = "news-src";
    src.textContent = it.source || "";
    meta.appendChild(src);
    for (const s of it.symbols || []) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "tag" + (s === this.filter ? " on" : "");
      b.dataset.tag = s;
      b.textContent = s;
      b.setAttribute("aria-label", `Show news for ${s}`);
      meta.appendChild(b);
    }
    return meta;
  }
}

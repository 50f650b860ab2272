// The search box: type to find symbols the server knows (prefix matches first), ↑/↓ to move,
// Enter or a click to add one to the watchlist, Escape to go back to it; `/` anywhere focuses it.

import { $ } from "./dom.js";
import { searchSymbols } from "./logic/watchlist.js";

const BLUR_CLOSE_MS = 150; // after a click on a result has landed
const NOTE_MS = 5000;

export class SearchBox {
  /**
   * @param {{market: {known: string[], names: Map<string, string>},
   *          watch: import("./watchlist.js").Watchlist}} deps
   */
  constructor({ market, watch }) {
    this.market = market;
    this.noteTimer = null;
    this.watch = watch;
    this.input = $("search");
    this.list = $("search-list");
    this.results = [];
    this.active = 0;
  }

  wire() {
    const input = this.input;
    input.addEventListener("input", () => {
      this.results = searchSymbols(this.market.known, input.value, this.watch.symbols, 8, this.market.names);
      this.note("");
      this.active = 0;
      this.render();
    });
    input.addEventListener("keydown", (ev) => this.onKey(ev));
    input.addEventListener("blur", () => setTimeout(() => this.show([]), BLUR_CLOSE_MS));
    this.list.addEventListener("mousedown", (ev) => {
      const li = ev.target.closest("li[data-symbol]");
      if (!li) return;
      ev.preventDefault();
      this.pick(li.dataset.symbol);
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && !ev.target.closest("input, select, textarea")) {
        ev.preventDefault();
        input.focus();
      }
    });
  }

  onKey(ev) {
    const input = this.input;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const n = this.results.length;
      if (n) {
        this.active = (this.active + (ev.key === "ArrowDown" ? 1 : n - 1)) % n;
        this.render();
      }
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      const typed = input.value.trim().toUpperCase();
      const sym = this.results[this.active] ?? (this.market.known.includes(typed) ? typed : null);
      if (sym) this.pick(sym);
      else if (typed) this.note(`No symbol or company “${input.value.trim()}” on this server`);
    } else if (ev.key === "Escape") {
      input.value = "";
      this.show([]);
      this.watch.focusSelected();
    }
  }

  /** A short message under the box (an unknown symbol), gone after a while or on typing. */
  note(text) {
    const el = $("search-note");
    el.textContent = text;
    el.hidden = !text;
    clearTimeout(this.noteTimer);
    if (text) this.noteTimer = setTimeout(() => this.note(""), NOTE_MS);
  }

  /** Add `sym` to the watchlist and clear the box. */
  pick(sym) {
    this.watch.add(sym);
    this.input.value = "";
    this.show([]);
  }

  show(results) {
    this.results = results;
    this.render();
  }

  render() {
    const { list, results, active } = this;
    list.textContent = "";
    list.hidden = results.length === 0;
    results.forEach((s, i) => {
      const li = document.createElement("li");
      li.role = "option";
      li.id = `opt-${s}`;
      li.dataset.symbol = s;
      const name = this.market.names.get(s);
      const b = document.createElement("b");
      b.textContent = s;
      li.append(b);
      if (name) {
        const n = document.createElement("span");
        n.className = "search-name";
        n.textContent = name;
        li.append(n);
        li.title = `${s} · ${name}`;
      }
      li.setAttribute("aria-selected", String(i === active));
      list.appendChild(li);
    });
    this.input.setAttribute("aria-activedescendant", results.length ? `opt-${results[active]}` : "");
  }
}

// News: dedupe by id, newest first, bounded. Pure: no DOM; news.js draws the list.

export class NewsStore {
  constructor(max = 500) {
    this.max = max;
    this.items = []; // newest first (descending id)
    this.ids = new Set();
    this.lastId = null; // highest id seen (the `since` of a resume)
  }

  /** Add one item; false when its id was seen before (or it has no numeric id). */
  add(item) {
    const id = item && item.id;
    if (typeof id !== "number" || this.ids.has(id)) return false;
    this.ids.add(id);
    const items = this.items;
    if (items.length === 0 || id > items[0].id) {
      items.unshift(item);
    } else {
      // Rare (backfill after live items): keep descending order.
      let i = 0;
      while (i < items.length && items[i].id > id) i++;
      items.splice(i, 0, item);
    }
    if (this.lastId === null || id > this.lastId) this.lastId = id;
    while (items.length > this.max) this.ids.delete(items.pop().id);
    return true;
  }

  /** Items (newest first) tagged with `tag`, or all when tag is null. */
  filtered(tag, limit = Infinity) {
    const out = [];
    for (const it of this.items) {
      if (out.length >= limit) break;
      if (tag === null || (it.symbols || []).includes(tag)) out.push(it);
    }
    return out;
  }
}

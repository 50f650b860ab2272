// The quote book: snapshot and delta application (docs/protocol.md), and what a frame's `seq`
// says about the stream. Pure: no DOM, no network, no timers.

const WINDOW_FIELDS = new Set(["w_high", "w_low", "w_count"]);

/**
 * Replace the quotes of every symbol in a snapshot.
 * @param {Map<string, object>} book symbol -> quote (mutated)
 * @param {Record<string, object>} quotes the snapshot's `quotes`
 * @returns {string[]} the symbols set
 */
export function applySnapshot(book, quotes) {
  const out = [];
  for (const sym in quotes) {
    const q = { ...quotes[sym] };
    q.symbol = sym;
    book.set(sym, q);
    out.push(sym);
  }
  return out;
}

/**
 * Fold a delta's changed fields into the book. Window fields (w_high, w_low, w_count) describe
 * the conflated ticks of this delta only, so they are returned, not stored.
 * @param {Map<string, object>} book symbol -> quote (mutated)
 * @param {Record<string, object>} quotes the delta's `quotes`
 * @returns {{symbol: string, quote: object, changes: object, prevPrice: number|undefined,
 *            prevVolume: number|undefined, priced: boolean, wHigh: number|undefined,
 *            wLow: number|undefined, wCount: number|undefined}[]}
 */
export function applyDelta(book, quotes) {
  const out = [];
  for (const sym in quotes) {
    const d = quotes[sym];
    let q = book.get(sym);
    if (q === undefined) {
      q = { symbol: sym };
      book.set(sym, q);
    }
    const prevPrice = q.price;
    const prevVolume = q.volume;
    for (const k in d) {
      if (!WINDOW_FIELDS.has(k)) q[k] = d[k];
    }
    out.push({
      symbol: sym,
      quote: q,
      changes: d,
      prevPrice,
      prevVolume,
      priced: d.price !== undefined || d.w_count !== undefined,
      wHigh: d.w_high,
      wLow: d.w_low,
      wCount: d.w_count,
    });
  }
  return out;
}

/**
 * What a frame's `seq` says about the stream: "first", "ok" (exactly +1), "gap" (missed frames:
 * ask for a resync) or "stale" (not newer: ignore the seq, keep the data).
 */
export function seqStatus(lastSeq, seq) {
  if (lastSeq === null || lastSeq === undefined) return "first";
  if (seq === lastSeq + 1) return "ok";
  return seq > lastSeq ? "gap" : "stale";
}

/** Volume traded between two cumulative readings; 0 when unknown or when the session reset. */
export function volumeStep(prev, next) {
  if (typeof prev !== "number" || typeof next !== "number") return 0;
  const d = next - prev;
  return d > 0 ? d : 0;
}

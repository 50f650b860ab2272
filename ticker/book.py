"""Latest-state book: one quote per symbol.

Pure; no I/O. ``apply`` folds a :class:`~ticker.events.Tick` into the symbol's quote and is on the
per-tick hot path, so it works on plain dicts (the quote *is* the wire object) and avoids copies.
"""

from __future__ import annotations

from typing import Any

from ticker.events import Tick

__all__ = ["QUOTE_FIELDS", "Book", "Quote"]

Quote = dict[str, Any]
"""A quote as sent on the wire: ``symbol``, ``price``, ``ts`` and the optional fields below."""

QUOTE_FIELDS = (
    "symbol",
    "price",
    "ts",
    "bid",
    "ask",
    "size",
    "volume",
    "open",
    "high",
    "low",
    "prev_close",
    "change",
    "change_pct",
)


class Book:
    """Latest quote per symbol, plus the set of known symbols.

    ``open``/``high``/``low`` are the session's, starting at the first tick the book sees;
    ``change``/``change_pct`` are against ``prev_close`` when a feed gave one.
    """

    __slots__ = ("known", "quotes")

    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}
        # dict as an ordered set: the order symbols became known in.
        self.known: dict[str, None] = {}

    # Public API

    def declare(self, symbols: tuple[str, ...] | list[str]) -> list[str]:
        """Make symbols known. Returns the ones that were not known before."""
        new = [s for s in symbols if s not in self.known]
        for s in new:
            self.known[s] = None
        return new

    def apply(self, tick: Tick) -> Quote:
        """Fold one tick into its symbol's quote and return that (live, mutable) quote."""
        sym = tick.symbol
        price = tick.price
        q = self.quotes.get(sym)
        if q is None:
            if sym not in self.known:
                self.known[sym] = None
            q = {
                "symbol": sym,
                "price": price,
                "ts": tick.ts,
                "open": price,
                "high": price,
                "low": price,
            }
            self.quotes[sym] = q
        else:
            q["price"] = price
            q["ts"] = tick.ts
            if price > q["high"]:
                q["high"] = price
            elif price < q["low"]:
                q["low"] = price
        if tick.bid is not None:
            q["bid"] = tick.bid
        if tick.ask is not None:
            q["ask"] = tick.ask
        size = tick.size
        if size is not None:
            q["size"] = size
        if tick.volume is not None:
            q["volume"] = tick.volume
        elif size is not None:
            q["volume"] = q.get("volume", 0) + size
        if tick.prev_close is not None:
            q["prev_close"] = tick.prev_close
        pc = q.get("prev_close")
        if pc:
            change = price - pc
            q["change"] = round(change, 6)
            q["change_pct"] = round(change * 100.0 / pc, 4)
        return q

    def snapshot(self, symbols: list[str] | None = None) -> dict[str, Quote]:
        """Copies of the quotes of ``symbols`` (all when None) that have had a tick."""
        quotes = self.quotes
        if symbols is None:
            return {s: dict(q) for s, q in quotes.items()}
        return {s: dict(quotes[s]) for s in symbols if s in quotes}

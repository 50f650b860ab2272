"""Pure; no I/O. The tape: a replay's rows as column arrays, in replay order.

Needs pandas for a few vectorised queries (distinct symbols, case-insensitive matching, the last
row of each symbol). Nothing here loops over rows in Python.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["Floats", "Objects", "Tape", "concat", "nan_floats", "none_objects", "state_rows"]

Floats = npt.NDArray[np.float64]
Objects = npt.NDArray[np.object_]


def nan_floats(n: int) -> Floats:
    """``n`` NaNs: an optional number column with no values."""
    return np.full(n, np.nan)


def none_objects(n: int) -> Objects:
    """``n`` Nones: an optional object column with no values."""
    return np.full(n, None, dtype=object)


@dataclass(frozen=True, eq=False)
class Tape:
    """A replay's rows as column arrays, in replay order.

    ``clock`` is non-decreasing (the schedule's time, ms): ``ts`` itself for sorted sources, its
    running maximum for recordings (which keep their ingest order). Optional numbers are NaN when
    absent. News rows have ``is_news`` set and ``symbol`` ``""``.
    """

    ts: Floats
    clock: Floats
    symbol: Objects
    price: Floats
    size: Floats
    bid: Floats
    ask: Floats
    volume: Floats
    prev_close: Floats
    is_news: npt.NDArray[np.bool_] | None = None
    headline: Objects | None = None
    source: Objects | None = None
    url: Objects | None = None
    summary: Objects | None = None
    tags: Objects | None = None
    listed: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Tape:
        """A tape with no rows and no listed symbols."""
        e = np.empty(0)
        return cls(e, e, np.empty(0, dtype=object), e, e, e, e, e, e)

    def take(self, idx: npt.NDArray[np.intp] | npt.NDArray[np.bool_] | slice) -> Tape:
        """The rows selected by ``idx``, in that order.

        Args:
            idx: row indices, a boolean mask or a slice.

        Returns:
            A tape of those rows with the same ``listed`` symbols.
        """

        def sel(a: Any) -> Any:
            return None if a is None else a[idx]

        return Tape(
            self.ts[idx],
            self.clock[idx],
            self.symbol[idx],
            self.price[idx],
            self.size[idx],
            self.bid[idx],
            self.ask[idx],
            self.volume[idx],
            self.prev_close[idx],
            sel(self.is_news),
            sel(self.headline),
            sel(self.source),
            sel(self.url),
            sel(self.summary),
            sel(self.tags),
            self.listed,
        )

    def symbols(self) -> tuple[str, ...]:
        """Every symbol: recorded listings first, then in order of first tick."""
        ticks = self.symbol if self.is_news is None else self.symbol[~self.is_news]
        seen = pd.unique(pd.Series(ticks, dtype=object)).tolist()
        return tuple(dict.fromkeys([*self.listed, *(str(s) for s in seen)]))

    def select(
        self,
        start: float | None = None,
        end: float | None = None,
        symbols: Collection[str] | None = None,
    ) -> Tape:
        """The rows with ``start <= clock <= end`` and (ticks only) a symbol in ``symbols``.

        Args:
            start: the earliest clock (ms) kept; None for no bound.
            end: the latest clock (ms) kept; None for no bound.
            symbols: the symbols kept, matched case-insensitively; news is kept when it is
                tagged with one of them. None keeps every symbol.

        Returns:
            The selected tape; its ``listed`` symbols are filtered the same way.
        """
        keep = np.ones(len(self), dtype=bool)
        if start is not None:
            keep &= self.clock >= start
        if end is not None:
            keep &= self.clock <= end
        listed = self.listed
        if symbols is not None:
            wanted = {s.upper() for s in symbols}
            upper = pd.Series(self.symbol, dtype=object).str.upper()
            hit = upper.isin(wanted).to_numpy(dtype=bool, copy=True)
            if self.is_news is not None and self.tags is not None:
                news = self.is_news
                tagged = np.fromiter(
                    (bool(wanted.intersection(s.upper() for s in t)) for t in self.tags[news]),
                    dtype=bool,
                    count=int(news.sum()),
                )
                hit[news] = tagged
            keep &= hit
            listed = tuple(s for s in listed if s.upper() in wanted)
        return replace(self.take(keep), listed=listed)


def concat(tapes: Sequence[Tape], *, keep_order: bool = False) -> Tape:
    """One tape from several, merged in ``clock`` order (stable: ties keep file order).

    Args:
        tapes: the tapes, in file order.
        keep_order: for recordings: the rows stay in the given order and the clock is the
            running maximum of ``ts`` across all of them (ingest order is the truth).

    Returns:
        The merged tape; its ``listed`` symbols are those of all the tapes.
    """
    tapes = [t for t in tapes if len(t) or t.listed]
    if not tapes:
        return Tape.empty()
    if len(tapes) == 1:
        return tapes[0]
    has_news = any(t.is_news is not None for t in tapes)

    def cat(name: str) -> Any:
        parts = []
        for t in tapes:
            a = getattr(t, name)
            if a is None:
                a = np.zeros(len(t), dtype=bool) if name == "is_news" else none_objects(len(t))
            parts.append(a)
        return np.concatenate(parts)

    news = ("is_news", "headline", "source", "url", "summary", "tags")
    merged = Tape(
        ts=cat("ts"),
        clock=cat("clock"),
        symbol=cat("symbol"),
        price=cat("price"),
        size=cat("size"),
        bid=cat("bid"),
        ask=cat("ask"),
        volume=cat("volume"),
        prev_close=cat("prev_close"),
        **({f: cat(f) for f in news} if has_news else {}),
        listed=tuple(dict.fromkeys(s for t in tapes for s in t.listed)),
    )
    if keep_order:
        return replace(merged, clock=np.maximum.accumulate(merged.ts))
    if len(merged) > 1 and not bool(np.all(merged.clock[1:] >= merged.clock[:-1])):
        merged = replace(merged.take(np.argsort(merged.clock, kind="stable")), listed=merged.listed)
    return merged


def state_rows(tape: Tape, position: int) -> npt.NDArray[np.intp]:
    """The last tick of each symbol before ``position``: what a seek replays so that every
    symbol shows its state at the new clock.

    Args:
        tape: the tape.
        position: an index into it (exclusive).

    Returns:
        Row indices, ascending.
    """
    if position <= 0:
        return np.empty(0, dtype=np.intp)
    rows = np.arange(position)
    if tape.is_news is not None:
        rows = rows[~tape.is_news[:position]]
    if not len(rows):
        return rows
    last = pd.Series(rows).groupby(pd.Series(tape.symbol[rows], dtype=object), sort=False).last()
    return np.sort(last.to_numpy(dtype=np.intp))

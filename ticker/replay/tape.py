"""Pure; no I/O. The tape: a replay's rows as column arrays, in replay order.

Needs pandas for a few vectorised queries (distinct symbols, case-insensitive matching, the last
row of each symbol). Nothing here loops over rows in Python.

A row is a tick, a news item (``is_news``) or an OHLCV bar (``interval`` set: its width in ms;
``price`` is its close, ``size`` its own volume, ``ts`` its open time).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ticker.core.bars import DEFAULT_RETAIN, INTERVALS

__all__ = [
    "BAR_FIELDS",
    "CATCH_UP_ROWS",
    "DAY_MS",
    "Floats",
    "Objects",
    "SeekPlan",
    "Tape",
    "concat",
    "nan_floats",
    "none_objects",
    "seek_plan",
    "state_rows",
]

BAR_FIELDS = ("interval", "open", "high", "low")
"""The tape's columns that only bar rows fill."""

DAY_MS = 86_400_000.0

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
    absent. News rows have ``is_news`` set and ``symbol`` ``""``. Bar rows have ``interval`` (the
    bar's width in ms; NaN on other rows), ``open``, ``high`` and ``low``; their ``price`` is the
    close and their ``size`` the bar's volume. Tapes without bars leave the four None.
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
    interval: Floats | None = None
    open: Floats | None = None
    high: Floats | None = None
    low: Floats | None = None

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
            sel(self.interval),
            sel(self.open),
            sel(self.high),
            sel(self.low),
        )

    def bar_rows(self) -> npt.NDArray[np.bool_]:
        """Which rows are bars."""
        if self.interval is None:
            return np.zeros(len(self), dtype=bool)
        out: npt.NDArray[np.bool_] = ~np.isnan(self.interval)
        return out

    def bar_counts(self) -> dict[int, int]:
        """Bar rows per interval width (ms), finest first; {} without bars."""
        if self.interval is None:
            return {}
        widths, counts = np.unique(self.interval[~np.isnan(self.interval)], return_counts=True)
        return {int(w): int(c) for w, c in zip(widths.tolist(), counts.tolist(), strict=True)}

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
    has_bars = any(t.interval is not None for t in tapes)

    def cat(name: str) -> Any:
        parts = []
        for t in tapes:
            a = getattr(t, name)
            if a is None:
                if name == "is_news":
                    a = np.zeros(len(t), dtype=bool)
                elif name in BAR_FIELDS:
                    a = nan_floats(len(t))
                else:
                    a = none_objects(len(t))
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
        **({f: cat(f) for f in BAR_FIELDS} if has_bars else {}),
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


CATCH_UP_ROWS = 10_000
"""At most this many rows per symbol before the day of a seek's target are replayed as history."""

_RETAIN_MS = {INTERVALS[k]: n * INTERVALS[k] for k, n in DEFAULT_RETAIN.items()}


@dataclass(frozen=True, slots=True)
class SeekPlan:
    """What a seek replays, in order: a reset, the state rows, then the catch-up rows at once.

    Args:
        reset: the market time (ms, a UTC midnight) from which the consumer forgets the symbols'
            bars and restarts their day statistics.
        state: row indices (ascending) of each symbol's last row before ``reset``: a symbol with
            nothing since still shows its last values.
        catch_up: the rows ``[catch_up, position)``, all before the target, replayed at once.
        position: the first row at or after the target: play continues from it.
    """

    reset: float
    state: npt.NDArray[np.intp]
    catch_up: int
    position: int


def seek_plan(
    tape: Tape,
    to: float,
    since: int | None = None,
    retain: Mapping[int, int] | None = None,
    limit: int = CATCH_UP_ROWS,
) -> SeekPlan:
    """Plan a seek to market time ``to``: reset to a UTC midnight ``D``, replay the state before
    it and every row in ``[D, to)``; the rows at ``to`` and after play on (inclusive seek).

    ``D`` is the UTC midnight of ``to`` (so the day's open/high/low/volume as of ``to`` are
    exact), or earlier:

    - for a tape of bars only, the UTC midnight at or before ``to`` less the retention of its
      finest interval (:data:`ticker.core.bars.DEFAULT_RETAIN`: 5 days of ``1m``, 20 years of
      ``1d``), never before the tape's first day, so that a chart shows that history;
    - for a seek forward past rows never emitted (``since``), the midnight before the first of
      them, so that the history has no hole;

    then moved later (to a midnight, at most the target's) so that at most ``limit`` rows of any
    symbol come before the target's day.

    Args:
        tape: the tape.
        to: the target, market ms; clamped to the tape's first and last clock.
        since: the first row the consumer has not been sent (None: no constraint).
        retain: the history kept per interval width (ms -> ms); default: DEFAULT_RETAIN's.
        limit: the most rows per symbol replayed before the target's day.

    Returns:
        The plan.
    """
    n = len(tape)
    clock = tape.clock
    if not n:
        return SeekPlan(0.0, np.empty(0, dtype=np.intp), 0, 0)
    position = int(np.searchsorted(clock, to, side="left"))
    t = min(max(float(to), float(clock[0])), float(clock[-1]))
    midnight = t - t % DAY_MS
    d = midnight
    widths = tape.bar_counts()
    news = tape.is_news
    if widths and int(tape.bar_rows().sum()) + (0 if news is None else int(news.sum())) == n:
        spans = retain if retain is not None else _RETAIN_MS
        start = max(t - min(spans.get(w, 0) for w in widths), float(clock[0]))
        d = min(start - start % DAY_MS, midnight)
    if since is not None and since < n:
        gap = float(clock[since])
        d = min(d, gap - gap % DAY_MS)
    if d < midnight:
        d = _bounded(tape, d, midnight, limit)
    first = int(np.searchsorted(clock, d, side="left"))
    return SeekPlan(d, state_rows(tape, first), first, max(first, position))


def _bounded(tape: Tape, d: float, midnight: float, limit: int) -> float:
    """``d``, or a later midnight (at most ``midnight``): at most ``limit`` rows of each symbol
    in ``[d, midnight)``."""
    clock = tape.clock
    i = int(np.searchsorted(clock, d, side="left"))
    j = int(np.searchsorted(clock, midnight, side="left"))
    if j - i <= limit:
        return d
    syms = pd.Series(tape.symbol[i:j], dtype=object)
    back = syms.groupby(syms, sort=False).cumcount(ascending=False).to_numpy()
    over = back == limit  # each symbol's row ``limit + 1`` from the end, if it has one
    if tape.is_news is not None:
        over &= ~tape.is_news[i:j]
    if not over.any():
        return d
    last = float(clock[i:j][over].max())
    return min(last - last % DAY_MS + DAY_MS, midnight)

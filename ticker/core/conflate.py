"""Conflation: latest value wins within a window; deltas carry only what changed.

Pure; no I/O. The caller passes ``now`` (``loop.time()`` seconds); nothing here awaits.

One :class:`Conflator` serves *every* connection that uses the same throttle window: it remembers
the state it last flushed (``sent``), which is exactly the state every in-step client of that
window holds. Deltas are therefore computed once per window for all clients, and a client's memory
is a seat in a group, not a copy of prices. A client that joins (subscribe, resync, a new window, or
catching up after being slow) gets a ``snapshot`` of ``sent`` and is in step from then on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ticker.core.book import Quote, compact

__all__ = ["Conflator", "Subscription"]


@dataclass(frozen=True, slots=True)
class Subscription:
    """Which symbols a connection wants.

    ``every`` False: exactly ``symbols``. ``every`` True (``"*"``): every symbol, current and
    future, except ``symbols`` (unsubscribed ones). Hashable, so connections with equal
    subscriptions share one encoded frame.
    """

    every: bool = False
    symbols: frozenset[str] = frozenset()

    def includes(self, symbol: str) -> bool:
        """Whether ``symbol`` is covered."""
        return (symbol not in self.symbols) if self.every else (symbol in self.symbols)

    @property
    def empty(self) -> bool:
        """True when nothing is subscribed."""
        return not self.every and not self.symbols

    def add(self, symbols: Iterable[str], *, star: bool = False) -> Subscription:
        """The subscription after ``subscribe`` of ``symbols`` (``star``: ``"*"`` was given)."""
        if star:
            return Subscription(True, frozenset())
        if self.every:
            return Subscription(True, self.symbols.difference(symbols))
        return Subscription(False, self.symbols.union(symbols))

    def remove(self, symbols: Iterable[str], *, star: bool = False) -> Subscription:
        """The subscription after ``unsubscribe`` of ``symbols`` (``star``: ``"*"`` was given)."""
        if star:
            return Subscription()
        if self.every:
            return Subscription(True, self.symbols.union(symbols))
        return Subscription(False, self.symbols.difference(symbols))

    def resolve(self, known: Iterable[str]) -> list[str]:
        """The concrete symbols covered, out of ``known``, in ``known``'s order."""
        return [s for s in known if self.includes(s)]


class Conflator:
    """Latest state per symbol for one throttle window, flushed at most every ``interval`` seconds.

    Args:
        interval: the window in seconds; 0 means flush whenever something is pending.
        quotes: the book's live quotes; ``sent`` starts as a copy, so clients that join now get
            the current state in their snapshot.
        phase: None: a flush is due ``interval`` after the last one. A number (seconds, on the
            clock ``drain`` is given): flushes keep to the grid ``phase + k * interval``, at most
            one per grid cell. A flush due by the grid counts as made at its grid point however
            late it ran, so the next is due at the next grid point (a late timer neither skips a
            window nor shifts the grid; the gap after it is shorter by its lateness). After a
            quiet spell (and at the start) ``drain`` first joins the grid: it flushes nothing
            and the pending changes are due at the next grid point. Windows of one interval at
            different phases flush at different moments: their connections' frames are spread
            over the interval instead of leaving in one burst.

    ``offer`` records that a symbol ticked (and its window high/low/count); ``drain`` returns, once
    per window, the changed fields of every symbol that ticked. Memory is bounded by the number of
    symbols, never by the number of ticks.
    """

    __slots__ = (
        "flushes",
        "interval",
        "last_flush",
        "pending",
        "phase",
        "sent",
        "ticks",
        "updates",
        "versions",
    )

    def __init__(
        self,
        interval: float,
        quotes: Mapping[str, Quote] | None = None,
        phase: float | None = None,
    ) -> None:
        if interval < 0 or math.isnan(interval):
            raise ValueError(f"interval must be >= 0, got {interval!r}")
        if phase is not None and not (interval > 0 and math.isfinite(phase)):
            raise ValueError(f"a phase needs an interval > 0 and a finite phase, got {phase!r}")
        self.interval = interval
        self.phase = phase
        # (What leaves for the wire is compact: ts to 0.1 ms, whole sizes as integers.)
        self.sent: dict[str, Quote] = {s: compact(dict(q)) for s, q in (quotes or {}).items()}
        # Flush number of each field's last change: a client known to hold the state of flush k
        # can be brought up to date with just the fields changed since k (changes_since).
        self.flushes = 0
        self.versions: dict[str, dict[str, int]] = {
            s: dict.fromkeys(q, 0) for s, q in self.sent.items()
        }
        # symbol -> [count, window high, window low] since the last flush
        self.pending: dict[str, list[float]] = {}
        self.last_flush = -math.inf
        # Cumulative, for /metrics: ticks drained and symbol updates flushed. ticks - updates is
        # how many ticks were conflated away (absorbed without going out as updates of their own).
        self.ticks = 0
        self.updates = 0

    # Public API

    def offer(self, symbol: str, price: float) -> None:
        """Note a tick of ``symbol`` at ``price`` (the book already holds the new quote)."""
        w = self.pending.get(symbol)
        if w is None:
            self.pending[symbol] = [1, price, price]
        else:
            w[0] += 1
            if price > w[1]:
                w[1] = price
            elif price < w[2]:
                w[2] = price

    def next_deadline(self) -> float | None:
        """When the next flush is due, or None when nothing is pending."""
        if not self.pending:
            return None
        return self.last_flush + self.interval

    def drain(self, now: float, quotes: Mapping[str, Quote]) -> dict[str, dict[str, Any]]:
        """Deltas for every symbol that ticked, if the window is due; ``{}`` when not due.

        Each delta holds only the fields that differ from what was last flushed, always with
        ``ts``; a symbol never flushed before gets its full quote. When more than one tick was
        conflated, the delta also carries the window's ``w_high``, ``w_low`` and ``w_count``.
        """
        pending = self.pending
        if not pending or now < self.last_flush + self.interval:
            return {}
        phase = self.phase
        if phase is None:
            self.last_flush = now
        else:
            # A flush due by the grid counts as made at the grid point before it, however late
            # (the next one keeps to the grid: no window is skipped, none drifts). After a quiet
            # spell (or at the start) the grid is joined first: nothing leaves before the next
            # grid point, as if a flush had been made at the last one.
            interval = self.interval
            point = now - (now - phase) % interval
            quiet = point - self.last_flush >= 1.5 * interval
            self.last_flush = point
            if quiet and now > point:
                return {}
        self.flushes += 1
        n = self.flushes
        sent = self.sent
        versions = self.versions
        out: dict[str, dict[str, Any]] = {}
        ticks = 0.0
        for sym, (count, hi, lo) in pending.items():
            ticks += count
            q = quotes[sym]
            prev = sent.get(sym)
            if prev is None:
                d = compact(dict(q))
                sent[sym] = dict(d)
                versions[sym] = dict.fromkeys(q, n)
            else:
                # (A raw size of 100.0 equals the 100 sent: unchanged; ts always differs.)
                d = {k: v for k, v in q.items() if prev.get(k) != v}
                if not d:
                    continue
                compact(d)
                if len(d) == 1 and d.get("ts") == prev["ts"]:
                    continue  # (only ts below 0.1 ms moved: nothing the wire would show)
                prev.update(d)
                ver = versions[sym]
                for k in d:
                    ver[k] = n
                d["ts"] = prev["ts"]
            if count > 1:
                d["w_high"] = hi
                d["w_low"] = lo
                d["w_count"] = int(count)
            out[sym] = d
        pending.clear()
        self.ticks += int(ticks)
        self.updates += len(out)
        return out

    def changes_since(self, symbols: Iterable[str], flush: int) -> dict[str, dict[str, Any]]:
        """For a client that holds the state of flush number ``flush``: the fields of ``symbols``
        changed since (with ``ts``), i.e. the one delta that brings it up to date."""
        out: dict[str, dict[str, Any]] = {}
        sent = self.sent
        for s in symbols:
            ver = self.versions.get(s)
            if ver is None:
                continue
            q = sent[s]
            d = {k: q[k] for k, n in ver.items() if n > flush}
            if d:
                d["ts"] = q["ts"]
                out[s] = d
        return out

    def snapshot(self, symbols: Iterable[str]) -> dict[str, Quote]:
        """Copies of the last flushed quotes of ``symbols`` (those flushed at least once)."""
        sent = self.sent
        return {s: dict(sent[s]) for s in symbols if s in sent}

"""OHLCV bars in market time, every interval from 1 s to 1 d, built from trades or finer bars.

Pure; no I/O. A bar covers ``[t, t + interval)`` in epoch milliseconds of the market clock (a
replay's data time, a feed's trade time; never the wall clock), ``t`` a multiple of the interval
(so ``1d`` bars start at UTC midnight). Only intervals that had trades get a bar.

How it stays cheap per trade: a trade updates one bar, the forming bar of the finest interval
(``1s``). When that bar closes (its first trade of a later second arrives) it is folded into the
next interval's partial bar, which closes in turn when a bar of a later bucket is folded in, and so
on up to ``1d``: each coarser bar is built from closed finer bars, never from trades again. The
forming bar of a coarser interval is its partial bar merged with the finer forming bar, computed
when asked.

A symbol's bars come from its finest source: trades (every interval), or bars of one interval (a
replayed 1-minute file, a vendor's minute bars: that interval and coarser ones; finer ones do not
exist). Data older than the bar being formed at its level (a late trade, a bar out of order) is not
applied to bars that were already final, and is counted in ``late``.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_RETAIN",
    "INTERVALS",
    "BarBook",
    "BarRing",
    "IntervalError",
    "Row",
    "SymbolBars",
    "interval_ms",
]

INTERVALS: dict[str, int] = {
    "1s": 1_000,
    "5s": 5_000,
    "15s": 15_000,
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "1d": 86_400_000,
}
"""Interval names and their widths in milliseconds, finest first."""

_ALIASES = {"1min": "1m", "60s": "1m", "1440m": "1d", "24h": "1d", "60m": "1h"}

DEFAULT_RETAIN: dict[str, int] = {
    "1s": 3_600,  # 1 hour
    "5s": 4_320,  # 6 hours
    "15s": 5_760,  # 1 day
    "1m": 7_200,  # 5 days
    "5m": 8_640,  # 30 days
    "15m": 8_640,  # 90 days
    "1h": 8_784,  # 1 year
    "1d": 7_305,  # 20 years
}
"""Closed bars kept per symbol and interval (the forming bar comes on top)."""

Row = tuple[float, float, float, float, float, float]
"""One bar as ``(t, open, high, low, close, volume)`` (the wire's ``[t,o,h,l,c,v]``)."""

_WIDTHS = tuple(INTERVALS.values())
_FIELDS = 6


class IntervalError(ValueError):
    """An interval that is not one of :data:`INTERVALS`, or finer than a symbol's data.

    Attributes:
        finest: for the latter, the finest interval the symbol's data has (its name).
    """

    def __init__(self, message: str, finest: str | None = None) -> None:
        super().__init__(message)
        self.finest = finest


def interval_ms(name: str) -> int:
    """The width of interval ``name`` (``1s`` … ``1d``; ``1min`` is ``1m``) in milliseconds.

    Raises:
        IntervalError: not a known interval; the message lists the valid ones.
    """
    key = _ALIASES.get(name, name)
    try:
        return INTERVALS[key]
    except KeyError:
        raise IntervalError(f"unknown interval {name!r}; one of {', '.join(INTERVALS)}") from None


class BarRing:
    """The last ``capacity`` closed bars of one interval, oldest first, in one array of doubles
    (48 bytes a bar, not a tuple of floats at ~200)."""

    __slots__ = ("_data", "_head", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._data = array("d")
        self._head = 0  # the oldest bar's slot once full

    def __len__(self) -> int:
        return len(self._data) // _FIELDS

    def append(self, bar: Row | list[float]) -> None:
        data = self._data
        if len(data) < self.capacity * _FIELDS:
            data.extend(bar)
            return
        i = self._head * _FIELDS
        data[i : i + _FIELDS] = array("d", bar)
        self._head = (self._head + 1) % self.capacity

    def _at(self, k: int) -> Row:
        """The ``k``-th bar, oldest first."""
        i = ((self._head + k) % self.capacity) * _FIELDS
        d = self._data
        return (d[i], d[i + 1], d[i + 2], d[i + 3], d[i + 4], d[i + 5])

    def _t(self, k: int) -> float:
        return self._data[((self._head + k) % self.capacity) * _FIELDS]

    def last_t(self) -> float | None:
        """The newest bar's ``t``; None when empty."""
        n = len(self)
        return self._t(n - 1) if n else None

    def before(self, t: float | None, limit: int) -> list[Row]:
        """At most ``limit`` newest bars starting before ``t`` (all when None), oldest first."""
        n = len(self)
        end = n if t is None else bisect_left(_TimeView(self), t)
        return [self._at(k) for k in range(max(0, end - limit), end)]

    def since(self, t: float) -> list[Row]:
        """Every bar starting at or after ``t``, oldest first."""
        return [self._at(k) for k in range(bisect_left(_TimeView(self), t), len(self))]

    def drop_from(self, t: float) -> None:
        """Forget every bar starting at or after ``t`` (a rewind)."""
        keep = self.before(t, len(self))
        if len(keep) != len(self):
            self.clear()
            for bar in keep:
                self.append(bar)

    def __iter__(self) -> Iterator[Row]:
        return (self._at(k) for k in range(len(self)))

    def clear(self) -> None:
        self._data = array("d")
        self._head = 0


class _TimeView:
    """The ring's ``t`` column as a sequence, for bisect."""

    __slots__ = ("ring",)

    def __init__(self, ring: BarRing) -> None:
        self.ring = ring

    def __len__(self) -> int:
        return len(self.ring)

    def __getitem__(self, k: int) -> float:
        return self.ring._t(k)


def _merge(into: list[float], bar: Row | list[float]) -> None:
    """Fold a later ``bar`` of the same bucket into ``into`` (its open stays)."""
    if bar[2] > into[2]:
        into[2] = bar[2]
    if bar[3] < into[3]:
        into[3] = bar[3]
    into[4] = bar[4]
    into[5] += bar[5]


class SymbolBars:
    """Every interval's bars of one symbol.

    Args:
        retain: closed bars kept per interval width (ms); every width of :data:`INTERVALS`.
    """

    __slots__ = ("_forming", "_partial", "_rings", "finest", "late")

    def __init__(self, retain: Mapping[int, int]) -> None:
        self._rings = [BarRing(retain[w]) for w in _WIDTHS]
        # Per level: the bar being built from closed bars of the level below (None: none yet).
        self._partial: list[list[float] | None] = [None] * len(_WIDTHS)
        # The finest level's forming bar while trades build it (None: none, or bar-sourced).
        self._forming: list[float] | None = None
        self.finest: int | None = None  # level of the data: 0 for trades, else the bars' level
        self.late = 0

    # Ingest

    def trade(self, ts: float, price: float, size: float) -> None:
        """Apply one trade at market time ``ts`` (ms)."""
        f = self._forming
        t = ts - ts % 1_000.0
        if f is not None and f[0] == t:  # the hot path: the same second
            if price > f[2]:
                f[2] = price
            elif price < f[3]:
                f[3] = price
            f[4] = price
            f[5] += size
            return
        self._new_second(t, price, size)

    def _new_second(self, t: float, price: float, size: float) -> None:
        if self.finest is None:
            self.finest = 0
        elif self.finest != 0:
            self.late += 1  # bar-sourced: trades would count twice
            return
        f = self._forming
        if f is not None:
            if t < f[0]:
                self.late += 1
                return
            self._rings[0].append(f)
            self._fold(1, f)
        else:
            last = self._rings[0].last_t()
            if last is not None and t <= last:  # that second is final already
                self.late += 1
                return
        self._roll(t)
        self._forming = [t, price, price, price, price, size]

    def bar(self, bar: Row, width: int) -> None:
        """Apply one final bar of ``width`` ms (a bar file's row, a vendor's minute bar).

        Raises:
            IntervalError: ``width`` is not one of :data:`INTERVALS`, or differs from the width
                of this symbol's earlier data.
        """
        try:
            level = _WIDTHS.index(width)
        except ValueError:
            raise IntervalError(
                f"bars of {width} ms: intervals are {', '.join(INTERVALS)}"
            ) from None
        if self.finest is None:
            self.finest = level
        elif self.finest != level:
            raise IntervalError(f"bars of {width} ms after data of {_WIDTHS[self.finest]} ms")
        ring = self._rings[level]
        last = ring.last_t()
        t = bar[0] - bar[0] % width
        if last is not None and t <= last:
            self.late += 1
            return
        final = (t, bar[1], bar[2], bar[3], bar[4], bar[5])
        self._roll(t)
        ring.append(final)
        self._fold(level + 1, list(final))

    def _fold(self, level: int, bar: Row | list[float]) -> None:
        """A closed bar of ``level - 1`` goes into ``level``'s partial bar."""
        if level == len(_WIDTHS):
            return
        width = _WIDTHS[level]
        t = bar[0] - bar[0] % width
        p = self._partial[level]
        if p is None:
            self._partial[level] = [t, bar[1], bar[2], bar[3], bar[4], bar[5]]
        elif p[0] == t:
            _merge(p, bar)
        elif p[0] < t:
            self._finish(level)
            self._partial[level] = [t, bar[1], bar[2], bar[3], bar[4], bar[5]]
        else:
            self.late += 1

    def _finish(self, level: int) -> None:
        """``level``'s partial bar is final: keep it and fold it into the next level."""
        p = self._partial[level]
        assert p is not None
        self._partial[level] = None
        self._rings[level].append(p)
        self._fold(level + 1, p)

    def _roll(self, t: float) -> None:
        """Data of market time ``t`` arrived: every partial bar of an earlier bucket is final."""
        for level in range(1, len(_WIDTHS)):
            p = self._partial[level]
            if p is not None and p[0] < t - t % _WIDTHS[level]:
                self._finish(level)

    def rewind(self, t: float) -> None:
        """Forget the data at or after market time ``t`` (a replay seeking): the finest level's
        bars starting at or after ``t``, and every coarser bar that is not wholly before ``t``;
        a coarser bucket that holds ``t`` is rebuilt from the finer bars before ``t``. Exact when
        ``t`` is a multiple of the intervals (a UTC midnight: what the replay sends); otherwise
        the finest bar holding ``t`` is kept or dropped whole by its start."""
        finest = self.finest
        if finest is None:
            return
        f = self._forming
        self._forming = None
        if f is not None and f[0] < t:  # wholly before t: closed now, as a later trade would
            self._rings[0].append(f)
            self._fold(1, f)
        self._rings[finest].drop_from(t)
        for level in range(finest + 1, len(_WIDTHS)):
            width = _WIDTHS[level]
            bucket = t - t % width
            self._rings[level].drop_from(bucket)
            p = self._partial[level]
            if p is not None and p[0] < bucket:
                continue  # wholly before t (and nothing later was folded in)
            merged: list[float] | None = None
            for bar in self._rings[level - 1].since(bucket):
                if merged is None:
                    merged = [bucket, bar[1], bar[2], bar[3], bar[4], bar[5]]
                else:
                    _merge(merged, bar)
            self._partial[level] = merged

    def since(self, width: int, t: float, limit: int) -> list[Row] | None:
        """The bars of ``width`` ms starting at or after ``t`` (final ones, then the forming one),
        oldest first; None when there are more than ``limit`` (send a fresh history instead)."""
        level = _WIDTHS.index(width)
        if self.finest is None or level < self.finest:
            return []
        closed = self._rings[level].since(t)
        if len(closed) > limit:
            return None
        tail: list[Row] = []
        p = self._partial[level]
        forming = self._forming_at(level)
        if p is not None and (forming is None or forming[0] != p[0]) and p[0] >= t:
            tail.append((p[0], p[1], p[2], p[3], p[4], p[5]))
        if forming is not None and forming[0] >= t:
            tail.append(forming)
        out = closed + tail
        return None if len(out) > limit else out

    # Snapshot: another process starts from the bars this one built (ticker.bus.redis)

    def state(self) -> tuple[int | None, Row | None, list[Row | None]]:
        """What is not closed yet: the finest level (index into :data:`INTERVALS`; None: no
        data), the forming bar of trades (None: none, or bar-sourced), each level's partial bar
        (built from closed bars of the level below; None: none)."""
        f = self._forming
        return (
            self.finest,
            None if f is None else (f[0], f[1], f[2], f[3], f[4], f[5]),
            [None if p is None else (p[0], p[1], p[2], p[3], p[4], p[5]) for p in self._partial],
        )

    def closed(self, width: int, since: float) -> list[Row]:
        """The closed bars of ``width`` ms starting at or after ``since``, oldest first."""
        return self._rings[_WIDTHS.index(width)].since(since)

    def restore(
        self,
        state: tuple[int | None, Row | None, Sequence[Row | None]],
        closed: Mapping[int, Iterable[Row]],
    ) -> None:
        """Replace everything with a :meth:`state` and the closed bars of each width (oldest
        first; a ring keeps its newest ones): what :meth:`state` and :meth:`closed` of another
        instance gave, so this one continues where that one was."""
        self.clear()
        finest, forming, partial = state
        self.finest = finest
        self._forming = None if forming is None else list(forming)
        self._partial = [None if p is None else list(p) for p in partial]
        for width, rows in closed.items():
            ring = self._rings[_WIDTHS.index(width)]
            for row in rows:
                ring.append(row)

    @property
    def finest_interval(self) -> str | None:
        """The name of the finest interval this symbol has bars of (None: no data yet)."""
        return None if self.finest is None else _name(_WIDTHS[self.finest])

    def clear(self) -> None:
        """Forget every bar."""
        for ring in self._rings:
            ring.clear()
        self._partial = [None] * len(_WIDTHS)
        self._forming = None
        self.finest = None

    # Reading

    def forming(self, width: int) -> Row | None:
        """The bar of ``width`` ms still forming (its last trade may not be its last), if any."""
        level = _WIDTHS.index(width)
        if self.finest is None or level < self.finest:
            return None
        return self._forming_at(level)

    def _forming_at(self, level: int) -> Row | None:
        if level == self.finest:
            f = self._forming
            return None if f is None else (f[0], f[1], f[2], f[3], f[4], f[5])
        below = self._forming_at(level - 1)
        p = self._partial[level]
        if p is None:
            if below is None:
                return None
            width = _WIDTHS[level]
            return (below[0] - below[0] % width, *below[1:])
        out = list(p)
        if below is not None and below[0] - below[0] % _WIDTHS[level] == p[0]:
            _merge(out, below)
        return (out[0], out[1], out[2], out[3], out[4], out[5])

    def bars(self, width: int, limit: int, before: float | None = None) -> list[Row]:
        """At most ``limit`` bars of ``width`` ms starting before ``before`` (every bar when
        None), oldest first; without ``before`` the last one may still be forming.

        Raises:
            IntervalError: ``width`` is finer than this symbol's data.
        """
        level = _WIDTHS.index(width)
        if self.finest is not None and level < self.finest:
            finest = _name(_WIDTHS[self.finest])
            raise IntervalError(
                f"this symbol's data has {finest} bars: {_name(width)} bars cannot be made from it",
                finest,
            )
        tail: list[Row] = []
        p = self._partial[level]
        forming = self._forming_at(level) if self.finest is not None else None
        # A partial bar of an earlier bucket than the forming one is final already.
        if p is not None and (forming is None or forming[0] != p[0]):
            tail.append((p[0], p[1], p[2], p[3], p[4], p[5]))
        if forming is not None:
            tail.append(forming)
        if before is not None:
            tail = [b for b in tail if b[0] < before]
        closed = self._rings[level].before(before, limit)
        return (closed + tail)[-limit:] if limit > 0 else []


def _name(width: int) -> str:
    return next(k for k, v in INTERVALS.items() if v == width)


@dataclass
class BarBook:
    """Bars of every symbol, with one retention per interval.

    Args:
        retain: closed bars kept per interval name (missing names: :data:`DEFAULT_RETAIN`).
    """

    retain: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RETAIN))
    symbols: dict[str, SymbolBars] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.retain) - set(INTERVALS)
        if unknown:
            raise IntervalError(f"unknown intervals in retention: {', '.join(sorted(unknown))}")
        self._widths = {
            INTERVALS[k]: max(1, int(self.retain.get(k, v))) for k, v in DEFAULT_RETAIN.items()
        }

    def of(self, symbol: str) -> SymbolBars:
        """The bars of ``symbol``, made empty on first use."""
        b = self.symbols.get(symbol)
        if b is None:
            b = self.symbols[symbol] = SymbolBars(self._widths)
        return b

    def trade(self, symbol: str, ts: float, price: float, size: float) -> None:
        """Apply one trade of ``symbol``."""
        self.of(symbol).trade(ts, price, size)

    def rewind(self, symbols: Iterable[str], t: float) -> None:
        """Forget what ``symbols`` did at or after ``t`` (:meth:`SymbolBars.rewind`)."""
        for s in symbols:
            b = self.symbols.get(s)
            if b is not None:
                b.rewind(t)

    def capacity_bytes(self) -> int:
        """Memory one symbol's bars take at full retention (48 bytes a bar)."""
        return sum(self._widths.values()) * _FIELDS * 8

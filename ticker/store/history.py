"""OHLCV bars from the ticks the hub retains, for ``GET /api/history`` (chart backfill).

Pure; no I/O. The server copies a symbol's retained ``(ts_ms, price, size)`` ticks and calls
:func:`bars`; pandas does the bucketing and aggregation (off the per-tick hot path: it runs once per
request, never per tick).

A bar covers ``[t, t + interval)`` in epoch milliseconds, ``t`` a multiple of the interval. Only
intervals that had ticks get a bar (no empty bars). Within a bar, ticks are taken in ``ts`` order
(arrival order among equal ``ts``): ``open`` is the first price, ``close`` the last.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "DEFAULT_LIMIT",
    "INTERVALS",
    "MAX_LIMIT",
    "Bars",
    "bars",
    "bars_from_columns",
    "parse_interval",
]

INTERVALS: dict[str, int] = {"1s": 1_000, "5s": 5_000, "1min": 60_000}
"""Interval names accepted by :func:`parse_interval`, in milliseconds."""

DEFAULT_LIMIT = 500
MAX_LIMIT = 5_000

Tick = tuple[float, float, float]
"""``(ts_ms, price, size)`` as kept in ``Hub.history``."""


@dataclass(frozen=True, slots=True)
class Bars:
    """Columnar OHLCV bars, oldest first (the shape plotly traces take directly).

    Attributes:
        interval_ms: bar width.
        t: bar start times, epoch ms.
        open: first price of each bar.
        high: highest price of each bar.
        low: lowest price of each bar.
        close: last price of each bar.
        volume: sum of trade sizes in each bar.
        count: number of ticks in each bar.
        last_ts: ``ts`` of the newest tick used, or None when there were none; a client merging
            live updates skips those at or before it (they are already in the last bar).
    """

    interval_ms: int
    t: list[float] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    last_ts: float | None = None

    def __len__(self) -> int:
        return len(self.t)

    def to_json(self) -> dict[str, Any]:
        """The JSON body fields: ``interval_ms``, ``last_ts`` and ``bars`` (a dict of columns)."""
        return {
            "interval_ms": self.interval_ms,
            "last_ts": self.last_ts,
            "bars": {
                "t": self.t,
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
                "count": self.count,
            },
        }


# Public API


def parse_interval(name: str) -> int:
    """The width in ms of a named interval (``1s``, ``5s``, ``1min``).

    Args:
        name: the interval name.

    Returns:
        The width in milliseconds.

    Raises:
        ValueError: the name is not one of :data:`INTERVALS`.
    """
    try:
        return INTERVALS[name]
    except KeyError:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}; got {name!r}") from None


def bars(ticks: Iterable[Tick], interval_ms: int, limit: int = DEFAULT_LIMIT) -> Bars:
    """Aggregate ticks into the newest ``limit`` non-empty bars of ``interval_ms``.

    Args:
        ticks: ``(ts_ms, price, size)`` tuples in arrival order (not necessarily sorted by ts).
        interval_ms: bar width in ms (> 0).
        limit: the most bars to return (the newest ones); 0 gives none.

    Returns:
        The bars, oldest first.

    Raises:
        ValueError: ``interval_ms`` is not positive or ``limit`` is negative.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be > 0, got {interval_ms}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    # fromiter over the flattened tuples is ~2.5x faster than np.array(list_of_tuples).
    items = ticks if isinstance(ticks, list | tuple) else list(ticks)
    flat = np.fromiter(itertools.chain.from_iterable(items), dtype=np.float64, count=3 * len(items))
    return _bars(flat.reshape(-1, 3), interval_ms, limit)


def bars_from_columns(
    ts: Sequence[float],
    price: Sequence[float],
    size: Sequence[float],
    interval_ms: int,
    limit: int = DEFAULT_LIMIT,
) -> Bars:
    """:func:`bars` for ticks held as three columns (e.g. ``TickRing.columns()``), no tuples.

    Args:
        ts: event times (epoch ms), arrival order.
        price: prices, same length.
        size: trade sizes, same length.
        interval_ms: bar width in ms (> 0).
        limit: the most bars to return (the newest ones); 0 gives none.

    Returns:
        The bars, oldest first.

    Raises:
        ValueError: bad ``interval_ms`` or ``limit``, or columns of different lengths.
    """
    if not len(ts) == len(price) == len(size):
        raise ValueError("ts, price and size must have the same length")
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be > 0, got {interval_ms}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    arr = np.column_stack(
        [
            np.asarray(ts, dtype=np.float64),
            np.asarray(price, dtype=np.float64),
            np.asarray(size, dtype=np.float64),
        ]
    ).reshape(-1, 3)
    return _bars(arr, interval_ms, limit)


def _bars(arr: npt.NDArray[np.float64], interval_ms: int, limit: int) -> Bars:
    """The aggregation itself, on an (n, 3) array of ts, price, size rows."""
    n = arr.shape[0]
    if n == 0:
        return Bars(interval_ms)
    ts = arr[:, 0]
    if n > 1 and bool((ts[1:] < ts[:-1]).any()):
        # Stable sort: equal timestamps keep arrival order, so open/close are well defined.
        arr = arr[np.argsort(ts, kind="stable")]
        ts = arr[:, 0]
    last_ts = float(ts[-1])
    if limit == 0:
        return Bars(interval_ms, last_ts=last_ts)
    bucket = (ts // interval_ms) * interval_ms
    # Rows where a new bar starts; keep only the newest `limit` bars' rows before pandas sees them.
    starts = np.flatnonzero(bucket[1:] != bucket[:-1]) + 1
    if len(starts) >= limit:
        first = int(starts[len(starts) - limit])
        arr = arr[first:]
        bucket = bucket[first:]
    df = pd.DataFrame({"bucket": bucket, "price": arr[:, 1], "size": arr[:, 2]})
    # Separate reductions: ~5x faster than one named .agg(...) over the same groups.
    gb = df.groupby("bucket", sort=True)
    price = gb["price"]
    opens = price.first()
    return Bars(
        interval_ms,
        t=[float(x) for x in opens.index],
        open=opens.tolist(),
        high=price.max().tolist(),
        low=price.min().tolist(),
        close=price.last().tolist(),
        volume=gb["size"].sum().tolist(),
        count=[int(x) for x in price.size()],
        last_ts=last_ts,
    )

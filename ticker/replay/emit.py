"""Pure; no I/O. What a replay emits: the events (ticks, bars and news) of a tape's rows.

Vectorised with numpy. Ticks and bars are built column-wise, a batch at a time: building them is
the main cost of a replay, so nothing here runs a Python step per row.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable
from dataclasses import MISSING, fields
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from ticker.core.bars import INTERVALS
from ticker.core.events import Bar, Event, News, Tick
from ticker.replay.tape import Floats, Tape

__all__ = ["events_between"]


def _optional(a: Floats) -> Iterable[float | None]:
    """NaN -> None, without a Python loop over the values."""
    missing = np.isnan(a)
    if missing.all():
        return repeat(None, len(a))
    if not missing.any():
        return a.tolist()  # type: ignore[no-any-return]
    o = a.astype(object)
    o[missing] = None
    return o.tolist()  # type: ignore[no-any-return]


# ``Tick`` and ``Bar`` are frozen slots dataclasses: the generated __init__ sets each field
# through ``object.__setattr__``, a Python call per field per event. For a batch, we allocate the
# instances and fill each slot for all of them with ``map`` over the slot descriptor's setter: no
# Python frame per event, and the very same objects (equal, hashable, frozen afterwards). Fields
# this module does not know get their default; a class with a __post_init__ (validation) is built
# the ordinary way.
class _Maker:
    """Builds instances of one frozen slots dataclass column-wise."""

    def __init__(self, cls: type[Any], known: set[str]) -> None:
        self.cls = cls
        self.fields = tuple(f.name for f in fields(cls))
        self.setters = tuple(cls.__dict__[name].__set__ for name in self.fields)
        self.defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        self.fast = not hasattr(cls, "__post_init__") and set(self.fields) <= known | set(
            self.defaults
        )

    def build(self, cols: dict[str, Iterable[Any]], n: int) -> list[Event]:
        if not self.fast:
            return [
                self.cls(**dict(zip(cols, row, strict=True)))
                for row in zip(*cols.values(), strict=True)
            ]
        # A batch allocates thousands of objects and creates no reference cycles: the cyclic
        # collector would only rescan them midway. Refcounting still frees them.
        collecting = gc.isenabled()
        gc.disable()
        try:
            out: list[Event] = list(map(object.__new__, repeat(self.cls, n)))
            for name, setter in zip(self.fields, self.setters, strict=True):
                values = cols[name] if name in cols else repeat(self.defaults[name], n)
                _consume(map(setter, out, values))
        finally:
            if collecting:
                gc.enable()
        return out


_consume = deque[Any](maxlen=0).extend
_TICKS = _Maker(Tick, {"symbol", "price", "ts", "size", "bid", "ask", "volume", "prev_close"})
_BARS = _Maker(Bar, {"symbol", "ts", "interval", "open", "high", "low", "close", "volume"})
_WIDTHS = np.array(list(INTERVALS.values()), dtype=np.float64)
_NAMES = np.array(list(INTERVALS), dtype=object)


def _ticks(tape: Tape, i: int, j: int) -> list[Event]:
    """Rows ``i`` to ``j`` (exclusive) as ticks, whatever their kind."""
    cols: dict[str, Iterable[Any]] = {
        "symbol": tape.symbol[i:j].tolist(),
        "price": tape.price[i:j].tolist(),
        "ts": tape.ts[i:j].tolist(),
        "size": _optional(tape.size[i:j]),
        "bid": _optional(tape.bid[i:j]),
        "ask": _optional(tape.ask[i:j]),
        "volume": _optional(tape.volume[i:j]),
        "prev_close": _optional(tape.prev_close[i:j]),
    }
    return _TICKS.build(cols, j - i)


def _bars(tape: Tape, rows: npt.NDArray[np.intp]) -> list[Event]:
    """The bar rows ``rows`` as bars (the row's volume NaN: 0)."""
    assert tape.interval is not None and tape.open is not None
    assert tape.high is not None and tape.low is not None
    volume = tape.size[rows]
    cols: dict[str, Iterable[Any]] = {
        "symbol": tape.symbol[rows].tolist(),
        "ts": tape.ts[rows].tolist(),
        "interval": _NAMES[np.searchsorted(_WIDTHS, tape.interval[rows])].tolist(),
        "open": tape.open[rows].tolist(),
        "high": tape.high[rows].tolist(),
        "low": tape.low[rows].tolist(),
        "close": tape.price[rows].tolist(),
        "volume": np.nan_to_num(volume, nan=0.0).tolist(),
    }
    return _BARS.build(cols, len(rows))


def events_between(tape: Tape, i: int, j: int) -> list[Event]:
    """The events of a tape's rows, in order: ticks, bars where a row is a bar, news where a row
    is news.

    Args:
        tape: the tape.
        i: the first row.
        j: the row after the last (clamped to the tape).

    Returns:
        One event per row; empty when ``i >= j``.
    """
    j = min(j, len(tape))
    if i >= j:
        return []
    bars = None if tape.interval is None else ~np.isnan(tape.interval[i:j])
    if bars is not None and bars.all():
        return _bars(tape, np.arange(i, j))
    out: list[Event] = _ticks(tape, i, j)
    if bars is not None and bars.any():
        at = np.flatnonzero(bars)
        placed = np.empty(j - i, dtype=object)
        placed[:] = out
        built = np.empty(len(at), dtype=object)
        built[:] = _bars(tape, at + i)
        placed[at] = built
        out = placed.tolist()
    if tape.is_news is None or not tape.is_news[i:j].any():
        return out
    assert tape.headline is not None and tape.source is not None and tape.tags is not None
    assert tape.url is not None and tape.summary is not None
    news = tape.is_news[i:j]
    for k in np.flatnonzero(news).tolist():
        r = i + k
        out[k] = News(
            headline=str(tape.headline[r]),
            ts=float(tape.ts[r]),
            source=str(tape.source[r] or ""),
            symbols=tuple(tape.tags[r] or ()),
            url=tape.url[r],
            summary=tape.summary[r],
        )
    return out

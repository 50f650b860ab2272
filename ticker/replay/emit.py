"""Pure; no I/O. What a replay emits: the events (ticks and news) of a tape's rows.

Vectorised with numpy. Ticks are built column-wise, a batch at a time: building them is the main
cost of a replay, so nothing here runs a Python step per tick.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable
from dataclasses import MISSING, fields
from itertools import repeat
from typing import Any

import numpy as np

from ticker.core.events import Event, News, Tick
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


# ``Tick`` is a frozen slots dataclass: its generated __init__ sets each field through
# ``object.__setattr__``, a Python call per field per tick. For a batch, we allocate the
# instances and fill each slot for all of them with ``map`` over the slot descriptor's setter: no
# Python frame per tick, and the very same objects (equal, hashable, frozen afterwards). Fields
# this module does not know get their default; a Tick with a __post_init__ (validation) is built
# the ordinary way.
_TICK_FIELDS = tuple(f.name for f in fields(Tick))
_TICK_SETTERS = tuple(Tick.__dict__[name].__set__ for name in _TICK_FIELDS)
_TICK_DEFAULTS = {f.name: f.default for f in fields(Tick) if f.default is not MISSING}
_FAST_TICKS = not hasattr(Tick, "__post_init__") and set(_TICK_FIELDS) <= {
    "symbol",
    "price",
    "ts",
    *_TICK_DEFAULTS,
}
_consume = deque[Any](maxlen=0).extend


def _ticks(tape: Tape, i: int, j: int) -> list[Event]:
    """Rows ``i`` to ``j`` (exclusive) as ticks, whatever their kind."""
    n = j - i
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
    if not _FAST_TICKS:
        return [
            Tick(**dict(zip(cols, row, strict=True))) for row in zip(*cols.values(), strict=True)
        ]
    # A batch allocates thousands of objects and creates no reference cycles: the cyclic
    # collector would only rescan them midway. Refcounting still frees them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        out: list[Event] = list(map(object.__new__, repeat(Tick, n)))
        for name, setter in zip(_TICK_FIELDS, _TICK_SETTERS, strict=True):
            values = cols[name] if name in cols else repeat(_TICK_DEFAULTS[name], n)
            _consume(map(setter, out, values))
    finally:
        if collecting:
            gc.enable()
    return out


def events_between(tape: Tape, i: int, j: int) -> list[Event]:
    """The events of a tape's rows, in order: ticks, and news where a row is news.

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
    if tape.is_news is None or not tape.is_news[i:j].any():
        return _ticks(tape, i, j)
    assert tape.headline is not None and tape.source is not None and tape.tags is not None
    assert tape.url is not None and tape.summary is not None
    news = tape.is_news[i:j]
    out: list[Event] = _ticks(tape, i, j)
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

"""What the core needs of an event before it may reach the hub: ``event_problem``.

Pure; no I/O. ``FeedRunner`` checks every event a feed yields with :func:`event_problem` and
drops (and counts) the ones with a problem, so a buggy adapter can neither crash the hub nor send a
client something it cannot parse. The check is what the core *relies on*, not what makes a good
feed (``ticker_feeds.testing.check_event`` is the stricter conformance check for adapter authors):

- exactly ``Tick``, ``News``, ``Listing``, ``Bar`` or ``Reset`` (the hub dispatches on the type);
- a bar's interval is one of :data:`ticker.core.bars.INTERVALS`, its prices are > 0 with
  ``low <= open, close <= high``, and its ``ts`` is a multiple of its interval;
- numbers are ``float`` or ``int`` exactly (no ``bool``, ``Decimal`` or ``numpy.float64``, which
  the JSON encoder refuses mid-flush), finite, and within range: ``price``, ``bid``, ``ask``,
  ``prev_close`` > 0; ``size``, ``volume``, ``ts`` >= 0;
- symbols are non-empty strings of at most :data:`MAX_SYMBOL_LEN` characters; every string is
  valid UTF-8 (a lone surrogate would make the encoder raise).
"""

from __future__ import annotations

import math

from ticker.core.bars import INTERVALS
from ticker.core.events import Bar, Listing, News, Reset, Tick

__all__ = ["MAX_SYMBOL_LEN", "event_problem", "time_problem"]

MAX_SYMBOL_LEN = 64
"""Longer symbols are refused: each one stays in the book, in ``hello`` and in every snapshot."""

# Integers beyond this lose precision as floats and overflow the encoder's 64-bit range.
_MAX_INT = 2**53
_INF = math.inf


def _show(v: object) -> str:
    """A short, safe rendering of a bad value (its repr may be huge or may raise)."""
    t = type(v)
    if v is None or t in (float, int, bool):
        return repr(v)
    if t is str:
        return repr(v[:20]) + ("..." if len(v) > 20 else "")  # type: ignore[index,arg-type]
    return f"<{t.__name__}>"


def _number(v: object) -> bool:
    """A finite float, or an int in range (not a bool, not a float subclass)."""
    t = type(v)
    if t is float:
        return math.isfinite(v)  # type: ignore[arg-type]
    if t is int:
        return -_MAX_INT <= v <= _MAX_INT  # type: ignore[operator]
    return False


def _text(v: object) -> bool:
    """A str that encodes as UTF-8 (no lone surrogates)."""
    if not isinstance(v, str):
        return False
    if v.isascii():
        return True
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _symbol(v: object) -> bool:
    return isinstance(v, str) and 0 < len(v) <= MAX_SYMBOL_LEN and _text(v) and not v.isspace()


def _symbols(v: object) -> bool:
    return type(v) is tuple and all(_symbol(s) for s in v)


def _tick_fast(t: Tick) -> bool:
    """The per-tick hot path (~0.5 us): True for the common all-float tick that passes every check
    of :func:`_tick_problem`; False means "look closer" (int values, or a problem)."""
    sym, p, ts, bid, ask, size, vol, pc = (
        t.symbol,
        t.price,
        t.ts,
        t.bid,
        t.ask,
        t.size,
        t.volume,
        t.prev_close,
    )
    F = float
    return (
        p.__class__ is F
        and 0.0 < p < _INF
        and ts.__class__ is F
        and 0.0 <= ts < _INF
        and sym.__class__ is str
        and 0 < len(sym) <= MAX_SYMBOL_LEN
        and sym.isascii()
        and not sym.isspace()
        and (bid is None or (bid.__class__ is F and 0.0 < bid < _INF))
        and (ask is None or (ask.__class__ is F and 0.0 < ask < _INF))
        and (size is None or (size.__class__ is F and 0.0 <= size < _INF))
        and (vol is None or (vol.__class__ is F and 0.0 <= vol < _INF))
        and (pc is None or (pc.__class__ is F and 0.0 < pc < _INF))
    )


def _tick_problem(t: Tick) -> str | None:
    return None if _tick_fast(t) else _tick_detail(t)


def _tick_detail(t: Tick) -> str | None:
    if not _symbol(t.symbol):
        return f"tick symbol must be a non-empty string (<= {MAX_SYMBOL_LEN} chars)"
    price = t.price
    if not (_number(price) and price > 0):
        return f"tick {t.symbol}: price must be a finite number > 0, got {_show(price)}"
    if not (_number(t.ts) and t.ts >= 0):
        return f"tick {t.symbol}: ts must be a finite number >= 0, got {_show(t.ts)}"
    for name, v, positive in (
        ("bid", t.bid, True),
        ("ask", t.ask, True),
        ("prev_close", t.prev_close, True),
        ("size", t.size, False),
        ("volume", t.volume, False),
    ):
        if v is not None and not (_number(v) and (v > 0 if positive else v >= 0)):
            bound = "> 0" if positive else ">= 0"
            return (
                f"tick {t.symbol}: {name} must be None or a finite number {bound}, got {_show(v)}"
            )
    return None


def _news_problem(n: News) -> str | None:
    if not (_text(n.headline) and n.headline.strip()):
        return "news headline must be a non-empty string"
    if not (_number(n.ts) and n.ts >= 0):
        return f"news ts must be a finite number >= 0, got {_show(n.ts)}"
    if not _text(n.source):
        return "news source must be a string"
    if not _symbols(n.symbols):
        return "news symbols must be a tuple of non-empty strings"
    for name, v in (("url", n.url), ("summary", n.summary)):
        if v is not None and not _text(v):
            return f"news {name} must be None or a string"
    if type(n.id) is not int or n.id < 0:
        return f"news id must be an int >= 0 (0: the core assigns it), got {_show(n.id)}"
    return None


def _bar_problem(b: Bar) -> str | None:
    if not _symbol(b.symbol):
        return f"bar symbol must be a non-empty string (<= {MAX_SYMBOL_LEN} chars)"
    width = INTERVALS.get(b.interval) if type(b.interval) is str else None
    if width is None:
        valid = ", ".join(INTERVALS)
        return f"bar {b.symbol}: interval must be one of {valid}, got {_show(b.interval)}"
    if not (_number(b.ts) and b.ts >= 0 and b.ts % width == 0):
        return f"bar {b.symbol}: ts must be a multiple of {b.interval} in ms, got {_show(b.ts)}"
    for name in ("open", "high", "low", "close"):
        v = getattr(b, name)
        if not (_number(v) and v > 0):
            return f"bar {b.symbol}: {name} must be a finite number > 0, got {_show(v)}"
    if not (b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high):
        return f"bar {b.symbol}: needs low <= open, close <= high"
    if not (_number(b.volume) and b.volume >= 0):
        return f"bar {b.symbol}: volume must be a finite number >= 0, got {_show(b.volume)}"
    return None


def event_problem(ev: object) -> str | None:
    """Why ``ev`` must not reach the hub, or None when it may. Never raises.

    Args:
        ev: anything a feed yielded.

    Returns:
        a one-line reason (no longer than 200 characters), or None.
    """
    t = type(ev)
    try:
        if t is Tick:
            problem = _tick_problem(ev)  # type: ignore[arg-type]
        elif t is News:
            problem = _news_problem(ev)  # type: ignore[arg-type]
        elif t is Listing:
            problem = (
                None
                if _symbols(ev.symbols)  # type: ignore[attr-defined]
                else "listing symbols must be a tuple of non-empty strings"
            )
        elif t is Bar:
            problem = _bar_problem(ev)  # type: ignore[arg-type]
        elif t is Reset:
            ok = _symbols(ev.symbols) and _number(ev.ts)  # type: ignore[attr-defined]
            problem = None if ok else "reset needs a tuple of symbols and a finite ts"
        else:
            problem = f"not an event: {t.__module__}.{t.__qualname__}"
    except Exception as exc:  # e.g. a Tick made with object.__new__, its fields unset
        problem = f"malformed {t.__name__}: {type(exc).__name__}"
    return None if problem is None else problem[:200]


def time_problem(ev: Tick | Bar, now_s: float) -> str:
    """Why a live event's time is implausible, for the log and ``/healthz``: how far it is from
    ``now_s`` (the wall clock, epoch seconds), and the likely unit mistake."""
    off_s = ev.ts / 1e3 - now_s
    kind = "tick" if type(ev) is Tick else "bar"
    hint = ""
    if 0 < ev.ts < 1e11:
        hint = "; a time in seconds, not milliseconds?"
    elif ev.ts > 1e14:
        hint = "; a time in microseconds or nanoseconds, not milliseconds?"
    when = "ahead of" if off_s > 0 else "behind"
    days = abs(off_s) / 86_400
    return f"{kind} {ev.symbol}: ts {ev.ts:.0f} is {days:,.1f} days {when} the clock{hint}"[:200]

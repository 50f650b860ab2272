"""What every adapter shares: the Feed shape (re-exported) and option parsing.

Pure; no I/O. ``parse_options`` turns the ``key=value`` strings of a ``--feed`` SPEC into typed
values, with one-line errors that name the valid options.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ticker.core.events import Event, Feed, FeedFactory, Listing, News, Tick

__all__ = [
    "Event",
    "Feed",
    "FeedFactory",
    "Listing",
    "News",
    "Option",
    "Tick",
    "as_float",
    "as_int",
    "as_symbols",
    "finite_number",
    "help_of",
    "parse_options",
    "positive_number",
]


@dataclass(frozen=True, slots=True)
class Option:
    """One feed option: its help line, default (a string, parsed like a given value) and parser."""

    help: str
    default: str | None
    parse: Callable[[str], Any] = str


T = TypeVar("T", int, float)


def _ranged(
    convert: Callable[[str], T], what: str, lo: T, hi: T, show: Callable[[T], str] = str
) -> Callable[[str], T]:
    """Parser for a value ``convert`` makes of a string, in [lo, hi]."""

    def parse(s: str) -> T:
        try:
            v = convert(s)
        except ValueError:
            raise ValueError(f"{s!r} is not {what}") from None
        if not lo <= v <= hi:
            raise ValueError(f"{show(v)} is out of range {show(lo)}..{show(hi)}")
        return v

    return parse


def as_int(lo: int, hi: int) -> Callable[[str], int]:
    """Parser for an integer in [lo, hi]."""
    return _ranged(int, "an integer", lo, hi)


def as_float(lo: float, hi: float) -> Callable[[str], float]:
    """Parser for a number in [lo, hi]."""
    return _ranged(float, "a number", lo, hi, "{:g}".format)


def as_symbols(text: str) -> list[str]:
    """A ``+``-separated list of symbols (an option's parser): blanks and repeats dropped. Pure.

    Raises:
        ValueError: no symbol at all (``symbols=`` is a usage error now, not an empty feed later).
    """
    syms = list(dict.fromkeys(s.strip() for s in text.split("+") if s.strip()))
    if not syms:
        raise ValueError("no symbols given (e.g. symbols=AAPL+MSFT)")
    return syms


def parse_options(spec: Mapping[str, Option], given: Mapping[str, str]) -> dict[str, Any]:
    """Typed options from ``given`` strings, defaults filled in.

    Raises:
        ValueError: an unknown option (the message lists the valid ones) or a bad value.
    """
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(
            f"unknown option {', '.join(unknown)}; valid options: {', '.join(sorted(spec))}"
        )
    out: dict[str, Any] = {}
    for key, opt in spec.items():
        raw = given.get(key, opt.default)
        if raw is None:
            out[key] = None
            continue
        try:
            out[key] = opt.parse(raw)
        except ValueError as exc:
            raise ValueError(f"option {key}: {exc}") from None
    return out


def help_of(spec: Mapping[str, Option]) -> dict[str, str]:
    """``{name: "help (default X)"}`` for ``ticker feeds``."""
    return {
        k: o.help + (f" (default {o.default})" if o.default not in (None, "") else "")
        for k, o in spec.items()
    }


def finite_number(v: Any, *, strings: bool = False) -> float | None:
    """``v`` as a finite float, or None: a JSON number (not a boolean), or with ``strings`` also
    numeric text (exchanges that quote prices as strings). Never raises."""
    if isinstance(v, bool) or not (isinstance(v, int | float) or (strings and isinstance(v, str))):
        return None
    try:
        f = float(v)
    except (ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def positive_number(v: Any, *, strings: bool = False) -> float | None:
    """:func:`finite_number`, and only when > 0 (prices and sizes)."""
    f = finite_number(v, strings=strings)
    return f if f is not None and f > 0 else None

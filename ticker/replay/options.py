"""Pure; no I/O. The replay feed's options: one table for ``--feed replay:key=value`` and for the
flags of ``ticker replay`` (the CLI derives one flag per option from it, so they cannot drift).

Imports neither numpy nor pandas: the CLI builds its parser from it. A value is parsed when the
feed is made (times need pandas: imported then).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ticker.core.bars import INTERVALS, IntervalError, interval_ms
from ticker.replay.columns import parse_columns_option
from ticker.replay.control import parse_speed

__all__ = ["OPTIONS", "ReplayOption", "parse_bool", "parse_interval"]


@dataclass(frozen=True, slots=True)
class ReplayOption:
    """One option: its help line, default (a string, parsed like a given value) and parser.

    A yes/no option (``parse`` is :func:`parse_bool`) is a ``--name/--no-name`` flag; ``path`` is
    the positional argument; every other option is ``--name VALUE``.
    """

    help: str
    default: str | None
    parse: Callable[[str], Any] = str

    @property
    def boolean(self) -> bool:
        """A yes/no option."""
        return self.parse is parse_bool


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` (or empty) or ``0/false/no/off`` (any case).

    Raises:
        ValueError: anything else.
    """
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on", ""):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a yes/no value")


def parse_interval(text: str) -> str:
    """An interval name (``1s`` ... ``1d``; ``1min`` is ``1m``) -> its canonical name.

    Raises:
        ValueError: not an interval (the message lists them).
    """
    try:
        width = interval_ms(text.strip())
    except IntervalError as exc:
        raise ValueError(str(exc)) from None
    return next(name for name, w in INTERVALS.items() if w == width)


def _time(text: str) -> float:
    from ticker.replay.times import parse_time  # pandas: only when a time is given

    return parse_time(text)


def _symbols(text: str) -> list[str]:
    syms = [s.strip() for s in text.split("+") if s.strip()]
    if not syms:
        raise ValueError("symbols is empty")
    return syms


OPTIONS: dict[str, ReplayOption] = {
    "path": ReplayOption("a data file (CSV, CSV.gz, Parquet) or a directory of them", None),
    "speed": ReplayOption("market seconds per second, or max", "1", parse_speed),
    "start": ReplayOption(
        "replay from this market time (ISO 8601, epoch, 'Jan 1 2000')", None, _time
    ),
    "end": ReplayOption("replay up to this market time", None, _time),
    "symbols": ReplayOption("only these symbols, +-separated", None, _symbols),
    "loop": ReplayOption("start over at the end", "no", parse_bool),
    "hold": ReplayOption(
        "at the end, stay open for seek/resume (no: the feed ends)", "yes", parse_bool
    ),
    "columns": ReplayOption(
        "column overrides, e.g. ts:Date+price:Close", None, parse_columns_option
    ),
    "symbol": ReplayOption("symbol of a table without a symbol column (default: file name)", None),
    "interval": ReplayOption(
        f"interval of a bar file's rows, one of {' '.join(INTERVALS)} "
        "(default: detected from their spacing)",
        None,
        parse_interval,
    ),
}
"""Every option of the replay feed, by name, in the order ``ticker feeds`` lists them."""

"""Pure; no I/O. Parsing what a user asks of a replay: its speed and control commands.

Imports neither numpy nor pandas: the server parses ``POST /api/replay`` with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ticker.replay.errors import ReplayError

__all__ = ["MAX_SPEED", "Command", "parse_command", "parse_speed"]

MAX_SPEED = 1e9
"""The largest finite speed (market seconds per wall second); ``inf`` means as fast as possible."""


@dataclass(frozen=True, slots=True)
class Command:
    """A replay control request (``POST /api/replay``).

    Args:
        action: ``pause``, ``resume``, ``seek`` or ``speed``.
        to: for ``seek``, the market time in epoch ms.
        speed: for ``speed``, market seconds per wall second (``inf`` = max).
        feed: the replay feed's name; None for every replay feed.
    """

    action: Literal["pause", "resume", "seek", "speed"]
    to: float | None = None
    speed: float | None = None
    feed: str | None = None


def parse_speed(text: str) -> float:
    """Parse a speed option: ``"max"`` (or ``inf``, ``fastest``) or a number such as ``"10x"``.

    Args:
        text: the option's value.

    Returns:
        ``inf`` for as fast as possible, else the number, in (0, :data:`MAX_SPEED`].

    Raises:
        ReplayError: not a number or ``max``, or out of range.
    """
    t = text.strip().lower()
    if t in ("max", "inf", "fastest"):
        return math.inf
    try:
        v = float(t.rstrip("x"))
    except ValueError:
        raise ReplayError(f"speed {text!r} is not a number or 'max'") from None
    if not 0 < v <= MAX_SPEED:
        raise ReplayError(f"speed {v:g} is out of range (0, 1e9]; use max for as fast as possible")
    return v


def _number(v: Any) -> float | None:
    """A finite JSON number as a float; None for anything else (booleans included)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def parse_command(body: Any) -> Command:
    """Parse a decoded JSON body of ``POST /api/replay``.

    Args:
        body: ``{"action": "pause"|"resume"|"seek"|"speed", "to": ms, "speed": x|"max",
            "feed": name}``, as ``json.loads`` returns it.

    Returns:
        The command.

    Raises:
        ReplayError: not an object, an unknown action, a missing or bad ``to``/``speed``/``feed``.
    """
    if not isinstance(body, dict):
        raise ReplayError("body must be a JSON object")
    action = body.get("action")
    feed = body.get("feed")
    if feed is not None and not isinstance(feed, str):
        raise ReplayError("'feed' must be a string")
    if action in ("pause", "resume"):
        return Command(action, feed=feed)
    if action == "seek":
        to = _number(body.get("to"))
        if to is None:
            raise ReplayError("seek needs 'to': a market time in epoch ms")
        return Command("seek", to=to, feed=feed)
    if action == "speed":
        raw = body.get("speed")
        speed = math.inf if raw == "max" else _number(raw)
        if speed is None or not (0 < speed <= MAX_SPEED or speed == math.inf):
            raise ReplayError("speed needs 'speed': a number in (0, 1e9] or \"max\"")
        return Command("speed", speed=speed, feed=feed)
    raise ReplayError("'action' must be one of pause, resume, seek, speed")

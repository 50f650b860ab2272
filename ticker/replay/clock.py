"""Pure; no I/O. The replay clock: when each row of a tape is due, given speed, pause and seek.

Sans-I/O: callers pass ``now`` (``loop.time()``, seconds) and nothing here sleeps, so pause,
seek and speed changes are arithmetic. The schedule is a function of the data's clock and the
speed only. Needs numpy (searching the clock), not pandas.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ReplayClock", "State", "schedule"]

Floats = npt.NDArray[np.float64]

State = Literal["playing", "paused", "finished"]


def schedule(clock: npt.ArrayLike, speed: float) -> Floats:
    """Wall-clock offsets at which each row is due: order and relative timing scaled by speed.

    Args:
        clock: the rows' market time in ms, non-decreasing.
        speed: market seconds per wall second (``inf`` = all at once).

    Returns:
        Seconds from the first row, one per row.
    """
    c = np.asarray(clock, dtype=np.float64)
    if not len(c) or math.isinf(speed):
        return np.zeros(len(c))
    out: Floats = (c - c[0]) / (1000.0 * speed)
    return out


class ReplayClock:
    """Where a replay is: position in the tape, market clock, state and speed.

    Callers pass ``now`` (``loop.time()``, seconds); nothing here sleeps. While playing,
    the market clock runs at ``speed`` market seconds per wall second from an anchor, and the rows
    due are those whose clock is at or before it (:meth:`due`); the caller emits them and calls
    :meth:`advance`. Pausing stops the clock; seeking moves it; changing speed re-anchors it.

    Args:
        times: the tape's ``clock`` (ms, non-decreasing).
        speed: market seconds per wall second; ``inf`` is as fast as the consumer takes rows.
        now: the current time.
    """

    def __init__(self, times: Floats, speed: float, now: float) -> None:
        self.times = times
        self.speed = speed
        self.position = 0
        self.state: State = "playing" if len(times) else "finished"
        self._anchor_market = float(times[0]) if len(times) else 0.0
        self._anchor_wall = now

    # Queries

    @property
    def start(self) -> float | None:
        """Market time of the first row (ms), None for an empty tape."""
        return float(self.times[0]) if len(self.times) else None

    @property
    def end(self) -> float | None:
        """Market time of the last row (ms), None for an empty tape."""
        return float(self.times[-1]) if len(self.times) else None

    def market_time(self, now: float) -> float:
        """Where the replay is in the data's time.

        Args:
            now: the current time, in the units of the constructor's ``now``.

        Returns:
            The market clock in epoch ms, never past the last row.
        """
        if self.state == "playing" and not math.isinf(self.speed) and len(self.times):
            t = self._anchor_market + (now - self._anchor_wall) * self.speed * 1000.0
            return min(t, float(self.times[-1]))
        return self._anchor_market

    def due(self, now: float) -> int:
        """The rows due at ``now``: from ``position`` up to the returned index (exclusive).

        Args:
            now: the current time.

        Returns:
            An index into the tape, at least ``position``.
        """
        if self.state != "playing":
            return self.position
        if math.isinf(self.speed):
            return len(self.times)
        due = int(np.searchsorted(self.times, self.market_time(now), side="right"))
        return max(due, self.position)

    def next_deadline(self) -> float | None:
        """When the next row falls due (``now`` units); None when paused or finished."""
        if self.state != "playing" or self.position >= len(self.times):
            return None
        if math.isinf(self.speed):
            return self._anchor_wall
        gap = float(self.times[self.position]) - self._anchor_market
        return self._anchor_wall + max(0.0, gap) / (self.speed * 1000.0)

    # Commands

    def advance(self, to: int) -> None:
        """Record that the rows before ``to`` have been emitted (finishing after the last).

        Args:
            to: an index into the tape; one before ``position`` changes nothing.
        """
        n = len(self.times)
        self.position = min(max(to, self.position), n)
        if math.isinf(self.speed) and self.position:
            self._anchor_market = float(self.times[self.position - 1])
        if self.position >= n:
            self.state = "finished"
            self._anchor_market = float(self.times[-1]) if n else 0.0

    @property
    def at_end(self) -> bool:
        """Every row has been emitted (finished, or paused at the end)."""
        return self.position >= len(self.times)

    def pause(self, now: float) -> None:
        """Stop the clock where it is, in any state: a finished replay is then paused at its end
        (a seek keeps it paused; a resume starts it over)."""
        if self.state == "playing":
            self._anchor_market = self.market_time(now)
        if len(self.times):
            self.state = "paused"

    def resume(self, now: float) -> None:
        """Run the clock again from where it stopped; at the end (finished, or paused there) it
        starts over."""
        if self.at_end:
            self.restart(now)
        elif self.state == "paused":
            self._anchor_wall = now
            self.state = "playing"

    def restart(self, now: float) -> None:
        """Back to the first row, playing."""
        if len(self.times):
            self.position = 0
            self._anchor_market = float(self.times[0])
            self._anchor_wall = now
            self.state = "playing"

    def seek(self, to: float, now: float) -> int:
        """Move the market clock to ``to``: rows before it count as past, the rows at ``to`` and
        after are still to play (every row sharing the time ``to``: a seek is inclusive).

        Paused stays paused; otherwise the replay plays from there (finished only when ``to`` is
        past the last row).

        Args:
            to: the market time in epoch ms (the clock is clamped to the data).
            now: the current time.

        Returns:
            The new position: the first row at or after ``to``.
        """
        n = len(self.times)
        if not n:
            return 0
        t = min(max(float(to), float(self.times[0])), float(self.times[-1]))
        self.position = int(np.searchsorted(self.times, float(to), side="left"))
        self._anchor_market = t
        self._anchor_wall = now
        if self.state != "paused":
            self.state = "finished" if self.position >= n else "playing"
        return self.position

    def set_speed(self, speed: float, now: float) -> None:
        """Change speed from now on, the market clock continuing from where it is.

        Raises:
            ValueError: ``speed`` is not positive.
        """
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self._anchor_market = self.market_time(now)
        if math.isinf(self.speed) and self.position and self.state == "playing":
            self._anchor_market = float(self.times[self.position - 1])
        self._anchor_wall = now
        self.speed = speed

"""Replay of recorded or downloaded market data as a live feed, controllable while it plays.

I/O shell around :mod:`ticker.replay` (loading, layout detection and the pure
:class:`~ticker.replay.clock.ReplayClock`). The feed first declares every symbol in its data (a
``Listing``), then emits the rows when the clock says they are due, keeping their recorded event
time in ``ts``. At ``speed=max`` it emits as fast as the consumer takes events, in chunks, yielding
to the event loop between chunks. A finished replay holds its last state (the core keeps it) and
stays controllable: a seek or resume plays again.

Its capabilities (ticker.core.events), declared as base classes so that mypy checks them: control
(``GET/POST /api/replay`` in the server) goes through :meth:`ReplayFeed.replay_status` and
:meth:`ReplayFeed.replay_control` (``Controllable``); :meth:`ReplayFeed.status` tells the
supervisor when the feed is quiet on purpose (paused, finished), so it is not restarted as stalled
(``HasStatus``); :meth:`ReplayFeed.load` reads the data ahead for ``ticker replay``
(``Preloadable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from feeds.base import Event, Feed, Listing, Option, help_of, parse_options
from ticker.core.events import Controllable, HasStatus, Preloadable
from ticker.replay.clock import ReplayClock
from ticker.replay.columns import parse_columns_option
from ticker.replay.control import parse_speed
from ticker.replay.emit import events_between
from ticker.replay.errors import ReplayError
from ticker.replay.files import LoadReport, load
from ticker.replay.tape import Tape, state_rows
from ticker.replay.times import parse_time

__all__ = ["CHUNK", "ReplayFeed", "parse_bool"]

log = logging.getLogger("feeds.replay")

CHUNK = 4096
"""Rows built and emitted per step; the feed yields to the event loop between steps."""


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case). Pure.

    Raises:
        ValueError: anything else.
    """
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on", ""):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a yes/no value")


def _symbols(text: str) -> list[str]:
    syms = [s.strip() for s in text.split("+") if s.strip()]
    if not syms:
        raise ValueError("symbols is empty")
    return syms


_OPTIONS: dict[str, Option] = {
    "path": Option("a data file (CSV, CSV.gz, Parquet) or a directory of them", None, str),
    "speed": Option("market seconds per second, or max", "1", parse_speed),
    "start": Option(
        "replay from this market time (ISO 8601, epoch, 'Jan 1 2000')", None, parse_time
    ),
    "end": Option("replay up to this market time", None, parse_time),
    "symbols": Option("only these symbols, +-separated", None, _symbols),
    "loop": Option("start over at the end (yes/no)", "no", parse_bool),
    "hold": Option("at the end, stay open for seek/resume (no: the feed ends)", "yes", parse_bool),
    "columns": Option("column overrides, e.g. ts:Date+price:Close", None, parse_columns_option),
    "symbol": Option("symbol of a table without a symbol column (default: file name)", None, str),
}


class ReplayFeed(Feed, Controllable, HasStatus, Preloadable):
    """Replays recorded ticks and news, or market data files, on the market's own clock.

    Args:
        options: the ``key=value`` options of a ``--feed replay:...`` spec (see ``options``).
        tape: already loaded data (tests, benchmarks); ``path`` is then optional.
    """

    description: ClassVar[str] = (
        "replay recordings and market data files (ticks, OHLCV bars, long, wide tables)"
    )
    options: ClassVar[dict[str, str]] = help_of(_OPTIONS)

    def __init__(
        self, options: Mapping[str, str] | None = None, *, tape: Tape | None = None
    ) -> None:
        opts = parse_options(_OPTIONS, options or {})
        self.name = "replay"
        self.path: Path | None = Path(opts["path"]).expanduser() if opts["path"] else None
        self.speed: float = opts["speed"]
        self.start: float | None = opts["start"]
        self.end: float | None = opts["end"]
        self.only: list[str] | None = opts["symbols"]
        self.loop: bool = opts["loop"]
        self.hold: bool = opts["hold"]
        self.columns: dict[str, str] | None = opts["columns"]
        self.symbol: str | None = opts["symbol"]
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        self.report: LoadReport | None = None
        self.clock: ReplayClock | None = None
        self._tape = tape.select(self.start, self.end, self.only) if tape is not None else None
        self._wake = asyncio.Event()
        self._pending_state: int | None = None  # seek target whose state is still to emit
        self._closed = False
        if tape is None:
            if self.path is None:
                raise ValueError("option path is required (a data file or directory)")
            # Fail now, with one line, on a missing or unreadable file or undetectable columns.
            load(self.path, columns=self.columns, symbol=self.symbol, probe=True)

    # Loading

    def load(self) -> LoadReport:
        """Read and select the data now (blocking); the one-line summary is logged.

        Raises:
            ReplayError: the data cannot be read.
        """
        if self._tape is not None and self.report is not None:
            return self.report
        if self._tape is None:
            assert self.path is not None
            tape, report = load(self.path, columns=self.columns, symbol=self.symbol)
            self._tape = tape.select(self.start, self.end, self.only)
            if len(self._tape) != len(tape):
                log.info(
                    "replay: %d of %d events within start/end/symbols", len(self._tape), len(tape)
                )
        else:
            tape = self._tape
            report = LoadReport(
                files=0,
                rows=len(tape),
                events=len(tape),
                layouts=("tape",),
                symbols=len(tape.symbols()),
                bad={},
            )
        self.report = report
        log.info("%s", report.summary())
        return report

    # Feed protocol

    async def events(self) -> AsyncIterator[Event]:
        if self._tape is None or self.report is None:
            await asyncio.to_thread(self.load)
        tape = self._tape
        assert tape is not None
        yield Listing(tape.symbols())
        loop = asyncio.get_running_loop()
        clock = self.clock
        if clock is None or clock.state == "finished":
            clock = self.clock = ReplayClock(tape.clock, self.speed, loop.time())
        while not self._closed:
            if self._pending_state is not None:
                rows = state_rows(tape, self._pending_state)
                self._pending_state = None
                for ev in events_between(tape.take(rows), 0, len(rows)):
                    yield ev
            if clock.state == "playing":
                pos = clock.position
                due = min(clock.due(loop.time()), pos + CHUNK)
                if due > pos:
                    batch = events_between(tape, pos, due)
                    clock.advance(due)
                    for ev in batch:
                        yield ev
                    if due - pos == CHUNK:
                        await asyncio.sleep(0)  # a backlog: let the rest of the server run
                    continue
                deadline = clock.next_deadline()
                await self._sleep(None if deadline is None else deadline - loop.time())
                continue
            if clock.state == "finished":
                if self.loop and len(tape):
                    clock.restart(loop.time())
                    await asyncio.sleep(0)
                    continue
                if not self.hold:
                    return
            await self._sleep(None)  # paused, or finished and holding: wait for a command

    async def aclose(self) -> None:
        self._closed = True
        self._wake.set()

    def status(self) -> str:
        """``playing``, ``paused`` or ``finished`` (``loading`` before the data is in)."""
        return "loading" if self.clock is None else self.clock.state

    # Control

    def replay_status(self) -> dict[str, Any] | None:
        """The feed's entry in ``GET /api/replay``; None until its data is loaded."""
        clock = self.clock
        if clock is None:
            return None
        now = asyncio.get_running_loop().time()
        return {
            "name": self.name,
            "state": clock.state,
            "speed": None if math.isinf(clock.speed) else clock.speed,
            "clock": clock.market_time(now),
            "start": clock.start,
            "end": clock.end,
        }

    def replay_control(
        self, action: str, *, to: float | None = None, speed: float | None = None
    ) -> None:
        """Pause, resume, seek (``to``, epoch ms) or set the speed (market s per s; inf = max).

        Raises:
            ReplayError: the data is not loaded yet, or a seek without ``to``/speed without speed.
        """
        clock = self.clock
        if clock is None:
            raise ReplayError("replay is still loading")
        now = asyncio.get_running_loop().time()
        if action == "pause":
            clock.pause(now)
        elif action == "resume":
            clock.resume(now)
        elif action == "seek":
            if to is None:
                raise ReplayError("seek needs a time")
            self._pending_state = clock.seek(to, now)
        elif action == "speed":
            if speed is None or not speed > 0:
                raise ReplayError("speed must be > 0")
            clock.set_speed(speed, now)
        else:
            raise ReplayError(f"unknown action {action!r}")
        self._wake.set()

    async def _sleep(self, seconds: float | None) -> None:
        """Until ``seconds`` pass (None: forever) or a control command arrives."""
        self._wake.clear()
        if seconds is not None and seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

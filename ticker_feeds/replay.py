"""Replay of recorded or downloaded market data as a live feed, controllable while it plays.

I/O shell around :mod:`ticker.replay` (loading, layout detection and the pure
:class:`~ticker.replay.clock.ReplayClock`). The feed first declares every symbol in its data (a
``Listing``), then emits the rows when the clock says they are due, keeping their recorded event
time in ``ts``: ticks, news, and OHLCV bars as ``Bar`` events at their open time. At ``speed=max``
it emits as fast as the consumer takes events, in chunks, yielding to the event loop between
chunks. A finished replay holds its last state (the core keeps it) and stays controllable: a seek
or resume plays again.

A seek to ``T`` (:func:`~ticker.replay.tape.seek_plan`) emits a ``Reset`` of every symbol to a UTC
midnight ``D`` at or before ``T``, the last row of each symbol before ``D``, then every row in
``[D, T)`` at once (in chunks), and plays on from the first row at ``T``: the day's statistics and
the bars as of ``T`` are rebuilt exactly, with nothing from after ``T``. Starting over (``loop``,
a resume after the end) is a seek to the start.

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

from ticker.core.events import Controllable, HasStatus, Preloadable, Reset
from ticker.replay.clock import ReplayClock
from ticker.replay.emit import events_between
from ticker.replay.errors import ReplayError
from ticker.replay.files import LoadReport, load
from ticker.replay.options import OPTIONS, parse_bool
from ticker.replay.tape import SeekPlan, Tape, seek_plan
from ticker_feeds.base import Event, Feed, Listing, Option, help_of, parse_options

__all__ = ["CHUNK", "ReplayFeed", "parse_bool"]

log = logging.getLogger("ticker_feeds.replay")

CHUNK = 4096
"""Rows built and emitted per step; the feed yields to the event loop between steps."""

_BIG = 200_000
"""A tape with more rows plans its seeks in a thread (finding each symbol's last row is O(n))."""

_OPTIONS: dict[str, Option] = {k: Option(o.help, o.default, o.parse) for k, o in OPTIONS.items()}


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
        self.interval: str | None = opts["interval"]
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        self.report: LoadReport | None = None
        self.clock: ReplayClock | None = None
        self._tape = tape.select(self.start, self.end, self.only) if tape is not None else None
        self._wake = asyncio.Event()
        self._seek_to: float | None = None  # a seek whose reset and catch-up are still to emit
        # The consumer has every row before this one (a forward seek catches up from it).
        self._sent = 0
        self._symbols: tuple[str, ...] = ()
        self._closed = False
        if tape is None:
            if self.path is None:
                raise ValueError("option path is required (a data file or directory)")
            # Fail now, with one line, on a missing or unreadable file or undetectable columns.
            load(self.path, **self._load_options(), probe=True)

    def _load_options(self) -> dict[str, Any]:
        return {"columns": self.columns, "symbol": self.symbol, "interval": self.interval}

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
            tape, report = load(self.path, **self._load_options())
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
        self._symbols = tape.symbols()
        yield Listing(self._symbols)
        loop = asyncio.get_running_loop()
        clock = self.clock
        if clock is None or clock.state == "finished":
            again = clock is not None  # a restarted feed goes back in market time: a seek
            clock = self.clock = ReplayClock(tape.clock, self.speed, loop.time())
            if again and clock.start is not None:
                self._seek(clock, clock.start, loop.time())
        while not self._closed:
            if self._seek_to is not None:
                async for ev in self._replay_seek(tape):
                    yield ev
                continue
            if clock.state == "playing":
                pos = clock.position
                due = min(clock.due(loop.time()), pos + CHUNK)
                if due > pos:
                    batch = events_between(tape, pos, due)
                    clock.advance(due)
                    for ev in batch:
                        yield ev
                    self._sent = due
                    if due - pos == CHUNK:
                        await asyncio.sleep(0)  # a backlog: let the rest of the server run
                    continue
                deadline = clock.next_deadline()
                await self._sleep(None if deadline is None else deadline - loop.time())
                continue
            if clock.state == "finished":
                if self.loop and len(tape):
                    assert clock.start is not None
                    self._seek(clock, clock.start, loop.time())
                    await asyncio.sleep(0)
                    continue
                if not self.hold:
                    return
            await self._sleep(None)  # paused, or finished and holding: wait for a command

    async def _replay_seek(self, tape: Tape) -> AsyncIterator[Event]:
        """The events of the pending seek: the reset, the state rows, then the catch-up rows in
        chunks (a newer seek, or closing, stops it)."""
        to = self._seek_to
        assert to is not None
        sent = self._sent
        plan: SeekPlan = (
            await asyncio.to_thread(seek_plan, tape, to, sent)
            if len(tape) > _BIG
            else seek_plan(tape, to, sent)
        )
        if self._seek_to != to:
            return  # a newer seek arrived while planning
        self._seek_to = None
        yield Reset(self._symbols, plan.reset)
        for ev in events_between(tape.take(plan.state), 0, len(plan.state)):
            yield ev
        i = self._sent = plan.catch_up
        while i < plan.position:
            j = min(i + CHUNK, plan.position)
            for ev in events_between(tape, i, j):
                yield ev
            i = self._sent = j
            if i < plan.position:
                await asyncio.sleep(0)  # let the rest of the server run
                if self._interrupted():
                    return

    def _interrupted(self) -> bool:
        """A newer seek arrived, or the feed is closing."""
        return self._seek_to is not None or self._closed

    def _seek(self, clock: ReplayClock, to: float, now: float) -> None:
        clock.seek(to, now)
        self._seek_to = to

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
            if clock.at_end and clock.start is not None:
                self._seek(clock, clock.start, now)  # starting over goes back in market time
            clock.resume(now)
        elif action == "seek":
            if to is None:
                raise ReplayError("seek needs a time")
            self._seek(clock, to, now)
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

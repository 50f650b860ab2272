"""Fan-in: run feeds under supervision and publish their events to the hub.

I/O shell. Each feed runs in its own task; a feed that raises is restarted with exponential backoff
and jitter, one that yields nothing for longer than its stall timeout is restarted the same way, one
that finishes is marked ``finished`` (a replay that reached its end), and none can disturb another.
A feed may say it is quiet on purpose with a ``status()`` method returning one of ``QUIET_STATES``
(a paused or finished replay): that state shows in ``health()`` and silence is then not a stall.
Such optional abilities are the capabilities of the feed API (ticker.core.events: ``HasStatus``,
``HasHealth``, ``HasStallTimeout``), checked with ``isinstance``.

Faults: every event is checked (:func:`ticker.core.validate.event_problem`); a bad one is dropped
and counted, and a run of ``max_invalid_run`` bad events in a row is a failure. A feed that fails
(raises, stalls or sends only garbage) ``quarantine_after`` times within ``quarantine_window``
seconds is *quarantined*: stopped for good, with the reason in ``health()``. A feed that cannot even
be built (its plug-in fails to import) is not quarantined: it keeps retrying, so installing the
missing dependency heals it. ``aclose()`` and a cancelled iterator get ``cleanup_timeout`` seconds.

``MemoryBus`` delivers events to the hub in-process (the default, one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ticker.aio import cancel_and_wait, retrieve
from ticker.config import QUARANTINE_AFTER, QUARANTINE_WINDOW
from ticker.core.backoff import backoff_delay
from ticker.core.events import (
    QUIET_STATES,
    Bar,
    Controllable,
    Event,
    Feed,
    HasHealth,
    HasStallTimeout,
    HasStatus,
    Tick,
)
from ticker.core.validate import event_problem, time_problem

__all__ = [
    "FeedGarbage",
    "FeedRunner",
    "FeedSource",
    "FeedStalled",
    "run_feeds",
    "stall_timeout_of",
]

log = logging.getLogger("ticker.feeds")


class FeedStalled(Exception):
    """A feed yielded nothing for longer than its stall timeout (it is restarted)."""


class FeedGarbage(Exception):
    """A feed yielded only invalid events for a while (it is restarted)."""


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A named way to make a feed: ``make()`` is called at start and at every restart.

    ``stall_timeout``: seconds without an event after which the feed is restarted (None: never).
    ``quarantine_after``: failures within ``quarantine_window`` seconds after which the feed is
    stopped for good (0: never).
    ``max_time_skew_s``: a tick, bar or news item whose time is further than this from the wall
    clock is dropped as invalid (0: never); a feed that can be steered (a replay:
    :class:`~ticker.core.events.Controllable`) keeps its own clock and is not checked.
    """

    name: str
    make: Callable[[], Feed]
    stall_timeout: float | None = None
    quarantine_after: int = QUARANTINE_AFTER
    quarantine_window: float = QUARANTINE_WINDOW
    max_time_skew_s: float = 0.0

    @classmethod
    def of(cls, feed: Feed) -> FeedSource:
        """Wrap a ready feed instance (restarts call its ``events()`` again)."""
        return cls(feed.name, lambda: feed, stall_timeout_of(feed))


def stall_timeout_of(feed: Feed) -> float | None:
    """The feed's own stall timeout (:class:`~ticker.core.events.HasStallTimeout`), else None."""
    return feed.stall_timeout if isinstance(feed, HasStallTimeout) else None


class FeedRunner:
    """Supervises one feed: runs it, restarts it with backoff when it fails, reports its state.

    States: ``starting``, ``running``, ``backoff`` (waiting to restart after a failure or a
    stall), ``finished`` (its iterator ended), ``quarantined`` (failed too often; not restarted),
    ``stopped``; and while running, the feed's own quiet state (``loading``, ``paused``,
    ``finished``) when it reports one.

    Args:
        stall_timeout: restart the feed after this many seconds without an event (default: the
            source's; None or 0: never). Checked a few times per timeout, not per event.
        max_invalid_run: this many invalid events in a row (none valid between) is a failure.
        cleanup_timeout: seconds a failed feed gets to finish its ``aclose()`` or to stop after
            being cancelled; past it, it is abandoned (logged) and the restart goes on.
    """

    def __init__(
        self,
        source: FeedSource,
        publish: Callable[[Event], None],
        *,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        rng: random.Random | None = None,
        stall_timeout: float | None = None,
        max_invalid_run: int = 100,
        cleanup_timeout: float = 5.0,
    ) -> None:
        self.source = source
        self.publish = publish
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.rng = rng or random.Random()
        self.state = "starting"
        self.events = 0
        self.errors = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.last_event_at: float | None = None
        self.last_event: Event | None = None  # its source ts gives /metrics the feed's lag
        self.task: asyncio.Task[None] | None = None
        self.stall_timeout = stall_timeout if stall_timeout is not None else source.stall_timeout
        self.stalls = 0
        self.feed: Feed | None = None  # the running instance (the replay API reaches it here)
        self.max_invalid_run = max_invalid_run
        self.cleanup_timeout = cleanup_timeout
        self.invalid = 0
        self.implausible = 0  # of them: times too far from the clock
        self.last_invalid: str | None = None
        self.abandoned = 0
        self.quarantine_reason: str | None = None
        self._invalid_run = 0
        self._invalid_logged_at = -1e9
        self._failures = 0
        self._failed_at: deque[float] = deque()

    @property
    def name(self) -> str:
        return self.source.name

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"feed:{self.name}")
        return self.task

    async def stop(self) -> None:
        await cancel_and_wait(self.task)
        if self.state != "quarantined":
            self.state = "stopped"

    async def run(self) -> None:
        self._failures = 0
        loop = asyncio.get_running_loop()
        while True:
            feed: Feed | None = None
            try:
                feed = self.source.make()
                self.feed = feed
                self.state = "running"
                self._invalid_run = 0
                if self.stall_timeout:
                    await self._consume_watched(feed, self.stall_timeout)
                else:
                    await self._consume(feed)
                self.state = "finished"
                log.info(
                    "feed %s finished after %d events",
                    self.name,
                    self.events,
                    extra={"feed": self.name, "events": self.events},
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Counted at once (no await in between), so /healthz never shows half of it.
                self.errors += 1
                self.stalls += isinstance(exc, FeedStalled)
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            finally:
                # Closed before the backoff wait (and on cancel): a failed feed's sockets and
                # tasks are gone while it waits. A hanging aclose() cannot hold the restart.
                if feed is not None:
                    await self._close_feed(feed)
            # Only failures of a feed that was built count: one that cannot be built (a plug-in
            # that fails to import) keeps retrying, so installing the dependency heals it.
            if feed is not None and self._quarantine_due(loop.time()):
                self.state = "quarantined"
                self.quarantine_reason = (
                    f"{len(self._failed_at)} failures within "
                    f"{self.source.quarantine_window:g}s; last: {self.last_error}"
                )[:300]
                log.error(
                    "feed %s quarantined (%s); it is not restarted",
                    self.name,
                    self.quarantine_reason,
                    extra={"feed": self.name, "error": self.last_error},
                )
                return
            delay = backoff_delay(
                self._failures,
                initial=self.initial_backoff,
                maximum=self.max_backoff,
                rng=self.rng,
            )
            self._failures += 1
            self.state = "backoff"
            log.warning(
                "feed %s failed (%s); restarting in %.1fs",
                self.name,
                self.last_error,
                delay,
                extra={
                    "feed": self.name,
                    "error": self.last_error,
                    "restart_in_s": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)
            self.restarts += 1

    def _quarantine_due(self, now: float) -> bool:
        """Record a failure at ``now``; True when the source's quarantine threshold is reached."""
        after, window = self.source.quarantine_after, self.source.quarantine_window
        if after <= 0:
            return False
        failed = self._failed_at
        failed.append(now)
        while failed and failed[0] <= now - window:
            failed.popleft()
        return len(failed) >= after

    async def _close_feed(self, feed: Feed) -> None:
        try:
            async with asyncio.timeout(self.cleanup_timeout):
                await feed.aclose()
        except TimeoutError:
            self.abandoned += 1
            log.error(
                "feed %s: aclose() did not return within %gs; abandoned",
                self.name,
                self.cleanup_timeout,
            )
        except Exception as exc:
            log.warning("feed %s: aclose() raised %s: %s", self.name, type(exc).__name__, exc)

    def _reject(self, problem: str) -> None:
        """Count (and now and then log) an invalid event; a long run of them is a failure."""
        self.invalid += 1
        self._invalid_run += 1
        self.last_invalid = problem
        now = time.monotonic()
        if now - self._invalid_logged_at >= 10.0:  # a garbage feed must not flood the log
            self._invalid_logged_at = now
            log.warning(
                "feed %s: dropped an invalid event (%s); %d so far",
                self.name,
                problem,
                self.invalid,
            )
        if self._invalid_run >= self.max_invalid_run:
            raise FeedGarbage(f"{self._invalid_run} invalid events in a row; last: {problem}")

    async def _consume(self, feed: Feed) -> None:
        publish = self.publish
        problem_of = event_problem
        skew_ms = 0.0 if isinstance(feed, Controllable) else self.source.max_time_skew_s * 1e3
        async for ev in feed.events():
            problem = problem_of(ev)
            if problem is not None:
                self._reject(problem)
                continue
            now = time.time()
            if skew_ms and (type(ev) is Tick or type(ev) is Bar):
                if abs(ev.ts - now * 1e3) > skew_ms:
                    self.implausible += 1
                    self._reject(time_problem(ev, now))
                    continue
            publish(ev)
            self.events += 1
            self.last_event = ev
            self.last_event_at = now
            self._failures = 0
            self._invalid_run = 0

    async def _consume_watched(self, feed: Feed, limit: float) -> None:
        """:meth:`_consume`, cancelled with :class:`FeedStalled` after ``limit`` s of silence.

        The watchdog compares the event count a few times per timeout, so the hot path pays
        nothing for it.
        """
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._consume(feed), name=f"feed:{self.name}:consume")
        seen, quiet_since = self.events, loop.time()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=min(limit / 4.0, 1.0))
                if done:
                    task.result()
                    return
                now = loop.time()
                if self.events != seen or _quiet(feed) is not None:
                    seen, quiet_since = self.events, now
                elif now - quiet_since >= limit:
                    raise FeedStalled(
                        f"no events for {now - quiet_since:.1f}s (stall timeout {limit:g}s)"
                    )
        finally:
            if not task.done():
                task.cancel()
                # asyncio.wait, not `await task` under suppress(CancelledError): that would also
                # swallow a cancel of *this* task (stop() during a stall restart), and the
                # runner would never stop. Bounded: a feed that ignores the cancel is abandoned.
                await asyncio.wait({task}, timeout=self.cleanup_timeout)
                if not task.done():
                    self.abandoned += 1
                    log.error(
                        "feed %s did not stop within %gs of being cancelled; abandoned",
                        self.name,
                        self.cleanup_timeout,
                    )
                    task.add_done_callback(retrieve)
                else:
                    retrieve(task)

    def health(self) -> dict[str, Any]:
        age = None if self.last_event_at is None else round(time.time() - self.last_event_at, 3)
        state = self.state
        if state == "running" and self.feed is not None:
            state = _quiet(self.feed) or state
        return {
            "name": self.name,
            "state": state,
            "events": self.events,
            "errors": self.errors,
            "restarts": self.restarts,
            "stalls": self.stalls,
            "stall_timeout_s": self.stall_timeout,
            "last_error": self.last_error,
            "last_event_age_s": age,
            "invalid": self.invalid,
            "implausible_times": self.implausible,
            "last_invalid": self.last_invalid,
            "quarantine_reason": self.quarantine_reason,
            **({"abandoned": self.abandoned} if self.abandoned else {}),
            **_detail(self.feed),
        }


def _detail(feed: Feed | None) -> dict[str, Any]:
    """What the feed says of itself (``health()``: link counters, gaps, ``stale`` symbols)."""
    if feed is None or not isinstance(feed, HasHealth):
        return {}
    try:
        detail: Any = feed.health()  # a plug-in's, shape unchecked: it must not break /healthz
    except Exception as exc:
        return {"detail_error": f"{type(exc).__name__}: {exc}"[:200]}
    if not isinstance(detail, dict):
        return {}
    out: dict[str, Any] = {"detail": detail}
    stale = detail.get("stale")
    if isinstance(stale, list):
        out["stale"] = stale
    return out


def _quiet(feed: Feed) -> str | None:
    """The feed's own quiet state (``status()`` in :data:`QUIET_STATES`), if it reports one."""
    if not isinstance(feed, HasStatus):
        return None
    try:
        state = feed.status()
    except Exception:
        return None
    return state if state in QUIET_STATES else None


async def run_feeds(
    sources: Sequence[FeedSource],
    publish: Callable[[Event], None],
    *,
    stop: asyncio.Event,
    duration: float | None = None,
) -> list[FeedRunner]:
    """Run ``sources`` into ``publish`` until ``stop`` is set, ``duration`` seconds have passed or
    every feed is done (finished or quarantined); then stop them (``ticker record``).

    Returns:
        the stopped runners, for the caller's summary.
    """
    runners = [FeedRunner(src, publish) for src in sources]
    for r in runners:
        r.start()
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    try:
        while not stop.is_set():
            if deadline is not None and loop.time() >= deadline:
                break
            if all(r.health()["state"] in ("finished", "quarantined") for r in runners):
                break
            # Runner states change without an event to wait for: look a few times a second.
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    finally:
        for r in runners:
            await r.stop()
    return runners

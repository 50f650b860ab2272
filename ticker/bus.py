"""Fan-in: run feeds under supervision and publish their events to the hub.

I/O shell. Each feed runs in its own task; a feed that raises is restarted with exponential backoff
and jitter, one that finishes is marked ``finished`` (a replay that reached its end), and none can
disturb another. ``MemoryBus`` delivers events to the hub in-process (the default, one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ticker.events import Event, Feed

__all__ = ["FeedRunner", "FeedSource", "MemoryBus", "backoff_delay"]

log = logging.getLogger("ticker.feeds")


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A named way to make a feed: ``make()`` is called at start and at every restart."""

    name: str
    make: Callable[[], Feed]

    @classmethod
    def of(cls, feed: Feed) -> FeedSource:
        """Wrap a ready feed instance (restarts call its ``events()`` again)."""
        return cls(feed.name, lambda: feed)


class MemoryBus:
    """In-process bus: ``publish`` hands each event straight to the subscriber (the hub)."""

    def __init__(self, sink: Callable[[Event], None]) -> None:
        self.sink = sink
        self.published = 0

    def publish(self, ev: Event) -> None:
        self.published += 1
        self.sink(ev)

    def health(self) -> dict[str, Any]:
        return {"kind": "memory", "state": "up", "published": self.published}


def backoff_delay(attempt: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [d/2, d], d = min(max, initial * 2**n).

    Pure; no I/O.
    """
    d = min(maximum, initial * (2.0 ** max(0, attempt)))
    return rng.uniform(d / 2.0, d)


class FeedRunner:
    """Supervises one feed: runs it, restarts it with backoff when it fails, reports its state.

    States: ``starting``, ``running``, ``backoff`` (waiting to restart after a failure),
    ``finished`` (its iterator ended), ``stopped``.
    """

    def __init__(self, source: FeedSource, publish: Callable[[Event], None], *,
                 initial_backoff: float = 0.5, max_backoff: float = 30.0,
                 rng: random.Random | None = None) -> None:
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
        self.task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.source.name

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"feed:{self.name}")
        return self.task

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.state = "stopped"

    async def run(self) -> None:
        failures = 0
        while True:
            feed: Feed | None = None
            try:
                feed = self.source.make()
                self.state = "running"
                publish = self.publish
                async for ev in feed.events():
                    publish(ev)
                    self.events += 1
                    self.last_event_at = time.time()
                    failures = 0
                self.state = "finished"
                log.info("feed %s finished after %d events", self.name, self.events)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                delay = backoff_delay(failures, initial=self.initial_backoff,
                                      maximum=self.max_backoff, rng=self.rng)
                failures += 1
                self.state = "backoff"
                log.warning("feed %s failed (%s); restarting in %.1fs", self.name,
                            self.last_error, delay)
                await asyncio.sleep(delay)
                self.restarts += 1
            finally:
                if feed is not None:
                    with contextlib.suppress(Exception):
                        await feed.aclose()

    def health(self) -> dict[str, Any]:
        age = None if self.last_event_at is None else round(time.time() - self.last_event_at, 3)
        return {
            "name": self.name,
            "state": self.state,
            "events": self.events,
            "errors": self.errors,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_event_age_s": age,
        }

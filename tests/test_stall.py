"""Stall detection: a feed that yields nothing for its stall timeout is restarted, with backoff.

Feeds that say they are quiet on purpose (a paused or finished replay) are left alone, and the
state shows in ``FeedRunner.health()`` and ``/healthz``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.core.events import Event, Tick
from ticker.net.server import create_app

STALL = 150 * MS


async def until(pred: Callable[[], Any], within: float = 3000 * MS, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Hanger:
    """Yields ``n`` ticks, then hangs forever (a dead upstream that never closes the socket)."""

    def __init__(self, n: int = 1, quiet: str | None = None) -> None:
        self.name = "hanger"
        self.n = n
        self.quiet = quiet
        self.closed = False

    async def events(self) -> AsyncIterator[Event]:
        for i in range(self.n):
            yield Tick("H", 1.0 + i, 1.7e12 + i)
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True

    def status(self) -> str | None:
        return self.quiet


async def test_a_silent_feed_is_restarted_with_backoff() -> None:
    made: list[Hanger] = []

    def make() -> Hanger:
        made.append(Hanger())
        return made[-1]

    published: list[Event] = []
    runner = FeedRunner(
        FeedSource("hanger", make, stall_timeout=STALL),
        published.append,
        initial_backoff=0.01,
        max_backoff=0.02,
        rng=random.Random(1),
    )
    runner.start()
    await until(lambda: runner.stalls >= 2, what="two stalls")
    await until(lambda: len(made) >= 3, what="restarts")
    health = runner.health()
    assert health["stalls"] >= 2 and health["restarts"] >= 2
    assert health["stall_timeout_s"] == STALL
    assert "FeedStalled: no events for" in str(health["last_error"])
    assert all(f.closed for f in made[:-1]), "every stalled instance was closed"
    # Each instance ticked once before it went silent (the last one may not have started yet).
    assert len(made) - 1 <= len(published) <= len(made)
    await runner.stop()
    assert runner.health()["state"] == "stopped"


async def test_a_busy_or_quiet_on_purpose_feed_is_left_alone() -> None:
    class Ticker:
        name = "busy"

        async def events(self) -> AsyncIterator[Event]:
            i = 0
            while True:
                i += 1
                yield Tick("B", 1.0, 1.7e12 + i)
                await asyncio.sleep(STALL / 10)

        async def aclose(self) -> None:
            pass

    busy = FeedRunner(FeedSource("busy", Ticker, stall_timeout=STALL), lambda ev: None)
    paused = FeedRunner(
        FeedSource("paused", lambda: Hanger(quiet="paused"), stall_timeout=STALL), lambda ev: None
    )
    never = FeedRunner(FeedSource("never", Hanger), lambda ev: None)  # no stall timeout
    for r in (busy, paused, never):
        r.start()
    await asyncio.sleep(STALL * 4)
    assert [r.stalls for r in (busy, paused, never)] == [0, 0, 0]
    assert paused.health()["state"] == "paused", "the feed's own quiet state shows"
    assert (busy.health()["state"], never.health()["state"]) == ("running", "running")
    for r in (busy, paused, never):
        await r.stop()


async def test_healthz_shows_the_stall_and_other_feeds_are_unaffected(
    aiohttp_client: AiohttpClient,
) -> None:
    class Steady:
        name = "steady"

        async def events(self) -> AsyncIterator[Event]:
            i = 0
            while True:
                i += 1
                yield Tick("S", float(i), 1.7e12 + i)
                await asyncio.sleep(0.01)

        async def aclose(self) -> None:
            pass

    client = await aiohttp_client(
        create_app(
            [
                FeedSource("hanger", Hanger, stall_timeout=STALL),
                FeedSource("steady", Steady),
            ]
        )
    )

    async def feeds() -> dict[str, Any]:
        body = await (await client.get("/healthz")).json()
        return {f["name"]: f for f in body["feeds"]}

    for _ in range(300):
        f = await feeds()
        if f["hanger"]["stalls"] >= 1:
            break
        await asyncio.sleep(0.01)
    assert f["hanger"]["stalls"] >= 1 and "no events for" in f["hanger"]["last_error"]
    assert f["hanger"]["state"] in ("backoff", "running")
    assert (f["steady"]["state"], f["steady"]["stalls"], f["steady"]["errors"]) == ("running", 0, 0)
    before = f["steady"]["events"]
    for _ in range(300):
        if (await feeds())["steady"]["events"] > before:
            break
        await asyncio.sleep(0.01)
    assert (await feeds())["steady"]["events"] > before, "the steady feed keeps going"

"""Feed supervision (``FeedRunner``): restarts with backoff, isolation, finished and stopped feeds.

Driven with real event loops and scripted feeds; the last tests go through the real server and
read ``/healthz``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from tests.wsutil import recv_type, tick, until
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.core.backoff import backoff_delay
from ticker.core.events import Event, Listing
from ticker.net.server import HUB, RUNNERS, create_app
from ticker_feeds.testing import FakeFeed


class Flaky:
    """A feed that yields ``good`` ticks and then raises."""

    def __init__(self, good: int = 0, name: str = "flaky") -> None:
        self.name = name
        self.good = good
        self.closed = 0

    async def events(self) -> AsyncIterator[Event]:
        for i in range(self.good):
            yield tick("FLK", 10.0 + i)
        raise RuntimeError("boom")

    async def aclose(self) -> None:
        self.closed += 1


class Script:
    """A FeedSource factory: the n-th ``make()`` returns ``feeds[n]`` (the last one repeats);
    each call is timed."""

    def __init__(self, *feeds: Flaky) -> None:
        self.feeds = feeds
        self.made_at: list[float] = []

    def make(self) -> Flaky:
        self.made_at.append(asyncio.get_running_loop().time())
        return self.feeds[min(len(self.made_at), len(self.feeds)) - 1]


async def test_failing_feed_backs_off_exponentially_and_resets_after_success() -> None:
    initial, maximum, seed = 0.05, 0.4, 7
    failing = Flaky(0)
    script = Script(failing, failing, failing, failing, Flaky(2), failing)
    published: list[Event] = []
    runner = FeedRunner(
        FeedSource("flaky", script.make, quarantine_after=0),  # restarts forever here
        published.append,
        initial_backoff=initial,
        max_backoff=maximum,
        rng=random.Random(seed),
    )
    runner.start()
    await until(lambda: len(script.made_at) >= 7, what="seven starts")
    await runner.stop()
    # The delays the runner drew, in order: attempts 0, 1, 2, 3 (capped at the maximum); the
    # fifth instance published before failing, so the count starts over: attempts 0, 1.
    rng = random.Random(seed)
    attempts = (0, 1, 2, 3, 0, 1)
    expected = [backoff_delay(n, initial=initial, maximum=maximum, rng=rng) for n in attempts]
    gaps = [b - a for a, b in itertools.pairwise(script.made_at)][:6]
    for gap, want in zip(gaps, expected, strict=True):
        assert gap >= want - 0.002, (gaps, expected)
    assert gaps[2] > 2 * initial - 0.002, "it grows"
    assert gaps[4] < maximum / 2, "and starts over after a success (attempt 4 would be >= 0.2)"
    assert [e.price for e in published if hasattr(e, "price")] == [10.0, 11.0]
    assert runner.errors >= 6 and runner.restarts >= 6
    assert runner.last_error == "RuntimeError: boom"
    assert failing.closed >= 5, "every failed instance was closed"
    assert runner.health()["state"] == "stopped"


async def test_health_shows_backoff_then_running_again() -> None:
    feed = FakeFeed()
    calls = 0

    def make() -> FakeFeed | Flaky:
        nonlocal calls
        calls += 1
        return Flaky(0) if calls == 1 else feed

    runner = FeedRunner(
        FeedSource("x", make),
        lambda ev: None,
        initial_backoff=0.3,
        max_backoff=0.3,
        rng=random.Random(1),
    )
    runner.start()
    await until(lambda: runner.state == "backoff", what="backoff")
    h = runner.health()
    assert (h["state"], h["errors"], h["restarts"]) == ("backoff", 1, 0)
    assert h["last_error"] == "RuntimeError: boom"
    await until(lambda: runner.state == "running", within=2000 * MS, what="restart")
    feed.push(tick("A", 1.0))
    await until(lambda: runner.events == 1, what="event after restart")
    assert runner.health()["restarts"] == 1
    assert runner.health()["last_event_age_s"] is not None
    await runner.stop()
    assert feed.closed


class Silent:
    """A feed that never yields and, like a network feed closing its socket, takes a moment to
    clean up when cancelled."""

    name = "silent"

    def __init__(self) -> None:
        self.cleaning = asyncio.Event()
        self.starts = 0

    async def events(self) -> AsyncIterator[Event]:
        self.starts += 1
        self.cleaning.clear()
        try:
            await asyncio.Event().wait()
            yield Listing(())  # never reached
        finally:
            self.cleaning.set()
            await asyncio.sleep(0.2)

    async def aclose(self) -> None:
        pass


async def test_stalled_feed_is_restarted_and_stop_during_restart_stops() -> None:
    silent = Silent()
    runner = FeedRunner(
        FeedSource("silent", lambda: silent, stall_timeout=0.1),
        lambda ev: None,
        initial_backoff=0.01,
        max_backoff=0.01,
        rng=random.Random(1),
    )
    runner.start()
    await until(
        lambda: runner.stalls >= 1 and runner.restarts >= 1 and silent.starts >= 2,
        what="a stall and a restart",
    )
    h = runner.health()
    assert h["stall_timeout_s"] == 0.1
    assert h["last_error"] is not None and "FeedStalled" in h["last_error"]
    # Stop while the next stall's clean-up is under way: the runner stops, for good.
    await silent.cleaning.wait()
    stopper = asyncio.get_running_loop().create_task(runner.stop())
    done, _ = await asyncio.wait({stopper}, timeout=2000 * MS)
    assert runner.task is not None
    if not done:  # cancel until one lands, so that the failure does not hang the loop's teardown
        for _ in range(200):
            runner.task.cancel()
            await asyncio.sleep(0.01)
            if runner.task.done():
                break
        await stopper
        pytest.fail("the stop was swallowed by the restart: the runner went on")
    starts = silent.starts
    await asyncio.sleep(0.3)
    assert silent.starts == starts and runner.health()["state"] == "stopped"
    assert runner.task.cancelled()


async def test_finished_feed_is_finished_and_not_restarted() -> None:
    feed = FakeFeed([tick("A", 1.0)])
    made = 0

    def make() -> FakeFeed:
        nonlocal made
        made += 1
        return feed

    runner = FeedRunner(FeedSource("once", make), lambda ev: None, initial_backoff=0.01)
    runner.start()
    feed.end()
    assert runner.task is not None
    await asyncio.wait_for(runner.task, 2000 * MS)
    assert runner.health()["state"] == "finished"
    assert (runner.events, made, runner.restarts) == (1, 1, 0)
    assert feed.closed


async def test_failing_feed_does_not_disturb_others_in_server(
    aiohttp_client: AiohttpClient,
) -> None:
    good = FakeFeed([Listing(("AAPL",)), tick("AAPL", 100.0)], name="good")
    script = Script(Flaky(1), Flaky(1), Flaky(1))
    client = await aiohttp_client(create_app([FeedSource("flaky", script.make), good]))
    runners = client.app[RUNNERS]
    await until(lambda: runners[0].errors >= 1 and runners[1].events >= 2, what="started")
    ws = await client.ws_connect("/ws")
    await ws.send_json({"op": "throttle", "ms": 0})
    await ws.send_json({"op": "subscribe", "symbols": ["AAPL"]})
    await recv_type(ws, "snapshot")
    # While "flaky" is failing and backing off, "good" keeps flowing to clients.
    for i in range(5):
        good.push(tick("AAPL", 101.0 + i))
        d = await recv_type(ws, "delta")
        assert d["quotes"]["AAPL"]["price"] == 101.0 + i
    h = await (await client.get("/healthz")).json()
    feeds = {f["name"]: f for f in h["feeds"]}
    assert feeds["good"]["state"] == "running" and feeds["good"]["errors"] == 0
    assert feeds["flaky"]["state"] in ("backoff", "running")
    assert feeds["flaky"]["errors"] >= 1
    assert feeds["flaky"]["last_error"] == "RuntimeError: boom"
    # Restarted (default backoff: 0.25-0.5 s): its tick is published again.
    await until(
        lambda: runners[0].restarts >= 1 and runners[0].events >= 2,
        within=3000 * MS,
        what="flaky restarted",
    )
    assert client.app[HUB].book.quotes["FLK"]["price"] == 10.0


async def test_finished_feed_shows_finished_in_healthz_and_holds_state(
    aiohttp_client: AiohttpClient,
) -> None:
    done = FakeFeed([Listing(("AAPL",)), tick("AAPL", 123.0)], name="done")
    live = FakeFeed([tick("MSFT", 1.0)], name="live")
    client = await aiohttp_client(create_app([done, live]))
    runners = client.app[RUNNERS]
    await until(lambda: runners[0].events == 2 and runners[1].events == 1, what="started")
    done.end()
    await until(lambda: runners[0].state == "finished", what="finished")
    h = await (await client.get("/healthz")).json()
    assert [(f["name"], f["state"]) for f in h["feeds"]] == [
        ("done", "finished"),
        ("live", "running"),
    ]
    assert h["status"] == "ok"
    assert done.closed and not live.closed
    quotes = (await (await client.get("/api/quotes")).json())["quotes"]
    assert quotes["AAPL"]["price"] == 123.0, "a finished feed's last state is held"
    ws = await client.ws_connect("/ws")
    hello = await recv_type(ws, "hello")
    assert hello["symbols"] == ["AAPL", "MSFT"]
    await ws.send_json({"op": "throttle", "ms": 0})
    await ws.send_json({"op": "subscribe", "symbols": ["AAPL", "MSFT"]})
    snap = await recv_type(ws, "snapshot")
    assert snap["quotes"]["AAPL"]["price"] == 123.0
    live.push(tick("MSFT", 2.0))
    assert (await recv_type(ws, "delta"))["quotes"]["MSFT"]["price"] == 2.0


class _Reporting(FakeFeed):
    """A feed that reports on itself, as the upstream adapters do."""

    def health(self) -> dict[str, Any]:
        return {"reconnects": 2, "gaps": 1, "stale": ["ETHUSDT"]}


class _BrokenReport(FakeFeed):
    def health(self) -> dict[str, Any]:
        raise RuntimeError("boom")


async def test_healthz_shows_what_a_feed_reports_of_itself(aiohttp_client: AiohttpClient) -> None:
    good, bad = _Reporting(name="up"), _BrokenReport(name="broken")
    client = await aiohttp_client(create_app([good, bad]))
    await until(lambda: all(r.feed is not None for r in client.app[RUNNERS]), what="started")
    body = await (await client.get("/healthz")).json()
    feeds = {f["name"]: f for f in body["feeds"]}
    assert feeds["up"]["detail"] == {"reconnects": 2, "gaps": 1, "stale": ["ETHUSDT"]}
    assert feeds["up"]["stale"] == ["ETHUSDT"]
    assert feeds["broken"]["detail_error"] == "RuntimeError: boom"
    assert feeds["broken"]["state"] == "running"

"""Feed faults: an adapter that raises, hangs or emits garbage is restarted or quarantined, its
garbage never reaches the hub, and the other feeds keep ticking to clients.

``FeedRunner`` is driven with scripted feeds on a real loop; the last test serves every kind of
broken feed beside a real ``SimFeed`` and watches a WebSocket client and ``/healthz``.
"""

from __future__ import annotations

import asyncio
import decimal
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings, strategies as st
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from tests.wsutil import recv, until
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.config import HubConfig
from ticker.core import validate
from ticker.core.events import Bar, Event, Listing, News, Tick
from ticker.core.protocol import encode, quote_fragments
from ticker.core.validate import MAX_SYMBOL_LEN, event_problem
from ticker.hub.broadcaster import Hub
from ticker.net.server import create_app
from ticker_feeds.sim import SimFeed

TS = 1.7e12


def fast(source: FeedSource, publish: Callable[[Event], None], **kw: Any) -> FeedRunner:
    """A runner with short backoff (5-10 ms) and cleanup (0.2 s)."""
    kw.setdefault("cleanup_timeout", 0.2)
    return FeedRunner(
        source, publish, initial_backoff=0.01, max_backoff=0.01, rng=random.Random(1), **kw
    )


class Raiser:
    """Yields ``good`` ticks, then raises."""

    name = "raiser"

    def __init__(self, good: int = 0) -> None:
        self.good = good
        self.closed = False

    async def events(self) -> AsyncIterator[Event]:
        for i in range(self.good):
            yield Tick("R", 1.0 + i, TS + i)
        raise RuntimeError("upstream exploded")

    async def aclose(self) -> None:
        self.closed = True


class Counting:
    """A FeedSource factory that counts how many instances it made."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make_one = make
        self.made: list[Any] = []

    def __call__(self) -> Any:
        self.made.append(self.make_one())
        return self.made[-1]


# Raising: restarted with backoff, quarantined when it keeps failing


async def test_a_feed_that_keeps_raising_is_quarantined_and_not_restarted() -> None:
    make = Counting(Raiser)
    runner = fast(FeedSource("raiser", make, quarantine_after=4, quarantine_window=30.0), print)
    runner.start()
    await until(lambda: runner.state == "quarantined", what="quarantined")
    h = runner.health()
    assert (h["state"], h["errors"], h["restarts"]) == ("quarantined", 4, 3)
    assert h["quarantine_reason"] == (
        "4 failures within 30s; last: RuntimeError: upstream exploded"
    )
    assert all(f.closed for f in make.made), "every failed instance was closed"
    await asyncio.sleep(0.1)
    assert len(make.made) == 4, "never restarted once quarantined"
    assert runner.task is not None and runner.task.done()
    await runner.stop()
    assert runner.health()["state"] == "quarantined", "stop() keeps the reason visible"


async def test_failures_spread_wider_than_the_window_never_quarantine() -> None:
    make = Counting(lambda: Raiser(good=1))
    runner = FeedRunner(
        FeedSource("spread", make, quarantine_after=3, quarantine_window=0.1),
        lambda ev: None,
        initial_backoff=0.12,
        max_backoff=0.12,  # failures >= 60 ms apart: never 3 within 0.1 s
        rng=random.Random(1),
    )
    runner.start()
    await until(lambda: runner.errors >= 8, within=5000 * MS, what="eight failures")
    assert runner.state != "quarantined" and runner.quarantine_reason is None
    await runner.stop()


async def test_a_feed_that_cannot_be_built_keeps_retrying() -> None:
    """A plug-in that fails to import is retried (installing it heals), never quarantined."""
    attempts = 0

    def make() -> Raiser:
        nonlocal attempts
        attempts += 1
        raise ImportError("No module named 'missing_dependency'")

    runner = fast(FeedSource("broken", make, quarantine_after=2, quarantine_window=60.0), print)
    runner.start()
    await until(lambda: attempts >= 6, what="six attempts")
    assert runner.state == "backoff" and runner.quarantine_reason is None
    await runner.stop()


# Hanging: the stall watchdog restarts it, even when it will not stop or close


class Hanger:
    """One tick, then silence; optionally deaf to cancellation or stuck in aclose()."""

    name = "hanger"

    def __init__(self, ignore_cancel: bool = False, stuck_close: bool = False) -> None:
        self.ignore_cancel = ignore_cancel
        self.stuck_close = stuck_close

    async def events(self) -> AsyncIterator[Event]:
        yield Tick("H", 1.0, TS)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if not self.ignore_cancel:
                raise
            await asyncio.sleep(0.5)  # a feed that takes its time (here: past the bound)
            raise

    async def aclose(self) -> None:
        if self.stuck_close:
            await asyncio.sleep(0.5)


async def test_a_hanging_feed_is_restarted_even_when_it_ignores_cancel_or_hangs_in_aclose() -> None:
    for kind in ({}, {"ignore_cancel": True}, {"stuck_close": True}):
        make = Counting(lambda kind=kind: Hanger(**kind))  # type: ignore[misc]
        published: list[Event] = []
        runner = fast(
            FeedSource("hanger", make, stall_timeout=0.1, quarantine_after=0), published.append
        )
        runner.start()
        made = make.made
        await until(lambda: len(made) >= 3, within=5000 * MS, what=f"restarts {kind}")  # noqa: B023
        h = runner.health()
        assert h["stalls"] >= 2 and "FeedStalled" in str(h["last_error"]), h
        assert h["abandoned"] >= 2 if kind else "abandoned" not in h, (kind, h)
        assert len(published) >= 2, "each instance's tick got through"
        await runner.stop()
    await asyncio.sleep(0.6)  # the abandoned tasks finish on their own, their errors retrieved


# Garbage: dropped, counted, never published; a feed of nothing else is a failure


def garbage() -> list[object]:
    """Everything a buggy adapter might yield instead of an event."""
    unset = object.__new__(Tick)  # its fields never set
    return [
        None,
        42,
        "AAPL 101.5",
        {"symbol": "AAPL", "price": 1.0},
        b"\x00\xff",
        Tick("G", math.nan, TS),
        Tick("G", math.inf, TS),
        Tick("G", -1.0, TS),
        Tick("G", 0.0, TS),
        Tick("G", "101.5", TS),  # type: ignore[arg-type]
        Tick("G", np.float64(101.5), TS),  # the JSON encoder refuses numpy scalars
        Tick("G", decimal.Decimal("1.5"), TS),  # type: ignore[arg-type]
        Tick("G", True, TS),
        Tick("G", 2**80, TS),
        Tick("G", 1.0, math.nan),
        Tick("G", 1.0, TS, bid=-1.0),
        Tick("G", 1.0, TS, volume=math.inf),
        Tick("G", 1.0, TS, size="3"),  # type: ignore[arg-type]
        Tick(None, 1.0, TS),  # type: ignore[arg-type]
        Tick("", 1.0, TS),
        Tick("   ", 1.0, TS),
        Tick("X" * (MAX_SYMBOL_LEN + 1), 1.0, TS),
        Tick("\ud800", 1.0, TS),  # a lone surrogate: not encodable
        unset,
        News("", TS, "src"),
        News("headline \udfff", TS, "src"),
        News("ok", TS, "src", ["AAPL"]),  # type: ignore[arg-type]
        News("ok", TS, "src", ("AAPL",), id=-3),
        News("ok", TS, "src", url=7),  # type: ignore[arg-type]
        Listing(["AAPL"]),  # type: ignore[arg-type]
        Listing(("AAPL", None)),  # type: ignore[arg-type]
    ]


class Mixed:
    """Valid ticks of GOOD interleaved with every kind of garbage, then silence."""

    name = "mixed"

    async def events(self) -> AsyncIterator[Any]:
        for i, junk in enumerate(garbage()):
            yield junk
            yield Tick("GOOD", 10.0 + i, TS + i)
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        pass


def test_every_kind_of_garbage_has_a_problem_and_good_events_none() -> None:
    for junk in garbage():
        assert event_problem(junk) is not None, junk
    for ok in (
        Tick("AAPL", 1.0, TS, size=0.0, bid=0.5, ask=1.5, volume=10, prev_close=0.9),
        Tick("BTC-USD", 65000, 0),
        News("h", TS, "s", ("AAPL",), "https://x", "sum"),
        News("Ünïcödé ✓", TS, ""),
        Listing(("AAPL", "MSFT")),
        Listing(()),
    ):
        assert event_problem(ok) is None, ok


async def test_garbage_is_dropped_and_counted_and_valid_events_flow() -> None:
    published: list[Event] = []
    runner = fast(FeedSource("mixed", Mixed), published.append)
    runner.start()
    n = len(garbage())
    await until(lambda: runner.invalid == n and runner.events == n, what="all seen")
    assert published == [Tick("GOOD", 10.0 + i, TS + i) for i in range(n)]
    h = runner.health()
    assert (h["state"], h["errors"], h["invalid"]) == ("running", 0, n)
    assert h["last_invalid"].startswith("listing symbols")
    await runner.stop()


async def test_a_feed_of_nothing_but_garbage_is_restarted_then_quarantined() -> None:
    class Junk:
        name = "junk"

        async def events(self) -> AsyncIterator[Any]:
            while True:
                yield {"price": "NaN"}
                await asyncio.sleep(0)

        async def aclose(self) -> None:
            pass

    published: list[Event] = []
    runner = fast(
        FeedSource("junk", Junk, quarantine_after=3, quarantine_window=60.0),
        published.append,
        max_invalid_run=50,
    )
    runner.start()
    await until(lambda: runner.state == "quarantined", what="quarantined")
    h = runner.health()
    assert h["errors"] == 3 and h["invalid"] == 150 and published == []
    assert "FeedGarbage: 50 invalid events in a row" in h["quarantine_reason"]
    await runner.stop()


# Strings that sometimes carry a lone surrogate (st.text() alone never does).
texts = st.text(max_size=5) | st.text(st.characters(categories=["Cs", "Lu", "Zs"]), max_size=3)
numbers = st.floats() | st.integers(-(2**70), 2**70) | st.floats().map(np.float64)

plausible = st.one_of(  # mostly valid: a field or two may be off
    st.builds(
        Tick,
        st.sampled_from(["AAPL", "BTC-USD", "ü"]) | texts,
        st.floats(1e-9, 1e12) | st.integers(1, 10**6) | numbers,
        st.floats(0, 2e12) | st.integers(0, 2**53),
        size=st.none() | st.floats(0, 1e9) | numbers,
        bid=st.none() | st.floats(1e-9, 1e12),
        volume=st.none() | st.integers(0, 10**9) | numbers,
    ),
    st.builds(
        News,
        st.sampled_from(["headline", "Ünïcödé ✓"]) | texts,
        st.floats(0, 2e12),
        st.sampled_from(["src", ""]) | texts,
        st.lists(st.sampled_from(["AAPL", "MSFT"]) | texts, max_size=3).map(tuple),
        url=st.none() | texts,
    ),
)

events_any = st.one_of(
    plausible,
    plausible,
    st.builds(
        Tick,
        texts | st.none() | st.integers(),
        numbers | st.text(max_size=3) | st.booleans(),
        numbers,
        st.none() | numbers,
        st.none() | numbers,
        st.none() | numbers,
        st.none() | numbers,
        st.none() | numbers,
    ),
    st.builds(
        News,
        texts | st.none(),
        numbers,
        texts | st.integers(),
        st.tuples(texts) | st.lists(texts) | st.none(),
        st.none() | texts | st.integers(),
        st.none() | texts,
        st.integers(-5, 5) | st.floats(),
    ),
    st.builds(Listing, st.tuples(texts, texts) | st.lists(texts) | texts),
    st.integers() | st.text() | st.none(),
)


accepted: list[str] = []


@settings(max_examples=300, deadline=None)
@given(st.lists(events_any, max_size=10))
def test_what_passes_validation_the_hub_can_take_and_encode(evs: list[object]) -> None:
    """``event_problem`` never raises, and every event it lets through can be published to a hub
    and encoded for clients (quotes, news, hello) without an error."""

    async def run() -> None:
        hub = Hub(HubConfig())
        for ev in evs:
            if event_problem(ev) is None:
                accepted.append(type(ev).__name__)
                hub.publish(ev)  # type: ignore[arg-type]
        orjson.dumps(hub.book.quotes)
        quote_fragments(hub.book.quotes)
        for _, _, payload, item in hub.news:
            assert orjson.loads(payload) == orjson.loads(encode(item))
        orjson.dumps(list(hub.book.known))
        await hub.stop()

    asyncio.run(run())


@settings(max_examples=500, deadline=None)
@given(plausible.filter(lambda ev: type(ev) is Tick))
def test_the_fast_tick_check_never_accepts_what_the_full_check_refuses(tick: Tick) -> None:
    if validate._tick_fast(tick):
        assert validate._tick_detail(tick) is None, tick


def test_the_validation_property_reaches_accepted_events_of_every_kind() -> None:
    """Non-vacuous: the property above published events of every kind (runs after it)."""
    test_what_passes_validation_the_hub_can_take_and_encode()
    assert {"Tick", "News", "Listing"} <= set(accepted), set(accepted)


# Through the server: every fault at once, beside a real SimFeed


async def test_broken_feeds_never_disturb_the_good_one(aiohttp_client: AiohttpClient) -> None:
    sim = SimFeed({"symbols": "AAPL+MSFT", "rate": "100", "seed": "3", "burst": "1"})
    sources = [
        FeedSource("sim", lambda: sim),
        FeedSource("raiser", Raiser, quarantine_after=3, quarantine_window=60.0),
        FeedSource("hanger", Hanger, stall_timeout=0.2),
        FeedSource("mixed", Mixed),
    ]
    client = await aiohttp_client(create_app(sources, HubConfig(throttle_ms=50)))
    ws = await client.ws_connect("/ws")
    assert (await recv(ws))["type"] == "hello"
    await ws.send_json({"op": "subscribe", "symbols": ["*"], "id": 1})
    loop = asyncio.get_running_loop()
    end = loop.time() + 2.0
    last = loop.time()
    worst = 0.0
    symbols: set[str] = set()
    while loop.time() < end:
        f = await recv(ws, within=2000 * MS)
        if f["type"] in ("snapshot", "delta"):
            for sym, q in f["quotes"].items():
                symbols.add(sym)
                if "price" in q:
                    p = q["price"]
                    assert isinstance(p, int | float) and math.isfinite(p) and p > 0, (sym, q)
            if f["type"] == "delta":
                worst = max(worst, loop.time() - last)
                last = loop.time()
    assert worst < 1.0, f"the good feed paused for {worst:.2f}s"
    assert {"AAPL", "MSFT"} <= symbols <= {"AAPL", "MSFT", "GOOD", "H"}, symbols
    feeds = {f["name"]: f for f in (await (await client.get("/healthz")).json())["feeds"]}
    assert feeds["sim"]["state"] == "running" and feeds["sim"]["errors"] == 0
    assert feeds["raiser"]["state"] == "quarantined"
    assert "RuntimeError: upstream exploded" in feeds["raiser"]["quarantine_reason"]
    assert feeds["hanger"]["stalls"] >= 1
    assert feeds["mixed"]["invalid"] == len(garbage()) and feeds["mixed"]["state"] == "running"
    # A quarantined feed makes the server degraded; ?strict=1 tells a load balancer (503).
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "degraded"
    assert "feed raiser quarantined" in body["problems"]
    assert (await client.get("/healthz", params={"strict": "1"})).status == 503
    await ws.close()


async def test_healthz_is_ok_while_every_feed_runs(aiohttp_client: AiohttpClient) -> None:
    sim = SimFeed({"symbols": "AAPL", "rate": "50", "seed": "3"})
    client = await aiohttp_client(create_app([FeedSource("sim", lambda: sim)]))
    resp = await client.get("/healthz", params={"strict": "1"})
    body = await resp.json()
    assert (resp.status, body["status"], body["problems"]) == (200, "ok", [])


# Event times implausibly far from the clock (a live feed's ts in seconds, or microseconds)


class Skewed:
    """Ticks stamped in seconds, in microseconds, and right; a bar of 1970; news of last year."""

    name = "skewed"

    async def events(self) -> AsyncIterator[Event]:
        now = time.time()
        yield Tick("S", 1.0, now)  # seconds
        yield Tick("U", 1.0, now * 1e6)  # microseconds
        yield Bar("B", 60_000.0, "1m", 1.0, 1.0, 1.0, 1.0)
        yield News("old but real", (now - 365 * 86_400) * 1e3, "rss")  # archives are news too
        yield Tick("OK", 1.0, now * 1e3)

    async def aclose(self) -> None:
        pass


async def test_live_event_times_far_from_the_clock_are_dropped_and_counted() -> None:
    published: list[Event] = []
    runner = fast(FeedSource("skewed", Skewed, max_time_skew_s=3600.0), published.append)
    runner.start()
    await until(lambda: runner.state == "finished", what="the feed's end")
    assert [type(e).__name__ for e in published] == ["News", "Tick"]
    assert published[-1].symbol == "OK"  # type: ignore[union-attr]
    h = runner.health()
    assert h["implausible_times"] == 3 and h["invalid"] == 3
    assert "days behind the clock; a time in seconds" in h["last_invalid"] or "bar B" in str(
        h["last_invalid"]
    )
    # Off (0), or a replay (its own clock): nothing is dropped.
    published.clear()
    off = fast(FeedSource("skewed", Skewed, max_time_skew_s=0.0), published.append)
    off.start()
    await until(lambda: off.state == "finished", what="the feed's end")
    assert len(published) == 5


def test_the_time_problem_names_the_likely_unit() -> None:
    now = 1_800_000_000.0
    assert "a time in seconds, not milliseconds?" in validate.time_problem(Tick("A", 1.0, now), now)
    assert "microseconds" in validate.time_problem(Tick("A", 1.0, now * 1e6), now)
    assert "days ahead of" in validate.time_problem(Tick("A", 1.0, (now + 30 * 86_400) * 1e3), now)

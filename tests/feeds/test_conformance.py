"""``check_feed`` over every built-in feed, and ``check_feed`` itself catching broken adapters."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ticker.core.events import (
    Controllable,
    Event,
    HasHealth,
    HasStallTimeout,
    HasStatus,
    Listing,
    News,
    Preloadable,
    Tick,
)
from ticker_feeds.base import Option, help_of, parse_options
from ticker_feeds.replay import ReplayFeed
from ticker_feeds.sim import SimFeed
from ticker_feeds.simnews import SimNewsFeed
from ticker_feeds.testing import FeedCheckError, check_event, check_feed

# Built-in feeds


async def test_sim_conforms() -> None:
    events = await check_feed(SimFeed, {"symbols": "AAPL+MSFT", "rate": "2000", "seed": "3"})
    assert events[0] == Listing(("AAPL", "MSFT"))
    assert {e.symbol for e in events if isinstance(e, Tick)} <= {"AAPL", "MSFT"}


async def test_simnews_conforms() -> None:
    events = await check_feed(SimNewsFeed, {"rate": "60000"}, min_events=5, max_events=5)
    assert all(isinstance(e, News) for e in events)


async def test_replay_conforms(tmp_path: Path, real_data: Path) -> None:
    path = real_data / "tick" / "coinbase_matches_2021-04-17.csv"
    opts = {"path": str(path), "speed": "max", "hold": "no"}
    events = await check_feed(ReplayFeed, opts, max_events=500)
    assert isinstance(events[0], Listing) and len(events) == 108


# check_feed catches what the core would trip over


_OPTS: dict[str, Option] = {"n": Option("how many", "3", int)}


class Good:
    """A feed that does everything right."""

    description: ClassVar[str] = "a good feed"
    options: ClassVar[dict[str, str]] = help_of(_OPTS)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.n = parse_options(_OPTS, options or {})["n"]
        self.name = "good"

    def make(self, i: int) -> Event:
        return Tick("G", 1.0 + i, 1.7e12 + i)

    async def events(self) -> AsyncIterator[Event]:
        for i in range(self.n):
            yield self.make(i)

    async def aclose(self) -> None:
        pass


async def test_a_good_feed_passes_and_returns_its_events() -> None:
    events = await check_feed(Good, {"n": "3"})
    assert events == [
        Tick("G", 1.0, 1.7e12),
        Tick("G", 2.0, 1.7e12 + 1),
        Tick("G", 3.0, 1.7e12 + 2),
    ]
    assert await check_feed(Good({"n": "1"})) == [Tick("G", 1.0, 1.7e12)]


class Seconds(Good):
    def make(self, i: int) -> Event:
        return Tick("G", 1.0, 1.7e9)


class ListSymbols(Good):
    def make(self, i: int) -> Event:
        return News("h", 1.7e12, "s", ["A"])  # type: ignore[arg-type]


class Crossed(Good):
    def make(self, i: int) -> Event:
        return Tick("G", 1.0, 1.7e12, bid=2.0, ask=1.0)


class NotAnEvent(Good):
    def make(self, i: int) -> Event:
        return {"symbol": "G"}  # type: ignore[return-value]


class Lenient(Good):
    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.n = 1
        self.name = "lenient"


class Silent(Good):
    async def events(self) -> AsyncIterator[Event]:
        await asyncio.Event().wait()
        yield self.make(0)


class Crashing(Good):
    async def events(self) -> AsyncIterator[Event]:
        yield self.make(0)
        raise RuntimeError("upstream went away")


class SyncClose(Good):
    def aclose(self) -> None:  # type: ignore[override]
        pass


class Undescribed:
    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        parse_options({}, options or {})
        self.name = "u"

    async def events(self) -> AsyncIterator[Event]:
        yield Tick("U", 1.0, 1.7e12)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("factory", "problem"),
    [
        (Seconds, "looks like seconds"),
        (ListSymbols, "symbols must be a tuple"),
        (Crossed, "bid 2.0 is above ask 1.0"),
        (NotAnEvent, "dict is not a Tick, News or Listing"),
        (Lenient, "an unknown option"),
        (Silent, "yielded 0 events"),
        (Crashing, "events() raised RuntimeError: upstream went away"),
        (SyncClose, "aclose() must be `async def`"),
        (Undescribed, "no `description`"),
    ],
)
async def test_check_feed_names_the_problem(factory: Any, problem: str) -> None:
    with pytest.raises(FeedCheckError) as err:
        await check_feed(factory, within=0.2)
    assert problem in str(err.value)


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (Tick("", 1.0, 1.7e12), "symbol must be"),
        (Tick("A", 0.0, 1.7e12), "price must be"),
        (Tick("A", float("nan"), 1.7e12), "price must be"),
        (Tick("A", 1.0, 1.7e18), "micro- or nanoseconds"),
        (Tick("A", 1.0, 1.7e12, size=-1.0), "size must be"),
        (News("", 1.7e12, "s"), "headline must be"),
        (News("h", 1.7e12, "s", id=5), "id must be left at 0"),
        (Listing(("A", "")), "Listing: symbols"),
    ],
)
def test_check_event(event: Event, problem: str) -> None:
    problems = check_event(event)
    assert problems and problem in problems[0]
    assert check_event(Tick("A", 1.0, 1.7e12, 1.0, 0.9, 1.1, 5.0, 1.0)) == []


# Capabilities (ticker.core.events): a feed that has one is held to its shape


class Capable(Good):
    """A feed with every optional capability, each of the declared shape."""

    stall_timeout: ClassVar[float] = 30.0

    def health(self) -> dict[str, Any]:
        return {"messages": 3, "stale": []}

    def status(self) -> str:
        return "up"

    def replay_status(self) -> dict[str, Any] | None:
        return None

    def replay_control(
        self, action: str, *, to: float | None = None, speed: float | None = None
    ) -> None:
        pass

    def load(self) -> Report:
        return Report()


class Report:
    events = 3

    def summary(self) -> str:
        return "3 events"


def test_the_capabilities_are_recognised_by_shape_and_declared_by_the_replay_feed() -> None:
    feed: object = Capable()
    for capability in (HasStallTimeout, HasHealth, HasStatus, Controllable, Preloadable):
        assert isinstance(feed, capability), capability
        assert not isinstance(Good(), capability), capability
    for capability in (Controllable, HasStatus, Preloadable):
        assert issubclass(ReplayFeed, capability), capability


async def test_a_feed_with_every_capability_conforms() -> None:
    assert len(await check_feed(Capable, {"n": "2"})) == 2


class WrongShapes(Good):
    stall_timeout = -1.0

    async def health(self) -> dict[str, Any]:  # awaited by no one: the core calls it plainly
        return {}

    def status(self) -> int:
        return 3

    def replay_status(self) -> list[Any]:
        return []

    def replay_control(self, action: str) -> None:
        pass

    def load(self) -> int:
        return 5


class HealthRaises(Good):
    def health(self) -> dict[str, Any]:
        raise RuntimeError("no link yet")


class StaleNotAList(Good):
    def health(self) -> dict[str, Any]:
        return {"stale": "AAPL"}


async def test_check_feed_holds_a_claimed_capability_to_its_shape() -> None:
    with pytest.raises(FeedCheckError) as err:
        await check_feed(WrongShapes, within=0.2)
    text = str(err.value)
    for problem in (
        "stall_timeout must be None or seconds",
        "health() must be a plain `def`",
        "status() must return a string, got 3",
        "replay_status() must return a dict or None, got []",
        "replay_control() has the wrong parameters",
        "load() must return a report with `events`",
    ):
        assert problem in text, (problem, text)
    for factory, problem in (
        (HealthRaises, "health() raised RuntimeError: no link yet"),
        (StaleNotAList, "health() must return a dict (its `stale`, if any, a list"),
    ):
        with pytest.raises(FeedCheckError, match=re.escape(problem)):
            await check_feed(factory, within=0.2)

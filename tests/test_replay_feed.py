"""The replay feed and its live control: through the feed itself and through a real server.

``ReplayFeed`` on small files written by the tests: the listing comes first, rows keep their order
and recorded ``ts``, ``start``/``end``/``symbols``/``loop`` select, pause/seek/speed/resume act on
the market clock; through ``create_app``: symbols are known before they tick, a finished replay
holds its state and ``/healthz`` says so, and ``GET/POST /api/replay`` keep their contract.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from ticker.bus.supervisor import FeedSource
from ticker.core.events import Event, Listing, Reset, Tick
from ticker.net.server import create_app
from ticker_feeds.replay import ReplayFeed

T0 = pd.Timestamp("2024-03-01T14:30:00Z").value / 1e6


def ticks_file(path: Path, rows: list[tuple[float, str, float]]) -> Path:
    """A tick CSV from (seconds after T0, symbol, price) rows."""
    pd.DataFrame(
        {
            "ts": [T0 + s * 1000.0 for s, _, _ in rows],
            "symbol": [sym for _, sym, _ in rows],
            "price": [p for _, _, p in rows],
        }
    ).to_csv(path, index=False)
    return path


def minute_file(tmp_path: Path) -> Path:
    """A and B ticking once a second for 100 s (prices 1..100 and 101..200)."""
    rows = [
        (float(i), "A" if i % 2 == 0 else "B", float(i + 1 + 100 * (i % 2))) for i in range(100)
    ]
    return ticks_file(tmp_path / "minute.csv", rows)


async def until(pred: Callable[[], Any], within: float = 3000 * MS, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def drain(feed: ReplayFeed) -> list[Event]:
    return [ev async for ev in feed.events()]


class Pump:
    """Runs a feed's iterator in a task, collecting what it yields."""

    def __init__(self, feed: ReplayFeed) -> None:
        self.feed = feed
        self.events: list[Event] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.feed.events():
            self.events.append(ev)

    def ticks(self) -> list[Tick]:
        return [e for e in self.events if isinstance(e, Tick)]

    async def close(self) -> None:
        await self.feed.aclose()
        await asyncio.wait_for(self.task, 2000 * MS)


# The feed


async def test_listing_first_then_rows_in_order_with_recorded_time(tmp_path: Path) -> None:
    path = ticks_file(tmp_path / "t.csv", [(0, "A", 1.0), (1, "C", 3.0), (3600, "B", 2.0)])
    feed = ReplayFeed({"path": str(path), "speed": "max", "hold": "no"})
    events = await drain(feed)
    assert events == [
        Listing(("A", "C", "B")),  # B is known an hour before its first tick
        Tick("A", 1.0, T0),
        Tick("C", 3.0, T0 + 1000.0),
        Tick("B", 2.0, T0 + 3_600_000.0),
    ]
    assert feed.status() == "finished"


async def test_start_end_symbols_select_and_loop_starts_over(tmp_path: Path) -> None:
    path = minute_file(tmp_path)
    start = pd.Timestamp(T0 + 10_000, unit="ms", tz="UTC").isoformat()
    opts = {
        "path": str(path),
        "speed": "max",
        "hold": "no",
        "start": start,
        "end": str(T0 + 20_000),
        "symbols": "a",
    }
    events = await drain(ReplayFeed(opts))
    assert events[0] == Listing(("A",))
    assert [(e.price, e.ts) for e in events[1:] if isinstance(e, Tick)] == [
        (float(i + 1), T0 + i * 1000.0) for i in range(10, 21, 2)
    ]
    looping = Pump(ReplayFeed({**opts, "loop": "yes"}))
    await until(lambda: len(looping.ticks()) >= 13, what="a second pass")
    await looping.close()
    prices = [t.price for t in looping.ticks()]
    assert prices[:13] == [11.0, 13.0, 15.0, 17.0, 19.0, 21.0] * 2 + [11.0]


async def test_relative_timing_is_kept_scaled_by_speed(tmp_path: Path) -> None:
    path = ticks_file(tmp_path / "t.csv", [(0, "A", 1.0), (200, "A", 2.0)])
    pump = Pump(ReplayFeed({"path": str(path), "speed": "1000"}))  # 200 s of market in 0.2 s
    await until(lambda: len(pump.ticks()) == 1, what="the first tick")
    first = time.monotonic()
    await until(lambda: len(pump.ticks()) == 2, what="the second tick")
    assert time.monotonic() - first >= 0.2 - 0.02, "not before its time"
    await until(lambda: pump.feed.status() == "finished", what="finished")
    await asyncio.sleep(50 * MS)
    assert not pump.task.done(), "a finished replay holds, controllable, until closed"
    await pump.close()


async def test_pause_seek_speed_resume(tmp_path: Path) -> None:
    feed = ReplayFeed({"path": str(minute_file(tmp_path)), "speed": "1"})
    pump = Pump(feed)
    await until(lambda: len(pump.ticks()) >= 1, what="the first tick")
    feed.replay_control("pause")
    status = feed.replay_status()
    assert status is not None and status["state"] == "paused"
    await asyncio.sleep(30 * MS)
    assert feed.replay_status() == status, "a paused clock stands still"

    seen = len(pump.events)
    feed.replay_control("seek", to=T0 + 50_500)
    # A reset to the day's start, then that day up to the new clock (all of it here), then
    # nothing while paused.
    await until(lambda: len(pump.events) >= seen + 52, what="the catch-up of the seek")
    await asyncio.sleep(30 * MS)
    after = pump.events[seen:]
    assert after[0] == Reset(("A", "B"), T0 - T0 % 86_400_000)
    assert [t.ts for t in after[1:] if isinstance(t, Tick)] == [T0 + i * 1000.0 for i in range(51)]
    assert len(after) == 52
    status = feed.replay_status()
    assert status is not None and (status["state"], status["clock"]) == ("paused", T0 + 50_500)

    feed.replay_control("speed", speed=math.inf)
    feed.replay_control("resume")
    await until(lambda: feed.status() == "finished", what="the end")
    rest = pump.events[seen + 52 :]
    assert [t.ts for t in rest if isinstance(t, Tick)] == [T0 + i * 1000.0 for i in range(51, 100)]
    status = feed.replay_status()
    assert status is not None and (status["speed"], status["clock"]) == (None, T0 + 99_000)

    feed.replay_control("speed", speed=2.0)
    feed.replay_control("seek", to=T0)  # a finished replay plays again from a seek
    assert feed.status() == "playing"
    await pump.close()


async def test_control_before_loading_and_bad_commands(tmp_path: Path) -> None:
    from ticker.replay.errors import ReplayError

    feed = ReplayFeed({"path": str(minute_file(tmp_path))})
    assert feed.replay_status() is None and feed.status() == "loading"
    with pytest.raises(ReplayError, match="loading"):
        feed.replay_control("pause")
    for bad in (
        {"path": str(tmp_path / "no.csv")},
        {"path": str(tmp_path), "speed": "0"},
        {"path": str(tmp_path), "start": "x"},
        {"speed": "1"},
        {"path": "p", "bogus": "1"},
    ):
        with pytest.raises(ValueError) as err:
            ReplayFeed(bad)
        assert "\n" not in str(err.value)


# Through the server


async def client_for(
    aiohttp_client: AiohttpClient, *feeds: ReplayFeed | FeedSource
) -> TestClient[Any, Any]:
    sources = [f if isinstance(f, FeedSource) else FeedSource.of(f) for f in feeds]
    return await aiohttp_client(create_app(sources))


async def get_json(client: TestClient[Any, Any], path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200
    return await resp.json()


async def post(client: TestClient[Any, Any], body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = await client.post("/api/replay", data=data)
    return resp.status, await resp.json()


async def test_symbols_are_known_before_they_tick(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    path = ticks_file(tmp_path / "t.csv", [(0, "A", 1.0), (3600, "B", 2.0)])
    client = await client_for(aiohttp_client, ReplayFeed({"path": str(path)}))

    async def quotes() -> Any:
        return (await get_json(client, "/api/quotes"))["quotes"]

    for _ in range(200):
        if "A" in await quotes():
            break
        await asyncio.sleep(0.01)
    symbols = [s["symbol"] for s in (await get_json(client, "/api/symbols"))["symbols"]]
    assert "B" in symbols and "B" not in await quotes()
    async with client.ws_connect("/ws") as ws:
        hello = orjson.loads((await ws.receive(timeout=2)).data)
        assert "B" in hello["symbols"]
        await ws.send_str('{"op":"subscribe","symbols":["B"],"id":1}')
        ack = orjson.loads((await ws.receive(timeout=2)).data)
        assert (ack["type"], ack["symbols"]) == ("ack", ["B"])


async def test_finished_replay_holds_its_state_and_healthz_shows_it(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    client = await client_for(
        aiohttp_client, ReplayFeed({"path": str(minute_file(tmp_path)), "speed": "max"})
    )
    for _ in range(300):
        health = await get_json(client, "/healthz")
        if health["feeds"][0]["state"] == "finished":
            break
        await asyncio.sleep(0.01)
    assert health["feeds"][0]["state"] == "finished"
    assert health["feeds"][0]["events"] == 101  # the listing and 100 ticks
    quotes = (await get_json(client, "/api/quotes"))["quotes"]
    assert (quotes["A"]["price"], quotes["B"]["price"]) == (99.0, 200.0)
    assert quotes["B"]["ts"] == T0 + 99_000, "the market's clock, not the wall clock"
    await asyncio.sleep(50 * MS)
    assert (await get_json(client, "/healthz"))["feeds"][0]["state"] == "finished"


async def test_api_replay_without_a_replay_feed(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(create_app([]))
    assert await get_json(client, "/api/replay") == {"feeds": []}
    status, body = await post(client, {"action": "pause"})
    assert status == 400 and body["error"] == "bad_request"


async def test_api_replay_contract(tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    path = str(minute_file(tmp_path))
    one = ReplayFeed({"path": path, "speed": "1"})
    two = ReplayFeed({"path": path, "speed": "1"})
    client = await client_for(aiohttp_client, one, FeedSource("replay#2", lambda: two))
    for _ in range(300):
        feeds = (await get_json(client, "/api/replay"))["feeds"]
        if len(feeds) == 2:
            break
        await asyncio.sleep(0.01)
    first = feeds[0]
    assert set(first) == {"name", "state", "speed", "clock", "start", "end"}
    assert (first["name"], first["state"], first["speed"]) == ("replay", "playing", 1.0)
    assert (first["start"], first["end"]) == (T0, T0 + 99_000)
    assert T0 <= first["clock"] <= T0 + 99_000

    status, body = await post(client, {"action": "pause", "feed": "replay#2"})
    assert status == 200
    states = {f["name"]: f["state"] for f in body["feeds"]}
    assert states == {"replay": "playing", "replay#2": "paused"}

    status, body = await post(client, {"action": "pause"})  # every replay feed
    assert {f["state"] for f in body["feeds"]} == {"paused"}
    status, body = await post(client, {"action": "seek", "to": T0 + 42_000})
    assert [f["clock"] for f in body["feeds"]] == [T0 + 42_000] * 2
    status, body = await post(client, {"action": "speed", "speed": 5})
    assert [f["speed"] for f in body["feeds"]] == [5.0, 5.0]
    again = await get_json(client, "/api/replay")
    assert [f["clock"] for f in again["feeds"]] == [T0 + 42_000] * 2, "paused stays put"
    status, body = await post(client, {"action": "speed", "speed": "max", "feed": "replay"})
    assert body["feeds"][0]["speed"] is None
    status, body = await post(client, {"action": "resume", "feed": "replay"})
    assert status == 200 and body["feeds"][0]["state"] in ("playing", "finished")
    for _ in range(300):
        if one.status() == "finished":
            break
        await asyncio.sleep(0.01)
    quotes = (await get_json(client, "/api/quotes"))["quotes"]
    assert quotes["B"]["price"] == 200.0

    for bad in (
        b"{not json",
        [1],
        {"action": "rewind"},
        {"action": "seek"},
        {"action": "seek", "to": "soon"},
        {"action": "speed", "speed": -1},
        {"action": "pause", "feed": "nope"},
    ):
        status, body = await post(client, bad)
        assert status == 400 and body["error"] == "bad_request" and body["message"], bad

"""Real-server tests: create_app([FakeFeed]) on an ephemeral port, aiohttp's WebSocket client.

Every op, frame type and error code of docs/protocol.md, the HTTP API, static serving and bad input.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import plotly
import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS, ROOT
from tests.wsutil import (
    Frame,
    Server,
    apply_frame,
    now_ms,
    recv,
    recv_type,
    recv_until,
    tick,
    until,
)
from ticker.config import HubConfig
from ticker.core.book import compact
from ticker.core.events import HasNames, Listing, News
from ticker.net.server import create_app, plotly_js_path
from ticker.net.static import module_graph
from ticker_feeds.sim import SimFeed
from ticker_feeds.testing import FakeFeed

SYMS = ("AAPL", "MSFT", "GOOGL")


def opening() -> list[Any]:
    """Three known symbols; AAPL and MSFT have traded, GOOGL not yet."""
    return [
        Listing(SYMS),
        tick("AAPL", 100.0, bid=99.9, ask=100.1, size=10, prev_close=98.0),
        tick("MSFT", 200.0, bid=199.8, ask=200.2, size=5),
    ]


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await Server.start(aiohttp_client, opening())


def news(headline: str, *symbols: str, **kw: Any) -> News:
    return News(headline, now_ms(), "test", symbols, **kw)


async def pong_after(ws: ClientWebSocketResponse, seen: list[Frame]) -> None:
    """Round-trip a ping: every frame the server sent before the pong ends up in ``seen``."""
    await ws.send_json({"op": "ping", "t": 42.5})
    await recv_until(ws, lambda f: f == {"type": "pong", "t": 42.5}, seen=seen)
    seen.pop()


# hello, subscribe, snapshot


async def test_hello_fields(srv: Server) -> None:
    await srv.push(news("first", "AAPL"))
    _ws, hello = await srv.connect()
    assert hello["v"] == 1
    assert hello["server"].startswith("ticker/")
    assert isinstance(hello["session"], str) and hello["session"]
    assert hello["throttle_ms"] == 100
    assert hello["symbols"] == list(SYMS)
    assert hello["news_last_id"] == srv.hub.news_last_id > 0
    _ws2, hello2 = await srv.connect()
    assert hello2["session"] != hello["session"]


async def test_subscribe_ack_then_snapshot_with_full_quotes(srv: Server) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
    assert await recv(ws) == {"type": "ack", "id": 1, "symbols": ["AAPL"]}
    snap = await recv(ws)
    assert snap["type"] == "snapshot"
    assert snap["seq"] == 1
    q = snap["quotes"]["AAPL"]
    assert set(snap["quotes"]) == {"AAPL"}
    assert q["symbol"] == "AAPL" and q["price"] == 100.0 and q["bid"] == 99.9
    assert q["ask"] == 100.1 and q["volume"] == 10 and q["prev_close"] == 98.0
    assert q["change"] == pytest.approx(2.0) and q["change_pct"] == pytest.approx(2.0408, abs=1e-4)
    assert isinstance(q["ts"], float)
    # Without an id there is no ack: the snapshot comes first.
    await ws.send_json({"op": "subscribe", "symbols": ["MSFT"]})
    snap2 = await recv(ws)
    assert snap2["type"] == "snapshot" and snap2["seq"] == 2
    assert set(snap2["quotes"]) == {"MSFT"}, "a snapshot holds the newly subscribed symbols"


async def test_subscribe_unknown_symbols(srv: Server) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "subscribe", "symbols": ["NOPE", "aapl", "ZZZZ"], "id": "x"})
    seen: list[Frame] = []
    await pong_after(ws, seen)
    assert seen[0] == {"type": "ack", "id": "x", "symbols": ["AAPL"]}
    errors = [f for f in seen if f["type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["code"] == "unknown_symbol"
    assert errors[0]["symbols"] == ["NOPE", "ZZZZ"]
    assert errors[0]["id"] == "x"
    snaps = [f for f in seen if f["type"] == "snapshot"]
    assert len(snaps) == 1 and set(snaps[0]["quotes"]) == {"AAPL"}
    # The known one is really subscribed.
    await srv.push(tick("AAPL", 101.0))
    d = await recv_type(ws, "delta")
    assert d["quotes"]["AAPL"]["price"] == 101.0

    # Only unknown symbols: the ack lists none, no snapshot.
    await ws.send_json({"op": "subscribe", "symbols": ["NOPE"], "id": 2})
    seen = []
    await pong_after(ws, seen)
    assert seen[0] == {"type": "ack", "id": 2, "symbols": []}
    assert [f["type"] for f in seen[1:]] == ["error"]


async def test_declared_symbol_is_known_before_its_first_tick(srv: Server) -> None:
    ws, snap = await srv.subscribed(["GOOGL"], throttle_ms=0)
    assert snap["quotes"] == {}, "no quote yet"
    await srv.push(tick("GOOGL", 170.0, bid=169.9, ask=170.1))
    d = await recv_type(ws, "delta")
    q = d["quotes"]["GOOGL"]
    assert q["symbol"] == "GOOGL" and q["price"] == 170.0 and q["bid"] == 169.9
    assert q["open"] == q["high"] == q["low"] == 170.0


# deltas, seq, conflation


async def test_delta_has_changed_fields_only_and_seq_increments(srv: Server) -> None:
    ws, snap = await srv.subscribed(["AAPL", "MSFT"], throttle_ms=0)
    assert snap["seq"] == 1
    await srv.push(tick("AAPL", 100.5, bid=99.9, ask=100.1))
    d1 = await recv(ws)
    assert d1["type"] == "delta" and d1["seq"] == 2
    assert isinstance(d1["t"], float)
    # price, high (a new session high), volume unchanged (no size), change recomputed.
    a = d1["quotes"]["AAPL"]
    assert set(a) == {"price", "ts", "high", "change", "change_pct"}
    assert a["price"] == 100.5 and a["high"] == 100.5
    assert set(d1["quotes"]) == {"AAPL"}, "MSFT did not tick"

    await srv.push(tick("AAPL", 100.5, bid=99.9, ask=100.2))
    d2 = await recv(ws)
    assert d2["seq"] == 3
    assert set(d2["quotes"]["AAPL"]) == {"ask", "ts"}
    assert d2["quotes"]["AAPL"]["ask"] == 100.2

    await srv.push(tick("MSFT", 199.0, size=1))
    d3 = await recv(ws)
    assert d3["seq"] == 4
    assert d3["quotes"] == {
        "MSFT": {
            "price": 199.0,
            "ts": d3["quotes"]["MSFT"]["ts"],
            "low": 199.0,
            "size": 1,
            "volume": 6,
        }
    }


async def test_conflated_window_carries_high_low_count(srv: Server) -> None:
    ws, _ = await srv.subscribed(["AAPL", "MSFT"], throttle_ms=300)
    # Four AAPL trades and one MSFT trade, all inside one window.
    await srv.push(
        tick("AAPL", 101.0),
        tick("AAPL", 105.0),
        tick("AAPL", 99.0),
        tick("MSFT", 201.0),
        tick("AAPL", 102.0),
    )
    d = await recv_type(ws, "delta")
    a = d["quotes"]["AAPL"]
    assert a["price"] == 102.0
    assert (a["w_high"], a["w_low"], a["w_count"]) == (105.0, 99.0, 4)
    assert a["high"] == 105.0 and a["low"] == 99.0, "session extremes seen within the window"
    m = d["quotes"]["MSFT"]
    assert m["price"] == 201.0
    assert not {"w_high", "w_low", "w_count"} & set(m), "one trade: nothing conflated"


async def test_deltas_are_conflated_to_latest_value_per_window(srv: Server) -> None:
    window = 200
    ws, _ = await srv.subscribed(["AAPL"], throttle_ms=window)
    deltas: list[Frame] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.0
    price = 100.0
    pushed = 0
    while loop.time() < end:
        price += 0.01
        await srv.push(tick("AAPL", round(price, 2)))
        pushed += 1
        await asyncio.sleep(0.005)
    last = round(price, 2)
    await recv_until(ws, lambda f: f["quotes"]["AAPL"].get("price") == last, seen=deltas)
    assert all(f["type"] == "delta" for f in deltas)
    assert len(deltas) < pushed / 3, "ticks were conflated, not forwarded one by one"
    assert [f["seq"] for f in deltas] == list(range(2, 2 + len(deltas)))
    # No connection gets two frames in one window (server send times, small clock slack).
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(deltas)]
    assert gaps and min(gaps) >= window * 0.9, gaps
    assert sum(f["quotes"]["AAPL"].get("w_count", 1) for f in deltas) <= pushed


# "*" and unsubscribe


async def test_star_subscribe_includes_later_symbols(srv: Server) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "throttle", "ms": 0})
    await ws.send_json({"op": "subscribe", "symbols": ["*"], "id": 1})
    assert await recv(ws) == {"type": "ack", "id": 1, "symbols": ["*"]}
    snap = await recv(ws)
    assert set(snap["quotes"]) == {"AAPL", "MSFT"}, "every symbol with a quote"
    await srv.push(tick("NEWCO", 12.5, bid=12.4, ask=12.6, size=3))
    d = await recv_type(ws, "delta")
    assert d["quotes"]["NEWCO"] == {
        "symbol": "NEWCO",
        "price": 12.5,
        "ts": d["quotes"]["NEWCO"]["ts"],
        "open": 12.5,
        "high": 12.5,
        "low": 12.5,
        "bid": 12.4,
        "ask": 12.6,
        "size": 3,
        "volume": 3,
    }
    await srv.push(tick("NEWCO", 12.7))
    d = await recv_type(ws, "delta")
    assert set(d["quotes"]["NEWCO"]) == {"price", "ts", "high"}, "then deltas as usual"
    # A resync now covers the new symbol too.
    await ws.send_json({"op": "resync"})
    snap = await recv_type(ws, "snapshot")
    assert set(snap["quotes"]) == {"AAPL", "MSFT", "NEWCO"}


async def test_unsubscribe_stops_deltas(srv: Server) -> None:
    ws, _ = await srv.subscribed(["AAPL", "MSFT"], throttle_ms=0)
    await ws.send_json({"op": "unsubscribe", "symbols": ["MSFT"], "id": 9})
    assert await recv(ws) == {"type": "ack", "id": 9, "symbols": ["MSFT"]}
    await srv.push(tick("MSFT", 201.0))
    await srv.push(tick("AAPL", 101.0))
    seen: list[Frame] = []
    await recv_until(ws, lambda f: "AAPL" in f.get("quotes", {}), seen=seen)
    assert all("MSFT" not in f.get("quotes", {}) for f in seen), seen

    # Unsubscribing everything: not even AAPL any more (MSFT ticks reach another client).
    other, _ = await srv.subscribed(["MSFT"], throttle_ms=0)
    await ws.send_json({"op": "unsubscribe", "symbols": ["*"], "id": 10})
    assert await recv(ws) == {"type": "ack", "id": 10, "symbols": ["*"]}
    await srv.push(tick("AAPL", 102.0))
    await srv.push(tick("MSFT", 202.0))
    await recv_type(other, "delta")
    seen = []
    await pong_after(ws, seen)
    assert seen == []


async def test_unsubscribe_excludes_symbol_from_star(srv: Server) -> None:
    ws, _ = await srv.subscribed(["*"], throttle_ms=0)
    await ws.send_json({"op": "unsubscribe", "symbols": ["MSFT"], "id": 1})
    assert await recv(ws) == {"type": "ack", "id": 1, "symbols": ["MSFT"]}
    await srv.push(tick("MSFT", 201.0), tick("AAPL", 101.0))
    await srv.push(tick("MSFT", 202.0), tick("NEWCO", 5.0))
    seen: list[Frame] = []
    await recv_until(ws, lambda f: "NEWCO" in f.get("quotes", {}), seen=seen)
    assert any("AAPL" in f["quotes"] for f in seen)
    assert all("MSFT" not in f.get("quotes", {}) for f in seen), seen
    await ws.send_json({"op": "resync"})
    snap = await recv_type(ws, "snapshot")
    assert set(snap["quotes"]) == {"AAPL", "NEWCO"}
    # Subscribing it again brings it back.
    await ws.send_json({"op": "subscribe", "symbols": ["MSFT"]})
    snap = await recv_type(ws, "snapshot")
    assert snap["quotes"]["MSFT"]["price"] == 202.0
    await srv.push(tick("MSFT", 203.0))
    assert (await recv_type(ws, "delta"))["quotes"]["MSFT"]["price"] == 203.0


async def test_changing_subscription_keeps_pending_ticks(srv: Server) -> None:
    """A client alone in its window changes its subscription while a tick is pending there: the
    tick still reaches it (the window is not dropped and made afresh from the book)."""
    ws, _ = await srv.subscribed(["AAPL"], throttle_ms=400)
    await srv.push(tick("AAPL", 101.0))
    assert (await recv_type(ws, "delta"))["quotes"]["AAPL"]["price"] == 101.0
    await srv.push(tick("AAPL", 102.0, size=7))  # pending until the window's next flush
    await ws.send_json({"op": "subscribe", "symbols": ["MSFT"], "id": 1})
    assert (await recv(ws))["type"] == "ack"
    assert set((await recv(ws))["quotes"]) == {"MSFT"}
    await ws.send_json({"op": "unsubscribe", "symbols": ["MSFT"], "id": 2})
    assert (await recv(ws))["type"] == "ack"
    d = await recv_type(ws, "delta")
    assert d["quotes"]["AAPL"]["price"] == 102.0
    assert d["quotes"]["AAPL"]["volume"] == 17


# throttle, resync, ping


@pytest.mark.parametrize(
    ("asked", "effective"),
    [(0, 0), (1, 10), (123, 120), (250, 250), (1234, 1200), (10_000, 10_000), (1e9, 10_000)],
)
async def test_throttle_ack_gives_effective_window(
    srv: Server, asked: float, effective: int
) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "throttle", "ms": asked, "id": "t"})
    assert await recv(ws) == {"type": "ack", "id": "t", "ms": effective}
    seen: list[Frame] = []
    await pong_after(ws, seen)
    assert seen == [], "nothing subscribed: no snapshot after a window change"


async def test_throttle_is_clamped_to_configured_max(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(
        aiohttp_client, opening(), HubConfig(throttle_ms=50, max_throttle_ms=500)
    )
    ws, hello = await srv.connect()
    assert hello["throttle_ms"] == 50
    await ws.send_json({"op": "throttle", "ms": 2000, "id": 1})
    assert await recv(ws) == {"type": "ack", "id": 1, "ms": 500}


async def test_throttle_change_sends_fresh_snapshot(srv: Server) -> None:
    ws, snap = await srv.subscribed(["AAPL"])
    assert snap["seq"] == 1
    await ws.send_json({"op": "throttle", "ms": 0, "id": 1})
    assert await recv(ws) == {"type": "ack", "id": 1, "ms": 0}
    snap = await recv(ws)
    assert snap["type"] == "snapshot" and snap["seq"] == 2
    assert snap["quotes"]["AAPL"]["price"] == 100.0
    # The same window again is no change: no snapshot.
    await ws.send_json({"op": "throttle", "ms": 0, "id": 2})
    assert await recv(ws) == {"type": "ack", "id": 2, "ms": 0}
    await srv.push(tick("AAPL", 100.25))
    d = await recv(ws)
    assert d["type"] == "delta" and d["seq"] == 3


async def test_throttle_zero_sends_every_update(aiohttp_client: AiohttpClient) -> None:
    # A generous flow-control hold: a test runner pausing between reads is not a slow client.
    srv = await Server.start(aiohttp_client, opening(), HubConfig(flow_hold_ms=1000))
    ws, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    prices = [100.0 + i / 100 for i in range(1, 21)]
    got: list[float] = []
    for p in prices:  # a client that keeps up gets every update, each in its own delta
        await srv.push(tick("AAPL", p))
        d = await recv(ws)
        assert d["type"] == "delta"
        assert "w_count" not in d["quotes"]["AAPL"]
        got.append(d["quotes"]["AAPL"]["price"])
    assert got == prices


async def test_resync_sends_snapshot_of_current_state(srv: Server) -> None:
    ws, _ = await srv.subscribed(["AAPL", "MSFT"], throttle_ms=0)
    await srv.push(tick("AAPL", 105.0, size=5))
    d = await recv(ws)
    assert d["seq"] == 2
    await ws.send_json({"op": "resync", "id": "r"})
    assert await recv(ws) == {"type": "ack", "id": "r"}
    snap = await recv(ws)
    assert snap["type"] == "snapshot" and snap["seq"] == 3
    assert set(snap["quotes"]) == {"AAPL", "MSFT"}
    assert snap["quotes"]["AAPL"]["price"] == 105.0
    assert snap["quotes"]["AAPL"]["volume"] == 15
    # Without an id: just the snapshot.
    await ws.send_json({"op": "resync"})
    snap = await recv(ws)
    assert snap["type"] == "snapshot" and snap["seq"] == 4


async def test_ping_pong_echoes_t_without_ack(srv: Server) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "ping", "t": 1732640000000.5, "id": 77})
    assert await recv(ws) == {"type": "pong", "t": 1732640000000.5}
    await ws.send_json({"op": "ping", "t": 3})
    assert await recv(ws) == {"type": "pong", "t": 3}, "no ack between the pongs"
    await ws.send_json({"op": "ping"})
    assert await recv(ws) == {"type": "pong"}


# news


async def test_news_topics_filter_and_never_conflated(srv: Server) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "news", "topics": ["AAPL"], "id": 1})
    ack = await recv(ws)
    assert ack["type"] == "ack" and ack["id"] == 1 and ack["topics"] == ["AAPL"]
    assert "oldest_id" in ack
    items = [
        news(f"n{i}", "AAPL" if i % 3 else "MSFT", url="https://x.test/" + str(i))
        for i in range(60)
    ]
    items.append(news("both", "MSFT", "AAPL", summary="s"))
    await srv.push(*items)
    want = [n.headline for n in items if "AAPL" in n.symbols]
    got: list[Frame] = []
    while len(got) < len(want):
        got.append(await recv_type(ws, "news"))
    assert [g["headline"] for g in got] == want
    ids = [g["id"] for g in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert got[0]["source"] == "test" and got[0]["url"] == "https://x.test/1"
    assert got[-1]["symbols"] == ["MSFT", "AAPL"] and got[-1]["summary"] == "s"
    assert isinstance(got[0]["ts"], float)


async def test_news_since_replays_in_order_then_live(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(aiohttp_client, opening(), HubConfig(news_retain=5))
    await srv.push(*(news(f"old{i}", "AAPL" if i % 2 else "MSFT") for i in range(8)))
    ids = [n[0] for n in srv.hub.news]
    assert len(ids) == 5, "only the last 5 are retained"
    ws, hello = await srv.connect()
    assert hello["news_last_id"] == ids[-1]
    since = ids[1]
    await ws.send_json({"op": "news", "topics": ["*"], "since": since, "id": "n"})
    ack = await recv(ws)
    assert ack["type"] == "ack" and ack["oldest_id"] == ids[0]
    assert ack["topics"] == ["*"]
    replay = [await recv(ws) for _ in range(3)]
    assert [r["type"] for r in replay] == ["news"] * 3
    assert [r["id"] for r in replay] == ids[2:]
    assert [r["headline"] for r in replay] == ["old5", "old6", "old7"]
    await srv.push(news("live", "GOOGL"))
    live = await recv(ws)
    assert live["type"] == "news" and live["headline"] == "live" and live["id"] > ids[-1]

    # A topic-filtered replay skips other topics but keeps the order.
    ws2, _ = await srv.connect()
    await ws2.send_json({"op": "news", "topics": ["MSFT"], "since": 0})
    seen: list[Frame] = []
    await pong_after(ws2, seen)
    assert [f["headline"] for f in seen] == ["old4", "old6"]


async def test_news_empty_topics_stops_news(srv: Server) -> None:
    ws, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    await ws.send_json({"op": "news", "topics": ["*"], "id": 1})
    assert (await recv(ws))["type"] == "ack"
    await srv.push(news("one", "AAPL"))
    assert (await recv(ws))["headline"] == "one"
    await ws.send_json({"op": "news", "topics": [], "id": 3})
    ack = await recv(ws)
    assert ack["type"] == "ack" and ack["topics"] == []
    # News is written at once, a delta only at the flush after it: the delta is the sentinel.
    await srv.push(news("two", "AAPL"), tick("AAPL", 101.0))
    d = await recv(ws)
    assert d["type"] == "delta", d
    # `news` replaces the topics.
    await ws.send_json({"op": "news", "topics": ["MSFT"]})
    await ws.send_json({"op": "news", "topics": ["GOOGL"], "id": 4})
    assert (await recv(ws))["type"] == "ack"
    await srv.push(news("three", "MSFT"), news("four", "GOOGL"))
    assert (await recv(ws))["headline"] == "four"


# bad input


BAD_TEXT: list[tuple[str, str]] = [
    ('{"op": "subscribe", "symbols": ["AAPL"]', "bad_json"),
    ("not json at all", "bad_json"),
    ("", "bad_json"),
    ("[1, 2, 3]", "bad_request"),
    ('"subscribe"', "bad_request"),
    ("{}", "bad_request"),
    ('{"symbols": ["AAPL"]}', "bad_request"),
    ('{"op": 5}', "bad_request"),
    ('{"op": null}', "bad_request"),
    ('{"op": "subscribe", "symbols": "AAPL"}', "bad_request"),
    ('{"op": "subscribe"}', "bad_request"),
    ('{"op": "subscribe", "symbols": [1, 2]}', "bad_request"),
    ('{"op": "unsubscribe", "symbols": {"AAPL": 1}}', "bad_request"),
    ('{"op": "news", "topics": "AAPL"}', "bad_request"),
    ('{"op": "news", "topics": ["*"], "since": "3"}', "bad_request"),
    ('{"op": "news", "topics": ["*"], "since": -1}', "bad_request"),
    ('{"op": "throttle", "ms": -1}', "bad_request"),
    ('{"op": "throttle", "ms": "100"}', "bad_request"),
    ('{"op": "throttle"}', "bad_request"),
    ('{"op": "ping", "t": "now"}', "bad_request"),
    ('{"op": "subscribe", "symbols": ["AAPL"], "id": [1]}', "bad_request"),
    ('{"op": "launch"}', "unknown_op"),
    ('{"op": "SUBSCRIBE", "symbols": ["AAPL"]}', "unknown_op"),
]


async def assert_still_serving(
    srv: Server, ws: ClientWebSocketResponse, other: ClientWebSocketResponse
) -> None:
    """``ws`` is still usable and ``other`` still receives deltas."""
    await ws.send_json({"op": "ping", "t": 1})
    assert await recv(ws) == {"type": "pong", "t": 1}
    await ws.send_json({"op": "subscribe", "symbols": ["MSFT"], "id": "after"})
    assert await recv(ws) == {"type": "ack", "id": "after", "symbols": ["MSFT"]}
    assert (await recv(ws))["type"] == "snapshot"
    price = srv.hub.book.quotes["AAPL"]["price"] + 1
    await srv.push(tick("AAPL", price))
    d = await recv_type(other, "delta")
    assert d["quotes"]["AAPL"]["price"] == price


@pytest.mark.parametrize(("text", "code"), BAD_TEXT)
async def test_bad_text_frames_get_error_and_connection_stays(
    srv: Server, text: str, code: str
) -> None:
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    ws, _ = await srv.connect()
    await ws.send_str(text)
    err = await recv(ws)
    assert err["type"] == "error" and err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    await assert_still_serving(srv, ws, other)


async def test_error_echoes_request_id(srv: Server) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "subscribe", "symbols": "AAPL", "id": 7})
    assert (await recv(ws))["id"] == 7
    await ws.send_json({"op": "nope", "id": "q"})
    err = await recv(ws)
    assert (err["code"], err["id"]) == ("unknown_op", "q")


async def test_invalid_utf8_is_bad_json(srv: Server) -> None:
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    ws, _ = await srv.connect()
    await ws.send_frame(b'{"op": "ping", "t": "\xff\xfe"}', WSMsgType.TEXT)
    err = await recv(ws)
    assert (err["type"], err["code"]) == ("error", "bad_json")
    await assert_still_serving(srv, ws, other)


async def test_binary_frame_is_bad_request(srv: Server) -> None:
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    ws, _ = await srv.connect()
    await ws.send_bytes(b'{"op": "ping", "t": 1}')
    err = await recv(ws)
    assert (err["type"], err["code"]) == ("error", "bad_request")
    await assert_still_serving(srv, ws, other)


async def test_too_many_symbols(srv: Server) -> None:
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    ws, _ = await srv.connect()
    many = [f"X{i:04d}" for i in range(1001)]
    await ws.send_json({"op": "subscribe", "symbols": many, "id": 1})
    err = await recv(ws)
    assert (err["type"], err["code"], err["id"]) == ("error", "too_many_symbols", 1)
    await ws.send_json({"op": "news", "topics": many})
    assert (await recv(ws))["code"] == "too_many_symbols"
    # At the limit it is served (here: all unknown).
    await ws.send_json({"op": "subscribe", "symbols": many[:1000], "id": 2})
    assert await recv(ws) == {"type": "ack", "id": 2, "symbols": []}
    err = await recv(ws)
    assert err["code"] == "unknown_symbol" and len(err["symbols"]) == 1000
    await assert_still_serving(srv, ws, other)


async def test_oversize_frame_closes_1009(srv: Server) -> None:
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    ws, _ = await srv.connect()
    # Exactly at the limit is still a message (here: a ping padded with spaces).
    body = b'{"op":"ping","t":5}'
    await ws.send_str((body + b" " * (64 * 1024 - len(body))).decode())
    assert await recv(ws) == {"type": "pong", "t": 5}
    await ws.send_str('{"op":"ping","pad":"' + "x" * (64 * 1024) + '"}')
    msg = await ws.receive(timeout=2000 * MS)
    assert msg.type is WSMsgType.CLOSE, msg
    assert msg.data == 1009
    await until(lambda: srv.hub.health()["connections"] == 1, what="connection forgotten")
    await srv.push(tick("AAPL", 111.0))
    assert (await recv_type(other, "delta"))["quotes"]["AAPL"]["price"] == 111.0


async def test_control_flood_is_rate_limited_then_closed_1008(srv: Server) -> None:
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    ws, _ = await srv.connect()
    n = 400
    for i in range(n):
        await ws.send_str(f'{{"op":"ping","t":{i}}}')
    pongs = 0
    limited = 0
    while True:
        msg = await ws.receive(timeout=3000 * MS)
        if msg.type is not WSMsgType.TEXT:
            break
        f = orjson.loads(msg.data)
        if f["type"] == "pong":
            pongs += 1
        else:
            assert f["type"] == "error" and f["code"] == "rate_limited", f
            limited += 1
    assert msg.type is WSMsgType.CLOSE and msg.data == 1008, msg
    assert 60 <= pongs < n / 2, "the burst is served, then only the refill trickle"
    assert limited >= 1
    assert pongs + limited < n, "the connection was closed before the end of the flood"
    # The same address keeps being served: the bucket is per connection.
    await other.send_json({"op": "ping", "t": 9})
    assert await recv_type(other, "pong") == {"type": "pong", "t": 9}
    await srv.push(tick("AAPL", 120.0))
    assert (await recv_type(other, "delta"))["quotes"]["AAPL"]["price"] == 120.0
    fresh, _ = await srv.connect()
    await fresh.send_json({"op": "ping", "t": 10})
    assert await recv(fresh) == {"type": "pong", "t": 10}


# HTTP


async def test_healthz(srv: Server) -> None:
    ws1, _ = await srv.connect()
    _ws2, _ = await srv.connect()
    r = await srv.client.get("/healthz")
    assert r.status == 200 and r.content_type == "application/json"
    h = await r.json()
    assert h["status"] == "ok"
    assert h["connections"] == 2
    assert h["uptime_s"] >= 0
    assert [(f["name"], f["state"]) for f in h["feeds"]] == [("fake", "running")]
    assert h["feeds"][0]["events"] == 3
    await ws1.close()
    await until(lambda: srv.hub.health()["connections"] == 1, what="disconnect")
    h2 = await (await srv.client.get("/healthz")).json()
    assert h2["connections"] == 1
    assert h2["uptime_s"] >= h["uptime_s"]


async def test_api_symbols_and_quotes(srv: Server) -> None:
    r = await srv.client.get("/api/symbols")
    assert r.status == 200
    assert await r.json() == {
        "symbols": [
            {"symbol": "AAPL", "price": 100.0, "finest": "1s"},
            {"symbol": "MSFT", "price": 200.0, "finest": "1s"},
            {"symbol": "GOOGL", "price": None, "finest": None},
        ]
    }
    await srv.push(tick("AAPL", 101.0))
    quotes = (await (await srv.client.get("/api/quotes")).json())["quotes"]
    assert set(quotes) == {"AAPL", "MSFT"}
    assert quotes["AAPL"]["price"] == 101.0 and quotes["AAPL"]["symbol"] == "AAPL"
    one = (await (await srv.client.get("/api/quotes?symbols=MSFT,NOPE")).json())["quotes"]
    assert list(one) == ["MSFT"]


async def test_api_news(srv: Server) -> None:
    await srv.push(*(news(f"h{i}", "AAPL") for i in range(5)))
    r = await srv.client.get("/api/news")
    assert r.status == 200
    body = await r.json()
    ids = [i["id"] for i in body["items"]]
    assert [i["headline"] for i in body["items"]] == [f"h{i}" for i in range(5)]
    assert body["oldest_id"] == ids[0] and body["last_id"] == ids[-1]
    after = await (await srv.client.get(f"/api/news?since={ids[1]}")).json()
    assert [i["id"] for i in after["items"]] == ids[2:]
    limited = await (await srv.client.get(f"/api/news?since={ids[0]}&limit=2")).json()
    assert [i["id"] for i in limited["items"]] == ids[1:3]
    latest = await (await srv.client.get("/api/news?limit=2")).json()
    assert [i["id"] for i in latest["items"]] == ids[3:]
    empty = await (await srv.client.get("/api/news?limit=0")).json()
    assert empty["items"] == []


@pytest.mark.parametrize("query", ["since=abc", "since=-1", "limit=-5", "limit=1.5", "limit=x"])
async def test_api_news_bad_params(srv: Server, query: str) -> None:
    r = await srv.client.get("/api/news?" + query)
    assert r.status == 400
    body = await r.json()
    assert body["error"] == "bad_request" and body["message"]


async def test_index_and_vendor_js(srv: Server) -> None:
    plotly_url = f"/vendor/plotly.min.js?v={plotly.__version__}"
    r = await srv.client.get("/")
    assert r.status == 200 and r.content_type == "text/html"
    index = (ROOT / "web" / "index.html").read_bytes()
    assert b'"/vendor/plotly.min.js"' in index
    # The page names plotly by its versioned URL (cacheable for a year), and preloads every
    # module app.js imports (one round trip for all, not one per level of imports).
    page = (await r.read()).decode()
    assert f'"{plotly_url}"' in page and '"/vendor/plotly.min.js"' not in page
    modules = module_graph(ROOT / "web")
    assert modules[0] == "app.js" and {"logic/format.js", "chart.js"} <= set(modules)
    for m in modules[1:]:
        assert f'<link rel="modulepreload" href="/static/{m}">' in page, m
        assert (await srv.client.get(f"/static/{m}")).status == 200, m
    without = re.sub(r'<link rel="modulepreload"[^>]*>\n', "", page)
    assert without == index.decode().replace('"/vendor/plotly.min.js"', f'"{plotly_url}"')
    r = await srv.client.get("/static/index.html")
    assert r.status == 200, "the static route serves files from web/"
    assert await r.read() == index
    # The JS client's stable path (README "Clients"): an ES module with its pure imports.
    r = await srv.client.get("/static/ticker-client.js")
    assert r.status == 200 and "javascript" in r.content_type
    assert "export class TickerClient" in await r.text()
    r = await srv.client.get("/static/logic/requests.js")
    assert r.status == 200
    for url in ("/vendor/plotly.min.js", plotly_url):
        r = await srv.client.get(url)
        assert r.status == 200
        assert "javascript" in r.content_type
        body = await r.read()
        assert body == plotly_js_path().read_bytes() and len(body) > 100_000


async def test_static_files_are_gzipped_and_revalidated(srv: Server) -> None:
    plotly_url = f"/vendor/plotly.min.js?v={plotly.__version__}"
    for url, cache in [
        ("/", "no-cache"),
        ("/static/index.html", "no-cache"),
        ("/static/app.js", "no-cache"),
        ("/static/logic/format.js", "no-cache"),
        ("/vendor/plotly.min.js", "no-cache"),
        (plotly_url, "public, max-age=31536000, immutable"),
    ]:
        gz = {"Accept-Encoding": "gzip, br"}
        r = await srv.client.get(url, headers=gz, auto_decompress=False)
        assert r.status == 200, url
        assert r.headers["Content-Encoding"] == "gzip", url
        assert r.headers["Vary"] == "Accept-Encoding"
        assert r.headers["Cache-Control"] == cache, url
        assert r.headers["Last-Modified"]
        etag = r.headers["ETag"]
        raw = await r.read()
        body = gzip.decompress(raw)
        assert len(raw) < len(body) * 0.6, url
        # The same again: a 304 without a body, whichever form of the ETag comes back.
        for tag in (etag, "W/" + etag, f'"other", {etag}'):
            again = await srv.client.get(url, headers={**gz, "If-None-Match": tag})
            assert again.status == 304 and await again.read() == b"", (url, tag)
            assert again.headers["ETag"] == etag
        # Without gzip (or with it refused): the plain bytes, under another ETag.
        for accept in ("identity", "gzip;q=0"):
            plain = await srv.client.get(
                url, headers={"Accept-Encoding": accept}, auto_decompress=False
            )
            assert "Content-Encoding" not in plain.headers
            assert await plain.read() == body and plain.headers["ETag"] != etag
            stale = await srv.client.get(url, headers={"If-None-Match": '"nope"'})
            assert stale.status == 200


async def test_static_file_changes_are_served_at_once(
    aiohttp_client: AiohttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    page = web_dir / "index.html"
    page.write_text('<script src="/vendor/plotly.min.js"></script>' + "x" * 1000)
    monkeypatch.setattr("ticker.net.server.WEB_DIR", web_dir)
    client = await aiohttp_client(create_app([]))
    r = await client.get("/static/index.html")
    etag = r.headers["ETag"]
    assert (await r.text()).endswith("x")
    page.write_text("<p>new</p>" + "y" * 1000)
    os.utime(page, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    r = await client.get("/static/index.html", headers={"If-None-Match": etag})
    assert r.status == 200 and (await r.text()).endswith("y")
    (web_dir / "late.js").write_text("export {};")
    r = await client.get("/static/late.js")
    assert r.status == 200 and r.content_type == "text/javascript"
    assert (await client.get("/static/missing.js")).status == 404


SECRET_PYPROJECT = (ROOT / "pyproject.toml").read_bytes()
SECRET_PASSWD = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").exists() else b"root:"

TRAVERSALS = [
    "/static/../pyproject.toml",
    "/static/%2e%2e/pyproject.toml",
    "/static/%2E%2E/%2E%2E/etc/passwd",
    "/static/..%2fpyproject.toml",
    "/static/%2e%2e%2fpyproject.toml",
    "/static/..%5cpyproject.toml",
    "/static/..\\pyproject.toml",
    "/static/..\\..\\etc\\passwd",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/....//pyproject.toml",
    "/static/%252e%252e/pyproject.toml",
    "/static/index.html/../../pyproject.toml",
    "/../pyproject.toml",
    "/%2e%2e/pyproject.toml",
    # Mixed and partial encodings, double-encoded backslashes, overlong UTF-8, full-width dots,
    # IIS %u, Tomcat ;, NUL bytes, Windows and absolute paths, an absolute-form target.
    "/static/%5c..%5cpyproject.toml",
    "/static/\\..\\pyproject.toml",
    "/static/%2e%2e%5cpyproject.toml",
    "/static/..%255cpyproject.toml",
    "/static/%252e%252e%252fpyproject.toml",
    "/static/.%2e/pyproject.toml",
    "/static/%2e./pyproject.toml",
    "/static/./../pyproject.toml",
    "/static/../../../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/%c0%ae%c0%ae/pyproject.toml",
    "/static/..%c0%afpyproject.toml",
    "/static/%ef%bc%8e%ef%bc%8e/pyproject.toml",
    "/static/%u002e%u002e/pyproject.toml",
    "/static/..;/pyproject.toml",
    "/static/..%00/pyproject.toml",
    "/static/index.html%00",
    "/static/C:\\Windows\\win.ini",
    "/static/C:/Windows/win.ini",
    "/static/%2F%2Fetc/passwd",
    "//etc/passwd",
    "/vendor/plotly.min.js/../../pyproject.toml",
    "http://127.0.0.1/static/../pyproject.toml",
]


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client-side normalization): (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        async with asyncio.timeout(2000 * MS):
            data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_static_never_leaves_web_dir(srv: Server) -> None:
    port = srv.client.port
    assert port is not None
    status, body = await raw_get(port, "/static/index.html")
    assert status == 200 and b"<html" in body, "the raw client reaches the static route"
    secrets = [SECRET_PYPROJECT, SECRET_PASSWD]
    for target in TRAVERSALS:
        status, body = await raw_get(port, target)
        assert status == 404, (target, status)
        for secret in secrets:
            assert secret[:40] not in body, target


async def test_static_does_not_follow_symlinks_out_of_web_dir(
    aiohttp_client: AiohttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    (web_dir / "index.html").write_text("<html>ok</html>")
    (tmp_path / "secret.txt").write_text("top secret")
    (web_dir / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (web_dir / "etc").symlink_to("/etc")
    monkeypatch.setattr("ticker.net.server.WEB_DIR", web_dir)
    client = await aiohttp_client(create_app([]))
    port = client.port
    assert port is not None
    assert (await raw_get(port, "/static/index.html")) == (200, b"<html>ok</html>")
    for target in ("/static/leak.txt", "/static/etc/passwd", "/static/etc/%2e%2e/etc/passwd"):
        status, body = await raw_get(port, target)
        assert status == 404 and b"secret" not in body and b"root:" not in body, target


# consistency under a random mix of ops while ticks flow


@pytest.mark.parametrize("seed", [1, 2])
async def test_snapshot_plus_deltas_track_server_state_through_random_ops(
    aiohttp_client: AiohttpClient, seed: int
) -> None:
    rng = random.Random(seed)
    syms = [f"R{i}" for i in range(12)]
    srv = await Server.start(aiohttp_client, [Listing(tuple(syms))])
    # Another client in the same windows, so the windows' state is shared and moves on.
    await srv.subscribed(["*"], throttle_ms=50)
    ws, hello = await srv.connect()
    (client,) = [c for c in srv.hub.clients if c.session.id == hello["session"]]
    frames: list[Frame] = []

    async def read() -> None:
        async for msg in ws:
            frames.append(orjson.loads(msg.data))

    reader = asyncio.get_running_loop().create_task(read())
    subscribed: set[str] = set()
    star = False
    for _ in range(60):
        op = rng.choice(["ticks", "ticks", "ticks", "sub", "unsub", "throttle", "resync", "star"])
        if op == "ticks":
            await srv.push(
                *(
                    tick(rng.choice(syms), round(rng.uniform(50, 150), 2), size=rng.randint(1, 9))
                    for _ in range(rng.randint(1, 30))
                )
            )
        elif op == "sub":
            pick = rng.sample(syms, 3)
            subscribed |= set(pick)
            await ws.send_json({"op": "subscribe", "symbols": pick})
        elif op == "unsub":
            pick = rng.sample(syms, 2)
            subscribed -= set(pick)
            await ws.send_json({"op": "unsubscribe", "symbols": pick})
        elif op == "throttle":
            await ws.send_json({"op": "throttle", "ms": rng.choice([0, 10, 50, 120])})
        elif op == "resync":
            await ws.send_json({"op": "resync"})
        elif op == "star" and not star:
            star = True
            await ws.send_json({"op": "subscribe", "symbols": ["*"]})
        await asyncio.sleep(rng.choice([0, 0.005, 0.02]))
    await ws.send_json({"op": "ping", "t": 0})
    await until(lambda: any(f["type"] == "pong" for f in frames), what="every op served")
    seqs: list[int] = []
    book = srv.hub.book.quotes
    want = [s for s in client.session.sub.resolve(srv.hub.book.known) if s in book]
    if not star:
        assert set(want) == subscribed & set(book)
    state: dict[str, dict[str, Any]] = {}

    def in_step() -> bool:
        state.clear()
        seqs.clear()
        for f in frames:
            apply_frame(state, f)
            if "seq" in f:
                seqs.append(f["seq"])
        # (The wire's quote is the book's, compact: ts to 0.1 ms, whole sizes as integers.)
        return all(state.get(s) == compact(dict(book[s])) for s in want)

    assert want, "non-vacuous: something is subscribed"
    await until(in_step, what="client state equal to the server's")
    assert seqs == list(range(1, len(seqs) + 1)), "seq +1 per snapshot/delta"
    await ws.close()
    await reader


def test_module_graph_follows_static_imports(tmp_path: Path) -> None:
    (tmp_path / "logic").mkdir()
    (tmp_path / "app.js").write_text(
        'import { a } from "./a.js";\nimport {\n  b,\n  c,\n} from "./logic/b.js";\n'
        'import "./side.js";\nconst later = () => import("./lazy.js");\n'
    )
    (tmp_path / "a.js").write_text('export * from "./logic/b.js";\nimport "../outside.js";\n')
    (tmp_path / "logic" / "b.js").write_text('import { a } from "../a.js";\n// from "./no.js"\n')
    (tmp_path / "side.js").write_text("")
    assert module_graph(tmp_path) == ["app.js", "a.js", "logic/b.js", "side.js"]


class _NamedFeed(FakeFeed):
    """A feed that knows its symbols' names (``HasNames``)."""

    def __init__(self, names: object) -> None:
        super().__init__([Listing(("AAPL", "XYZ"))], name="named")
        self._names = names

    def names(self) -> object:
        if isinstance(self._names, Exception):
            raise self._names
        return self._names


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"AAPL": "Apple Inc.", "NOPE": "not listed", "XYZ": ""}, {"AAPL": "Apple Inc."}),
        (RuntimeError("broken plug-in"), {}),
        (["not", "a", "mapping"], {}),
    ],
)
async def test_api_symbols_names_from_feeds(
    aiohttp_client: AiohttpClient, names: object, expected: dict[str, str]
) -> None:
    feed = _NamedFeed(names)
    client = await aiohttp_client(create_app([feed]))
    async with asyncio.timeout(2000 * MS):
        while True:
            body = await (await client.get("/api/symbols")).json()
            if len(body["symbols"]) == 2:
                break
            await asyncio.sleep(0.01)
    # `name` is there only when a feed gives one (an optional field: older clients ignore it).
    got = {s["symbol"]: s.get("name") for s in body["symbols"]}
    assert got == {"AAPL": expected.get("AAPL"), "XYZ": None}
    assert all(("name" in s) == (s["symbol"] in expected) for s in body["symbols"])
    feed.end()


def test_sim_names_its_tickers() -> None:
    sim = SimFeed({"symbols": "AAPL+MSFT+ZZZZ"})
    assert isinstance(sim, HasNames)
    assert sim.names() == {"AAPL": "Apple Inc.", "MSFT": "Microsoft Corporation"}


def test_serve_raises_the_open_file_limit_to_the_hard_limit() -> None:
    """Issue 20: 50,000 connections need 50,000 descriptors; a soft limit of 1,024 (a shell's
    default) would refuse them long before max_connections."""
    code = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "from ticker.net.server import raise_open_file_limit\n"
        "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[1])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=20
    )
    now, hard = out.stdout.split()
    assert now == hard

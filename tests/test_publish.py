"""The publish API: ``POST /api/ticks`` and ``POST /api/news`` (and who may control a replay).

Pure validation with hypothesis; then a real server (in-process, 127.0.0.1, port 0) with real
WebSocket subscribers; then real ``ticker serve`` processes on a private Redis, posting to an
edge node and reading from another.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import string
import time
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given, settings, strategies as st
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS, ServerProcess
from tests.redisutil import RedisServer, redis_server  # noqa: F401 (a fixture)
from tests.wsutil import Frame, Server, recv, recv_type, recv_until, tick, until
from ticker.core.auth import AuthConfig
from ticker.core.bars import INTERVALS
from ticker.core.events import Bar, Event, Listing, News, Tick
from ticker.net.publish import (
    MAX_BARS,
    MAX_TICKS,
    MAX_TICKS_BYTES,
    PublishError,
    _BarIn,
    parse_bars,
    parse_news,
    parse_ticks,
)
from ticker.net.server import create_app
from ticker_feeds.testing import FakeFeed

ADMIN = "admin-token-" + "p" * 24
AUTH = {"Authorization": f"Bearer {ADMIN}"}

# Pure validation

symbols = st.text(string.ascii_uppercase + string.digits + ".-", min_size=1, max_size=12)
prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
ticks = st.builds(
    Tick,
    symbol=symbols,
    price=prices,
    ts=st.floats(1.0, 4e12),
    size=st.none() | st.floats(0, 1e9),
    bid=st.none() | prices,
    ask=st.none() | prices,
    volume=st.none() | st.floats(0, 1e12),
    prev_close=st.none() | prices,
)


def tick_json(t: Tick) -> dict[str, Any]:
    d = {"symbol": t.symbol, "price": t.price, "ts": t.ts}
    for k in ("size", "bid", "ask", "volume", "prev_close"):
        if getattr(t, k) is not None:
            d[k] = getattr(t, k)
    return d


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(ticks, max_size=30), wrapped=st.booleans())
def test_valid_ticks_round_trip(batch: list[Tick], wrapped: bool) -> None:
    items = [tick_json(t) for t in batch]
    body = orjson.dumps({"ticks": items} if wrapped else items)
    assert parse_ticks(body) == batch


BAD_FIELDS: list[tuple[str, Any]] = [
    ("symbol", ""),
    ("symbol", "has space"),
    ("symbol", "*"),
    ("symbol", 7),
    ("price", 0),
    ("price", -1.5),
    ("price", "12.5"),
    ("price", None),
    ("ts", "yesterday"),
    ("size", -1),
    ("bid", 0),
    ("volume", "lots"),
]


@settings(max_examples=100, deadline=None)
@given(
    batch=st.lists(ticks, min_size=1, max_size=20),
    where=st.integers(0, 19),
    bad=st.sampled_from(BAD_FIELDS),
    wrapped=st.booleans(),
)
def test_a_bad_field_is_named_with_its_index(
    batch: list[Tick], where: int, bad: tuple[str, Any], wrapped: bool
) -> None:
    i = where % len(batch)
    items = [tick_json(t) for t in batch]
    field, value = bad
    items[i][field] = value
    body = orjson.dumps({"ticks": items} if wrapped else items)
    with pytest.raises(PublishError) as err:
        parse_ticks(body)
    assert (err.value.code, err.value.index, err.value.field) == ("bad_request", i, field)
    assert f"[{i}].{field}" in err.value.message


def test_tick_shape_errors() -> None:
    def error(body: bytes) -> tuple[str, int | None, str | None, str]:
        with pytest.raises(PublishError) as err:
            parse_ticks(body)
        e = err.value
        return e.code, e.index, e.field, e.message

    assert error(b'[{"symbol":"A","price":1,"ts":1,"prise":2}]')[:3] == ("bad_request", 0, "prise")
    assert error(b'[{"symbol":"A","ts":1}]')[:3] == ("bad_request", 0, "price")
    assert error(b'{"tick":[]}')[:3] == ("bad_request", None, "tick")
    assert error(b'"ticks"')[:2] == ("bad_request", None)
    assert error(b"[1e999]")[:2] == ("bad_request", 0)
    assert error(b'[{"symbol":"A","price":1e999,"ts":1}]')[:3] == ("bad_request", 0, "price")
    assert error(b"{")[0] == "bad_json"
    assert error(b"\xff")[0] == "bad_json"
    one = b'{"symbol":"A","price":1,"ts":1}'
    code, _, _, message = error(b"[" + b",".join([one] * (MAX_TICKS + 1)) + b"]")
    assert code == "bad_request" and "at most 10,000" in message
    assert len(parse_ticks(b"[" + b",".join([one] * MAX_TICKS) + b"]")) == MAX_TICKS


def test_news_validation() -> None:
    one = parse_news(b'{"headline":"H","source":"S","symbols":["AAPL"]}', 5.0)
    assert one == [News("H", 5.0, "S", ("AAPL",))]
    two = parse_news(
        b'[{"headline":"A","source":"S","ts":7,"url":"https://x.example/a","summary":"s"},'
        b'{"headline":"B","source":"S"}]',
        5.0,
    )
    assert two == [News("A", 7.0, "S", (), "https://x.example/a", "s"), News("B", 5.0, "S")]
    for body, index, field in (
        (b'{"headline":"","source":"S"}', 0, "headline"),
        (b'{"headline":"H"}', 0, "source"),
        (b'{"headline":"H","source":"S","url":"javascript:alert(1)"}', 0, "url"),
        (
            b'[{"headline":"H","source":"S"},{"headline":"H","source":"S","symbols":["a b"]}]',
            1,
            "symbols",
        ),
        (b'[{"headline":"H","source":"S","id":5}]', 0, "id"),
    ):
        with pytest.raises(PublishError) as err:
            parse_news(body, 5.0)
        assert (err.value.index, err.value.field) == (index, field), err.value.message


# A real server


async def start(aiohttp_client: AiohttpClient, auth: AuthConfig, events: list[Event]) -> Server:
    feed = FakeFeed(events)
    srv = Server(await aiohttp_client(create_app([feed], auth=auth)), feed)
    await until(lambda: srv.runner.events >= len(events), what="initial events")
    return srv


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await start(
        aiohttp_client, AuthConfig(admin_token=ADMIN), [Listing(("AAPL",)), tick("AAPL", 100.0)]
    )


async def post(
    srv: Server, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    hdrs = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
    resp = await srv.client.post(path, data=data, headers=hdrs)
    return resp.status, await resp.json()


def batch(n: int, syms: int = 50, t0: float | None = None) -> list[dict[str, Any]]:
    t0 = time.time() * 1000.0 if t0 is None else t0
    return [
        {"symbol": f"P{i % syms:03d}", "price": 10.0 + i / 100, "ts": t0 + i, "size": 1}
        for i in range(n)
    ]


async def test_write_endpoints_need_the_admin_token(srv: Server) -> None:
    good = [{"symbol": "AAPL", "price": 1.0, "ts": 1.0}]
    for path, body in (("/api/ticks", good), ("/api/news", {"headline": "h", "source": "s"})):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-wrong-token"},
            {"Authorization": ADMIN},  # not a bearer
            {"Authorization": f"Basic {ADMIN}"},
        ):
            status, answer = await post(srv, path, body, headers)
            assert (status, answer["error"]) == (401, "unauthorized"), (path, headers)
        resp = await srv.client.post(
            path, data=orjson.dumps(body), params={"token": ADMIN}, headers={}
        )
        assert resp.status == 401, "the admin token is only taken from the Authorization header"
    assert srv.hub.stats["ticks_in"] == 1 and srv.hub.stats["news_in"] == 0


async def test_write_endpoints_are_off_without_an_admin_token(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, AuthConfig(), [])
    for path in ("/api/ticks", "/api/news"):
        status, body = await post(srv, path, [], {})
        assert (status, body["error"]) == (403, "forbidden")
        assert "no admin token" in body["message"]
    assert (await srv.client.get("/api/news")).status == 200, "GET /api/news is the read API"


async def test_bad_input_is_refused_whole(srv: Server) -> None:
    ws, _ = await srv.subscribed(["*"])
    items = batch(100)
    items[57]["price"] = "NaN"
    status, body = await post(srv, "/api/ticks", items)
    assert status == 400
    assert (body["error"], body["index"], body["field"]) == ("bad_request", 57, "price")
    assert "$[57].price" in body["message"]
    status, body = await post(srv, "/api/ticks", {"ticks": batch(MAX_TICKS + 1)})
    assert status == 400 and "at most 10,000" in body["message"]
    status, body = await post(srv, "/api/ticks", b"[{")
    assert (status, body["error"]) == (400, "bad_json")
    status, body = await post(srv, "/api/news", [{"headline": "ok", "source": "s"}, {}])
    assert (status, body["index"]) == (400, 1)
    # Nothing of any of them was applied.
    assert srv.hub.stats["ticks_in"] == 1 and srv.hub.stats["news_in"] == 0
    assert list(srv.hub.book.known) == ["AAPL"]
    await ws.send_json({"op": "ping", "t": 1})
    assert (await recv(ws))["type"] == "pong", "no delta came before the pong"


async def test_wrong_content_type_and_oversize_bodies(srv: Server) -> None:
    resp = await srv.client.post(
        "/api/ticks", data=b"[]", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert resp.status == 415
    resp = await srv.client.post("/api/ticks", data={"a": "b"}, headers=AUTH)  # a form
    assert resp.status == 415
    big = io.BytesIO(b"[" + b" " * (MAX_TICKS_BYTES + 10) + b"]")  # with a Content-Length
    resp = await srv.client.post(
        "/api/ticks", data=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert (resp.status, (await resp.json())["error"]) == (413, "too_large")

    async def chunks() -> Any:  # no Content-Length: refused while reading
        yield b"["
        for _ in range(80):
            yield b" " * 65536
        yield b"]"

    resp = await srv.client.post(
        "/api/ticks", data=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 413
    # The server is fine, and the next request from the same producer goes through.
    status, body = await post(srv, "/api/ticks", [{"symbol": "AAPL", "price": 2.0, "ts": 1.0}])
    assert (status, body) == (202, {"accepted": 1})


async def test_ten_thousand_ticks_reach_subscribers_and_the_api(srv: Server) -> None:
    ws, _ = await srv.subscribed(["*"])
    other, _ = await srv.subscribed(["AAPL"])
    items = batch(MAX_TICKS)
    status, body = await post(srv, "/api/ticks", items)
    assert (status, body) == (202, {"accepted": MAX_TICKS})
    assert srv.hub.stats["ticks_in"] == 1 + MAX_TICKS
    last = {t["symbol"]: t["price"] for t in items}
    # The subscriber to "*" gets every new symbol (its full quote) at its latest price.
    got: dict[str, float] = {}

    def complete(f: Frame) -> bool:
        for s, q in f.get("quotes", {}).items():
            if "price" in q:
                got[s] = q["price"]
        return all(got.get(s) == p for s, p in last.items())

    await recv_until(ws, complete, within=5000 * MS)
    quotes = (await (await srv.client.get("/api/quotes")).json())["quotes"]
    assert {s: quotes[s]["price"] for s in last} == last
    assert quotes["P000"]["volume"] == MAX_TICKS / 50, "sizes add up to the session volume"
    # The new symbols are known: a new client's hello lists them.
    _, hello = await srv.connect()
    assert set(last) <= set(hello["symbols"])
    # Everyone else kept being served: the AAPL subscriber still gets AAPL.
    await post(srv, "/api/ticks", [{"symbol": "AAPL", "price": 123.0, "ts": time.time() * 1000}])
    assert (await recv_type(other, "delta"))["quotes"]["AAPL"]["price"] == 123.0


async def test_posted_news_reach_subscribers_with_their_ids(srv: Server) -> None:
    ws, _ = await srv.connect()
    await ws.send_json({"op": "news", "topics": ["*"]})
    status, one = await post(
        srv, "/api/news", {"headline": "One", "source": "wire", "symbols": ["AAPL"]}
    )
    assert status == 202 and one["accepted"] == 1 and len(one["ids"]) == 1
    status, two = await post(
        srv,
        "/api/news",
        [
            {"headline": "Two", "source": "wire", "url": "https://news.example/2"},
            {"headline": "Three", "source": "wire", "symbols": ["NEWCO"], "ts": 1.7e12},
        ],
    )
    assert status == 202 and two["accepted"] == 2
    ids = one["ids"] + two["ids"]
    assert ids == sorted(ids) and len(set(ids)) == 3
    got = [await recv_type(ws, "news") for _ in range(3)]
    assert [(n["id"], n["headline"]) for n in got] == list(
        zip(ids, ["One", "Two", "Three"], strict=True)
    )
    assert got[1]["url"] == "https://news.example/2" and got[2]["ts"] == 1.7e12
    api = (await (await srv.client.get("/api/news")).json())["items"]
    assert [i["id"] for i in api] == ids


# Replay control


async def test_replay_control_needs_the_admin_token_when_one_is_set(srv: Server) -> None:
    # No replay feed here: a request that gets through is a 400 "no replay feed", not 401.
    body = orjson.dumps({"action": "pause"})
    assert (await srv.client.post("/api/replay", data=body)).status == 401
    resp = await srv.client.post("/api/replay", data=body, headers=AUTH)
    assert resp.status == 400 and "no replay feed" in (await resp.json())["message"]
    assert (await srv.client.get("/api/replay")).status == 200


async def test_local_replay_control_without_an_admin_token(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, AuthConfig(), [])
    body = orjson.dumps({"action": "pause"})
    port = srv.client.port
    for headers in ({}, {"Origin": f"http://127.0.0.1:{port}"}, {"Origin": "http://localhost:3"}):
        resp = await srv.client.post("/api/replay", data=body, headers=headers)
        assert resp.status == 400, "a loopback peer gets through (to 'no replay feed')"
    for headers in (
        {"Origin": "https://evil.example"},  # a cross-site page in the user's own browser
        {"X-Forwarded-For": "203.0.113.9"},  # a proxy on this machine forwarding a stranger
        {"Forwarded": "for=203.0.113.9"},
    ):
        resp = await srv.client.post("/api/replay", data=body, headers=headers)
        assert resp.status == 403, headers
    off = await start(aiohttp_client, AuthConfig(local_replay=False), [])
    assert (await off.client.post("/api/replay", data=body)).status == 403


# On Redis: post to an edge, read from another


def edge_args(url: str) -> list[str]:
    return ["--bus", url, "--role", "edge"]


async def test_posting_to_an_edge_reaches_every_edge(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    url = redis_server.url()
    env = {"TICKER_ADMIN_TOKEN": ADMIN}
    a = ServerProcess(*edge_args(url), env=env)
    b = ServerProcess(*edge_args(url), env=env)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(b.ws_url)
            assert (await recv(ws))["type"] == "hello"
            await ws.send_json({"op": "news", "topics": ["*"]})
            await ws.send_json({"op": "subscribe", "symbols": ["*"]})
            await recv_type(ws, "snapshot")
            ticks = batch(2_000, syms=20)
            async with http.post(a.url + "/api/ticks", json=ticks, headers=AUTH) as resp:
                assert (resp.status, await resp.json()) == (202, {"accepted": 2_000})
            async with http.post(
                a.url + "/api/news",
                json=[{"headline": f"n{i}", "source": "wire"} for i in range(3)],
                headers=AUTH,
            ) as resp:
                assert resp.status == 202
                ids = (await resp.json())["ids"]
            assert len(ids) == 3 and ids == sorted(ids)
            last = {t["symbol"]: t["price"] for t in ticks}
            got: dict[str, float] = {}
            news: list[Frame] = []

            def done(f: Frame) -> bool:
                if f["type"] == "news":
                    news.append(f)
                for s, q in f.get("quotes", {}).items():
                    if "price" in q:
                        got[s] = q["price"]
                return len(news) == 3 and all(got.get(s) == p for s, p in last.items())

            await recv_until(ws, done, within=8000 * MS)
            assert [n["id"] for n in news] == ids, "the ids Redis gave, on every edge"
            # A node started later knows the posted symbols from Redis.
            c = ServerProcess(*edge_args(url), env=env)
            try:
                async with http.get(c.url + "/api/quotes") as resp:
                    quotes = (await resp.json())["quotes"]
                assert {s: quotes[s]["price"] for s in last} == last
            finally:
                c.close()
    finally:
        a.close()
        b.close()


async def test_redis_down_is_a_503() -> None:
    own = RedisServer()
    try:
        node = ServerProcess(*edge_args(own.url()), env={"TICKER_ADMIN_TOKEN": ADMIN})
        try:
            own.kill()
            async with (
                aiohttp.ClientSession() as http,
                http.post(node.url + "/api/ticks", json=batch(10), headers=AUTH) as resp,
            ):
                body = await resp.json()
                assert resp.status == 503 and body["error"] == "unavailable"
                assert "redis://" not in str(body)
        finally:
            node.close()
    finally:
        own.close()


# Bars


def bar_json(symbol: str, k: int, interval: str = "1m", t0: float = 1_709_303_400_000.0) -> Any:
    o = 100.0 + k
    return {
        "symbol": symbol,
        "ts": t0 + k * INTERVALS[interval],
        "interval": interval,
        "open": o,
        "high": o + 2,
        "low": o - 1,
        "close": o + 1,
        "volume": 10.0 * k,
    }


def test_bar_validation_names_the_problem() -> None:
    good = [bar_json("SPY", k) for k in range(3)]
    assert [b.close for b in parse_bars(orjson.dumps(good))] == [101.0, 102.0, 103.0]
    assert parse_bars(orjson.dumps({"bars": good})) == parse_bars(orjson.dumps(good))
    for change, field, words in (
        ({"ts": 1_709_303_400_001.0}, "ts", "multiple of 1m"),
        ({"high": 99.0}, "low", "low <= open, close <= high"),
        ({"interval": "2m"}, "interval", "Invalid enum value '2m'"),
        ({"open": -1.0}, "open", "Expected `float` > 0.0"),
        ({"volume": -1.0}, "volume", ">= 0"),
        ({"extra": 1}, "extra", "unknown field"),
    ):
        body = [*good, {**bar_json("SPY", 3), **change}]
        with pytest.raises(PublishError) as err:
            parse_bars(orjson.dumps(body))
        assert (err.value.index, err.value.field) == (3, field), change
        assert words in err.value.message, err.value.message
    with pytest.raises(PublishError, match="at most 10,000"):
        parse_bars(orjson.dumps([bar_json("SPY", 0)] * (MAX_BARS + 1)))
    # (_BarIn's fields are a bar's, in its order: the build relies on it)
    assert [f.name for f in dataclasses.fields(Bar)] == list(_BarIn.__struct_fields__)


async def test_posted_bars_reach_the_bars_api_and_bad_ones_nothing(srv: Server) -> None:
    bars = [bar_json("SPY", k) for k in range(120)]
    status, body = await post(srv, "/api/bars", [*bars[:10], {**bars[10], "low": 500.0}])
    assert (status, body["index"], body["field"]) == (400, 10, "low")
    assert "SPY" not in srv.hub.book.known, "nothing of a refused body is applied"
    status, body = await post(srv, "/api/bars", {"bars": bars})
    assert (status, body) == (202, {"accepted": 120})
    resp = await srv.client.get("/api/bars", params={"symbol": "SPY", "interval": "1m"})
    got = (await resp.json())["bars"]
    assert got == [[b["ts"], b["open"], b["high"], b["low"], b["close"], b["volume"]] for b in bars]
    resp = await srv.client.get("/api/bars", params={"symbol": "SPY", "interval": "1h"})
    hours = (await resp.json())["bars"]
    assert sum(h[5] for h in hours) == sum(b["volume"] for b in bars)
    resp = await srv.client.get("/api/bars", params={"symbol": "SPY", "interval": "1s"})
    assert (resp.status, (await resp.json())["error"]) == (400, "bad_interval")
    assert srv.hub.book.quotes["SPY"]["price"] == bars[-1]["close"]


async def test_bars_posted_to_an_edge_reach_another_edge(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    url = redis_server.url()
    env = {"TICKER_ADMIN_TOKEN": ADMIN}
    a = ServerProcess(*edge_args(url), env=env)
    b = ServerProcess(*edge_args(url), env=env)
    try:
        async with aiohttp.ClientSession() as http:
            bars = [bar_json("QQQ", k, "5m", t0=1_709_301_600_000.0) for k in range(50)]
            async with http.post(a.url + "/api/bars", json=bars, headers=AUTH) as resp:
                assert (resp.status, await resp.json()) == (202, {"accepted": 50})
            want = [
                [x["ts"], x["open"], x["high"], x["low"], x["close"], x["volume"]] for x in bars
            ]

            async def answer(node: ServerProcess) -> Any:
                params = {"symbol": "QQQ", "interval": "5m"}
                async with http.get(node.url + "/api/bars", params=params) as resp:
                    return (await resp.json()).get("bars")

            await until_async(lambda: answer(b), want)
            c = ServerProcess(*edge_args(url), env=env)  # later: from the bars in Redis
            try:
                assert await answer(c) == want
            finally:
                c.close()
    finally:
        a.close()
        b.close()


async def until_async(get: Any, want: Any, within: float = 8000 * MS) -> None:
    deadline = time.monotonic() + within
    while (got := await get()) != want:
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.05)

"""Bars on the wire against a real server: the ``bars``/``unbars`` ops, ``bar`` updates stitched
to history, ``GET /api/bars`` and ``/api/history``, bar events, resets, limits and errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pandas as pd
from aiohttp import ClientWebSocketResponse
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from tests.test_auth import SECRET, token
from tests.wsutil import Frame, Server, recv, recv_type, until
from ticker.config import HubConfig
from ticker.core.auth import AuthConfig
from ticker.core.bars import INTERVALS
from ticker.core.events import Bar, Listing, Reset, Tick
from ticker.net.server import HUB, RUNNERS, create_app
from ticker_feeds.sim import SimFeed

T0 = 1_700_006_400_000.0  # a UTC midnight: the market clock of these tests, not the wall clock


def trades(n: int, start: float = T0, step: float = 137.0) -> list[Tick]:
    """``n`` trades of AAPL from ``start``, ``step`` ms apart, a zig-zag price."""
    return [
        Tick("AAPL", 100.0 + (i * 7 % 11) - (i % 3) * 0.5, start + i * step, size=float(1 + i % 5))
        for i in range(n)
    ]


def pandas_rows(ticks: list[Tick], interval: str) -> list[list[float]]:
    df = pd.DataFrame({"price": [t.price for t in ticks], "size": [t.size for t in ticks]})
    df.index = pd.to_datetime([t.ts for t in ticks], unit="ms")
    rule = f"{INTERVALS[interval]}ms"
    ohlc = df["price"].resample(rule, origin="epoch").ohlc()
    vol = df["size"].resample(rule, origin="epoch").sum()
    keep = df["price"].resample(rule, origin="epoch").count().to_numpy() > 0
    ohlc, vol = ohlc[keep], vol[keep]
    t = pd.DatetimeIndex(ohlc.index).as_unit("ms").asi8
    return [
        [int(a), o, h, lo, c, v]
        for a, o, h, lo, c, v in zip(t, *(ohlc[k] for k in ohlc.columns), vol, strict=True)
    ]


async def start(aiohttp_client: AiohttpClient, config: HubConfig | None = None) -> Server:
    return await Server.start(aiohttp_client, [Listing(("AAPL", "MSFT"))], config)


async def ask(ws: ClientWebSocketResponse, **req: Any) -> tuple[Frame, Frame]:
    """Send a ``bars`` request with an id; its ``ack`` (or error) and the next frame."""
    await ws.send_json({"op": "bars", "id": 7, **req})
    first = await recv(ws)
    if first["type"] == "error":
        return first, {}
    return first, await recv_type(ws, "bars")


def apply(series: dict[int, list[float]], frame: Frame) -> None:
    """What a chart does with ``bars`` (replace) and ``bar`` (upsert by t)."""
    if frame["type"] == "bars":
        series.clear()
        series.update({int(b[0]): b for b in frame["bars"]})
    elif frame["type"] == "bar":
        t = int(frame["bar"][0])
        assert not series or t >= max(series), "a bar before the newest one is never sent"
        series[t] = frame["bar"]


async def test_history_then_live_bars_equal_the_final_history(
    aiohttp_client: AiohttpClient,
) -> None:
    """The ``bars`` answer plus the ``bar`` updates, applied by ``t``, equal what ``/api/bars``
    serves at the end (no gap, no overlap), which equals pandas on the same trades; and a bar's
    final values come before any later bar."""
    srv = await start(aiohttp_client)
    ticks = trades(400)
    await srv.push(*ticks[:150])
    ws, _ = await srv.connect()
    await ws.send_json({"op": "throttle", "ms": 20})
    ack, hist = await ask(ws, symbol="aapl", interval="5s", limit=5000)
    assert ack == {"type": "ack", "id": 7, "symbol": "AAPL", "interval": "5s", "live": True}
    assert hist["bars"] == pandas_rows(ticks[:150], "5s")
    series: dict[int, list[float]] = {}
    apply(series, hist)
    frames: list[Frame] = []
    for i in range(150, 400, 10):
        await srv.push(*ticks[i : i + 10])
        await asyncio.sleep(0.03)
    want = pandas_rows(ticks, "5s")
    while series.get(int(want[-1][0])) != want[-1]:
        f = await recv(ws)
        frames.append(f)
        apply(series, f)
    assert [series[t] for t in sorted(series)] == want
    assert any(f["type"] == "bar" for f in frames)
    # Final before later: each bar's last message precedes every message of a later bar.
    last_of: dict[int, int] = {}
    for k, f in enumerate(frames):
        if f["type"] == "bar":
            last_of[int(f["bar"][0])] = k
    for k, f in enumerate(frames):
        if f["type"] == "bar":
            t = int(f["bar"][0])
            assert all(last_of[e] < k for e in last_of if e < t)
            if k == last_of[t]:
                assert f["bar"] == next(b for b in want if b[0] == t)
    resp = await srv.client.get("/api/bars", params={"symbol": "AAPL", "interval": "5s"})
    assert (await resp.json())["bars"] == want[-500:]


async def test_every_interval_and_paging(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client)
    ticks = trades(600, step=9_000.0)  # ~1.5 h
    await srv.push(*ticks)
    ws, _ = await srv.connect()
    for name in INTERVALS:
        _, hist = await ask(ws, symbol="AAPL", interval=name, limit=5000, live=False)
        assert hist["bars"] == pandas_rows(ticks, name), name
    want = pandas_rows(ticks, "1m")
    before = want[40][0]
    _, page = await ask(ws, symbol="AAPL", interval="1min", limit=10, before=before)
    assert page["interval"] == "1m" and page["bars"] == want[30:40]
    resp = await srv.client.get(
        "/api/bars", params={"symbol": "AAPL", "interval": "1m", "limit": "10", "before": before}
    )
    assert (await resp.json()) == {"symbol": "AAPL", "interval": "1m", "bars": want[30:40]}
    # v1's /api/history: the same bars, as columns.
    resp = await srv.client.get("/api/history", params={"symbol": "AAPL", "interval": "1min"})
    body = await resp.json()
    assert body["interval_ms"] == 60_000 and body["last_ts"] == ticks[-1].ts
    assert body["bars"]["t"] == [b[0] for b in want] and body["bars"]["close"] == [
        b[4] for b in want
    ]
    assert srv.hub.health()["bar_streams"] == 0  # live=False and before keep no stream


async def test_errors_and_limits(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, HubConfig(max_bar_streams=2))
    await srv.push(Bar("MSFT", T0, "1m", 10.0, 11.0, 9.0, 10.5, 100.0))
    ws, _ = await srv.connect()
    err, _ = await ask(ws, symbol="AAPL", interval="2m")
    assert err["code"] == "bad_interval" and "1s, 5s, 15s, 1m" in err["message"]
    err, _ = await ask(ws, symbol="MSFT", interval="1s")  # finer than the data
    assert err["code"] == "bad_interval" and "1m bars" in err["message"], err
    assert err["finest"] == "1m"  # what a chart falls back to
    symbols = (await (await srv.client.get("/api/symbols")).json())["symbols"]
    assert {s["symbol"]: s["finest"] for s in symbols} == {"AAPL": None, "MSFT": "1m"}
    err, _ = await ask(ws, symbol="NOPE", interval="1m")
    assert err["code"] == "unknown_symbol" and err["symbols"] == ["NOPE"]
    err, _ = await ask(ws, symbol="AAPL", interval="1m", limit=5001)
    assert err["code"] == "bad_request"
    for name in ("1m", "5m"):
        ack, hist = await ask(ws, symbol="MSFT", interval=name)
        assert hist["bars"] == [[int(T0), 10.0, 11.0, 9.0, 10.5, 100.0]]
    err, _ = await ask(ws, symbol="AAPL", interval="1m")
    assert err["code"] == "too_many_symbols", "a third live stream is over the limit"
    ack, _ = await ask(ws, symbol="MSFT", interval="5m")  # the same pair again: replaced
    assert ack["type"] == "ack"
    await ws.send_json({"op": "unbars", "symbol": "MSFT", "interval": "1m", "id": 8})
    assert await recv(ws) == {"type": "ack", "id": 8, "symbol": "MSFT", "interval": "1m"}
    ack, _ = await ask(ws, symbol="AAPL", interval="1m")
    assert ack["type"] == "ack"
    assert srv.hub.health()["bar_streams"] == 2
    for params, status, code in (
        ({"symbol": "MSFT", "interval": "1s"}, 400, "bad_interval"),
        ({"symbol": "MSFT", "interval": "7m"}, 400, "bad_interval"),
        ({"symbol": "MSFT"}, 400, "bad_interval"),
        ({"symbol": "NOPE", "interval": "1m"}, 404, "unknown_symbol"),
        ({"symbol": "MSFT", "interval": "1m", "limit": "x"}, 400, "bad_request"),
        ({"symbol": "MSFT", "interval": "1m", "before": "nan"}, 400, "bad_request"),
    ):
        resp = await srv.client.get("/api/bars", params=params)
        body = await resp.json()
        assert resp.status == status and body["error"] == code, params
        if params.get("interval") == "1s":
            assert body["finest"] == "1m"


async def test_unbars_stops_the_stream(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client)
    await srv.push(*trades(5))
    ws, _ = await srv.connect()
    await ws.send_json({"op": "throttle", "ms": 10})
    await ask(ws, symbol="AAPL", interval="1s")
    await srv.push(*trades(3, start=T0 + 5_000))
    assert (await recv_type(ws, "bar"))["symbol"] == "AAPL"
    await ws.send_json({"op": "unbars", "symbol": "AAPL", "interval": "1s"})
    await ws.send_json({"op": "ping", "t": 1})
    await recv_type(ws, "pong")
    await srv.push(*trades(3, start=T0 + 9_000))
    await ws.send_json({"op": "ping", "t": 2})
    while (f := await recv(ws))["type"] != "pong":
        assert f["type"] != "bar", "no bar after unbars"


async def test_bars_from_a_feed_make_coarser_bars_and_move_the_quote(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client)
    rows = [
        (T0 + i * 60_000, 10.0 + i, 12.0 + i, 9.0 + i, 11.0 + i, 100.0 * (i + 1)) for i in range(7)
    ]
    await srv.push(*(Bar("MSFT", *r[:1], "1m", *r[1:]) for r in rows))
    resp = await srv.client.get("/api/bars", params={"symbol": "MSFT", "interval": "5m"})
    assert (await resp.json())["bars"] == [
        [int(T0), 10.0, 16.0, 9.0, 15.0, 1500.0],
        [int(T0 + 300_000), 15.0, 18.0, 14.0, 17.0, 1300.0],
    ]
    resp = await srv.client.get("/api/bars", params={"symbol": "MSFT", "interval": "1m"})
    assert (await resp.json())["bars"] == [[int(r[0]), *r[1:]] for r in rows]
    q = srv.hub.book.quotes["MSFT"]
    assert (q["price"], q["open"], q["high"], q["low"], q["volume"]) == (
        17.0,
        10.0,
        18.0,
        9.0,
        2800.0,
    )
    # A bar that breaks the rules never reaches the hub (the feed runner drops it).
    bad = Bar("MSFT", T0 + 420_000, "1m", 10.0, 9.0, 9.5, 10.0, 1.0)  # high < open
    before = srv.hub.stats["bars_in"]
    srv.feed.push(bad)
    await srv.push(Listing(("MSFT",)))  # (after the bad one: the feed's events are in order)
    assert srv.hub.stats["bars_in"] == before


async def test_a_reset_sends_every_live_stream_a_fresh_history(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client)
    day2 = trades(50, start=T0 + 86_400_000)
    await srv.push(*trades(50), *day2)
    ws, _ = await srv.connect()
    await ws.send_json({"op": "throttle", "ms": 10})
    _, hist = await ask(ws, symbol="AAPL", interval="1m", limit=5000)
    assert hist["bars"][-1][0] >= T0 + 86_400_000
    # A replay seeks back into day 1: everything from day 2 on is forgotten.
    await srv.push(Reset(("AAPL",), T0 + 86_400_000))
    fresh = await recv_type(ws, "bars")
    assert fresh["bars"] == pandas_rows(trades(50), "1m")
    q = srv.hub.book.quotes["AAPL"]
    await srv.push(Tick("AAPL", 55.5, T0 + 10_000.0, size=2.0))
    assert (q["open"], q["high"], q["low"], q["volume"]) == (55.5, 55.5, 55.5, 2.0)


async def test_tokens_entitle_bars_as_quotes(aiohttp_client: AiohttpClient) -> None:
    from ticker_feeds.testing import FakeFeed

    feed = FakeFeed([Listing(("AAPL", "MSFT")), *trades(3)])
    auth = AuthConfig(token_secret=SECRET)
    client = await aiohttp_client(create_app([feed], auth=auth))
    await until(lambda: client.app[RUNNERS][0].events >= 4)
    ws = await client.ws_connect("/ws", params={"token": token(["MSFT"])})
    await recv(ws)
    err, _ = await ask(ws, symbol="AAPL", interval="1m")
    assert err["code"] == "unauthorized"
    resp = await client.get(
        "/api/bars",
        params={"symbol": "AAPL", "interval": "1m"},
        headers={"Authorization": f"Bearer {token(['MSFT'])}"},
    )
    assert resp.status == 403


async def test_live_sim_bars_bound_every_price_received(aiohttp_client: AiohttpClient) -> None:
    """A live simulated market: every price a connection received lies within the high/low of
    the 1 s bar of its time, as that connection's own ``bar`` messages finally gave it."""
    feed = SimFeed({"symbols": "AAPL+MSFT", "rate": "400", "seed": "3"})
    client = await aiohttp_client(create_app([feed]))
    hub = client.app[HUB]
    await until(lambda: "AAPL" in hub.book.quotes, what="first tick")
    ws = await client.ws_connect("/ws")
    await recv(ws)
    await ws.send_json({"op": "throttle", "ms": 0})
    await ws.send_json({"op": "subscribe", "symbols": ["AAPL"]})
    await ws.send_json({"op": "bars", "symbol": "AAPL", "interval": "1s", "limit": 10})
    series: dict[int, list[float]] = {}
    prices: list[tuple[float, float]] = []
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        f = await recv(ws, within=2000 * MS)
        apply(series, f)
        if f["type"] in ("snapshot", "delta"):
            q = f["quotes"].get("AAPL")
            if q and "price" in q:
                prices.append((q["ts"], q["price"]))
    await ws.close()
    checked = 0
    for ts, price in prices:
        bar = series.get(int(ts - ts % 1000))
        if bar is None or bar is series[max(series)]:
            continue  # before the history's first bar, or the still-forming one
        assert bar[3] <= price <= bar[2], (ts, price, bar)
        checked += 1
    assert checked > 100, f"only {checked} prices fell in final bars"

"""``GET /api/history``: v1's columnar bars, now served from the hub's bar book."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from ticker.core.events import Listing, Tick
from ticker.net.server import RUNNERS, create_app
from ticker_feeds.testing import FakeFeed

T0 = 1_700_000_000_000.0


# GET /api/history


async def _client_with_ticks(
    aiohttp_client: AiohttpClient, ticks: list[Tick]
) -> TestClient[web.Request, web.Application]:
    feed = FakeFeed([Listing(("AAPL", "MSFT", "IDLE")), *ticks])
    app = create_app([feed])
    client = await aiohttp_client(app)
    runner = app[RUNNERS][0]
    for _ in range(200):
        if runner.events >= len(ticks) + 1:
            break
        await asyncio.sleep(10 * MS)
    return client


async def test_api_history_serves_bars(aiohttp_client: AiohttpClient) -> None:
    ticks = [Tick("AAPL", 100.0 + i, T0 + i * 400.0, size=2.0) for i in range(10)]
    client = await _client_with_ticks(aiohttp_client, ticks)
    resp = await client.get("/api/history", params={"symbol": "aapl", "interval": "1s"})
    assert resp.status == 200
    body = await resp.json()
    assert body["symbol"] == "AAPL"
    assert body["interval"] == "1s"
    assert body["interval_ms"] == 1000
    assert body["last_ts"] == T0 + 3600.0
    assert body["bars"]["t"] == [T0, T0 + 1000, T0 + 2000, T0 + 3000]
    assert body["bars"]["open"] == [100.0, 103.0, 105.0, 108.0]
    assert body["bars"]["close"] == [102.0, 104.0, 107.0, 109.0]
    assert body["bars"]["volume"] == [6.0, 4.0, 6.0, 4.0]

    resp = await client.get("/api/history?symbol=AAPL&interval=5s&limit=1")
    body = await resp.json()
    assert body["bars"]["t"] == [T0]
    assert body["bars"]["high"] == [109.0]

    # Known symbol that has not traded yet: no bars, not an error.
    resp = await client.get("/api/history?symbol=IDLE")
    assert resp.status == 200
    body = await resp.json()
    assert body["bars"]["t"] == []
    assert body["last_ts"] is None


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("", 400, "bad_request"),
        ("?symbol=AAPL&interval=2s", 400, "bad_interval"),
        ("?symbol=AAPL&limit=x", 400, "bad_request"),
        ("?symbol=AAPL&limit=0", 400, "bad_request"),
        ("?symbol=NOPE", 404, "unknown_symbol"),
    ],
)
async def test_api_history_rejects_bad_requests(
    aiohttp_client: AiohttpClient, query: str, status: int, code: str
) -> None:
    client = await _client_with_ticks(aiohttp_client, [Tick("AAPL", 1.0, T0)])
    resp = await client.get("/api/history" + query)
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"] == code

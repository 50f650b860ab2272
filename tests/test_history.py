"""OHLCV bars (ticker.store.history) and the ``GET /api/history`` route that serves them."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings, strategies as st
from pytest_aiohttp import AiohttpClient

from feeds.testing import FakeFeed
from tests.conftest import MS
from ticker.core.events import Listing, Tick
from ticker.net.server import RUNNERS, create_app
from ticker.store.history import (
    INTERVALS,
    MAX_LIMIT,
    Bars,
    bars,
    bars_from_columns,
    parse_interval,
)

T0 = 1_732_640_000_000.0  # a whole second, epoch ms

TickRow = tuple[float, float, float]


def reference(ticks: Sequence[TickRow], interval_ms: int, limit: int) -> list[tuple[float, ...]]:
    """Plain-Python bars: (t, open, high, low, close, volume, count), oldest first."""
    order = sorted(range(len(ticks)), key=lambda i: (ticks[i][0], i))
    out: dict[float, list[float]] = {}
    for i in order:
        ts, price, size = ticks[i]
        t = (ts // interval_ms) * interval_ms
        b = out.get(t)
        if b is None:
            out[t] = [price, price, price, price, size, 1]
        else:
            b[1] = max(b[1], price)
            b[2] = min(b[2], price)
            b[3] = price
            b[4] += size
            b[5] += 1
    rows = [(t, *b) for t, b in sorted(out.items())]
    return rows[-limit:] if limit else []


def rows(b: Bars) -> list[tuple[float, ...]]:
    return list(zip(b.t, b.open, b.high, b.low, b.close, b.volume, b.count, strict=True))


# Examples


def test_one_bar_per_interval_with_ohlcv() -> None:
    ticks = [
        (T0 + 10, 100.0, 5.0),
        (T0 + 400, 101.5, 1.0),
        (T0 + 600, 99.0, 2.0),
        (T0 + 999, 100.5, 3.0),
        (T0 + 1000, 102.0, 7.0),
    ]
    b = bars(ticks, 1000, 10)
    assert b.t == [T0, T0 + 1000]
    assert b.open == [100.0, 102.0]
    assert b.high == [101.5, 102.0]
    assert b.low == [99.0, 102.0]
    assert b.close == [100.5, 102.0]
    assert b.volume == [11.0, 7.0]
    assert b.count == [4, 1]
    assert b.last_ts == T0 + 1000


def test_limit_keeps_the_newest_bars() -> None:
    ticks = [(T0 + i * 1000.0, 100.0 + i, 1.0) for i in range(10)]
    b = bars(ticks, 1000, 3)
    assert b.t == [T0 + 7000, T0 + 8000, T0 + 9000]
    assert b.close == [107.0, 108.0, 109.0]
    assert b.last_ts == T0 + 9000


def test_five_second_and_minute_bars() -> None:
    ticks = [(T0 + i * 700.0, 100.0 + (i % 7), 1.0) for i in range(200)]  # 140 s of ticks
    five = bars(ticks, INTERVALS["5s"], 1000)
    minute = bars(ticks, INTERVALS["1min"], 1000)
    assert len(five) == 28
    assert sum(five.count) == sum(minute.count) == 200
    assert all(t % 60_000 == 0 for t in minute.t)
    assert max(minute.high) == max(five.high) == 106.0


def test_out_of_order_ticks_are_taken_in_time_order() -> None:
    ticks = [(T0 + 500, 2.0, 1.0), (T0 + 100, 1.0, 1.0), (T0 + 900, 3.0, 1.0)]
    b = bars(ticks, 1000, 5)
    assert (b.open, b.close, b.last_ts) == ([1.0], [3.0], T0 + 900)


def test_no_ticks_and_zero_limit() -> None:
    assert bars([], 1000, 10) == Bars(1000)
    zero = bars([(T0, 1.0, 1.0)], 1000, 0)
    assert len(zero) == 0
    assert zero.last_ts == T0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        bars([], 0, 10)
    with pytest.raises(ValueError, match="limit"):
        bars([], 1000, -1)
    with pytest.raises(ValueError, match="1s, 5s, 1min"):
        parse_interval("2s")
    assert [parse_interval(n) for n in ("1s", "5s", "1min")] == [1000, 5000, 60000]


def test_columns_give_the_same_bars_as_tuples() -> None:
    ticks = [(T0 + 700.0 * i, 100.0 + (i * 7) % 5, float(i % 3)) for i in range(50)]
    ts, price, size = (list(c) for c in zip(*ticks, strict=True))
    assert bars_from_columns(ts, price, size, 1000, 20) == bars(ticks, 1000, 20)
    assert bars_from_columns([], [], [], 1000) == Bars(1000)
    with pytest.raises(ValueError, match="same length"):
        bars_from_columns([T0], [1.0], [], 1000)
    with pytest.raises(ValueError, match="interval_ms"):
        bars_from_columns([], [], [], -5)
    with pytest.raises(ValueError, match="limit"):
        bars_from_columns([], [], [], 1000, -1)


def test_json_is_columnar() -> None:
    body = bars([(T0, 1.0, 2.0)], 1000, 5).to_json()
    assert body == {
        "interval_ms": 1000,
        "last_ts": T0,
        "bars": {
            "t": [T0],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [2.0],
            "count": [1],
        },
    }


# Properties

tick_rows = st.lists(
    st.tuples(
        st.floats(T0, T0 + 600_000, allow_nan=False),
        st.floats(0.01, 10_000, allow_nan=False),
        st.sampled_from([0.0, 1.0, 3.0, 100.0, 250.0]),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(tick_rows, st.sampled_from(sorted(INTERVALS.values())), st.integers(0, 400))
def test_bars_match_a_plain_python_reference(
    ticks: list[TickRow], interval_ms: int, limit: int
) -> None:
    assert rows(bars(ticks, interval_ms, limit)) == reference(ticks, interval_ms, limit)


@settings(max_examples=60, deadline=None)
@given(tick_rows, st.sampled_from(sorted(INTERVALS.values())), st.integers(0, 400))
def test_columns_match_tuples(ticks: list[TickRow], interval_ms: int, limit: int) -> None:
    ts, price, size = ([t[i] for t in ticks] for i in range(3))
    assert bars_from_columns(ts, price, size, interval_ms, limit) == bars(ticks, interval_ms, limit)


@settings(max_examples=150, deadline=None)
@given(tick_rows, st.sampled_from(sorted(INTERVALS.values())))
def test_bar_invariants(ticks: list[TickRow], interval_ms: int) -> None:
    b = bars(ticks, interval_ms, MAX_LIMIT)
    # Every tick lands in exactly one bar; volume is conserved.
    assert sum(b.count) == len(ticks)
    assert math.isclose(sum(b.volume), sum(s for _, _, s in ticks), abs_tol=1e-6)
    # Bars are aligned, strictly increasing, and each one's range holds its open and close.
    assert all(t % interval_ms == 0 for t in b.t)
    assert all(a < c for a, c in zip(b.t, b.t[1:], strict=False))
    for _, o, h, lo, c, _, n in rows(b):
        assert lo <= min(o, c) <= max(o, c) <= h
        assert n >= 1
    if ticks:
        assert b.last_ts == max(ts for ts, _, _ in ticks)
        assert max(b.high) == max(p for _, p, _ in ticks)
        assert min(b.low) == min(p for _, p, _ in ticks)


@settings(max_examples=60, deadline=None)
@given(tick_rows, st.integers(1, 50), st.randoms(use_true_random=False))
def test_limit_is_a_suffix_and_arrival_order_only_breaks_ties(
    ticks: list[TickRow], limit: int, rnd: random.Random
) -> None:
    full = rows(bars(ticks, 1000, MAX_LIMIT))
    assert rows(bars(ticks, 1000, limit)) == full[-limit:]
    # Shuffling ticks with distinct timestamps changes nothing.
    distinct = list({ts: (ts, p, s) for ts, p, s in ticks}.values())
    shuffled = distinct[:]
    rnd.shuffle(shuffled)
    assert rows(bars(shuffled, 1000, MAX_LIMIT)) == rows(bars(distinct, 1000, MAX_LIMIT))


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

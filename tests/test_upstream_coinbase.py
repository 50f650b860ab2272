"""The coinbase adapter against the real recorded Coinbase Exchange session, on loopback."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from feeds.coinbase import CoinbaseCodec, CoinbaseFeed, parse_iso_ms
from feeds.testing import check_event, check_feed
from tests.upstream.ws import ReplayServer, load_recording
from ticker.core.events import Listing, Tick

NOW_MS = 1_618_677_900_000.0


def _frames(real_data: Path) -> list[str]:
    return [f for _, f in load_recording(real_data / "ws" / "COINBASE.ws.28.0.txt").server]


def _products(real_data: Path) -> list[str]:
    """The product ids the recorded client subscribed to."""
    rec = load_recording(real_data / "ws" / "COINBASE.ws.28.0.txt")
    ids: list[str] = json.loads(rec.client[0][1])["product_ids"]
    return ids


def _derived_trades(real_data: Path) -> set[tuple[str, float, float, float]]:
    """(product, price, size, time ms) of every trade, from the CSV derived from the recording."""
    with (real_data / "tick" / "coinbase_matches_2021-04-17.csv").open() as fh:
        return {
            (r["product_id"], float(r["price"]), float(r["size"]), parse_iso_ms(r["time"]) or 0.0)
            for r in csv.DictReader(fh)
        }


async def _run_until_done(
    feed: CoinbaseFeed, server: ReplayServer, within: float = 20.0
) -> list[Tick]:
    """Every tick the feed yields until the server has sent everything and the feed read it."""
    ticks: list[Tick] = []

    async def consume() -> None:
        async for ev in feed.events():
            assert check_event(ev) == []
            if isinstance(ev, Tick):
                ticks.append(ev)

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(within):
            await server.done.wait()
            for _ in range(int(within * 100)):  # until the feed has read every frame sent
                if feed.link.frames >= server.sent:
                    break
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await feed.aclose()
    return ticks


def _feed(url: str, products: list[str]) -> CoinbaseFeed:
    return CoinbaseFeed({"products": "+".join(products), "url": url, "backoff": "0.01"})


def _trades(ticks: list[Tick]) -> set[tuple[str, float, float, float]]:
    out = [(t.symbol, t.price, t.size, t.ts) for t in ticks if t.size is not None]
    assert len(out) == len(set(out))  # each trade once
    return set(out)


async def test_replayed_session_maps_onto_ticks(real_data: Path) -> None:
    frames = _frames(real_data)
    products = _products(real_data)
    assert len(products) == 10
    async with ReplayServer(frames) as server:
        feed = _feed(server.url, products)
        ticks = await _run_until_done(feed, server)
    derived = _derived_trades(real_data)
    assert len(derived) == 107
    assert _trades(ticks) == derived
    # Ticker-sourced ticks carry the quote and the 24 h figures exactly as sent.
    first = json.loads(next(f for f in frames if '"type":"ticker"' in f))
    t0 = next(t for t in ticks if t.symbol == first["product_id"])
    assert (t0.price, t0.bid, t0.ask, t0.volume, t0.prev_close) == (
        float(first["price"]),
        float(first["best_bid"]),
        float(first["best_ask"]),
        float(first["volume_24h"]),
        float(first["open_24h"]),
    )
    assert t0.ts == parse_iso_ms(first["time"]) == 1_618_677_810_244.075
    sub = json.loads(server.received[0][0])
    assert sub == {
        "type": "subscribe",
        "product_ids": products,
        "channels": ["ticker", "matches", "heartbeat"],
    }
    h = feed.health()
    assert h["garbage"] == 0 and h["gaps"] == 0 and h["out_of_order"] == 0
    assert h["ignored"] >= 9719  # the recording's level2 traffic: known, not mapped
    assert h["duplicates"] + len([t for t in ticks if t.size is None]) == 107  # ticker and match


async def test_drop_mid_stream_reconnects_and_resubscribes(real_data: Path) -> None:
    frames = _frames(real_data)
    products = _products(real_data)
    async with ReplayServer(frames, drop_after=4000) as server:
        feed = _feed(server.url, products)
        ticks = await _run_until_done(feed, server)
    assert _trades(ticks) == _derived_trades(real_data)
    assert len(server.received) == 2 and server.received[0] == server.received[1]
    h = feed.health()
    assert h["connects"] == 2 and h["reconnects"] == 1


async def test_garbage_frames_are_counted_and_skipped(real_data: Path) -> None:
    frames = _frames(real_data)
    garbage: list[tuple[int, str | bytes]] = [
        (5, "{not json"),
        (50, b"\xff\xfe"),
        (500, '{"type": "match", "product_id": "SKL-USD"}'),
        (
            600,
            '{"type": "ticker", "product_id": "SKL-USD", "sequence": 1, "trade_id": 1, '
            '"price": "1", "time": "yesterday", "last_size": "1"}',
        ),
        (700, '"just a string"'),
        (800, '{"price": "1"}'),
    ]
    async with ReplayServer(frames, garbage=garbage) as server:
        feed = _feed(server.url, _products(real_data))
        ticks = await _run_until_done(feed, server)
    assert _trades(ticks) == _derived_trades(real_data)
    assert feed.health()["garbage"] == len(garbage)


async def test_no_subscribe_within_5s_is_dropped_by_the_fake_like_coinbase() -> None:
    # The fake enforces the rule; our adapter subscribes at once, so only a silent client trips it.
    import aiohttp

    async with ReplayServer(["{}"], subscribe_within=0.2) as server, aiohttp.ClientSession() as s:
        async with s.ws_connect(server.url) as ws:
            msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_coinbase_conforms(real_data: Path) -> None:
    frames = _frames(real_data)
    async with ReplayServer(frames) as server:
        events = await check_feed(
            CoinbaseFeed,
            {"products": "+".join(_products(real_data)), "url": server.url},
            max_events=30,
        )
    assert isinstance(events[0], Listing) and len(events[0].symbols) == 10


# Pure codec


def _match(tid: int, seq: int) -> str:
    return json.dumps(
        {
            "type": "match",
            "trade_id": tid,
            "sequence": seq,
            "product_id": "BTC-USD",
            "price": "100.5",
            "size": "0.1",
            "time": "2021-04-17T16:43:37.089723Z",
        }
    )


def test_trade_id_gaps_sequence_order_and_heartbeat() -> None:
    c = CoinbaseCodec(["BTC-USD"])
    assert len(c.handle(_match(10, 100), NOW_MS)) == 1
    assert len(c.handle(_match(13, 150), NOW_MS)) == 1  # trades 11 and 12 missed
    assert c.handle(_match(12, 140), NOW_MS) == []  # sequence went backwards
    hb = {
        "type": "heartbeat",
        "product_id": "BTC-USD",
        "sequence": 160,
        "last_trade_id": 15,
        "time": "2021-04-17T16:43:38Z",
    }
    assert c.handle(json.dumps(hb), NOW_MS) == []  # 14 and 15 happened, we never saw them
    assert (c.counters["gaps"], c.counters["missed_trades"], c.counters["out_of_order"]) == (
        2,
        4,
        1,
    )


def test_options() -> None:
    with pytest.raises(ValueError, match="product id"):
        CoinbaseFeed({"products": "BTCUSD"})
    assert CoinbaseFeed({"products": "btc-usd"}).codec.products == ["BTC-USD"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=5),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "product_id",
        "sequence",
        "trade_id",
        "price",
        "size",
        "last_size",
        "time",
        "best_bid",
        "best_ask",
        "volume_24h",
        "open_24h",
        "last_trade_id",
    ]
)
_shaped = st.tuples(
    st.sampled_from(["ticker", "match", "last_match", "heartbeat", "error", "l2update"]),
    st.dictionaries(
        _keys, _json | st.just("2021-04-17T16:43:37Z") | st.just("BTC-USD"), max_size=12
    ),
).map(lambda kv: {**kv[1], "type": kv[0]})


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, _shaped) | st.text(max_size=50))
def test_arbitrary_frames_never_raise(msg: Any) -> None:
    c = CoinbaseCodec(["BTC-USD"])
    for ev in c.handle(msg if isinstance(msg, str) else json.dumps(msg), NOW_MS):
        assert check_event(ev) == []

"""The coinbase adapter against the real recorded Coinbase Exchange session, on loopback."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from tests.upstream.ws import ReplayServer, load_recording
from tests.wsutil import until
from ticker.core.events import Listing, Tick
from ticker_feeds.coinbase import AdvancedTradeCodec, CoinbaseCodec, CoinbaseFeed, parse_iso_ms
from ticker_feeds.testing import check_event, check_feed

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
    # Each of the 107 tickers either rode on its own trade's tick (it came before its match: 17
    # matches and 10 last_matches) or came after it, as a quote update without a size.
    riding = [t for t in ticks if t.size is not None and t.bid is not None]
    assert (len(riding), len([t for t in ticks if t.size is None])) == (27, 80)
    assert h["duplicates"] == 0


def _batched(frames: list[str]) -> tuple[list[str], int]:
    """The recorded session as the ticker channel sends a cascade: for each product's trades taken
    two by two (k, k+1), one ticker for k+1 goes out before the match of k, and none for k. Also
    returns how many such batches it made."""
    trades: dict[tuple[str, int], dict[str, int]] = {}
    for i, f in enumerate(frames):
        m = json.loads(f)
        if m.get("type") in ("ticker", "match", "last_match"):
            role = "ticker" if m["type"] == "ticker" else "match"
            trades.setdefault((m["product_id"], m["trade_id"]), {})[role] = i
    move: dict[int, int] = {}  # the position a batched ticker goes to -> its frame index
    drop: set[int] = set()
    for (prod, tid), at in trades.items():
        nxt = trades.get((prod, tid + 1))
        if tid % 2 or nxt is None or len(at) < 2 or len(nxt) < 2:
            continue
        drop |= {at["ticker"], nxt["ticker"]}
        move[min(at.values())] = nxt["ticker"]
    out = []
    for i, f in enumerate(frames):
        if i in move:
            out.append(frames[move[i]])
        if i not in drop:
            out.append(f)
    return out, len(move)


async def test_batched_tickers_lose_no_trade_and_keep_trade_order(real_data: Path) -> None:
    frames, batches = _batched(_frames(real_data))
    assert batches >= 20
    async with ReplayServer(frames) as server:
        feed = _feed(server.url, _products(real_data))
        ticks = await _run_until_done(feed, server)
    # Every match of the session is reported exactly once, with its own price, size and time...
    matches = [
        (m["product_id"], m["trade_id"], float(m["price"]), float(m["size"]), m["time"])
        for m in map(json.loads, frames)
        if m.get("type") in ("match", "last_match")
    ]
    reported: list[tuple[str, float, float | None, float | None]] = [
        (t.symbol, t.price, t.size, t.ts) for t in ticks if t.size is not None
    ]
    for prod, _, price, size, when in matches:
        assert reported.count((prod, price, size, parse_iso_ms(when))) == 1
    assert len(reported) == len(matches) == 107
    # ...in trade-id order within each product.
    for prod in {m[0] for m in matches}:
        ids = [tid for p, tid, *_ in matches if p == prod]
        assert ids == sorted(ids)
        times = [t.ts for t in ticks if t.symbol == prod and t.size is not None]
        assert times == sorted(times)
    h = feed.health()
    assert (h["out_of_order"], h["duplicates"], h["gaps"]) == (0, 0, 0)


def _ticker(tid: int, seq: int, price: str = "100.5") -> str:
    return json.dumps(
        {
            "type": "ticker",
            "trade_id": tid,
            "sequence": seq,
            "product_id": "BTC-USD",
            "price": price,
            "last_size": "0.3",
            "best_bid": "100.4",
            "best_ask": "100.6",
            "volume_24h": "1234.5",
            "open_24h": "99",
            "time": "2021-04-17T16:43:37.089723Z",
        }
    )


def test_a_batched_ticker_ahead_of_its_matches_reports_every_trade_once_in_order() -> None:
    c = CoinbaseCodec(["BTC-USD"])
    assert c.handle(_ticker(12, 120, "101"), NOW_MS) == []  # held for its match
    ticks: list[Tick] = []
    for seq, tid in ((100, 10), (110, 11), (120, 12)):
        ticks += [t for t in c.handle(_match(tid, seq), NOW_MS) if isinstance(t, Tick)]
    assert [t.size for t in ticks] == [0.1, 0.1, 0.1]  # every trade once, in order
    assert (ticks[2].bid, ticks[2].ask, ticks[2].volume) == (100.4, 100.6, 1234.5)
    assert ticks[0].bid is None and ticks[1].bid is None  # 10 and 11 had no ticker of their own
    assert c.counters["out_of_order"] == c.counters["duplicates"] == 0
    # A ticker after its match is a quote update; a held one whose match is lost comes out with
    # its size once a heartbeat shows the trade was done.
    [q] = c.handle(_ticker(12, 121), NOW_MS)
    assert isinstance(q, Tick) and q.size is None and q.bid == 100.4
    assert c.handle(_ticker(13, 130), NOW_MS) == []
    hb = {"type": "heartbeat", "product_id": "BTC-USD", "sequence": 140, "last_trade_id": 13}
    [lost] = c.handle(json.dumps(hb), NOW_MS)
    assert isinstance(lost, Tick) and lost.size == 0.3
    assert c.handle(_match(13, 130), NOW_MS) == []  # late: already reported
    assert c.counters["duplicates"] == 1


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


# Advanced Trade (api=advanced), from the messages Coinbase documents for each channel


def _envelope(channel: str, seq: int, events: list[dict[str, Any]], ts: str) -> str:
    return json.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": ts,
            "sequence_num": seq,
            "events": events,
        }
    )


ADV_TICKER = {
    "type": "ticker",
    "product_id": "BTC-USD",
    "price": "21932.98",
    "volume_24_h": "16038.28770938",
    "low_24_h": "21835.29",
    "high_24_h": "23011.18",
    "low_52_w": "15460",
    "high_52_w": "48240",
    "price_percent_chg_24_h": "-4.15775596190603",
    "best_bid": "21931.98",
    "best_bid_quantity": "8000.21000000",
    "best_ask": "21933.98",
    "best_ask_quantity": "8038.07000000",
}


def _adv_trade(tid: str, price: str, when: str, prod: str = "ETH-USD") -> dict[str, str]:
    return {
        "trade_id": tid,
        "product_id": prod,
        "price": price,
        "size": "0.3",
        "side": "BUY",
        "time": when,
    }


def _advanced_session() -> list[str]:
    t1 = _adv_trade("000000000", "1260.01", "2019-08-14T20:42:27.265Z")
    t2 = _adv_trade("000000001", "1260.02", "2019-08-14T20:42:27.5Z")
    t3 = _adv_trade("000000002", "1260.5", "2019-08-14T20:42:28.1Z")
    subs = {"subscriptions": {"market_trades": ["BTC-USD", "ETH-USD"]}}
    hb = {"current_time": "2023-06-23 20:31:56.121961769 +0000 UTC", "heartbeat_counter": 3049}
    return [
        _envelope("subscriptions", 0, [subs], "2023-02-09T20:19:35.1Z"),
        _envelope(
            "market_trades",
            1,
            [{"type": "snapshot", "trades": [t2, t1]}],
            "2023-02-09T20:19:35.39625135Z",
        ),
        _envelope(
            "ticker",
            2,
            [{"type": "snapshot", "tickers": [ADV_TICKER]}],
            "2023-02-09T20:30:37.167359596Z",
        ),
        _envelope("heartbeats", 3, [hb], "2023-06-23T20:31:26.122969572Z"),
        _envelope(
            "market_trades", 5, [{"type": "update", "trades": [t3, t2]}], "2023-02-09T20:30:38Z"
        ),
        _match(20, 200),  # an Exchange message on this endpoint: not what it documents
        _envelope("candles", 6, [{"type": "update", "candles": []}], "2023-02-09T20:30:39Z"),
    ]


async def test_advanced_trade_documented_channels_map_onto_ticks() -> None:
    async with ReplayServer(_advanced_session()) as server:
        feed = CoinbaseFeed({"products": "BTC-USD+ETH-USD", "api": "advanced", "url": server.url})
        ticks: list[Tick] = []

        async def consume() -> None:
            async for ev in feed.events():
                assert check_event(ev) == []
                if isinstance(ev, Tick):
                    ticks.append(ev)

        task = asyncio.create_task(consume())
        try:
            await until(lambda: feed.link.frames >= server.sent and server.done.is_set(), 10)
            await until(lambda: len(server.received[0]) == 3, 10)  # the other two, paced
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await feed.aclose()
    eth = [(t.price, t.size, t.ts) for t in ticks if t.symbol == "ETH-USD"]
    assert eth == [  # oldest first, trade 1 once although it came twice
        (1260.01, 0.3, parse_iso_ms("2019-08-14T20:42:27.265Z")),
        (1260.02, 0.3, parse_iso_ms("2019-08-14T20:42:27.5Z")),
        (1260.5, 0.3, parse_iso_ms("2019-08-14T20:42:28.1Z")),
    ]
    [btc] = [t for t in ticks if t.symbol == "BTC-USD"]
    assert (btc.price, btc.size, btc.bid, btc.ask, btc.volume) == (
        21932.98,
        None,
        21931.98,
        21933.98,
        16038.28770938,
    )
    assert btc.prev_close == pytest.approx(21932.98 / (1 - 0.0415775596190603))
    assert btc.ts == parse_iso_ms("2023-02-09T20:30:37.167359596Z")
    assert [json.loads(m) for m in server.received[0]] == [
        {"type": "subscribe", "channel": "market_trades", "product_ids": ["BTC-USD", "ETH-USD"]},
        {"type": "subscribe", "channel": "ticker", "product_ids": ["BTC-USD", "ETH-USD"]},
        {"type": "subscribe", "channel": "heartbeats"},
    ]
    h = feed.health()
    assert (h["duplicates"], h["heartbeats"], h["gaps"], h["missed_messages"]) == (1, 1, 1, 1)
    assert (h["garbage"], h["ignored"], h["connects"]) == (1, 1, 1)
    assert feed.config.url == server.url
    assert CoinbaseFeed({"api": "advanced"}).config.url == "wss://advanced-trade-ws.coinbase.com"
    assert CoinbaseFeed({}).config.url == "wss://ws-feed.exchange.coinbase.com"
    with pytest.raises(ValueError, match="exchange or advanced"):
        CoinbaseFeed({"api": "pro"})


async def test_advanced_trade_conforms() -> None:
    async with ReplayServer(_advanced_session()) as server:
        events = await check_feed(
            CoinbaseFeed,
            {"products": "BTC-USD+ETH-USD", "api": "advanced", "url": server.url},
            min_events=4,
            max_events=4,
        )
    assert isinstance(events[0], Listing) and events[0].symbols == ("BTC-USD", "ETH-USD")


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        lambda ch, seq, evs: {"channel": ch, "sequence_num": seq, "events": evs},
        st.sampled_from(["market_trades", "ticker", "heartbeats", "x"]),
        st.integers(-2, 5),
        st.lists(
            st.dictionaries(
                st.sampled_from(["type", "trades", "tickers"]),
                st.lists(
                    st.dictionaries(
                        st.sampled_from(
                            ["trade_id", "product_id", "price", "size", "time", "best_bid"]
                        ),
                        st.none()
                        | st.integers()
                        | st.text(max_size=6)
                        | st.just("1.5")
                        | st.just("2023-02-09T20:30:38Z"),
                    ),
                    max_size=3,
                ),
            ),
            max_size=3,
        ),
    )
    | st.text(max_size=30)
)
def test_advanced_arbitrary_frames_never_raise(msg: Any) -> None:
    c = AdvancedTradeCodec(["BTC-USD"])
    for ev in c.handle(msg if isinstance(msg, str) else json.dumps(msg), NOW_MS):
        assert check_event(ev) == []


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

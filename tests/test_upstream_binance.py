"""The binance adapter against the real recorded Binance session, replayed on loopback."""

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
from ticker.core.events import Event, Listing, Tick
from ticker_feeds.binance import BinanceCodec, BinanceFeed
from ticker_feeds.testing import check_event, check_feed

SYMBOLS = "nknusdt+blzeth+lrcbtc+runeeur"
NOW_MS = 1_633_998_600_000.0


def _frames(real_data: Path) -> list[str]:
    return [f for _, f in load_recording(real_data / "ws" / "BINANCE.ws.1.0.txt").server]


def _expected(frames: list[str]) -> tuple[list[tuple[str, float, float, float]], list[Any]]:
    """(symbol, price, size, T) of every aggTrade, and (symbol, bid, ask) of every bookTicker."""
    trades, books = [], []
    for f in frames:
        d = json.loads(f)["data"]
        if d.get("e") == "aggTrade":
            trades.append((d["s"], float(d["p"]), float(d["q"]), float(d["T"])))
        elif "e" not in d:
            books.append((d["s"], float(d["b"]), float(d["a"])))
    return trades, books


async def _collect(feed: BinanceFeed, n: int, within: float = 10.0) -> list[Tick]:
    ticks: list[Tick] = []
    agen = feed.events()
    try:
        async with asyncio.timeout(within):
            async for ev in agen:
                assert check_event(ev) == []
                if isinstance(ev, Tick):
                    ticks.append(ev)
                    if len(ticks) >= n:
                        break
    finally:
        await agen.aclose()  # type: ignore[attr-defined]
        await feed.aclose()
    return ticks


def _feed(url: str, **extra: str) -> BinanceFeed:
    return BinanceFeed({"symbols": SYMBOLS, "url": url, "backoff": "0.01", **extra})


def _check_matches_recording(ticks: list[Tick], frames: list[str]) -> None:
    trades, books = _expected(frames)
    got_trades = [(t.symbol, t.price, t.size, t.ts) for t in ticks if t.size is not None]
    got_books = [(t.symbol, t.bid, t.ask) for t in ticks if t.size is None]
    assert got_trades == trades
    assert got_books == books


async def test_replayed_session_maps_onto_ticks(real_data: Path) -> None:
    frames = _frames(real_data)
    trades, books = _expected(frames)
    assert len(trades) == 2 and len(books) == 84
    async with ReplayServer(frames) as server:
        feed = _feed(server.url)
        ticks = await _collect(feed, len(trades) + len(books))
    _check_matches_recording(ticks, frames)
    # Trades agree with the CSV derived independently from the same recording.
    with (real_data / "tick" / "binance_aggtrades_2021-10-12.csv").open() as fh:
        derived = [
            (r["symbol"], float(r["price"]), float(r["qty"]), float(r["trade_time_ms"]))
            for r in csv.DictReader(fh)
            if r["venue"] == "binance"
        ]
    assert [(t.symbol, t.price, t.size, t.ts) for t in ticks if t.size] == derived
    # A trade keeps the quote seen before it; a book tick keeps the last trade price.
    nkn = [t for t in ticks if t.symbol == "NKNUSDT"]
    i = next(i for i, t in enumerate(nkn) if t.size is not None)
    assert (nkn[i].bid, nkn[i].ask) == (nkn[i - 1].bid, nkn[i - 1].ask)
    assert all(t.price == 0.3528 for t in nkn[i + 1 :])
    # What we sent: one SUBSCRIBE for every symbol's streams.
    sub = json.loads(server.received[0][0])
    assert sub["method"] == "SUBSCRIBE"
    assert set(sub["params"]) == {
        f"{s}@{k}" for s in SYMBOLS.split("+") for k in ("aggTrade", "bookTicker", "ticker")
    }
    h = feed.health()
    # Every frame read was a tick or a known-but-unmapped event (depthUpdate, kline).
    assert h["garbage"] == 0 and h["ignored"] > 0 and h["frames"] == h["ticks"] + h["ignored"]
    assert h["gaps"] == 0 and h["connects"] == 1


async def test_drop_mid_stream_reconnects_and_resubscribes(real_data: Path) -> None:
    frames = _frames(real_data)
    async with ReplayServer(frames, drop_after=100) as server:
        feed = _feed(server.url)
        ticks = await _collect(feed, 86)
    _check_matches_recording(ticks, frames)  # nothing lost, nothing twice
    assert len(server.received) == 2
    assert [json.loads(c[0])["params"] for c in server.received] == [
        json.loads(server.received[0][0])["params"]
    ] * 2
    h = feed.health()
    assert h["connects"] == 2 and h["reconnects"] == 1 and "closed by upstream" in h["last_error"]


async def test_garbage_frames_are_counted_and_skipped(real_data: Path) -> None:
    frames = _frames(real_data)
    garbage: list[tuple[int, str | bytes]] = [
        (3, "not json at all"),
        (10, b"\x00\x01binary"),
        (20, "[1, 2, 3]"),
        (30, '{"stream": "x@aggTrade", "data": {"e": "aggTrade", "s": "NKNUSDT", "p": "abc"}}'),
        (40, '{"stream": "x@bookTicker", "data": {"u": 1, "s": "X", "b": "1", "a": "-2"}}'),
        (50, '{"stream": "x", "data": null}'),
        (60, '{"no": "shape"}'),
    ]
    async with ReplayServer(frames, garbage=garbage) as server:
        feed = _feed(server.url)
        ticks = await _collect(feed, 86)
    _check_matches_recording(ticks, frames)
    assert feed.health()["garbage"] == len(garbage)


async def test_stale_symbols_are_reported(real_data: Path) -> None:
    frames = _frames(real_data)
    async with ReplayServer(frames) as server:
        feed = BinanceFeed(
            {"symbols": SYMBOLS + "+btcusdt", "url": server.url, "stale_after": "3600"}
        )
        await _collect(feed, 86)
    h = feed.health()
    # BTCUSDT is not in the recording; RUNEEUR only sent depth updates in it (no trade, no quote).
    assert h["stale"] == ["BTCUSDT", "RUNEEUR"]
    assert h["last_update_age_s"]["BTCUSDT"] is None
    assert h["last_update_age_s"]["NKNUSDT"] is not None
    assert feed.codec.clock.stale(NOW_MS * 10, 60) == [
        "BLZETH",
        "BTCUSDT",
        "LRCBTC",
        "NKNUSDT",
        "RUNEEUR",
    ]


async def test_binance_conforms(real_data: Path) -> None:
    async with ReplayServer(_frames(real_data)) as server:
        events = await check_feed(
            BinanceFeed, {"symbols": SYMBOLS, "url": server.url}, max_events=20
        )
    assert events[0] == Listing(("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"))


# Pure codec


def test_24hr_ticker_sample(real_data: Path) -> None:
    lines = (real_data / "ws" / "single_message_samples.jsonl").read_text().splitlines()
    raw = next(json.loads(x)["raw"] for x in lines if json.loads(x)["provider"] == "binance")
    d = json.loads(raw)["data"]
    codec = BinanceCodec(["btcusdt"], ["ticker"])
    [tick] = codec.handle(raw, NOW_MS)
    assert tick == Tick(
        "BTCUSDT",
        float(d["c"]),
        float(d["E"]),
        bid=float(d["b"]),
        ask=float(d["a"]),
        volume=float(d["v"]),
        prev_close=float(d["o"]),
    )


def test_trade_id_gaps_and_order() -> None:
    codec = BinanceCodec(["btcusdt"], ["trade"])

    def trade(tid: int) -> str:
        data = {"e": "trade", "s": "BTCUSDT", "t": tid, "p": "1.5", "q": "2", "T": NOW_MS}
        return json.dumps({"stream": "btcusdt@trade", "data": data})

    out = [len(codec.handle(trade(t), NOW_MS)) for t in (5, 6, 9, 8, 10)]
    assert out == [1, 1, 1, 0, 1]
    assert (codec.counters["gaps"], codec.counters["missed_trades"]) == (1, 2)
    assert codec.counters["out_of_order"] == 1


def test_subscribe_messages_are_batched() -> None:
    syms = [f"s{i}" for i in range(300)]
    msgs = [
        json.loads(m) for m in BinanceCodec(syms, ["aggTrade", "bookTicker"]).subscribe_messages()
    ]
    assert [len(m["params"]) for m in msgs] == [200, 200, 200]
    assert [m["id"] for m in msgs] == [1, 2, 3]
    with pytest.raises(ValueError, match="1024"):
        BinanceFeed({"symbols": "+".join(syms), "streams": "aggTrade+bookTicker+ticker+trade"})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=5),
    max_leaves=20,
)
_keys = st.sampled_from(["e", "s", "p", "q", "T", "a", "t", "u", "b", "B", "A", "c", "E", "v", "o"])
_shaped = st.dictionaries(_keys, _json, max_size=10).map(
    lambda d: {"stream": "x", "data": {**d, "e": d.get("e", "aggTrade")}}
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, _shaped) | st.text(max_size=50))
def test_arbitrary_frames_never_raise(msg: Any) -> None:
    codec = BinanceCodec(["btcusdt"], ["aggTrade"])
    text = msg if isinstance(msg, str) else json.dumps(msg)
    events: list[Event] = codec.handle(text, NOW_MS)
    for ev in events:
        assert check_event(ev) == []


async def test_planned_reconnect_before_the_connection_lifetime(real_data: Path) -> None:
    async with ReplayServer(_frames(real_data)) as server:
        feed = _feed(server.url, lifetime="1")
        task = asyncio.create_task(_collect(feed, 10_000, within=30))
        try:
            async with asyncio.timeout(10):
                while len(server.received) < 2 or not server.received[1]:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    h = feed.health()
    assert h["planned_reconnects"] >= 1 and h["connects"] >= 2
    first, again = (json.loads(c[0]) for c in server.received[:2])
    assert again["params"] == first["params"] and again["id"] > first["id"]  # same streams


async def test_error_replies_are_errors_and_server_shutdown_reconnects_early(
    real_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = _frames(real_data)[:40]
    error = '{"code": 2, "msg": "Invalid request: property name must be a string", "id": 1}'
    shutdown = '{"event": {"e": "serverShutdown", "E": 1770123456789}}'  # Binance's documented form
    async with ReplayServer([*frames, error, shutdown]) as server:
        feed = _feed(server.url)
        task = asyncio.create_task(_collect(feed, 10_000, within=30))
        try:
            await until(lambda: len(server.received) >= 2 and len(server.received[1]) >= 1, 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    h = feed.health()
    assert (h["errors"], h["garbage"], h["shutdowns"]) == (1, 0, 1)
    assert h["last_problem"] == ("error 2: Invalid request: property name must be a string (id 1)")
    assert "Invalid request" in caplog.text
    # A new connection at once, as planned (no backoff, no failure counted), same streams.
    assert (h["connects"], h["planned_reconnects"], h["reconnects"]) == (2, 1, 0)
    first, again = (json.loads(c[0]) for c in server.received[:2])
    assert again["params"] == first["params"]


@pytest.mark.parametrize(
    "frame",
    [
        '{"error": {"code": 0, "msg": "Unknown property"}, "id": 7}',
        '{"code": 0, "msg": "Unknown property", "id": 7}',
    ],
)
def test_both_error_reply_forms_are_counted_as_errors(frame: str) -> None:
    codec = BinanceCodec(["btcusdt"], ["aggTrade"])
    assert codec.handle(frame, NOW_MS) == []
    assert (codec.counters["errors"], codec.counters["garbage"]) == (1, 0)
    assert codec.last_problem == "error 0: Unknown property (id 7)"


@pytest.mark.parametrize(
    "frame",
    [
        '{"event": {"e": "serverShutdown", "E": 1770123456789}}',
        '{"e": "serverShutdown", "E": 1770123456789}',
        '{"stream": "btcusdt@aggTrade", "data": {"e": "serverShutdown", "E": 1770123456789}}',
    ],
)
def test_server_shutdown_asks_for_a_new_connection(frame: str) -> None:
    codec = BinanceCodec(["btcusdt"], ["aggTrade"])
    assert codec.handle(frame, NOW_MS) == [] and codec.reconnect
    assert (codec.counters["shutdowns"], codec.counters["garbage"]) == (1, 0)

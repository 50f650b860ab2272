"""The finnhub adapter against Finnhub's documented messages, served on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from tests.upstream.ws import ReplayServer
from tests.wsutil import until
from ticker.core.events import News, Tick
from ticker_feeds.finnhub import FinnhubCodec, FinnhubFeed
from ticker_feeds.testing import check_event, check_feed

KEY = "sekrit-key-123"


def _samples(real_data: Path) -> dict[str, str]:
    out = {}
    for line in (real_data / "ws" / "single_message_samples.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d["provider"] == "finnhub":
            out[d["channel"]] = d["raw"]
    return out


async def test_documented_messages_over_a_reconnect_with_garbage_key_never_logged(
    real_data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEST_FINNHUB_KEY", KEY)
    s = _samples(real_data)
    frames = [s["ping"], s["trades"], "garbage{", s["ping"], s["trades"]]
    async with ReplayServer(frames, reject_first=1, drop_after=2) as server:
        feed = FinnhubFeed(
            {
                "symbols": "BINANCE:BTCUSDT",
                "url": server.url,
                "key_env": "TEST_FINNHUB_KEY",
                "backoff": "0.01",
            }
        )
        ticks: list[Tick] = []
        agen = feed.events()
        try:
            async with asyncio.timeout(10):
                async for ev in agen:
                    assert check_event(ev) == []
                    if isinstance(ev, Tick):
                        ticks.append(ev)
                        if len(ticks) == 2:
                            break
        finally:
            await agen.aclose()  # type: ignore[attr-defined]
            await feed.aclose()
    t = Tick("BINANCE:BTCUSDT", 7296.89, 1575526691134.0, size=0.011467)
    assert ticks == [t, t]
    assert server.queries == [f"token={KEY}"] * 3  # 401, then dropped after 2 frames, then ok
    assert [json.loads(r[0]) for r in server.received] == [
        {"type": "subscribe", "symbol": "BINANCE:BTCUSDT"}
    ] * 2
    h = feed.health()
    assert (h["pings"], h["garbage"], h["connects"], h["reconnects"]) == (2, 1, 2, 2)
    assert "401" in caplog.text and "***" in caplog.text  # the handshake error was logged...
    assert KEY not in caplog.text and KEY not in json.dumps(h) and KEY not in repr(feed)


def test_missing_key_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINNHUB_API_KEY", raising=False)
    with pytest.raises(ValueError, match=r"\$FINNHUB_API_KEY"):
        FinnhubFeed({})


async def test_finnhub_conforms(real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINNHUB_API_KEY", KEY)
    s = _samples(real_data)
    async with ReplayServer([s["ping"], s["trades"]]) as server:
        events = await check_feed(FinnhubFeed, {"url": server.url}, min_events=2, max_events=2)
    assert isinstance(events[1], Tick) and events[1].price == 7296.89


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=5),
    max_leaves=20,
)
_trade = st.dictionaries(st.sampled_from(["p", "s", "t", "v"]), _json, max_size=4)


@settings(max_examples=300, deadline=None)
@given(_json | st.lists(_trade, max_size=3).map(lambda d: {"type": "trade", "data": d}))
def test_arbitrary_frames_never_raise(msg: Any) -> None:
    for ev in FinnhubCodec(["X"]).handle(json.dumps(msg), 1.7e12):
        assert check_event(ev) == []


async def test_fifty_symbols_subscribe_while_ticks_flow_without_a_reconnect(
    real_data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The free tier's 50 symbols: 50 subscribes at 5/s take 10 s, past a 5 s subscribe limit.
    # The limit is scaled down (0.5 s) to keep the test short; the pacing is Finnhub's real one.
    monkeypatch.setenv("FINNHUB_API_KEY", KEY)
    trades = _samples(real_data)["trades"]
    symbols = [f"SYM{i}" for i in range(49)] + ["BINANCE:BTCUSDT"]
    async with ReplayServer([trades] * 3) as server:
        feed = FinnhubFeed({"symbols": "+".join(symbols), "url": server.url, "backoff": "0.01"})
        feed.config.subscribe_within = 0.5
        ticks: list[Tick] = []

        async def consume() -> None:
            async for ev in feed.events():
                if isinstance(ev, Tick):
                    ticks.append(ev)

        task = asyncio.create_task(consume())
        try:  # 8 subscribes: 1.4 s, well past the limit
            await until(lambda: len(server.received) > 0 and len(server.received[0]) >= 8, 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await feed.aclose()
    assert len(ticks) == 3  # the ticks flowed while the subscribes went on
    assert len(server.received) == 1  # one connection, never dropped for being slow
    got = [json.loads(m) for m in server.received[0][:8]]
    assert got == [{"type": "subscribe", "symbol": s} for s in symbols[:8]]
    h = feed.health()
    assert (h["connects"], h["reconnects"], h["last_error"]) == (1, 0, None)
    assert "TimeoutError" not in caplog.text


NEWS = {
    "type": "news",
    "data": [
        {
            "category": "company",
            "datetime": 1569550360,
            "headline": "More sops needed to boost electronic manufacturing: Top govt official",
            "id": 25286,
            "image": "https://example.invalid/img.jpg",
            "related": "AAPL,MSFT",
            "source": "The Economic Times",
            "summary": "India may have to offer electronic makers additional sops.",
            "url": "https://example.invalid/news/25286",
        }
    ],
}


def test_news_frames_become_news_once() -> None:
    codec = FinnhubCodec(["AAPL"], news=True)
    subs = [json.loads(m) for m in codec.subscribe_messages()]
    assert subs == [
        {"type": "subscribe", "symbol": "AAPL"},
        {"type": "subscribe-news", "symbol": "AAPL"},
    ]
    [n] = codec.handle(json.dumps(NEWS), 1.7e12)
    assert isinstance(n, News) and check_event(n) == []
    assert n.headline.startswith("More sops needed") and n.ts == 1569550360000.0
    assert (n.source, n.symbols) == ("finnhub/The Economic Times", ("AAPL", "MSFT"))
    assert n.url == "https://example.invalid/news/25286" and n.summary is not None
    assert codec.handle(json.dumps(NEWS), 1.7e12) == []  # the same id again: an update
    assert (codec.counters["news"], codec.counters["news_updates"]) == (1, 1)
    assert codec.counters["garbage"] == 0
    assert FinnhubCodec(["AAPL"]).subscribe_messages() == [
        json.dumps({"type": "subscribe", "symbol": "AAPL"})
    ]  # news is opt-in (a premium stream)


def test_describe_never_leaves_the_message_empty() -> None:
    from ticker_feeds._ws import describe

    assert describe(TimeoutError()) == "TimeoutError: timed out"
    assert describe(ConnectionResetError()).startswith("ConnectionResetError: ")
    assert describe(ConnectionResetError()) != "ConnectionResetError: "
    assert describe(OSError("boom")) == "OSError: boom"

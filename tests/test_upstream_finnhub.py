"""The finnhub adapter against Finnhub's documented messages, served on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from feeds.finnhub import FinnhubCodec, FinnhubFeed
from feeds.testing import check_event, check_feed
from tests.upstream.ws import ReplayServer
from ticker.core.events import Tick

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

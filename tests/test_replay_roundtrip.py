"""Round trip: record a seeded sim session, replay it at max speed, get the same final state.

The live side is what ``ticker serve --record`` runs: supervised sim and news feeds publishing to a
hub with a recorder beside it. The replay side is a fresh hub fed by ``replay:speed=max`` on the
recording directory. Every symbol's final quote (price, bid/ask, volume, open/high/low, change,
ts...) must be equal, and so must every news item.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import MS
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.config import HubConfig
from ticker.core.events import Event, News
from ticker.hub.broadcaster import Hub
from ticker.store.recorder import Recorder
from ticker_feeds.replay import ReplayFeed
from ticker_feeds.sim import SimFeed
from ticker_feeds.simnews import SimNewsFeed


async def test_recorded_sim_session_replays_to_the_same_final_state(tmp_path: Path) -> None:
    live = Hub(HubConfig())
    # Small segments, so the session spans several files and a file boundary falls mid-stream.
    rec = Recorder(tmp_path, rotate_bytes=64 * 1024, flush_interval=0.05)
    await rec.start()
    live_news: list[News] = []
    count = 0

    def sink(ev: Event) -> None:
        nonlocal count
        count += 1
        live.publish(ev)
        rec.record(ev)
        if isinstance(ev, News):
            live_news.append(ev)

    runners = [
        FeedRunner(FeedSource.of(SimFeed({"symbols": "40", "rate": "20000", "seed": "7"})), sink),
        FeedRunner(
            FeedSource.of(SimNewsFeed({"symbols": "40", "rate": "6000", "seed": "7"})), sink
        ),
    ]
    for r in runners:
        r.start()
    for _ in range(int(5000 * MS / 0.01)):
        if count >= 8000 and live_news:
            break
        await asyncio.sleep(0.01)
    for r in runners:
        await r.stop()
    await rec.aclose()
    assert count >= 8000 and len(rec.files) > 1

    replayed = Hub(HubConfig())
    replayed_news: list[News] = []
    feed = ReplayFeed({"path": str(tmp_path), "speed": "max", "hold": "no"})
    async for ev in feed.events():
        replayed.publish(ev)
        if isinstance(ev, News):
            replayed_news.append(ev)

    assert list(replayed.book.known) == list(live.book.known)
    assert replayed.book.quotes == live.book.quotes
    assert len(live.book.quotes) == 40
    assert replayed_news == live_news

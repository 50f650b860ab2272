"""The adapter's own test: Ticker's conformance check, then whatever else matters to you."""

from __future__ import annotations

import asyncio

from ticker_walk import WalkFeed

from ticker_feeds.testing import check_feed


def test_walk_conforms() -> None:
    events = asyncio.run(check_feed(WalkFeed, {"symbols": "ABC+XYZ", "interval_ms": "5"}))
    assert events[0].symbols == ("ABC", "XYZ")  # type: ignore[union-attr]


def test_empty_symbols_is_an_error_now() -> None:
    import pytest

    with pytest.raises(ValueError, match="no symbols given"):
        WalkFeed({"symbols": ""})


def test_a_big_move_is_news() -> None:
    from ticker_feeds.base import News

    events = asyncio.run(
        check_feed(WalkFeed, {"symbols": "ABC", "interval_ms": "1", "news_move": "0.1"})
    )
    news = [e for e in events if isinstance(e, News)]
    assert news and news[0].symbols == ("ABC",) and news[0].headline.startswith("ABC moved to")

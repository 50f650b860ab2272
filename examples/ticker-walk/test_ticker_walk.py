"""The adapter's own test: Ticker's conformance check, then whatever else matters to you."""

from __future__ import annotations

import asyncio

from ticker_walk import WalkFeed

from feeds.testing import check_feed


def test_walk_conforms() -> None:
    events = asyncio.run(check_feed(WalkFeed, {"symbols": "ABC+XYZ", "interval_ms": "5"}))
    assert events[0].symbols == ("ABC", "XYZ")  # type: ignore[union-attr]

"""Random-walk prices: a complete, minimal Ticker feed adapter.

Everything an adapter needs is here: a class with ``description`` and ``options`` (what
``ticker feeds`` shows), a constructor that takes the ``key=value`` options of
``--feed walk:symbols=ABC+XYZ,interval_ms=200`` and rejects bad ones with a one-line
``ValueError``, an ``events()`` async generator of ``Listing``/``Tick``/``News``, and ``aclose()``.
It also publishes a ``News`` item whenever a symbol moves more than ``news_move`` percent from its
start.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

from ticker_feeds.base import (
    Event,
    Listing,
    News,
    Option,
    Tick,
    as_float,
    as_int,
    as_symbols,
    help_of,
    parse_options,
)

__all__ = ["WalkFeed"]

_OPTIONS: dict[str, Option] = {
    "symbols": Option("+-separated symbols", "WALK", as_symbols),  # symbols= is an error
    "start": Option("starting price", "100", as_float(0.01, 1e9)),
    "interval_ms": Option("milliseconds between ticks", "100", as_float(1, 60_000)),
    "seed": Option("random seed", "1", as_int(0, 2**31)),
    "news_move": Option(
        "news when a price moves this many % from its start", "5", as_float(0.1, 99)
    ),
}


class WalkFeed:
    """Random-walk prices, one tick per symbol every ``interval_ms``."""

    description: ClassVar[str] = "example plug-in: random-walk prices for the symbols you name"
    options: ClassVar[dict[str, str]] = help_of(_OPTIONS)
    stall_timeout: ClassVar[float] = 30.0  # restart me if I go quiet this long

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = parse_options(_OPTIONS, options or {})  # ValueError on unknown or bad options
        self.name = "walk"
        self.symbols: list[str] = opts["symbols"]
        self.price = {s: opts["start"] for s in self.symbols}
        self.start = dict(self.price)
        self.interval = opts["interval_ms"] / 1000.0
        self.rng = random.Random(opts["seed"])
        self.news_move: float = opts["news_move"] / 100.0
        self.closed = False

    async def events(self) -> AsyncIterator[Event]:
        yield Listing(tuple(self.symbols))  # declare symbols so clients can subscribe at once
        while not self.closed:
            for sym in self.symbols:
                old = self.price[sym]
                p = self.price[sym] = max(0.01, old * (1 + self.rng.gauss(0, 0.001)))
                now = time.time() * 1000.0  # event times are epoch MILLISECONDS
                yield Tick(symbol=sym, price=round(p, 2), ts=now, size=1.0)
                if abs(p / self.start[sym] - 1) >= self.news_move:
                    self.start[sym] = p  # (once per move)
                    yield News(
                        headline=f"{sym} moved to {p:.2f}",
                        ts=now,
                        source="walk",
                        symbols=(sym,),  # a tuple, not a list
                    )
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        self.closed = True

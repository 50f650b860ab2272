"""Random-walk prices: a complete, minimal Ticker feed adapter.

Everything an adapter needs is here: a class with ``description`` and ``options`` (what
``ticker feeds`` shows), a constructor that takes the ``key=value`` options of
``--feed walk:symbols=ABC+XYZ,interval_ms=200`` and rejects bad ones with a one-line
``ValueError``, an ``events()`` async generator of ``Listing``/``Tick``/``News``, and ``aclose()``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

from feeds.base import Event, Listing, Option, Tick, as_float, as_int, help_of, parse_options

__all__ = ["WalkFeed"]

_OPTIONS: dict[str, Option] = {
    "symbols": Option("+-separated symbols", "WALK", lambda s: [x for x in s.split("+") if x]),
    "start": Option("starting price", "100", as_float(0.01, 1e9)),
    "interval_ms": Option("milliseconds between ticks", "100", as_float(1, 60_000)),
    "seed": Option("random seed", "1", as_int(0, 2**31)),
}


class WalkFeed:
    """Random-walk prices, one tick per symbol every ``interval_ms``."""

    description: ClassVar[str] = "example plug-in: random-walk prices for the symbols you name"
    options: ClassVar[dict[str, str]] = help_of(_OPTIONS)
    stall_timeout: ClassVar[float] = 30.0  # restart me if I go quiet this long

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = parse_options(_OPTIONS, options or {})  # ValueError on unknown or bad options
        if not opts["symbols"]:
            raise ValueError("symbols is empty")
        self.name = "walk"
        self.symbols: list[str] = opts["symbols"]
        self.price = {s: opts["start"] for s in self.symbols}
        self.interval = opts["interval_ms"] / 1000.0
        self.rng = random.Random(opts["seed"])
        self.closed = False

    async def events(self) -> AsyncIterator[Event]:
        yield Listing(tuple(self.symbols))  # declare symbols so clients can subscribe at once
        while not self.closed:
            for sym in self.symbols:
                p = self.price[sym] = max(0.01, self.price[sym] * (1 + self.rng.gauss(0, 0.001)))
                yield Tick(symbol=sym, price=round(p, 2), ts=time.time() * 1000.0, size=1.0)
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        self.closed = True

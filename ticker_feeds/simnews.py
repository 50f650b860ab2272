"""Simulated news: templated headlines tagged with symbols, Poisson arrivals, seeded.

``headline_for`` is pure; ``SimNewsFeed`` paces arrivals in real time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

from ticker_feeds.base import Event, News, Option, as_float, as_int, help_of, parse_options
from ticker_feeds.sim import parse_symbols

__all__ = ["COMPANIES", "SimNewsFeed", "headline_for"]

COMPANIES: dict[str, str] = {
    "AAPL": "Apple",
    "MSFT": "Microsoft",
    "GOOGL": "Alphabet",
    "AMZN": "Amazon",
    "NVDA": "Nvidia",
    "META": "Meta",
    "TSLA": "Tesla",
    "JPM": "JPMorgan",
    "V": "Visa",
    "JNJ": "Johnson & Johnson",
    "WMT": "Walmart",
    "XOM": "Exxon Mobil",
    "UNH": "UnitedHealth",
    "MA": "Mastercard",
    "PG": "Procter & Gamble",
    "HD": "Home Depot",
    "KO": "Coca-Cola",
    "PEP": "PepsiCo",
    "BAC": "Bank of America",
    "DIS": "Disney",
}

_SINGLE = [
    "{co} shares {move} after {event}",
    "{co} {verb} full-year outlook as {driver}",
    "Analysts {rate} {co} ({sym}) on {driver}",
    "{co} announces {deal}",
    "{co} CEO says {quote}",
    "Options traders pile into {co} ahead of {catalyst}",
]
_PAIR = [
    "{co} and {co2} in talks over {deal}",
    "{co} overtakes {co2} in {market}",
]
_WORDS = {
    "move": ["jump", "slide", "rally", "slip", "surge", "dip", "edge higher", "fall sharply"],
    "event": [
        "earnings beat",
        "revenue miss",
        "guidance update",
        "regulatory filing",
        "product launch",
        "analyst day",
        "supply warning",
        "buyback news",
    ],
    "verb": ["raises", "cuts", "reaffirms", "withdraws"],
    "driver": [
        "demand stays strong",
        "costs climb",
        "margins improve",
        "sales slow",
        "AI spending grows",
        "the dollar weakens",
    ],
    "rate": ["upgrade", "downgrade", "initiate coverage of", "raise targets for"],
    "deal": [
        "a $2 billion buyback",
        "a strategic partnership",
        "a licensing deal",
        "an acquisition",
        "a joint venture",
    ],
    "quote": [
        "demand remains resilient",
        "pricing is stable",
        "the cycle has turned",
        "investment will accelerate",
    ],
    "catalyst": ["earnings", "the Fed decision", "a product event", "index rebalancing"],
    "market": ["cloud revenue", "market value", "quarterly sales", "unit shipments"],
}


def headline_for(rng: random.Random, symbols: list[str]) -> tuple[str, tuple[str, ...], str]:
    """A (headline, tagged symbols, summary) triple drawn from templates. Pure."""
    sym = rng.choice(symbols)
    pair = len(symbols) > 1 and rng.random() < 0.2
    sym2 = rng.choice([s for s in symbols if s != sym]) if pair else None
    fill = {k: rng.choice(v) for k, v in _WORDS.items()}
    fill["sym"] = sym
    fill["co"] = COMPANIES.get(sym, sym)
    if sym2 is not None:
        fill["co2"] = COMPANIES.get(sym2, sym2)
        text = rng.choice(_PAIR).format(**fill)
        tags: tuple[str, ...] = (sym, sym2)
    else:
        text = rng.choice(_SINGLE).format(**fill)
        tags = (sym,)
    summary = f"{text}. Simulated story for {', '.join('$' + t for t in tags)}; not real news."
    return text, tags, summary


_OPTIONS: dict[str, Option] = {
    "symbols": Option("a count, or a +-separated list of tickers to tag", "20", parse_symbols),
    "rate": Option("items per minute (Poisson arrivals), 0.01..60000", "6", as_float(0.01, 60_000)),
    "seed": Option("random seed", "1", as_int(0, 2**63 - 1)),
    "source": Option("source name shown with each item", "simnews", str),
}


class SimNewsFeed:
    """Simulated headlines tagged with symbols, Poisson arrivals."""

    description: ClassVar[str] = "simulated news: templated headlines, Poisson arrivals"
    options: ClassVar[dict[str, str]] = help_of(_OPTIONS)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = parse_options(_OPTIONS, options or {})
        self.name = "simnews"
        self.symbols: list[str] = opts["symbols"]
        self.rate: float = opts["rate"]
        self.seed: int = opts["seed"]
        self.source: str = opts["source"]
        self._closed = False

    async def events(self) -> AsyncIterator[Event]:
        rng = random.Random(self.seed)
        n = 0
        mean_gap = 60.0 / self.rate
        while not self._closed:
            await asyncio.sleep(rng.expovariate(1.0 / mean_gap))
            n += 1
            headline, tags, summary = headline_for(rng, self.symbols)
            yield News(
                headline=headline,
                ts=time.time() * 1000.0,
                source=self.source,
                symbols=tags,
                url=f"https://news.example.com/sim/{self.seed}/{n}",
                summary=summary,
            )

    async def aclose(self) -> None:
        self._closed = True

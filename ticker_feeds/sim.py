"""Simulated market: bursty ticks, geometric Brownian motion per symbol, seeded.

``SimMarket`` is pure (no I/O, no clock): given a seed, it produces the same prices, sizes and
spreads for the same sequence of steps. ``SimFeed`` is the I/O shell that paces it in real time
and stamps each tick with the wall clock (``ts``, epoch ms with sub-ms precision).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

from ticker_feeds.base import Event, Listing, Option, Tick, as_float, as_int, help_of, parse_options

__all__ = ["DEFAULT_SYMBOLS", "NAMES", "SimFeed", "SimMarket", "parse_symbols", "poisson"]

# Well-known tickers with plausible starting prices.
DEFAULT_SYMBOLS: dict[str, float] = {
    "AAPL": 228.0,
    "MSFT": 415.0,
    "GOOGL": 172.0,
    "AMZN": 186.0,
    "NVDA": 132.0,
    "META": 560.0,
    "TSLA": 245.0,
    "JPM": 212.0,
    "V": 282.0,
    "JNJ": 158.0,
    "WMT": 80.0,
    "XOM": 118.0,
    "UNH": 560.0,
    "MA": 495.0,
    "PG": 168.0,
    "HD": 395.0,
    "KO": 64.0,
    "PEP": 160.0,
    "BAC": 41.0,
    "DIS": 96.0,
}
MORE_SYMBOLS: dict[str, float] = {
    "ORCL": 170.0,
    "CSCO": 56.0,
    "INTC": 23.0,
    "ADBE": 500.0,
    "CRM": 290.0,
    "NFLX": 780.0,
    "AMD": 145.0,
    "QCOM": 165.0,
    "TXN": 200.0,
    "IBM": 215.0,
    "GS": 520.0,
    "MS": 125.0,
    "C": 68.0,
    "WFC": 70.0,
    "CVX": 155.0,
    "PFE": 28.0,
    "MRK": 100.0,
    "ABBV": 190.0,
    "T": 22.0,
    "VZ": 43.0,
    "NKE": 78.0,
    "MCD": 295.0,
    "SBUX": 97.0,
    "BA": 155.0,
    "CAT": 390.0,
    "GE": 180.0,
    "MMM": 130.0,
    "HON": 210.0,
    "UPS": 130.0,
    "COST": 890.0,
}
# The company names of the well-known tickers (the dashboard's search finds them by name).
NAMES: dict[str, str] = {
    "AAPL": "Apple Inc.", "MSFT": "Microsoft Corporation", "GOOGL": "Alphabet Inc.",
    "AMZN": "Amazon.com, Inc.", "NVDA": "NVIDIA Corporation", "META": "Meta Platforms, Inc.",
    "TSLA": "Tesla, Inc.", "JPM": "JPMorgan Chase & Co.", "V": "Visa Inc.",
    "JNJ": "Johnson & Johnson", "WMT": "Walmart Inc.", "XOM": "Exxon Mobil Corporation",
    "UNH": "UnitedHealth Group Incorporated", "MA": "Mastercard Incorporated",
    "PG": "Procter & Gamble Company", "HD": "Home Depot, Inc.", "KO": "Coca-Cola Company",
    "PEP": "PepsiCo, Inc.", "BAC": "Bank of America Corporation", "DIS": "Walt Disney Company",
    "ORCL": "Oracle Corporation", "CSCO": "Cisco Systems, Inc.", "INTC": "Intel Corporation",
    "ADBE": "Adobe Inc.", "CRM": "Salesforce, Inc.", "NFLX": "Netflix, Inc.",
    "AMD": "Advanced Micro Devices, Inc.", "QCOM": "QUALCOMM Incorporated",
    "TXN": "Texas Instruments Incorporated", "IBM": "International Business Machines",
    "GS": "Goldman Sachs Group, Inc.", "MS": "Morgan Stanley", "C": "Citigroup Inc.",
    "WFC": "Wells Fargo & Company", "CVX": "Chevron Corporation", "PFE": "Pfizer Inc.",
    "MRK": "Merck & Co., Inc.", "ABBV": "AbbVie Inc.", "T": "AT&T Inc.",
    "VZ": "Verizon Communications Inc.", "NKE": "NIKE, Inc.", "MCD": "McDonald's Corporation",
    "SBUX": "Starbucks Corporation", "BA": "Boeing Company", "CAT": "Caterpillar Inc.",
    "GE": "GE Aerospace", "MMM": "3M Company", "HON": "Honeywell International Inc.",
    "UPS": "United Parcel Service, Inc.", "COST": "Costco Wholesale Corporation",
}  # fmt: skip

MAX_SYMBOLS = 10_000

# One real second is a simulated minute of trading: a session's moves show within minutes.
_MARKET_SECONDS_PER_SECOND = 60.0
_SESSION_SECONDS = 23_400.0


def parse_symbols(value: str) -> list[str]:
    """``"50"`` (a count) or ``"AAPL+MSFT"`` (a list) -> symbols.

    Raises:
        ValueError: a count out of 1..10000, or an empty list.
    """
    value = value.strip()
    if value.isdigit():
        n = int(value)
        if not 1 <= n <= MAX_SYMBOLS:
            raise ValueError(f"symbols count {n} is out of range 1..{MAX_SYMBOLS}")
        names = list(DEFAULT_SYMBOLS) + list(MORE_SYMBOLS)
        names += [f"SIM{i:04d}" for i in range(len(names) + 1, n + 1)]
        return names[:n]
    syms = [s.strip().upper() for s in value.split("+") if s.strip()]
    if not syms:
        raise ValueError("symbols is empty")
    return list(dict.fromkeys(syms))


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(lam) sample (Knuth below 30, a rounded normal above). Pure."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit = math.exp(-lam)
        k = 0
        p = rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


class SimMarket:
    """Pure, seeded market model.

    Each symbol follows geometric Brownian motion with its own volatility, quoted with a bid/ask
    spread; trade sizes are heavy-tailed; activity is skewed (a few symbols trade most) and bursty
    (a two-state calm/burst regime, averaging ``rate`` ticks per second).
    """

    BURST_SHARE = 0.1  # fraction of time in a burst

    def __init__(self, symbols: list[str], rate: float, seed: int, burst: float = 6.0) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.symbols = symbols
        self.rate = rate
        self.burst = burst  # rate multiplier during a burst; 1 = a steady rate
        self.price: list[float] = []
        self.prev_close: list[float] = []
        self.vol: list[float] = []  # daily volatility
        self.spread_bps: list[float] = []
        self.volume: list[int] = []
        self.last_t: list[float] = []
        for s in symbols:
            p0 = DEFAULT_SYMBOLS.get(s) or MORE_SYMBOLS.get(s) or round(rng.uniform(10, 400), 2)
            self.prev_close.append(p0)
            self.price.append(p0 * math.exp(rng.gauss(0, 0.004)))
            self.vol.append(rng.uniform(0.01, 0.035))
            self.spread_bps.append(rng.uniform(1.0, 6.0))
            self.volume.append(0)
            self.last_t.append(0.0)
        # Zipf-like activity: cumulative weights for rng.choices.
        weights = [1.0 / (i + 1) ** 0.8 for i in range(len(symbols))]
        rng.shuffle(weights)
        acc = 0.0
        self.cum_weights: list[float] = []
        for w in weights:
            acc += w
            self.cum_weights.append(acc)
        self.t = 0.0
        self.bursting = False
        self.started = False

    def listing(self) -> Listing:
        return Listing(tuple(self.symbols))

    def step(self, dt: float, ts: float) -> list[Tick]:
        """Advance the model by ``dt`` seconds; the ticks of that step, stamped from ``ts`` (ms)."""
        rng = self.rng
        self.t += dt
        # Regime switch: mean burst length 0.5 s, bursts BURST_SHARE of the time.
        mean_burst = 0.5
        mean_calm = mean_burst * (1 - self.BURST_SHARE) / self.BURST_SHARE
        if rng.random() < dt / (mean_burst if self.bursting else mean_calm):
            self.bursting = not self.bursting
        calm_rate = self.rate / (1 - self.BURST_SHARE + self.BURST_SHARE * self.burst)
        lam = (calm_rate * (self.burst if self.bursting else 1.0)) * dt
        n = poisson(rng, lam)
        if n == 0:
            return []
        idx = rng.choices(range(len(self.symbols)), cum_weights=self.cum_weights, k=n)
        out: list[Tick] = []
        first = not self.started
        self.started = True
        for j, i in enumerate(idx):
            t = self.t - dt + dt * (j + 1) / n
            elapsed = max(t - self.last_t[i], 1e-3) * _MARKET_SECONDS_PER_SECOND
            self.last_t[i] = t
            sigma = self.vol[i] * math.sqrt(elapsed / _SESSION_SECONDS)
            p = self.price[i] * math.exp(rng.gauss(-0.5 * sigma * sigma, sigma))
            self.price[i] = p
            digits = 2 if p >= 1 else 4
            half = p * self.spread_bps[i] / 20_000.0
            bid = round(p - half, digits)
            ask = round(p + half, digits)
            if ask <= bid:
                ask = round(bid + 10.0**-digits, digits)
            size = int(rng.paretovariate(1.3)) * (100 if rng.random() < 0.3 else 1)
            self.volume[i] += size
            out.append(
                Tick(
                    symbol=self.symbols[i],
                    price=round(p, digits),
                    ts=ts + (j * 1e-3),
                    size=float(size),
                    bid=bid,
                    ask=ask,
                    volume=float(self.volume[i]),
                    prev_close=self.prev_close[i] if (first or self.volume[i] == size) else None,
                )
            )
        return out


_OPTIONS: dict[str, Option] = {
    "symbols": Option("a count, or a +-separated list of tickers", "20", parse_symbols),
    "rate": Option("ticks per second in total, 1..100000", "100", as_float(1, 100_000)),
    "seed": Option("random seed (same seed, same prices)", "1", as_int(0, 2**63 - 1)),
    "step_ms": Option("pacing step in ms, 1..1000", "10", as_float(1, 1000)),
    "burst": Option("rate multiplier in bursts, 1..50 (1 = a steady rate)", "6", as_float(1, 50)),
}


class SimFeed:
    """Simulated prices: GBM per symbol, spreads, sizes, bursts; seeded."""

    description: ClassVar[str] = "simulated prices: bursty GBM per symbol with bid/ask and sizes"
    options: ClassVar[dict[str, str]] = help_of(_OPTIONS)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = parse_options(_OPTIONS, options or {})
        self.name = "sim"
        self.symbols: list[str] = opts["symbols"]
        self.rate: float = opts["rate"]
        self.seed: int = opts["seed"]
        self.step = opts["step_ms"] / 1000.0
        self.burst: float = opts["burst"]
        self._closed = False

    async def events(self) -> AsyncIterator[Event]:
        market = SimMarket(self.symbols, self.rate, self.seed, self.burst)
        yield market.listing()
        loop = asyncio.get_running_loop()
        step = self.step
        start = loop.time()
        done = 0
        while not self._closed:
            due = int((loop.time() - start) / step) - done
            if due <= 0:
                await asyncio.sleep(start + (done + 1) * step - loop.time())
                continue
            # Fall behind at most 100 steps (1 s at 10 ms): past that, skip rather than spiral.
            if due > 100:
                done += due - 100
                due = 100
            for _ in range(due):
                done += 1
                for tick in market.step(step, time.time() * 1000.0):
                    yield tick

    def names(self) -> dict[str, str]:
        """The company names of its symbols that have one (``HasNames``)."""
        return {s: NAMES[s] for s in self.symbols if s in NAMES}

    async def aclose(self) -> None:
        self._closed = True

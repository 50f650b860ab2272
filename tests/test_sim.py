"""Simulated feeds (pure parts), feed option parsing and feed specs. Sync."""

from __future__ import annotations

import random
import statistics

import pytest

from ticker.bus.registry import SpecError, parse_spec
from ticker_feeds.base import (
    Option,
    as_float,
    as_int,
    finite_number,
    parse_options,
    positive_number,
)
from ticker_feeds.sim import DEFAULT_SYMBOLS, SimFeed, SimMarket, parse_symbols, poisson
from ticker_feeds.simnews import SimNewsFeed, headline_for


def run(market: SimMarket, steps: int, dt: float = 0.01) -> list[tuple[str, float, float]]:
    out = []
    for i in range(steps):
        out += [(t.symbol, t.price, t.size or 0) for t in market.step(dt, float(i))]
    return out


def test_same_seed_same_market() -> None:
    a = run(SimMarket(parse_symbols("20"), 2000, seed=7), 200)
    b = run(SimMarket(parse_symbols("20"), 2000, seed=7), 200)
    c = run(SimMarket(parse_symbols("20"), 2000, seed=8), 200)
    assert a == b and a != c


def test_rate_is_honoured_on_average_and_bursty() -> None:
    m = SimMarket(parse_symbols("10"), 1000, seed=1)
    counts = [len(m.step(0.01, 0.0)) for _ in range(20_000)]  # 200 simulated seconds
    assert 850 < sum(counts) / 200 < 1150
    # Bursts: the busiest steps are far above the mean (a uniform clock would not be).
    assert max(counts) > 3 * statistics.mean(counts)


def test_quotes_are_plausible() -> None:
    m = SimMarket(["AAPL", "KO"], 500, seed=3)
    ticks = [t for _ in range(500) for t in m.step(0.01, 1.0)]
    assert ticks
    for t in ticks:
        assert t.price > 0 and t.bid is not None and t.ask is not None
        assert t.bid < t.ask and t.size is not None and t.size >= 1
    aapl = [t.price for t in ticks if t.symbol == "AAPL"]
    assert all(abs(p / DEFAULT_SYMBOLS["AAPL"] - 1) < 0.2 for p in aapl)
    vols = [t.volume or 0.0 for t in ticks if t.symbol == "KO"]
    assert vols == sorted(vols)


def test_parse_symbols() -> None:
    assert parse_symbols("3") == ["AAPL", "MSFT", "GOOGL"]
    assert len(parse_symbols("120")) == 120 and len(set(parse_symbols("120"))) == 120
    assert parse_symbols("aapl+MSFT+aapl") == ["AAPL", "MSFT"]
    for bad in ("0", "100001", "+"):
        with pytest.raises(ValueError):
            parse_symbols(bad)


def test_poisson_mean() -> None:
    rng = random.Random(1)
    for lam in (0.5, 5, 80):
        mean = statistics.mean(poisson(rng, lam) for _ in range(4000))
        assert abs(mean - lam) < 0.1 * lam + 0.1
    assert poisson(rng, 0) == 0


def test_feed_options_are_checked() -> None:
    assert SimFeed({"symbols": "AAPL+MSFT", "rate": "50"}).symbols == ["AAPL", "MSFT"]
    with pytest.raises(ValueError, match="valid options: burst, rate, seed, step_ms, symbols"):
        SimFeed({"speed": "1"})
    with pytest.raises(ValueError, match="rate"):
        SimFeed({"rate": "0"})
    with pytest.raises(ValueError, match="not a number"):
        SimNewsFeed({"rate": "fast"})


def test_parse_options_types_and_defaults() -> None:
    spec = {
        "n": Option("count", "3", as_int(1, 5)),
        "x": Option("x", None, as_float(0, 1)),
        "s": Option("s", "hi"),
    }
    assert parse_options(spec, {}) == {"n": 3, "x": None, "s": "hi"}
    assert parse_options(spec, {"n": "5", "x": "0.5"})["x"] == 0.5
    with pytest.raises(ValueError, match="out of range"):
        parse_options(spec, {"n": "6"})


def test_headlines_are_tagged() -> None:
    rng = random.Random(2)
    for _ in range(50):
        text, tags, summary = headline_for(rng, ["AAPL", "MSFT"])
        assert text and 1 <= len(tags) <= 2 and set(tags) <= {"AAPL", "MSFT"}
        assert all("$" + t in summary for t in tags)


def test_parse_spec() -> None:
    assert parse_spec("sim") == ("sim", {})
    assert parse_spec("sim:symbols=50,rate=2000, seed=7") == (
        "sim",
        {"symbols": "50", "rate": "2000", "seed": "7"},
    )
    for bad in (":x=1", "sim:rate", "sim:=3"):
        with pytest.raises(SpecError):
            parse_spec(bad)


def test_finite_and_positive_numbers() -> None:
    assert finite_number(3) == 3.0 and finite_number(-2.5) == -2.5
    assert finite_number("1.5") is None and finite_number("1.5", strings=True) == 1.5
    for bad in (True, None, [1], "nan", "inf", 10**400, float("inf")):
        assert finite_number(bad, strings=True) is None, bad
    assert positive_number(0) is None and positive_number(-1) is None
    assert positive_number("0.25", strings=True) == 0.25


def test_burst_1_is_a_steady_rate() -> None:
    m = SimMarket(parse_symbols("10"), 1000, seed=1, burst=1.0)
    per_second = [sum(len(m.step(0.01, 0.0)) for _ in range(100)) for _ in range(30)]
    assert all(850 < n < 1150 for n in per_second), per_second
    bursty = SimMarket(parse_symbols("10"), 1000, seed=1)
    steps = [len(bursty.step(0.01, 0.0)) for _ in range(3000)]
    steady = [len(m.step(0.01, 0.0)) for _ in range(3000)]
    assert max(steps) > max(steady), "bursts reach rates a steady feed never does"

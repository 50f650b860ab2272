"""The latest-state book and the token bucket. Sync, no event loop."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, strategies as st

from ticker.core.book import DAY_MS, Book, compact, integral, to_tenth_ms
from ticker.core.events import Bar, Listing, Tick
from ticker.core.limits import TokenBucket


def test_first_tick_opens_the_session() -> None:
    b = Book()
    q = b.apply(Tick("AAPL", 100.0, 1.0, size=10, bid=99.9, ask=100.1, prev_close=95.0))
    assert q == {
        "symbol": "AAPL",
        "price": 100.0,
        "ts": 1.0,
        "open": 100.0,
        "high": 100.0,
        "low": 100.0,
        "bid": 99.9,
        "ask": 100.1,
        "size": 10,
        "volume": 10,
        "prev_close": 95.0,
        "change": 5.0,
        "change_pct": 5.2632,
    }
    assert list(b.known) == ["AAPL"]


def test_compact_numbers_ts_to_a_tenth_of_a_ms_whole_sizes_as_integers() -> None:
    """Issue 20: the same values in fewer bytes (docs/protocol.md, Compact numbers). The book
    keeps what the feed gave; what leaves for the wire is compacted (the conflator)."""
    b = Book()
    q = b.apply(Tick("AAPL", 228.43, 1795715689321.9187, size=100.0, volume=120033.0))
    assert q["ts"] == 1795715689321.9187
    w = compact(dict(q))
    assert w["ts"] == 1795715689321.9 and type(w["ts"]) is float
    assert type(w["size"]) is int and type(w["volume"]) is int
    assert b'"ts":1795715689321.9,' in orjson.dumps(w)
    assert b'"size":100,"volume":120033' in orjson.dumps(w)
    q = b.apply(Tick("AAPL", 228.44, 1795715689322.0, size=0.5))
    w = compact(dict(q))
    assert w["size"] == 0.5 and w["volume"] == 120033.5 and type(w["volume"]) is float
    assert integral(2.0**60) == 2.0**60 and type(integral(2.0**60)) is float  # (not exact)


@given(st.floats(allow_nan=False))
def test_integral_keeps_the_value(x: float) -> None:
    assert integral(x) == x


def test_high_low_volume_and_change_follow_ticks() -> None:
    b = Book()
    b.apply(Tick("X", 10.0, 1, size=5, prev_close=10.0))
    b.apply(Tick("X", 12.0, 2, size=1))
    q = b.apply(Tick("X", 8.0, 3, size=2))
    assert (q["high"], q["low"], q["open"], q["volume"]) == (12.0, 8.0, 10.0, 8)
    assert q["change"] == -2.0 and q["change_pct"] == -20.0
    # A source-given cumulative volume wins over accumulated sizes.
    assert b.apply(Tick("X", 9.0, 4, size=3, volume=1000))["volume"] == 1000


def test_no_prev_close_means_no_change_fields() -> None:
    q = Book().apply(Tick("Y", 1.0, 1))
    assert "change" not in q and "change_pct" not in q


def test_declare_reports_only_new_symbols_in_order() -> None:
    b = Book()
    assert b.declare(Listing(("B", "A")).symbols) == ["B", "A"]
    assert b.declare(["A", "C"]) == ["C"]
    assert list(b.known) == ["B", "A", "C"]
    assert b.snapshot() == {}


def test_snapshot_copies() -> None:
    b = Book()
    b.apply(Tick("A", 1.0, 1))
    snap = b.snapshot(["A", "missing"])
    snap["A"]["price"] = 99
    assert b.quotes["A"]["price"] == 1.0 and "missing" not in snap


@given(st.lists(st.floats(0.01, 1e6, allow_nan=False), min_size=1, max_size=50))
def test_high_low_bound_every_price(prices: list[float]) -> None:
    b = Book()
    for i, p in enumerate(prices):
        q = b.apply(Tick("Z", p, float(i)))
    assert q["high"] == max(prices) and q["low"] == min(prices)
    assert q["open"] == prices[0] and q["price"] == prices[-1]


def test_token_bucket_refills_at_its_rate() -> None:
    tb = TokenBucket(rate=10, burst=3, now=0.0)
    assert [tb.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not tb.take(0.05)
    assert tb.take(0.1)
    assert [tb.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0.0)
    with pytest.raises(ValueError):
        TokenBucket(1, 0, 0.0)


@given(st.lists(st.floats(0, 0.5, allow_nan=False), max_size=200))
def test_token_bucket_never_exceeds_rate_plus_burst(gaps: list[float]) -> None:
    tb = TokenBucket(rate=20, burst=5, now=0.0)
    now = 0.0
    taken = 0
    for g in gaps:
        now += g
        taken += tb.take(now)
    assert taken <= 5 + 20 * now + 1e-9


DAY0 = 1_700_006_400_000.0  # a UTC midnight


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.integers(0, 86_399_999), st.floats(1, 1e4), st.floats(0, 1e3)
        ),
        min_size=1,
        max_size=60,
    )
)
def test_day_statistics_are_those_of_the_events_own_utc_day(
    raw: list[tuple[int, int, float, float]],
) -> None:
    """open/high/low/volume are the last event's UTC day's; prev_close is the day before's last
    price (the feed gives none here)."""
    events = sorted((DAY0 + d * DAY_MS + ms, p, size) for d, ms, p, size in raw)
    book = Book()
    for ts, p, size in events:
        book.apply(Tick("A", p, ts, size=size))
    q = book.quotes["A"]
    last_day = events[-1][0] // DAY_MS
    today = [e for e in events if e[0] // DAY_MS == last_day]
    earlier = [e for e in events if e[0] // DAY_MS < last_day]
    assert q["open"] == today[0][1]
    assert q["high"] == max(p for _, p, _ in today)
    assert q["low"] == min(p for _, p, _ in today)
    assert q["volume"] == pytest.approx(sum(s for _, _, s in today))
    assert q.get("prev_close") == (earlier[-1][1] if earlier else None)


def test_bars_update_the_quote_and_the_day() -> None:
    book = Book()
    book.apply_bar(Bar("A", DAY0, "1m", 10.0, 12.0, 9.0, 11.0, 100.0))
    q = book.apply_bar(Bar("A", DAY0 + 60_000, "1m", 11.0, 13.0, 10.5, 12.5, 50.0))
    assert (q["price"], q["open"], q["high"], q["low"], q["volume"]) == (
        12.5,
        10.0,
        13.0,
        9.0,
        150.0,
    )
    assert q["ts"] == DAY0 + 60_000
    # Daily bars: every bar is its own day, the one before is the previous close.
    q = book.apply_bar(Bar("A", DAY0 + DAY_MS, "1d", 12.0, 14.0, 11.0, 13.75, 7.0))
    assert (q["open"], q["high"], q["low"], q["volume"]) == (12.0, 14.0, 11.0, 7.0)
    assert q["prev_close"] == 12.5 and q["change"] == 1.25


def test_restart_starts_the_day_afresh_without_a_previous_close_from_the_future() -> None:
    book = Book()
    book.apply(Tick("A", 50.0, DAY0 + 5 * DAY_MS, size=1000.0))  # "the future"
    book.restart(["A", "NOPE"])
    q = book.apply(Tick("A", 10.0, DAY0 + 1000.0, size=5.0))
    assert (q["open"], q["high"], q["low"], q["volume"]) == (10.0, 10.0, 10.0, 5.0)
    assert "prev_close" not in q


@given(st.floats(0, 4e12, allow_nan=False))
def test_to_tenth_ms_prints_with_at_most_one_decimal(ms: float) -> None:
    r = to_tenth_ms(ms)
    assert abs(r - ms) <= 0.05 + 1e-3
    assert len(repr(r).split(".")[1]) == 1

"""Conflation and subscriptions: examples plus property tests. Sync, no event loop, no mocks."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from ticker.core.book import Book, compact
from ticker.core.conflate import Conflator, Subscription
from ticker.core.events import Tick

WINDOW_KEYS = {"w_high", "w_low", "w_count"}


def tick(sym: str, price: float, ts: float = 0.0, **kw: Any) -> Tick:
    return Tick(sym, price, ts, **kw)


def feed(book: Book, c: Conflator, t: Tick) -> None:
    book.apply(t)
    c.offer(t.symbol, t.price)


def test_burst_collapses_to_latest() -> None:
    book = Book()
    c = Conflator(interval=0.5)
    feed(book, c, tick("AAPL", 1.0, 1))
    feed(book, c, tick("AAPL", 1.1, 2))
    out = c.drain(now=0.0, quotes=book.quotes)
    assert out["AAPL"]["price"] == 1.1
    assert out["AAPL"]["w_high"] == 1.1 and out["AAPL"]["w_low"] == 1.0
    assert out["AAPL"]["w_count"] == 2
    feed(book, c, tick("AAPL", 1.2, 3))
    assert c.drain(now=0.2, quotes=book.quotes) == {}
    assert c.next_deadline() == 0.5
    assert c.drain(now=0.5, quotes=book.quotes) == {"AAPL": {"price": 1.2, "ts": 3, "high": 1.2}}


def test_single_tick_carries_no_window_fields_and_unchanged_fields_are_left_out() -> None:
    book = Book()
    c = Conflator(interval=0.0)
    feed(book, c, tick("MSFT", 10.0, 1, bid=9.9, ask=10.1))
    first = c.drain(0.0, book.quotes)["MSFT"]
    assert first == {
        "symbol": "MSFT",
        "price": 10.0,
        "ts": 1,
        "open": 10.0,
        "high": 10.0,
        "low": 10.0,
        "bid": 9.9,
        "ask": 10.1,
    }
    feed(book, c, tick("MSFT", 10.0, 2, bid=9.95, ask=10.1))
    assert c.drain(0.0, book.quotes) == {"MSFT": {"ts": 2, "bid": 9.95}}


def test_nothing_pending_means_no_deadline_and_no_delta() -> None:
    c = Conflator(interval=0.1)
    assert c.next_deadline() is None
    assert c.drain(100.0, {}) == {}


def test_identical_tick_produces_no_delta() -> None:
    book = Book()
    c = Conflator(interval=0.0)
    feed(book, c, tick("A", 5.0, 1))
    c.drain(0.0, book.quotes)
    feed(book, c, tick("A", 5.0, 1))
    assert c.drain(1.0, book.quotes) == {}


def test_negative_or_nan_interval_is_rejected() -> None:
    with pytest.raises(ValueError):
        Conflator(-1.0)
    with pytest.raises(ValueError):
        Conflator(math.nan)


def test_snapshot_is_the_last_flushed_state_not_the_live_book() -> None:
    book = Book()
    c = Conflator(interval=1.0)
    feed(book, c, tick("A", 1.0, 1))
    c.drain(0.0, book.quotes)
    feed(book, c, tick("A", 2.0, 2))
    assert c.snapshot(["A", "B"])["A"]["price"] == 1.0
    assert "B" not in c.snapshot(["A", "B"])


def test_new_conflator_starts_from_the_book() -> None:
    book = Book()
    book.apply(tick("A", 3.0, 1))
    c = Conflator(0.1, book.quotes)
    assert c.snapshot(["A"]) == {"A": book.quotes["A"]}
    assert c.snapshot(["A"])["A"] is not book.quotes["A"]


# Subscriptions


def test_subscription_star_and_exclusions() -> None:
    s = Subscription().add(["AAPL"])
    assert s.includes("AAPL") and not s.includes("MSFT")
    s = s.add([], star=True)
    assert s.includes("MSFT") and s.includes("NEW")
    s = s.remove(["MSFT"])
    assert not s.includes("MSFT") and s.includes("NEW")
    s = s.add(["MSFT"])
    assert s.includes("MSFT")
    assert s.remove([], star=True).empty
    assert Subscription().empty and not s.empty
    assert s.resolve(["A", "MSFT"]) == ["A", "MSFT"]
    assert Subscription().add(["B"]).resolve(["A", "B", "C"]) == ["B"]


def test_equal_subscriptions_are_equal_keys() -> None:
    a = Subscription().add(["A", "B"])
    b = Subscription().add(["B"]).add(["A"])
    assert a == b and hash(a) == hash(b)


# Properties

SYMS = ["A", "B", "C", "D"]

ticks = st.builds(
    Tick,
    symbol=st.sampled_from(SYMS),
    price=st.floats(0.01, 1000, allow_nan=False, allow_infinity=False),
    ts=st.floats(0, 1e13, allow_nan=False),
    size=st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
    bid=st.one_of(st.none(), st.floats(0.01, 1000, allow_nan=False)),
    ask=st.one_of(st.none(), st.floats(0.01, 1000, allow_nan=False)),
    prev_close=st.one_of(st.none(), st.floats(0.01, 1000, allow_nan=False)),
)
# An operation: a tick, or time passing then a flush attempt, or a late client joining.
ops = st.lists(
    st.one_of(
        ticks.map(lambda t: ("tick", t)),
        st.floats(0, 0.3, allow_nan=False).map(lambda dt: ("flush", dt)),
        st.just(("join", None)),
    ),
    max_size=80,
)


def apply_delta(state: dict[str, dict[str, Any]], quotes: dict[str, dict[str, Any]]) -> None:
    for sym, fields in quotes.items():
        state.setdefault(sym, {}).update({k: v for k, v in fields.items() if k not in WINDOW_KEYS})


@settings(max_examples=300, deadline=None)
@given(ops=ops, interval=st.sampled_from([0.0, 0.05, 0.1, 0.25]))
def test_snapshot_plus_deltas_reproduce_the_book(
    ops: list[tuple[str, Any]], interval: float
) -> None:
    """Any tick sequence, any flush schedule: every client ends with exactly the server's state,
    no delta carries an unchanged field (ts aside, which every delta carries), and no client gets
    two deltas within one window."""
    book = Book()
    c = Conflator(interval, book.quotes)
    clients: list[dict[str, dict[str, Any]]] = [{}]
    last_sent = -math.inf
    now = 0.0
    window_stats: dict[str, list[float]] = {}
    for kind, arg in ops:
        if kind == "tick":
            feed(book, c, arg)
            w = window_stats.setdefault(arg.symbol, [])
            w.append(arg.price)
        elif kind == "join":
            clients.append(c.snapshot(SYMS))
        else:
            now += arg
            due = bool(c.pending) and now >= c.last_flush + interval
            out = c.drain(now, book.quotes)
            if due:
                assert c.pending == {}
            if out:
                assert now >= last_sent + interval  # the Conflator's own form (float rounding)
                last_sent = now
                for sym, d in out.items():
                    assert "ts" in d
                    prices = window_stats.get(sym, [])
                    if len(prices) > 1:
                        assert d["w_count"] == len(prices)
                        assert d["w_high"] == max(prices) and d["w_low"] == min(prices)
                    else:
                        assert not WINDOW_KEYS & d.keys()
                    for state in clients:
                        before = state.get(sym)
                        if before is not None:
                            unchanged = {
                                k
                                for k, v in d.items()
                                if k not in WINDOW_KEYS | {"ts"} and before.get(k) == v
                            }
                            assert not unchanged, f"delta repeats {unchanged}"
                for state in clients:
                    apply_delta(state, out)
            if due:
                window_stats.clear()
    out = c.drain(now + 10.0, book.quotes)
    for state in clients:
        apply_delta(state, out)
        # (What went out is compact: ts to 0.1 ms, whole sizes as integers: equal values.)
        assert state == {s: compact(dict(q)) for s, q in book.quotes.items()}


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sets(st.sampled_from(SYMS)),
            st.booleans(),
            st.sets(st.sampled_from(SYMS)),
            st.booleans(),
        ),
        max_size=12,
    ),
    probe=st.sampled_from([*SYMS, "E"]),
)
def test_subscription_matches_a_set_model(
    steps: list[tuple[set[str], bool, set[str], bool]], probe: str
) -> None:
    """subscribe/unsubscribe with and without "*" behave as docs/protocol.md says, in any order."""
    sub = Subscription()
    every = False
    have: set[str] = set()  # explicit symbols when not every; exclusions when every
    for add, star_add, remove, star_remove in steps:
        sub = sub.add(add, star=star_add)
        if star_add:
            every, have = True, set()
        elif every:
            have -= add
        else:
            have |= add
        sub = sub.remove(remove, star=star_remove)
        if star_remove:
            every, have = False, set()
        elif every:
            have |= remove
        else:
            have -= remove
        expected = (probe not in have) if every else (probe in have)
        assert sub.includes(probe) == expected


@settings(max_examples=300, deadline=None)
@given(ops=ops, interval=st.sampled_from([0.0, 0.05, 0.25]))
def test_changes_since_brings_any_earlier_flush_up_to_date(
    ops: list[tuple[str, Any]], interval: float
) -> None:
    """A client that stopped at any flush k (a slow or held one) gets, from changes_since(k), one
    delta that turns its copy of flush k's state into the current flushed state, exactly."""
    book = Book()
    c = Conflator(interval, book.quotes)
    saved: list[tuple[int, dict[str, dict[str, Any]]]] = [(0, {})]
    now = 0.0
    for kind, arg in ops:
        if kind == "tick":
            feed(book, c, arg)
        elif kind == "join":
            saved.append((c.flushes, {s: dict(q) for s, q in c.sent.items()}))
        else:
            now += arg
            c.drain(now, book.quotes)
    for k, state in saved:
        apply_delta(state, c.changes_since(SYMS, k))
        assert state == c.sent
    assert c.changes_since(SYMS, c.flushes) == {}


@settings(max_examples=300, deadline=None)
@given(
    interval=st.sampled_from([0.25, 0.5, 1.0]),
    phase=st.floats(0.0, 10.0),
    steps=st.lists(
        st.tuples(st.floats(0.0, 0.6), st.booleans()),  # (time passes, a tick arrives)
        min_size=1,
        max_size=80,
    ),
)
def test_a_phased_window_flushes_on_its_grid(
    interval: float, phase: float, steps: list[tuple[float, bool]]
) -> None:
    """On a phase: a flush counts as made at the grid point ``phase + k * interval`` before it,
    however late; at most one flush per grid cell; one is due as soon as its grid point passes
    with something pending (late flushes neither skip a cell nor shift the grid). After a quiet
    spell the first due drain joins the grid instead: nothing flushed, due at the next point."""
    book = Book()
    c = Conflator(interval, book.quotes, phase)
    now = 100.0
    cells: list[int] = []
    price = 1.0
    for dt, ticks in steps:
        now += dt
        if ticks:
            price += 1.0
            feed(book, c, tick("AAA", price))
        due = c.next_deadline()
        before = c.last_flush
        pending = bool(c.pending)
        out = c.drain(now, book.quotes)
        if pending and due is not None and now >= due:
            k = (c.last_flush - phase) / interval
            assert abs(k - round(k)) < 1e-6  # a grid point: the one at or before now
            assert c.last_flush <= now + 1e-9 < c.last_flush + interval + 1e-9
            if out:
                assert not c.pending
                cells.append(round(k))
            else:  # a quiet spell: the grid joined, the changes due at its next point
                assert c.last_flush - before >= 1.5 * interval - 1e-9
                deadline = c.next_deadline()
                assert c.pending and deadline is not None and deadline > now
        else:
            assert not out
    assert cells == sorted(set(cells))  # one flush per grid cell at most


def test_phases_spread_flushes_and_bad_phases_are_refused() -> None:
    book = Book()
    a, b = Conflator(1.0, book.quotes, 0.0), Conflator(1.0, book.quotes, 0.5)
    feed(book, a, tick("AAA", 1.0))
    feed(book, b, tick("AAA", 1.0))
    # At the start each joins its grid: nothing flushed, due at its next point.
    assert not a.drain(10.05, book.quotes) and not b.drain(10.05, book.quotes)
    assert (a.next_deadline(), b.next_deadline()) == (11.0, 10.5)  # half a window apart
    assert a.drain(11.0, book.quotes) and b.drain(10.5, book.quotes)
    feed(book, a, tick("AAA", 2.0))
    feed(book, b, tick("AAA", 2.0))
    assert (a.next_deadline(), b.next_deadline()) == (12.0, 11.5)
    assert a.drain(12.3, book.quotes)  # late by 300 ms: counted at 12.0, the next due at 13.0
    feed(book, a, tick("AAA", 3.0))
    assert a.next_deadline() == 13.0
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="phase"):
            Conflator(1.0, None, bad)
    with pytest.raises(ValueError, match="phase"):
        Conflator(0.0, None, 0.0)

"""The session core (``ticker.hub.session``): requests, entitlements, symbol limits, rate tokens.

Synchronous, no event loop: a :class:`Session` takes ``now`` and returns what to do. The last
properties run a whole hub on a manual clock (tests/hubsim.py) to check what reaches the wire.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from tests.hubsim import Sim
from ticker.core.auth import news_visible
from ticker.core.conflate import Subscription
from ticker.core.events import News, Tick
from ticker.core.protocol import Ack, Error, Hello, Pong
from ticker.hub.broadcaster import HubConfig
from ticker.hub.news import NewsRing
from ticker.hub.session import (
    CLOSE_POLICY,
    FRAME_BUDGET_SLACK,
    Close,
    Listen,
    Move,
    Output,
    Send,
    Session,
    SessionRules,
    Snapshot,
    effective_window,
)

KNOWN = {"AAPL": None, "MSFT": None, "GOOGL": None, "aapl": None, "BTC-USD": None}


def rules(**kw: Any) -> SessionRules:
    base: dict[str, Any] = {
        "throttle_ms": 100.0,
        "max_throttle_ms": 10_000.0,
        "max_symbols_per_request": 1_000,
        "max_symbols_per_connection": 2_000,
        "rate": 20.0,
        "burst": 60.0,
    }
    return SessionRules(**(base | kw))


def session(entitled: frozenset[str] | None = None, **kw: Any) -> Session:
    return Session("s-1", rules(**kw), 0.0, entitled)


def ask(s: Session, request: Any, now: float = 0.0, news: NewsRing | None = None) -> list[Output]:
    data = request if isinstance(request, bytes) else orjson.dumps(request)
    return s.receive(data, now, KNOWN, news or NewsRing(10))


def messages(out: list[Output]) -> list[Any]:
    return [o.message for o in out if isinstance(o, Send)]


# Requests, one by one


def test_subscribe_moves_then_acks_then_snapshots() -> None:
    s = session()
    out = ask(s, {"op": "subscribe", "symbols": ["aapl", "MSFT", "NOPE"], "id": 1})
    assert out == [
        Move(100, Subscription(False, frozenset({"aapl", "MSFT"}))),
        Send(Ack(1, {"symbols": ["aapl", "MSFT"]})),
        Send(Error("unknown_symbol", "unknown symbols: NOPE", 1, ("NOPE",))),
        Snapshot(("aapl", "MSFT")),
    ]
    # Case-insensitive only where the book has no such symbol: "msft" is MSFT.
    out = ask(s, {"op": "subscribe", "symbols": ["msft"]})
    assert out == [Snapshot(("MSFT",))], "nothing new: no move, no ack without an id"


def test_star_snapshots_everything_known_and_unsubscribe_excludes() -> None:
    s = session()
    out = ask(s, {"op": "subscribe", "symbols": ["*"]})
    assert out == [Move(100, Subscription(True)), Snapshot(tuple(KNOWN))]
    out = ask(s, {"op": "unsubscribe", "symbols": ["MSFT", "ZZZ"], "id": "u"})
    assert out == [
        Move(100, Subscription(True, frozenset({"MSFT", "ZZZ"}))),
        Send(Ack("u", {"symbols": ["MSFT", "ZZZ"]})),
    ]


def test_throttle_clamps_and_snapshots_only_when_the_window_changes() -> None:
    s = session(max_throttle_ms=2000.0)
    assert ask(s, {"op": "throttle", "ms": 250, "id": 1}) == [
        Move(250, Subscription()),
        Send(Ack(1, {"ms": 250})),
    ], "nothing subscribed: nothing to snapshot"
    ask(s, {"op": "subscribe", "symbols": ["AAPL"]})
    assert ask(s, {"op": "throttle", "ms": 99_999, "id": 2}) == [
        Move(2000, Subscription(False, frozenset({"AAPL"}))),
        Send(Ack(2, {"ms": 2000})),
        Snapshot(("AAPL",)),
    ]
    assert ask(s, {"op": "throttle", "ms": 1999, "id": 3}) == [Send(Ack(3, {"ms": 2000}))]


@pytest.mark.parametrize(
    ("ms", "window"),
    [(0, 0), (1, 10), (14, 10), (15, 20), (999, 1000), (1049, 1000), (1e9, 10_000)],
)
def test_effective_window(ms: float, window: int) -> None:
    assert effective_window(ms, 10_000) == window


def test_resync_ping_and_bad_input() -> None:
    s = session()
    ask(s, {"op": "subscribe", "symbols": ["GOOGL"]})
    assert ask(s, {"op": "resync", "id": 7}) == [Send(Ack(7, {})), Snapshot(("GOOGL",))]
    assert ask(s, {"op": "ping", "t": 5, "id": 8}) == [Send(Pong(5))], "ping: pong only"
    assert [m.code for m in messages(ask(s, b"{nope"))] == ["bad_json"]
    assert [m.code for m in messages(ask(s, {"op": "dance", "id": 9}))] == ["unknown_op"]
    assert [m.code for m in messages(s.receive(None, 0.0, KNOWN, NewsRing(1)))] == ["bad_request"]


def test_news_topics_ack_and_replay() -> None:
    news = NewsRing(10)
    for i in range(3):
        news.add(News(f"h{i}", 1.0, "t", ("AAPL",)), wall_ms=1_000 + i)
    s = session()
    out = ask(s, {"op": "news", "topics": ["aapl"], "since": 1000, "id": "n"}, news=news)
    assert out == [
        Send(Ack("n", {"topics": ["aapl"], "oldest_id": 1000, "last_id": 1002})),
        Listen(True, 1000),
    ]
    assert s.wants_news(("AAPL",)) and not s.wants_news(("MSFT",))
    assert ask(s, {"op": "news", "topics": [], "since": 5}, news=news) == [Listen(False, None)]


def test_symbol_limit_refuses_the_whole_request() -> None:
    s = session(max_symbols_per_connection=2)
    out = ask(s, {"op": "subscribe", "symbols": ["AAPL", "MSFT", "GOOGL"], "id": 1})
    assert [(m.code, m.id) for m in messages(out)] == [("too_many_symbols", 1)]
    assert len(out) == 1 and s.sub == Subscription(), "nothing applied"
    ask(s, {"op": "subscribe", "symbols": ["*"]})
    out = ask(s, {"op": "unsubscribe", "symbols": ["AAPL", "MSFT", "GOOGL"]})
    assert [m.code for m in messages(out)] == ["too_many_symbols"], "exclusions count under *"


def test_entitlements_apply_at_subscribe() -> None:
    ent = frozenset({"AAPL", "MSFT"})
    s = session(ent)
    assert s.hello(KNOWN, 5, "ticker/x") == Hello(
        "s-1", 100, ("AAPL", "MSFT"), 5, server="ticker/x"
    )
    out = ask(s, {"op": "subscribe", "symbols": ["AAPL", "GOOGL", "aapl", "nope"], "id": 1})
    assert out == [
        Move(100, Subscription(False, frozenset({"AAPL"}))),
        Send(Ack(1, {"symbols": ["AAPL"]})),
        # "aapl" is a symbol of its own in this book: the token names "AAPL", not it.
        Send(
            Error(
                "unauthorized", "not entitled to: GOOGL, aapl, nope", 1, ("GOOGL", "aapl", "nope")
            )
        ),
        Snapshot(("AAPL",)),
    ]
    # Entitled "*" is the entitled set, current and future.
    assert ask(s, {"op": "subscribe", "symbols": ["*"]})[0] == Move(100, Subscription(False, ent))
    out = ask(s, {"op": "news", "topics": ["*", "GOOGL", "msft"], "id": 2})
    assert [type(o).__name__ for o in out] == ["Send", "Send", "Listen"]
    assert messages(out)[1] == Error("unauthorized", "not entitled to: GOOGL", 2, ("GOOGL",))


# Rate limit


def test_frame_budget_and_spend() -> None:
    s = session(rate=1.0, burst=3.0)
    assert s.frame_budget(0.0) == 3 + 3 + FRAME_BUDGET_SLACK
    assert s.spend(3, 0.0) is None and s.frame_budget(0.0) == 0 + 3 + FRAME_BUDGET_SLACK
    assert s.spend(3, 0.0) is None, "three strikes: still within burst"
    assert s.spend(5, 0.0) == Close(CLOSE_POLICY, "rate limit exceeded")
    assert s.spend(5, 0.0) is None and s.take(9.0) is False, "closed: nothing more"


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.5, 50.0),
    burst=st.floats(1.0, 8.0),
    gaps=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=80),
)
def test_over_the_rate_gets_rate_limited_then_1008_exactly_past_burst_strikes(
    rate: float, burst: float, gaps: list[float]
) -> None:
    """Every message over the rate is dropped with one ``rate_limited``; the first one past
    ``burst`` of them in a row closes with 1008 instead, and nothing is answered after it."""
    s = session(rate=rate, burst=burst)
    tokens, stamp, strikes, closed = burst, 0.0, 0, False  # the model: a token bucket
    now = 0.0
    for gap in gaps:
        now += gap
        out = ask(s, {"op": "ping", "t": 1}, now)
        if closed:
            assert out == []
            continue
        tokens = min(burst, tokens + (now - stamp) * rate)
        stamp = now
        if tokens >= 1:
            tokens -= 1
            strikes = 0
            assert out == [Send(Pong(1))]
        else:
            strikes += 1
            if strikes > burst:
                closed = True
                assert strikes == math.floor(burst) + 1
                assert out == [Close(CLOSE_POLICY, "rate limit exceeded")]
            else:
                assert [(m.code, m.id) for m in messages(out)] == [("rate_limited", None)]
                assert len(out) == 1


# Every request with an id gets exactly one answer with that id

symbols = st.sampled_from([*KNOWN, "*", "NOPE", "msft", "Btc-usd", "zz"])
ids = st.one_of(st.integers(-3, 3), st.text("ab", max_size=2))
requests = st.one_of(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["subscribe", "unsubscribe"]), "symbols": st.lists(symbols)}
    ),
    st.fixed_dictionaries(
        {"op": st.just("news"), "topics": st.lists(symbols)},
        optional={"since": st.integers(-1, 1100)},
    ),
    st.fixed_dictionaries({"op": st.just("throttle"), "ms": st.floats(-5, 20_000)}),
    st.fixed_dictionaries({"op": st.just("resync")}),
    st.fixed_dictionaries({"op": st.sampled_from(["dance", "", "SUBSCRIBE"])}),
    st.fixed_dictionaries({"op": st.just("subscribe"), "symbols": st.just("AAPL")}),
    st.fixed_dictionaries({"op": st.just("throttle"), "ms": st.just("fast")}),
    st.fixed_dictionaries({"op": st.just("news"), "topics": st.just([]), "since": st.just(-1)}),
)
NOTES = ["unauthorized", "unknown_symbol"]
entitlements = st.one_of(st.none(), st.frozensets(st.sampled_from([*KNOWN, "NOPE", "ZZ"])))


@settings(max_examples=300, deadline=None)
@given(
    entitled=entitlements,
    cap=st.integers(0, 4),
    script=st.lists(st.tuples(requests, st.one_of(st.none(), ids)), min_size=10, max_size=40),
)
def test_every_request_with_an_id_gets_one_ack_or_error_with_that_id(
    entitled: frozenset[str] | None,
    cap: int,
    script: list[tuple[dict[str, Any], int | str | None]],
) -> None:
    """Exactly one ``ack`` (with at most one ``unauthorized`` and one ``unknown_symbol`` note
    beside it: the request was served, in part), or else exactly one ``error``; a request
    without an id is never acked."""
    s = session(entitled, max_symbols_per_connection=cap, max_symbols_per_request=3)
    news = NewsRing(5)
    news.add(News("h", 1.0, "t", ()), wall_ms=1000)
    for i, (request, rid) in enumerate(script):
        msg = dict(request) | ({} if rid is None else {"id": rid})
        answers = [m for m in messages(ask(s, msg, now=i, news=news)) if isinstance(m, Ack | Error)]
        mine = [m for m in answers if m.id == rid]
        assert len(mine) == len(answers), f"an answer with another id: {answers}"
        acks = [m for m in mine if isinstance(m, Ack)]
        if rid is None:
            assert not acks
            continue
        if acks:
            notes = sorted(m.code for m in mine if isinstance(m, Error))
            assert len(acks) == 1, mine
            assert notes in ([], ["unauthorized"], ["unknown_symbol"], NOTES), mine
        else:
            assert len(mine) == 1 and isinstance(mine[0], Error), (msg, mine)


# Entitlements: what reaches the wire


ticks = st.tuples(st.sampled_from(list(KNOWN)), st.integers(1, 200).map(float))
# What a client does that changes what it is sent.
wire_requests = st.one_of(
    st.fixed_dictionaries(
        {"op": st.just("subscribe"), "symbols": st.lists(symbols, min_size=1, max_size=3)}
    ),
    st.fixed_dictionaries({"op": st.just("unsubscribe"), "symbols": st.lists(symbols, max_size=2)}),
    st.fixed_dictionaries({"op": st.just("throttle"), "ms": st.sampled_from([0, 10, 100, 250])}),
    st.fixed_dictionaries({"op": st.just("resync")}),
    st.fixed_dictionaries(
        {"op": st.just("news"), "topics": st.lists(symbols, max_size=3)},
        optional={"since": st.integers(0, 2000)},
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    entitled=st.frozensets(st.sampled_from([*KNOWN, "NOPE"]), min_size=1),
    script=st.lists(
        st.one_of(
            wire_requests,
            ticks,
            ticks,
            st.tuples(st.lists(st.sampled_from(list(KNOWN)), max_size=3), st.just("news")),
            st.floats(0.0, 0.3),
        ),
        min_size=20,
        max_size=80,
    ),
)
def test_no_symbol_outside_the_entitlement_is_ever_sent(
    entitled: frozenset[str], script: list[Any]
) -> None:
    sim = Sim(HubConfig(flow_hold_ms=0), list(KNOWN))
    for symbol in KNOWN:
        sim.hub.publish(Tick(symbol, 100.0, 1.7e12))
    conn = sim.connect(entitled)
    other = sim.connect()  # an unentitled neighbour in the same windows
    other.send({"op": "subscribe", "symbols": ["*"]})
    for i, step in enumerate(script):
        if isinstance(step, dict):
            conn.send(step)
        elif isinstance(step, float):
            sim.loop.advance(step)
        elif step[1] == "news":
            sim.hub.publish(News("h", 1.0, "t", tuple(step[0])))
        else:
            sim.hub.publish(Tick(step[0], step[1], 1.7e12 + i))
    sim.loop.advance(1.0)
    conn.read()
    (hello, *frames) = conn.frames
    assert set(hello["symbols"]) <= entitled
    for f in frames:
        if f["type"] in ("snapshot", "delta"):
            assert set(f["quotes"]) <= entitled, f
        elif f["type"] == "news":
            assert news_visible(tuple(f["symbols"]), entitled), f

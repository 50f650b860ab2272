"""Flow control (``ticker.hub.flow``): live, held and paused connections, markers, catch-ups.

Synchronous, no event loop: a :class:`Flow` takes ``now`` and the unsent byte count and returns
what to do. The catch-up property runs it against a real :class:`Conflator`; the last properties
run a whole hub on a manual clock (tests/hubsim.py), the way the server composes them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st

from tests.hubsim import Conn, Sim
from tests.wsutil import apply_frame
from ticker.core.book import Book
from ticker.core.conflate import Conflator
from ticker.core.events import News, Tick
from ticker.hub.broadcaster import HubConfig
from ticker.hub.flow import CLOSE_TRY_AGAIN, MARK_FRAMES, Flow, FlowRules, FlowState, Step

LIVE, HELD, PAUSED = FlowState.LIVE, FlowState.HELD, FlowState.PAUSED
SYMS = ("A", "B", "C", "D")


def rules(**kw: Any) -> FlowRules:
    base: dict[str, Any] = {
        "pause_bytes": 0,
        "max_buffer_bytes": 1000,
        "flow_hold_ms": 20.0,
        "slow_close_after": 10.0,
    }
    return FlowRules(**(base | kw))


def outstanding(f: Flow) -> bytes | None:
    """``f.marker`` (a call: mypy keeps no narrowing of it across the calls that change it)."""
    return f.marker


# The state machine, step by step


def test_live_writes_and_numbers_each_frame() -> None:
    f = Flow(rules())
    assert f.on_flush(["A"], 1, 0.0, 0, 0) is Step.WRITE and f.seq == 1
    assert f.snapshot(["A", "B"], 0.0, 0, 0) is Step.WRITE and f.seq == 2
    assert f.numbered() == 3 and f.state is LIVE


def test_unsent_bytes_pause_then_a_drained_buffer_catches_up() -> None:
    f = Flow(rules())
    f.on_flush(["A"], 1, 0.0, 0, 0)
    assert f.on_flush(["A", "B"], 2, 1.0, 10, news_id=7) is Step.PAUSE
    assert (f.state, f.behind_since, f.news_id, f.synced, f.missed) == (
        PAUSED,
        1.0,
        7,
        1,
        {"A", "B"},
    )
    assert f.on_flush(["C"], 3, 1.1, 10, 7) is Step.SKIP and f.missed == {"A", "B", "C"}
    assert f.synced == 1, "its copy is still as of flush 1"
    assert f.snapshot(["D"], 1.2, 10, 7) is Step.SKIP and f.fresh == {"D"}, "deferred"
    assert f.on_news(1.2, 10, 7, 8) is Step.SKIP
    assert f.check_paused(1.3, 10) is None
    assert f.check_paused(1.3, 0) is Step.CATCH_UP
    plan = f.catch_up(lambda s: s != "B")
    assert (plan.fresh, sorted(plan.missed), plan.synced, plan.news_since, plan.clock) == (
        ("D",),
        ["A", "C"],
        1,
        7,
        False,
    )
    assert (f.state, f.missed, f.fresh) == (LIVE, set(), set())
    assert f.seq == 1, "nothing was numbered while paused"


def test_paused_too_long_is_closed() -> None:
    f = Flow(rules(slow_close_after=2.0))
    f.on_flush(["A"], 1, 5.0, 1, 0)
    assert f.check_paused(7.0, 1) is None
    assert f.check_paused(7.01, 1) is Step.CLOSE and CLOSE_TRY_AGAIN == 1013


def test_snapshots_and_replays_pause_over_the_buffer_bound() -> None:
    f = Flow(rules(pause_bytes=100, max_buffer_bytes=1000))
    assert f.snapshot(["A"], 0.0, 1000, 0) is Step.WRITE
    assert f.snapshot(["B"], 0.0, 1001, 3) is Step.PAUSE and f.fresh == {"B"} and f.news_id == 3
    g = Flow(rules(pause_bytes=100, max_buffer_bytes=1000))
    assert g.on_replay(0.0, 1000, 5) is Step.WRITE
    assert g.on_replay(0.0, 1001, 5) is Step.PAUSE and g.news_id == 5
    assert g.on_replay(0.0, 1001, 6) is Step.SKIP and g.news_id == 5
    h = Flow(rules(pause_bytes=100))
    assert h.on_news(0.0, 100, 1, 2) is Step.WRITE and h.news_id == 2
    assert h.on_news(0.0, 101, 2, 3) is Step.PAUSE and h.news_id == 2


def test_window_0_is_clocked_by_marker_pings() -> None:
    """A marker after every MARK_FRAMES-th frame of a fast stream, one outstanding at a time,
    at most one per half hold; a stream slower than two holds is not clocked."""
    r = rules(flow_hold_ms=20.0)
    f = Flow(r, clocked=True)
    # The first frame comes after a long gap: not a fast stream, no marker.
    assert f.on_flush(["A"], 1, 100.0, 0, 0) is Step.WRITE
    # The next comes fast, and MARK_FRAMES have passed since the (virtual) last marker.
    assert f.on_flush(["A"], 2, 100.001, 0, 0) is Step.WRITE_MARKED
    assert f.marker == b"t1" and f.marker_at == 100.001 and f.unmarked == 0
    # One outstanding: the next frames within the hold are written unmarked.
    assert [f.on_flush(["A"], n, 100.002 + n / 1e4, 0, 0) for n in range(3, 8)] == [Step.WRITE] * 5
    assert f.pong(b"t0") is None, "not the marker: the caller charges a token"
    assert f.pong(b"t1") is Step.SKIP
    assert outstanding(f) is None and f.state is LIVE
    # Marked again as soon as MARK_FRAMES frames have passed (five did) and half a hold.
    assert f.on_flush(["A"], 8, 100.0109, 0, 0) is Step.WRITE
    assert f.on_flush(["A"], 9, 100.0111, 0, 0) is Step.WRITE_MARKED
    assert f.marker == b"t2"
    f.pong(b"t2")
    assert [f.on_flush(["A"], 10 + n, 100.02 + n / 1e3, 0, 0) for n in range(MARK_FRAMES)] == [
        Step.WRITE
    ] * (MARK_FRAMES - 1) + [Step.WRITE_MARKED]
    # A slow stream (frames further apart than two holds) is never marked.
    g = Flow(r, clocked=True)
    assert {g.on_flush(["A"], n, 200.0 + n * 0.041, 0, 0) for n in range(20)} == {Step.WRITE}


def test_a_late_pong_holds_then_the_pong_catches_up_and_clocks() -> None:
    f = Flow(rules(flow_hold_ms=20.0), clocked=True)
    f.on_flush(["A"], 1, 100.0, 0, 0)
    assert f.on_flush(["A"], 2, 100.001, 0, 0) is Step.WRITE_MARKED
    assert f.on_flush(["B"], 3, 100.02, 0, 0) is Step.WRITE, "within the hold"
    assert f.on_flush(["B", "C"], 4, 100.0211, 0, 0) is Step.SKIP and f.state is HELD
    assert (f.synced, f.missed) == (3, {"B", "C"})
    assert f.on_flush(["A"], 5, 100.03, 10**9, 0) is Step.SKIP, "held: unsent bytes don't matter"
    assert f.pong(f.marker or b"") is Step.CATCH_UP
    plan = f.catch_up(lambda s: True)
    assert (sorted(plan.missed), plan.synced, plan.news_since, plan.clock) == (
        ["A", "B", "C"],
        3,
        None,
        True,
    )
    assert f.marker_overdue(200.0) is False, "answered"
    f.mark(100.1)
    assert not f.marker_overdue(110.1) and f.marker_overdue(110.11)


def test_a_move_to_another_window_turns_what_was_missed_whole() -> None:
    f = Flow(rules(), clocked=True)
    f.on_flush(["A", "B"], 1, 0.0, 5, 0)
    f.moved(False, lambda s: s == "A")
    assert (f.missed, f.fresh, f.clocked) == (set(), {"A"}, False)
    assert f.snapshot(["A"], 0.0, 5, 0) is Step.SKIP, "still paused: deferred"


# Properties of the state machine alone

calls = st.lists(
    st.tuples(
        st.sampled_from(["flush", "snapshot", "news", "replay", "pong", "check", "numbered"]),
        st.sampled_from([0, 1, 100, 1001]),  # unsent bytes
        st.floats(0.0, 0.05),  # time passing
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(clocked=st.booleans(), script=calls)
def test_seq_advances_once_per_frame_written_and_never_otherwise(
    clocked: bool, script: list[tuple[str, int, float]]
) -> None:
    f = Flow(rules(pause_bytes=0, max_buffer_bytes=1000), clocked)
    now, flush = 0.0, 0
    for call, unsent, dt in script:
        now += dt
        before = f.seq
        numbered = False
        if call == "flush":
            flush += 1
            numbered = f.on_flush(["A"], flush, now, unsent, 0) in (Step.WRITE, Step.WRITE_MARKED)
        elif call == "snapshot":
            numbered = f.snapshot(["B"], now, unsent, 0) is Step.WRITE
        elif call == "news":
            f.on_news(now, unsent, 0, 1)
        elif call == "replay":
            f.on_replay(now, unsent, 0)
        elif call == "pong":
            if f.pong(f.marker or b"") is Step.CATCH_UP:
                f.catch_up(lambda s: True)
        elif call == "check":
            if f.check_paused(now, unsent) is Step.CATCH_UP:
                f.catch_up(lambda s: True)
        else:
            f.numbered()
            numbered = True
        assert f.seq == before + numbered
        if f.state is LIVE:
            assert not f.missed and not f.fresh, "a live client is in step"


@settings(max_examples=300, deadline=None)
@given(
    subscribed=st.frozensets(st.sampled_from(SYMS), min_size=1),
    clocked=st.booleans(),
    script=st.lists(
        st.one_of(
            st.tuples(st.just("tick"), st.sampled_from(SYMS), st.integers(1, 30)),
            st.tuples(st.just("flush"), st.sampled_from([0, 0, 1, 2000]), st.floats(0, 0.03)),
            st.tuples(st.just("drained"), st.just(0), st.floats(0, 0.03)),
            st.tuples(st.just("pong"), st.just(0), st.floats(0, 0.03)),
        ),
        max_size=80,
    ),
)
def test_a_caught_up_client_holds_exactly_the_state_of_its_window(
    subscribed: frozenset[str], clocked: bool, script: list[tuple[str, Any, Any]]
) -> None:
    """Whatever it missed while held or paused, one catch-up delta of the changes since its
    last frame (``Conflator.changes_since(missed, synced)``), applied to its copy, gives the
    window's state; and once nothing is pending, that is the book."""
    book = Book()
    for i, s in enumerate(SYMS):
        book.apply(Tick(s, 10.0 + i, 0.0, size=1.0))
    window = Conflator(0.0, book.quotes)
    flow = Flow(rules(pause_bytes=0, max_buffer_bytes=1000, flow_hold_ms=20.0), clocked)
    copy = {s: dict(q) for s, q in window.snapshot(subscribed).items()}  # its first snapshot
    now, ts, caught_up = 0.0, 0.0, 0

    def catch_up() -> None:
        nonlocal caught_up
        plan = flow.catch_up(subscribed.__contains__)
        assert not plan.fresh, "(nothing here is subscribed while it is paused)"
        for s, d in window.changes_since(plan.missed, plan.synced).items():
            apply_frame(copy, {"type": "delta", "quotes": {s: d}})
        caught_up += 1

    for kind, arg, extra in script:
        if kind == "tick":
            ts += 1.0
            tick = Tick(arg, float(extra), ts, size=1.0)
            book.apply(tick)
            window.offer(tick.symbol, tick.price)
            continue
        now += extra
        if kind == "flush":
            changes = window.drain(now, book.quotes)
            mine = [s for s in changes if s in subscribed]
            if mine:
                step = flow.on_flush(mine, window.flushes, now, arg, 0)
                if step in (Step.WRITE, Step.WRITE_MARKED):
                    apply_frame(copy, {"type": "delta", "quotes": {s: changes[s] for s in mine}})
                elif step is Step.CATCH_UP:
                    catch_up()
        elif kind == "drained" and flow.check_paused(now, arg) is Step.CATCH_UP:
            catch_up()
        elif kind == "pong" and flow.pong(flow.marker or b"") is Step.CATCH_UP:
            catch_up()
        if flow.state is LIVE:
            assert copy == {s: window.sent[s] for s in subscribed}
            if not window.pending:
                assert copy == {s: book.quotes[s] for s in subscribed}


# The hub composes them: what reaches the wire

requests = st.one_of(
    st.fixed_dictionaries(
        {"op": st.just("subscribe"), "symbols": st.lists(st.sampled_from([*SYMS, "*"]), max_size=3)}
    ),
    st.fixed_dictionaries(
        {"op": st.just("unsubscribe"), "symbols": st.lists(st.sampled_from(SYMS), max_size=2)}
    ),
    st.fixed_dictionaries({"op": st.just("throttle"), "ms": st.sampled_from([0, 0, 10, 100])}),
    st.fixed_dictionaries({"op": st.just("resync")}),
    st.fixed_dictionaries(
        {"op": st.just("news"), "topics": st.sampled_from([["*"], [], ["A"]])},
        optional={"since": st.integers(0, 3)},
    ),
)
steps = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 2), requests),
    st.tuples(st.just("tick"), st.sampled_from(SYMS), st.integers(1, 9)),
    st.tuples(st.just("tick"), st.sampled_from(SYMS), st.integers(1, 9)),
    st.tuples(st.just("news"), st.sampled_from(SYMS), st.just(0)),
    st.tuples(st.just("time"), st.just(0), st.sampled_from([0.0, 0.001, 0.015, 0.03, 0.2])),
    st.tuples(st.just("time"), st.just(0), st.sampled_from([0.0, 0.001, 0.015, 0.03, 0.2])),
    st.tuples(st.just("unsent"), st.integers(0, 2), st.sampled_from([0, 0, 1, 5000])),
    st.tuples(st.just("stall"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("pong"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("housekeep"), st.just(0), st.just(0)),
)


def run_script(script: list[tuple[str, Any, Any]]) -> tuple[Sim, list[Conn]]:
    config = HubConfig(max_buffer_bytes=2000, rate=1e6, burst=1e6, news_retain=5)
    sim = Sim(config, SYMS)
    for i, s in enumerate(SYMS):
        sim.hub.publish(Tick(s, 10.0 + i, 1.7e12, size=1.0))
    conns = [sim.connect() for _ in range(3)]
    for conn, ms, symbols in zip(conns, (0, 0, 100), (["*"], ["A", "B"], ["C"]), strict=True):
        conn.send({"op": "throttle", "ms": ms})
        conn.send({"op": "subscribe", "symbols": symbols})
    conns[0].send({"op": "news", "topics": ["*"]})
    ts = 1.7e12
    stalled = [True, False, False]  # a stalled reader answers no ping (unless told: "pong")
    for kind, arg, extra in script:
        if kind == "request":
            conns[arg].send(extra)
        elif kind == "tick":
            ts += 1
            sim.hub.publish(Tick(arg, float(extra), ts, size=1.0))
        elif kind == "news":
            sim.hub.publish(News("h", ts, "t", (arg,)))
        elif kind == "time":
            sim.loop.advance(extra)
        elif kind == "unsent":
            conns[arg].transport.unsent = extra
        elif kind == "stall":
            stalled[arg] = extra
        elif kind == "pong":
            conns[arg].pong()
        else:
            sim.hub.housekeep()
        for conn, stall in zip(conns, stalled, strict=True):
            if not stall and conn.client.flow.marker is not None:
                conn.pong()  # (it read everything: the ping is answered at once)
    return sim, conns


def in_step(sim: Sim, conn: Conn) -> bool:
    """Whether ``conn``'s copy equals its window's state for every symbol it subscribes to."""
    c = conn.client
    if c.window is None:
        return True
    sent = c.window.conflator.sent
    return all(conn.quotes.get(s) == sent[s] for s in c.session.sub.resolve(sent))


@settings(max_examples=300, deadline=None)
@given(script=st.lists(steps, min_size=30, max_size=120))
def test_seq_is_plus_one_per_frame_and_every_client_ends_in_step(
    script: list[tuple[str, Any, Any]],
) -> None:
    """For any interleaving of requests, ticks, news, flushes, buffer states, pongs and
    housekeeping: ``seq`` goes up by exactly 1 per snapshot or delta on every connection; a live
    connection's copy is its window's state; and once its reader keeps up again (buffers drain,
    pings are answered), every connection's copy is the book."""
    sim, conns = run_script(script)
    for conn in conns:
        conn.read()
        if conn.client.flow.state is FlowState.LIVE:
            assert in_step(sim, conn)
    # The readers catch up: buffers drain, pings are answered, time passes.
    for conn in conns:
        conn.transport.unsent = 0
    for _ in range(4):
        sim.loop.advance(0.5)
        sim.hub.housekeep()
        for conn in conns:
            conn.read()
            if conn.client.flow.marker is not None:
                conn.pong()
    for conn in conns:
        conn.read()
        seqs = [f["seq"] for f in conn.frames if f["type"] in ("snapshot", "delta")]
        assert seqs == list(range(1, len(seqs) + 1))
        c = conn.client
        if c.closing:
            continue
        assert c.flow.state is FlowState.LIVE
        quotes = sim.hub.book.quotes
        want = c.session.sub.resolve(quotes)
        assert {s: conn.quotes.get(s) for s in want} == {s: quotes[s] for s in want}

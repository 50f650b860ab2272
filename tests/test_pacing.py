"""The bandwidth cap's pure core (``ticker.hub.pacing``): the byte budget over any 5 s, round-robin
turns, latest values. Synchronous, no event loop."""

from __future__ import annotations

import itertools

from hypothesis import given, settings, strategies as st

from ticker.hub.pacing import (
    FRAME_OVERHEAD,
    MIN_BPS,
    MIN_INTERVAL,
    Pacer,
    Selection,
    effective_bps,
)

SYMS = [f"S{i:02d}" for i in range(50)]


def everything(_: str) -> bool:
    return True


def test_effective_bps() -> None:
    assert effective_bps(0, 0) == 0
    assert effective_bps(2000, 0) == 2000
    assert effective_bps(10, 0) == MIN_BPS
    assert effective_bps(0, 5000) == 5000, "a ceiling means no connection goes uncapped"
    assert effective_bps(9000, 5000) == 5000
    assert effective_bps(2500.7, 5000) == 2500


def run(
    pacer: Pacer, steps: list[tuple[float, list[str]]], cost_of: dict[str, int]
) -> list[tuple[float, int, Selection]]:
    """Drive a pacer: at each (dt, changed) step the symbols change (flush n), then it chooses;
    each frame costs its fragments + the overhead. Returns (time, bytes, selection) per frame."""
    now = 0.0
    flush = 0
    frames = []
    for dt, changed in steps:
        now += dt
        flush += 1
        pacer.changed(changed)

        def cost(s: str, since: int | None) -> int:
            return cost_of[s]

        sel = pacer.select(now, everything, cost)
        if sel:
            n = sum(cost_of[s] + 1 for s in sel.fresh) + sum(cost_of[s] + 1 for s, _ in sel.waiting)
            n += FRAME_OVERHEAD * (bool(sel.fresh) + bool(sel.waiting))  # (real heads: less)
            pacer.sent(sel, flush, n, now)
            frames.append((now, n, sel))
    return frames


@settings(max_examples=60, deadline=None)
@given(
    st.integers(MIN_BPS, 20_000),
    st.lists(
        st.tuples(st.floats(0.001, 0.5), st.lists(st.sampled_from(SYMS), max_size=20)),
        min_size=1,
        max_size=400,
    ),
    st.lists(st.integers(10, 300), min_size=len(SYMS), max_size=len(SYMS)),
)
def test_no_five_seconds_carry_more_than_five_seconds_of_the_cap(
    bps: int, steps: list[tuple[float, list[str]]], costs: list[int]
) -> None:
    cost_of = dict(zip(SYMS, costs, strict=True))
    frames = run(Pacer(bps, 0.0, 0.1, base=0), steps, cost_of)
    for i, (t0, _, _) in enumerate(frames):
        inside = sum(n for t, n, _ in frames[i:] if t < t0 + 5.0)
        assert inside <= 5.0 * bps, (t0, inside)
    # At most one frame per interval.
    times = [t for t, _, _ in frames]
    assert all(b - a >= MIN_INTERVAL - 1e-9 for a, b in itertools.pairwise(times))


@settings(max_examples=30, deadline=None)
@given(st.integers(2000, 4000), st.integers(80, 200))
def test_every_symbol_gets_its_turn_when_all_keep_changing(bps: int, size: int) -> None:
    """50 symbols changing every 10 ms: each is refreshed in turn, none starves, and the turn
    comes round within what the budget allows (50 x size bytes at 0.9 x bps, plus frames)."""
    cost_of = dict.fromkeys(SYMS, size)
    steps = [(0.01, SYMS)] * 3000  # 30 s
    frames = run(Pacer(bps, 0.0, 0.1, base=0), steps, cost_of)
    last = dict.fromkeys(SYMS, 0.0)
    worst = 0.0
    for t, _, sel in frames:
        for s, _ in sel.waiting:
            worst = max(worst, t - last[s])
            last[s] = t
    cycle = 50 * (size + 1) / (0.9 * bps) * 1.3 + 2 * MIN_INTERVAL
    assert worst <= cycle, (worst, cycle)
    assert max(30.0 - t for t in last.values()) <= cycle


def test_a_waiting_symbol_keeps_its_place_and_its_first_flush() -> None:
    p = Pacer(2000, 0.0, 0.1, base=3)
    p.changed(["A", "B"])
    p.changed(["A", "C"])  # A already waits: same place, still as of flush 3
    assert list(p.dirty.items()) == [("A", 3), ("B", 3), ("C", 3)]
    sel = p.select(0.0, lambda s: s != "B", lambda s, f: 100)
    assert sel == Selection((), (("A", 3), ("C", 3)))  # B unsubscribed: dropped
    p.sent(sel, 9, 300, 0.0)
    p.changed(["C", "A"])
    assert list(p.dirty.items()) == [("C", 9), ("A", 9)]
    assert p.select(0.1, everything, lambda s, f: 100) == Selection((), ()), "interval"


def test_fresh_symbols_go_whole_first_then_deltas() -> None:
    p = Pacer(1000, 0.0, 0.0)  # no base: it holds nothing
    p.changed(["A"])
    p.refresh(["B"])
    assert list(p.fresh) == ["A", "B"]
    sel = p.select(0.0, everything, lambda s, f: 100 if f is None else 50)
    assert sel.fresh == ("A", "B") and not sel.waiting
    p.sent(sel, 4, 300, 0.0)
    p.changed(["A"])
    assert p.select(1.0, everything, lambda s, f: 50) == Selection((), (("A", 4),))


def test_news_debt_delays_quotes_but_never_news() -> None:
    p = Pacer(1000, 0.0, 0.0, base=0)
    p.spend(3000, 0.0)  # news: always written, the bucket owes it
    p.changed(["A"])
    assert not p.select(1.0, everything, lambda s, f: 100)
    assert p.select(4.0, everything, lambda s, f: 100)


def test_a_symbol_bigger_than_the_bucket_still_goes_alone_when_full() -> None:
    p = Pacer(1000, 0.0, 0.0, base=0)
    p.changed(["A", "B"])
    sel = p.select(0.0, everything, lambda s, f: 900 if s == "A" else 10)
    assert sel == Selection((), (("A", 0),))

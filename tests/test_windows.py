"""Phased windows: connections on a long throttle window are dealt over phases whose flushes are
spread over the interval (no one burst of every connection's frame), each connection still gets
at most one frame per window, ends with the book's state, and keeps its phase across requests.

A real Hub on a hand-driven clock (tests/hubsim.py); no event loop, no sockets.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from tests.hubsim import Conn, Sim
from ticker.config import HubConfig
from ticker.core.events import Tick
from ticker.hub.windows import MAX_PHASES, PHASE_MIN_CLIENTS, PHASE_MS, phases

SYMS = ("AAA", "BBB", "CCC")


def deltas_at(
    sim: Sim, conns: list[Conn], seconds: float, step: float = 0.005
) -> dict[int, list[float]]:
    """Tick every symbol each ``step`` for ``seconds``; per connection, the clock times at which
    it received a delta."""
    times: dict[int, list[float]] = {i: [] for i in range(len(conns))}
    n = 0
    for _ in range(round(seconds / step)):
        n += 1
        for s in SYMS:
            sim.hub.publish(Tick(s, 100.0 + n % 50, 1.7e12 + n, size=1.0))
        sim.loop.advance(step)
        for i, conn in enumerate(conns):
            if any(f["type"] == "delta" for f in conn.read()):
                times[i].append(sim.loop.now)
    return times


def test_phases_per_interval() -> None:
    assert [phases(ms) for ms in (0, 50, 100, 249, 250, 500, 1000, 5000)] == [
        1,
        1,
        1,
        1,
        2,
        4,
        8,
        8,
    ]
    assert phases(PHASE_MS * MAX_PHASES * 10) == MAX_PHASES


def phased(config: HubConfig) -> Sim:
    """A hub that deals connections over phases from the first (not from the 500th)."""
    sim = Sim(config, SYMS)
    sim.hub.windows.phase_min_clients = 0
    return sim


def test_a_one_second_window_is_spread_over_eight_phases() -> None:
    sim = phased(HubConfig(flow_hold_ms=0, throttle_ms=1000))
    for s in SYMS:
        sim.hub.publish(Tick(s, 100.0, 1.7e12))
    conns = [sim.connect() for _ in range(16)]
    for conn in conns:
        conn.send({"op": "subscribe", "symbols": ["*"]})
    windows = list(sim.hub.windows)
    assert sorted(w.phase for w in windows) == list(range(8))
    assert all(w.clients == 2 for w in windows)
    assert sim.hub.health()["windows_ms"] == [1000]
    assert sim.hub.windows.stats()[1000][0] == 16
    assert len(sim.hub.windows.members(1000)) == 16

    times = deltas_at(sim, conns, 4.0)
    # Each connection: one frame per window, on its phase's grid (the first within a second).
    for ts in times.values():
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        assert len(ts) >= 3 and ts[0] <= 1001.0 + 1e-6, ts
        assert all(0.99 <= g <= 1.01 for g in gaps), ts
    # Across connections the flushes fall at 8 moments a second, 125 ms apart.
    moments = sorted({round(ts[-1] % 1.0, 2) for ts in times.values()})
    assert len(moments) == 8, moments
    spacing = [round(b - a, 2) for a, b in itertools.pairwise(moments)]
    assert all(abs(g - 0.125) <= 0.01 for g in spacing), moments
    # Whatever the phase, every connection ends with the book's state.
    sim.loop.advance(1.0)
    for conn in conns:
        conn.read()
        assert {s: q["price"] for s, q in conn.quotes.items()} == {
            s: q["price"] for s, q in sim.hub.book.quotes.items()
        }


def test_a_connection_keeps_its_phase_and_short_windows_have_one() -> None:
    sim = phased(HubConfig(flow_hold_ms=0, throttle_ms=100))
    a, b = sim.connect(), sim.connect()
    for conn in (a, b):
        conn.send({"op": "subscribe", "symbols": ["AAA"]})
    assert len(list(sim.hub.windows)) == 1  # 100 ms: one window, one burst
    for conn in (a, b):
        conn.send({"op": "throttle", "ms": 500})
    assert len({w.phase for w in sim.hub.windows}) == 2  # 500 ms: dealt over phases
    before = a.client.window
    assert before is not None
    a.send({"op": "subscribe", "symbols": ["BBB"]})  # a new subscription, the same seat
    assert a.client.window is before
    a.send({"op": "throttle", "ms": 100})
    b.send({"op": "throttle", "ms": 100})
    assert [(w.ms, w.phase) for w in sim.hub.windows] == [(100, 0)]


@settings(max_examples=40, deadline=None)
@given(ms=st.sampled_from([250, 500, 750, 1000, 2000]), n=st.integers(1, 40))
def test_connections_are_dealt_evenly(ms: int, n: int) -> None:
    sim = phased(HubConfig(flow_hold_ms=0, throttle_ms=ms))
    for _ in range(n):
        sim.connect().send({"op": "subscribe", "symbols": ["*"]})
    sizes = [w.clients for w in sim.hub.windows]
    assert sum(sizes) == n
    assert len(sizes) == min(n, phases(ms))
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("ms", [250, 1000])
def test_phase_grids_are_spread_evenly(ms: int) -> None:
    sim = phased(HubConfig(flow_hold_ms=0, throttle_ms=ms))
    for _ in range(phases(ms)):
        sim.connect().send({"op": "subscribe", "symbols": ["*"]})
    grid = sorted(w.conflator.phase or 0.0 for w in sim.hub.windows)
    step = ms / 1000.0 / phases(ms)
    assert grid == pytest.approx([k * step for k in range(phases(ms))])


def test_phases_start_once_an_interval_holds_many_connections() -> None:
    """Each phase keeps a copy of every quote: an interval with few connections (one short
    burst) keeps one; from PHASE_MIN_CLIENTS on, newcomers are dealt over the phases."""
    sim = Sim(HubConfig(flow_hold_ms=0, throttle_ms=1000), SYMS)
    for _ in range(PHASE_MIN_CLIENTS):
        sim.connect().send({"op": "subscribe", "symbols": ["*"]})
    assert [(w.ms, w.phase, w.clients) for w in sim.hub.windows] == [(1000, 0, PHASE_MIN_CLIENTS)]
    for _ in range(80):
        sim.connect().send({"op": "subscribe", "symbols": ["*"]})
    sizes = {w.phase: w.clients for w in sim.hub.windows}
    assert sorted(sizes) == list(range(8)) and sum(sizes.values()) == PHASE_MIN_CLIENTS + 80
    assert {sizes[k] for k in range(1, 8)} <= {10, 11}  # the newcomers, evenly

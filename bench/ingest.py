"""Ingest benchmark: how many ticks/s the core absorbs on one core (book, bars, conflation).

Feeds a Hub pre-built ticks through ``publish`` (what the bus does for every feed event) with
three active throttle windows (0, 100 and 1000 ms, as connected clients would create), flushing
as the event loop would, and reports ticks/s. No sockets: this is the per-tick cost alone.
Then times the bar builder alone on the same ticks (what building bars of every interval adds
to each tick; the target is at most 10 % of the whole) and reports the memory of one symbol's
bars at the default retention.

    python -m bench.ingest [--ticks 1000000] [--symbols 100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from ticker.config import HubConfig
from ticker.core.bars import BarBook
from ticker.core.events import Tick
from ticker.hub.broadcaster import Hub
from ticker_feeds.sim import SimMarket, parse_symbols

__all__ = ["run"]


class _NullTransport:
    """Accepts writes and drops them: flush cost without socket cost."""

    def write(self, data: bytes) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


async def _close(code: int, reason: str) -> None:
    return None


async def _measure(ticks: list[Tick]) -> dict[str, Any]:
    hub = Hub(HubConfig(flow_hold_ms=0))
    for ms in (0, 100, 1000):
        c = hub.connect(_NullTransport(), _close)
        hub.receive(c, b'{"op":"throttle","ms":%d}' % ms)
        hub.receive(c, b'{"op":"subscribe","symbols":["*"]}')
    publish = hub.publish
    gc.disable()
    try:
        t0 = time.perf_counter()
        for i, t in enumerate(ticks):
            publish(t)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let due flushes run, as the loop would
        await asyncio.sleep(0)
        elapsed = time.perf_counter() - t0
    finally:
        gc.enable()
    bar_seconds = _bars_alone(ticks)
    return {
        "ticks": len(ticks),
        "seconds": round(elapsed, 3),
        "ticks_per_s": round(len(ticks) / elapsed),
        "flushes": hub.stats["flushes"],
        "windows": [0, 100, 1000],
        "bar_seconds": round(bar_seconds, 3),
        "bar_share_pct": round(100.0 * bar_seconds / elapsed, 1),
        "bar_bytes_per_symbol": BarBook().capacity_bytes(),
    }


def _bars_alone(ticks: list[Tick]) -> float:
    """Seconds the hub's bar step takes for ``ticks`` on its own (the same calls as
    ``Hub._on_tick`` makes: look up the symbol's bars, apply the trade)."""
    book = BarBook()
    symbols = book.symbols
    gc.disable()
    try:
        t0 = time.perf_counter()
        for t in ticks:
            bars = symbols.get(t.symbol)
            if bars is None:
                bars = book.of(t.symbol)
            bars.trade(t.ts, t.price, t.size or 0.0)
        return time.perf_counter() - t0
    finally:
        gc.enable()


async def _measure_without_bars(ticks: list[Tick]) -> float:
    """Seconds ``_measure`` takes with the bar builder's trade step made a no-op: the hub's
    ingest as it was before bars (the control run)."""
    from ticker.core import bars

    real = bars.SymbolBars.trade
    bars.SymbolBars.trade = lambda self, ts, price, size: None  # type: ignore[method-assign]
    try:
        return float((await _measure(ticks))["seconds"])
    finally:
        bars.SymbolBars.trade = real  # type: ignore[method-assign]


def run(n: int = 1_000_000, symbols: int = 100) -> dict[str, Any]:
    """Build ``n`` simulated ticks, then time publishing them with and without the bar builder,
    the two runs interleaved (best of 3 each: a busy machine slows both alike)."""
    market = SimMarket(parse_symbols(str(symbols)), 100_000, seed=1)
    ticks: list[Tick] = []
    ts = time.time() * 1000
    while len(ticks) < n:
        ticks += market.step(0.01, ts)
        ts += 10
    ticks = ticks[:n]
    best: dict[str, Any] = {}
    control = float("inf")
    for _ in range(3):
        r = asyncio.run(_measure(ticks))
        if not best or r["ticks_per_s"] > best["ticks_per_s"]:
            best = r
        control = min(control, asyncio.run(_measure_without_bars(ticks)))
    best["ticks_per_s_without_bars"] = round(len(ticks) / control)
    best["bar_cost_pct"] = round(100.0 * (best["seconds"] - control) / best["seconds"], 1)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ticks", type=int, default=1_000_000)
    p.add_argument("--symbols", type=int, default=100)
    a = p.parse_args()
    print(run(a.ticks, a.symbols))


if __name__ == "__main__":
    main()

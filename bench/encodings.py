"""Bytes on the wire per encoding: a delta (and a symbol update within it) as JSON text frames,
MessagePack binary frames (``ticker.v1.msgpack``) and Server-Sent Events, on the fan-out
workloads' feed shape (``sim``, seeded), with and without a field selection.

I/O shell (an event loop, in process). One hub; for each (wire, fields) one connection on every
symbol whose writes are counted; the sim feed runs for ``--seconds``. The deltas are the same
flushes in every encoding, so the ratios compare like with like.

    python -m bench.encodings [--seconds 5] [--rate 1000] [--symbols 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from ticker.config import HubConfig
from ticker.core.protocol import Fields, Subscribe
from ticker.core.wire import WS_JSON, WS_MSGPACK, SseWire, Wire
from ticker.hub.broadcaster import Hub
from ticker_feeds.sim import SimFeed

__all__ = ["main", "measure"]


class Counter:
    """A transport that never backpressures and counts what the hub writes to it."""

    def __init__(self) -> None:
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


async def _noclose(code: int, reason: str) -> None:
    return None


async def measure(
    seconds: float, rate: float, symbols: int, window_ms: int
) -> list[dict[str, Any]]:
    """Run the sim feed into one hub with a connection per (wire, fields); bytes per delta."""
    hub = Hub(HubConfig(flow_hold_ms=0, throttle_ms=window_ms))
    cases: list[tuple[str, Wire, list[str] | None]] = [
        ("JSON (ticker.v1)", WS_JSON, None),
        ("MessagePack (ticker.v1.msgpack)", WS_MSGPACK, None),
        ("SSE (chunked)", SseWire(chunked=True), None),
        ("JSON, fields=price", WS_JSON, ["price"]),
        ("MessagePack, fields=price", WS_MSGPACK, ["price"]),
    ]
    conns = []
    for name, wire, fields in cases:
        tr = Counter()
        c = hub.connect(tr, _noclose, wire=wire)
        hub.request(c, Subscribe(("*",)))
        if fields is not None:
            hub.request(c, Fields(tuple(fields)))
        conns.append((name, tr, c))
    feed = SimFeed({"symbols": str(symbols), "rate": str(rate), "seed": "1"})
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    starts = {name: (len(tr.writes), c.flow.seq) for name, tr, c in conns}

    async def pump() -> None:
        async for ev in feed.events():
            hub.publish(ev)
            if loop.time() >= end:
                return

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds + 5):
            await pump()
    await feed.aclose()
    await hub.stop()
    out = []
    for name, tr, c in conns:
        first, seq0 = starts[name]
        # (From here every write is one delta: no markers, no news.)
        sizes = tr.writes[first:]
        out.append(
            {
                "encoding": name,
                "deltas": len(sizes),
                "bytes_per_delta": sum(sizes) / max(1, len(sizes)),
                "seq": c.flow.seq - seq0,
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.encodings")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--symbols", type=int, default=50)
    args = p.parse_args(argv)
    for window in (0, 100):
        rows = asyncio.run(measure(args.seconds, args.rate, args.symbols, window))
        base = rows[0]["bytes_per_delta"]
        print(f"\n{args.symbols} symbols, {args.rate:g} ticks/s, window {window} ms:")
        print("| encoding | deltas | bytes per delta | vs JSON |")
        print("|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['encoding']} | {r['deltas']:,} | {r['bytes_per_delta']:.1f} | "
                f"{r['bytes_per_delta'] / base:.0%} |"
            )


if __name__ == "__main__":
    main()

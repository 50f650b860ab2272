"""Bytes on the wire per quote: a delta (and a symbol update within it) as JSON text frames,
MessagePack binary frames (``ticker.v1.msgpack``) and Server-Sent Events, on the fan-out
workloads' feed shapes (``sim``, seeded, steady rate as in ``bench.fanout``), with and without a
field selection; and how often each field changes (is in a delta's quote).

I/O shell (an event loop, in process). One hub per shape; for each (wire, fields) one connection
on every symbol whose writes are counted and decoded; the sim feed runs for ``--seconds``. The
deltas are the same flushes in every encoding, so the ratios compare like with like. Bytes are
whole frames as written (WebSocket header, SSE framing and HTTP chunk included).

    python -m bench.encodings [--seconds 5] [--only W1,W3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from bench.ingest import _close, _NullTransport
from ticker.config import HubConfig
from ticker.core.protocol import FIELDS, Fields, Subscribe
from ticker.core.wire import WS_JSON, WS_MSGPACK, SseWire, Wire
from ticker.hub.broadcaster import Hub
from ticker_feeds.sim import SimFeed

__all__ = ["COMPACT", "SHAPES", "Shape", "main", "measure"]


@dataclass(frozen=True)
class Shape:
    """A fan-out workload's feed and window (bench.fanout.WORKLOADS)."""

    name: str
    symbols: int
    rate: float
    window_ms: int
    seconds: float  # at least (a slow feed needs longer for enough deltas)


SHAPES = [
    Shape("W1/W2", 50, 1000, 0, 5),  # W1 and W2: the same feed, throttle 0
    Shape("W2d", 50, 1000, 100, 5),
    Shape("W3", 50, 10, 0, 20),
]

COMPACT = [f for f in FIELDS if f not in ("symbol", "ts", "change", "change_pct")]
"""Every field but ``change``/``change_pct``, which a client derives from ``price`` and
``prev_close`` (``change = price - prev_close``, ``change_pct = 100 * change / prev_close``)."""


class Counter(_NullTransport):
    """A transport that never backpressures and keeps what the hub writes to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def _ws_payload(frame: bytes) -> bytes:
    n = frame[1] & 0x7F
    return frame[2 + (2 if n == 126 else 8 if n == 127 else 0) :]


def _decode(frame: bytes, wire: Wire) -> dict[str, Any]:
    """The message in one written frame."""
    if isinstance(wire, SseWire):
        data = frame.split(b"data: ", 1)[1].split(b"\n", 1)[0]
        return dict(orjson.loads(data))
    payload = _ws_payload(frame)
    if wire.encoding.binary:
        return dict(msgspec.msgpack.decode(payload))
    return dict(orjson.loads(payload))


async def measure(shape: Shape, seconds: float) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Run the sim feed into one hub with a connection per (wire, fields).

    Returns:
        a row per encoding (deltas, quotes, bytes per delta and per quote), and the share of
        the full JSON connection's delta quotes that carry each field.
    """
    hub = Hub(HubConfig(flow_hold_ms=0, throttle_ms=shape.window_ms))
    cases: list[tuple[str, Wire, list[str] | None]] = [
        ("JSON (ticker.v1)", WS_JSON, None),
        ("MessagePack (ticker.v1.msgpack)", WS_MSGPACK, None),
        ("SSE (chunked)", SseWire(chunked=True), None),
        ("JSON, fields = all but change/change_pct", WS_JSON, COMPACT),
        ("MessagePack, fields = all but change/change_pct", WS_MSGPACK, COMPACT),
        ("JSON, fields = price", WS_JSON, ["price"]),
        ("MessagePack, fields = price", WS_MSGPACK, ["price"]),
    ]
    conns = []
    for name, wire, fields in cases:
        tr = Counter()
        c = hub.connect(tr, _close, wire=wire)
        hub.request(c, Subscribe(("*",)))
        if fields is not None:
            hub.request(c, Fields(tuple(fields)))
        conns.append((name, wire, tr, c))
    opts = {"symbols": str(shape.symbols), "rate": f"{shape.rate:g}", "seed": "1", "burst": "1"}
    feed = SimFeed(opts)
    loop = asyncio.get_running_loop()
    warm = loop.time() + 1.0  # (the first deltas carry whole quotes)
    end = warm + max(seconds, shape.seconds)
    starts: dict[str, int] = {}

    async def pump() -> None:
        async for ev in feed.events():
            hub.publish(ev)
            now = loop.time()
            if not starts and now >= warm:
                starts.update({name: len(tr.writes) for name, _, tr, _ in conns})
            if now >= end:
                return

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(end - loop.time() + 5):
            await pump()
    await feed.aclose()
    await hub.stop()
    rows: list[dict[str, Any]] = []
    present: Tally[str] = Tally()
    total = 0
    for name, wire, tr, _ in conns:
        frames = tr.writes[starts[name] :]
        quotes = 0
        for f in frames:
            msg = _decode(f, wire)
            assert msg["type"] == "delta", msg["type"]  # (no markers, no news from here)
            quotes += len(msg["quotes"])
            if not rows:  # the full JSON connection: which fields each quote carries
                for q in msg["quotes"].values():
                    present.update(q.keys())
                    total += 1
        nbytes = sum(len(f) for f in frames)
        rows.append(
            {
                "encoding": name,
                "deltas": len(frames),
                "quotes": quotes,
                "bytes_per_delta": nbytes / max(1, len(frames)),
                "bytes_per_quote": nbytes / max(1, quotes),
            }
        )
    share = {k: present[k] / max(1, total) for k in sorted(present, key=lambda k: -present[k])}
    return rows, share


def run(seconds: float = 5.0, only: Sequence[str] = ()) -> dict[str, Any]:
    """Every shape (or those named in ``only``): {shape: {"rows": [...], "fields": {...}}}."""
    out: dict[str, Any] = {}
    for shape in SHAPES:
        if only and shape.name not in only:
            continue
        rows, share = asyncio.run(measure(shape, seconds))
        out[shape.name] = {"rows": rows, "fields": share}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.encodings")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--only", default="", help="comma-separated shapes (W1/W2, W2d, W3)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    res = run(args.seconds, only)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    for name, r in res.items():
        shape = next(s for s in SHAPES if s.name == name)
        rows = r["rows"]
        base = rows[0]["bytes_per_quote"]
        print(
            f"\n{name}: {shape.symbols} symbols, {shape.rate:g} ticks/s, "
            f"window {shape.window_ms} ms:"
        )
        print("| encoding | deltas | quotes/delta | B/delta | B/quote | vs JSON |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(
                f"| {row['encoding']} | {row['deltas']:,} | "
                f"{row['quotes'] / max(1, row['deltas']):.2f} | {row['bytes_per_delta']:,.1f} | "
                f"{row['bytes_per_quote']:,.1f} | {row['bytes_per_quote'] / base:.0%} |"
            )
        shares = ", ".join(f"{k} {v:.0%}" for k, v in r["fields"].items())
        print(f"\nshare of delta quotes carrying each field: {shares}")


if __name__ == "__main__":
    main()

"""Replay throughput at ``speed=max``: parse (pandas/pyarrow) + emit (``ReplayFeed.events()``).

Reported, never asserted. Writes a synthetic session (``--rows`` ticks over 50 symbols) as a
recording (Parquet, what ``ticker record`` writes) and as a tick CSV with ISO 8601 times, then
for each: the load time, the emit time (every event out of the feed's async iterator), and
events/s for parse + emit. Also, for information, the rate through a hub (``Hub.publish``: book,
history, conflation), which is the pipeline's cost, not the replay's.

    python -m bench.replay [--rows 1000000]      (also run by ``make bench``)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ticker.replay.files import load
from ticker.store.recorder import SCHEMA
from ticker_feeds.replay import ReplayFeed

__all__ = ["main", "run"]


def _session(rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    symbols = np.array([f"S{i:03d}" for i in range(50)], dtype=object)
    sym = symbols[rng.integers(0, len(symbols), rows)]
    ts = 1.7e12 + np.cumsum(rng.exponential(0.5, rows))  # ~2,000 ticks per market second
    price = np.round(100 * np.exp(np.cumsum(rng.normal(0, 1e-4, rows))), 2)
    size = rng.integers(1, 500, rows).astype(np.float64)
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": sym,
            "price": price,
            "size": size,
            "bid": price - 0.01,
            "ask": price + 0.01,
        }
    )


def _write_recording(df: pd.DataFrame, path: Path) -> None:
    """The ticks as a recording (every other column of the recorder's schema null)."""
    n = len(df)
    ticks = {"kind": pa.array(["tick"] * n), **{c: df[c] for c in ("ts", "symbol", "price")}}
    ticks.update({c: df[c] for c in ("size", "bid", "ask")})
    columns = {f.name: ticks.get(f.name, pa.nulls(n, f.type)) for f in SCHEMA}
    pq.write_table(pa.table(columns, schema=SCHEMA), path, compression="zstd")


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    out = df.copy()
    out["ts"] = pd.to_datetime(out["ts"], unit="ms", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out.to_csv(path, index=False)


async def _emit(feed: ReplayFeed, sink: Any = None) -> tuple[int, float]:
    t = time.perf_counter()
    n = 0
    if sink is None:
        async for _ in feed.events():
            n += 1
    else:
        async for ev in feed.events():
            sink(ev)
            n += 1
    return n, time.perf_counter() - t


def _loop_run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _measure(path: Path, rows: int) -> dict[str, Any]:
    t = time.perf_counter()
    tape, report = load(path)
    parse_s = time.perf_counter() - t
    assert report.events == rows, report.summary()
    feed = ReplayFeed({"speed": "max", "hold": "no"}, tape=tape)
    emitted, emit_s = _loop_run(_emit(feed))
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "events": emitted - 1,  # the listing is not a row
        "parse_s": round(parse_s, 3),
        "emit_s": round(emit_s, 3),
        "parse_per_s": round(rows / parse_s),
        "emit_per_s": round(rows / emit_s),
        "events_per_s": round(rows / (parse_s + emit_s)),
    }


def _through_hub(path: Path) -> dict[str, Any]:
    async def go() -> tuple[int, float]:
        from ticker.config import HubConfig
        from ticker.hub.broadcaster import Hub

        hub = Hub(HubConfig())
        tape, _ = load(path)
        return await _emit(ReplayFeed({"speed": "max", "hold": "no"}, tape=tape), hub.publish)

    n, s = _loop_run(go())
    return {"events": n, "seconds": round(s, 3), "events_per_s": round(n / s)}


def run(rows: int = 1_000_000) -> dict[str, Any]:
    """Every measurement, as a JSON-able dict (``make bench`` puts it in its report)."""
    df = _session(rows)
    with tempfile.TemporaryDirectory() as d:
        rec, csv = Path(d) / "session.parquet", Path(d) / "ticks.csv"
        _write_recording(df, rec)
        _write_csv(df, csv)
        results = {
            "rows": rows,
            "recording_parquet": _measure(rec, rows),
            "ticks_csv_iso": _measure(csv, rows),
            "through_hub_parquet": _through_hub(rec),
            "target_events_per_s": 500_000,
        }
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="ticks in the session")
    a = p.parse_args()
    print(json.dumps(run(a.rows), indent=2))


if __name__ == "__main__":
    main()

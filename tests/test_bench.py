"""The benchmark harness still runs (its figures are not asserted: ``make bench`` reports them).

Small versions of the benchmarks, so that a change to the recording schema, the protocol or the
load generator's handshake cannot leave ``make bench`` broken unseen: the replay benchmark's
files load and replay whole; the fan-out harness (a real ``ticker serve`` and the Node load
generator) reads every transport - JSON and MessagePack WebSockets and SSE - end to end.
"""

from __future__ import annotations

import shutil

import pytest

from bench import ingest, replay
from bench.__main__ import _ensure_node_deps
from bench.fanout import Workload, run_workload


def test_replay_benchmark_files_replay_whole() -> None:
    r = replay.run(rows=5_000)
    assert r["recording_parquet"]["events"] == 5_000
    assert r["ticks_csv_iso"]["events"] == 5_000
    assert r["through_hub_parquet"]["events"] >= 5_000


def test_ingest_benchmark_runs_with_and_without_bars() -> None:
    r = ingest.run(n=5_000, symbols=10)
    assert r["ticks"] == 5_000 and r["ticks_per_s"] > 0 and r["ticks_per_s_without_bars"] > 0


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("transport", ["ws", "msgpack", "sse"])
def test_the_load_generator_reads_every_transport(transport: str) -> None:
    _ensure_node_deps()
    w = Workload("T", 40, 5, 200, 0, "smoke", transport=transport, procs=1)  # 20 parse, 20 scan
    r = run_workload("ticker", w, duration=2.0, warmup=0.5)
    assert r["connected"] == r["still_open"] == 40
    assert r["errors"] == 0 and r["seq_gaps"] == 0, (r["errors"], r["error_kinds"])
    assert r["updates"] > 0 and r["latency_parse_ms"]["n"] > 0 and r["latency_ms"]["n"] > 0
    # Bytes per quote in the range each encoding gives (a frame mostly unread would be less).
    per_quote = r["bytes_per_quote"]
    assert {
        "ws": 80 < per_quote < 400,
        "msgpack": 60 < per_quote < 330,
        "sse": 90 < per_quote < 450,
    }[transport], per_quote

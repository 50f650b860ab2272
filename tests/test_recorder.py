"""Recording to Parquet: conversion, rotation, crash safety (a real kill -9), serve --record.

The recorder is driven in-process with a real event loop and real files; the crash test runs
``ticker record`` as a subprocess and kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS, ROOT, ServerProcess
from ticker.core.events import Event, Listing, News, Tick
from ticker.net.server import create_app
from ticker.replay.emit import events_between
from ticker.replay.files import load
from ticker.store.recorder import (
    SCHEMA,
    Recorder,
    RecorderError,
    events_to_table,
    read_journal,
    recover,
)
from ticker_feeds.testing import FakeFeed

T0 = 1_709_303_400_000.0

EVENTS: list[Event] = [
    Listing(("AAPL", "MSFT")),
    Tick("AAPL", 190.5, T0, size=100.0, bid=190.4, ask=190.6, volume=1000.0, prev_close=189.0),
    News("Apple rallies", T0 + 1.5, "wire", ("AAPL", "MSFT"), "https://x.test/1", "Up."),
    Tick("MSFT", 410.25, T0 + 2.25),
]


def parquet_files(d: Path) -> list[Path]:
    return sorted(d.glob("*.parquet"))


def journals(d: Path) -> list[Path]:
    return sorted(d.glob("*.arrows"))


def rows(d: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in parquet_files(d)])


def test_events_to_table_keeps_every_field() -> None:
    table = events_to_table(EVENTS)
    assert table.schema == SCHEMA
    got = table.to_pylist()
    assert [r["kind"] for r in got] == ["listing", "tick", "news", "tick"]
    assert got[0]["symbols"] == ["AAPL", "MSFT"]
    assert got[1] | {} == {
        **dict.fromkeys(SCHEMA.names),
        "kind": "tick",
        "ts": T0,
        "symbol": "AAPL",
        "price": 190.5,
        "size": 100.0,
        "bid": 190.4,
        "ask": 190.6,
        "volume": 1000.0,
        "prev_close": 189.0,
    }
    assert (got[2]["headline"], got[2]["ts"], got[2]["symbols"]) == (
        "Apple rallies",
        T0 + 1.5,
        ["AAPL", "MSFT"],
    )
    with pytest.raises(TypeError):
        events_to_table(["not an event"])  # type: ignore[list-item]


async def test_record_close_and_replay_exactly(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, flush_interval=0.05)
    await rec.start()
    for ev in EVENTS:
        rec.record(ev)
    await rec.aclose()
    files = parquet_files(tmp_path)
    assert len(files) == 1 and not journals(tmp_path)
    tape, report = load(tmp_path)
    assert report.layouts == ("recording",) and not report.bad
    assert tape.symbols() == ("AAPL", "MSFT")
    assert events_between(tape, 0, len(tape)) == EVENTS[1:]
    assert rec.health()["written"] == 4 and rec.health()["files"] == 1


async def test_rotation_by_size_and_time_keeps_every_file_readable(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "size", rotate_bytes=4096, flush_interval=0.01)
    await rec.start()
    ticks = [Tick("S", 1.0 + i, T0 + i) for i in range(2000)]
    for i, t in enumerate(ticks):
        rec.record(t)
        if i % 100 == 99:
            await asyncio.sleep(0.015)
    await rec.aclose()
    files = parquet_files(tmp_path / "size")
    assert len(files) > 3
    assert rows(tmp_path / "size").column("price").to_pylist() == [t.price for t in ticks]

    rec = Recorder(tmp_path / "time", rotate_seconds=0.2, flush_interval=0.02)
    await rec.start()
    rec.record(ticks[0])
    await asyncio.sleep(0.5)  # the segment closes on time alone, with no new events
    assert len(parquet_files(tmp_path / "time")) == 1 and not list(
        (tmp_path / "time").glob("*.arrows")
    )
    rec.record(ticks[1])
    await rec.aclose()
    assert len(parquet_files(tmp_path / "time")) == 2


async def test_one_recorder_per_directory(tmp_path: Path) -> None:
    first = Recorder(tmp_path)
    first.open()
    with pytest.raises(RecorderError, match="another recorder"):
        Recorder(tmp_path).open()
    first.close()
    (tmp_path / "file").write_text("")
    with pytest.raises(RecorderError, match="cannot record"):
        Recorder(tmp_path / "file" / "sub").open()


def test_journals_are_read_to_their_last_whole_batch_and_recovered(tmp_path: Path) -> None:
    journal = tmp_path / "seg.arrows"
    with journal.open("wb") as f, pa.ipc.new_stream(f, SCHEMA) as w:
        for i in range(3):
            w.write_table(events_to_table([Tick("S", 1.0 + i, T0 + i)]))
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-40])  # killed mid-write: the last batch is torn
    assert read_journal(journal).column("price").to_pylist() == [1.0, 2.0]
    (tmp_path / "empty.arrows").write_bytes(b"")  # killed before anything reached the disk
    (tmp_path / "old.parquet.tmp").write_bytes(b"half")
    written = recover(tmp_path)
    assert [p.name for p in written] == ["seg.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.parquet"]
    assert pq.read_table(tmp_path / "seg.parquet").column("price").to_pylist() == [1.0, 2.0]


def test_kill_9_loses_at_most_the_last_batch(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticker",
            "record",
            "--feed",
            "sim:rate=2000,seed=4",
            "--out",
            str(out),
            "--rotate-mb",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("recording to")
        deadline = time.monotonic() + 10
        while len(parquet_files(out)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # rotations happened: some files are closed, one is open
        time.sleep(0.3)
        killed_at = time.time() * 1000.0
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    closed = parquet_files(out)
    assert len(closed) >= 3
    for f in closed:
        pq.read_table(f)  # every closed file is complete
    left = journals(out)
    assert len(left) <= 1
    recovered = [read_journal(j) for j in left]
    ts = np.sort(
        pa.concat_tables([*(pq.read_table(f) for f in closed), *recovered])
        .column("ts")
        .drop_null()
        .to_numpy()
    )
    # At 2,000 ticks/s nothing in the middle is missing (no gap of a batch), and the end is within
    # one batch (0.5 s handover, plus the write) of the kill.
    assert float(np.diff(ts).max()) < 1000.0
    assert killed_at - float(ts[-1]) <= 1000.0 * max(1.0, MS * 1000)

    # The next recorder on the directory turns the journal into Parquet.
    before = sum(t.num_rows for t in recovered) + sum(pq.read_table(f).num_rows for f in closed)
    again = Recorder(out)
    again.open()
    again.close()
    assert not journals(out)
    assert sum(pq.read_table(f).num_rows for f in parquet_files(out)) == before


async def test_serve_records_what_it_ingests(tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    feed = FakeFeed(EVENTS, name="fake")
    rec = Recorder(tmp_path, flush_interval=0.02)
    client: TestClient[Any, Any] = await aiohttp_client(create_app([feed], recorder=rec))
    for _ in range(200):
        health = await (await client.get("/healthz")).json()
        if health["recorder"]["written"] == len(EVENTS):
            break
        await asyncio.sleep(0.01)
    assert health["recorder"]["written"] == len(EVENTS)
    assert health["recorder"]["dir"] == str(tmp_path)
    await client.close()  # stopping the app closes the segment
    tape, _ = load(tmp_path)
    assert events_between(tape, 0, len(tape)) == EVENTS[1:]


def test_serve_record_flag(tmp_path: Path, ticker_server: type[ServerProcess]) -> None:
    out = tmp_path / "rec"
    srv = ticker_server(
        "--feed",
        "sim:rate=500,seed=2",
        "--feed",
        "simnews:rate=6000",
        "--record",
        str(out),
        "--rotate-s",
        "0.3",
    )
    deadline = time.monotonic() + 5
    while len(parquet_files(out)) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    with urllib.request.urlopen(srv.url + "/healthz", timeout=5) as resp:
        assert b'"recorder"' in resp.read()
    assert srv.stop() == 0
    assert not journals(out), "a clean stop leaves only Parquet"
    kinds = set(rows(out).column("kind").to_pylist())
    assert kinds == {"listing", "tick", "news"}

"""Durable history (ticker.store.load): a directory of recordings -> the bars and quotes a server
that had run all along would hold; ``serve --history`` settings.

Real files (Parquet segments, a journal) written by the recorder's own functions; the reference
is the live builder fed the same events one by one, and pandas ``resample().ohlc()``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ServerProcess
from tests.wsutil import recv, recv_type
from ticker.config import RecordConfig, serve_settings
from ticker.core.bars import INTERVALS, BarBook
from ticker.core.book import Book
from ticker.core.events import Bar, Event, News, Reset, Tick
from ticker.store.load import load_history, read_recordings
from ticker.store.recorder import SCHEMA, events_to_table

T0 = 1_709_303_400_000.0  # 2024-03-01 14:30 UTC
DAY = 86_400_000.0


def ticks(n: int, symbols: Sequence[str], seed: int = 1, start: float = T0) -> list[Tick]:
    """A random walk per symbol, ~5 ticks a second in all, a few out of order."""
    rng = random.Random(seed)
    price = dict.fromkeys(symbols, 100.0)
    t = start
    out = []
    for _ in range(n):
        t += rng.expovariate(1 / 200.0)
        s = rng.choice(symbols)
        price[s] = max(1.0, price[s] + rng.gauss(0, 0.05))
        late = rng.random() < 0.01  # a late trade: the live builder drops it
        out.append(Tick(s, price[s], t - 3_000.0 if late else t, size=float(rng.randint(1, 9))))
    return out


def write(directory: Path, events: Sequence[Event], files: int = 3, journal: bool = True) -> None:
    """``events`` as the recorder leaves them: Parquet segments, the last one a journal."""
    directory.mkdir(exist_ok=True)
    step = max(1, len(events) // files + 1)
    chunks = [events[i : i + step] for i in range(0, len(events), step)]
    for k, chunk in enumerate(chunks):
        table = events_to_table(chunk)
        name = directory / f"ticker-20240301T000000Z-1-{k:04d}"
        if journal and k == len(chunks) - 1:
            with name.with_suffix(".arrows").open("wb") as f, pa.ipc.new_stream(f, SCHEMA) as w:
                w.write_table(table)
        else:
            pq.write_table(table, name.with_suffix(".parquet"))


def live(events: Sequence[Event]) -> tuple[BarBook, Book]:
    """What a hub that saw ``events`` holds (the builder and the book, event by event)."""
    bars, book = BarBook(), Book()
    for ev in events:
        if type(ev) is Tick:
            bars.trade(ev.symbol, ev.ts, ev.price, ev.size or 0.0)
            book.apply(ev)
        elif type(ev) is Bar:
            bars.of(ev.symbol).bar(
                (ev.ts, ev.open, ev.high, ev.low, ev.close, ev.volume), INTERVALS[ev.interval]
            )
            book.apply_bar(ev)
        elif type(ev) is Reset:
            bars.rewind(ev.symbols, ev.ts)
    return bars, book


def loaded(directory: Path) -> tuple[BarBook, Book]:
    bars, book = BarBook(), Book()
    load_history(directory, bars, book)
    return bars, book


def assert_same_bars(a: BarBook, b: BarBook, symbols: Sequence[str]) -> None:
    for s in symbols:
        finest = a.of(s).finest or 0
        assert b.of(s).finest == finest
        for name, width in list(INTERVALS.items())[finest:]:
            assert a.of(s).bars(width, 10_000) == b.of(s).bars(width, 10_000), (s, name)


def test_restart_holds_the_bars_of_every_interval(tmp_path: Path) -> None:
    syms = ("AAPL", "MSFT", "NVDA")
    events: list[Event] = [*ticks(30_000, syms), News("x", T0, "wire", ("AAPL",))]
    write(tmp_path, events)
    ref, ref_book = live(events)
    bars, book = loaded(tmp_path)
    assert_same_bars(ref, bars, syms)
    for s in syms:  # the watchlist shows the same quote at once
        want, got = ref_book.quotes[s], book.quotes[s]
        for k in ("price", "ts", "open", "high", "low", "volume", "size"):
            assert got[k] == pytest.approx(want[k]), (s, k)
    # The last second is still forming: a trade of that second continues it.
    last = events[-2]
    assert type(last) is Tick
    for bb in (ref, bars):
        bb.trade(last.symbol, last.ts, last.price * 1.5, 1.0)
    assert_same_bars(ref, bars, syms)


def test_second_bars_are_pandas_ohlc(tmp_path: Path) -> None:
    events = [t for t in ticks(5_000, ("AAPL",), seed=7) if t.ts >= T0]
    events.sort(key=lambda t: t.ts)  # in order: no late trades, so pandas sees the same ticks
    write(tmp_path, events)
    bars, _ = loaded(tmp_path)
    frame = pd.DataFrame(
        {"price": [t.price for t in events], "size": [t.size for t in events]},
        index=pd.to_datetime([t.ts for t in events], unit="ms"),
    )
    r = frame.resample("1s")
    want = r["price"].ohlc().assign(volume=r["size"].sum()).dropna()
    got = bars.of("AAPL").bars(1_000, 10_000)
    assert len(got) == len(want)
    starts = (want.index.to_numpy().astype("int64") // 1_000_000).tolist()
    for row, t, w in zip(got, starts, want.itertuples(), strict=True):
        assert row[0] == t
        assert row[1:] == pytest.approx((w.open, w.high, w.low, w.close, w.volume))


def test_resets_are_applied_in_order(tmp_path: Path) -> None:
    """A replay that seeked back: the bars after the seek point are forgotten, then rebuilt."""
    first = ticks(4_000, ("AAPL", "MSFT"), seed=2)
    seek = T0 + 2 * 60_000.0  # two minutes in
    again = ticks(2_000, ("AAPL", "MSFT"), seed=3, start=seek)
    events: list[Event] = [*first, Reset(("AAPL",), seek), *again, Reset(("MSFT",), seek)]
    write(tmp_path, events)
    ref, _ = live(events)
    bars, _ = loaded(tmp_path)
    assert_same_bars(ref, bars, ("AAPL", "MSFT"))
    assert bars.of("MSFT").bars(60_000, 100)[-1][0] < seek  # the last reset, after its data


def test_recorded_bars_rebuild_coarser_intervals(tmp_path: Path) -> None:
    rng = random.Random(5)
    events: list[Event] = []
    p = 50.0
    for k in range(3_000):  # two days of 1-minute bars
        o, c = p, max(1.0, p + rng.gauss(0, 0.2))
        hi, lo = max(o, c) + rng.random(), min(o, c) - rng.random() / 10
        events.append(Bar("SPY", T0 - T0 % 60_000 + k * 60_000, "1m", o, hi, lo, c, 100.0))
        p = c
    events.insert(1_000, Tick("QQQ", 10.0, T0 + 5.0, size=1.0))
    write(tmp_path, events, journal=False)
    ref, ref_book = live(events)
    bars, book = loaded(tmp_path)
    assert_same_bars(ref, bars, ("SPY", "QQQ"))
    assert book.quotes["SPY"]["price"] == ref_book.quotes["SPY"]["price"]
    assert book.quotes["SPY"]["high"] == ref_book.quotes["SPY"]["high"]


def test_events_older_than_the_retention_are_skipped(tmp_path: Path) -> None:
    old = Tick("AAPL", 10.0, T0 - 10 * DAY, size=1.0)
    events = [old, *ticks(100, ("AAPL",), seed=4)]
    write(tmp_path, events)
    bars, book = BarBook({"1d": 3}), Book()
    report = load_history(tmp_path, bars, book)
    assert report.old == 1
    assert bars.of("AAPL").bars(INTERVALS["1d"], 10)[0][0] == T0 - T0 % DAY


def test_unreadable_files_are_skipped_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = ticks(500, ("AAPL",))
    write(tmp_path, events, files=1, journal=False)
    (tmp_path / "ticker-20240302T000000Z-1-0001.parquet").write_bytes(b"PAR1 not parquet")
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "ticker-20240302T000000Z-1-0002.parquet")
    truncated = tmp_path / "ticker-20240302T000000Z-1-0003.parquet"
    good = next(tmp_path.glob("*-0000.parquet")).read_bytes()
    truncated.write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.txt").write_text("not a recording")
    with caplog.at_level(logging.WARNING, logger="ticker.history"):
        report = load_history(tmp_path, bars := BarBook(), Book())
    assert report.skipped == 3
    assert len(caplog.records) == 3
    assert all("skipped ticker-20240302" in r.getMessage() for r in caplog.records)
    ref, _ = live(events)
    assert_same_bars(ref, bars, ("AAPL",))


def test_missing_or_empty_directory_is_an_empty_history(tmp_path: Path) -> None:
    assert load_history(tmp_path / "nope", BarBook(), Book()).symbols == 0
    assert load_history(tmp_path, BarBook(), Book()).files == 0
    table, n, skipped = read_recordings(tmp_path)
    assert (table.num_rows, n, skipped) == (0, 0, 0)


def test_history_implies_recording_there(tmp_path: Path) -> None:
    s = serve_settings({}, {"history": Path("h")}, {})
    assert s.history == Path("h")
    assert s.record == RecordConfig(Path("h"))
    s = serve_settings({}, {"history": Path("h"), "record": Path("r")}, {})
    assert (s.history, s.record) == (Path("h"), RecordConfig(Path("r")))
    s = serve_settings({"history": "data/h"}, {}, {}, base=tmp_path)  # relative to the file
    assert s.history == tmp_path / "data/h"
    assert serve_settings({}, {}, {}).history is None


# A real restart: ``ticker serve --history DIR`` twice


async def served_bars(http: aiohttp.ClientSession, node: ServerProcess) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in ("AAA", "BBB", "CCC"):
        for iv in ("1s", "5s", "1m", "15m", "1h", "1d"):
            params = {"symbol": s, "interval": iv, "limit": "5000"}
            async with http.get(node.url + "/api/bars", params=params) as resp:
                assert resp.status == 200, await resp.text()
                out[f"{s} {iv}"] = (await resp.json())["bars"]
    async with http.get(node.url + "/api/quotes") as resp:
        out["quotes"] = {
            s: {k: q.get(k) for k in ("price", "open", "high", "low", "volume")}
            for s, q in (await resp.json())["quotes"].items()
        }
    async with http.ws_connect(node.ws_url) as ws:  # the WS op answers from the same bars
        assert (await recv(ws))["type"] == "hello"
        await ws.send_json({"op": "bars", "symbol": "BBB", "interval": "1m", "live": False})
        out["ws BBB 1m"] = (await recv_type(ws, "bars"))["bars"]
    return out


async def test_a_restart_with_history_serves_the_same_bars(tmp_path: Path) -> None:
    t0 = int(T0)
    rng = random.Random(9)
    rows = [
        f"{t0 + i * 173 + rng.randint(0, 100)},{'ABC'[i % 3] * 3},{50 + rng.random():.4f},"
        f"{rng.randint(1, 50)}"
        for i in range(20_000)  # about an hour of market time
    ]
    csv = tmp_path / "ticks.csv"
    csv.write_text("ts,symbol,price,size\n" + "\n".join(rows) + "\n")
    history = tmp_path / "history"
    first = ServerProcess("--feed", f"replay:path={csv},speed=max", "--history", str(history))
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while True:  # until the replay has played everything
                async with http.get(first.url + "/healthz") as resp:
                    feeds = (await resp.json())["feeds"]
                if feeds and feeds[0]["state"] == "finished":
                    break
                assert time.monotonic() < deadline, feeds
                await asyncio.sleep(0.1)
            before = await served_bars(http, first)
            assert len(before["AAA 1m"]) > 50
            assert first.stop() == 0  # the recorder finishes its segment
            files = sorted(p.name for p in history.iterdir())
            assert any(f.endswith(".parquet") for f in files), files
            # The second start: no ticks of its own (news only), its bars all from the DIR.
            second = ServerProcess("--feed", "simnews:rate=1", "--history", str(history))
            try:
                after = await served_bars(http, second)
            finally:
                second.close()
            assert after == before
    finally:
        first.close()

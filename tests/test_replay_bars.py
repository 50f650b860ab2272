"""Replaying bars and seeking: OHLCV files replay as ``Bar`` events, seeks rebuild state exactly.

Pure parts first (sync, hypothesis where it fits): the interval of a bar file from its spacing,
daily bars at UTC midnight of their local date, intraday bars floored and merged, per-trade
volume as ``size``, the seek plan. Then the feed (events fed into a ``Book`` and a ``BarBook`` as
the hub does: a seek back never shows values from after its target), pause in every state, one
``ticker replay`` flag per option. Then a real server: every real OHLCV file in shared data
served by ``GET /api/bars`` bar for bar, coarser intervals equal to pandas, and a live ``bars``
stream over the WebSocket starting over after a seek.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings, strategies as st
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from tests.wsutil import recv, recv_until
from ticker.bus.supervisor import FeedSource
from ticker.cli import build_parser, main
from ticker.config import replay_settings
from ticker.core.bars import INTERVALS, BarBook, IntervalError
from ticker.core.book import Book
from ticker.core.events import Bar, Event, Listing, Reset, Tick
from ticker.net.server import RUNNERS, create_app
from ticker.replay.clock import ReplayClock
from ticker.replay.columns import detect_layout
from ticker.replay.emit import events_between
from ticker.replay.errors import ReplayError
from ticker.replay.files import load
from ticker.replay.normalise import RowCounts, bar_interval, normalise, table_layout
from ticker.replay.options import OPTIONS
from ticker.replay.tape import DAY_MS, Tape, seek_plan
from ticker_feeds.replay import ReplayFeed

no_deadline = settings(deadline=None, max_examples=60)
DAY = int(DAY_MS)
MIN = 60_000


def ms(text: str) -> float:
    return float(pd.Timestamp(text).value / 1e6)


def bars_frame(times: list[Any] | pd.DatetimeIndex, seed: int = 1) -> pd.DataFrame:
    """An OHLCV table (finance-site columns) with consistent random bars at ``times``."""
    rng = np.random.default_rng(seed)
    n = len(times)
    close = (100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))).round(2)
    open_ = (close + rng.normal(0, 0.5, n)).round(2)
    high = (np.maximum(open_, close) + rng.uniform(0, 1, n)).round(2)
    low = (np.minimum(open_, close) - rng.uniform(0, 1, n)).round(2)
    return pd.DataFrame(
        {
            "Date": [str(t) for t in times],
            "Open": open_,
            "High": high,
            "Low": low,
            "Close": close,
            "Volume": rng.integers(1, 10_000, n),
        }
    )


def tape_of(df: pd.DataFrame, symbol: str = "X", interval: str | None = None) -> Tape:
    counts = RowCounts()
    return normalise(df, table_layout(df), symbol=symbol, counts=counts, interval=interval)


def rows_of(tape: Tape) -> list[list[float]]:
    """A bar tape as ``[t, o, h, l, c, v]`` rows."""
    assert tape.open is not None and tape.high is not None and tape.low is not None
    rows: list[list[float]] = np.column_stack(
        [tape.ts, tape.open, tape.high, tape.low, tape.price, tape.size]
    ).tolist()
    return rows


# The interval of a bar file


gap_counts = st.lists(st.integers(1, 4), min_size=1, max_size=30)


@no_deadline
@given(st.sampled_from(list(INTERVALS)), gap_counts, st.integers(0, 10_000))
def test_the_interval_is_the_smallest_frequent_gap(
    name: str, multiples: list[int], start: int
) -> None:
    width = INTERVALS[name]
    # One interval apart often enough, with gaps (nights, weekends, thin trading) of a few.
    steps = [1, *multiples, *([1] * max(2, len(multiples) // 5))]
    times = np.cumsum([start * width, *[m * width for m in steps]]).astype(np.float64)
    assert bar_interval(times[::-1]) == width, "any order"


@pytest.mark.parametrize(
    ("step", "apart"),
    [(30 * MIN, "30m"), (2 * 3_600_000, "2h"), (7 * DAY, "7d"), (90_000, "1m30s")],
)
def test_a_spacing_that_is_no_interval_says_to_give_one(step: int, apart: str) -> None:
    times = np.arange(20, dtype=np.float64) * step + 1_700_000_000_000 // step * step
    with pytest.raises(ReplayError) as err:
        bar_interval(times, symbol="SPY")
    text = str(err.value)
    assert f"bars of SPY are {apart} apart" in text and "interval=" in text and "\n" not in text


def test_a_stray_row_off_the_grid_does_not_change_the_interval() -> None:
    times = np.arange(30, dtype=np.float64) * MIN
    assert bar_interval(np.append(times, 15_000.0)) == MIN


def test_a_single_bar_takes_the_widest_interval_it_is_aligned_to() -> None:
    assert bar_interval(np.array([ms("2024-01-02")])) == DAY
    assert bar_interval(np.array([ms("2024-01-02T09:30Z")])) == INTERVALS["15m"]


def test_each_symbol_of_a_long_bar_table_has_its_own_interval() -> None:
    minutes = pd.date_range("2024-01-02 14:30", periods=5, freq="1min", tz="UTC")
    days = pd.date_range("2024-01-02", periods=3, freq="D", tz="UTC")
    df = pd.concat(
        [bars_frame(minutes).assign(Symbol="M"), bars_frame(days).assign(Symbol="D")]
    ).reset_index(drop=True)
    tape = normalise(df, table_layout(df))
    assert tape.interval is not None
    widths = dict(zip(tape.symbol.tolist(), tape.interval.tolist(), strict=True))
    assert widths == {"M": MIN, "D": DAY}


# Daily bars: UTC midnight of their local date; intraday bars: aligned instants

offsets = st.tuples(st.integers(-11, 14), st.sampled_from([0, 30, 45]))


@no_deadline
@given(
    st.dates(
        min_value=pd.Timestamp("1990-01-01").date(), max_value=pd.Timestamp("2035-01-01").date()
    ),
    offsets,
)
def test_daily_bars_are_at_utc_midnight_of_their_local_date(
    day: Any, offset: tuple[int, int]
) -> None:
    hours, minutes = offset
    sign = "-" if hours < 0 else "+"
    tz = f"{sign}{abs(hours):02d}:{minutes:02d}"
    days = pd.bdate_range(day, periods=8)
    df = bars_frame([f"{d:%Y-%m-%d} 00:00:00{tz}" for d in days])
    tape = tape_of(df)
    assert tape.ts.tolist() == [ms(f"{d:%Y-%m-%d}T00:00Z") for d in days]
    assert tape.bar_counts() == {DAY: len(days)}


def test_daily_bars_in_a_zone_with_dst_and_as_tz_aware_datetimes() -> None:
    # Local midnights of New York across the March change: 23 h and 25 h apart in UTC.
    days = pd.bdate_range("2024-03-01", "2024-03-29")
    local = pd.DatetimeIndex(days).tz_localize("America/New_York")
    df = bars_frame(list(range(len(days))))
    df["Date"] = local  # a tz-aware column (as Parquet keeps it)
    tape = tape_of(df)
    assert tape.ts.tolist() == [ms(f"{d:%Y-%m-%d}T00:00Z") for d in days]
    assert tape.bar_counts() == {DAY: len(days)}


def test_intraday_bars_keep_their_instant_floored_and_merged() -> None:
    # 15m bars at :07:30 past (a vendor's clock), and two bars that floor to the same start.
    starts = pd.date_range("2024-01-02T14:07:30-05:00", periods=6, freq="15min")
    df = bars_frame(starts)
    counts = RowCounts()
    tape = normalise(df, table_layout(df), symbol="X", counts=counts)
    utc = [ms(str(t)) for t in starts]
    assert tape.ts.tolist() == [t - t % (15 * MIN) for t in utc]
    assert counts.adjusted == {"floored to the interval": 6}

    twice = pd.concat(
        [df.iloc[:2], df.iloc[[1]].assign(Date=str(starts[1] + pd.Timedelta("5min")))]
    )
    counts = RowCounts()
    tape = normalise(
        twice.reset_index(drop=True), table_layout(twice), symbol="X", counts=counts, interval="15m"
    )
    assert counts.adjusted["merged"] == 1 and len(tape) == 2
    a, b = twice.iloc[1], twice.iloc[2]
    assert rows_of(tape)[1][1:] == [
        a.Open,
        max(a.High, b.High),
        min(a.Low, b.Low),
        b.Close,
        float(a.Volume + b.Volume),
    ]


def test_an_interval_option_overrides_and_a_coarser_one_merges(tmp_path: Path) -> None:
    starts = pd.date_range("2024-01-02T14:00Z", periods=16, freq="15min")
    df = bars_frame(starts)
    df.to_csv(tmp_path / "x.csv", index=False)
    tape, report = load(tmp_path / "x.csv", interval="1h")
    assert report.bars == {"1h": 4} and report.adjusted == {
        "floored to the interval": 12,
        "merged": 12,
    }
    frame = df.assign(t=starts).set_index("t")
    hourly = frame.resample("1h").agg(
        {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}
    )
    assert rows_of(tape) == [
        [ms(str(t)), *map(float, r)] for t, r in zip(hourly.index, hourly.to_numpy(), strict=True)
    ]
    with pytest.raises(ValueError, match="option interval: unknown interval '2h'"):
        ReplayFeed({"path": str(tmp_path / "x.csv"), "interval": "2h"})


def test_inconsistent_bars_are_skipped_and_counted() -> None:
    df = bars_frame(pd.date_range("2024-01-02", periods=10, freq="D"))
    df["High"] = df["High"].where(df.index != 1, df["Close"] - 1)  # high below the close
    df["Open"] = df["Open"].where(df.index != 2, 0.0)
    counts = RowCounts()
    tape = normalise(df, table_layout(df), symbol="X", counts=counts)
    assert len(tape) == 8 and counts.bad == {"bad bar": 2}


def test_a_bar_tape_emits_bars_and_mixed_tapes_keep_their_order(tmp_path: Path) -> None:
    bars_frame(pd.date_range("2024-01-02T14:30Z", periods=3, freq="1min")).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame(
        {"ts": ["2024-01-02T14:30:30Z"], "symbol": ["T"], "price": [5.0], "qty": [3.0]}
    ).to_csv(tmp_path / "b.csv", index=False)
    tape, report = load(tmp_path)
    evs = events_between(tape, 0, len(tape))
    assert [type(e).__name__ for e in evs] == ["Bar", "Tick", "Bar", "Bar"]
    assert evs[1] == Tick("T", 5.0, ms("2024-01-02T14:30:30Z"), size=3.0)
    first = evs[0]
    assert isinstance(first, Bar) and (first.symbol, first.interval) == ("A", "1m")
    assert all(type(v) is float for v in (first.ts, first.open, first.close, first.volume))
    assert report.summary().startswith(
        "replay: 2 files (bars, ticks), 4 rows -> 4 events (3 bars of 1m)"
    )


# Ticks: a per-trade quantity is size; the running volume comes from the book


@pytest.mark.parametrize(
    ("columns", "overrides", "size", "volume"),
    [
        (["time", "symbol", "price", "Volume"], None, "Volume", None),
        (["time", "symbol", "price", "qty"], None, "qty", None),
        (["time", "symbol", "price", "Volume"], {"size": "Volume"}, "Volume", None),
        (["time", "symbol", "price", "size", "cum_volume"], None, "size", "cum_volume"),
        (["time", "symbol", "price", "Volume"], {"volume": "Volume"}, None, "Volume"),
    ],
)
def test_a_trade_quantity_is_size_and_only_a_running_total_is_volume(
    columns: list[str], overrides: dict[str, str] | None, size: str | None, volume: str | None
) -> None:
    layout = detect_layout(columns, overrides=overrides)
    assert (layout.kind, layout.columns.get("size"), layout.columns.get("volume")) == (
        "ticks",
        size,
        volume,
    )


def test_the_book_sums_trade_sizes_within_the_market_day(tmp_path: Path) -> None:
    times = [*pd.date_range("2024-01-02T20:00Z", periods=3, freq="2h")]
    pd.DataFrame(
        {"time": [t.isoformat() for t in times], "symbol": "S", "price": 1.0, "Volume": [5, 7, 11]}
    ).to_csv(tmp_path / "trades.csv", index=False)
    tape, _ = load(tmp_path / "trades.csv", columns={"size": "Volume"})
    book = Book()
    for ev in events_between(tape, 0, len(tape)):
        assert isinstance(ev, Tick) and ev.volume is None
        book.apply(ev)
    assert book.quotes["S"]["volume"] == 11.0, "20:00 and 22:00 were the day before"


# The seek plan


def ticks_tape(days: int = 3, per_day: int = 40, symbols: str = "AB") -> Tape:
    t0 = ms("2024-03-04")
    ts = np.sort(
        np.concatenate(
            [t0 + d * DAY + np.linspace(3_600_000, 20 * 3_600_000, per_day) for d in range(days)]
        )
    )
    n = len(ts)
    nan = np.full(n, np.nan)
    syms = np.array([symbols[i % len(symbols)] for i in range(n)], dtype=object)
    price = 100.0 + np.sin(np.arange(n)) * 5 + np.arange(n) * 0.1
    return Tape(ts, ts, syms, price, np.full(n, 2.0), nan, nan, nan, nan)


@no_deadline
@given(st.floats(ms("2024-03-03"), ms("2024-03-08")))
def test_a_tick_seek_resets_to_midnight_then_catches_up_to_the_target(to: float) -> None:
    tape = ticks_tape()
    plan = seek_plan(tape, to)
    t = min(max(to, tape.clock[0]), tape.clock[-1])
    assert plan.reset == t - t % DAY_MS
    assert plan.position == int(np.sum(tape.clock < to)), "rows at the target still play"
    assert bool(np.all(tape.clock[plan.catch_up : plan.position] >= plan.reset))
    assert plan.catch_up == int(np.sum(tape.clock < plan.reset))
    before = tape.symbol[: plan.catch_up]
    assert plan.state.tolist() == sorted(
        max(i for i in range(plan.catch_up) if before[i] == s) for s in set(before.tolist())
    )


def test_a_seek_to_a_time_many_rows_share_replays_all_of_them() -> None:
    n = 18
    ts = np.full(n, ms("2024-03-04T14:30Z"))
    ts = np.concatenate([ts, ts[:1] + 1000.0])
    nan = np.full(n + 1, np.nan)
    syms = np.array(["A"] * (n + 1), dtype=object)
    tape = Tape(ts, ts, syms, np.arange(1.0, n + 2), nan, nan, nan, nan, nan)
    plan = seek_plan(tape, float(ts[0]))
    assert (plan.catch_up, plan.position) == (0, 0) and not len(plan.state)
    clock = ReplayClock(tape.clock, math.inf, now=0.0)
    clock.advance(n + 1)
    assert clock.seek(float(ts[0]), now=1.0) == 0 and clock.due(1.0) == n + 1


def test_a_bar_seek_replays_the_retained_history_bounded() -> None:
    days = pd.bdate_range("2024-01-01", "2024-03-29")
    minutes = [
        d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(minutes=i)
        for d in days
        for i in range(390)
    ]
    tape = tape_of(bars_frame(pd.DatetimeIndex(minutes).tz_localize("UTC")))
    to = ms("2024-03-20T16:00Z")
    plan = seek_plan(tape, to)
    # 1m bars are kept 5 days: from the midnight 5 days before, through the target's day.
    assert plan.reset == ms("2024-03-15")
    assert plan.position == int(np.sum(tape.clock < to))
    bounded = seek_plan(tape, to, limit=1000)
    # At most 1,000 rows before the target's day: from the midnight after the 1,001st row back
    # (the 15th), so the 18th and 19th.
    assert bounded.reset == ms("2024-03-16")
    assert int(np.sum(tape.clock[bounded.catch_up :] < ms("2024-03-20"))) <= 1000
    daily = tape_of(bars_frame(pd.bdate_range("1990-01-01", "2024-12-31")))
    plan = seek_plan(daily, ms("2024-06-03"))
    assert plan.reset == ms("2004-06-03"), "20 years of 1d (7,305 days)"


# The feed: what a seek emits, fed into a Book and a BarBook as the hub does


class Consumer:
    """What the hub does with a replay's events: the quotes (a ``Book``) and the bars."""

    def __init__(self) -> None:
        self.book = Book()
        self.bars = BarBook()

    def take(self, ev: Event) -> None:
        if isinstance(ev, Listing):
            self.book.declare(ev.symbols)
        elif isinstance(ev, Tick):
            self.book.apply(ev)
            self.bars.trade(ev.symbol, ev.ts, ev.price, ev.size or 0.0)
        elif isinstance(ev, Bar):
            row = (ev.ts, ev.open, ev.high, ev.low, ev.close, ev.volume)
            self.bars.of(ev.symbol).bar(row, INTERVALS[ev.interval])
            self.book.apply_bar(ev)
        elif isinstance(ev, Reset):
            self.bars.rewind(ev.symbols, ev.ts)
            self.book.restart(ev.symbols)

    def rows(self, symbol: str, interval: str) -> list[Any]:
        try:
            return self.bars.of(symbol).bars(INTERVALS[interval], 100_000)
        except IntervalError:
            return []

    @classmethod
    def of(cls, events: list[Event]) -> Consumer:
        c = cls()
        for ev in events:
            c.take(ev)
        return c


class Pump:
    """Runs a feed's iterator in a task, handing each event to a consumer."""

    def __init__(self, feed: ReplayFeed) -> None:
        self.feed = feed
        self.events: list[Event] = []
        self.consumer = Consumer()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.feed.events():
            self.events.append(ev)
            self.consumer.take(ev)

    async def settle(self, what: str) -> None:
        """Until the feed has emitted everything it will for now (paused or finished)."""
        n = -1
        for _ in range(400):
            if n == len(self.events) and self.feed.status() in ("paused", "finished"):
                return
            n = len(self.events)
            await asyncio.sleep(10 * MS)
        raise AssertionError(f"timed out waiting for {what}")

    async def close(self) -> None:
        await self.feed.aclose()
        await asyncio.wait_for(self.task, 2000 * MS)


def goog_like(path: Path) -> Path:
    """Ten years of daily bars, rising: 2013's highs are far above anything of 2009."""
    days = pd.bdate_range("2005-01-03", "2014-12-31")
    df = bars_frame(days, seed=7)
    trend = np.linspace(0, 800, len(days)).round(2)
    for col in ("Open", "High", "Low", "Close"):
        df[col] = df[col] + trend
    df.iloc[::-1].to_csv(path, index=False)  # newest first, as finance sites export
    return path


async def test_a_seek_back_shows_nothing_from_after_its_target(tmp_path: Path) -> None:
    path = goog_like(tmp_path / "goog.csv")
    tape, _ = load(path)
    feed = ReplayFeed({"path": str(path), "speed": "max"})
    pump = Pump(feed)
    await pump.settle("the first pass")
    assert feed.status() == "finished"
    full = Consumer.of([Listing(("GOOG",)), *events_between(tape, 0, len(tape))])
    assert pump.consumer.book.quotes["GOOG"] == full.book.quotes["GOOG"]

    feed.replay_control("pause")  # finished -> paused: the seek does not start playing
    seen = len(pump.events)
    to = ms("2009-06-01")
    feed.replay_control("seek", to=to)
    await pump.settle("the seek")
    after = pump.events[seen:]
    assert after[0] == Reset(("GOOG",), ms("2005-01-03")), "20 years of 1d: the whole file"
    assert all(isinstance(e, Bar) and e.ts < to for e in after[1:])
    assert feed.status() == "paused"

    k = int(np.sum(tape.clock < to))
    asof = Consumer.of([Listing(("GOOG",)), *events_between(tape, 0, k)])
    got = pump.consumer.book.quotes["GOOG"]
    assert got == asof.book.quotes["GOOG"], "as if played from the start up to the target"
    last = events_between(tape, k - 1, k)[0]
    assert isinstance(last, Bar) and last.ts == ms("2009-05-29")
    assert (got["high"], got["low"], got["volume"]) == (last.high, last.low, last.volume)
    assert got["high"] < float(tape.price.max()) / 1.5, "no 2013 high"
    assert pump.consumer.rows("GOOG", "1d") == asof.rows("GOOG", "1d")

    feed.replay_control("resume")
    await pump.settle("the rest")
    assert pump.consumer.book.quotes["GOOG"] == full.book.quotes["GOOG"]
    assert pump.consumer.rows("GOOG", "1d") == full.rows("GOOG", "1d")
    assert [list(r) for r in full.rows("GOOG", "1d")] == rows_of(tape)
    await pump.close()


async def test_a_tick_seek_rebuilds_the_day_and_the_bars_exactly(tmp_path: Path) -> None:
    tape = ticks_tape(days=4, per_day=300)
    feed = ReplayFeed({"speed": "max"}, tape=tape)
    pump = Pump(feed)
    await pump.settle("the first pass")
    sent = len(tape)
    # Back, forward (past rows never sent: the catch-up starts before them), back.
    for to in (ms("2024-03-05T11:00Z"), ms("2024-03-07T03:00Z"), ms("2024-03-04T05:00Z")):
        feed.replay_control("pause")
        seen = len(pump.events)
        feed.replay_control("seek", to=to)
        await pump.settle("the seek")
        after = pump.events[seen:]
        # The reset, the state (the last tick of each symbol before midnight), the catch-up.
        plan = seek_plan(tape, to, sent)
        gap = tape.clock[min(sent, len(tape) - 1)]
        assert plan.reset == min(to - to % DAY_MS, gap - gap % DAY_MS if sent < len(tape) else to)
        assert after[0] == Reset(("A", "B"), plan.reset)
        sent = plan.position
        assert after[1:] == events_between(tape.take(plan.state), 0, len(plan.state)) + (
            events_between(tape, plan.catch_up, plan.position)
        )
        k = int(np.sum(tape.clock < to))
        asof = Consumer.of([Listing(("A", "B")), *events_between(tape, 0, k)])
        for sym in ("A", "B"):
            got, want = pump.consumer.book.quotes[sym], asof.book.quotes[sym]
            keys = ("price", "open", "high", "low", "volume", "ts")
            assert {k: got[k] for k in keys} == {k: want[k] for k in keys}
            for interval in ("1s", "1m", "1h", "1d"):
                assert pump.consumer.rows(sym, interval) == asof.rows(sym, interval)
    await pump.close()


async def test_pause_works_in_every_state(tmp_path: Path) -> None:
    tape = ticks_tape(days=1, per_day=200)
    feed = ReplayFeed({"speed": "1"}, tape=tape)
    pump = Pump(feed)
    for _ in range(200):
        if feed.status() == "playing":
            break
        await asyncio.sleep(5 * MS)
    feed.replay_control("pause")  # playing
    assert feed.status() == "paused"
    feed.replay_control("pause")  # paused
    assert feed.status() == "paused"
    feed.replay_control("speed", speed=math.inf)
    feed.replay_control("resume")
    await pump.settle("the end")
    assert feed.status() == "finished" and len(pump.events) == 1 + len(tape)

    feed.replay_control("pause")  # finished
    assert feed.status() == "paused"
    mid = float(tape.clock[100])
    feed.replay_control("seek", to=mid)
    await pump.settle("the seek")
    assert feed.status() == "paused", "a seek of a paused replay does not play"
    seen = len(pump.events)
    await asyncio.sleep(30 * MS)
    assert len(pump.events) == seen
    feed.replay_control("resume")
    await pump.settle("the rest")
    assert [e.ts for e in pump.events[seen:] if isinstance(e, Tick)] == tape.ts[100:].tolist()

    feed.replay_control("pause")  # paused at the end: a resume starts over, from a reset
    seen = len(pump.events)
    feed.replay_control("resume")
    await pump.settle("the second pass")
    again = pump.events[seen:]
    assert again[0] == Reset(("A", "B"), tape.clock[0] - tape.clock[0] % DAY_MS)
    assert [e.ts for e in again[1:] if isinstance(e, Tick)] == tape.ts.tolist()
    await pump.close()


async def test_loop_starts_over_with_a_reset() -> None:
    tape = ticks_tape(days=1, per_day=10)
    feed = ReplayFeed({"speed": "max", "loop": "yes"}, tape=tape)
    events: list[Event] = []
    async for ev in feed.events():
        events.append(ev)
        if len(events) >= 1 + 2 * len(tape) + 1:
            break
    await feed.aclose()
    resets = [i for i, e in enumerate(events) if isinstance(e, Reset)]
    assert resets == [1 + len(tape)]


# ``ticker replay``: a flag for every option


def replay_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["replay"]
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def test_every_feed_option_is_a_replay_flag() -> None:
    flags = {s for a in replay_parser()._actions for s in a.option_strings}
    assert set(ReplayFeed.options) == set(OPTIONS)
    for key, opt in OPTIONS.items():
        if key == "path":
            continue
        assert f"--{key}" in flags, key
        if opt.boolean:
            assert f"--no-{key}" in flags, key


def test_replay_flags_become_the_feed_options(tmp_path: Path) -> None:
    df = bars_frame(pd.date_range("2024-01-02T14:30Z", periods=5, freq="1min"))
    df.to_csv(tmp_path / "spx.csv", index=False)
    argv = ["replay", str(tmp_path / "spx.csv"), "--speed", "max", "--start", "2024-01-02"]
    argv += ["--end", "2024-01-03", "--symbols", "SPX", "--loop", "--no-hold"]
    argv += ["--columns", "ts:Date", "--symbol", "SPX", "--interval", "1min", "--port", "0"]
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if v is not None}
    flags.pop("command")
    settings_ = replay_settings(
        {k: v for k, v in flags.items() if k not in ("log_level", "log_json")}, {}
    )
    assert settings_.options == {
        "path": str(tmp_path / "spx.csv"),
        "speed": "max",
        "start": "2024-01-02",
        "end": "2024-01-03",
        "symbols": "SPX",
        "loop": "yes",
        "hold": "no",
        "columns": "ts:Date",
        "symbol": "SPX",
        "interval": "1min",
    }
    feed = ReplayFeed(settings_.options)
    assert (feed.hold, feed.loop, feed.interval, feed.only) == (False, True, "1m", ["SPX"])


def test_replay_check_reports_bars_and_bad_intervals_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bars_frame(pd.date_range("2024-01-02T14:30Z", periods=5, freq="1min")).to_csv(
        tmp_path / "spx.csv", index=False
    )
    assert main(["replay", str(tmp_path / "spx.csv"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "5 events (5 bars of 1m)" in out and "ignored" not in out
    assert main(["replay", str(tmp_path / "spx.csv"), "--check", "--interval", "2h"]) == 2
    err = capsys.readouterr().err
    assert "unknown interval '2h'" in err and err.count("\n") == 1
    bars_frame(pd.date_range("2024-01-02T14:30Z", periods=5, freq="30min")).to_csv(
        tmp_path / "thirty.csv", index=False
    )
    assert main(["replay", str(tmp_path / "thirty.csv"), "--check"]) == 2
    err = capsys.readouterr().err
    assert "30m apart" in err and "interval=" in err and err.count("\n") == 1


# Through a real server


async def serve_replay(aiohttp_client: AiohttpClient, feed: ReplayFeed) -> TestClient[Any, Any]:
    client = await aiohttp_client(create_app([FeedSource.of(feed)]))
    runner = client.app[RUNNERS][0]
    for _ in range(1000):
        report = feed.report
        if (
            report is not None
            and feed.status() == "finished"
            and runner.events >= 1 + report.events
        ):
            return client
        await asyncio.sleep(10 * MS)
    raise AssertionError("the replay did not finish")


async def api_bars(client: TestClient[Any, Any], symbol: str, interval: str) -> list[list[float]]:
    resp = await client.get(
        "/api/bars", params={"symbol": symbol, "interval": interval, "limit": "5000"}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["symbol"], body["interval"]) == (symbol, interval)
    rows: list[list[float]] = body["bars"]
    return rows


def file_rows(path: Path, interval: str) -> pd.DataFrame:
    """The file's bars read independently of the loader: indexed by their open time (UTC; a
    daily bar at UTC midnight of the date it is written with), oldest first."""
    df = pd.read_csv(path)
    text = df.iloc[:, 0].astype(str)
    if interval == "1d":
        t = pd.to_datetime(text.str.slice(0, 10), utc=True)
    else:
        t = pd.to_datetime(text, utc=True)
    out = df[["Open", "High", "Low", "Close", "Volume"]].astype(float)
    out.index = pd.DatetimeIndex(t)
    return out.sort_index()


def as_rows(df: pd.DataFrame) -> list[list[float]]:
    t = pd.DatetimeIndex(df.index).as_unit("ms").asi8
    return [[float(a), *map(float, r)] for a, r in zip(t, df.to_numpy(), strict=True)]


def resampled(df: pd.DataFrame, interval: str) -> list[list[float]]:
    rule = f"{INTERVALS[interval]}ms"
    agg = df.resample(rule, origin="epoch").agg(
        {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}
    )
    counts = df["Close"].resample(rule, origin="epoch").count()
    return as_rows(agg[counts.to_numpy() > 0])


def real_bar_files(real_data: Path) -> list[Path]:
    files = sorted([*(real_data / "intraday").glob("*.csv"), *(real_data / "daily").glob("*.csv")])
    assert files, "no OHLCV files in the real data folder"
    return files


async def test_every_real_ohlcv_file_is_served_bar_for_bar(
    real_data: Path, aiohttp_client: AiohttpClient
) -> None:
    seen: dict[str, int] = {}
    for path in real_bar_files(real_data):
        feed = ReplayFeed({"path": str(path), "speed": "max", "symbol": "X"})
        report = feed.load()
        (interval,) = report.bars
        seen[path.name] = report.bars[interval]
        want = file_rows(path, interval)
        assert report.events == len(want) and not report.bad, path.name  # every row kept
        client = await serve_replay(aiohttp_client, feed)
        assert await api_bars(client, "X", interval) == as_rows(want), path.name
        coarser = [k for k, w in INTERVALS.items() if w > INTERVALS[interval]]
        for name in coarser:
            assert await api_bars(client, "X", name) == resampled(want, name), (path.name, name)
        finer = next((k for k, w in INTERVALS.items() if w < INTERVALS[interval]), None)
        if finer is not None:
            resp = await client.get("/api/bars", params={"symbol": "X", "interval": finer})
            assert resp.status == 400 and (await resp.json())["error"] == "bad_interval"
        await client.close()
    assert seen == {
        "mplfinance_SP500_NOV2019_IDayRVol.csv": 1563,
        "yfinance_ASAI-L-1h-bad-unit-fixed.csv": 20,
        "yfinance_ASAI-L-1h-bad-unit.csv": 20,
        "yfinance_EA-15m-no-bad-divs.csv": 319,
        "yfinance_4063-T-1d-bad-stock-split-fixed.csv": 22,
        "yfinance_4063-T-1d-bad-stock-split.csv": 22,
    }


def minute_bars_file(path: Path) -> Path:
    """Three sessions of 1m bars (390 a day)."""
    days = pd.bdate_range("2024-01-02", periods=3)
    starts = [
        d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(minutes=i)
        for d in days
        for i in range(390)
    ]
    bars_frame(pd.DatetimeIndex(starts).tz_localize("UTC"), seed=3).to_csv(path, index=False)
    return path


async def collect(ws: Any, series: dict[int, list[float]], quiet: float) -> list[str]:
    """Apply ``bars``/``bar`` frames to ``series`` (as a chart does) until ``quiet`` seconds
    pass without one; the types received."""
    types: list[str] = []
    while True:
        try:
            frame = await recv(ws, quiet)
        except TimeoutError:
            return types
        types.append(frame["type"])
        if frame["type"] == "bars":
            series.clear()
            series.update({int(b[0]): b for b in frame["bars"]})
        elif frame["type"] == "bar":
            series[int(frame["bar"][0])] = frame["bar"]


async def post(client: TestClient[Any, Any], body: dict[str, Any]) -> Any:
    resp = await client.post("/api/replay", data=orjson.dumps(body))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_seek_sends_a_live_bars_stream_a_fresh_history(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    path = minute_bars_file(tmp_path / "spx.csv")
    want = file_rows(path, "1m")
    feed = ReplayFeed({"path": str(path), "speed": "max"})
    client = await serve_replay(aiohttp_client, feed)
    ws = await client.ws_connect("/ws")
    assert (await recv(ws))["type"] == "hello"
    await ws.send_json({"op": "bars", "symbol": "SPX", "interval": "1m", "limit": 5000, "id": 1})
    ack = await recv(ws)
    assert ack["type"] == "ack"
    first = await recv_until(ws, lambda f: f["type"] == "bars")
    assert first["bars"] == as_rows(want)

    await post(client, {"action": "pause"})
    to = ms("2024-01-03T17:00Z")
    body = await post(client, {"action": "seek", "to": to})
    assert body["feeds"][0]["state"] == "paused"
    series: dict[int, list[float]] = {}
    types = await collect(ws, series, 300 * MS)
    assert types[0] == "bars", "a fresh history first"
    assert sorted(series.values()) == as_rows(
        want[want.index < pd.Timestamp(to, unit="ms", tz="UTC")]
    )
    resp = await client.get(
        "/api/bars", params={"symbol": "SPX", "interval": "1m", "limit": "5000"}
    )
    assert (await resp.json())["bars"] == sorted(series.values())

    await post(client, {"action": "resume"})
    await collect(ws, series, 300 * MS)
    assert sorted(series.values()) == as_rows(want)
    await ws.close()


def test_recorded_bars_replay_as_bars_and_recorded_resets_are_noted(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from ticker.store.recorder import events_to_table

    t0 = ms("2024-01-02T14:30Z")
    bar = Bar("SPX", t0, "1m", 10.0, 11.0, 9.5, 10.5, 300.0)
    tick = Tick("AAPL", 190.0, t0 + 1.0, size=5.0, volume=1000.0)
    later = Bar("SPX", t0 + MIN, "1m", 10.5, 10.6, 10.1, 10.2, 0.0)
    recorded: list[Event] = [
        Listing(("SPX", "AAPL")),
        bar,
        tick,
        Reset(("SPX",), ms("2024-01-02")),
        later,
    ]
    pq.write_table(events_to_table(recorded), tmp_path / "rec.parquet")
    tape, report = load(tmp_path / "rec.parquet")
    assert events_between(tape, 0, len(tape)) == [bar, tick, later]
    assert report.bars == {"1m": 2} and report.adjusted == {"resets not replayed": 1}

"""The pure replay core: layout detection, time parsing, the tape, the schedule and the clock.

Sync, no event loop, no files, no mocks; hypothesis for the properties.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from ticker.core.events import News, Tick
from ticker.replay.clock import ReplayClock, schedule
from ticker.replay.columns import Layout, detect_layout, parse_columns_option, symbol_from_filename
from ticker.replay.control import Command, parse_command, parse_speed
from ticker.replay.emit import events_between
from ticker.replay.errors import ReplayError
from ticker.replay.normalise import RowCounts, normalise
from ticker.replay.tape import Tape, concat, state_rows
from ticker.replay.times import epoch_to_ms, parse_time, parse_timestamps

# Wall-clock deadlines make property tests flaky on a loaded machine; behaviour is what counts.
no_deadline = settings(deadline=None)

# Market times from 1973 to 2200, whole microseconds (what every format below can carry).
times = st.datetimes(min_value=datetime(1973, 3, 4), max_value=datetime(2200, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


def ms_of(d: datetime) -> float:
    return (d - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1)


def tape_of(clock: list[float], symbols: list[str] | None = None) -> Tape:
    c = np.asarray(clock, dtype=np.float64)
    n = len(c)
    syms = np.array(symbols or ["A"] * n, dtype=object)
    nan = np.full(n, np.nan)
    return Tape(c, c, syms, np.arange(1, n + 1, dtype=np.float64), nan, nan, nan, nan, nan)


# Layout detection


@pytest.mark.parametrize(
    ("columns", "numeric", "kind", "roles"),
    [
        (
            ["timestamp", "symbol", "price", "size", "bid", "ask"],
            {"price", "size", "bid", "ask"},
            "ticks",
            {"ts": "timestamp", "symbol": "symbol", "price": "price", "size": "size"},
        ),
        (
            ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"],
            {"Open", "High", "Low", "Close", "Adj Close", "Volume"},
            "bars",
            {"ts": "Date", "price": "Close", "size": "Volume"},
        ),
        (
            ["Date", "Open", "Close", "High", "Low", "Volume"],  # mplfinance's column order
            {"Open", "Close", "High", "Low", "Volume"},
            "bars",
            {"ts": "Date", "price": "Close"},
        ),
        (["symbol", "date", "close"], {"close"}, "long", {"symbol": "symbol", "price": "close"}),
        (["Day", "Ticker", "Px Last"], {"Px Last"}, "long", {"ts": "Day", "price": "Px Last"}),
        (
            ["ts_recv", "ts_event", "price", "size", "symbol"],
            {"price", "size"},
            "ticks",
            {"ts": "ts_event"},  # the event time, not the receive time
        ),
        (
            ["recv_ts", "symbol", "price", "qty", "trade_time_ms"],
            {"recv_ts", "price", "qty", "trade_time_ms"},
            "ticks",
            {"ts": "trade_time_ms", "size": "qty"},
        ),
        (["time", "product_id", "price"], {"price"}, "ticks", {"symbol": "product_id"}),
    ],
)
def test_detect_layout(
    columns: list[str], numeric: set[str], kind: str, roles: dict[str, str]
) -> None:
    first = columns[0] == "Day"  # "Day" is not a time name: the first column holds times
    layout = detect_layout(columns, numeric=numeric, first_is_time=first)
    assert layout.kind == kind
    assert {k: layout.columns[k] for k in roles} == roles


def test_wide_tables_make_every_numeric_column_a_symbol() -> None:
    layout = detect_layout(["Date", "AAPL", "MSFT", "note"], numeric={"AAPL", "MSFT"})
    assert (layout.kind, layout.wide, layout.ignored) == ("wide", ("AAPL", "MSFT"), ("note",))


def test_bars_volume_is_the_ticks_size_not_the_session_volume() -> None:
    layout = detect_layout(["Date", "Open", "High", "Low", "Close", "Volume"])
    assert layout.columns["size"] == "Volume" and "volume" not in layout.columns


def test_recordings_are_recognised() -> None:
    cols = ["kind", "ts", "symbol", "price", "size", "headline", "symbols"]
    assert detect_layout(cols).kind == "recording"


def test_overrides_win_and_match_names_loosely() -> None:
    layout = detect_layout(
        ["When", "Open", "High", "Low", "Close", "Adj Close"],
        overrides=parse_columns_option("ts:When+price:adj close"),
    )
    assert (layout.kind, layout.columns["ts"], layout.columns["price"]) == (
        "bars",
        "When",
        "Adj Close",
    )


@pytest.mark.parametrize(
    ("columns", "overrides", "message"),
    [
        (["a", "b"], None, "no time column"),
        (["date", "x"], {"price": "nope"}, "no column 'nope'"),
        (["date", "symbol", "u", "v"], None, "which column is the price"),
        (["date", "note"], None, "no price columns"),
    ],
)
def test_undetectable_layouts_say_what_to_do(
    columns: list[str], overrides: dict[str, str] | None, message: str
) -> None:
    numeric = {"u", "v"}
    with pytest.raises(ReplayError, match=message) as err:
        detect_layout(columns, numeric=numeric, overrides=overrides)
    assert "\n" not in str(err.value)


def test_parse_columns_option() -> None:
    assert parse_columns_option("ts:Date+price:Close") == {"ts": "Date", "price": "Close"}
    with pytest.raises(ReplayError, match="unknown role"):
        parse_columns_option("when:Date")
    with pytest.raises(ReplayError, match="role:column"):
        parse_columns_option("ts")


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("AAPL.csv", "AAPL"), ("aapl.us.csv.gz", "AAPL.US"), ("dir/msft.parquet", "MSFT")],
)
def test_symbol_from_filename(name: str, symbol: str) -> None:
    assert symbol_from_filename(name) == symbol


# Timestamps


@no_deadline
@given(times, st.sampled_from([1.0, 1e3, 1e6, 1e9]))
def test_epochs_in_any_unit_come_back_as_ms(d: datetime, per_second: float) -> None:
    ms = ms_of(d)
    value = ms / 1000.0 * per_second
    assert epoch_to_ms(np.array([value]))[0] == pytest.approx(ms, abs=1e-3, rel=1e-12)


@no_deadline
@given(times, st.sampled_from([None, timedelta(0), timedelta(hours=-4), timedelta(hours=9)]))
def test_iso_strings_with_any_offset(d: datetime, offset: timedelta | None) -> None:
    if offset is None:
        text = d.replace(tzinfo=None).isoformat()  # naive: taken as UTC
    else:
        text = d.astimezone(timezone(offset)).isoformat()
    got = parse_timestamps(pd.Series([text]))[0]
    assert got == pytest.approx(ms_of(d), abs=1e-3)


def test_many_formats_in_one_column() -> None:
    col = pd.Series(
        [
            "2024-10-21 10:00:00+01:00",
            "2024-10-27 08:00:00+00:00",
            "2020-12-28T09:05:12.576690768Z",
            "Jan 1 2000",
            "1618677817.079762",
            "1633998523963",
            "garbage",
            None,
            "",
        ]
    )
    got = parse_timestamps(col)
    want = [
        ms_of(datetime(2024, 10, 21, 9, tzinfo=UTC)),
        ms_of(datetime(2024, 10, 27, 8, tzinfo=UTC)),
        1609146312576.690768,
        ms_of(datetime(2000, 1, 1, tzinfo=UTC)),
        1618677817079.762,
        1633998523963.0,
    ]
    assert got[:6] == pytest.approx(want, abs=1e-3)
    assert np.isnan(got[6:]).all()


def test_numeric_columns_datetimes_and_yyyymmdd() -> None:
    assert parse_timestamps(pd.Series([20240102, 1.6e9]))[0] == ms_of(
        datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert parse_timestamps(pd.Series([20240102, 1.6e9]))[1] == 1.6e12
    aware = pd.Series(pd.to_datetime(["2024-01-02T00:00:00+09:00"]))
    assert parse_timestamps(aware)[0] == ms_of(datetime(2024, 1, 1, 15, tzinfo=UTC))
    assert np.isnan(parse_timestamps(pd.Series([True, False]))).all()


def test_parse_time_and_speed() -> None:
    assert parse_time("1970-01-01T00:00:01Z") == 1000.0
    with pytest.raises(ReplayError):
        parse_time("soon")
    assert parse_speed("max") == math.inf and parse_speed("10x") == 10.0
    for bad in ("0", "-1", "fast"):
        with pytest.raises(ReplayError):
            parse_speed(bad)


# Normalising tables


def test_bad_rows_are_skipped_and_counted() -> None:
    df = pd.DataFrame(
        {
            "time": [
                "2024-01-01T00:00:01Z",
                "nope",
                "2024-01-01T00:00:02Z",
                "2024-01-01T00:00:03Z",
                "2024-01-01T00:00:04Z",
                "2024-01-01T00:00:05Z",
            ],
            "symbol": ["A", "A", "A", None, "B", "A"],
            "price": ["10", "11", "-1", "12", "n/a", "13"],
        }
    )
    counts = RowCounts()
    tape = normalise(df, detect_layout(list(df.columns), numeric={"price"}), counts=counts)
    assert tape.symbol.tolist() == ["A", "A"] and tape.price.tolist() == [10.0, 13.0]
    assert counts.bad == {"bad time": 1, "bad price": 2, "no symbol": 1}


def test_rows_out_of_order_are_sorted_stably() -> None:
    df = pd.DataFrame({"date": [3, 1, 2, 1], "symbol": ["A", "B", "C", "D"], "price": [1.0] * 4})
    tape = normalise(df, detect_layout(list(df.columns), numeric={"date", "price"}))
    assert tape.symbol.tolist() == ["B", "D", "C", "A"]


def test_wide_tables_melt_in_time_order() -> None:
    df = pd.DataFrame({"Date": ["2024-01-02", "2024-01-01"], "X": [2.0, 1.0], "Y": [None, 3.0]})
    counts = RowCounts()
    tape = normalise(df, Layout("wide", {"ts": "Date"}, ("X", "Y")), counts=counts)
    assert list(zip(tape.symbol, tape.price, strict=True)) == [("X", 1.0), ("Y", 3.0), ("X", 2.0)]
    assert counts.bad == {"empty": 1}


def test_tables_without_symbols_need_one() -> None:
    df = pd.DataFrame({"date": [1], "price": [1.0]})
    with pytest.raises(ReplayError, match="symbol"):
        normalise(df, detect_layout(["date", "price"]))
    assert normalise(df, detect_layout(["date", "price"]), symbol="Z").symbol.tolist() == ["Z"]


# Events from a tape


def test_events_between_builds_exact_events_with_none_for_missing() -> None:
    tape = Tape(
        np.array([1e12, 2e12]),
        np.array([1e12, 2e12]),
        np.array(["A", "B"], dtype=object),
        np.array([1.5, 2.5]),
        np.array([10.0, np.nan]),
        np.array([np.nan, np.nan]),
        np.array([np.nan, 2.6]),
        np.array([np.nan, np.nan]),
        np.array([1.0, np.nan]),
    )
    assert events_between(tape, 0, 2) == [
        Tick("A", 1.5, 1e12, size=10.0, prev_close=1.0),
        Tick("B", 2.5, 2e12, ask=2.6),
    ]
    assert events_between(tape, 1, 9) == [Tick("B", 2.5, 2e12, ask=2.6)]
    assert events_between(tape, 2, 2) == []


def test_news_rows_become_news() -> None:
    base = tape_of([1e12, 2e12], ["A", ""])
    objs = np.array([None, "Headline"], dtype=object)
    tags = np.empty(2, dtype=object)
    tags[1] = ("A", "B")
    tape = Tape(
        base.ts,
        base.clock,
        base.symbol,
        base.price,
        base.size,
        base.bid,
        base.ask,
        base.volume,
        base.prev_close,
        np.array([False, True]),
        objs,
        np.array([None, "wire"], dtype=object),
        np.array([None, None], dtype=object),
        np.array([None, "s"], dtype=object),
        tags,
    )
    evs = events_between(tape, 0, 2)
    assert evs[1] == News("Headline", 2e12, "wire", ("A", "B"), None, "s")
    assert tape.symbols() == ("A",)
    assert len(tape.select(symbols=["b"])) == 1, "news tagged with a selected symbol stays"


def test_state_rows_are_the_last_tick_of_each_symbol() -> None:
    tape = tape_of([1, 2, 3, 4, 5], ["A", "B", "A", "C", "B"])
    assert state_rows(tape, 4).tolist() == [1, 2, 3]
    assert state_rows(tape, 0).tolist() == []


@no_deadline
@given(st.lists(st.lists(st.integers(0, 50), max_size=8), min_size=1, max_size=4))
def test_concat_merges_by_clock_and_keeps_file_order_on_ties(parts: list[list[int]]) -> None:
    tapes = [
        tape_of(sorted(float(x) for x in p), [f"{i}:{j}" for j in range(len(p))])
        for i, p in enumerate(parts)
    ]
    merged = concat(tapes)
    assert len(merged) == sum(len(p) for p in parts)
    assert bool(np.all(np.diff(merged.clock) >= 0))
    # Ties keep the order of the inputs (stable).
    key = [(c, int(str(s).split(":")[0])) for c, s in zip(merged.clock, merged.symbol, strict=True)]
    assert key == sorted(key)


def test_recordings_keep_ingest_order_across_files() -> None:
    first, second = tape_of([5.0, 7.0], ["A", "B"]), tape_of([6.0, 8.0], ["C", "D"])
    merged = concat([first, second], keep_order=True)
    assert merged.symbol.tolist() == ["A", "B", "C", "D"]
    assert merged.clock.tolist() == [5.0, 7.0, 7.0, 8.0]
    assert merged.ts.tolist() == [5.0, 7.0, 6.0, 8.0], "ts is what was recorded"


def test_recording_tables_skip_rows_of_unknown_kind() -> None:
    df = pd.DataFrame(
        {
            "kind": ["listing", "tick", None, "quote", "tick"],
            "ts": [None, 1e12, 2e12, 3e12, 4e12],
            "symbol": [None, "A", "A", "A", "A"],
            "price": [None, 1.0, 2.0, 3.0, 4.0],
            "headline": [None] * 5,
            "symbols": [["A", "Z"], None, None, None, None],
        }
    )
    counts = RowCounts()
    tape = normalise(df, detect_layout(list(df.columns)), counts=counts)
    assert tape.price.tolist() == [1.0, 4.0] and tape.listed == ("A", "Z")
    assert (counts.rows, counts.bad) == (4, {"unknown kind": 2})


def test_select_by_time_and_symbol() -> None:
    tape = tape_of([1, 2, 3, 4], ["A", "b", "A", "C"])
    assert tape.select(start=2, end=3).clock.tolist() == [2, 3]
    assert tape.select(symbols=["B", "c"]).symbol.tolist() == ["b", "C"]


# The schedule and the clock

clocks = st.lists(st.floats(0, 1e7, allow_nan=False), min_size=1, max_size=60).map(
    lambda xs: np.array(sorted(xs)) + 1.7e12
)
speeds = st.sampled_from([0.5, 1.0, 7.0, 1000.0])


@no_deadline
@given(clocks, speeds)
def test_schedule_keeps_order_and_scaled_gaps(clock: np.ndarray, speed: float) -> None:
    offsets = schedule(clock, speed)
    assert offsets[0] == 0.0 and bool(np.all(np.diff(offsets) >= 0))
    assert offsets[-1] == pytest.approx((clock[-1] - clock[0]) / 1000.0 / speed)
    assert schedule(clock, speed * 2) == pytest.approx(offsets / 2)
    assert not schedule(clock, math.inf).any()


@given(clocks, speeds, st.lists(st.floats(0.0, 5e3), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_clock_emits_every_row_once_in_order_never_early(
    clock: np.ndarray, speed: float, steps: list[float]
) -> None:
    c = ReplayClock(clock, speed, now=100.0)
    offsets = schedule(clock, speed)
    now, emitted = 100.0, []
    for step in [*steps, 1e12]:
        now += step
        due = c.due(now)
        deadline = c.next_deadline()
        if due == c.position and deadline is not None:
            assert deadline > now - 1e-6, "a row that is due is reported as due"
        for i in range(c.position, due):
            assert offsets[i] <= now - 100.0 + 1e-6, "never before its time"
            emitted.append(i)
        c.advance(due)
    assert emitted == list(range(len(clock)))
    assert c.state == "finished" and c.market_time(now) == clock[-1]


@no_deadline
@given(clocks, speeds, st.floats(0.0, 1e3), st.floats(0.0, 1e3))
def test_time_paused_does_not_count(
    clock: np.ndarray, speed: float, before: float, paused: float
) -> None:
    c = ReplayClock(clock, speed, now=0.0)
    c.pause(before)
    t = c.market_time(before)
    assert c.market_time(before + paused) == t and c.due(before + paused) == c.position
    c.resume(before + paused)
    later = before + paused + 1.0
    assert c.market_time(later) == pytest.approx(min(t + speed * 1000.0, clock[-1]))


@no_deadline
@given(clocks, st.floats(1.6e12, 1.8e12), st.sampled_from(["playing", "paused", "finished"]))
def test_seek_moves_the_clock_and_the_position(clock: np.ndarray, to: float, state: str) -> None:
    c = ReplayClock(clock, 1.0, now=0.0)
    if state == "paused":
        c.pause(0.0)
    elif state == "finished":
        c.advance(len(clock))
    pos = c.seek(to, now=5.0)
    t = min(max(to, clock[0]), clock[-1])
    assert c.market_time(5.0) == t
    # Inclusive: every row at the target is still to play.
    assert pos == int(np.sum(clock < to))
    if state == "paused":
        assert c.state == "paused", "a paused replay stays paused"
    else:
        assert c.state == ("finished" if pos == len(clock) else "playing")


@no_deadline
@given(clocks, speeds, speeds, st.floats(0.0, 100.0))
def test_speed_change_keeps_the_market_clock_continuous(
    clock: np.ndarray, s1: float, s2: float, at: float
) -> None:
    c = ReplayClock(clock, s1, now=0.0)
    before = c.market_time(at)
    c.set_speed(s2, at)
    assert c.market_time(at) == pytest.approx(before)
    if before < clock[-1]:
        assert c.market_time(at + 0.001) == pytest.approx(min(before + s2, clock[-1]))


def test_max_speed_is_all_due_and_finished_resume_starts_over() -> None:
    c = ReplayClock(np.array([1.0, 2.0, 3.0]), math.inf, now=0.0)
    assert c.due(0.0) == 3 and c.next_deadline() == 0.0
    c.advance(2)
    assert c.market_time(0.0) == 2.0
    c.advance(3)
    assert c.state == "finished" and c.next_deadline() is None
    c.resume(1.0)
    assert (c.state, c.position) == ("playing", 0)
    assert ReplayClock(np.array([]), 1.0, 0.0).state == "finished"


# Control commands


def test_parse_command() -> None:
    assert parse_command({"action": "pause"}) == Command("pause")
    assert parse_command({"action": "seek", "to": 5, "feed": "r"}) == Command(
        "seek", to=5.0, feed="r"
    )
    assert parse_command({"action": "speed", "speed": "max"}).speed == math.inf
    bads: tuple[object, ...] = (
        [],
        {"action": "stop"},
        {"action": "seek"},
        {"action": "seek", "to": True},
        {"action": "speed", "speed": 0},
        {"action": "speed", "speed": "fast"},
        {"action": "pause", "feed": 3},
    )
    for bad in bads:
        with pytest.raises(ReplayError):
            parse_command(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)


@no_deadline
@given(
    json_values
    | st.fixed_dictionaries(
        {"action": st.sampled_from(["pause", "resume", "seek", "speed", "x"])},
        optional={"to": json_values, "speed": json_values, "feed": json_values},
    )
)
def test_parse_command_accepts_or_raises_replay_error_only(body: object) -> None:
    try:
        cmd = parse_command(body)
    except ReplayError as exc:
        assert "\n" not in str(exc)
        return
    assert cmd.action in ("pause", "resume", "seek", "speed")
    assert cmd.to is None or math.isfinite(cmd.to)
    assert cmd.speed is None or cmd.speed > 0

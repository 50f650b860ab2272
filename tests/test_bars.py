"""ticker.core.bars: bars of every interval from trades or finer bars, checked against pandas'
``resample().ohlc()`` on random data (sync, no event loop)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from ticker.core.bars import (
    DEFAULT_RETAIN,
    INTERVALS,
    BarBook,
    BarRing,
    IntervalError,
    Row,
    SymbolBars,
    interval_ms,
)

RETAIN = {w: 100_000 for w in INTERVALS.values()}
T0 = 1_700_000_000_000.0  # a Tuesday, 22:13:20 UTC


def pandas_bars(trades: list[tuple[float, float, float]], width: int) -> list[Row]:
    """What pandas makes of the same trades: one bar per non-empty bucket, oldest first."""
    df = pd.DataFrame(trades, columns=["ts", "price", "size"])
    df.index = pd.to_datetime(df["ts"], unit="ms")
    rule = f"{width}ms"
    ohlc = df["price"].resample(rule, origin="epoch").ohlc()
    vol = df["size"].resample(rule, origin="epoch").sum()
    count = df["price"].resample(rule, origin="epoch").count()
    keep = (count > 0).to_numpy()
    ohlc, vol = ohlc[keep], vol[keep]
    t_ms = pd.DatetimeIndex(ohlc.index).as_unit("ms").asi8
    cols = [ohlc[c].to_numpy() for c in ("open", "high", "low", "close")]
    return [
        (float(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(t_ms, *cols, vol.to_numpy(), strict=True)
    ]


def close(a: list[Row], b: list[Row]) -> bool:
    return len(a) == len(b) and all(
        all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(p, q, strict=True))
        for p, q in zip(a, b, strict=True)
    )


# Trades in time order: gaps from 0 ms to a few hours, so every interval gets several bars.
gaps = st.one_of(
    st.integers(0, 2_000),
    st.integers(0, 120_000),
    st.integers(0, 8 * 3_600_000),
    st.integers(0, 3 * 86_400_000),
)
trades_st = st.lists(
    st.tuples(gaps, st.floats(0.01, 1e6), st.floats(0, 1e4)), min_size=1, max_size=120
)


def timed(raw: list[tuple[int, float, float]]) -> list[tuple[float, float, float]]:
    out, t = [], T0
    for gap, price, size in raw:
        t += gap
        out.append((t, price, size))
    return out


@settings(max_examples=150, deadline=None)
@given(trades_st)
def test_every_interval_equals_pandas_resample(raw: list[tuple[int, float, float]]) -> None:
    trades = timed(raw)
    sb = SymbolBars(RETAIN)
    for ts, price, size in trades:
        sb.trade(ts, price, size)
    for name, width in INTERVALS.items():
        got = sb.bars(width, 100_000)
        assert close(got, pandas_bars(trades, width)), name
        # The last one is the forming bar; every earlier one is final.
        assert got[-1] == sb.forming(width)


@settings(max_examples=60, deadline=None)
@given(trades_st, st.sampled_from(list(INTERVALS.values())))
def test_reading_midway_changes_nothing(raw: list[tuple[int, float, float]], width: int) -> None:
    """Reading bars (and forming bars) at any moment does not change what is built."""
    trades = timed(raw)
    sb = SymbolBars(RETAIN)
    for ts, price, size in trades:
        sb.trade(ts, price, size)
        sb.bars(width, 3)
        sb.forming(width)
    assert close(sb.bars(width, 100_000), pandas_bars(trades, width))


@settings(max_examples=80, deadline=None)
@given(trades_st, st.sampled_from(["1m", "5m", "1h", "1d"]))
def test_bars_of_finer_bars_equal_bars_of_the_trades(
    raw: list[tuple[int, float, float]], source: str
) -> None:
    """A replayed bar file: its own interval is the file exactly; coarser ones aggregate it as
    they would the trades; finer ones do not exist."""
    trades = timed(raw)
    width = INTERVALS[source]
    file_bars = pandas_bars(trades, width)
    sb = SymbolBars(RETAIN)
    for bar in file_bars:
        sb.bar(bar, width)
    assert close(sb.bars(width, 100_000), file_bars)
    for name, w in INTERVALS.items():
        if w > width:
            assert close(sb.bars(w, 100_000), pandas_bars(trades, w)), name
        elif w < width:
            with pytest.raises(IntervalError, match="cannot be made"):
                sb.bars(w, 10)


@settings(max_examples=60, deadline=None)
@given(trades_st, st.integers(1, 50), st.integers(0, 100))
def test_limit_and_before_page_through_history(
    raw: list[tuple[int, float, float]], limit: int, cut: int
) -> None:
    trades = timed(raw)
    sb = SymbolBars(RETAIN)
    for ts, price, size in trades:
        sb.trade(ts, price, size)
    every = sb.bars(60_000, 100_000)
    assert sb.bars(60_000, limit) == every[-limit:]
    before = every[min(cut, len(every) - 1)][0]
    older = [b for b in every if b[0] < before]
    assert sb.bars(60_000, limit, before=before) == older[-limit:]


def test_retention_keeps_the_newest_bars() -> None:
    sb = SymbolBars({w: 3 for w in INTERVALS.values()})
    for i in range(10):
        sb.trade(T0 + i * 1_000, 100.0 + i, 1.0)
    got = sb.bars(1_000, 100)
    assert [b[1] for b in got] == [106.0, 107.0, 108.0, 109.0]  # 3 closed + the forming one


def test_ring_wraps_and_pages() -> None:
    ring = BarRing(4)
    for i in range(7):
        ring.append((float(i), 1.0, 1.0, 1.0, 1.0, 1.0))
    assert [b[0] for b in ring] == [3.0, 4.0, 5.0, 6.0]
    assert [b[0] for b in ring.before(5.0, 10)] == [3.0, 4.0]
    assert [b[0] for b in ring.before(None, 2)] == [5.0, 6.0]
    assert ring.last_t() == 6.0


def test_late_data_is_counted_not_applied() -> None:
    sb = SymbolBars(RETAIN)
    sb.trade(T0 + 5_000, 10.0, 1.0)
    sb.trade(T0 + 7_000, 11.0, 1.0)
    sb.trade(T0 + 5_500, 99.0, 1.0)  # a second that is already final
    assert sb.late == 1
    assert max(b[2] for b in sb.bars(1_000, 10)) == 11.0
    with pytest.raises(IntervalError, match="after data of 1000 ms"):
        sb.bar((T0, 1, 1, 1, 1, 1), 60_000)  # bars after trades: not mixed


def test_bars_after_bars_of_another_width_are_refused() -> None:
    sb = SymbolBars(RETAIN)
    sb.bar((T0, 1.0, 2.0, 0.5, 1.5, 10.0), 60_000)
    with pytest.raises(IntervalError):
        sb.bar((T0 + 86_400_000, 1.0, 2.0, 0.5, 1.5, 10.0), 86_400_000)
    with pytest.raises(IntervalError, match="intervals are"):
        SymbolBars(RETAIN).bar((T0, 1, 1, 1, 1, 1), 7_000)


def test_day_bars_start_at_utc_midnight() -> None:
    sb = SymbolBars(RETAIN)
    sb.trade(T0, 1.0, 1.0)  # 22:13:20 UTC
    (bar,) = sb.bars(86_400_000, 10)
    assert pd.Timestamp(bar[0], unit="ms") == pd.Timestamp("2023-11-14 00:00:00")


def test_clear_forgets_everything() -> None:
    sb = SymbolBars(RETAIN)
    sb.bar((T0, 1.0, 2.0, 0.5, 1.5, 10.0), 60_000)
    sb.clear()
    assert sb.bars(1_000, 10) == [] and sb.finest is None
    sb.trade(T0, 5.0, 1.0)
    assert sb.bars(1_000, 10) == [(T0, 5.0, 5.0, 5.0, 5.0, 1.0)]


def test_interval_names() -> None:
    assert interval_ms("1m") == interval_ms("1min") == 60_000
    assert interval_ms("1d") == 86_400_000
    with pytest.raises(IntervalError, match="1s, 5s, 15s, 1m, 5m, 15m, 1h, 1d"):
        interval_ms("2m")


def test_book_retention_is_validated_and_defaults_cover_the_promise() -> None:
    with pytest.raises(IntervalError, match="7m"):
        BarBook({"7m": 10})
    hours = {k: DEFAULT_RETAIN[k] * INTERVALS[k] / 3_600_000 for k in DEFAULT_RETAIN}
    assert hours["1s"] >= 1 and hours["1m"] >= 5 * 24
    assert hours["1h"] >= 365 * 24 and hours["1d"] >= 20 * 365 * 24
    book = BarBook()
    book.trade("AAPL", T0, 1.0, 2.0)
    assert book.of("AAPL").bars(1_000, 5) == [(T0, 1.0, 1.0, 1.0, 1.0, 2.0)]


@settings(max_examples=120, deadline=None)
@given(trades_st, st.integers(0, 200), st.integers(0, 3 * 86_400))
def test_rewind_equals_never_having_seen_the_later_trades(
    raw: list[tuple[int, float, float]], cut: int, seconds: int
) -> None:
    """A rewind to any whole second forgets exactly what came at or after it: every interval
    then equals the bars of the earlier trades alone, and later trades build on them as if
    nothing had been forgotten."""
    trades = timed(raw)
    t = T0 - T0 % 1000 + seconds * 1000.0
    sb = SymbolBars(RETAIN)
    for ts, price, size in trades:
        sb.trade(ts, price, size)
    sb.rewind(t)
    before = [tr for tr in trades if tr[0] < t]
    for name, width in INTERVALS.items():
        want = pandas_bars(before, width) if before else []
        assert close(sb.bars(width, 100_000), want), name
    # Playing on from the cut: the same bars as one pass over everything before and after it.
    after = [tr for tr in trades if tr[0] >= t][:cut]
    for ts, price, size in after:
        sb.trade(ts, price, size)
    if before or after:
        for name, width in INTERVALS.items():
            assert close(sb.bars(width, 100_000), pandas_bars(before + after, width)), name


@settings(max_examples=60, deadline=None)
@given(trades_st, st.sampled_from(list(INTERVALS.values())), st.integers(0, 130))
def test_since_is_the_tail_of_the_history(
    raw: list[tuple[int, float, float]], width: int, k: int
) -> None:
    trades = timed(raw)
    sb = SymbolBars(RETAIN)
    for ts, price, size in trades:
        sb.trade(ts, price, size)
    every = sb.bars(width, 100_000)
    t = every[min(k, len(every) - 1)][0]
    tail = [b for b in every if b[0] >= t]
    assert sb.since(width, t, 100_000) == tail
    assert sb.since(width, t, len(tail)) == tail
    if tail:
        assert sb.since(width, t, len(tail) - 1) is None  # too many: send history instead


def test_a_trade_in_a_second_already_final_is_late() -> None:
    sb = SymbolBars(RETAIN)
    sb.trade(T0, 10.0, 1.0)
    sb.trade(T0 + 1_000, 11.0, 1.0)
    sb.rewind(T0 + 1_000)  # the bar of T0 is final, nothing forms
    sb.trade(T0 + 500, 99.0, 1.0)
    assert sb.late == 1
    assert sb.bars(1_000, 10) == [(T0, 10.0, 10.0, 10.0, 10.0, 1.0)]


@settings(max_examples=60, deadline=None)
@given(trades_st, st.integers(0, 119))
def test_a_restored_copy_continues_exactly_where_the_original_was(
    raw: list[tuple[int, float, float]], cut: int
) -> None:
    """state() and closed() of one instance, restore()d into another, give the same bars, and
    both go on identically (what a Redis edge does with the ingest node's bars)."""
    trades = timed(raw)
    a, b = SymbolBars(RETAIN), SymbolBars(RETAIN)
    for ts, price, size in trades[:cut]:
        a.trade(ts, price, size)
    b.restore(a.state(), {w: a.closed(w, -1.0) for w in INTERVALS.values()})
    for ts, price, size in trades[cut:]:
        a.trade(ts, price, size)
        b.trade(ts, price, size)
    for width in INTERVALS.values():
        assert b.bars(width, 100_000) == a.bars(width, 100_000)

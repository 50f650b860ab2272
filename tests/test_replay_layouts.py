"""Loading real-world layouts from files: small files the tests write, and the real data folder.

One test per layout (ticks, OHLCV bars, long, wide) in CSV, gzipped CSV and Parquet; bad rows and
malformed lines skipped and counted; missing and unreadable files as one-line errors (exit 2 from
the CLI); and every real intraday, daily and tick file in ``shared/data``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ticker.cli import main
from ticker.core.events import Bar, Tick
from ticker.replay.emit import events_between
from ticker.replay.errors import ReplayError
from ticker.replay.files import load

T0 = pd.Timestamp("2024-03-01T14:30:00Z")
T0_MS = T0.value / 1e6


def write(df: pd.DataFrame, path: Path) -> Path:
    """``df`` as CSV, gzipped CSV or Parquet, by suffix."""
    if path.name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            df.to_csv(f, index=False)
    else:
        df.to_csv(path, index=False)
    return path


FORMATS = ["csv", "csv.gz", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_tick_tables(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(
        {
            "timestamp": [(T0 + pd.Timedelta(milliseconds=i * 250)).isoformat() for i in range(4)],
            "symbol": ["AAPL", "MSFT", "AAPL", "MSFT"],
            "price": [190.5, 410.25, 190.75, 410.0],
            "size": [100, 5, 20, 7],
            "bid": [190.4, 410.2, 190.7, 409.9],
            "ask": [190.6, 410.3, 190.8, 410.1],
        }
    )
    tape, report = load(write(df, tmp_path / f"trades.{fmt}"))
    assert report.layouts == ("ticks",) and report.events == 4 and not report.bad
    assert events_between(tape, 0, 2) == [
        Tick("AAPL", 190.5, T0_MS, size=100.0, bid=190.4, ask=190.6),
        Tick("MSFT", 410.25, T0_MS + 250, size=5.0, bid=410.2, ask=410.3),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_ohlcv_bars_take_the_symbol_from_the_file_name(tmp_path: Path, fmt: str) -> None:
    # As finance sites export them: newest first, Adj Close beside Close.
    days = pd.date_range("2024-01-02", periods=3, freq="D")[::-1]
    df = pd.DataFrame(
        {
            "Date": days.strftime("%Y-%m-%d"),
            "Open": [12.0, 11.0, 10.0],
            "High": [12.5, 11.5, 10.5],
            "Low": [11.5, 10.5, 9.5],
            "Close": [12.2, 11.2, 10.2],
            "Adj Close": [12.1, 11.1, 10.1],
            "Volume": [3000, 2000, 1000],
        }
    )
    tape, report = load(write(df, tmp_path / f"nvda.{fmt}"))
    assert report.layouts == ("bars",)
    day = pd.Timestamp("2024-01-02T00:00:00Z").value / 1e6
    # Oldest first, whole bars of 1d at their open time (UTC midnight of their date).
    assert events_between(tape, 0, len(tape)) == [
        Bar("NVDA", day, "1d", 10.0, 10.5, 9.5, 10.2, 1000.0),
        Bar("NVDA", day + 86_400_000, "1d", 11.0, 11.5, 10.5, 11.2, 2000.0),
        Bar("NVDA", day + 2 * 86_400_000, "1d", 12.0, 12.5, 11.5, 12.2, 3000.0),
    ]
    assert report.bars == {"1d": 3} and "3 bars of 1d" in report.summary()
    renamed, _ = load(tmp_path / f"nvda.{fmt}", symbol="NVIDIA")
    assert renamed.symbols() == ("NVIDIA",)


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_tables(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(
        {
            "symbol": ["A", "B", "A", "B"],
            "date": ["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-03"],
            "close": [1.0, 2.0, 1.5, 2.5],
        }
    )
    tape, report = load(write(df, tmp_path / f"prices.{fmt}"))
    assert report.layouts == ("long",)
    assert list(zip(tape.symbol, tape.price, strict=True)) == [
        ("A", 1.0),
        ("B", 2.0),
        ("A", 1.5),
        ("B", 2.5),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_wide_tables(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(
        {"Date": ["2024-01-02", "2024-01-03"], "SPY": [470.0, 472.5], "QQQ": [400.0, np.nan]}
    )
    tape, report = load(write(df, tmp_path / f"closes.{fmt}"))
    assert report.layouts == ("wide",) and report.bad == {"empty": 1}
    assert tape.symbols() == ("SPY", "QQQ")
    assert list(zip(tape.symbol, tape.price, strict=True)) == [
        ("SPY", 470.0),
        ("QQQ", 400.0),
        ("SPY", 472.5),
    ]


def test_column_overrides(tmp_path: Path) -> None:
    df = pd.DataFrame({"Kurs": [1.0, 2.0], "Zeit": ["2024-01-02", "2024-01-03"]})
    path = write(df, tmp_path / "x.csv")
    with pytest.raises(ReplayError, match="columns=ts:NAME"):
        load(path)  # no time name it knows, and the first column holds numbers
    tape, _ = load(path, columns={"ts": "Zeit", "price": "Kurs"}, symbol="X")
    assert tape.price.tolist() == [1.0, 2.0]


def test_bad_rows_and_malformed_lines_are_counted_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text(
        "time,symbol,price\n"
        "2024-01-01T00:00:00Z,A,1.0\n"
        "not a time,A,1.1\n"
        "2024-01-01T00:00:02Z,A,-3\n"
        "2024-01-01T00:00:03Z,A,\n"
        "2024-01-01T00:00:04Z,A,1.2,extra,fields\n"
        "2024-01-01T00:00:05Z,,1.3\n"
        "2024-01-01T00:00:06Z,A,1.4\n"
    )
    tape, report = load(path)
    assert tape.price.tolist() == [1.0, 1.4]
    assert report.bad == {"bad time": 1, "bad price": 2, "malformed": 1, "no symbol": 1}
    line = report.summary()
    assert "\n" not in line
    assert "skipped 5 bad rows (2 bad price, 1 bad time, 1 malformed, 1 no symbol)" in line


def test_a_directory_of_files_merges_by_time(tmp_path: Path) -> None:
    for sym, offset in (("AAA", 0), ("BBB", 12)):
        hours = pd.date_range("2024-01-02", periods=3, freq="D") + pd.Timedelta(hours=offset)
        write(
            pd.DataFrame({"date": hours.astype(str), "price": [1.0, 2.0, 3.0]}),
            tmp_path / f"{sym}.csv",
        )
    (tmp_path / "notes.md").write_text("not data")
    tape, report = load(tmp_path)
    assert report.files == 2
    assert tape.symbol.tolist() == ["AAA", "BBB"] * 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file or directory"),
        ("empty.csv", b"", "the file is empty"),
        ("broken.parquet", b"PAR1 this is not parquet", "cannot read"),
        ("broken.csv.gz", b"not gzip at all", "cannot read"),
        ("binary.csv", bytes(range(256)) * 4, None),
    ],
)
def test_unreadable_files_are_one_line_errors(
    tmp_path: Path, name: str, content: bytes | None, message: str | None
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReplayError, match=message) as err:
        load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_cli_exits_2_with_one_line_for_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nope.csv"), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ticker: replay: no such file") and "\n" not in err
    assert main(["serve", "--feed", f"replay:path={tmp_path}/nope.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such file" in err and "Traceback" not in err and "\n" not in err


def test_cli_check_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = pd.DataFrame({"date": ["2024-01-02", "bad"], "symbol": ["A", "A"], "price": [1.0, 2.0]})
    path = write(df, tmp_path / "p.csv")
    assert main(["replay", str(path), "--check"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("replay: 1 file (ticks), 2 rows -> 1 events") and "1 bad time" in out


# Real data (read in place from shared/data, never copied)


def test_real_intraday_and_daily_bars(real_data: Path) -> None:
    tape, report = load(
        real_data / "intraday" / "mplfinance_SP500_NOV2019_IDayRVol.csv", symbol="SPX"
    )
    # Date,Open,Close,High,Low,Volume: the close is the Close column, wherever it stands.
    assert (report.layouts, report.events, report.bad) == (("bars",), 1563, {})
    assert report.bars == {"1m": 1563} and "1,563 bars of 1m" in report.summary()
    assert "ignored" not in report.summary()
    assert (tape.price[0], tape.size[0]) == (3080.49, 2209795.0)
    assert tape.ts[0] == pd.Timestamp("2019-11-05T09:30:00Z").value / 1e6

    tape, report = load(real_data / "intraday" / "yfinance_ASAI-L-1h-bad-unit.csv")
    # BST -> GMT inside the file: offsets +01:00 then +00:00, all converted to UTC, in order.
    assert report.events == 20 and bool(np.all(np.diff(tape.ts) > 0))
    assert tape.ts[0] == pd.Timestamp("2024-10-21T09:00:00Z").value / 1e6
    assert tape.symbols() == ("YFINANCE_ASAI-L-1H-BAD-UNIT",)

    tape, report = load(real_data / "intraday" / "yfinance_EA-15m-no-bad-divs.csv", symbol="EA")
    assert report.events == 319 and tape.ts[0] == pd.Timestamp("2026-05-26T08:00:00Z").value / 1e6

    # Daily bars newest first: replayed oldest first, each at UTC midnight of its Tokyo date.
    tape, report = load(real_data / "daily" / "yfinance_4063-T-1d-bad-stock-split.csv")
    assert report.events == 22 and bool(np.all(np.diff(tape.ts) > 0))
    assert report.bars == {"1d": 22} and not report.adjusted
    assert tape.ts[-1] == pd.Timestamp("2023-04-14T00:00:00Z").value / 1e6


def test_real_tick_tables(real_data: Path) -> None:
    tick = real_data / "tick"
    tape, report = load(tick / "XNAS.ITCH_test_data.trades.csv")
    assert (report.layouts, report.events, tape.symbols()) == (("ticks",), 4, ("NVDA",))
    # The event time (ts_event, nanoseconds), not the receive time.
    assert tape.ts[0] == pytest.approx(pd.Timestamp("2020-12-28T09:05:12.576690768Z").value / 1e6)
    assert (tape.price[0], tape.size[0]) == (521.0, 36.0)

    tape, _ = load(tick / "XNAS.ITCH_test_data.tbbo.csv")
    assert (tape.bid[0], tape.ask[0]) == (520.0, 521.0)

    tape, report = load(tick / "binance_aggtrades_2021-10-12.csv")
    assert report.events == 104 and report.symbols == 7
    # trade_time_ms (exchange time) is the clock; rows from two venues' sessions are sorted.
    assert tape.ts[0] == 1626992741421.0 and bool(np.all(np.diff(tape.clock) >= 0))

    tape, report = load(tick / "coinbase_matches_2021-04-17.csv")
    assert report.events == 107 and "BAND-GBP" in tape.symbols()
    assert tape.ts.min() == pd.Timestamp("2021-04-17T16:41:49.984117Z").value / 1e6


def test_every_real_table_loads(real_data: Path) -> None:
    files = sorted(p for d in ("intraday", "daily", "tick") for p in (real_data / d).glob("*.csv"))
    assert len(files) >= 10
    for f in files:
        tape, report = load(f)
        assert report.events > 0 and len(tape) == report.events, f
        assert bool(np.all(tape.price > 0)) and not np.isnan(tape.ts).any(), f

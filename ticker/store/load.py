"""Durable history: the bars (and last quotes) of a directory of recordings, for ``serve
--history DIR``.

Pure planning and a thin I/O shell. :func:`read_recordings` reads the files the
:class:`~ticker.store.recorder.Recorder` writes (Parquet segments and the journal of an unfinished
one; a file that cannot be read is skipped with one WARNING line). :func:`plan` turns the events
into what the bar builder takes, vectorised with pandas (never a Python step per tick): per
symbol, its trades as **1 s bars** (in recording order, a trade older than its symbol's latest
second dropped as the live builder drops it), its recorded :class:`~ticker.core.events.Bar`
events, and the recorded :class:`~ticker.core.events.Reset` events between them. :func:`apply`
feeds them to a :class:`~ticker.core.bars.BarBook` in time order (``SymbolBars.bar(row, width)``,
``SymbolBars.rewind(t)``) and puts each symbol's last quote in the :class:`~ticker.core.book.Book`.

Only what the retention keeps matters: events older than the ``1d`` retention before the newest
event are skipped. The coarser intervals are built from the 1 s bars by the builder itself, so
they are what a server that had run all along would hold.

:func:`load_history` does all of it; it blocks (tens of milliseconds to seconds: README,
"Durable history"), so the server runs it in a thread before it accepts connections or starts
its feeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticker.core.bars import DEFAULT_RETAIN, INTERVALS, BarBook, IntervalError, Row
from ticker.core.book import Book
from ticker.core.events import Bar, Tick
from ticker.store.recorder import SCHEMA, read_journal

__all__ = [
    "COLUMNS",
    "HistoryPlan",
    "HistoryReport",
    "SymbolPlan",
    "apply",
    "load_history",
    "plan",
    "read_recordings",
    "recording_files",
]

log = logging.getLogger("ticker.history")

_NEWS_ONLY = frozenset({"headline", "source", "url", "summary"})
COLUMNS = tuple(name for name in SCHEMA.names if name not in _NEWS_ONLY)
"""The recording's columns the history needs (the news columns are never read)."""

_SUBSCHEMA = pa.schema([SCHEMA.field(c) for c in COLUMNS])
_SECOND = 1_000.0
_SECOND_MS = 1_000
_OHLCV = ["t", "open", "high", "low", "close", "volume"]


@dataclass(slots=True)
class SymbolPlan:
    """What one symbol's bars are rebuilt from, in order.

    Attributes:
        steps: ``(width_ms, rows)`` (rows: an ``(n, 6)`` array of ``t o h l c v``, oldest first)
            and ``(None, t)`` (rewind to market time ``t``), in the order they happened.
        last: the symbol's last recorded tick, for the quote (None: it had only bars).
        day: the market day of ``last`` as the quote counts it: every recorded trade of that
            UTC day, late ones too (``t o h l c v``).
    """

    steps: list[tuple[int | None, npt.NDArray[np.float64] | float]] = field(default_factory=list)
    last: Tick | None = None
    day: Row | None = None


@dataclass(slots=True)
class HistoryPlan:
    """Every symbol's :class:`SymbolPlan`, and counts for the report."""

    symbols: dict[str, SymbolPlan] = field(default_factory=dict)
    ticks: int = 0  # recorded ticks used
    bars: int = 0  # recorded bars used
    resets: int = 0
    old: int = 0  # events skipped: older than the retention


@dataclass(slots=True)
class HistoryReport:
    """What :func:`load_history` did: files read and skipped, events used, time taken."""

    directory: Path
    files: int = 0
    skipped: int = 0
    ticks: int = 0
    bars: int = 0
    resets: int = 0
    old: int = 0
    symbols: int = 0
    late: int = 0  # bars the builder refused (out of order, or of another width)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the log."""
        s = (
            f"history {self.directory}: {self.files} files, {self.ticks:,} ticks, "
            f"{self.bars:,} bars, {self.resets} resets -> {self.symbols} symbols "
            f"in {self.seconds:.2f} s"
        )
        extra = [
            f"{n:,} {what}"
            for n, what in (
                (self.skipped, "unreadable files skipped"),
                (self.old, "events older than the retention skipped"),
                (self.late, "bars out of order"),
            )
            if n
        ]
        return s + (f" ({', '.join(extra)})" if extra else "")


# I/O shell: files


def recording_files(directory: Path) -> list[Path]:
    """The recordings in ``directory``, oldest first (the recorder's names sort by start time):
    ``*.parquet``, and ``*.arrows`` journals whose Parquet does not exist yet."""
    out = []
    for p in sorted(directory.iterdir()):
        if p.suffix == ".parquet" or (
            p.suffix == ".arrows" and not p.with_suffix(".parquet").exists()
        ):
            out.append(p)
    return out


def _read_file(path: Path) -> pa.Table:
    """One recording's history columns, cast to the recording's types."""
    if path.suffix == ".arrows":
        table = read_journal(path)
    else:
        table = pq.read_table(path, columns=list(COLUMNS))
    return table.select(list(COLUMNS)).cast(_SUBSCHEMA)


def read_recordings(directory: Path) -> tuple[pa.Table, int, int]:
    """Every recording in ``directory`` as one table (recording order); a file that cannot be
    read (corrupt, truncated, another format) is skipped with one WARNING line.

    Returns:
        The table, the number of files read, and the number skipped.
    """
    tables = []
    skipped = 0
    for path in recording_files(directory):
        try:
            tables.append(_read_file(path))
        except Exception as exc:  # whatever a broken file raises: skipped, never fatal
            skipped += 1
            log.warning("history: skipped %s: %s: %s", path.name, type(exc).__name__, exc)
    table = pa.concat_tables(tables) if tables else _SUBSCHEMA.empty_table()
    return table, len(tables), skipped


# Pure: planning


def _numbers(table: pa.Table, names: Iterable[str]) -> dict[str, npt.NDArray[np.float64]]:
    return {n: table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in names}


def _segments(
    symbol_rows: npt.NDArray[np.int64],
    symbol_codes: npt.NDArray[np.int64],
    resets: dict[int, list[int]],
) -> npt.NDArray[np.int64]:
    """Per row, the number of resets of its symbol recorded before it."""
    seg = np.zeros(len(symbol_rows), dtype=np.int64)
    for code, rows in resets.items():
        mine = symbol_codes == code
        seg[mine] = np.searchsorted(np.asarray(rows), symbol_rows[mine], side="right")
    return seg


def plan(table: pa.Table, retain_1d: int = DEFAULT_RETAIN["1d"]) -> HistoryPlan:
    """Pure; no I/O. What each symbol's bars are rebuilt from (module docstring).

    Args:
        table: recorded events in recording order, with at least :data:`COLUMNS`.
        retain_1d: the ``1d`` bars kept; events older than that many days before the newest one
            are skipped.
    """
    out = HistoryPlan()
    kind = table.column("kind")
    row = pa.array(np.arange(table.num_rows, dtype=np.int64))
    table = table.append_column("row", row)
    good_ts = pc.and_(pc.is_finite(table.column("ts")), pc.greater_equal(table.column("ts"), 0.0))
    # Each kind's own columns only: filtering the others (the list column most) costs more
    # than everything else here.
    tick_cols = ["row", "ts", "symbol", "price", "size", "bid", "ask", "volume", "prev_close"]
    ticks = table.select(tick_cols).filter(
        pc.and_(
            pc.and_(pc.equal(kind, "tick"), good_ts),
            pc.and_(pc.is_finite(table.column("price")), pc.greater(table.column("price"), 0.0)),
        )
    )
    bar_cols = ["row", "ts", "symbol", "interval", "open", "high", "low", "close", "volume"]
    bars = table.select(bar_cols).filter(pc.and_(pc.equal(kind, "bar"), good_ts))
    resets = table.select(["row", "ts", "symbols"]).filter(pc.equal(kind, "reset")).to_pylist()
    newest = max(
        (pc.max(t.column("ts")).as_py() or 0.0 for t in (ticks, bars) if t.num_rows), default=0.0
    )
    day_ms = INTERVALS["1d"]
    horizon = newest - newest % day_ms - (retain_1d - 1) * day_ms  # the oldest 1d bar kept
    fresh_ticks = ticks.filter(pc.greater_equal(ticks.column("ts"), horizon))
    fresh_bars = bars.filter(pc.greater_equal(bars.column("ts"), horizon))
    out.old = ticks.num_rows - fresh_ticks.num_rows + bars.num_rows - fresh_bars.num_rows
    ticks, bars = fresh_ticks, fresh_bars

    # One code per symbol across ticks, bars and resets.
    names: dict[str, int] = {}
    for col in (ticks.column("symbol"), bars.column("symbol")):
        for s in pc.unique(col).to_pylist():
            if s is not None:
                names.setdefault(s, len(names))
    reset_rows: dict[int, list[int]] = {}
    reset_ts: dict[int, list[float]] = {}
    for r in resets:
        for s in r["symbols"] or ():
            c = names.get(s)
            if c is not None and r["ts"] is not None:
                reset_rows.setdefault(c, []).append(r["row"])
                reset_ts.setdefault(c, []).append(r["ts"])
                out.resets += 1
    by_name = list(names)
    plans = {s: SymbolPlan() for s in by_name}
    pieces: dict[tuple[int, int], list[tuple[int, npt.NDArray[np.float64]]]] = {}

    if ticks.num_rows:
        code = _codes(ticks.column("symbol"), names)
        num = _numbers(ticks, ("ts", "price", "size"))
        rows = ticks.column("row").to_numpy()
        df = pd.DataFrame(
            {
                "code": code,
                "seg": _segments(rows, code, reset_rows),
                "sec": num["ts"] - num["ts"] % _SECOND,
                "price": num["price"],
                "size": np.nan_to_num(num["size"], nan=0.0),
            }
        )
        # The quote's day (as the book counts it: late trades too) of each symbol's last trade.
        day = num["ts"] - num["ts"] % INTERVALS["1d"]
        last_day = df.assign(day=day).groupby("code", sort=False)["day"].transform("last")
        today = df.assign(day=day)[day == last_day.to_numpy()].groupby("code", sort=False)
        day_stats = pd.DataFrame(
            {
                "t": today["day"].first(),
                "open": today["price"].first(),
                "high": today["price"].max(),
                "low": today["price"].min(),
                "close": today["price"].last(),
                "volume": today["size"].sum(),
            }
        )
        for c, values in zip(day_stats.index.tolist(), day_stats.to_numpy().tolist(), strict=True):
            t, o, h, low, close, v = values
            plans[by_name[c]].day = (t, o, h, low, close, v)
        # The live builder drops a trade older than its symbol's forming second: keep a trade
        # only when its second is the latest seen so far (within a reset segment).
        df = df[df["sec"] >= df.groupby(["code", "seg"], sort=False)["sec"].cummax()]
        out.ticks = len(df)
        # Within (code, seg) the seconds never decrease: a stable sort by (code, seg) orders the
        # rows by second too, and keeps recording order within a second (open/close).
        df = df.sort_values(["code", "seg"], kind="stable")
        g = df.groupby(["code", "seg", "sec"], sort=False)
        agg = pd.DataFrame(
            {
                "open": g["price"].first(),
                "high": g["price"].max(),
                "low": g["price"].min(),
                "close": g["price"].last(),
                "volume": g["size"].sum(),
            }
        ).reset_index()
        _split(agg.rename(columns={"sec": "t"}), 1_000, pieces)
        # The last tick of each symbol (recording order) makes its quote.
        last_rows = ticks.take(
            pa.array(
                pd.Series(np.arange(ticks.num_rows)).groupby(code, sort=False).last().to_numpy()
            )
        )
        for d in last_rows.to_pylist():
            plans[d["symbol"]].last = Tick(
                d["symbol"],
                d["price"],
                d["ts"],
                d["size"],
                d["bid"],
                d["ask"],
                d["volume"],
                d["prev_close"],
            )

    if bars.num_rows:
        code = _codes(bars.column("symbol"), names)
        num = _numbers(bars, ("ts", "open", "high", "low", "close", "volume"))
        widths = np.array(
            [INTERVALS.get(i or "", 0) for i in bars.column("interval").to_pylist()],
            dtype=np.int64,
        )
        df = pd.DataFrame(
            {
                "code": code,
                "seg": _segments(bars.column("row").to_numpy(), code, reset_rows),
                "width": widths,
                "t": num["ts"],
                "open": num["open"],
                "high": num["high"],
                "low": num["low"],
                "close": num["close"],
                "volume": np.nan_to_num(num["volume"], nan=0.0),
            }
        )
        df = df[df["width"] > 0]
        out.bars = len(df)
        for width in np.unique(df["width"].to_numpy()).tolist():
            part = df[df["width"] == width].drop(columns="width")
            _split(part, int(width), pieces)

    for c, name in enumerate(by_name):
        steps = plans[name].steps
        for seg in range(len(reset_ts.get(c, ())) + 1):
            if seg:
                steps.append((None, reset_ts[c][seg - 1]))
            parts = pieces.get((c, seg))
            if not parts:
                continue
            # Bars of one width in time order (a symbol's trades and its recorded 1 s bars are
            # one level); a second width is refused by the builder (counted as late).
            for width in sorted({w for w, _ in parts}):
                arr = np.concatenate([a for w, a in parts if w == width])
                steps.append((width, arr[np.argsort(arr[:, 0], kind="stable")]))
    out.symbols = {s: p for s, p in plans.items() if p.steps or p.last is not None}
    return out


def _codes(col: pa.ChunkedArray, names: dict[str, int]) -> npt.NDArray[np.int64]:
    """The symbol column as codes of ``names`` (vectorised: one lookup per distinct symbol)."""
    enc = col.combine_chunks().dictionary_encode()
    lookup = np.array([names[s] for s in enc.dictionary.to_pylist()], dtype=np.int64)
    out: npt.NDArray[np.int64] = lookup[enc.indices.to_numpy(zero_copy_only=False)]
    return out


def _split(
    frame: pd.DataFrame,
    width: int,
    pieces: dict[tuple[int, int], list[tuple[int, npt.NDArray[np.float64]]]],
) -> None:
    """Add ``frame``'s bars (columns code, seg, t o h l c v) to ``pieces`` per (symbol, segment).

    Within one (symbol, segment) several widths may come (a symbol's trades and its bars): they
    are merged in time order later by the builder's own rules (a width other than the first one
    is refused by it and counted as late)."""
    values = frame[_OHLCV].to_numpy(dtype=np.float64)
    keys = frame[["code", "seg"]].to_numpy(dtype=np.int64)
    if not len(keys):
        return
    cut = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(keys)]))
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        key = (int(keys[a, 0]), int(keys[a, 1]))
        pieces.setdefault(key, []).append((width, values[a:b]))


# Pure: applying


def apply(history: HistoryPlan, bars: BarBook, book: Book) -> int:
    """Feed ``history`` to ``bars`` and put each symbol's last quote in ``book``.

    Returns:
        the bars the builder refused (out of order, or of a width other than the symbol's).
    """
    late = 0
    for symbol, p in history.symbols.items():
        sb = bars.of(symbol)
        before = sb.late
        last_step = len(p.steps) - 1
        for i, (width, data) in enumerate(p.steps):
            if width is None:
                assert isinstance(data, float)
                sb.rewind(data)
                continue
            assert not isinstance(data, float)
            rows: list[Row] = list(map(tuple, data.tolist()))
            forming = None
            if i == last_step and width == _SECOND_MS and p.last is not None and rows:
                # A traded symbol's last second stays open, as it was: the next trade of that
                # second continues it, and it is not counted among the closed bars.
                forming = rows.pop()
            bar = sb.bar
            try:
                for r in rows:
                    bar(r, width)
            except IntervalError as exc:
                late += 1
                log.warning("history: %s: %s", symbol, exc)
            if forming is not None:
                t, o, h, low, c, v = forming
                for price, size in ((o, 0.0), (h, 0.0), (low, 0.0), (c, v)):
                    sb.trade(t, price, size)
        late += sb.late - before
        _quote(symbol, p, bars, book)
    return late


def _quote(symbol: str, p: SymbolPlan, bars: BarBook, book: Book) -> None:
    """The symbol's quote as the book would hold it: the day before's close (``prev_close``),
    the day's open, high, low and volume, then the last tick. Traded symbols take their day
    from their trades (:attr:`SymbolPlan.day`), the others from their ``1d`` bars."""
    try:
        days = bars.of(symbol).bars(INTERVALS["1d"], 3)
    except IntervalError:
        days = []
    last, today = p.last, p.day
    if last is not None and today is not None:
        days = [*[d for d in days if d[0] < today[0]][-1:], today]
    for t, o, h, low, c, v in days[-2:]:
        book.apply_bar(Bar(symbol, t, "1d", o, h, low, c, v))
    if last is None:
        return
    if today is not None:
        # The day's volume is counted already (the tick would add its size once more).
        vol = last.volume if last.volume is not None else today[5]
        last = Tick(
            symbol, last.price, last.ts, last.size, last.bid, last.ask, vol, last.prev_close
        )
    book.apply(last)


# I/O shell


def load_history(directory: Path, bars: BarBook, book: Book) -> HistoryReport:
    """Rebuild ``bars`` and ``book`` from the recordings in ``directory`` (blocking: run it in a
    thread). A missing directory is an empty history (``serve --history`` creates it, as it
    records there)."""
    started = time.perf_counter()
    report = HistoryReport(Path(directory))
    if not Path(directory).is_dir():
        return report
    table, report.files, report.skipped = read_recordings(Path(directory))
    retain_1d = int(bars.retain.get("1d", DEFAULT_RETAIN["1d"]))
    p = plan(table, retain_1d)
    report.late = apply(p, bars, book)
    report.ticks, report.bars, report.resets, report.old = p.ticks, p.bars, p.resets, p.old
    report.symbols = len(p.symbols)
    report.seconds = time.perf_counter() - started
    log.info(report.summary())
    return report

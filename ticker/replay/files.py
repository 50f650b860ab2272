"""I/O shell: reading replay data files into one tape, with a report of what was found.

Reads CSV (plain, gzipped, tab-separated), Parquet and recorder journals with pandas and pyarrow.
What a table means is the pure modules' work: :func:`~ticker.replay.normalise.table_layout` and
:func:`~ticker.replay.normalise.normalise` per table, then :func:`~ticker.replay.tape.concat`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ticker.core.bars import INTERVALS
from ticker.replay.columns import symbol_from_filename
from ticker.replay.errors import ReplayError
from ticker.replay.normalise import RowCounts, normalise, table_layout
from ticker.replay.tape import Tape, concat

__all__ = ["DATA_SUFFIXES", "LoadReport", "data_files", "load", "read_table"]

DATA_SUFFIXES = (
    ".csv",
    ".csv.gz",
    ".txt",
    ".txt.gz",
    ".tsv",
    ".tsv.gz",
    ".gz",
    ".parquet",
    ".pq",
    ".parq",
    ".arrows",
)
"""What a directory replay reads (``.arrows``: the recorder's journal of an unfinished segment)."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load found: sizes, layouts and the bad rows it skipped.

    Args:
        files: the files read.
        rows: the rows read.
        events: the events on the tape.
        layouts: the layouts found, each once, in file order.
        symbols: the symbols on the tape.
        bad: category (``bad time``, ``malformed``...) -> rows skipped; ``empty`` counts the
            empty cells of wide tables, which are not bad.
        ignored: the columns that played no part, each once.
        start: the market time of the first event (ms), None without events.
        end: the market time of the last event (ms), None without events.
        bars: interval name -> the bars of that interval among the events.
        adjusted: what was kept but changed -> rows (``floored to the interval``: bars moved to
            the start of their interval; ``merged``: bars merged into one that shares its start).
    """

    files: int
    rows: int
    events: int
    layouts: tuple[str, ...]
    symbols: int
    bad: Mapping[str, int]
    ignored: tuple[str, ...] = ()
    start: float | None = None
    end: float | None = None
    bars: Mapping[str, int] = field(default_factory=dict)
    adjusted: Mapping[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """The bad rows skipped (empty cells not counted)."""
        return sum(v for k, v in self.bad.items() if k != "empty")

    def summary(self) -> str:
        """One line for logs and the CLI."""

        def when(ms: float | None) -> str:
            if ms is None:
                return "-"
            return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%SZ")

        s = (
            f"replay: {self.files} file{'s' if self.files != 1 else ''} "
            f"({', '.join(self.layouts) or 'no data'}), {self.rows:,} rows -> "
            f"{self.events:,} events, {self.symbols:,} symbol{'s' if self.symbols != 1 else ''}"
        )
        if self.bars:
            kinds = ", ".join(f"{n:,} bars of {name}" for name, n in self.bars.items())
            s = s.replace(" events, ", f" events ({kinds}), ", 1)
        if self.events:
            s += f", {when(self.start)} .. {when(self.end)}"
        bad = {k: v for k, v in self.bad.items() if v}
        if bad:
            detail = ", ".join(f"{v:,} {k}" for k, v in sorted(bad.items()))
            s += f"; skipped {self.skipped:,} bad rows ({detail})"
        if self.adjusted:
            s += "; " + ", ".join(f"{v:,} {k}" for k, v in self.adjusted.items())
        if self.ignored:
            names = ", ".join(self.ignored[:4]) + (", ..." if len(self.ignored) > 4 else "")
            s += f"; ignored {len(self.ignored)} columns ({names})"
        return s


def data_files(path: Path) -> list[Path]:
    """The files a replay of ``path`` reads: the file itself, or a directory's data files.

    Args:
        path: a file or a directory.

    Returns:
        ``[path]`` for a file; a directory's data files (:data:`DATA_SUFFIXES`, not hidden) in
        name order, less any journal whose Parquet segment is beside it.

    Raises:
        ReplayError: missing, or a directory with no data files.
    """
    if not path.exists():
        raise ReplayError(f"no such file or directory: {path}")
    if not path.is_dir():
        return [path]
    try:
        entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from None
    files = [p for p in entries if p.name.lower().endswith(DATA_SUFFIXES)]
    # A journal beside its finished Parquet segment was already converted (crash mid-rotation).
    parquet = {p.name[: -len(".parquet")] for p in files if p.name.endswith(".parquet")}
    files = [
        p
        for p in files
        if not (p.name.endswith(".arrows") and p.name[: -len(".arrows")] in parquet)
    ]
    if not files:
        raise ReplayError(f"no data files (.csv, .csv.gz, .parquet) in {path}")
    return files


def read_table(path: Path, *, nrows: int | None = None) -> tuple[pd.DataFrame, int]:
    """Read one CSV (plain or gzipped), Parquet file or recorder journal.

    Args:
        path: the file; its name's suffix says its format.
        nrows: read only this many rows (None: all).

    Returns:
        The table, and how many malformed CSV lines (more fields than the header) were skipped.

    Raises:
        ReplayError: missing, unreadable, empty or not a table.
    """
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq", ".parq")):
            import pyarrow.parquet as pq

            if nrows is not None:
                with pq.ParquetFile(path) as pf:
                    first = next(pf.iter_batches(batch_size=nrows), None)
                    table = pf.schema_arrow.empty_table() if first is None else first
                return table.to_pandas(), 0
            return pq.read_table(path).to_pandas(), 0
        if name.endswith(".arrows"):
            from ticker.store.recorder import read_journal

            return read_journal(path).to_pandas(), 0
        return _read_csv(path, nrows)
    except ReplayError:
        raise
    except FileNotFoundError:
        raise ReplayError(f"no such file: {path}") from None
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReplayError(f"cannot read {path}: {reason}") from None
    except pd.errors.EmptyDataError:
        raise ReplayError(f"cannot read {path}: the file is empty") from None
    except Exception as exc:  # pyarrow and the CSV parser raise many types for a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReplayError(f"cannot read {path}: {first}") from None


def _read_csv(path: Path, nrows: int | None) -> tuple[pd.DataFrame, int]:
    """A CSV or TSV (gzipped or not) in UTF-8 or else Latin-1; (table, malformed lines)."""
    name = path.name.lower()
    sep = "\t" if ".tsv" in name else ","
    kw: dict[str, Any] = {
        "sep": sep,
        "nrows": nrows,
        "skipinitialspace": True,
        "compression": "infer",
    }
    for encoding in ("utf-8", "latin-1"):
        try:
            try:
                return pd.read_csv(path, encoding=encoding, **kw), 0
            except pd.errors.ParserError:
                # Lines with too many fields: the slow parser skips and counts them.
                bad: list[int] = []
                df = pd.read_csv(
                    path,
                    encoding=encoding,
                    engine="python",
                    on_bad_lines=lambda line, bad=bad: bad.append(len(line)),
                    **kw,
                )
                return df, len(bad)
        except UnicodeDecodeError:
            continue
    raise ReplayError(f"cannot read {path}: unknown text encoding")


def load(
    path: Path,
    *,
    columns: Mapping[str, str] | None = None,
    symbol: str | None = None,
    probe: bool = False,
    interval: str | None = None,
) -> tuple[Tape, LoadReport]:
    """Read ``path`` (a file or a directory of them) into one tape, bad rows skipped and counted.

    Args:
        path: a data file or a directory of data files (read in name order, merged by time).
        columns: role -> column overrides
            (:func:`~ticker.replay.columns.parse_columns_option`).
        symbol: the symbol for tables without a symbol column (default: from the file name).
        probe: read only the first rows of each file (a quick check of readability and layout).
        interval: the interval of bar files' rows (default: detected per symbol from their
            spacing).

    Returns:
        The tape, and the report of what was read and skipped.

    Raises:
        ReplayError: missing or unreadable file, or columns that cannot be detected.
    """
    files = data_files(path)
    tapes: list[Tape] = []
    counts = RowCounts()
    layouts: list[str] = []
    ignored: list[str] = []
    for f in files:
        df, malformed = read_table(f, nrows=200 if probe else None)
        counts.rows += malformed
        counts.add("malformed", malformed)
        df.columns = [str(c).strip() for c in df.columns]
        try:
            layout = table_layout(df, columns)
            tape = normalise(
                df,
                layout,
                symbol=symbol or symbol_from_filename(f.name),
                counts=counts,
                interval=interval,
            )
        except ReplayError as exc:
            raise ReplayError(f"{f}: {exc}") from None
        except Exception as exc:  # data we did not foresee: still one line, never a traceback
            raise ReplayError(f"{f}: cannot interpret: {type(exc).__name__}: {exc}") from exc
        layouts.append(layout.kind)
        ignored.extend(layout.ignored)
        tapes.append(tape)
    tape = concat(tapes, keep_order=bool(layouts) and set(layouts) == {"recording"})
    report = LoadReport(
        files=len(files),
        rows=counts.rows,
        events=len(tape),
        layouts=tuple(dict.fromkeys(layouts)),
        symbols=len(tape.symbols()),
        bad=dict(counts.bad),
        ignored=tuple(dict.fromkeys(ignored)),
        start=float(tape.clock[0]) if len(tape) else None,
        end=float(tape.clock[-1]) if len(tape) else None,
        bars={_NAMES[w]: n for w, n in tape.bar_counts().items()},
        adjusted=dict(counts.adjusted),
    )
    return tape, report


_NAMES = {w: name for name, w in INTERVALS.items()}

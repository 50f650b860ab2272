"""Recording: every ingested event -> Parquet segments in a directory, rotated, crash-safe.

I/O shell around :func:`events_to_table` (pure; the values come from ticker.core.codec). The event
loop only appends each event to a list (:meth:`Recorder.record`, one ``list.append``); every
``flush_interval`` (0.5 s) that list is handed to a writer thread, which converts it to Arrow and
appends it to the open segment's *journal*, an Arrow IPC stream (``NAME.arrows``), flushed to the
OS after every batch. When the segment reaches ``rotate_bytes`` or ``rotate_seconds`` (and on
close) the journal becomes ``NAME.parquet``: written to ``NAME.parquet.tmp``, fsynced, renamed into
place, then the journal is deleted.

So a ``kill -9`` loses at most the events of the last half second (the batch not yet handed over),
every ``.parquet`` file is complete (a rename is atomic), and the journal of the interrupted segment
is readable up to its last whole batch: the next recorder on the directory (or :func:`recover`)
turns it into Parquet, and a replay reads it as it is. One recorder per directory (a lock file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ticker.core.codec import FIELD_TYPES, ValueType, events_to_columns
from ticker.core.events import Event

__all__ = ["SCHEMA", "Recorder", "RecorderError", "events_to_table", "read_journal", "recover"]

log = logging.getLogger("ticker.recorder")

# A recording's columns, in file order: the order is part of the format (a journal left by a
# killed recorder is read back into this schema), so a new field is appended, never inserted.
# Every field of every event kind has one (tests/test_codec.py).
_COLUMNS = (
    "kind",  # "tick", "news", "listing", "bar" or "reset"
    "ts",  # event time at the source, epoch ms
    "symbol",
    "price",
    "size",
    "bid",
    "ask",
    "volume",
    "prev_close",
    "headline",
    "source",
    "url",
    "summary",
    "symbols",  # news tags; a listing's or a reset's symbols
    "interval",  # a bar's (its ts is its open time, its volume the bar's own)
    "open",
    "high",
    "low",
    "close",
)
_ARROW: dict[ValueType, pa.DataType] = {
    "str": pa.string(),
    "float": pa.float64(),
    "symbols": pa.list_(pa.string()),
}

SCHEMA = pa.schema([(c, _ARROW[FIELD_TYPES[c]] if c != "kind" else pa.string()) for c in _COLUMNS])
"""Columns of a recording: each event field, typed by its value type (ticker.core.codec), and the
kind. Ticks leave the news columns null and the other way round."""


class RecorderError(Exception):
    """The recording directory cannot be used (not writable, or another recorder holds it)."""


def events_to_table(events: Sequence[Event]) -> pa.Table:
    """Events -> an Arrow table in :data:`SCHEMA`, in the same order. Pure.

    Rows read back with :func:`ticker.core.codec.event_from_dict` are the events again, less
    ``News.id`` (the service's, not the item's: a replay assigns new ones).

    Raises:
        TypeError: one of ``events`` is not an event.
    """
    return pa.table(events_to_columns(events, SCHEMA.names), schema=SCHEMA)


def read_journal(path: Path) -> pa.Table:
    """Every whole batch of a journal (``.arrows``), ignoring a torn last one. I/O shell."""
    batches: list[pa.RecordBatch] = []
    with path.open("rb") as f:
        try:
            reader = pa.ipc.open_stream(f)
        except (pa.ArrowInvalid, OSError):
            return SCHEMA.empty_table()  # killed before the first batch reached the disk
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):
                break  # a torn tail: the process died mid-write
    return pa.Table.from_batches(batches, schema=SCHEMA)


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_parquet(table: pa.Table, dest: Path) -> None:
    """Write ``table`` to ``dest`` atomically: a complete file appears, or none."""
    tmp = dest.with_name(dest.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def recover(directory: Path) -> list[Path]:
    """Turn journals left by a killed recorder into Parquet; returns the files written. I/O shell.

    A journal whose Parquet already exists (the kill came between rename and delete) is removed,
    and so are stale ``.parquet.tmp`` files. Empty journals are removed without a file.
    """
    written: list[Path] = []
    for tmp in sorted(directory.glob("*.parquet.tmp")):
        tmp.unlink(missing_ok=True)
    for journal in sorted(directory.glob("*.arrows")):
        dest = journal.with_suffix(".parquet")
        if not dest.exists():
            table = read_journal(journal)
            if table.num_rows:
                _write_parquet(table, dest)
                written.append(dest)
                log.info("recovered %d events from %s", table.num_rows, journal.name)
        journal.unlink(missing_ok=True)
    return written


class _Segment:
    """The open segment: a journal being appended to (writer thread only)."""

    def __init__(self, path: Path) -> None:
        self.path = path  # NAME.arrows
        self.file: IO[bytes] = path.open("wb")
        self.writer = pa.ipc.new_stream(self.file, SCHEMA)
        self.opened = time.monotonic()
        self.rows = 0

    def append(self, table: pa.Table) -> None:
        self.writer.write_table(table)
        self.file.flush()
        self.rows += table.num_rows

    def size(self) -> int:
        return self.file.tell()

    def finish(self) -> Path | None:
        """Close the journal and turn it into Parquet; the Parquet path (None when empty)."""
        self.writer.close()
        self.file.close()
        dest = self.path.with_suffix(".parquet")
        if self.rows:
            _write_parquet(read_journal(self.path), dest)
        self.path.unlink(missing_ok=True)
        return dest if self.rows else None


class Recorder:
    """Records events to Parquet segments in ``directory``.

    Args:
        directory: where segments go (created if needed).
        rotate_bytes: start a new segment after this many bytes of journal.
        rotate_seconds: start a new segment after this long.
        flush_interval: how often the loop hands its batch to the writer (seconds); a kill -9
            loses at most this much.
        max_batch: hand over early when this many events are waiting (bounds memory).
        prefix: file names are ``PREFIX-YYYYmmddTHHMMSSZ-NNNN.parquet``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        rotate_bytes: int = 64 << 20,
        rotate_seconds: float = 3600.0,
        flush_interval: float = 0.5,
        max_batch: int = 100_000,
        prefix: str = "ticker",
    ) -> None:
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.prefix = prefix
        self.recorded = 0  # events handed to the writer
        self.written = 0  # events in journals or Parquet
        self.files: list[Path] = []  # finished segments
        self.errors = 0
        self.last_error: str | None = None
        self._pending: list[Event] = []
        self._queue: queue.SimpleQueue[list[Event] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: IO[bytes] | None = None
        self._segment: _Segment | None = None
        self._seq = 0

    # Public API

    def open(self) -> None:
        """Lock the directory, recover what a killed recorder left, start the writer thread.

        Idempotent: the CLI opens early (to fail before serving), the server's start finds it open.

        Raises:
            RecorderError: the directory is not writable or another recorder holds it.
        """
        if self._thread is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = (self.directory / ".recorder.lock").open("wb")
        except OSError as exc:
            raise RecorderError(
                f"cannot record to {self.directory}: {exc.strerror or exc}"
            ) from None
        try:
            import fcntl

            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        except OSError:
            self._lock.close()
            self._lock = None
            raise RecorderError(
                f"cannot record to {self.directory}: another recorder is using it"
            ) from None
        recover(self.directory)
        self._thread = threading.Thread(
            target=self._write_loop, name="ticker-recorder", daemon=True
        )
        self._thread.start()

    async def start(self) -> None:
        """:meth:`open`, then hand batches over every ``flush_interval`` on the running loop."""
        if self._thread is None:
            await asyncio.to_thread(self.open)
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(self.flush_interval, self._tick)

    def record(self, ev: Event) -> None:
        """Take one event (on the event loop; never blocks)."""
        pending = self._pending
        pending.append(ev)
        if len(pending) >= self.max_batch:
            self.flush()

    def flush(self) -> None:
        """Hand what is waiting to the writer thread now."""
        if self._pending:
            batch, self._pending = self._pending, []
            self.recorded += len(batch)
            self._queue.put(batch)

    def close(self) -> None:
        """Hand over the last batch, finish the open segment and stop the writer (blocking)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def aclose(self) -> None:
        """:meth:`close` without blocking the loop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        await asyncio.to_thread(self.close)

    def health(self) -> dict[str, Any]:
        """For ``/healthz``."""
        return {
            "dir": str(self.directory),
            "recorded": self.recorded + len(self._pending),
            "written": self.written,
            "files": len(self.files),
            "errors": self.errors,
            "last_error": self.last_error,
        }

    # Event loop side

    def _tick(self) -> None:
        self.flush()
        assert self._loop is not None
        self._timer = self._loop.call_later(self.flush_interval, self._tick)

    # Writer thread

    def _write_loop(self) -> None:
        wait = min(1.0, self.rotate_seconds)
        while True:
            try:
                batch = self._queue.get(timeout=wait)
            except queue.Empty:
                batch = []
            if batch is None:
                self._guard(self._finish_segment)
                return
            if batch:
                self._guard(lambda b=batch: self._append(b))
            seg = self._segment
            if seg is not None and (
                seg.size() >= self.rotate_bytes
                or time.monotonic() - seg.opened >= self.rotate_seconds
            ):
                self._guard(self._finish_segment)

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # disk full, permissions: keep recording what we can
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.error("recorder: %s", self.last_error)
            self._segment = None

    def _append(self, batch: list[Event]) -> None:
        table = events_to_table(batch)
        if self._segment is None:
            self._seq += 1
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            name = f"{self.prefix}-{stamp}-{os.getpid()}-{self._seq:04d}.arrows"
            self._segment = _Segment(self.directory / name)
        self._segment.append(table)
        self.written += table.num_rows

    def _finish_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is not None:
            done = seg.finish()
            if done is not None:
                self.files.append(done)
                log.info("recorded %s (%d events)", done.name, seg.rows)

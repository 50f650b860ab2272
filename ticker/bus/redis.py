"""Redis Streams backplane: many ``ticker serve`` processes share one Redis.

I/O shell around ``redis.asyncio``. Two sides, either or both per process (``--role``):

* **ingest** (``role`` ``ingest`` or ``all``): :meth:`RedisBus.publish` only appends to a local
  buffer (feeds never await). A writer task drains it in pipelined batches: ``XADD`` with an
  approximate ``MAXLEN`` to ``{prefix}:ticks`` and ``{prefix}:news``, and one ``HSET`` per batch
  of the latest quote of each symbol that ticked to ``{prefix}:quotes`` (the snapshot a new edge
  starts from); events are encoded by :mod:`ticker.core.codec`. News ids are assigned inside
  Redis by a Lua script (:data:`NEWS_SCRIPT`: the rule of
  :func:`ticker.core.news_id.next_news_id`, as the hub's), so every node sees the same, strictly
  increasing id, and the stream holds news in id order even with several writers. With several
  ingest nodes, only the holder of the ``{prefix}:lease`` key (``SET NX PX``, renewed) writes;
  the others keep their local book up to date and take over within the lease time when the
  holder dies.
* **edge** (``role`` ``edge`` or ``all``): a reader task loads the symbol set, the quote hash
  and the retained news, then ``XREAD BLOCK``s on both streams in batches and hands each event
  to the local hub, news with its service id.

Redis down or restarted: nothing raises into feeds or clients. Both tasks retry with backoff and
report ``retrying`` in :meth:`RedisBus.health`; the writer keeps buffering (ticks are bounded,
news is kept) and rewrites the whole quote hash when it is back; the reader reloads the quote
hash and calls ``on_resync`` so every client gets a fresh snapshot.

Over 500 lines on purpose: one class, whose two sides share their connections, retry and failure
reporting, counters and ``health()``; apart, each would reach into the other's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import random
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis

from ticker.aio import retrieve
from ticker.core.backoff import backoff_delay
from ticker.core.bars import DEFAULT_RETAIN, INTERVALS, BarBook, Row, SymbolBars
from ticker.core.book import Book
from ticker.core.codec import TICK, decode_event, encode_event
from ticker.core.events import Bar, Event, Listing, News, Reset, Tick
from ticker.core.news_id import news_id_floor
from ticker.core.roles import check_role, ingests, serves

__all__ = [
    "BUS_OPTIONS",
    "NEWS_SCRIPT",
    "SKIP_GAP_S",
    "RedisBus",
    "decode_bar_head",
    "far_behind",
    "max_lag_ms",
    "news_key",
    "split_options",
    "split_url",
]

log = logging.getLogger("ticker.redisbus")

NEWS_SCRIPT = """
local seen = redis.call('GET', KEYS[3])
if seen then return tonumber(seen) end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local nid = math.max(cur + 1, tonumber(ARGV[1]))
local sid = string.format('%d', nid)
redis.call('SET', KEYS[1], sid)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', sid, 'e', ARGV[3])
redis.call('SET', KEYS[3], sid, 'EX', ARGV[4])
return nid
"""
"""Lua: assign a news item its id and append it to the news stream, in one step inside Redis.

KEYS: the id counter, the news stream, the item's dedupe key. ARGV: the floor id
(:func:`~ticker.core.news_id.news_id_floor` of now), the stream's maxlen, the encoded item, the
dedupe ttl in seconds. Returns the item's id: a new one by
:func:`~ticker.core.news_id.next_news_id` (``max(last + 1, floor)``; tests/test_news_id.py checks
the two agree), or the one it already has when the same item was written before (a pipeline
retried after failing partway, or a standby re-sending at takeover).
"""

# KEYS: lease. ARGV: owner, ttl ms. Renews only a lease we still hold.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: owner. Gives up a lease we hold (clean shutdown: the standby takes over now).
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Pure helpers


def news_key(data: bytes) -> str:
    """Pure; no I/O. The identity of an encoded news item (its content, not its id): the same
    headline, time, source, symbols, url and summary from any node is the same item."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


BUS_OPTIONS: dict[str, str] = {"prefix": "ticker", "max_lag_s": "5"}
"""The bus URL's query parameters that are Ticker's (not redis-py's), with their defaults."""


def split_options(url: str) -> tuple[str, dict[str, str]]:
    """Pure; no I/O. ``redis://h:p/0?prefix=x&max_lag_s=2`` -> (``redis://h:p/0``,
    ``{"prefix": "x", "max_lag_s": "2"}``): Ticker's options (:data:`BUS_OPTIONS`, defaults
    filled in) out of the URL, the rest of it for redis-py unchanged (password, db, TLS)."""
    parts = urlsplit(url)
    options = dict(BUS_OPTIONS)
    rest = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in options:
            options[k] = v
        else:
            rest.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def split_url(url: str) -> tuple[str, str]:
    """Pure; no I/O. ``redis://h:p/0?prefix=x`` -> (``redis://h:p/0``, ``x``).

    ``prefix`` (default ``ticker``) names this service's keys, so several services (or tests)
    can share one Redis; the rest of the URL goes to redis-py unchanged (password, db, TLS).
    """
    rest, options = split_options(url)
    return rest, options["prefix"]


def max_lag_ms(url: str) -> float:
    """Pure. The bus URL's ``max_lag_s`` in ms (0: never skip).

    Raises:
        ValueError: not a number of seconds >= 0.
    """
    given = split_options(url)[1]["max_lag_s"]
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise ValueError(f"bus URL: max_lag_s must be a number of seconds >= 0, got {given!r}")
    return seconds * 1000.0


SKIP_GAP_S = 30.0
"""An edge skips to the end of the ticks stream at most this often: a skip loads every bar from
Redis, which an edge behind because it is overloaded can afford now and then, not in a loop."""


def far_behind(
    lag_ms: float, read: int, batch: int, max_lag_ms: float, since_skip_s: float = math.inf
) -> bool:
    """Pure. Whether an edge should skip to the end of the ticks stream: the last entry it read
    is more than ``max_lag_ms`` old, the read was a full ``batch`` (more is waiting), and its
    last skip was :data:`SKIP_GAP_S` or more ago. Reading on would serve quotes that old until it
    caught up, if it ever does (an overloaded edge falls further behind). 0 = never."""
    return max_lag_ms > 0 and read >= batch and lag_ms > max_lag_ms and since_skip_s >= SKIP_GAP_S


def _quote_tick(q: dict[str, Any]) -> Tick:
    """The latest state of a book quote as one tick (what a new edge starts from): the quote's
    tick fields (its statistics are the edge's to compute)."""
    return TICK.from_dict(q)


def _entry_ms(eid: bytes) -> int:
    return int(eid.split(b"-", 1)[0])


def _symbols_of(events: Sequence[Event]) -> dict[str, None]:
    out: dict[str, None] = {}
    for ev in events:
        if type(ev) is Tick or type(ev) is Bar:
            out[ev.symbol] = None
        elif type(ev) is Reset:
            out.update(dict.fromkeys(ev.symbols))
    return out


_ROW = struct.Struct("<6d")  # a bar in a sorted set: t o h l c v, 48 bytes (t keeps it unique)
_NAMES = tuple(INTERVALS)
_WIDTHS = tuple(INTERVALS.values())

BarHead = tuple[int | None, Row | None, list[Row | None]]


def decode_bar_head(data: bytes) -> BarHead:
    """Pure; no I/O. A ``{prefix}:bars:head`` value -> :meth:`SymbolBars.state` (JSON
    ``[finest, forming, [partial, ...]]``, each bar a list of six numbers or null)."""
    finest, forming, partial = orjson.loads(data)

    def row(r: list[float] | None) -> Row | None:
        return None if r is None else (r[0], r[1], r[2], r[3], r[4], r[5])

    return finest, row(forming), [row(p) for p in partial]


class RedisBus:
    """I/O shell: publishes events to Redis Streams and/or feeds a hub from them.

    Args:
        url: ``redis://``/``rediss://`` URL, optionally with ``?prefix=NAME``.
        sink: where edge events go (``Hub.publish``).
        role: ``all``, ``ingest`` (write only) or ``edge`` (read only).
        on_resync: called after the reader reconnected and reloaded the snapshot
            (``Hub.resync_all``).
        ticks_maxlen: approximate length the ticks stream is trimmed to.
        news_maxlen: approximate length the news stream is trimmed to; also how many items an
            edge loads at start.
        lease_ms: ingest lease time; a standby takes over within about this plus a third.
        block_ms: XREAD BLOCK time.
        batch: most entries per XREAD and per write pipeline.
        max_buffer: ticks buffered while Redis is away; beyond, new ticks are dropped (the quote
            hash is rewritten on reconnect, so the snapshot stays whole). News is never dropped.
        news_dedupe_s: how long Redis remembers a written news item (``{prefix}:news_seen:*``),
            so writing it again (a retried pipeline, a takeover) keeps its one id.
        takeover_news_s: a standby keeps the news it saw this long (default two leases and a
            second) and writes it when it takes over, so items the dead holder never wrote are
            not lost; items it did write keep their id (``news_dedupe_s``).
        bars: the hub's bars (edge side): loaded from Redis at start, so an edge started late
            serves the bars of one that ran from the start. Its retention is also the one the
            ingest side keeps in Redis (default :data:`~ticker.core.bars.DEFAULT_RETAIN`).

    The URL's ``max_lag_s`` (default 5; 0 = never): an edge whose reading of the ticks stream
    falls further behind than that (:func:`far_behind`) skips to its end, at most every
    :data:`SKIP_GAP_S`: it loads bars, symbols and quotes as at start and every client gets a
    fresh snapshot (``skips``). News is never skipped.

    Raises:
        ValueError: a bad role, or a ``max_lag_s`` that is not a number >= 0.
    """

    def __init__(
        self,
        url: str,
        sink: Callable[[Event], None],
        *,
        role: str = "all",
        on_resync: Callable[[], object] | None = None,
        ticks_maxlen: int = 100_000,
        news_maxlen: int = 10_000,
        lease_ms: int = 3_000,
        block_ms: int = 1_000,
        batch: int = 1_000,
        max_buffer: int = 100_000,
        news_dedupe_s: int = 86_400,
        takeover_news_s: float | None = None,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        bars: BarBook | None = None,
    ) -> None:
        self.role = check_role(role)
        self.url, options = split_options(url)
        self.prefix = options["prefix"]
        self.max_lag_ms = max_lag_ms(url)
        self._skipped_at = -math.inf  # (time.monotonic() of the last skip)
        self.sink = sink
        self.on_resync = on_resync
        self.ticks_maxlen = ticks_maxlen
        self.news_maxlen = news_maxlen
        self.lease_ms = lease_ms
        self.block_ms = block_ms
        self.batch = batch
        self.max_buffer = max_buffer
        self.news_dedupe_s = news_dedupe_s
        # The holder may die with up to a lease of unwritten news, and the standby takes over
        # within a lease and a third: news older than that was written (or is recognised).
        self.takeover_news_s = (
            2 * lease_ms / 1000.0 + 1.0 if takeover_news_s is None else takeover_news_s
        )
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        p = self.prefix
        self.k_ticks = f"{p}:ticks"
        self.k_news = f"{p}:news"
        self.k_quotes = f"{p}:quotes"
        self.k_symbols = f"{p}:symbols"
        self.k_news_id = f"{p}:news_id"
        self.k_lease = f"{p}:lease"
        self.k_seen = f"{p}:news_seen:"
        self.k_bar_head = f"{p}:bars:head"
        self.bars = bars
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ingest = ingests(role)
        self.edge = serves(role)
        self.rng = random.Random()
        # Ingest side
        self.book = Book()
        self._buf: deque[Event] = deque()
        self._buffered_ticks = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self.leader = False
        self._full_sync = True
        self.writer_state = "starting" if self.ingest else "off"
        self._recent_news: deque[tuple[float, News]] = deque(maxlen=news_maxlen)
        # The bars as of what was written (the leader applies a batch as it writes it, so the
        # state in Redis always matches the stream's last entry); a standby applies at once.
        self.bar_book = BarBook(dict(DEFAULT_RETAIN) if bars is None else bars.retain)
        self._bars_ahead = 0  # events at the front of _buf applied to bar_book already
        self._bar_marks: dict[str, list[float]] = {}  # per symbol and level: last t written
        self._bar_touched: dict[str, None] = {}  # symbols whose bars changed since written
        self._bar_cuts: dict[str, float] = {}  # symbols rewound since written: earliest t
        retain = self.bar_book.retain
        self._bar_retain = [max(1, int(retain.get(n, DEFAULT_RETAIN[n]))) for n in _NAMES]
        self._bars_synced = False
        self._bar_counts = (0, 0)  # bars and heads queued by the last _queue_bars
        self._write_lock = asyncio.Lock()  # the writer's and post()'s transactions, in order
        # Edge side
        self.reader_state = "starting" if self.edge else "off"
        self._loaded = asyncio.Event()
        self._ids: dict[bytes, bytes] = {}
        self.news_last_id = 0
        self.lag_ms: int | None = None
        self.last_read_at: float | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "published",
                "posted",
                "written",
                "news_written",
                "dropped",
                "standby_discarded",
                "read",
                "news_read",
                "write_errors",
                "read_errors",
                "lease_errors",
                "reconnects",
                "resyncs",
                "skips",
                "takeovers",
                "takeover_news",
                "bars_written",
                "bar_heads_written",
            ),
            0,
        )
        self.last_error: str | None = None
        # Operations failing now: their first failure is a warning, repeats are debug, until
        # they work again (an outage is a few lines, not one per retry).
        self._failing: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[aioredis.Redis] = []
        self._poster: aioredis.Redis | None = None

    # Public API

    def publish(self, ev: Event) -> None:
        """Take one event from a feed (ingest side). Never awaits, never raises for Redis."""
        c = self.counters
        c["published"] += 1
        if type(ev) is Tick:
            self.book.apply(ev)
        elif type(ev) is Listing:
            self.book.declare(ev.symbols)
        elif type(ev) is Bar:
            self.book.apply_bar(ev)
        elif type(ev) is Reset:
            self.book.restart(ev.symbols)
        if not self.leader:
            self._apply_bars(ev)
            # Standby: the holder publishes; our book is kept for the takeover snapshot, and
            # recent news for the takeover too (what the holder had not written when it died
            # goes out then; what it had is recognised by Redis as the same item).
            c["standby_discarded"] += 1
            if type(ev) is News:
                self._recent_news.append((time.monotonic(), ev))
            return
        if type(ev) is Tick:
            if self._buffered_ticks >= self.max_buffer:
                c["dropped"] += 1
                return
            self._buffered_ticks += 1
        self._buf.append(ev)
        if len(self._buf) == 1:
            self._wake.set()

    async def start(self, load_timeout: float = 3.0) -> None:
        """Start the tasks; an edge waits up to ``load_timeout`` s for the first snapshot."""
        loop = asyncio.get_running_loop()
        if self.ingest:
            self._tasks.append(loop.create_task(self._lease_loop(), name="redisbus:lease"))
            self._tasks.append(loop.create_task(self._write_loop(), name="redisbus:writer"))
        if self.edge:
            self._tasks.append(loop.create_task(self._read_loop(), name="redisbus:reader"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._loaded.wait(), load_timeout)

    async def stop(self, flush_timeout: float = 1.0) -> None:
        """Flush what is buffered (briefly), release the lease, stop the tasks."""
        if self.ingest and self.leader and self._buf:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), flush_timeout)
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            # Bounded: a task stuck in a Redis call that ignores the cancel must not hold the
            # process (a stop that never ends is killed, and its recording is lost with it).
            done, pending = await asyncio.wait(self._tasks, timeout=2.0)
            for t in done:
                retrieve(t)  # (it ended the way it ended: the bus is stopping)
            for t in pending:
                t.add_done_callback(retrieve)  # given up on
        if self.ingest and self.leader:
            with contextlib.suppress(Exception):
                r = self._client()
                await asyncio.wait_for(r.eval(_RELEASE_LUA, 1, self.k_lease, self.owner), 1.0)
        for r in self._clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(r.aclose(), 1.0)

    def health(self) -> dict[str, Any]:
        states = [s for s in (self.writer_state, self.reader_state) if s != "off"]
        if "retrying" in states:
            state = "retrying"
        elif all(s in ("up", "standby") for s in states):
            state = "up"
        else:
            state = "down"
        age = None if self.last_read_at is None else round(time.time() - self.last_read_at, 3)
        return {
            "kind": "redis",
            "state": state,
            "role": self.role,
            "prefix": self.prefix,
            "writer": self.writer_state,
            "reader": self.reader_state,
            "leader": self.leader if self.ingest else None,
            "buffered": len(self._buf),
            "lag_ms": self.lag_ms,
            "last_read_age_s": age,
            "news_last_id": self.news_last_id,
            "last_error": self.last_error,
            **self.counters,
        }

    async def post(self, events: Sequence[Event]) -> list[int]:
        """Write events from an external producer (``POST /api/ticks``, ``/api/news``) to Redis
        now, in one MULTI/EXEC transaction: all or nothing, whatever this node's role or lease.

        A feed's events reach every ingest node, so only the lease holder writes them; a posted
        event reaches this node only, so this node writes it. The quote hash gets the new quotes
        of the posted symbols (folded into this node's book once written).

        Returns:
            the service ids Redis gave the news items among ``events``, in order.

        Raises:
            Exception: Redis could not be reached or refused; nothing was written.
        """
        if self._poster is None:
            self._poster = self._client()
        r = self._poster
        news = r.register_script(NEWS_SCRIPT)
        async with self._write_lock:
            pipe = r.pipeline(transaction=True)
            scratch = Book()
            slots: list[int] = []
            n = 0
            for ev in events:
                data = encode_event(ev)
                if type(ev) is News:
                    # The same item posted again (a producer retrying) keeps its one id.
                    await self._queue_news(news, pipe, data)
                    slots.append(n)
                    n += 1
                    continue
                pipe.xadd(self.k_ticks, {"e": data}, maxlen=self.ticks_maxlen, approximate=True)
                n += 1
                if type(ev) is Tick or type(ev) is Bar:
                    if ev.symbol not in scratch.quotes and ev.symbol in self.book.quotes:
                        scratch.quotes[ev.symbol] = dict(self.book.quotes[ev.symbol])
                    if type(ev) is Tick:
                        scratch.apply(ev)
                    elif type(ev) is Bar:
                        scratch.apply_bar(ev)
                elif type(ev) is Listing and ev.symbols:
                    pipe.sadd(self.k_symbols, *ev.symbols)
                    n += 1
            if scratch.quotes:
                latest = {s: encode_event(_quote_tick(q)) for s, q in scratch.quotes.items()}
                pipe.hset(self.k_quotes, mapping=latest)  # type: ignore[arg-type]
            # The bars as of these events, in the same transaction (the writer's take turns
            # with it: the state in Redis matches the stream's end). Undone below if it fails.
            before = {s: self._bar_snapshot(s) for s in _symbols_of(events)}
            for ev in events:
                self._apply_bars(ev)
            marks = self._queue_bars(pipe, list(self._bar_touched))
            try:
                results = await pipe.execute()
            except BaseException:
                for s, snap in before.items():
                    self._bar_restore(s, snap)
                raise
            self._bars_written(marks)
        for ev in events:  # into this node's book too (an ingest node's full sync rewrites it)
            if type(ev) is Tick:
                self.book.apply(ev)
            elif type(ev) is Listing:
                self.book.declare(ev.symbols)
            elif type(ev) is Bar:
                self.book.apply_bar(ev)
            elif type(ev) is Reset:
                self.book.restart(ev.symbols)
        self.counters["posted"] += len(events)
        return [int(results[i]) for i in slots]

    # Bars: the ingest side keeps the bars of what it wrote in Redis, the edge starts from them

    def bar_key(self, symbol: str, interval: str) -> str:
        """The sorted set of ``symbol``'s closed ``interval`` bars (score: the bar's ``t``)."""
        return f"{self.prefix}:bars:{symbol}:{interval}"

    def _apply_bars(self, ev: Event) -> None:
        """One event into the ingest side's bars (as the hub applies it)."""
        book = self.bar_book
        if type(ev) is Tick:
            book.of(ev.symbol).trade(ev.ts, ev.price, ev.size or 0.0)
            self._bar_touched[ev.symbol] = None
        elif type(ev) is Bar:
            row = (ev.ts, ev.open, ev.high, ev.low, ev.close, ev.volume)
            with contextlib.suppress(ValueError):  # IntervalError: the hub refuses it too
                book.of(ev.symbol).bar(row, INTERVALS[ev.interval])
            self._bar_touched[ev.symbol] = None
        elif type(ev) is Reset:
            book.rewind(ev.symbols, ev.ts)
            for sym in ev.symbols:
                self._bar_touched[sym] = None
                self._bar_cuts[sym] = min(self._bar_cuts.get(sym, ev.ts), ev.ts)

    def _queue_bars(self, pipe: Any, symbols: Sequence[str]) -> dict[str, list[float]]:
        """Queue on ``pipe`` what changed in the bars of ``symbols`` since last written: a
        rewind's cut, the bars closed since (each set trimmed to the retention), the head.

        Returns:
            the marks (last ``t`` written per level) to keep once ``pipe`` succeeded.
        """
        marks: dict[str, list[float]] = {}
        heads: dict[str, bytes] = {}
        n = 0
        for sym in symbols:
            sb = self.bar_book.symbols.get(sym)
            if sb is None or sb.finest is None:
                continue
            mark = list(self._bar_marks.get(sym) or [-math.inf] * len(_WIDTHS))
            cut = self._bar_cuts.get(sym)
            for level in range(sb.finest, len(_WIDTHS)):
                width, key = _WIDTHS[level], self.bar_key(sym, _NAMES[level])
                if cut is not None:
                    bucket = cut - cut % width
                    pipe.zremrangebyscore(key, bucket, "+inf")
                    mark[level] = min(mark[level], bucket - width)
                new = sb.closed(width, mark[level] + width)
                if new:
                    pipe.zadd(key, {_ROW.pack(*row): row[0] for row in new})
                    pipe.zremrangebyrank(key, 0, -self._bar_retain[level] - 1)
                    mark[level] = new[-1][0]
                    n += len(new)
            marks[sym] = mark
            heads[sym] = orjson.dumps(sb.state())
        if heads:
            pipe.hset(self.k_bar_head, mapping=heads)
        self._bar_counts = (n, len(heads))
        return marks

    def _bars_written(self, marks: dict[str, list[float]]) -> None:
        """The transaction of :meth:`_queue_bars` succeeded."""
        self._bar_marks.update(marks)
        self._bar_touched.clear()
        self._bar_cuts.clear()
        n, heads = self._bar_counts
        self.counters["bars_written"] += n
        self.counters["bar_heads_written"] += heads

    def _bar_snapshot(self, symbol: str) -> tuple[BarHead, dict[int, list[Row]]] | None:
        sb = self.bar_book.symbols.get(symbol)
        if sb is None:
            return None
        return sb.state(), {w: sb.closed(w, -math.inf) for w in _WIDTHS}

    def _bar_restore(self, symbol: str, snap: tuple[BarHead, dict[int, list[Row]]] | None) -> None:
        if snap is None:
            self.bar_book.symbols.pop(symbol, None)
        else:
            self.bar_book.of(symbol).restore(*snap)

    async def _read_bars(
        self, r: aioredis.Redis, snapshot: bool
    ) -> tuple[bytes, dict[str, SymbolBars], Any, Any]:
        """The bars in Redis and the ticks stream's last entry id, in one transaction (so the
        stream after that id is exactly what the bars do not hold yet); with ``snapshot`` the
        symbol set and the quote hash too. Returns (id, bars per symbol, symbols, quotes)."""
        keys: list[bytes] = await r.hkeys(self.k_bar_head)  # type: ignore[assignment]
        names = sorted(k.decode() for k in keys)
        while True:
            pipe = r.pipeline(transaction=True)
            pipe.xrevrange(self.k_ticks, count=1)
            pipe.hgetall(self.k_bar_head)
            if snapshot:
                pipe.smembers(self.k_symbols)
                pipe.hgetall(self.k_quotes)
            for sym in names:
                for name in _NAMES:
                    pipe.zrange(self.bar_key(sym, name), 0, -1)
            res: list[Any] = await pipe.execute()
            heads = {k.decode(): v for k, v in res[1].items()}
            if set(heads) <= set(names):  # else a symbol appeared meanwhile: read again
                break
            names = sorted(heads)
        last, rest = res[0], res[4 if snapshot else 2 :]
        out: dict[str, SymbolBars] = {}
        retain = self.bar_book.retain if self.bars is None else self.bars.retain
        scratch = BarBook(retain)
        for i, sym in enumerate(names):
            head = heads.get(sym)
            if head is None:
                continue
            closed = {
                w: [_ROW.unpack(m) for m in rest[i * len(_WIDTHS) + k]]
                for k, w in enumerate(_WIDTHS)
            }
            sb = out[sym] = scratch.of(sym)
            sb.restore(decode_bar_head(head), closed)
        pos = last[0][0] if last else b"0-0"
        return pos, out, res[2] if snapshot else None, res[3] if snapshot else None

    async def _sync_bars(self, r: aioredis.Redis) -> None:
        """Ingest side, before its first write as the holder: start from the bars in Redis
        when it has none of its own (a restarted ingest node), and learn what Redis holds."""
        if not self._bars_synced and not self.bar_book.symbols:
            _, loaded, _, _ = await self._read_bars(r, snapshot=False)
            self.bar_book.symbols.update(loaded)
        self._bars_synced = True
        syms = list(self.bar_book.symbols)
        pipe = r.pipeline(transaction=False)
        for sym in syms:
            for name in _NAMES:
                pipe.zrange(self.bar_key(sym, name), -1, -1, withscores=True)
        res: list[Any] = await pipe.execute() if syms else []
        for i, sym in enumerate(syms):
            self._bar_marks[sym] = [
                got[0][1] if got else -math.inf
                for got in res[i * len(_WIDTHS) : (i + 1) * len(_WIDTHS)]
            ]
        self._bar_touched.update(dict.fromkeys(syms))  # every head is written again

    # Connections

    def _client(self) -> aioredis.Redis:
        r = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=2.0,
            socket_timeout=self.block_ms / 1000.0 + 5.0,
            health_check_interval=0,
            retry_on_timeout=False,
        )
        self._clients.append(r)
        return r

    def _failed(self, what: str, exc: Exception) -> None:
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"[:300]
        log.log(
            logging.DEBUG if what in self._failing else logging.WARNING,
            "redis %s failed: %s",
            what,
            self.last_error,
            extra={"op": what, "role": self.role},
        )
        self._failing.add(what)

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(
            backoff_delay(
                attempt, initial=self.initial_backoff, maximum=self.max_backoff, rng=self.rng
            )
        )

    # Ingest: lease

    async def _lease_loop(self) -> None:
        r = self._client()
        every = self.lease_ms / 3000.0
        while True:
            try:
                if self.leader:
                    held = await r.eval(_RENEW_LUA, 1, self.k_lease, self.owner, self.lease_ms)
                    if not held:
                        log.warning("ingest lease lost", extra={"owner": self.owner})
                        self.leader = False
                        self.writer_state = "standby"
                else:
                    got = await r.set(self.k_lease, self.owner, nx=True, px=self.lease_ms)
                    if got:
                        log.info(
                            "ingest lease acquired (%s)", self.owner, extra={"owner": self.owner}
                        )
                        self.counters["takeovers"] += 1
                        self._full_sync = True
                        self.leader = True
                        self._requeue_recent_news()
                        self._wake.set()
                    elif self.writer_state in ("starting", "retrying"):
                        self.writer_state = "standby"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # We cannot tell whether the lease is still ours: stop writing (a standby may
                # take over); when Redis is back we compete for it again.
                self.counters["lease_errors"] += 1
                self._failed("lease", exc)
                self.leader = False
                self.writer_state = "retrying"
            else:
                if "lease" in self._failing:
                    self._failing.discard("lease")
                    log.info("redis lease back", extra={"op": "lease", "role": self.role})
            await asyncio.sleep(every)

    async def _queue_news(self, script: Any, pipe: Any, data: bytes) -> None:
        """Queue the news script for one encoded item on ``pipe`` (its id comes with the
        results; an item Redis has seen keeps its id)."""
        await script(
            keys=[self.k_news_id, self.k_news, self.k_seen + news_key(data)],
            args=[news_id_floor(time.time()), self.news_maxlen, data, self.news_dedupe_s],
            client=pipe,
        )

    def _requeue_recent_news(self) -> None:
        """At takeover: queue the news this standby saw within ``takeover_news_s``."""
        horizon = time.monotonic() - self.takeover_news_s
        recent = [ev for t, ev in self._recent_news if t >= horizon]
        self._recent_news.clear()
        self._buf.extendleft(reversed(recent))
        self._bars_ahead += len(recent)  # (news: nothing to apply to bars)
        self.counters["takeover_news"] += len(recent)

    # Ingest: writer

    async def _write_loop(self) -> None:
        r = self._client()
        news = r.register_script(NEWS_SCRIPT)
        attempt = 0
        while True:
            if not self.leader or not (self._buf or self._full_sync):
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[Event] = []
            buf = self._buf
            while buf and len(batch) < self.batch:
                batch.append(buf.popleft())
            full = self._full_sync
            # The batch's events go into the bars now (those a failed attempt applied already
            # are not applied twice), and the bars' changes go out in the same transaction as
            # the events: what Redis holds of the bars always matches the stream's end.
            ahead = min(self._bars_ahead, len(batch))
            applied = False
            try:
                async with self._write_lock:
                    if full:
                        await self._sync_bars(r)
                    self._bars_ahead -= ahead
                    for ev in batch[ahead:]:
                        self._apply_bars(ev)
                    applied = True
                    pipe = r.pipeline(transaction=True)
                    latest: dict[str, bytes] = {}
                    n_news = 0
                    for ev in batch:
                        data = encode_event(ev)
                        if type(ev) is News:
                            await self._queue_news(news, pipe, data)
                            n_news += 1
                            continue
                        pipe.xadd(
                            self.k_ticks, {"e": data}, maxlen=self.ticks_maxlen, approximate=True
                        )
                        if type(ev) is Tick or type(ev) is Bar:
                            latest[ev.symbol] = data
                        elif type(ev) is Listing and ev.symbols:
                            pipe.sadd(self.k_symbols, *ev.symbols)
                    if full:
                        # After the batch: these are newer than any buffered tick.
                        latest.update(
                            (s, encode_event(_quote_tick(q))) for s, q in self.book.quotes.items()
                        )
                        if self.book.known:
                            pipe.sadd(self.k_symbols, *self.book.known)
                    else:
                        # The hash holds the book's quote (session volume), not the raw tick.
                        for s in latest:
                            latest[s] = encode_event(_quote_tick(self.book.quotes[s]))
                    if latest:
                        pipe.hset(self.k_quotes, mapping=latest)  # type: ignore[arg-type]
                    marks = self._queue_bars(pipe, list(self._bar_touched))
                    await pipe.execute()
                self._bars_written(marks)
            except asyncio.CancelledError:
                buf.extendleft(reversed(batch))
                self._bars_ahead += len(batch) if applied else 0
                raise
            except Exception as exc:
                buf.extendleft(reversed(batch))
                self._bars_ahead += len(batch) if applied else 0
                self.counters["write_errors"] += 1
                self._failed("write", exc)
                self.writer_state = "retrying"
                self._full_sync = True
                await self._backoff(attempt)
                attempt += 1
                continue
            if full:
                self._full_sync = False
            if attempt:
                self.counters["reconnects"] += 1
                log.info("redis writer back after %d attempts", attempt, extra={"op": "write"})
                self._failing.discard("write")
            attempt = 0
            self.writer_state = "up"
            self._buffered_ticks -= sum(1 for ev in batch if type(ev) is Tick)
            self.counters["written"] += len(batch)
            self.counters["news_written"] += n_news
            if not buf:
                self._drained.set()

    # Edge: reader

    async def _load(self, r: aioredis.Redis, first: bool, skip: bool = False) -> None:
        """Symbols and latest quotes into the hub; on first load, the retained news, and the
        bars (when the hub's are given) with the ticks stream position they are as of. With
        ``skip`` (far behind) the bars and the ticks position as at first load, the news
        position kept."""
        symbols: Any = None
        quotes: Any = None
        loaded: dict[str, SymbolBars] = {}
        if first or skip:
            if self.bars is not None:
                # Bars, symbols, quotes and the ticks position in one transaction: the stream
                # after it is exactly what they do not hold (a trade twice would count twice).
                pos, loaded, symbols, quotes = await self._read_bars(r, snapshot=True)
                self._ids[self.k_ticks.encode()] = pos
            # Else, positions before the snapshot: entries written meanwhile are read again
            # (a tick twice is harmless to a quote: latest value wins; news is deduplicated).
            keys = [] if self.bars is not None else [self.k_ticks]
            if first:
                keys.append(self.k_news)
            for key in keys:
                last: Any = await r.xrevrange(key, count=1)
                self._ids[key.encode()] = last[0][0] if last else b"0-0"
        if symbols is None:
            symbols = await r.smembers(self.k_symbols)
            quotes = await r.hgetall(self.k_quotes)
        if symbols:
            self.sink(Listing(tuple(sorted(s.decode() for s in symbols))))
        for _, data in sorted(quotes.items()):
            ev = decode_event(data)
            if not first and self.bars is not None and type(ev) is Tick:
                # A quote is the symbol's last trade, which the bars hold already.
                ev = dataclasses.replace(ev, size=None)
            self.sink(ev)
        if self.bars is not None and loaded:
            # After the quotes (the hub takes each as a trade): the bars as Redis has them.
            self.bars.symbols.update(loaded)
        if first:
            entries: Any = await r.xrevrange(self.k_news, count=self.news_maxlen)
            for _, fields in reversed(entries):
                self._deliver_news(fields)

    def _deliver_news(self, fields: dict[bytes, bytes]) -> None:
        nid = int(fields[b"id"])
        if nid <= self.news_last_id:
            return  # already delivered (the hub would otherwise give it a new id)
        self.news_last_id = nid
        self.counters["news_read"] += 1
        self.sink(decode_event(fields[b"e"], nid))

    async def _read_loop(self) -> None:
        r = self._client()
        attempt = 0
        loaded = False
        k_news = self.k_news.encode()
        behind = 0  # ms behind the ticks stream, when far enough to skip to its end
        while True:
            try:
                if attempt or not loaded:
                    await self._load(r, first=not loaded)
                    if loaded:
                        self.counters["reconnects"] += 1
                        self.counters["resyncs"] += 1
                        if self.on_resync is not None:
                            self.on_resync()
                        log.info(
                            "redis reader back after %d attempts; clients resynced",
                            attempt,
                            extra={"op": "read"},
                        )
                    elif attempt:
                        log.info("redis reader up after %d attempts", attempt, extra={"op": "read"})
                    self._failing.discard("read")
                    loaded = True
                    self._loaded.set()
                    attempt = 0
                    self.reader_state = "up"
                if behind:
                    await self._skip(r, behind)
                    behind = 0
                resp: Any = await r.xread(
                    self._ids,  # type: ignore[arg-type]
                    count=self.batch,
                    block=self.block_ms,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters["read_errors"] += 1
                self._failed("read", exc)
                self.reader_state = "retrying"
                await self._backoff(attempt)
                attempt += 1
                continue
            now = time.time()
            self.last_read_at = now
            sink = self.sink
            for stream, entries in resp or ():
                if not entries:
                    continue
                if stream == k_news:
                    for _, fields in entries:
                        self._deliver_news(fields)
                else:
                    for _, fields in entries:
                        sink(decode_event(fields[b"e"]))
                last = entries[-1][0]
                self._ids[stream] = last
                self.counters["read"] += len(entries)
                lag_ms = max(0, int(now * 1000) - _entry_ms(last))
                if stream == k_news:
                    continue
                self.lag_ms = lag_ms
                since = time.monotonic() - self._skipped_at
                if far_behind(lag_ms, len(entries), self.batch, self.max_lag_ms, since):
                    behind = lag_ms  # (skipped before the next read: a failure is a read's)

    async def _skip(self, r: aioredis.Redis, lag_ms: int) -> None:
        """Far behind the ticks stream: jump to its end (bars, symbols, quotes as at start; the
        news position kept) and give every client a fresh snapshot."""
        self._skipped_at = time.monotonic()
        await self._load(r, first=False, skip=True)
        self.counters["skips"] += 1
        self.lag_ms = 0
        if self.on_resync is not None:
            self.on_resync()
        log.warning(
            "redis reader %.1f s behind the ticks stream: skipped to its end; clients resynced",
            lag_ms / 1000.0,
            extra={"op": "read"},
        )

"""The broadcaster: book + one Conflator per throttle window -> encoded frames -> sockets.

I/O shell around :class:`~ticker.core.book.Book` and :class:`~ticker.core.conflate.Conflator`.

How a tick travels: ``publish`` folds it into the book and marks it pending in every active
window (O(windows), never O(clients)). Each window flushes on its own timer: one ``drain`` for
all of its clients, each changed symbol encoded once, one shared tail per distinct subscription
(a *group*), and per connection only ``seq`` is spliced in front before a non-blocking
``transport.write``. Nothing awaits per client, so one slow socket cannot stall the loop.

Slow consumers: a connection with unsent bytes left in its buffer (the kernel would take no
more: its previous frame is still in flight) is *paused*. It gets no deltas; the hub only notes
which symbols it missed and the flush its copy is as of (memory bounded by its symbol count, never
by ticks). When its buffer has drained, one ``delta`` of the fields changed since that flush
(``Conflator.changes_since``) and the news it missed (from the ring) bring it back in step. Paused
for ``slow_close_after`` seconds without draining, it is closed with 1013. Window-0 connections are
also *held* while the pong of the ping sent after their last frame is late (flow control), and
caught up the same way.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from ticker import __version__
from ticker.aio import cancel_and_wait
from ticker.config import HubConfig
from ticker.core.auth import entitled_only, split_entitled
from ticker.core.book import Book, TickRing
from ticker.core.conflate import Conflator, Subscription
from ticker.core.events import Event, Listing, News, Tick
from ticker.core.limits import TokenBucket
from ticker.core.news_id import next_news_id
from ticker.core.protocol import (
    Ack,
    Error,
    Hello,
    NewsItem,
    NewsRequest,
    Ping,
    Pong,
    ProtocolError,
    Request,
    Resync,
    ServerMessage,
    Subscribe,
    Throttle,
    Unsubscribe,
    delta_payload,
    delta_tail,
    encode,
    parse_request,
    quote_fragments,
    snapshot_from_fragments,
)
from ticker.core.wsframe import ws_ping_frame, ws_text_frame

__all__ = ["Client", "Hub", "Transport", "effective_window"]

log = logging.getLogger("ticker.broadcaster")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
# Flow control sends a marker ping after every MARK_FRAMES-th frame of a fast stream a client
# keeps up with (and after every catch-up): each pong is an inbound frame to parse, so a client
# costs a pong per few frames, not per frame; a backlog of a few frames is harmless.
MARK_FRAMES = 4


FRAME_BUDGET_SLACK = 64
"""Frames a read may hold beyond a connection's rate budget: pongs answering the server's own
pings spend no token (``Hub.frame_budget``)."""


class Transport(Protocol):
    """What the hub needs of a connection's transport (an ``asyncio.WriteTransport``)."""

    def write(self, data: bytes) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


CloseFn = Callable[[int, str], Awaitable[Any]]


def effective_window(ms: float, max_ms: float) -> int:
    """The window a requested ``ms`` becomes: clamped to ``max_ms``; 10 ms steps up to 1 s,
    100 ms steps above (so a few shared windows serve every client). 0 stays 0."""
    ms = min(ms, max_ms)
    if ms <= 0:
        return 0
    if ms <= 1000:
        return max(10, round(ms / 10.0) * 10)
    return min(int(max_ms), round(ms / 100.0) * 100)


class Client:
    """One WebSocket connection's state: subscriptions, window, seq, news cursor, limits."""

    __slots__ = (
        "__weakref__",
        "behind_since",
        "bucket",
        "close",
        "closing",
        "entitled",
        "fresh",
        "group",
        "last_frame",
        "marker",
        "marker_at",
        "missed",
        "news_all",
        "news_sent_id",
        "news_topics",
        "remote",
        "seq",
        "session",
        "strikes",
        "sub",
        "synced",
        "transport",
        "unmarked",
        "window",
    )

    def __init__(
        self,
        transport: Transport,
        close: CloseFn,
        session: str,
        remote: str,
        bucket: TokenBucket,
        entitled: frozenset[str] | None = None,
    ) -> None:
        self.transport = transport
        # Symbols its token entitles it to (None: all). Applied when it subscribes, so the
        # per-tick path never looks at it (ticker.core.auth).
        self.entitled = entitled
        self.close = close
        self.session = session
        self.remote = remote
        self.bucket = bucket
        self.strikes = 0
        self.sub = Subscription()
        self.window: _Window | None = None
        self.group: _Group | None = None
        self.seq = 0
        self.news_all = False
        self.news_topics: frozenset[str] = frozenset()
        self.news_sent_id = 0
        self.behind_since: float | None = None
        # While paused or held: the symbols it missed (its copy is as of flush ``synced`` of its
        # window, so one delta of the fields changed since catches it up), and the symbols it
        # must get whole (subscribed, resynced or moved meanwhile).
        self.missed: set[str] = set()
        self.synced = 0
        self.fresh: set[str] = set()
        # Flow control (window 0): the payload of the ping sent after a frame, until its pong
        # proves the client has read everything sent before it.
        self.marker: bytes | None = None
        self.marker_at = -1e9
        self.unmarked = MARK_FRAMES - 1  # frames written since the last marker (first: marked)
        self.last_frame = -1e9  # when the last delta was written (loop time)
        self.closing = False

    def wants_news(self, symbols: tuple[str, ...]) -> bool:
        """Whether a news item tagged with ``symbols`` is on this connection's topics (and, with
        entitlements, on an entitled symbol or on none: ``ticker.core.auth.news_visible``)."""
        if not (self.news_all or not self.news_topics.isdisjoint(symbols)):
            return False
        ent = self.entitled
        return ent is None or not symbols or not ent.isdisjoint(symbols)


class _Group:
    """Connections that share a window and a subscription, hence the same delta bytes."""

    __slots__ = ("members", "sub")

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.members: dict[Client, None] = {}


class _Window:
    """One throttle window: its Conflator, its flush timer and its groups."""

    __slots__ = ("clients", "conflator", "frag_cache", "groups", "handle", "ms", "since_cache")

    def __init__(self, ms: int, conflator: Conflator) -> None:
        self.ms = ms
        self.conflator = conflator
        # symbol -> encoded full quote as last flushed (snapshots reuse it until the next drain)
        self.frag_cache: dict[str, bytes] = {}
        # (symbol, flush) -> encoded fields changed since that flush (catch-ups), until the next
        # drain: held clients that stopped at the same flush share one encoding.
        self.since_cache: dict[tuple[str, int], bytes] = {}
        self.groups: dict[Subscription, _Group] = {}
        self.handle: asyncio.Handle | None = None
        self.clients = 0


class Hub:
    """Latest state, news ring and every connection; feeds publish into it, clients read from it.

    Args:
        config: settings.
        loop: the running loop (defaults to the current one).
    """

    def __init__(
        self, config: HubConfig | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.config = config or HubConfig()
        self.loop = loop or asyncio.get_running_loop()
        self.book = Book()
        self.clients: dict[Client, None] = {}
        self.news: deque[tuple[int, tuple[str, ...], bytes, NewsItem]] = deque(
            maxlen=self.config.news_retain
        )
        self.news_last_id = 0
        self.history: dict[str, TickRing] = {}
        self.stats: Counter[str] = Counter()
        self.started = time.time()
        self._windows: dict[int, _Window] = {}
        self._window_list: list[_Window] = []
        self._news_clients: dict[Client, None] = {}
        self._behind: dict[Client, None] = {}
        self._markers = 0
        # Per window (ms): [ticks, updates] of its conflators that are gone (for /metrics).
        self._retired: dict[int, list[int]] = {}
        # Policy closes are logged one by one up to a rate, then summed up (a burst of 1013s
        # on a network hiccup must not flood the log).
        self._close_log = TokenBucket(2.0, 20.0, self.loop.time())
        self._closes_unlogged = 0
        self._housekeeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.default_window = effective_window(self.config.throttle_ms, self.config.max_throttle_ms)

    # Ingest (called by feeds through the bus; never awaits)

    def publish(self, ev: Event) -> None:
        """Take one event from a feed: a tick, a news item or a listing."""
        if type(ev) is Tick:
            self._on_tick(ev)
        elif type(ev) is News:
            self._on_news(ev)
        elif type(ev) is Listing:
            self.book.declare(ev.symbols)
        else:
            raise TypeError(f"not an event: {type(ev).__name__}")

    def _on_tick(self, tick: Tick) -> None:
        self.stats["ticks_in"] += 1
        q = self.book.apply(tick)
        sym = tick.symbol
        price = tick.price
        h = self.history.get(sym)
        if h is None:
            h = self.history[sym] = TickRing(self.config.history_ticks)
        h.append(tick.ts, price, tick.size or 0.0)
        del q
        for w in self._window_list:
            w.conflator.offer(sym, price)
            if w.handle is None:
                self._schedule(w)

    def _on_news(self, ev: News) -> None:
        self.stats["news_in"] += 1
        prev = self.news_last_id
        # An id given by the Redis bus is the service's; else the rule of ticker.core.news_id.
        nid = ev.id if ev.id > prev else next_news_id(prev, time.time())
        self.news_last_id = nid
        item = NewsItem(nid, ev.ts, ev.headline, ev.source, ev.symbols, ev.url, ev.summary)
        # A copy: orjson's bytes keep its whole 4 KiB output buffer, and the ring holds
        # news_retain (10,000) of them (40 MB instead of 4).
        payload = memoryview(encode(item)).tobytes()
        self.news.append((nid, ev.symbols, payload, item))
        frame = ws_text_frame(payload)
        pause = self.config.pause_bytes
        for c in self._news_clients:
            if c.behind_since is not None or not c.wants_news(ev.symbols):
                continue
            tr = c.transport
            if tr.get_write_buffer_size() > pause:
                self._fall_behind(c, prev)
                continue
            if not tr.is_closing():
                tr.write(frame)
                c.news_sent_id = nid
                self.stats["frames_sent"] += 1
                self.stats["bytes_sent"] += len(frame)

    # Flushing

    def _schedule(self, w: _Window) -> None:
        if w.ms == 0:
            w.handle = self.loop.call_soon(self._flush, w)
        else:
            deadline = w.conflator.next_deadline()
            assert deadline is not None
            w.handle = self.loop.call_at(deadline, self._flush, w)

    def _flush(self, w: _Window) -> None:
        w.handle = None
        now = self.loop.time()
        drained = w.conflator.drain(now, self.book.quotes)
        if w.conflator.pending:  # not due yet (timer fired early): try again at the deadline
            self._schedule(w)
        if not drained:
            return
        frags = quote_fragments(drained)
        cache = w.frag_cache
        for s in drained:
            cache.pop(s, None)
        w.since_cache.clear()
        t = time.time() * 1000.0
        flushed = w.conflator.flushes
        clocked = w.ms == 0 and self.config.flow_hold_ms > 0
        held_before = now - self.config.flow_hold_ms / 1000.0
        marker_every = self.config.flow_hold_ms / 2000.0  # at most one ping per half hold
        # Only a fast stream is clocked: frames further apart than two holds give any reader
        # time to keep up, and a burst of fan-out to many clients is not a backlog.
        fast_gap = self.config.flow_hold_ms / 500.0
        pause = self.config.pause_bytes
        stats = self.stats
        frames = 0
        nbytes = 0
        for sub, group in w.groups.items():
            if sub.every:
                excl = sub.symbols
                syms = [s for s in frags if s not in excl]
            elif len(sub.symbols) < len(frags):
                syms = [s for s in sub.symbols if s in frags]
            else:
                incl = sub.symbols
                syms = [s for s in frags if s in incl]
            if not syms:
                continue
            tail = delta_tail(t, [frags[s] for s in syms])
            for c in group.members:
                tr = c.transport
                if c.marker is not None and (c.missed or c.marker_at < held_before):
                    # Still reading frames sent before its last ping: conflate until the pong.
                    if not c.missed:
                        c.synced = flushed - 1
                    c.missed.update(syms)
                    continue
                if c.behind_since is not None:
                    # Paused: remember which symbols it missed (not the ticks); once its
                    # buffer has drained, one delta of what changed replaces this one.
                    if not c.missed:
                        c.synced = flushed - 1
                    c.missed.update(syms)
                    if tr.get_write_buffer_size() <= pause:
                        self._catch_up(c)
                    continue
                if tr.get_write_buffer_size() > pause:
                    self._fall_behind(c)
                    if not c.missed:
                        c.synced = flushed - 1
                    c.missed.update(syms)
                    continue
                if tr.is_closing():
                    continue
                c.seq += 1
                frame = ws_text_frame(delta_payload(c.seq, tail))
                frames += 1
                nbytes += len(frame)
                if clocked:  # (windowed clients skip the flow-control bookkeeping)
                    c.unmarked += 1
                    gap = now - c.last_frame
                    c.last_frame = now
                    if (
                        c.marker is None
                        and gap < fast_gap
                        and c.unmarked >= MARK_FRAMES
                        and now - c.marker_at >= marker_every
                    ):
                        frame += self._marker(c, now)  # one write, one segment
                tr.write(frame)
        stats["deltas_sent"] += frames
        stats["frames_sent"] += frames
        stats["bytes_sent"] += nbytes
        stats["flushes"] += 1

    # Flow control (window 0)

    def _marker(self, c: Client, now: float) -> bytes:
        """A ping frame that marks everything written to ``c`` so far (its pong: all read)."""
        self._markers += 1
        c.marker = b"t%d" % self._markers
        c.marker_at = now
        c.unmarked = 0
        return ws_ping_frame(c.marker)

    def _send_marker(self, c: Client, now: float) -> None:
        c.transport.write(self._marker(c, now))

    def pong(self, c: Client, payload: bytes) -> None:
        """A pong arrived: if it answers ``c``'s marker, everything sent before it was read.
        Any other pong (unsolicited, or answering the heartbeat) spends a control-message token:
        a pong flood is a flood like any other."""
        if c.marker is None or payload != c.marker:
            if not c.closing:
                self._take(c)
            return
        c.marker = None
        if (c.missed or c.fresh) and c.behind_since is None and not c.closing:
            # Held: one delta of what changed meanwhile, then keep clocking.
            self.stats["flow_catchups"] += 1
            self._send_missed(
                c, clock=c.window is not None and c.window.ms == 0 and self.config.flow_hold_ms > 0
            )

    def _check_markers(self, now: float) -> None:
        """Close window-0 connections that have not answered a ping for ``slow_close_after``."""
        w = self._windows.get(0)
        if w is None:
            return
        limit = now - self.config.slow_close_after
        for g in list(w.groups.values()):
            for c in list(g.members):
                if c.marker is not None and c.marker_at < limit and not c.closing:
                    self.stats["slow_closes"] += 1
                    self.close_client(c, CLOSE_TRY_AGAIN, "slow consumer")

    # Slow consumers

    def _fall_behind(self, c: Client, news_id: int | None = None) -> None:
        """Stop writing to ``c`` until its buffer drains; its news resume after ``news_id``
        (default: everything up to now was sent or not on its topics)."""
        if c.behind_since is None:
            c.behind_since = self.loop.time()
            c.news_sent_id = self.news_last_id if news_id is None else news_id
            self._behind[c] = None
            self.stats["slow_behind"] += 1

    def _catch_up(self, c: Client) -> None:
        """``c``'s buffer drained: one delta of what it missed, then its missed news."""
        self._behind.pop(c, None)
        c.behind_since = None
        since = c.news_sent_id
        self.stats["slow_resyncs"] += 1
        self._send_missed(c)
        if c.news_all or c.news_topics:
            self._replay_news(c, since)

    def _send_missed(self, c: Client, clock: bool = False) -> bool:
        """Bring a paused or held ``c`` up to date: a snapshot of the symbols it must get whole,
        then one delta of the fields its missed symbols changed since flush ``c.synced``;
        with ``clock``, a flow-control marker after what was sent (in the same write).
        Returns whether anything was sent."""
        w = c.window
        sub = c.sub
        fresh = [s for s in c.fresh if sub.includes(s)]
        missed = [s for s in c.missed if sub.includes(s) and s not in c.fresh]
        c.fresh = set()
        c.missed = set()
        if w is None:
            return False
        sent = False
        if fresh:
            self._send_snapshot(c, fresh)
            sent = True
        parts = self._changes_since(w, missed, c.synced)
        if parts:
            c.seq += 1
            self.stats["catchup_deltas"] += 1
            tail = delta_tail(time.time() * 1000.0, parts)
            marker = self._marker(c, self.loop.time()) if clock else b""
            self.send_payload(c, delta_payload(c.seq, tail), marker)
            return True
        if sent and clock:
            self._send_marker(c, self.loop.time())
        return sent

    @staticmethod
    def _changes_since(w: _Window, symbols: list[str], flush: int) -> list[bytes]:
        """Encoded per-symbol changes since ``flush`` (``Conflator.changes_since``), cached."""
        cache = w.since_cache
        out = []
        for s in symbols:
            key = (s, flush)
            f = cache.get(key)
            if f is None:
                d = w.conflator.changes_since((s,), flush)
                f = cache[key] = quote_fragments(d)[s] if d else b""
            if f:
                out.append(f)
        return out

    def _check_behind(self) -> None:
        now = self.loop.time()
        pause = self.config.pause_bytes
        for c in list(self._behind):
            if c.closing:
                self._behind.pop(c, None)
                continue
            if c.transport.get_write_buffer_size() <= pause:
                self._catch_up(c)
            elif c.behind_since is not None and now - c.behind_since > self.config.slow_close_after:
                self._behind.pop(c, None)
                self.stats["slow_closes"] += 1
                self.close_client(c, CLOSE_TRY_AGAIN, "slow consumer")

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self._behind:
                self._check_behind()
            self._check_markers(self.loop.time())
            if self._closes_unlogged and self._close_log.take(self.loop.time()):
                log.info(
                    "closed %d more connections (1008/1013: see ticker_closes_total)",
                    self._closes_unlogged,
                    extra={"count": self._closes_unlogged},
                )
                self._closes_unlogged = 0

    # Connections

    def start(self) -> None:
        """Start background housekeeping (slow-consumer catch-up and closes)."""
        if self._housekeeper is None:
            self._housekeeper = self.loop.create_task(self._housekeeping())

    async def stop(self) -> None:
        """Stop housekeeping and timers (connections are closed by :meth:`close_all`)."""
        await cancel_and_wait(self._housekeeper)
        self._housekeeper = None
        for w in self._window_list:
            if w.handle is not None:
                w.handle.cancel()
                w.handle = None

    def connect(
        self,
        transport: Transport,
        close: CloseFn,
        remote: str = "",
        entitled: frozenset[str] | None = None,
        preamble: bytes = b"",
    ) -> Client:
        """Register a new connection and send it ``hello`` (listing only ``entitled`` symbols,
        when given), behind ``preamble`` in the same write (the ``101`` answer: one syscall)."""
        c = Client(
            transport,
            close,
            "s-" + secrets.token_hex(6),
            remote,
            TokenBucket(self.config.rate, self.config.burst, self.loop.time()),
            entitled,
        )
        self.clients[c] = None
        self._move(c, self.default_window, c.sub)
        self.stats["connections_total"] += 1
        hello = Hello(
            c.session,
            self.default_window,
            tuple(entitled_only(self.book.known, entitled)),
            self.news_last_id,
            server=f"ticker/{__version__}",
        )
        self.send_payload(c, encode(hello), prefix=preamble)
        return c

    def disconnect(self, c: Client, code: int | None = None) -> None:
        """Forget a connection (idempotent).

        Args:
            code: the close code the WebSocket layer sent when it closed the connection itself
                (1009 for a frame over the limit, 1006 for a broken link), counted in ``stats``.
        """
        if c not in self.clients:
            c.closing = True
            return
        if code is not None and not c.closing:
            self.stats[f"closed_{code}"] += 1
        c.closing = True
        # (Not `pop(c, None) is None`: the values are None, so that returned before the
        # connection ever left its window, group, news list and slow-consumer list.)
        del self.clients[c]
        self._news_clients.pop(c, None)
        self._behind.pop(c, None)
        self._leave(c)

    async def close_all(
        self, code: int = CLOSE_GOING_AWAY, message: str = "server shutdown", wait: float = 3.0
    ) -> None:
        """Close every connection with ``code`` (1001 on shutdown), in parallel, bounded in time."""
        clients = list(self.clients)
        if not clients:
            return
        self.stats[f"closed_{code}"] += len(clients)
        deadline = self.loop.time() + wait

        async def one(c: Client) -> None:
            try:
                async with asyncio.timeout_at(deadline):
                    await c.close(code, message)
            except (TimeoutError, ConnectionError, RuntimeError):
                c.transport.abort()

        await asyncio.gather(*(one(c) for c in clients), return_exceptions=True)
        # A close frame queued behind unsent bytes is lost if the process exits first: let slow
        # readers drain until the deadline, then abort whatever is still stuck.
        stuck = [c for c in clients if c.transport.get_write_buffer_size()]
        while stuck and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
            stuck = [c for c in stuck if c.transport.get_write_buffer_size()]
        for c in stuck:
            c.transport.abort()

    def close_client(self, c: Client, code: int, reason: str) -> None:
        """Close one connection in the background (its buffer may be full: abort if stuck)."""
        if c.closing:
            return
        c.closing = True
        self.stats[f"closed_{code}"] += 1
        if self._close_log.take(self.loop.time()):
            log.info(
                "closing %s with %d: %s",
                c.session,
                code,
                reason,
                extra={"session": c.session, "remote": c.remote, "code": code},
            )
        else:
            self._closes_unlogged += 1

        async def run() -> None:
            try:
                async with asyncio.timeout(2.0):
                    await c.close(code, reason)
            except (TimeoutError, ConnectionError, RuntimeError):
                c.transport.abort()

        task = self.loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _leave(self, c: Client) -> None:
        w, g = c.window, c.group
        if g is not None and w is not None:
            g.members.pop(c, None)
            if not g.members:
                del w.groups[g.sub]
        if w is not None:
            w.clients -= 1
            if w.clients == 0:
                if w.handle is not None:
                    w.handle.cancel()
                totals = self._retired.setdefault(w.ms, [0, 0])
                totals[0] += w.conflator.ticks
                totals[1] += w.conflator.updates
                del self._windows[w.ms]
                self._window_list.remove(w)
        c.window = None
        c.group = None

    def _move(self, c: Client, ms: int, sub: Subscription) -> None:
        """Put ``c`` in the group for (window ``ms``, ``sub``), creating either when needed."""
        if c.window is not None and c.window.ms == ms and c.sub == sub and c.group is not None:
            return
        same = c.window if c.window is not None and c.window.ms == ms else None
        if same is not None:
            # Only the group changes: hold the window while leaving its group. Were it dropped
            # (its last client) and made afresh from the book, the ticks still pending in it
            # would never reach this client, which keeps its other symbols without a snapshot.
            same.clients += 1
        if same is None and c.missed:
            # Another window numbers its flushes differently: what it missed comes whole.
            c.fresh.update(s for s in c.missed if sub.includes(s))
            c.missed = set()
        self._leave(c)
        if same is not None:
            same.clients -= 1
        w = self._windows.get(ms)
        if w is None:
            w = _Window(ms, Conflator(ms / 1000.0, self.book.quotes))
            self._windows[ms] = w
            self._window_list.append(w)
        w.clients += 1
        g = w.groups.get(sub)
        if g is None:
            g = w.groups[sub] = _Group(sub)
        g.members[c] = None
        c.window = w
        c.group = g
        c.sub = sub

    # Sending

    def send(self, c: Client, msg: ServerMessage) -> None:
        """Send one control message (hello, ack, error, pong, news replay) to one connection."""
        self.send_payload(c, encode(msg))

    def send_payload(
        self, c: Client, payload: bytes, trailer: bytes = b"", prefix: bytes = b""
    ) -> None:
        """Write one text frame (and ``trailer``, a control frame, after it and ``prefix``
        before it, in the same write)."""
        tr = c.transport
        if c.closing or tr.is_closing():
            return
        frame = ws_text_frame(payload)
        tr.write(prefix + frame + trailer if trailer or prefix else frame)
        self.stats["frames_sent"] += 1
        self.stats["bytes_sent"] += len(frame)

    def _send_snapshot(self, c: Client, symbols: Iterable[str]) -> None:
        assert c.window is not None
        if (
            c.behind_since is None
            and c.transport.get_write_buffer_size() > self.config.max_buffer_bytes
        ):
            self._fall_behind(c)
        if c.behind_since is not None:
            # Paused: its catch-up will carry these whole. Writing now would let a client that
            # never reads queue a snapshot per resync/subscribe without bound.
            c.fresh.update(symbols)
            self.stats["snapshots_deferred"] += 1
            return
        w = c.window
        symbols = list(symbols)
        if c.missed or c.fresh:  # held: these are now whole and current in the client
            c.missed.difference_update(symbols)
            c.fresh.difference_update(symbols)
        cache = w.frag_cache
        sent = w.conflator.sent
        parts = []
        for s in symbols:
            f = cache.get(s)
            if f is None:
                q = sent.get(s)
                if q is None:
                    continue
                f = cache[s] = quote_fragments({s: q})[s]
            parts.append(f)
        c.seq += 1
        self.stats["snapshots_sent"] += 1
        self.send_payload(c, snapshot_from_fragments(c.seq, parts))

    def _replay_news(self, c: Client, since: int) -> None:
        """Send retained news with id > ``since`` on ``c``'s topics, oldest first."""
        items = []
        for item in reversed(self.news):
            if item[0] <= since:
                break
            items.append(item)
        limit = self.config.max_buffer_bytes
        tr = c.transport
        last = since
        for nid, syms, payload, _ in reversed(items):
            if c.wants_news(syms):
                if tr.get_write_buffer_size() > limit:
                    self._fall_behind(c, last)
                    return
                self.send_payload(c, payload)
            last = nid
        c.news_sent_id = max(c.news_sent_id, self.news_last_id)

    def _error(
        self,
        c: Client,
        code: str,
        message: str,
        rid: Any = None,
        symbols: tuple[str, ...] | None = None,
    ) -> None:
        self.stats[f"error_{code}"] += 1
        self.send(c, Error(code, message, rid, symbols))

    # Inbound

    def receive(self, c: Client, data: bytes | None) -> None:
        """Handle one inbound frame (``None`` for a binary frame). Never raises for bad input."""
        if c.closing:
            return
        if not self._take(c):
            if not c.closing:
                self._error(
                    c, "rate_limited", f"over {self.config.rate:g} messages/s; message dropped"
                )
            return
        if data is None:
            self._error(c, "bad_request", "binary frames are not accepted; send JSON text")
            return
        req = parse_request(data, max_symbols=self.config.max_symbols_per_request)
        if isinstance(req, ProtocolError):
            self._error(c, req.code, req.message, req.id)
            return
        self.handle(c, req)

    def ping_allowed(self, c: Client) -> bool:
        """Whether to answer a WebSocket ping frame from ``c``: pings spend a control-message
        token too (a ping flood costs a pong each), go unanswered past the rate, and close the
        connection with 1008 past the burst, like any other flood."""
        return not c.closing and self._take(c)

    def frame_budget(self, c: Client) -> int:
        """How many frames ``c`` may send in one read before its rate is certainly exceeded:
        its tokens, the strikes it has left before 1008, and a few pongs that spend none
        (answers to flow-control pings). The frame reader stops parsing past it."""
        strikes_left = max(0, int(self.config.burst) - c.strikes)
        return int(c.bucket.available(self.loop.time())) + strikes_left + FRAME_BUDGET_SLACK

    def spend(self, c: Client, frames: int) -> None:
        """Charge ``frames`` data frames that did not end a message (fragments spend a
        control-message token each, like whole messages)."""
        for _ in range(frames):
            if c.closing:
                return
            self._take(c)

    def _take(self, c: Client) -> bool:
        """Spend one of ``c``'s control-message tokens; past ``burst`` strikes in a row (messages
        over the rate), close it with 1008."""
        if c.bucket.take(self.loop.time()):
            c.strikes = 0
            return True
        c.strikes += 1
        if c.strikes > self.config.burst:
            self.close_client(c, CLOSE_POLICY, "rate limit exceeded")
        return False

    def handle(self, c: Client, req: Request) -> None:
        """Serve one valid request."""
        if isinstance(req, Subscribe):
            self._subscribe(c, req)
        elif isinstance(req, Unsubscribe):
            self._unsubscribe(c, req)
        elif isinstance(req, NewsRequest):
            self._news(c, req)
        elif isinstance(req, Throttle):
            ms = effective_window(req.ms, self.config.max_throttle_ms)
            changed = c.window is None or c.window.ms != ms
            self._move(c, ms, c.sub)
            if req.id is not None:
                self.send(c, Ack(req.id, {"ms": ms}))
            if changed and not c.sub.empty:
                # The new window's clients hold its state, not the old one's: start from a
                # snapshot of it so deltas apply cleanly.
                self._send_snapshot(c, c.sub.resolve(self.book.known))
        elif isinstance(req, Resync):
            if req.id is not None:
                self.send(c, Ack(req.id, {}))
            self._send_snapshot(c, c.sub.resolve(self.book.known))
        elif isinstance(req, Ping):
            self.send(c, Pong(req.t))

    def _resolve(self, symbols: tuple[str, ...]) -> tuple[list[str], list[str], bool]:
        """Split requested symbols into (known, unknown, star); matches case-insensitively."""
        known_set = self.book.known
        known: list[str] = []
        unknown: list[str] = []
        star = False
        for s in symbols:
            if s == "*":
                star = True
            elif s in known_set:
                known.append(s)
            elif s.upper() in known_set:
                known.append(s.upper())
            else:
                unknown.append(s)
        return list(dict.fromkeys(known)), unknown, star

    def _over_symbol_limit(self, c: Client, sub: Subscription, rid: Any) -> bool:
        """Refuse (``too_many_symbols``, nothing applied) a subscription naming too many symbols:
        its symbols, or under ``"*"`` its exclusions (``"*"`` itself counts 0)."""
        cap = self.config.max_symbols_per_connection
        if not cap or len(sub.symbols) <= cap:
            return False
        what = "unsubscribed symbols while on '*'" if sub.every else "symbols"
        self._error(
            c,
            "too_many_symbols",
            f"at most {cap} {what} per connection (this request would make "
            f"{len(sub.symbols)}); nothing was changed",
            rid,
        )
        return True

    def _subscribe(self, c: Client, req: Subscribe) -> None:
        known, unknown, star = self._resolve(req.symbols)
        denied: list[str] = []
        if c.entitled is None:
            sub = c.sub.add(known, star=star)
        else:
            # Entitled "*" is every entitled symbol, current and future: an explicit set, so the
            # flush path needs no entitlement check.
            known, denied = split_entitled(known, c.entitled)
            unknown, denied_unknown = split_entitled(unknown, c.entitled)
            denied += denied_unknown
            sub = Subscription(False, c.entitled) if star else c.sub.add(known)
        if not (star and c.entitled is not None) and self._over_symbol_limit(c, sub, req.id):
            return
        self._move(c, c.window.ms if c.window else self.default_window, sub)
        if req.id is not None:
            self.send(c, Ack(req.id, {"symbols": (["*"] if star else []) + known}))
        if denied:
            shown = ", ".join(denied[:10]) + (" ..." if len(denied) > 10 else "")
            self._error(c, "unauthorized", f"not entitled to: {shown}", req.id, tuple(denied))
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            self._error(c, "unknown_symbol", f"unknown symbols: {shown}", req.id, tuple(unknown))
        if star or known:
            self._send_snapshot(c, c.sub.resolve(self.book.known) if star else known)

    def _unsubscribe(self, c: Client, req: Unsubscribe) -> None:
        known, unknown, star = self._resolve(req.symbols)
        sub = c.sub.remove(known + unknown, star=star)
        if self._over_symbol_limit(c, sub, req.id):
            return
        self._move(c, c.window.ms if c.window else self.default_window, sub)
        if req.id is not None:
            self.send(c, Ack(req.id, {"symbols": (["*"] if star else []) + known + unknown}))

    def _news(self, c: Client, req: NewsRequest) -> None:
        topics = set(req.topics)
        shown = list(req.topics)
        denied: list[str] = []
        if c.entitled is not None:
            allowed, denied = split_entitled([t for t in shown if t != "*"], c.entitled)
            shown = ["*"] * ("*" in topics) + allowed
            topics = set(shown)
        c.news_all = "*" in topics
        topics.discard("*")
        c.news_topics = frozenset(topics | {t.upper() for t in topics})
        if c.news_all or c.news_topics:
            self._news_clients[c] = None
        else:
            self._news_clients.pop(c, None)
        if req.id is not None:
            oldest = self.news[0][0] if self.news else self.news_last_id + 1
            self.send(
                c,
                Ack(req.id, {"topics": shown, "oldest_id": oldest, "last_id": self.news_last_id}),
            )
        if denied:
            self._error(
                c,
                "unauthorized",
                f"not entitled to: {', '.join(denied[:10])}",
                req.id,
                tuple(denied),
            )
        if req.since is not None and (c.news_all or c.news_topics):
            self._replay_news(c, req.since)
        else:
            c.news_sent_id = self.news_last_id

    # Queries (HTTP API)

    def resync_all(self) -> int:
        """Send every subscribed connection a fresh ``snapshot`` (the bus was away and is back).

        Returns:
            how many connections were sent one (or had one deferred, when paused).
        """
        n = 0
        for c in list(self.clients):
            if c.window is not None and not c.sub.empty and not c.closing:
                self._send_snapshot(c, c.sub.resolve(self.book.known))
                n += 1
        self.stats["resyncs"] += n
        return n

    def news_after(self, since: int | None, limit: int) -> list[NewsItem]:
        """Retained news with id > ``since`` (oldest first), at most ``limit``; the latest ``limit``
        when ``since`` is None."""
        if since is None:
            items = list(self.news)[-limit:] if limit > 0 else []
            return [i[3] for i in items]
        out: list[NewsItem] = []
        for item in reversed(self.news):
            if item[0] <= since:
                break
            out.append(item[3])
        out.reverse()
        return out[:limit]

    def window_stats(self) -> dict[int, tuple[int, int, int]]:
        """Per throttle window (ms): (connections now, ticks flushed, symbol updates sent).

        The counts are cumulative over every time the window existed (for ``/metrics``); ticks
        minus updates is how many ticks were conflated away.
        """
        out = {ms: (0, t, u) for ms, (t, u) in self._retired.items()}
        for w in self._window_list:
            _, t, u = out.get(w.ms, (0, 0, 0))
            out[w.ms] = (w.clients, t + w.conflator.ticks, u + w.conflator.updates)
        return out

    def health(self) -> dict[str, Any]:
        """Counters and state for ``/healthz``."""
        return {
            "connections": len(self.clients),
            "slow_consumers": len(self._behind),
            "held": sum(
                1
                for g in (self._windows[0].groups.values() if 0 in self._windows else ())
                for c in g.members
                if c.missed and c.marker is not None
            ),
            "windows_ms": sorted(self._windows),
            "groups": sum(len(w.groups) for w in self._window_list),
            "symbols": len(self.book.known),
            "news_last_id": self.news_last_id,
            "news_retained": len(self.news),
            "stats": dict(self.stats),
        }

"""The broadcaster: book + one Conflator per throttle window -> encoded frames -> sockets.

I/O shell around :class:`~ticker.core.book.Book`, :class:`~ticker.core.conflate.Conflator` and
the per-connection cores :class:`~ticker.hub.session.Session` (requests) and
:class:`~ticker.hub.flow.Flow` (flow control). It owns the timers and the writes; what to send
is decided by those pure parts.

How a tick travels: ``publish`` folds it into the book and marks it pending in every active
window (O(windows), never O(clients)). Each window flushes on its own timer: one ``drain`` for
all of its clients, each changed symbol encoded once, one shared tail per distinct subscription
(a *group*), and per connection only ``seq`` is spliced in front before a non-blocking
``transport.write``. Nothing awaits per client, so one slow socket cannot stall the loop; a
connection that cannot keep up is held or paused by its :class:`~ticker.hub.flow.Flow` and later
caught up with one delta of what changed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from dataclasses import fields
from typing import Any, TypeVar

from ticker import __version__
from ticker.aio import cancel_and_wait
from ticker.config import HubConfig
from ticker.core.bars import INTERVALS, BarBook, IntervalError, Row
from ticker.core.book import Book, to_tenth_ms
from ticker.core.events import Bar, Event, Listing, News, Reset, Tick
from ticker.core.protocol import Ack, BarHistory, BarUpdate, Error, NewsItem, Request, wire_rows
from ticker.core.wire import WS_JSON, Format, Wire
from ticker.core.wsframe import ws_ping_frame
from ticker.hub.closing import CLOSE_GOING_AWAY, Closer
from ticker.hub.delivery import Delivery
from ticker.hub.flow import CLOSE_TRY_AGAIN, Flow, FlowRules, FlowState, Step
from ticker.hub.news import NewsRing, payload_in
from ticker.hub.pacing import Pacer, Selection
from ticker.hub.session import (
    CLOSE_POLICY,
    Bars,
    BarStream,
    Close,
    Listen,
    Move,
    Output,
    Send,
    Session,
    SessionRules,
    Snapshot,
)
from ticker.hub.windows import Client, CloseFn, Transport, Window, Windows

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_TRY_AGAIN",
    "Client",
    "Hub",
    "HubConfig",
]


WRITE, WRITE_MARKED, PAUSE, CATCH_UP = Step.WRITE, Step.WRITE_MARKED, Step.PAUSE, Step.CATCH_UP

LIVE_BARS_MAX = 100
"""Bars a live stream is sent one ``bar`` message each in one flush; more (a replay at max speed)
and it gets one fresh ``bars`` message instead."""

log = logging.getLogger("ticker.broadcaster")


R = TypeVar("R", SessionRules, FlowRules)


def _rules(cls: type[R], config: HubConfig) -> R:
    """``cls`` (a dataclass of rules) from the ``config`` fields of the same names."""
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if f.init})


class Hub:
    """Latest state, news ring and every connection; feeds publish into it, clients read from it.

    Args:
        config: settings.
        loop: the running loop (defaults to the current one).
    """

    def __init__(
        self, config: HubConfig | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.config = cfg = config or HubConfig()
        self.loop = loop or asyncio.get_running_loop()
        self.session_rules = _rules(SessionRules, cfg)
        self.flow_rules = _rules(FlowRules, cfg)
        self.default_window = self.session_rules.default_window
        self.book = Book()
        self.clients: dict[Client, None] = {}
        self.news = NewsRing(cfg.news_retain)
        self.bars = BarBook(cfg.bars)
        self._bars_of = self.bars.symbols.get  # (the per-tick lookup)
        self._bar_clients: dict[Client, None] = {}  # connections with a live bars stream
        self.stats: Counter[str] = Counter()
        self.started = time.time()
        self.windows = Windows(self.book, self.flow_rules)
        self.closer = Closer(self.loop, self.stats)
        self.delivery = Delivery(self.loop, self.stats, self.news, self.closer)
        self._news_clients: dict[Client, None] = {}
        self._paced: dict[Client, None] = {}  # connections with a bandwidth cap
        self._housekeeper: asyncio.Task[None] | None = None

    @property
    def news_last_id(self) -> int:
        """The id of the latest news item (0: none yet)."""
        return self.news.last_id

    # Ingest (called by feeds through the bus; never awaits)

    def publish(self, ev: Event) -> None:
        """Take one event from a feed: a tick, a news item or a listing."""
        if type(ev) is Tick:
            self._on_tick(ev)
        elif type(ev) is News:
            self._on_news(ev)
        elif type(ev) is Listing:
            self.book.declare(ev.symbols)
        elif type(ev) is Bar:
            self._on_bar(ev)
        elif type(ev) is Reset:
            self._on_reset(ev)
        else:
            raise TypeError(f"not an event: {type(ev).__name__}")

    def _on_tick(self, tick: Tick) -> None:
        self.stats["ticks_in"] += 1
        self.book.apply(tick)
        symbol = tick.symbol
        price = tick.price
        bars = self._bars_of(symbol)
        if bars is None:
            bars = self.bars.of(symbol)
        bars.trade(tick.ts, price, tick.size or 0.0)
        self._offer(symbol, price)

    def _offer(self, symbol: str, price: float) -> None:
        for window in self.windows.by_key.values():
            window.conflator.offer(symbol, price)
            if window.handle is None:
                self._schedule(window)

    def _on_bar(self, bar: Bar) -> None:
        self.stats["bars_in"] += 1
        width = INTERVALS.get(bar.interval)
        row = (bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume)
        try:
            if width is None:
                raise IntervalError(f"unknown interval {bar.interval!r}")
            self.bars.of(bar.symbol).bar(row, width)
        except IntervalError as exc:
            self.stats["bars_refused"] += 1
            if self.stats["bars_refused"] == 1:
                log.warning("bar of %s refused: %s", bar.symbol, exc)
            return
        self.book.apply_bar(bar)
        self._offer(bar.symbol, bar.close)

    def _on_reset(self, ev: Reset) -> None:
        """A replay seeked: forget the symbols' bars from ``ts`` on, restart their day, and
        send every live bars stream of them a fresh ``bars`` at its next flush."""
        self.stats["resets_in"] += 1
        self.bars.rewind(ev.symbols, ev.ts)
        self.book.restart(ev.symbols)
        symbols = set(ev.symbols)
        for c in self._bar_clients:
            for stream in c.session.streams.values():
                if stream.symbol in symbols:
                    stream.fresh = True
        if self._bar_clients:
            self.loop.call_soon(self._refresh_streams)

    def _refresh_streams(self) -> None:
        """Send the streams marked fresh their ``bars`` now (a reset may be followed by no
        event of their symbol)."""
        behind = self.delivery.behind
        for c in list(self._bar_clients):
            if c.closing or c in behind:
                continue
            for stream in c.session.streams.values():
                if stream.fresh:
                    self._stream_bars(c, stream)

    def _on_news(self, ev: News) -> None:
        self.stats["news_in"] += 1
        prev = self.news.last_id
        entry = self.news.add(ev, time.time() * 1000.0)
        frames: dict[Wire, bytes] = {}  # (encoded and framed once per wire)
        now = self.loop.time()
        for c in self._news_clients:
            if not c.session.wants_news(ev.symbols):
                continue
            transport = c.transport
            step = c.flow.on_news(now, transport.get_write_buffer_size(), prev, entry.id)
            if step is PAUSE:
                self.delivery.paused(c)
            elif step is WRITE and not transport.is_closing():
                wire = c.wire
                frame = frames.get(wire)
                if frame is None:
                    payload = payload_in(entry, wire.encoding)
                    frame = frames[wire] = wire.frame("news", payload, entry.id)
                transport.write(frame)
                if c.pacer is not None:  # (news counts toward a cap; never dropped)
                    c.pacer.spend(len(frame), now)
                self.stats["frames_sent"] += 1
                self.stats["bytes_sent"] += len(frame)

    # Flushing

    def _schedule(self, window: Window) -> None:
        if window.ms == 0:
            window.handle = self.loop.call_soon(self._flush, window)
        else:
            deadline = window.conflator.next_deadline()
            assert deadline is not None
            window.handle = self.loop.call_at(deadline, self._flush, window)

    def _flush(self, window: Window) -> None:
        """Send what changed in ``window`` since its last flush to every connection in it.

        Runs on the window's timer. One ``drain`` of its conflator serves all its connections:
        each changed symbol is encoded once per format (encoding and field selection), each
        group (one subscription, wire and format) gets one delta tail, and per connection only
        ``seq`` is spliced in front before a non-blocking write. Its
        :class:`Flow` decides per connection: write (with a marker ping, sometimes), or
        remember the symbols for a catch-up.
        """
        window.handle = None
        now = self.loop.time()
        conflator = window.conflator
        changes = conflator.drain(now, self.book.quotes)
        if conflator.pending:  # not due yet (the timer fired early): try again at the deadline
            self._schedule(window)
        if not changes:
            return
        if self._bar_clients:
            self._flush_bars(window, changes)
        by_format: dict[Format, dict[str, bytes]] = {}
        window.drained(changes)
        sent_at = to_tenth_ms(time.time() * 1000.0)
        flush = conflator.flushes
        news_id = self.news.last_id
        frames = 0
        nbytes = 0
        # (The loop below runs for every connection of the window: locals only, no allocation
        # but the frame itself.)
        for group in window.groups.values():
            fmt = group.format
            fragments = by_format.get(fmt)
            if fragments is None:
                fragments = by_format[fmt] = fmt.fragments(changes)
            symbols = group.covered(fragments)
            if not symbols:
                continue
            if group.paced:  # capped: each in turn, within its bytes (_pace)
                for client in group.members:
                    pacer = client.pacer
                    if pacer is not None:
                        pacer.changed(symbols)
                        self._pace(client, now)
                continue
            encoding = fmt.encoding
            tail = encoding.delta_tail(sent_at, [fragments[s] for s in symbols])
            delta_frame = group.wire.delta_frame
            for client in group.members:
                transport = client.transport
                if transport.is_closing():
                    continue
                flow = client.flow
                step = flow.on_flush(
                    symbols, flush, now, transport.get_write_buffer_size(), news_id
                )
                if step is WRITE:
                    frame = delta_frame(flow.seq, tail)
                    transport.write(frame)
                elif step is WRITE_MARKED:  # (the marker ping in the same write: one segment)
                    frame = delta_frame(flow.seq, tail)
                    transport.write(frame + ws_ping_frame(flow.marker or b""))
                else:
                    if step is PAUSE:
                        self.delivery.paused(client)
                    elif step is CATCH_UP:
                        self.delivery.catch_up(client)
                    continue
                frames += 1
                nbytes += len(frame)
        stats = self.stats
        stats["deltas_sent"] += frames
        stats["frames_sent"] += frames
        stats["bytes_sent"] += nbytes
        stats["flushes"] += 1

    # Bandwidth caps (the choices are Pacer's)

    def _cap(self, c: Client, max_bps: int, ms: int) -> list[str]:
        """Give ``c`` the cap ``max_bps`` (0: none) for window ``ms``, before it is seated.

        Returns:
            the symbols an uncapped ``c`` must now get whole (those its pacer still owed it).
        """
        pacer = c.pacer
        now = self.loop.time()
        if not max_bps:
            if pacer is None:
                return []
            c.pacer = None
            self._paced.pop(c, None)
            return [*pacer.fresh, *pacer.dirty]
        if pacer is None:
            window = c.window
            # In step with its window until now (it took every shared frame).
            base = window.conflator.flushes if window is not None and window.ms == ms else None
            c.pacer = Pacer(max_bps, now, ms / 1000.0, base)
            self._paced[c] = None
        else:
            if c.window is None or c.window.ms != ms:
                pacer.reset()
            pacer.set_cap(max_bps, ms / 1000.0)
        return []

    def _pace(self, c: Client, now: float) -> None:
        """Send capped ``c`` what its pacer chooses now: a snapshot of the symbols it must get
        whole, then one delta of the waiting ones, in one write. Stuck (its unsent bytes do not
        drain) for ``slow_close_after``: closed with 1013, as any slow consumer."""
        pacer, window, group = c.pacer, c.window, c.group
        if pacer is None or window is None or group is None or c.closing:
            return
        tr = c.transport
        if tr.is_closing():
            return
        if tr.get_write_buffer_size() > self.flow_rules.pause_bytes:
            if pacer.blocked_since is None:
                pacer.blocked_since = now
            elif now - pacer.blocked_since > self.flow_rules.slow_close_after:
                self.stats["slow_closes"] += 1
                self.close_client(c, CLOSE_TRY_AGAIN, "slow consumer")
            return
        pacer.blocked_since = None
        fmt = group.format

        def cost(symbol: str, flush: int | None) -> int:
            if flush is None:
                parts = window.fragments((symbol,), fmt)
            else:
                parts = window.changes_since((symbol,), flush, fmt)
            return len(parts[0]) if parts else 0

        sel = pacer.select(now, c.session.sub.includes, cost)
        if sel:
            self._write_paced(c, sel, now)

    def _write_paced(self, c: Client, sel: Selection, now: float) -> None:
        pacer, window, group = c.pacer, c.window, c.group
        assert pacer is not None and window is not None and group is not None
        fmt, wire, flow = group.format, c.wire, c.flow
        encoding = fmt.encoding
        out = b""
        if sel.fresh:
            parts = window.fragments(sel.fresh, fmt)
            out += wire.frame("snapshot", encoding.snapshot(flow.numbered(), parts))
            self.stats["snapshots_sent"] += 1
        if sel.waiting:
            parts = [p for s, f in sel.waiting for p in window.changes_since((s,), f, fmt)]
            tail = encoding.delta_tail(to_tenth_ms(time.time() * 1000.0), parts)
            out += wire.delta(encoding.delta_payload(flow.numbered(), tail))
            self.stats["deltas_sent"] += 1
        c.transport.write(out)
        pacer.sent(sel, window.conflator.flushes, len(out), now)
        self.stats["paced_frames"] += 1
        self.stats["frames_sent"] += bool(sel.fresh) + bool(sel.waiting)
        self.stats["bytes_sent"] += len(out)

    # Bars

    def bar_rows(
        self, symbol: str, interval: str, limit: int, before: float | None = None
    ) -> list[Row]:
        """At most ``limit`` bars of ``symbol`` (the book's name) and ``interval`` (a name of
        :data:`~ticker.core.bars.INTERVALS`) starting before ``before`` (all when None), oldest
        first; without ``before`` the last one may still be forming. None yet: ``[]``.

        Raises:
            IntervalError: the symbol's data is coarser than ``interval``.
        """
        bars = self.bars.symbols.get(symbol)
        return [] if bars is None else bars.bars(INTERVALS[interval], limit, before)

    def _answer_bars(self, c: Client, out: Bars) -> None:
        req = out.request
        try:
            rows = self.bar_rows(req.symbol, req.interval, req.limit, req.before)
        except IntervalError as exc:
            if out.stream is not None:
                c.session.streams.pop((req.symbol, req.interval), None)
            self.stats["error_bad_interval"] += 1
            self.delivery.send(c, Error("bad_interval", str(exc), req.id, finest=exc.finest))
            return
        if req.id is not None:
            fields = {"symbol": req.symbol, "interval": req.interval, "live": req.live}
            self.delivery.send(c, Ack(req.id, fields))
        self._send_history(c, req.symbol, req.interval, rows)
        if out.stream is not None:
            out.stream.last_t = rows[-1][0] if rows else None
            out.stream.fresh = False

    def _send_history(self, c: Client, symbol: str, interval: str, rows: list[Row]) -> None:
        """A ``bars`` history (an answer, or a stream starting over), counted."""
        self.delivery.send(c, BarHistory(symbol, interval, wire_rows(rows)))
        self.stats["bars_sent"] += 1

    def _flush_bars(self, window: Window, changes: dict[str, Any]) -> None:
        """Send each live bars stream of ``window``'s connections whose symbol changed its new
        and changed bars: the final values of the last one sent, then every later one (or a
        fresh ``bars`` after a rewind, or when too many closed at once)."""
        behind = self.delivery.behind
        for c in self._bar_clients:
            if c.window is not window or c.closing or c in behind:
                continue
            for stream in c.session.streams.values():
                if stream.fresh or stream.symbol in changes:
                    self._stream_bars(c, stream)

    def _stream_bars(self, c: Client, stream: BarStream) -> None:
        bars = self.bars.symbols.get(stream.symbol)
        if bars is None:
            return
        rows: list[Row] | None = None
        if not stream.fresh:
            since = -1.0 if stream.last_t is None else stream.last_t
            rows = bars.since(stream.width, since, LIVE_BARS_MAX)
        if rows is None:  # a rewind, or more than LIVE_BARS_MAX bars: start over
            try:
                rows = bars.bars(stream.width, stream.limit)
            except IntervalError:
                return
            stream.fresh = False
            self._send_history(c, stream.symbol, stream.interval, rows)
        elif rows:
            wire = c.wire
            encode = wire.encoding.encode
            frames = b"".join(
                wire.frame("bar", encode(BarUpdate(stream.symbol, stream.interval, r)))
                for r in wire_rows(rows)
            )
            transport = c.transport
            if transport.is_closing():
                return
            transport.write(frames)
            self.stats["bar_updates_sent"] += len(rows)
            self.stats["frames_sent"] += len(rows)
            self.stats["bytes_sent"] += len(frames)
        if rows:
            stream.last_t = rows[-1][0]

    # Flow control (the decisions are Flow's, the writes Delivery's)

    def pong(self, c: Client, payload: bytes) -> None:
        """A pong arrived: if it answers ``c``'s marker, everything sent before it was read.
        Any other pong (unsolicited, or answering the heartbeat) spends a control-message token:
        a pong flood is a flood like any other."""
        step = c.flow.pong(payload)
        if step is None:
            if not c.closing:
                self._take(c)
        elif step is CATCH_UP and not c.closing:
            self.delivery.catch_up(c)

    def housekeep(self) -> None:
        """Catch up paused connections whose buffer drained; close slow consumers (1013); send
        capped connections what waits (their windows may have gone quiet)."""
        now = self.loop.time()
        self.delivery.housekeep(now, self.windows.members(0))
        for c in list(self._paced):
            self._pace(c, now)
        self.closer.log_summary()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.housekeep()

    # Inbound (the answers are Session's)

    def receive(self, c: Client, data: bytes | None, binary: bool = False) -> None:
        """Handle one inbound message (``binary``: from a binary frame; ``None``: a binary
        frame's payload not given). Never raises for bad input."""
        if c.closing:
            return
        now = self.loop.time()
        self._apply(c, c.session.receive(data, now, self.book.known, self.news, binary))

    def request(self, c: Client, req: Request) -> None:
        """Carry out one request made on ``c``'s behalf (an SSE stream's query), charging no
        rate token."""
        if not c.closing:
            self._apply(c, c.session.handle(req, self.book.known, self.news))

    def _apply(self, c: Client, outputs: list[Output]) -> None:
        """Carry out what a :class:`Session` answered, in order."""
        for out in outputs:
            if isinstance(out, Send):
                if isinstance(out.message, Error):
                    self.stats[f"error_{out.message.code}"] += 1
                self.delivery.send(c, out.message)
            elif isinstance(out, Move):
                owed = self._cap(c, out.max_bps, out.window)
                self.windows.seat(c, out.window, out.sub, out.fields, out.max_bps > 0)
                if owed:
                    self.delivery.snapshot(c, owed)
            elif isinstance(out, Snapshot):
                self.delivery.snapshot(c, out.symbols)
                if c.pacer is not None:  # (its first part now, if the budget allows)
                    self._pace(c, self.loop.time())
            elif isinstance(out, Listen):
                if out.on:
                    self._news_clients[c] = None
                else:
                    self._news_clients.pop(c, None)
                if out.since is not None:
                    self.delivery.replay_news(c, out.since)
                else:
                    c.flow.news_id = self.news.last_id
            elif isinstance(out, Bars):
                self._answer_bars(c, out)
            else:
                self.close_client(c, out.code, out.reason)
        if c.session.streams:
            self._bar_clients[c] = None
        else:
            self._bar_clients.pop(c, None)

    def ping_allowed(self, c: Client) -> bool:
        """Whether to answer a WebSocket ping frame from ``c``: pings spend a control-message
        token too (a ping flood costs a pong each), go unanswered past the rate, and close the
        connection with 1008 past the burst, like any other flood."""
        return not c.closing and self._take(c)

    def frame_budget(self, c: Client) -> int:
        """How many frames ``c`` may send in one read (:meth:`Session.frame_budget`)."""
        return c.session.frame_budget(self.loop.time())

    def spend(self, c: Client, frames: int) -> None:
        """Charge ``frames`` data frames that did not end a message (fragments spend a
        control-message token each, like whole messages)."""
        if not c.closing:
            close = c.session.spend(frames, self.loop.time())
            if close is not None:
                self.close_client(c, close.code, close.reason)

    def _take(self, c: Client) -> bool:
        verdict = c.session.take(self.loop.time())
        if isinstance(verdict, Close):
            self.close_client(c, verdict.code, verdict.reason)
            return False
        return verdict

    # Connections

    def start(self) -> None:
        """Start background housekeeping (slow-consumer catch-up and closes)."""
        if self._housekeeper is None:
            self._housekeeper = self.loop.create_task(self._housekeeping())

    async def stop(self) -> None:
        """Stop housekeeping and timers (connections are closed by :meth:`close_all`)."""
        await cancel_and_wait(self._housekeeper)
        self._housekeeper = None
        for window in self.windows:
            if window.handle is not None:
                window.handle.cancel()
                window.handle = None

    def connect(
        self,
        transport: Transport,
        close: CloseFn,
        remote: str = "",
        entitled: frozenset[str] | None = None,
        preamble: bytes = b"",
        wire: Wire = WS_JSON,
    ) -> Client:
        """Register a new connection and send it ``hello`` (listing only ``entitled`` symbols,
        when given), behind ``preamble`` in the same write (the ``101`` answer, or an SSE
        response's head: one syscall).

        Args:
            wire: its encoding and framing (the negotiated subprotocol; SSE).
        """
        session = Session(
            "s-" + secrets.token_hex(6),
            self.session_rules,
            self.loop.time(),
            entitled,
            binary=wire.encoding.binary,
        )
        c = Client(transport, close, remote, session, Flow(self.flow_rules), wire)
        self.clients[c] = None
        self._cap(c, session.max_bps, session.window)  # (the server's default cap)
        self.windows.seat(c, session.window, session.sub, None, session.max_bps > 0)
        self.stats["connections_total"] += 1
        hello = session.hello(self.book.known, self.news.last_id, f"ticker/{__version__}")
        self.delivery.send_payload(c, "hello", wire.encoding.encode(hello), prefix=preamble)
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
        # (Not `pop(c, None) is None`: the values are None, so that would return before the
        # connection ever left its window, group, news list and slow-consumer list.)
        del self.clients[c]
        self._news_clients.pop(c, None)
        self._paced.pop(c, None)
        self._bar_clients.pop(c, None)
        self.delivery.behind.pop(c, None)
        self.windows.leave(c)

    async def close_all(
        self, code: int = CLOSE_GOING_AWAY, message: str = "server shutdown", wait: float = 3.0
    ) -> None:
        """Close every connection with ``code`` (1001 on shutdown), in parallel, bounded in time."""
        await self.closer.close_all(list(self.clients), code, message, wait)

    def close_client(self, c: Client, code: int, reason: str) -> None:
        """Close one connection in the background (its buffer may be full: abort if stuck)."""
        self.closer.close(c, code, reason)

    # Queries (HTTP API, /healthz, /metrics)

    def resync_all(self) -> int:
        """Send every subscribed connection a fresh ``snapshot`` (the bus was away and is back).

        Returns:
            how many connections were sent one (or had one deferred, when paused).
        """
        n = 0
        for c in list(self.clients):
            sub = c.session.sub
            if c.window is not None and not sub.empty and not c.closing:
                self.delivery.snapshot(c, sub.resolve(self.book.known))
                n += 1
        self.stats["resyncs"] += n
        return n

    def news_after(self, since: int | None, limit: int) -> list[NewsItem]:
        """Retained news with id > ``since`` (oldest first), at most ``limit``; the latest ``limit``
        when ``since`` is None."""
        return self.news.query(since, limit)

    def window_stats(self) -> dict[int, tuple[int, int, int]]:
        """Per throttle window (ms): (connections now, ticks flushed, symbol updates sent).

        The counts are cumulative over every time the window existed (for ``/metrics``); ticks
        minus updates is how many ticks were conflated away.
        """
        return self.windows.stats()

    def health(self) -> dict[str, Any]:
        """Counters and state for ``/healthz``."""
        return {
            "connections": len(self.clients),
            "slow_consumers": len(self.delivery.behind),
            "held": sum(c.flow.state is FlowState.HELD for c in self.windows.members(0)),
            "windows_ms": self.windows.intervals(),
            "groups": sum(len(w.groups) for w in self.windows),
            "symbols": len(self.book.known),
            "news_last_id": self.news.last_id,
            "news_retained": len(self.news),
            "bar_streams": sum(len(c.session.streams) for c in self._bar_clients),
            "capped": len(self._paced),
            "stats": dict(self.stats),
        }

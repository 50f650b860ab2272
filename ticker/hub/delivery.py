"""Writes to one connection, as its flow control decides: control messages, snapshots, news
replays and catch-ups; and the slow consumers waiting to be caught up or closed.

I/O shell around :class:`~ticker.hub.flow.Flow`: each method asks the connection's flow what to
do (``now`` and its unsent bytes in, a :class:`~ticker.hub.flow.Step` out) and does it. The
per-window fan-out of deltas is the hub's (``Hub._flush``); what it cannot write goes through here.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection, Iterable

from ticker.core.book import to_tenth_ms
from ticker.core.protocol import ServerMessage, message_type
from ticker.core.wsframe import ws_ping_frame
from ticker.hub.closing import Closer
from ticker.hub.flow import CLOSE_TRY_AGAIN, Step
from ticker.hub.news import NewsRing, payload_in
from ticker.hub.windows import Client

__all__ = ["Delivery"]


class Delivery:
    """Writes to single connections and tracks the paused ones.

    Args:
        loop: the running loop (its clock).
        stats: the hub's counters.
        news: the retained news (replays, and the id a pause resumes news after).
        closer: closes slow consumers (1013).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stats: Counter[str],
        news: NewsRing,
        closer: Closer,
    ) -> None:
        self.loop = loop
        self.stats = stats
        self.news = news
        self.closer = closer
        self.behind: dict[Client, None] = {}  # paused connections (slow consumers)

    # Writing

    def send(self, c: Client, msg: ServerMessage) -> None:
        """Send one message (hello, ack, error, pong, bars...) to one connection, in its
        encoding."""
        self.send_payload(c, message_type(msg), c.wire.encoding.encode(msg))

    def send_payload(
        self,
        c: Client,
        kind: str,
        payload: bytes,
        trailer: bytes = b"",
        prefix: bytes = b"",
        id: int | None = None,
    ) -> None:
        """Write one message of type ``kind`` already in ``c``'s encoding (and ``trailer``, a
        control frame, after it and ``prefix`` before it, in the same write; ``id``: a news
        item's)."""
        tr = c.transport
        if c.closing or tr.is_closing():
            return
        frame = c.wire.frame(kind, payload, id)
        tr.write(prefix + frame + trailer if trailer or prefix else frame)
        self.stats["frames_sent"] += 1
        self.stats["bytes_sent"] += len(frame)

    def snapshot(self, c: Client, symbols: Collection[str]) -> None:
        """Send ``c`` a snapshot of ``symbols`` as its window last flushed them (deferred to its
        catch-up while it is paused)."""
        window, group = c.window, c.group
        assert window is not None and group is not None
        if c.pacer is not None:  # capped: the snapshot goes as its bytes allow (Hub._pace)
            c.pacer.refresh(symbols)
            return
        flow = c.flow
        unsent = c.transport.get_write_buffer_size()
        step = flow.snapshot(symbols, self.loop.time(), unsent, self.news.last_id)
        if step is not Step.WRITE:
            if step is Step.PAUSE:
                self.paused(c)
            self.stats["snapshots_deferred"] += 1
            return
        self.stats["snapshots_sent"] += 1
        parts = window.fragments(symbols, group.format)
        self.send_payload(c, "snapshot", c.wire.encoding.snapshot(flow.seq, parts))

    def replay_news(self, c: Client, since: int) -> None:
        """Send retained news with id > ``since`` on ``c``'s topics, oldest first (paced: a
        replay that fills the buffer pauses ``c``, and its catch-up continues it)."""
        session, flow, transport = c.session, c.flow, c.transport
        encoding = c.wire.encoding
        now = self.loop.time()
        last = since
        for entry in self.news.newer_than(since):
            if session.wants_news(entry.symbols):
                step = flow.on_replay(now, transport.get_write_buffer_size(), last)
                if step is not Step.WRITE:
                    if step is Step.PAUSE:
                        self.paused(c)
                    return
                payload = payload_in(entry, encoding)
                self.send_payload(c, "news", payload, id=entry.id)
                if c.pacer is not None:
                    c.pacer.spend(len(payload), now)
            last = entry.id
        flow.news_id = max(flow.news_id, self.news.last_id)

    # Held and paused connections

    def paused(self, c: Client) -> None:
        """``c``'s flow has just paused it: track it until it is caught up or closed."""
        self.behind[c] = None
        self.stats["slow_behind"] += 1

    def catch_up(self, c: Client) -> None:
        """Bring a held or paused ``c`` up to date (:meth:`Flow.catch_up`): a snapshot of the
        symbols it must get whole, one delta of the fields its missed symbols changed since its
        last frame (held on window 0: then a marker ping, in the same write), and if it was
        paused, the news it missed."""
        flow = c.flow
        plan = flow.catch_up(c.session.sub.includes)
        if plan.news_since is None:
            self.stats["flow_catchups"] += 1
        else:
            self.behind.pop(c, None)
            self.stats["slow_resyncs"] += 1
        window, group = c.window, c.group
        if window is not None and group is not None:
            if plan.fresh:
                self.snapshot(c, plan.fresh)
            parts = window.changes_since(plan.missed, plan.synced, group.format)
            clock = plan.clock and bool(parts or plan.fresh)
            marker = ws_ping_frame(flow.mark(self.loop.time())) if clock else b""
            if parts:
                self.stats["catchup_deltas"] += 1
                enc = c.wire.encoding
                tail = enc.delta_tail(to_tenth_ms(time.time() * 1000.0), parts)
                self.send_payload(c, "delta", enc.delta_payload(flow.numbered(), tail), marker)
            elif marker:
                c.transport.write(marker)
        if plan.news_since is not None and c.session.listening:
            self.replay_news(c, plan.news_since)

    def housekeep(self, now: float, clocked: Iterable[Client]) -> None:
        """Catch up paused connections whose buffer has drained; close (1013) those paused too
        long, and the ``clocked`` (window-0) ones that leave a marker unanswered too long."""
        for c in list(self.behind):
            if c.closing:
                self.behind.pop(c, None)
                continue
            step = c.flow.check_paused(now, c.transport.get_write_buffer_size())
            if step is Step.CATCH_UP:
                self.catch_up(c)
            elif step is Step.CLOSE:
                self.behind.pop(c, None)
                self._close_slow(c)
        for c in clocked:
            if not c.closing and c.flow.marker_overdue(now):
                self._close_slow(c)

    def _close_slow(self, c: Client) -> None:
        self.stats["slow_closes"] += 1
        self.closer.close(c, CLOSE_TRY_AGAIN, "slow consumer")

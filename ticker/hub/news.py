"""Retained news: the ring that serves ``since`` replays, catch-ups and ``/api/news``.

Pure; no I/O. The caller passes the wall clock (``wall_ms``) that news ids start from.

News is never conflated: every item on a connection's topics is written to it, and the last
``retain`` items are kept (already encoded) so that a client resuming with ``since``, or one
caught up after a pause, gets each item it missed exactly once, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

from ticker.core.events import News
from ticker.core.news_id import next_news_id
from ticker.core.protocol import NewsItem, encode
from ticker.core.wire import JSON, Encoding

__all__ = ["NewsRing", "Retained", "payload_in"]


class Retained(NamedTuple):
    """One retained item: its id, its symbols, its encoded ``news`` payload and the message."""

    id: int
    symbols: tuple[str, ...]
    payload: bytes
    item: NewsItem


def payload_in(entry: Retained, encoding: Encoding) -> bytes:
    """``entry``'s ``news`` message in ``encoding`` (JSON: the payload encoded when it came)."""
    return entry.payload if encoding is JSON else encoding.encode(entry.item)


class NewsRing:
    """The last ``retain`` news items, oldest first, and the id rule.

    Indexing and iterating give :class:`Retained` entries (``ring[0].id`` is the oldest id).

    Args:
        retain: how many items to keep.
    """

    __slots__ = ("items", "last_id")

    def __init__(self, retain: int) -> None:
        self.items: deque[Retained] = deque(maxlen=retain)
        self.last_id = 0

    def add(self, ev: News, wall_ms: float) -> Retained:
        """Give ``ev`` its id, encode it once and retain it.

        Args:
            ev: the news event (its ``id`` is kept when it is newer than the last one).
            wall_ms: the wall clock in epoch ms.
        """
        prev = self.last_id
        # Ids increase across restarts too (they start from the wall clock in ms), so a client
        # that resumes with `since` after a server restart never sees an id twice.
        nid = ev.id if ev.id > prev else next_news_id(prev, wall_ms / 1000.0)
        self.last_id = nid
        item = NewsItem(nid, ev.ts, ev.headline, ev.source, ev.symbols, ev.url, ev.summary)
        # A copy: orjson's bytes keep its whole 4 KiB output buffer, which the ring would hold
        # `retain` times over.
        payload = memoryview(encode(item)).tobytes()
        entry = Retained(nid, ev.symbols, payload, item)
        self.items.append(entry)
        return entry

    @property
    def oldest_id(self) -> int:
        """The oldest retained id (the next id to come when nothing is retained)."""
        return self.items[0].id if self.items else self.last_id + 1

    def newer_than(self, since: int) -> list[Retained]:
        """Retained items with id > ``since``, oldest first."""
        out: list[Retained] = []
        for entry in reversed(self.items):  # (the newest are at the end: stop at the first old)
            if entry.id <= since:
                break
            out.append(entry)
        out.reverse()
        return out

    def query(self, since: int | None, limit: int) -> list[NewsItem]:
        """``/api/news``: items with id > ``since`` (oldest first), at most ``limit``; the latest
        ``limit`` when ``since`` is None."""
        if since is None:
            return [e.item for e in list(self.items)[-limit:]] if limit > 0 else []
        return [e.item for e in self.newer_than(since)[:limit]]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Retained]:
        return iter(self.items)

    def __getitem__(self, i: int) -> Retained:
        return self.items[i]

"""Test helpers for adapter authors and our own tests: a scriptable ``FakeFeed``.

``FakeFeed`` yields events pushed to it (``push``) or given up front, so tests drive the server
deterministically, with no clock and no mocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from ticker.events import Event

__all__ = ["FakeFeed"]


class FakeFeed:
    """A feed that yields ``events`` and then whatever is ``push``-ed, until ``end()``.

    Args:
        events: yielded first, in order.
        name: the feed's name.
    """

    def __init__(self, events: Iterable[Event] = (), name: str = "fake") -> None:
        self.name = name
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for ev in events:
            self._queue.put_nowait(ev)
        self.closed = False

    def push(self, *events: Event) -> None:
        """Make events available to the running ``events()`` iterator."""
        for ev in events:
            self._queue.put_nowait(ev)

    def end(self) -> None:
        """Finish the iterator after what was pushed so far."""
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            ev = await self._queue.get()
            if ev is None:
                return
            yield ev

    async def aclose(self) -> None:
        self.closed = True

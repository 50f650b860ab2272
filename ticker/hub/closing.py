"""Closing connections from the hub: in the background, bounded in time, logged at a rate.

I/O shell (asyncio tasks and timeouts) around each connection's ``close`` (a close frame, then
the wait for the peer's: ``ticker.net.wsconn``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Collection
from typing import Any

from ticker.core.limits import TokenBucket
from ticker.hub.windows import Client

__all__ = ["CLOSE_GOING_AWAY", "Closer"]

log = logging.getLogger("ticker.broadcaster")

CLOSE_GOING_AWAY = 1001


class Closer:
    """Closes connections for the hub and counts the codes in ``stats`` (``closed_<code>``).

    Args:
        loop: the running loop.
        stats: the hub's counters.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, stats: Counter[str]) -> None:
        self.loop = loop
        self.stats = stats
        self.tasks: set[asyncio.Task[Any]] = set()
        # Policy closes are logged one by one up to a rate, then summed up (a burst of 1013s
        # on a network hiccup must not flood the log).
        self._log_bucket = TokenBucket(2.0, 20.0, loop.time())
        self._unlogged = 0

    def close(self, c: Client, code: int, reason: str) -> None:
        """Close one connection in the background (its buffer may be full: abort if stuck)."""
        if c.closing:
            return
        c.closing = True
        self.stats[f"closed_{code}"] += 1
        if self._log_bucket.take(self.loop.time()):
            log.info(
                "closing %s with %d: %s",
                c.session.id,
                code,
                reason,
                extra={"session": c.session.id, "remote": c.remote, "code": code},
            )
        else:
            self._unlogged += 1

        async def run() -> None:
            try:
                async with asyncio.timeout(2.0):
                    await c.close(code, reason)
            except (TimeoutError, ConnectionError, RuntimeError):
                c.transport.abort()

        task = self.loop.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def log_summary(self) -> None:
        """Log how many closes went unlogged, when the rate allows (called periodically)."""
        if self._unlogged and self._log_bucket.take(self.loop.time()):
            log.info(
                "closed %d more connections (1008/1013: see ticker_closes_total)",
                self._unlogged,
                extra={"count": self._unlogged},
            )
            self._unlogged = 0

    async def close_all(
        self, clients: Collection[Client], code: int, message: str, wait: float
    ) -> None:
        """Close ``clients`` with ``code``, in parallel, within ``wait`` seconds."""
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

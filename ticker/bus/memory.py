"""The bus feeds publish into, and its in-process implementation.

``MemoryBus`` (one process, the default) hands each event straight to the hub; ``RedisBus``
(``ticker.bus.redis``) shares them between processes through Redis Streams. Both satisfy
:class:`Bus`; the Redis bus also has the optional :class:`Transactional` capability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ticker.core.events import Event

__all__ = ["Bus", "MemoryBus", "Transactional"]


class Bus(Protocol):
    """What feeds publish into and ``/healthz`` reports: ``MemoryBus`` or ``RedisBus``."""

    def publish(self, ev: Event) -> None: ...

    def health(self) -> dict[str, Any]: ...


@runtime_checkable
class Transactional(Protocol):
    """A bus that applies a batch of events from an external producer all or nothing, and numbers
    its news items itself (``RedisBus``): the publish API posts through it.

    Without it (``MemoryBus``) the publish API publishes event by event and the hub numbers news.
    """

    async def post(self, events: Sequence[Event]) -> list[int]:
        """Write ``events`` at once; the ids given to the news items among them, in order.
        Raises when nothing was written."""
        ...


class MemoryBus:
    """In-process bus: ``publish`` hands each event straight to the subscriber (the hub)."""

    def __init__(self, sink: Callable[[Event], None]) -> None:
        self.sink = sink
        self.published = 0

    def publish(self, ev: Event) -> None:
        self.published += 1
        self.sink(ev)

    def health(self) -> dict[str, Any]:
        return {"kind": "memory", "state": "up", "published": self.published}

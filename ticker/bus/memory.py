"""The bus feeds publish into, and its in-process implementation.

``MemoryBus`` (one process, the default) hands each event straight to the hub; ``RedisBus``
(``ticker.bus.redis``) shares them between processes through Redis Streams. Both satisfy
:class:`Bus`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ticker.core.events import Event

__all__ = ["Bus", "MemoryBus"]


class Bus(Protocol):
    """What feeds publish into and ``/healthz`` reports: ``MemoryBus`` or ``RedisBus``."""

    def publish(self, ev: Event) -> None: ...

    def health(self) -> dict[str, Any]: ...


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

"""A Python client for a Ticker server (``from ticker.client import Client``).

Importing it pulls in aiohttp and nothing of the server; pandas loads when a DataFrame is asked
for. :class:`Client` is asyncio; :class:`SyncClient` wraps it for scripts and notebooks. The
names load on first use, so that ``ticker.client.state`` (pure) can be imported alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ticker.client.client import Client, Event, TickerError
    from ticker.client.state import ClientState, NewsEvent, QuoteEvent
    from ticker.client.sync import SyncClient

__all__ = [
    "Client",
    "ClientState",
    "Event",
    "NewsEvent",
    "QuoteEvent",
    "SyncClient",
    "TickerError",
]

_HOME = {
    "Client": "client",
    "Event": "client",
    "TickerError": "client",
    "ClientState": "state",
    "NewsEvent": "state",
    "QuoteEvent": "state",
    "SyncClient": "sync",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'ticker.client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ticker.client.{_HOME[name]}"), name)

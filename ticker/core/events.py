"""Event types that flow from feeds into the core.

Pure; no I/O and no project imports. Feeds (ours and third parties') build these and nothing else.
Times are Unix epoch **milliseconds** as floats (sub-millisecond precision), as on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Event", "Feed", "FeedFactory", "Listing", "News", "Tick"]


@dataclass(frozen=True, slots=True)
class Tick:
    """One price update for one symbol.

    Args:
        symbol: ticker symbol, e.g. ``"AAPL"``.
        price: last trade (or mid) price; must be finite and positive.
        ts: event time at the source, epoch ms.
        size: this trade's own size, when the source gives it.
        bid: best bid, when known.
        ask: best ask, when known.
        volume: cumulative session volume, when the source gives it. When it does not, the core
            accumulates ``size``.
        prev_close: previous session close; ``change``/``change_pct`` are computed against it.
    """

    symbol: str
    price: float
    ts: float
    size: float | None = None
    bid: float | None = None
    ask: float | None = None
    volume: float | None = None
    prev_close: float | None = None


@dataclass(frozen=True, slots=True)
class News:
    """One news item. ``id`` is assigned by the core (0 from feeds); ids increase service-wide.

    Args:
        headline: the title, plain text.
        ts: publication time, epoch ms.
        source: who published it (feed or publisher name).
        symbols: symbols the item is tagged with.
        url: link to the full story.
        summary: plain-text summary.
        id: service-wide id, strictly increasing; set by the core.
    """

    headline: str
    ts: float
    source: str
    symbols: tuple[str, ...] = ()
    url: str | None = None
    summary: str | None = None
    id: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    """A feed declares symbols it will (or may) publish, before their first tick.

    A declared symbol is *known*: clients may subscribe to it at once (docs/protocol.md, "Symbols").
    """

    symbols: tuple[str, ...]


Event = Tick | News | Listing


@runtime_checkable
class Feed(Protocol):
    """Source of events. Owns its own I/O, reconnects and pacing.

    ``events()`` is an async iterator of :data:`Event`; it ends when the feed has nothing more to
    say (a finished replay), and raises when the feed fails (the core restarts it with backoff).
    ``aclose()`` releases whatever the feed holds; the core calls it after the iterator stops.
    Adapters need not import this class: any object of this shape is a feed.
    """

    name: str

    def events(self) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None: ...


FeedFactory = Callable[[Mapping[str, str]], Feed]
"""What an entry point in group ``ticker.feeds`` names: options (``key=value`` strings) -> feed.
Raise ``ValueError`` with a one-line message for an unknown or bad option."""

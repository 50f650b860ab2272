"""Event types that flow from feeds into the core, and the feed API: :class:`Feed` and the
optional capabilities a feed may have.

Pure; no I/O and no project imports. Feeds (ours and third parties') build these and nothing else.
Times are Unix epoch **milliseconds** as floats (sub-millisecond precision), as on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "QUIET_STATES",
    "Bar",
    "Controllable",
    "Event",
    "Feed",
    "FeedFactory",
    "HasHealth",
    "HasNames",
    "HasStallTimeout",
    "HasStatus",
    "Listing",
    "LoadSummary",
    "News",
    "Preloadable",
    "Reset",
    "Tick",
]


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


@dataclass(frozen=True, slots=True)
class Bar:
    """One final OHLCV bar of one symbol: a replayed bar file's row, a vendor's minute bar.

    The core builds every coarser interval from it (and no finer one), and it updates the quote:
    ``price`` becomes ``close``; the day's ``open``/``high``/``low``/``volume`` take it in.

    Args:
        symbol: ticker symbol.
        ts: the bar's open time, epoch ms in the market clock (a multiple of the interval).
        interval: its width, one of ``1s 5s 15s 1m 5m 15m 1h 1d`` (:mod:`ticker.core.bars`).
        open: first trade price in the bar.
        high: highest trade price (>= open, close, low).
        low: lowest trade price.
        close: last trade price.
        volume: traded volume within the bar.
    """

    symbol: str
    ts: float
    interval: str
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class Reset:
    """A feed's market clock jumped (a replay seek): forget what ``symbols`` did at or after
    ``ts`` (their bars from then on; their day statistics restart with the next event). The
    events that follow rebuild it.

    Args:
        symbols: the symbols whose state restarts.
        ts: epoch ms in the market clock, a UTC midnight when sent by the replay.
    """

    symbols: tuple[str, ...]
    ts: float


Event = Tick | News | Listing | Bar | Reset


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


# Optional capabilities. A feed has one when it has the attribute (not None): the core checks with
# isinstance() against these runtime-checkable Protocols, mypy checks the shapes (declare them by
# subclassing, as ticker_feeds.replay does, or just write the methods), and
# ticker_feeds.testing.check_feed checks that a feed that has one has it with the right shape.

QUIET_STATES = frozenset({"loading", "paused", "finished"})
"""The states of :meth:`HasStatus.status` in which a feed is quiet on purpose."""


@runtime_checkable
class HasHealth(Protocol):
    """A feed that reports on itself: ``/healthz`` shows ``health()`` as its ``detail``.

    A list under ``"stale"`` (symbols whose source went quiet) is also shown as the feed's
    ``stale``. Called on the event loop: keep it cheap. An exception is shown, not raised.
    """

    def health(self) -> dict[str, Any]: ...


@runtime_checkable
class HasStatus(Protocol):
    """A feed that names its own state (e.g. ``up``, ``reconnecting``).

    One of :data:`QUIET_STATES` means quiet on purpose (a paused or finished replay): it shows as
    the feed's state in ``/healthz``, and silence is then not a stall.
    """

    def status(self) -> str: ...


@runtime_checkable
class HasStallTimeout(Protocol):
    """A feed that says how long a silence means it is stuck: after ``stall_timeout`` seconds
    without an event it is restarted (None or 0: never). Usually a class attribute;
    ``--stall-timeout`` overrides it."""

    @property
    def stall_timeout(self) -> float | None: ...


@runtime_checkable
class HasNames(Protocol):
    """A feed that knows its symbols' names (``{"AAPL": "Apple Inc."}``): ``GET /api/symbols``
    gives each one's ``name``, and the dashboard's search finds symbols by it. Called on the
    event loop for each request: return a mapping it already holds."""

    def names(self) -> Mapping[str, str]: ...


@runtime_checkable
class Controllable(Protocol):
    """A feed whose playback can be steered: ``GET``/``POST /api/replay`` (a replay)."""

    def replay_status(self) -> dict[str, Any] | None:
        """Its entry in ``GET /api/replay`` (``state``, ``speed``, ``clock``, ``start``,
        ``end``); None while it cannot be steered yet (still loading)."""
        ...

    def replay_control(
        self, action: str, *, to: float | None = None, speed: float | None = None
    ) -> None:
        """Apply ``pause``, ``resume``, ``seek`` (``to``, epoch ms) or ``speed`` (market s per
        s; inf = max). Raises ``ValueError`` (a ``ReplayError``) for one it cannot apply."""
        ...


@runtime_checkable
class LoadSummary(Protocol):
    """What :meth:`Preloadable.load` returns: the number of events and a one-line summary."""

    @property
    def events(self) -> int: ...

    def summary(self) -> str: ...


@runtime_checkable
class Preloadable(Protocol):
    """A feed that can read its data before it is served (blocking): ``ticker replay`` loads
    first, so unreadable data is a usage error and ``--check`` prints the summary."""

    def load(self) -> LoadSummary: ...

"""Connections and where they sit: throttle windows, and groups within a window.

Pure; no I/O (a window holds its flush timer's handle; the hub runs the timers and the writes).

A *window* is one throttle interval (ms) at one *phase*, with its own
:class:`~ticker.core.conflate.Conflator`; a window of 250 ms or more keeps to a grid. Once an
interval holds many connections (:data:`PHASE_MIN_CLIENTS`), newcomers are dealt round-robin
over several phases (:func:`phases`: one per 125 ms of the interval, at most 8), whose grids are
spread evenly over the interval: 50,000 connections on a 1 s window get their frames in 8 bursts
of ~6,250, 125 ms apart, instead of one burst of 50,000 whose last frame leaves long after its
first. A *group* is the connections of a window with equal subscriptions, wires (encoding and
framing, :mod:`ticker.core.wire`) and field selections, which therefore get the very same delta
bytes (only ``seq`` differs). A window exists while a connection sits in it. Encoded quotes are
cached per :class:`~ticker.core.wire.Format` (encoding and fields): each symbol is encoded once
per flush per format, whatever the number of groups.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import Any, Protocol

from ticker.core.book import Book
from ticker.core.conflate import Conflator, Subscription
from ticker.core.wire import WS_JSON, Format, Wire
from ticker.hub.flow import Flow, FlowRules
from ticker.hub.pacing import Pacer
from ticker.hub.session import Session

__all__ = [
    "MAX_PHASES",
    "PHASE_MIN_CLIENTS",
    "PHASE_MS",
    "Client",
    "CloseFn",
    "Group",
    "GroupKey",
    "Handle",
    "Transport",
    "Window",
    "Windows",
    "phases",
]

PHASE_MS = 125
"""A window gets one phase per this many ms of its interval (so phases are this far apart)."""
MAX_PHASES = 8
"""At most this many phases per interval."""
PHASE_MIN_CLIENTS = 500
"""Connections an interval holds before newcomers are dealt over phases: one burst to fewer is
short (~5 ms), and each phase keeps its own conflator, i.e. a copy of every quote."""


def phases(ms: int) -> int:
    """How many phases a window of ``ms`` has: 1 below 250 ms (its one burst is short), else one
    per :data:`PHASE_MS`, at most :data:`MAX_PHASES`."""
    return max(1, min(MAX_PHASES, ms // PHASE_MS))


class Transport(Protocol):
    """What the hub needs of a connection's transport (an ``asyncio.WriteTransport``)."""

    def write(self, data: bytes) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


class Handle(Protocol):
    """A scheduled call (``asyncio.Handle``)."""

    def cancel(self) -> None: ...


CloseFn = Callable[[int, str], Awaitable[Any]]


class Client:
    """One connection (a WebSocket, or an SSE stream) as the hub holds it: its transport, its
    wire (encoding and framing, :mod:`ticker.core.wire`), its requests
    (:class:`~ticker.hub.session.Session`), its flow control (:class:`~ticker.hub.flow.Flow`)
    and its seat (window and group)."""

    __slots__ = (
        "__weakref__",
        "close",
        "closing",
        "flow",
        "group",
        "pacer",
        "remote",
        "session",
        "transport",
        "window",
        "wire",
    )

    def __init__(
        self,
        transport: Transport,
        close: CloseFn,
        remote: str,
        session: Session,
        flow: Flow,
        wire: Wire = WS_JSON,
    ) -> None:
        self.transport = transport
        self.wire = wire  # how its messages become bytes
        self.close = close  # sends a close frame and waits for the peer's
        self.remote = remote
        self.session = session
        self.flow = flow
        self.window: Window | None = None
        self.group: Group | None = None
        self.pacer: Pacer | None = None  # its bandwidth cap (None: uncapped)
        self.closing = False


GroupKey = tuple[Subscription, Wire, frozenset[str] | None, bool]


class Group:
    """Connections that share a window, a subscription, a wire and a field selection, hence the
    same delta bytes; or (``paced``) capped connections, each sent its own frames by its
    :class:`~ticker.hub.pacing.Pacer`."""

    __slots__ = ("format", "key", "members", "paced", "sub", "wire")

    def __init__(
        self, sub: Subscription, wire: Wire, fields: frozenset[str] | None, paced: bool = False
    ) -> None:
        self.sub = sub
        self.wire = wire
        self.paced = paced
        self.format = Format.of(wire.encoding, fields)
        self.key: GroupKey = (sub, wire, fields, paced)
        self.members: dict[Client, None] = {}

    def covered(self, changed: Collection[str]) -> list[str]:
        """The symbols of ``changed`` that its subscription covers."""
        sub = self.sub
        # Scan the smaller side: a watchlist of five in a window where fifty symbols changed
        # looks up five, and "*" looks up its few exclusions.
        if sub.every:
            excluded = sub.symbols
            return [s for s in changed if s not in excluded]
        if len(sub.symbols) < len(changed):
            return [s for s in sub.symbols if s in changed]
        included = sub.symbols
        return [s for s in changed if s in included]


class Window:
    """One throttle window: its Conflator, its flush timer, its groups and encoding caches."""

    __slots__ = (
        "clients",
        "conflator",
        "frag_cache",
        "groups",
        "handle",
        "ms",
        "phase",
        "since_cache",
    )

    def __init__(self, ms: int, conflator: Conflator, phase: int = 0) -> None:
        self.ms = ms
        self.phase = phase  # which of the interval's phases (0 .. phases(ms) - 1)
        self.conflator = conflator
        # format -> symbol -> encoded full quote as last flushed (snapshots reuse it until the
        # next drain)
        self.frag_cache: dict[Format, dict[str, bytes]] = {}
        # format -> (symbol, flush) -> encoded fields changed since that flush (catch-ups), until
        # the next drain: held clients that stopped at the same flush share one encoding.
        self.since_cache: dict[Format, dict[tuple[str, int], bytes]] = {}
        self.groups: dict[GroupKey, Group] = {}
        self.handle: Handle | None = None
        self.clients = 0

    def drained(self, changed: Collection[str]) -> None:
        """Drop what the caches hold of before a drain that ``changed`` these symbols."""
        for cache in self.frag_cache.values():
            for symbol in changed:
                cache.pop(symbol, None)
        self.since_cache.clear()

    def fragments(self, symbols: Collection[str], fmt: Format) -> list[bytes]:
        """Encoded full quotes of ``symbols`` as last flushed (those flushed at least once), in
        format ``fmt``."""
        cache = self.frag_cache.get(fmt)
        if cache is None:
            cache = self.frag_cache[fmt] = {}
        sent = self.conflator.sent
        parts = []
        for s in symbols:
            f = cache.get(s)
            if f is None:
                q = sent.get(s)
                if q is None:
                    continue
                f = cache[s] = fmt.snapshot_fragments({s: q})[s]
            parts.append(f)
        return parts

    def changes_since(self, symbols: Collection[str], flush: int, fmt: Format) -> list[bytes]:
        """Encoded per-symbol changes since ``flush`` (``Conflator.changes_since``), in format
        ``fmt`` (a symbol none of whose selected fields changed is left out)."""
        cache = self.since_cache.get(fmt)
        if cache is None:
            cache = self.since_cache[fmt] = {}
        out = []
        for s in symbols:
            key = (s, flush)
            f = cache.get(key)
            if f is None:
                d = self.conflator.changes_since((s,), flush)
                f = cache[key] = fmt.fragments(d).get(s, b"") if d else b""
            if f:
                out.append(f)
        return out


class Windows:
    """The active windows (by ms and phase) and the seat of every connection in them.

    Args:
        book: the book (a new window's conflator starts from its quotes).
        rules: flow-control bounds (which windows clock their connections with markers).
    """

    __slots__ = ("book", "by_key", "phase_min_clients", "retired", "rules", "turn")

    def __init__(
        self, book: Book, rules: FlowRules, phase_min_clients: int = PHASE_MIN_CLIENTS
    ) -> None:
        self.book = book
        self.rules = rules
        # Newcomers to an interval are dealt over its phases once it holds this many.
        self.phase_min_clients = phase_min_clients
        self.by_key: dict[tuple[int, int], Window] = {}
        # Per window (ms): [ticks, updates] of its conflators that are gone (for /metrics).
        self.retired: dict[int, list[int]] = {}
        self.turn = 0  # connections seated in a new interval so far (deals the phases)

    def __iter__(self) -> Iterator[Window]:
        return iter(self.by_key.values())

    def clients_in(self, ms: int) -> int:
        """Connections in interval ``ms`` now (every phase)."""
        return sum(w.clients for w in self.by_key.values() if w.ms == ms)

    def intervals(self) -> list[int]:
        """The intervals (ms) that have connections, ascending."""
        return sorted({w.ms for w in self.by_key.values()})

    def seat(
        self,
        c: Client,
        ms: int,
        sub: Subscription,
        fields: frozenset[str] | None = None,
        paced: bool = False,
    ) -> None:
        """Put ``c`` in the group for (window ``ms``, ``sub``, its wire, ``fields``, ``paced``),
        creating either when needed."""
        key: GroupKey = (sub, c.wire, fields, paced)
        if (
            c.window is not None
            and c.window.ms == ms
            and c.group is not None
            and c.group.key == key
        ):
            return
        same = c.window if c.window is not None and c.window.ms == ms else None
        if same is not None:
            phase = same.phase  # (a new subscription keeps its phase)
        else:
            n = phases(ms)
            if n > 1 and self.clients_in(ms) < self.phase_min_clients:
                n = 1
            phase = self.turn % n if n > 1 else 0
            self.turn += 1
        if same is not None:
            # Only the group changes: hold the window while leaving its group. Were it dropped
            # (its last client) and made afresh from the book, the ticks still pending in it
            # would never reach this client, which keeps its other symbols without a snapshot.
            same.clients += 1
        else:
            c.flow.moved(self.rules.clocks(ms) and c.wire.pings, sub.includes)
        self.leave(c)
        if same is not None:
            same.clients -= 1
        window = self.by_key.get((ms, phase))
        if window is None:
            window = self.by_key[ms, phase] = self._window(ms, phase)
        window.clients += 1
        group = window.groups.get(key)
        if group is None:
            group = window.groups[key] = Group(sub, c.wire, fields, paced)
        group.members[c] = None
        c.window = window
        c.group = group

    def _window(self, ms: int, phase: int) -> Window:
        n = phases(ms)
        interval = ms / 1000.0
        grid = None if n == 1 else phase * interval / n  # (on the hub loop's clock)
        return Window(ms, Conflator(interval, self.book.quotes, grid), phase)

    def leave(self, c: Client) -> None:
        """Take ``c`` out of its group and window (a window left empty is dropped)."""
        window, group = c.window, c.group
        if group is not None and window is not None:
            group.members.pop(c, None)
            if not group.members:
                del window.groups[group.key]
        if window is not None:
            window.clients -= 1
            if window.clients == 0:
                if window.handle is not None:
                    window.handle.cancel()
                totals = self.retired.setdefault(window.ms, [0, 0])
                totals[0] += window.conflator.ticks
                totals[1] += window.conflator.updates
                del self.by_key[window.ms, window.phase]
        c.window = None
        c.group = None

    def members(self, ms: int) -> list[Client]:
        """The connections in interval ``ms`` now (every phase)."""
        return [
            c
            for w in self.by_key.values()
            if w.ms == ms
            for g in w.groups.values()
            for c in g.members
        ]

    def stats(self) -> dict[int, tuple[int, int, int]]:
        """Per window (ms): (connections now, ticks flushed, symbol updates sent), cumulative
        over every time the window existed."""
        out = {ms: (0, t, u) for ms, (t, u) in self.retired.items()}
        for w in self.by_key.values():  # (the phases of an interval add up)
            n, t, u = out.get(w.ms, (0, 0, 0))
            out[w.ms] = (n + w.clients, t + w.conflator.ticks, u + w.conflator.updates)
        return out

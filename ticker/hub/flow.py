"""Flow control of one connection: live, held or paused, and what each send does to it.

Pure; no I/O. The caller passes ``now`` (``loop.time()`` seconds) and the connection's unsent
byte count (``transport.get_write_buffer_size()``); each method returns a :class:`Step` (or a
:class:`CatchUp` plan) and the shell does the writing.

A connection is in one of three states (:class:`FlowState`):

``LIVE``
    Frames are written as they come. On window 0 (with flow control on) a *marker* ping follows
    every :data:`MARK_FRAMES`-th frame of a fast stream; its pong proves the client has read
    everything written before it.
``HELD``
    Window 0: the marker's pong is later than ``hold``, so the client is still reading older
    frames. Nothing is written; the symbols that changed are remembered (``missed``). When the
    pong comes, one delta of the fields changed since its last frame brings it up to date.
``PAUSED``
    More unsent bytes than ``pause_bytes`` (the kernel took no more: its previous frame is still
    in flight). Deltas and live news stop; the hub remembers which symbols it missed (never the
    ticks, so memory is bounded by its symbol count) and the news id it is up to. Once the buffer
    has drained it is caught up: a snapshot of what it must get whole, one delta of what changed,
    then the news it missed. Paused for ``slow_close_after`` seconds, it is closed (1013).

Transitions, and the method that makes each::

    LIVE   -> HELD     on_flush: the marker is older than the hold
    LIVE   -> PAUSED   on_flush, on_news: unsent > pause_bytes;
    HELD   -> PAUSED   snapshot, on_replay: unsent > max_buffer_bytes
    HELD   -> LIVE     pong (of the marker), then catch_up
    PAUSED -> LIVE     on_flush or check_paused finds the buffer drained, then catch_up
    PAUSED -> closed   check_paused: paused past slow_close_after (any state: marker_overdue)

A caught-up client's copy is as of flush ``synced`` of its window, so
``Conflator.changes_since(missed, synced)`` is exactly what it lacks. ``seq`` is numbered here:
every snapshot and delta written to the connection takes the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "CLOSE_TRY_AGAIN",
    "MARK_FRAMES",
    "CatchUp",
    "Flow",
    "FlowRules",
    "FlowState",
    "Step",
]

CLOSE_TRY_AGAIN = 1013

# A marker ping goes after every MARK_FRAMES-th frame of a fast stream a client keeps up with (and
# after every catch-up): each pong is an inbound frame to parse, so a client costs a pong per few
# frames, not per frame; a backlog of a few frames is harmless.
MARK_FRAMES = 4


class FlowState(Enum):
    """Where a connection stands (see the module docstring)."""

    LIVE = "live"
    HELD = "held"
    PAUSED = "paused"


class Step(Enum):
    """What the shell does for one send decision."""

    WRITE = "write"  # write the frame (a delta or snapshot takes ``Flow.seq``)
    WRITE_MARKED = "write_marked"  # ... then the marker ping ``Flow.marker``, in the same write
    SKIP = "skip"  # nothing now (what it missed is remembered)
    PAUSE = "pause"  # nothing now: it has just been paused (track it as a slow consumer)
    CATCH_UP = "catch_up"  # bring it up to date now (Flow.catch_up)
    CLOSE = "close"  # a slow consumer past its bound: close it with 1013


@dataclass(frozen=True, slots=True)
class FlowRules:
    """The bounds of flow control (``HubConfig``'s fields of the same names).

    Attributes:
        pause_bytes: more unsent bytes than this pause a connection.
        max_buffer_bytes: the bound on unsent bytes while a snapshot or news replay is written.
        flow_hold_ms: a marker unanswered for longer holds the connection; 0: no markers.
        slow_close_after: seconds paused (or a marker unanswered) before 1013.
    """

    pause_bytes: int
    max_buffer_bytes: int
    flow_hold_ms: float
    slow_close_after: float
    hold: float = field(init=False)  # seconds
    # Only a fast stream is clocked: frames further apart than two holds give any reader time to
    # keep up, and a burst of fan-out to many clients is not a backlog.
    fast_gap: float = field(init=False)
    marker_every: float = field(init=False)  # at most one marker per half hold

    def __post_init__(self) -> None:
        object.__setattr__(self, "hold", self.flow_hold_ms / 1000.0)
        object.__setattr__(self, "fast_gap", self.flow_hold_ms / 500.0)
        object.__setattr__(self, "marker_every", self.flow_hold_ms / 2000.0)

    def clocks(self, window_ms: int) -> bool:
        """Whether connections in ``window_ms`` get marker pings (window 0, markers on)."""
        return window_ms == 0 and self.flow_hold_ms > 0


@dataclass(frozen=True, slots=True)
class CatchUp:
    """How to bring a held or paused connection up to date, in this order.

    Attributes:
        fresh: symbols to send whole (a snapshot: subscribed or resynced meanwhile).
        missed: symbols to send as one delta of the fields changed since flush ``synced``.
        synced: the flush of its window that the client's copy is as of.
        news_since: it was paused: replay the retained news after this id (None: it was held).
        clock: a marker ping after what is sent (held on window 0).
    """

    fresh: tuple[str, ...]
    missed: tuple[str, ...]
    synced: int
    news_since: int | None
    clock: bool


LIVE, HELD, PAUSED = FlowState.LIVE, FlowState.HELD, FlowState.PAUSED
WRITE, WRITE_MARKED, SKIP = Step.WRITE, Step.WRITE_MARKED, Step.SKIP
PAUSE, CATCH_UP, CLOSE = Step.PAUSE, Step.CATCH_UP, Step.CLOSE


class Flow:
    """One connection's flow-control state machine (see the module docstring).

    Args:
        rules: the bounds.
        clocked: it starts in a window that gets marker pings (:meth:`FlowRules.clocks`).
    """

    __slots__ = (
        "behind_since",
        "clocked",
        "fresh",
        "last_frame",
        "marker",
        "marker_at",
        "markers",
        "missed",
        "news_id",
        "rules",
        "seq",
        "state",
        "synced",
        "unmarked",
    )

    def __init__(self, rules: FlowRules, clocked: bool = False) -> None:
        self.rules = rules
        self.clocked = clocked
        self.state = LIVE
        self.seq = 0  # of the last snapshot/delta written
        self.behind_since = 0.0  # when it was paused
        # While held or paused: the symbols it missed (its copy is as of flush `synced` of its
        # window), and the symbols it must get whole (subscribed, resynced or moved meanwhile).
        self.missed: set[str] = set()
        self.synced = 0
        self.fresh: set[str] = set()
        # News up to this id were written to it or are not on its topics (a paused client's
        # catch-up replays the rest).
        self.news_id = 0
        # The payload of the marker ping outstanding (None: none), and when it was sent.
        self.marker: bytes | None = None
        self.marker_at = -1e9
        self.markers = 0  # markers sent so far (each marker's payload is unique)
        self.unmarked = MARK_FRAMES - 1  # frames since the last marker (a fast start: marked)
        self.last_frame = -1e9  # when the last delta was written

    # Sending

    def on_flush(
        self, symbols: list[str], flush: int, now: float, unsent: int, news_id: int
    ) -> Step:
        """A flush of its window changed ``symbols``: write the delta, or remember them.

        Args:
            symbols: the changed symbols it subscribes to.
            flush: the window's flush number (``Conflator.flushes``) after this drain.
            now: the current time.
            unsent: its unsent bytes.
            news_id: the latest news id (a pause resumes news after it).

        Returns:
            WRITE / WRITE_MARKED (``seq`` advanced; with a marker), SKIP (held, or still
            paused), PAUSE (just paused) or CATCH_UP (paused, and its buffer has drained).
        """
        state = self.state
        if state is LIVE:
            rules = self.rules
            if self.marker is not None and self.marker_at < now - rules.hold:
                self.state = HELD  # still reading what came before its last marker
            elif unsent > rules.pause_bytes:
                self.pause(now, news_id)
                self._miss(symbols, flush)
                return PAUSE
            else:
                self.seq += 1
                if not self.clocked:
                    return WRITE
                self.unmarked += 1
                gap = now - self.last_frame
                self.last_frame = now
                if (
                    self.marker is None
                    and gap < rules.fast_gap
                    and self.unmarked >= MARK_FRAMES
                    and now - self.marker_at >= rules.marker_every
                ):
                    self.mark(now)
                    return WRITE_MARKED
                return WRITE
        self._miss(symbols, flush)
        if state is PAUSED and unsent <= self.rules.pause_bytes:
            return CATCH_UP
        return SKIP

    def snapshot(self, symbols: Collection[str], now: float, unsent: int, news_id: int) -> Step:
        """A snapshot of ``symbols`` is due (subscribe, resync, window change, catch-up).

        Returns:
            WRITE (``seq`` advanced); else it is deferred to the catch-up: PAUSE when more than
            ``max_buffer_bytes`` are unsent (a client that never reads cannot queue a snapshot
            per resync), SKIP when already paused.
        """
        step = SKIP
        if self.state is not PAUSED and unsent > self.rules.max_buffer_bytes:
            self.pause(now, news_id)
            step = PAUSE
        if self.state is PAUSED:
            self.fresh.update(symbols)
            return step
        if self.missed or self.fresh:  # held: these are now whole and current in the client
            self.missed.difference_update(symbols)
            self.fresh.difference_update(symbols)
        self.seq += 1
        return WRITE

    def on_news(self, now: float, unsent: int, prev_id: int, news_id: int) -> Step:
        """A live news item (id ``news_id``; the one before it ``prev_id``) is on its topics.

        Returns:
            WRITE; SKIP while paused (its catch-up replays it); PAUSE when more than
            ``pause_bytes`` are unsent.
        """
        if self.state is PAUSED:
            return SKIP
        if unsent > self.rules.pause_bytes:
            self.pause(now, prev_id)
            return PAUSE
        self.news_id = news_id
        return WRITE

    def on_replay(self, now: float, unsent: int, last_id: int) -> Step:
        """The next item of a news replay is due; the items up to ``last_id`` are done.

        Returns:
            WRITE; PAUSE (just paused) or SKIP (already paused) when more than
            ``max_buffer_bytes`` are unsent: the replay stops and its catch-up continues it.
        """
        if unsent <= self.rules.max_buffer_bytes:
            return WRITE
        return PAUSE if self.pause(now, last_id) else SKIP

    def numbered(self) -> int:
        """The ``seq`` of one more frame written outside a flush (a catch-up delta)."""
        self.seq += 1
        return self.seq

    def mark(self, now: float) -> bytes:
        """Mark everything written so far: the payload of the ping to send after it."""
        self.markers += 1
        self.marker = b"t%d" % self.markers
        self.marker_at = now
        self.unmarked = 0
        return self.marker

    # Transitions

    def pause(self, now: float, news_id: int) -> bool:
        """Pause it (news resume after ``news_id``); False if it already was."""
        if self.state is PAUSED:
            return False
        self.state = PAUSED
        self.behind_since = now
        self.news_id = news_id
        return True

    def pong(self, payload: bytes) -> Step | None:
        """A pong arrived. Returns None if it does not answer the marker; else CATCH_UP when
        it was held with something missed, SKIP otherwise."""
        if self.marker is None or payload != self.marker:
            return None
        self.marker = None
        if self.state is HELD:
            if self.missed or self.fresh:
                return CATCH_UP
            self.state = LIVE
        return SKIP

    def catch_up(self, includes: Callable[[str], bool]) -> CatchUp:
        """Back to LIVE: what to send to bring it up to date (only symbols its subscription
        ``includes``)."""
        fresh = self.fresh
        plan = CatchUp(
            tuple(s for s in fresh if includes(s)),
            tuple(s for s in self.missed if includes(s) and s not in fresh),
            self.synced,
            self.news_id if self.state is PAUSED else None,
            self.state is HELD and self.clocked,
        )
        self.fresh = set()
        self.missed = set()
        self.state = LIVE
        return plan

    def moved(self, clocked: bool, includes: Callable[[str], bool]) -> None:
        """It changed windows: another window numbers its flushes differently, so what it
        missed comes whole (if its subscription ``includes`` it)."""
        self.clocked = clocked
        if self.missed:
            self.fresh.update(s for s in self.missed if includes(s))
            self.missed = set()

    def check_paused(self, now: float, unsent: int) -> Step | None:
        """The housekeeping look at a paused connection: CATCH_UP once its buffer has drained,
        CLOSE when paused past ``slow_close_after``; None: leave it."""
        if self.state is not PAUSED:
            return None
        if unsent <= self.rules.pause_bytes:
            return CATCH_UP
        if now - self.behind_since > self.rules.slow_close_after:
            return CLOSE
        return None

    def marker_overdue(self, now: float) -> bool:
        """Whether its marker has gone unanswered for ``slow_close_after`` (close it: 1013)."""
        return self.marker is not None and self.marker_at < now - self.rules.slow_close_after

    # Internals

    def _miss(self, symbols: Iterable[str], flush: int) -> None:
        if not self.missed:
            self.synced = flush - 1  # its copy is as of the flush before this one
        self.missed.update(symbols)

"""A connection's bandwidth cap (``throttle`` ``max_bps``): which symbols to send, when, within
the bytes a second it asked for.

Pure; no I/O. The caller passes ``now`` (``loop.time()`` seconds) and, to choose, what each
candidate would cost in bytes (its encoded fragment); nothing here encodes or writes.

A capped connection does not take its window group's shared delta frames. Each flush that changes
its symbols only marks them *waiting* (:meth:`Pacer.changed`), in the order they started to
wait; a symbol already waiting keeps its place (its copy is as of the flush it was last sent at,
so when its turn comes it gets every field changed since, with the latest values). Every
:attr:`Pacer.interval` the shell asks :meth:`Pacer.select` for the symbols that fit the byte budget,
oldest waiting first, and sends them as one frame: every subscribed symbol is refreshed in turn
(no starvation: a symbol waits at most for those ahead of it), with its latest values (no stale
backlog: a waiting symbol is one entry, whatever its number of ticks).

The budget is a token bucket in bytes: it refills at :data:`RATE_SHARE` of the cap and holds at
most :data:`BURST_SHARE` of a second's cap, so the bytes of any 5 s stay within 5 s of the cap
(``burst + 5 s x rate <= 5 s x cap``). News is written at once, never conflated or dropped, and
spent from the same bucket (:meth:`Pacer.spend`: the bucket may go into debt, which quotes repay).
Symbols never sent, or asked for whole again (subscribe, resync, a new window), go first as a
``snapshot`` of their full quotes, in as many frames as the budget needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "BURST_SHARE",
    "MIN_BPS",
    "MIN_INTERVAL",
    "RATE_SHARE",
    "Pacer",
    "Selection",
    "effective_bps",
]

MIN_BPS = 1000
"""The lowest cap (bytes/s): below it one full quote would not fit the bucket."""

RATE_SHARE = 0.9
BURST_SHARE = 0.5
"""Refill rate and bucket size, as shares of the cap (per second): 0.5 + 5 x 0.9 = 5 x 1."""

MIN_INTERVAL = 0.25
"""Seconds between a capped connection's quote frames at least (whatever its window): fewer,
fuller frames, so the frame's own bytes take a small share of the cap."""

FRAME_OVERHEAD = 64
"""Bytes a frame costs beyond its symbols' fragments (the message head, ``seq``, ``t``, the
WebSocket or SSE framing): counted before choosing, so a frame never exceeds the budget."""


def effective_bps(requested: float, ceiling: int) -> int:
    """The cap a connection gets for ``requested`` bytes/s (0: none): at most ``ceiling`` (the
    server's maximum; 0: none, else a request for none gets the ceiling), at least
    :data:`MIN_BPS`."""
    bps = int(requested)
    if ceiling and (bps == 0 or bps > ceiling):
        bps = ceiling
    if bps and bps < MIN_BPS:
        bps = MIN_BPS
    return bps


@dataclass(frozen=True, slots=True)
class Selection:
    """What to send now: ``fresh`` symbols whole (a snapshot), then ``waiting`` ones as a delta
    of the fields changed since the flush each one's copy is as of."""

    fresh: tuple[str, ...]
    waiting: tuple[tuple[str, int], ...]

    def __bool__(self) -> bool:
        return bool(self.fresh or self.waiting)


Cost = Callable[[str, "int | None"], int]
"""The encoded bytes of one symbol: whole (``None``) or changed since a flush; 0: nothing."""


class Pacer:
    """The bandwidth cap of one connection (see the module docstring).

    Args:
        max_bps: the cap in bytes per second.
        now: the current time (the bucket starts full).
        window: the connection's throttle window in seconds.
        base: the flush of its window that the connection's copy is as of (it was uncapped and
            in step); None: it holds nothing of this window yet (every symbol goes whole).
    """

    __slots__ = (
        "base",
        "blocked_since",
        "capacity",
        "dirty",
        "fresh",
        "interval",
        "max_bps",
        "next_at",
        "rate",
        "sent_at",
        "tokens",
        "updated",
    )

    def __init__(
        self, max_bps: int, now: float, window: float = 0.0, base: int | None = None
    ) -> None:
        self.max_bps = max_bps
        self.base = base
        self.rate = max_bps * RATE_SHARE
        self.capacity = max_bps * BURST_SHARE
        self.tokens = self.capacity
        self.updated = now
        self.interval = max(window, MIN_INTERVAL)
        self.next_at = now
        # Symbols to send whole, in order; symbols waiting -> the flush their copy is as of, in
        # the order they started to wait; symbols in step -> the flush their copy is as of.
        self.fresh: dict[str, None] = {}
        self.dirty: dict[str, int] = {}
        self.sent_at: dict[str, int] = {}
        self.blocked_since: float | None = None

    # Settings

    def set_cap(self, max_bps: int, window: float) -> None:
        """A new cap or window (the bucket keeps its share)."""
        if max_bps != self.max_bps:
            share = self.tokens / self.capacity if self.capacity else 1.0
            self.max_bps = max_bps
            self.rate = max_bps * RATE_SHARE
            self.capacity = max_bps * BURST_SHARE
            self.tokens = min(self.capacity, share * self.capacity)
        self.interval = max(window, MIN_INTERVAL)

    # What happened

    def changed(self, symbols: Iterable[str]) -> None:
        """A flush changed ``symbols``: each waits for its turn (one that already waits keeps
        its place)."""
        fresh, dirty, sent_at, base = self.fresh, self.dirty, self.sent_at, self.base
        for s in symbols:
            if s in dirty or s in fresh:
                continue
            flush = sent_at.get(s, base)
            if flush is None:
                fresh[s] = None
            else:
                dirty[s] = flush

    def refresh(self, symbols: Iterable[str]) -> None:
        """Send ``symbols`` whole (a snapshot is due: subscribe, resync, a new window)."""
        for s in symbols:
            self.dirty.pop(s, None)
            self.sent_at[s] = -1  # (not `base`: it holds nothing of it until the snapshot)
            self.fresh[s] = None

    def reset(self) -> None:
        """Forget every copy (a new window numbers its flushes anew): all go whole."""
        for s in list(self.dirty) + list(self.sent_at):
            self.fresh[s] = None
        self.dirty.clear()
        self.sent_at.clear()
        self.base = None

    def spend(self, nbytes: int, now: float) -> None:
        """``nbytes`` went out (a quote frame, or news: the bucket may go into debt)."""
        self._refill(now)
        self.tokens -= nbytes

    # Choosing

    def select(self, now: float, includes: Callable[[str], bool], cost: Cost) -> Selection:
        """The symbols to send now, oldest waiting first, as many as the budget allows (none
        before ``interval`` since the last frame). Symbols no longer subscribed are dropped;
        one whose cost is 0 (nothing selected changed) is in step again.

        A symbol too big for even a full bucket still goes alone when the bucket is full (the
        debt delays the next ones), so nothing is stuck.
        """
        if now < self.next_at:
            return Selection((), ())
        self._refill(now)
        budget = self.tokens - FRAME_OVERHEAD
        fresh: list[str] = []
        waiting: list[tuple[str, int]] = []
        full = self.tokens >= self.capacity
        for s in list(self.fresh):
            if not includes(s):
                del self.fresh[s]
                continue
            c = cost(s, None)
            if c > budget and (fresh or not full):
                break
            del self.fresh[s]
            if c:
                fresh.append(s)
                budget -= c + 1
        if fresh:
            budget -= FRAME_OVERHEAD
        if not self.fresh:  # (deltas only once every fresh symbol went: it needs them whole)
            for s, flush in list(self.dirty.items()):
                if not includes(s):
                    del self.dirty[s]
                    continue
                c = cost(s, flush)
                if c > budget and (waiting or fresh or not full):
                    break
                del self.dirty[s]
                if c:
                    waiting.append((s, flush))
                    budget -= c + 1
                else:
                    self.sent_at[s] = flush
        if fresh or waiting:
            self.next_at = now + self.interval
        return Selection(tuple(fresh), tuple(waiting))

    def sent(self, selection: Selection, flush: int, nbytes: int, now: float) -> None:
        """``selection`` went out in ``nbytes``: its symbols' copies are as of ``flush``."""
        for s in selection.fresh:
            self.sent_at[s] = flush
        for s, _ in selection.waiting:
            self.sent_at[s] = flush
        self.spend(nbytes, now)

    @property
    def waiting(self) -> int:
        """How many symbols wait for their turn."""
        return len(self.fresh) + len(self.dirty)

    # Internals

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

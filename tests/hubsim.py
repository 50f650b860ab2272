"""A real :class:`~ticker.hub.broadcaster.Hub` on a clock and transports driven by hand.

No event loop runs: :class:`ManualLoop` gives the hub just what it asks of one (a clock,
``call_soon``/``call_at``, tasks), and :class:`SimTransport` records what the hub writes and
reports whatever unsent byte count a test sets. A test interleaves ticks, requests, flushes,
buffer states, pongs and housekeeping in any order, then reads each connection's frames.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, cast

import msgspec
import orjson

from tests.wsutil import apply_frame
from ticker.core.events import Listing
from ticker.core.wire import WS_JSON, Wire
from ticker.hub.broadcaster import Client, Hub, HubConfig

__all__ = ["Conn", "ManualLoop", "Sim", "SimTransport", "server_frames"]

Frame = dict[str, Any]


def server_frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked server frame in ``data``; asserts they are whole."""
    i = 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        assert b0 & 0x80 and not b1 & 0x80, "final, unmasked frames"
        n, i = b1 & 0x7F, i + 2
        if n == 126:
            n, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        assert i + n <= len(data), "a whole frame"
        yield b0 & 0x0F, bytes(data[i : i + n])
        i += n


class _Handle:
    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Task:
    """Stands for a task the hub starts (a close): never run; what it was started for is
    visible in the hub's state (``closing``, ``stats``)."""

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        pass


class ManualLoop:
    """What the hub needs of an event loop, run by hand: ``now`` moves only in :meth:`advance`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._queue: list[tuple[float, int, _Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> _Handle:
        return self.call_at(-1.0, callback, *args)  # before any timer already due

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> _Handle:
        handle = _Handle(callback, args)
        heapq.heappush(self._queue, (when, next(self._order), handle))
        return handle

    def create_task(self, coro: Coroutine[Any, Any, Any]) -> _Task:
        coro.close()
        return _Task()

    def run(self) -> None:
        """Run every call that is due (and those they schedule, when due)."""
        while self._queue and self._queue[0][0] <= self.now:
            _, _, handle = heapq.heappop(self._queue)
            if not handle.cancelled:
                handle.callback(*handle.args)

    def advance(self, seconds: float) -> None:
        """Move the clock on (running what falls due on the way, in order)."""
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end:
            self.now = max(self.now, self._queue[0][0])
            self.run()
        self.now = end
        self.run()


class SimTransport:
    """Records what the hub writes; reports ``unsent`` (a test sets it) as its buffer size."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.unsent = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.data += data

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True


class Conn:
    """One simulated connection: its transport, the hub's view of it, what it has read."""

    def __init__(self, hub: Hub, entitled: frozenset[str] | None, wire: Wire = WS_JSON) -> None:
        self.hub = hub
        self.entitled = entitled
        self.transport = SimTransport()

        async def close(code: int, reason: str) -> None:  # (never run: see _Task)
            pass

        self.client: Client = hub.connect(self.transport, close, "10.0.0.1", entitled, wire=wire)
        self.frames: list[Frame] = []
        self.pings: list[bytes] = []  # marker pings read, in order
        self.quotes: dict[str, dict[str, Any]] = {}  # its copy, from snapshots and deltas

    def read(self) -> list[Frame]:
        """The frames written since the last read (text decoded; pings noted)."""
        new: list[Frame] = []
        for op, payload in server_frames(bytes(self.transport.data)):
            if op == 0x9:
                self.pings.append(payload)
                continue
            assert op in (0x1, 0x2), op
            # Binary: MessagePack (ticker.v1.msgpack), decoded by an independent decoder.
            frame = orjson.loads(payload) if op == 0x1 else msgspec.msgpack.decode(payload)
            apply_frame(self.quotes, frame)
            new.append(frame)
        self.transport.data.clear()
        self.frames += new
        return new

    def send(self, request: Any) -> list[Frame]:
        """One text frame from the client (a dict is sent as JSON); the frames in answer."""
        data = request if isinstance(request, bytes) else orjson.dumps(request)
        self.read()
        self.hub.receive(self.client, data)
        return self.read()

    def pong(self, payload: bytes | None = None) -> None:
        """Answer the latest marker ping read (or send ``payload`` as a pong)."""
        if payload is None:
            if not self.pings:
                return
            payload = self.pings[-1]
        self.read()
        self.hub.pong(self.client, payload)


class Sim:
    """A hub with ``symbols`` listed, on a :class:`ManualLoop`."""

    def __init__(self, config: HubConfig, symbols: Sequence[str]) -> None:
        self.loop = ManualLoop()
        self.hub = Hub(config, cast(asyncio.AbstractEventLoop, self.loop))
        self.hub.publish(Listing(tuple(symbols)))
        self.conns: list[Conn] = []

    def connect(self, entitled: frozenset[str] | None = None, wire: Wire = WS_JSON) -> Conn:
        conn = Conn(self.hub, entitled, wire)
        self.conns.append(conn)
        return conn

"""An upgraded WebSocket as an ``asyncio.Protocol`` of our own: what a connection costs after
its handshake.

I/O shell around :mod:`ticker.core.wsframe`. aiohttp serves the HTTP request up to the upgrade
(routing, middleware: origin, token, connection limits); ``ticker.net.server.ws_handler`` then
answers ``101`` itself and hands the socket to a :class:`WsConnection` (``transport.set_protocol``),
and aiohttp lets go of it (:func:`detach`). From then on nothing of aiohttp's per-request machinery
lives for the connection: no request, response, reader queue, parser or handler task. Frames are
parsed in ``data_received`` and handed to the hub at once, with no task switch per message (a pong
that clocks flow control costs a parse and a call). That is most of what a connection costs in
aiohttp (README, Benchmarks).

Heartbeat: one timer for all connections (:class:`Sockets`), not one per connection. A
connection silent for ``heartbeat_s`` is pinged; silent ``heartbeat_s / 2`` longer, it is
dropped (counted as a 1006 close). Anything received proves it alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ticker.aio import cancel_and_wait
from ticker.core.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    Unmask,
    parse_close,
    unmask,
    ws_close_frame,
    ws_ping_frame,
    ws_pong_frame,
)

if TYPE_CHECKING:
    from ticker.hub.broadcaster import Client, Hub

__all__ = ["CLOSE_TIMEOUT", "Registry", "Sockets", "WsConnection", "detach", "fast_unmask"]

log = logging.getLogger("ticker.server")


def fast_unmask(mask: bytes, data: bytes) -> bytes:
    """``data`` XOR the 4-byte ``mask`` repeated, by aiohttp's C helper: ~3x faster than the pure
    big-integer XOR at 20 bytes, ~50x at 64 KiB (a hostile flood of maximal frames spent 40 % of
    the CPU unmasking in pure Python)."""
    buf = bytearray(data)
    _mask_in_place(mask, buf)
    return bytes(buf)


# (A private module of aiohttp's: should a release move it, the pure version takes over.)
_unmask: Unmask
try:
    from aiohttp._websocket.helpers import websocket_mask as _mask_in_place
except ImportError:  # pragma: no cover
    _unmask = unmask
else:
    _unmask = fast_unmask

CLOSE_TIMEOUT = 2.0  # seconds to wait for the peer's close frame after ours
CLOSE_ABNORMAL = 1006
_HEARTBEAT_PING = ws_ping_frame(b"hb")


class WsConnection(asyncio.Protocol):
    """One upgraded connection: parses the client's frames and hands them to the hub."""

    __slots__ = (
        "_abort_timer",
        "_closed",
        "_on_lost",
        "_peer_closed",
        "_sockets",
        "_waiter",
        "client",
        "close_sent",
        "hub",
        "last_rx",
        "ping_at",
        "reader",
        "transport",
    )

    def __init__(
        self, hub: Hub, transport: asyncio.Transport, max_size: int, sockets: Sockets
    ) -> None:
        self.hub = hub
        self.transport = transport
        self.reader = FrameReader(max_size, unmask=_unmask)
        self.client: Client | None = None
        self.last_rx = hub.loop.time()
        self.ping_at = 0.0  # when the heartbeat ping went out (0: none outstanding)
        self.close_sent = False
        self._peer_closed = False
        self._closed = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_lost: list[Callable[[], Any]] = []
        self._sockets = sockets

    def start(self, client: Client, on_lost: list[Callable[[], Any]], tail: bytes = b"") -> None:
        """Begin serving ``client``; ``on_lost`` run once the socket is gone; ``tail``: bytes
        the client sent right behind its upgrade request."""
        self.client = client
        self._on_lost = on_lost
        self._sockets.conns[self] = None
        if tail:
            self.data_received(tail)

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self.last_rx = self.hub.loop.time()
        c = self.client
        if self._peer_closed or c is None:  # (None: not started, cannot happen)
            return
        hub = self.hub
        error: FrameError | None = None
        try:
            messages = self.reader.feed(data, hub.frame_budget(c))
        except FrameError as e:  # serve what was whole before the fault, then close
            messages, error = e.messages, e
        if self.reader.fragments and not self.close_sent:
            hub.spend(c, self.reader.fragments)
        for op, payload in messages:
            if op == OP_TEXT:
                if not self.close_sent:
                    hub.receive(c, payload)
            elif op == OP_PONG:
                hub.pong(c, payload)
            elif op == OP_PING:
                if not self.close_sent and hub.ping_allowed(c):  # pings spend control tokens
                    self.transport.write(ws_pong_frame(payload))
            elif op == OP_BINARY:
                if not self.close_sent:
                    hub.receive(c, payload, binary=True)
            elif op == OP_CLOSE:
                self._peer_close(payload)
                return
        if error is not None:
            self.fail(error.code, error.reason)

    def eof_received(self) -> bool:
        return False  # the peer is done sending: close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._sockets.conns.pop(self, None)
        if self.client is not None:
            self.hub.disconnect(self.client)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        for fn in self._on_lost:
            try:
                fn()
            except Exception:
                log.exception("connection cleanup failed")
        self._on_lost = []

    # Closing: every path ends in _finish, which aborts a socket whose peer stops reading.

    def _send_close(self, code: int | None, reason: str = "") -> None:
        if not self.close_sent:
            self.close_sent = True
            if not self.transport.is_closing():
                self.transport.write(ws_close_frame(code, reason))

    def _finish(self) -> None:
        """Close the socket once what was written has gone out, and abort it if that takes
        longer than :data:`CLOSE_TIMEOUT` (a peer that stops reading would otherwise keep the
        socket, and its admission slot, for as long as it likes)."""
        if self._closed:
            return
        self.transport.close()
        if self._abort_timer is None:
            self._abort_timer = self.hub.loop.call_later(CLOSE_TIMEOUT, self.transport.abort)

    def _peer_close(self, payload: bytes) -> None:
        """The client sent a close frame: answer with its code and close the socket (the server
        closes TCP first, RFC 6455 §7.1.1)."""
        self._peer_closed = True
        code, _ = parse_close(payload)  # (validated by the reader)
        self._send_close(code)
        if self.client is not None:
            self.hub.disconnect(self.client)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._finish()

    def fail(self, code: int, reason: str) -> None:
        """Close at once with ``code`` (a protocol violation or a bound crossed; the heartbeat:
        1006 without a frame), counted by the hub as a close with that code. A peer that breaks
        the protocol after our close frame is cut off."""
        if self.client is not None:
            self.hub.disconnect(self.client, code)
        if code == CLOSE_ABNORMAL or self.close_sent:
            self.transport.abort()
            return
        self._send_close(code, reason)
        self._finish()

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame and wait (up to :data:`CLOSE_TIMEOUT`) for the peer's; then close
        the socket (the hub's ``CloseFn``)."""
        self._send_close(code, reason)
        if not (self._closed or self._peer_closed):
            if self._waiter is None:
                self._waiter = self.hub.loop.create_future()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.shield(self._waiter)
            except TimeoutError:
                self.transport.abort()
        self._finish()

    # Heartbeat

    def beat(self, now: float, heartbeat: float) -> None:
        """Ping a connection silent for ``heartbeat`` s; drop it when still silent ``heartbeat
        / 2`` s after the ping."""
        if self.ping_at:
            if self.last_rx >= self.ping_at:
                self.ping_at = 0.0
            elif now - self.ping_at >= heartbeat / 2:
                self.fail(CLOSE_ABNORMAL, "heartbeat: no answer")
                return
        if not self.ping_at and now - self.last_rx >= heartbeat and not self.close_sent:
            self.ping_at = now
            self.transport.write(_HEARTBEAT_PING)


class _Transported(Protocol):
    transport: asyncio.Transport


C = TypeVar("C", bound=_Transported)


class Registry(Generic[C]):
    """The open connections of one app, and one timer that visits all of them every ``every``
    seconds (not one timer per connection); stopping it aborts whatever is still open."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.conns: dict[C, None] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.every > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the timer and abort whatever connection is still open."""
        await cancel_and_wait(self._task)
        self._task = None
        for conn in list(self.conns):
            conn.transport.abort()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every)
            self.visit(loop.time())

    def visit(self, now: float) -> None:
        """What the timer does for the connections (a subclass says)."""
        raise NotImplementedError


class Sockets(Registry[WsConnection]):
    """The upgraded connections of one app, and their one heartbeat timer: a tenth of a beat,
    so a dead peer is gone within 1.6 x heartbeat of its last frame."""

    def __init__(self, heartbeat: float) -> None:
        super().__init__(heartbeat / 10)
        self.heartbeat = heartbeat

    def visit(self, now: float) -> None:
        for conn in list(self.conns):
            conn.beat(now, self.heartbeat)


def detach(protocol: Any, transport: asyncio.BaseTransport) -> bytes:
    """Make aiohttp's request handler ``protocol`` let go of ``transport`` (now ours: its
    protocol was replaced with ``transport.set_protocol``). Returns the bytes the client sent
    behind its upgrade request, which aiohttp held back for the handler.

    After this, aiohttp's handler finds no transport: the response the route returns is not
    written (a quiet ``ConnectionResetError`` to aiohttp), the server forgets the connection,
    and nothing closes the socket.
    """
    tail = bytes(getattr(protocol, "_message_tail", b"") or b"")
    protocol.transport = None
    protocol.connection_lost(None)
    return tail

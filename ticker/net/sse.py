"""``GET /sse``: the hub's messages as Server-Sent Events, for clients that cannot open a
WebSocket (proxies that refuse ``Upgrade``, ``curl -N``, a browser's ``EventSource``).

I/O shell. The stream is a hub connection like any WebSocket: the same session (its query is
turned into ``throttle``/``fields``/``subscribe``/``news`` requests by
:func:`ticker.core.sse.sse_requests`), windows, groups, flow control, entitlements and limits.
Only its wire differs (:class:`ticker.core.wire.SseWire`): each message is an SSE event
(``event:`` its type, ``data:`` the same JSON as over the WebSocket, ``id:`` a news item's id) in
an HTTP/1.1 chunk, written by the hub straight to the socket.

As with ``/ws``, aiohttp serves the request up to the handler (routing; the guard: Host, origin,
token), then the handler writes the response head and takes the socket over with an
:class:`SseConnection` (``transport.set_protocol``; aiohttp lets go of it,
:func:`~ticker.net.wsconn.detach`): no response object, task or queue lives on per stream. A
reconnecting ``EventSource`` sends ``Last-Event-ID`` (the last news id it saw) and news resumes
after it, also across a server restart (news ids come from the wall clock).

One timer (:class:`Streams`) writes a comment line to every stream each :data:`KEEPALIVE_S`, so
proxies do not time an idle stream out (and a dead peer's socket errors out).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ticker.core.sse import sse_requests
from ticker.core.wire import SseWire
from ticker.hub.broadcaster import Client, Hub
from ticker.net.admission import admit
from ticker.net.guard import expire_when_due, grant_of
from ticker.net.keys import HUB, SERVER_CONFIG
from ticker.net.responses import Detached, bad_request, json_error
from ticker.net.wsconn import CLOSE_TIMEOUT, Registry, detach

__all__ = ["KEEPALIVE_S", "SSE_CHUNKED", "SSE_PLAIN", "STREAMS", "SseConnection", "Streams"]

log = logging.getLogger("ticker.server")

KEEPALIVE_S = 15.0
"""Seconds between the comment lines that keep an idle stream open through proxies."""

MAX_INBOUND = 65536
"""Bytes a client may send on a stream (it has nothing to say): past it the socket is aborted."""

SSE_CHUNKED = SseWire(chunked=True)
SSE_PLAIN = SseWire(chunked=False)  # (an HTTP/1.0 client: the body ends when the socket closes)


class SseConnection(asyncio.Protocol):
    """One event stream after its response head: ignores what the client sends, tells the hub
    when the socket is gone, and ends the stream when the hub closes it."""

    __slots__ = ("_abort_timer", "_closed", "_on_lost", "client", "hub", "received", "transport")

    def __init__(self, hub: Hub, transport: asyncio.Transport) -> None:
        self.hub = hub
        self.transport = transport
        self.client: Client | None = None
        self.received = 0
        self._closed = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._on_lost: list[Callable[[], object]] = []

    def start(self, client: Client, on_lost: list[Callable[[], object]]) -> None:
        self.client = client
        self._on_lost = on_lost

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > MAX_INBOUND:  # a stream is one way: this is not a client
            self.transport.abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self.client is not None:
            self.hub.disconnect(self.client)
        for fn in self._on_lost:
            try:
                fn()
            except Exception:
                log.exception("stream cleanup failed")
        self._on_lost = []

    # Closing (the hub's CloseFn)

    async def close(self, code: int, reason: str) -> None:
        """End the stream: a comment with the WebSocket close code the same condition would
        get (1001 shutdown, 1008 token expired, 1013 slow consumer), the last chunk, then the
        socket, aborted if its unsent bytes do not drain within :data:`CLOSE_TIMEOUT`."""
        if self._closed:
            return
        tr = self.transport
        if not tr.is_closing():
            wire = self.client.wire if self.client is not None else SSE_CHUNKED
            assert isinstance(wire, SseWire)
            tr.write(wire.comment(f"close {code} {reason}") + wire.end())
            tr.close()
        if self._abort_timer is None:
            self._abort_timer = self.hub.loop.call_later(CLOSE_TIMEOUT, tr.abort)


class Streams(Registry["SseConnection"]):
    """The open streams of one app, and their keep-alive timer (a comment line each)."""

    def __init__(self, interval: float | None = None) -> None:
        super().__init__(KEEPALIVE_S if interval is None else interval)

    def visit(self, now: float) -> None:
        for conn in list(self.conns):
            c, tr = conn.client, conn.transport
            if c is not None and not c.closing and not tr.is_closing():
                assert isinstance(c.wire, SseWire)
                tr.write(c.wire.comment())


STREAMS = web.AppKey("streams", Streams)


def _head(request: web.Request, chunked: bool) -> bytes:
    lines = [
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream; charset=utf-8",
        "Cache-Control: no-cache",
        "X-Accel-Buffering: no",  # nginx: pass each event on at once
    ]
    lines.append("Transfer-Encoding: chunked" if chunked else "Connection: close")
    origin = request.headers.get("Origin")
    if origin is not None:  # (allowed, or the guard would have refused it)
        lines += [f"Access-Control-Allow-Origin: {origin}", "Vary: Origin"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def sse_handler(request: web.Request) -> web.StreamResponse:
    """Open an event stream (after ``guard``: Host, origin and token; then the query and the
    connection limits, as for ``/ws``)."""
    if request.method != "GET":
        return bad_request(f"an event stream is a GET, not {request.method}")
    app = request.app
    hub = app[HUB]
    cfg = app[SERVER_CONFIG]
    requests = sse_requests(
        request.query,
        request.headers.get("Last-Event-ID"),
        hub.session_rules.max_symbols_per_request,
        hub.default_window,
    )
    if not isinstance(requests, list):
        return json_error(400, requests.code, requests.message)
    admitted = admit(request)  # connection limits: 503/429
    if isinstance(admitted, web.StreamResponse):
        return admitted
    transport = request.transport
    if transport is None or transport.is_closing():
        admitted.release()
        return web.Response()  # never sent
    try:
        sock = transport.get_extra_info("socket")
        if sock is not None and cfg.socket_send_buffer:
            # As for /ws: backpressure shows within a frame or two, so a slow reader is paused
            # and conflated instead of queueing in the kernel.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.socket_send_buffer)
        chunked = request.version >= (1, 1)
        conn = SseConnection(hub, transport)
        transport.set_protocol(conn)
        detach(request.protocol, transport)
        grant = grant_of(request)
        wire = SSE_CHUNKED if chunked else SSE_PLAIN
        client = hub.connect(
            transport,
            conn.close,
            request.remote or "",
            grant.symbols,
            preamble=_head(request, chunked),
            wire=wire,
        )
    except BaseException:
        admitted.release()
        raise
    streams = app[STREAMS]
    streams.conns[conn] = None
    on_lost: list[Callable[[], object]] = [
        admitted.release,
        functools.partial(streams.conns.pop, conn, None),
    ]
    expiry = expire_when_due(grant, functools.partial(hub.close_client, client))
    if expiry is not None:
        on_lost.append(expiry.cancel)
    conn.start(client, on_lost)
    for req in requests:
        hub.request(client, req)
    hub.stats["sse_streams"] += 1
    return _DETACHED


_DETACHED = Detached(status=200)


def add_sse_route(app: web.Application) -> None:
    """``GET /sse`` and its keep-alive timer (started and stopped with the app)."""
    app[STREAMS] = streams = Streams()
    app.router.add_get("/sse", sse_handler)

    async def run(app: web.Application) -> AsyncIterator[None]:
        streams.start()
        yield
        await streams.stop()

    app.cleanup_ctx.append(run)

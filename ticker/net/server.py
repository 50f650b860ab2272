"""HTTP and WebSocket server: ``create_app(feeds) -> web.Application``.

I/O shell. Routes: ``/ws`` (docs/protocol.md), ``/healthz``, ``/api/symbols``, ``/api/quotes``,
``/api/news``, ``/api/replay`` (replay control), ``/`` and ``/static/`` (files from ``web/``
only), ``/vendor/plotly.min.js`` (from the installed ``plotly`` package, so the dashboard works
offline; these three gzipped and cacheable: ticker.net.static); ``/metrics`` (Prometheus,
ticker.ops.metrics); ``POST /api/ticks`` and ``POST /api/news`` (ticker.net.publish). Who may
use which is decided by one middleware (ticker.net.guard) before a handler runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ticker.bus.memory import Bus, MemoryBus
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.config import HubConfig, ServerConfig
from ticker.core.auth import AuthConfig
from ticker.core.events import Event, Feed
from ticker.core.roles import check_role
from ticker.core.wire import SUBPROTOCOLS, select_subprotocol
from ticker.core.wsframe import handshake_response
from ticker.hub.broadcaster import Hub
from ticker.net.admission import Slot, admit, install as install_admission
from ticker.net.api import MAX_BODY, add_api_routes
from ticker.net.guard import AUTH, WS_PROTOCOLS, expire_when_due, grant_of, guard, ws_offer
from ticker.net.keys import (
    BUS,
    BUS_URL,
    HISTORY,
    HUB,
    HUB_CONFIG,
    METRICS,
    RECORDER,
    ROLE,
    RUNNERS,
    SERVER_CONFIG,
    SOCKETS,
    SOURCES,
    STARTED,
)
from ticker.net.publish import add_publish_routes
from ticker.net.responses import Detached, bad_request, json_error
from ticker.net.sse import add_sse_route
from ticker.net.static import StaticFiles
from ticker.net.wsconn import Sockets, WsConnection, detach
from ticker.ops.metrics import Metrics

if TYPE_CHECKING:
    from ticker.store.recorder import Recorder

__all__ = [
    "HUB",
    "RUNNERS",
    "WEB_DIR",
    "create_app",
    "plotly_js_path",
    "raise_open_file_limit",
    "serve",
    "tls_context",
]

log = logging.getLogger("ticker.server")


def _web_dir() -> Path:
    """The dashboard's files: ``web/`` of a source checkout, else ``ticker/web`` of an installed
    wheel (pyproject.toml installs ``web/`` there)."""
    here = Path(__file__).resolve()
    checkout = here.parents[2] / "web"
    return checkout if (checkout / "index.html").is_file() else here.parents[1] / "web"


WEB_DIR = _web_dir()


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` bundled with the installed ``plotly`` Python package."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@functools.cache
def _plotly() -> tuple[Path, str]:
    """plotly.min.js and plotly's version (imported at the first request: ~80 ms)."""
    import plotly

    return plotly_js_path(), str(plotly.__version__)


# WebSocket


def _handshake_refusal(request: web.Request) -> web.Response | None:
    """The handshake rules aiohttp does not enforce, checked before a slot is taken: version 13
    only (426 naming it, RFC 6455 4.2.2; aiohttp also takes 7 and 8), a ``GET`` (aiohttp routes
    ``HEAD`` to GET handlers) over HTTP/1.1 or later (RFC 6455 4.1)."""
    version = request.headers.get("Sec-WebSocket-Version")
    if version is not None and version.strip() != "13":
        return json_error(
            426,
            "upgrade_required",
            f"WebSocket version {version.strip()[:20]!r} is not supported; use 13",
            headers={"Sec-WebSocket-Version": "13"},
        )
    if request.method != "GET":
        return bad_request(f"a WebSocket upgrade is a GET, not {request.method}")
    if request.version < (1, 1):
        return bad_request("a WebSocket upgrade needs HTTP/1.1")
    return None


async def ws_handler(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket (after ``guard``: host, origin and token; then the handshake rules
    and the connection limits), then hand the socket to a :class:`~ticker.net.wsconn.WsConnection`
    and let aiohttp go of it."""
    refusal = _handshake_refusal(request)  # 426/400, before any slot is taken
    if refusal is not None:
        return refusal
    admitted = admit(request)  # connection limits: 503/429
    if isinstance(admitted, web.StreamResponse):
        return admitted
    try:
        return _upgrade(request, admitted)
    except BaseException:
        admitted.release()
        raise


def _upgrade(request: web.Request, slot: Slot) -> web.StreamResponse:
    app = request.app
    hub = app[HUB]
    cfg = app[SERVER_CONFIG]
    # aiohttp validates the upgrade request and picks the subprotocol; the 101 is ours.
    ws = web.WebSocketResponse(protocols=WS_PROTOCOLS)
    ready = ws.can_prepare(request)
    key = request.headers.get("Sec-WebSocket-Key", "")
    if not ready.ok:
        slot.release()
        return bad_request("not a valid WebSocket upgrade request")
    transport = request.transport
    if transport is None or transport.is_closing():  # the peer went away meanwhile
        slot.release()
        return web.Response()  # never sent
    sock = transport.get_extra_info("socket")
    if sock is not None and cfg.socket_send_buffer:
        # A small kernel send buffer makes backpressure visible while a frame is still in
        # flight, so a slow reader is paused (and conflated) instead of queueing seconds of
        # frames in the kernel.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.socket_send_buffer)
    conn = WsConnection(hub, transport, cfg.max_frame_bytes, app[SOCKETS])
    transport.set_protocol(conn)
    tail = detach(request.protocol, transport)
    grant = grant_of(request)
    # The first offer we speak, in the client's order (bearer.<token> is never selected).
    protocol = select_subprotocol(ws_offer(request)[1])
    answer = handshake_response(key, protocol)  # the 101, in one write with the hello
    wire = SUBPROTOCOLS[protocol] if protocol is not None else SUBPROTOCOLS["ticker.v1"]
    client = hub.connect(transport, conn.close, request.remote or "", grant.symbols, answer, wire)
    on_lost: list[Callable[[], object]] = [slot.release]
    expiry = expire_when_due(grant, functools.partial(hub.close_client, client))
    if expiry is not None:
        on_lost.append(expiry.cancel)
    conn.start(client, on_lost, tail)
    return _DETACHED


_DETACHED = Detached(status=101)


# Lifecycle


async def _run_feeds(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[HUB_CONFIG])
    app[HUB] = hub
    history = app.get(HISTORY)
    if history is not None:
        # Before the feeds and the bus (their events continue the history) and before the site
        # accepts (cleanup_ctx runs in runner.setup()); in a thread: the loop stays free.
        from ticker.store.load import load_history

        await asyncio.to_thread(load_history, history, hub.bars, hub.book)
    sink = hub.publish
    recorder = app.get(RECORDER)
    if recorder is not None:
        # The recorder sits beside the hub: one list.append per event on the loop.
        await recorder.start()
        publish, record = hub.publish, recorder.record

        def sink(ev: Event) -> None:
            publish(ev)
            record(ev)

    url, role = app[BUS_URL], app[ROLE]
    redis_bus = None
    bus: Bus
    if url.startswith("memory:"):
        bus = MemoryBus(sink)
    else:
        from ticker.bus.redis import RedisBus

        # Edge events reach the hub (and the recorder) from Redis, with service-wide news ids.
        bus = redis_bus = RedisBus(url, sink, role=role, on_resync=hub.resync_all, bars=hub.bars)
    app[BUS] = bus
    sources = app[SOURCES] if role != "edge" else []
    feed_sink = bus.publish
    if recorder is not None and role == "ingest":
        # An ingest node's hub hears nothing from the bus: record what its feeds publish.
        to_bus, record = bus.publish, recorder.record

        def feed_sink(ev: Event) -> None:
            record(ev)
            to_bus(ev)

    runners = [FeedRunner(src, feed_sink) for src in sources]
    app[RUNNERS] = runners
    hub.start()
    app[SOCKETS].start()
    if redis_bus is not None:
        await redis_bus.start()
    for r in runners:
        r.start()
    yield
    for r in runners:
        await r.stop()
    if redis_bus is not None:
        await redis_bus.stop()
    if recorder is not None:
        await recorder.aclose()
    await hub.stop()


async def _observe(app: web.Application) -> AsyncIterator[None]:
    runners: list[FeedRunner] = app[RUNNERS]
    m = app[METRICS] = Metrics(app[HUB], runners, app[BUS], recorder=app.get(RECORDER))
    m.start()
    yield
    await m.stop()


async def _close_sockets(app: web.Application) -> None:
    if HUB in app:
        await app[HUB].close_all()
    await app[SOCKETS].stop()  # (aborts any socket close_all left open)


def create_app(
    feeds: Sequence[FeedSource | Feed] = (),
    hub: HubConfig | None = None,
    *,
    server: ServerConfig | None = None,
    recorder: Recorder | None = None,
    bus: str = "memory://",
    role: str = "all",
    auth: AuthConfig | None = None,
    history: Path | None = None,
) -> web.Application:
    """Build the application. Feeds start when the app starts and stop when it stops.

    Args:
        feeds: feed sources (restartable) or ready feed instances.
        hub: the broadcaster's settings (ticker.config).
        server: connection limits, socket and frame bounds, heartbeat (ticker.config).
        recorder: records every ingested event (``ticker serve --record``); started and closed
            with the feeds.
        bus: ``memory://`` (one process) or a ``redis://``/``rediss://`` URL (ticker.bus.redis).
        role: ``all``, ``ingest`` (run feeds, publish to the bus) or ``edge`` (no feeds; serve
            clients from the bus). Only ``all`` makes sense on the memory bus.
        auth: origins, tokens and entitlements (ticker.core.auth; default: no tokens, the server's
            own origin and localhost).
        history: a directory of recordings to load bars and last quotes from at start
            (``ticker serve --history``; ticker.store.load).

    Raises:
        ValueError: an unknown bus scheme or role, a role other than ``all`` on memory, or a
            bad option in the bus URL.
    """
    check_role(role)
    scheme = bus.split(":", 1)[0]
    if scheme not in ("memory", "redis", "rediss", "unix"):
        raise ValueError(f"bus must be memory://, redis:// or rediss://, got {bus!r}")
    if scheme == "memory" and role != "all":
        raise ValueError(f"role {role!r} needs a shared bus (redis://), not memory://")
    if scheme != "memory":
        from ticker.bus.redis import max_lag_ms

        max_lag_ms(bus)  # (its options are checked now, not when the bus starts)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard])
    app[AUTH] = auth or AuthConfig()
    app[BUS_URL] = bus
    app[ROLE] = role
    app[HUB_CONFIG] = hub or HubConfig()
    app[SERVER_CONFIG] = server = server or ServerConfig()
    install_admission(app, server)
    app[SOCKETS] = Sockets(server.heartbeat_s)
    app[SOURCES] = [f if isinstance(f, FeedSource) else FeedSource.of(f) for f in feeds]
    app[STARTED] = time.time()
    if recorder is not None:
        app[RECORDER] = recorder
    if history is not None:
        app[HISTORY] = history
    app.cleanup_ctx.append(_run_feeds)
    app.cleanup_ctx.append(_observe)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/ws", ws_handler)
    add_sse_route(app)
    add_api_routes(app)
    add_publish_routes(app)
    StaticFiles(WEB_DIR, _plotly).add_routes(app)
    return app


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context from a certificate chain and its private key (PEM files).

    Raises:
        ValueError: a file that cannot be read or is not a certificate or key (one line).
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        detail = exc.strerror or (exc.reason if isinstance(exc, ssl.SSLError) else None) or exc
        raise ValueError(f"cannot load TLS certificate {cert} / key {key}: {detail}") from exc
    return ctx


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (every connection is a
    file descriptor; a soft limit of 1,024 would refuse connections long before
    ``max_connections``), as Go's runtime and nginx's ``worker_rlimit_nofile`` do.

    Returns:
        the soft limit now in force (unchanged where the platform has no such limit).
    """
    try:
        import resource
    except ImportError:  # (not on Windows)
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Run ``app`` until ``stop`` is set; print ``listening on http://HOST:PORT`` first
    (``https://`` with ``ssl_context``: the server speaks TLS, WebSockets are ``wss://``).
    The open-file limit is raised first (:func:`raise_open_file_limit`)."""
    nofile = raise_open_file_limit()
    limit = app[SERVER_CONFIG].max_connections
    if 0 <= nofile < limit:  # (0: no limit, nothing to compare)
        log.warning(
            "open-file limit %d is below max_connections %d: connections past it are refused",
            nofile,
            limit,
        )
    runner = web.AppRunner(
        app,
        shutdown_timeout=2.0,
        handle_signals=False,
        access_log=None,
        # aiohttp's keep-alive timer also runs from the start of a connection: a request must
        # arrive whole within it (half-open and slow handshakes).
        keepalive_timeout=app[SERVER_CONFIG].http_idle_s,
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        host,
        port,
        backlog=4096,
        ssl_context=ssl_context,
        reuse_port=app[SERVER_CONFIG].reuse_port or None,
    )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()  # the feeds (and a recorder) already started: stop them cleanly
        raise
    sockname = runner.addresses[0]
    bound_host, bound_port = sockname[0], sockname[1]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if ssl_context is not None else "http"
    print(f"listening on {scheme}://{shown}:{bound_port}", flush=True)
    log.info(
        "listening on %s://%s:%d",
        scheme,
        shown,
        bound_port,
        extra={
            "host": bound_host,
            "port": bound_port,
            "feeds": [r.name for r in app.get(RUNNERS, [])],
        },
    )
    try:
        await (stop or asyncio.Event()).wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()

"""HTTP and WebSocket server: ``create_app(feeds) -> web.Application``.

I/O shell. Routes: ``/ws`` (docs/protocol.md), ``/healthz``, ``/api/symbols``, ``/api/quotes``,
``/api/news``, ``/api/replay`` (replay control), ``/`` and ``/static/`` (files from ``web/``
only), ``/vendor/plotly.min.js`` (from the installed ``plotly`` package, so the dashboard works
offline); ``/metrics`` (Prometheus, ticker.ops.metrics); ``POST /api/ticks`` and
``POST /api/news`` (ticker.net.publish). Who may use which is decided by one middleware
(ticker.net.guard) before a handler runs.
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
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ticker import __version__
from ticker.bus.memory import Bus, MemoryBus
from ticker.bus.supervisor import FeedRunner, FeedSource
from ticker.config import HubConfig, ServerConfig
from ticker.core.auth import AuthConfig, entitled_only, news_visible, permits
from ticker.core.events import Controllable, Event, Feed
from ticker.core.roles import check_role
from ticker.core.wsframe import handshake_response
from ticker.hub.broadcaster import Hub
from ticker.net.admission import ADMISSION, Slot, admit, install as install_admission
from ticker.net.guard import AUTH, WS_PROTOCOLS, expire_when_due, grant_of, guard
from ticker.net.keys import (
    BUS,
    BUS_URL,
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
from ticker.net.publish import add_publish_routes, read_body
from ticker.net.responses import json_error, json_response as _json
from ticker.net.wsconn import Sockets, WsConnection, detach
from ticker.ops.metrics import Metrics
from ticker.replay.control import parse_command
from ticker.replay.errors import ReplayError

if TYPE_CHECKING:
    from ticker.store.recorder import Recorder

__all__ = ["HUB", "RUNNERS", "WEB_DIR", "create_app", "plotly_js_path", "serve", "tls_context"]

log = logging.getLogger("ticker.server")

WEB_DIR = Path(__file__).resolve().parents[2] / "web"


MAX_BODY = 1024 * 1024
"""Largest request body but the publish API's (its own limits: ticker.net.publish)."""


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` bundled with the installed ``plotly`` Python package."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _bad(message: str) -> web.Response:
    return json_error(400, "bad_request", message)


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
        return _bad(f"a WebSocket upgrade is a GET, not {request.method}")
    if request.version < (1, 1):
        return _bad("a WebSocket upgrade needs HTTP/1.1")
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
        return _bad("not a valid WebSocket upgrade request")
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
    answer = handshake_response(key, ready.protocol)  # the 101, in one write with the hello
    client = hub.connect(transport, conn.close, request.remote or "", grant.symbols, answer)
    on_lost: list[Callable[[], object]] = [slot.release]
    expiry = expire_when_due(grant, functools.partial(hub.close_client, client))
    if expiry is not None:
        on_lost.append(expiry.cancel)
    conn.start(client, on_lost, tail)
    return _DETACHED


class _Detached(web.StreamResponse):
    """What ``/ws`` returns once the socket is ours: aiohttp ends the request writing nothing."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


_DETACHED = _Detached(status=101)


# HTTP API


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    hub = app[HUB]
    body = {
        "status": "ok",
        "server": f"ticker/{__version__}",
        "uptime_s": round(time.time() - app[STARTED], 3),
        "feeds": [r.health() for r in app[RUNNERS]],
        "bus": app[BUS].health(),
        "tasks": len(asyncio.all_tasks()),  # leak check (tests/test_soak.py)
        "admission": app[ADMISSION].limits.health(),
    }
    if RECORDER in app:
        body["recorder"] = app[RECORDER].health()
    body.update(hub.health())
    return _json(body)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition (OpenMetrics when the scraper asks)."""
    body, content_type = request.app[METRICS].render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def api_symbols(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    quotes = hub.book.quotes
    known = entitled_only(hub.book.known, grant_of(request).symbols)
    return _json(
        {
            "symbols": [
                {"symbol": s, "price": quotes[s]["price"] if s in quotes else None} for s in known
            ]
        }
    )


async def api_quotes(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    wanted = request.query.get("symbols")
    syms = [s for s in wanted.split(",") if s] if wanted else None
    entitled = grant_of(request).symbols
    if entitled is not None:
        syms = entitled_only(hub.book.quotes if syms is None else syms, entitled)
    return _json({"quotes": hub.book.snapshot(syms)})


def _int_param(
    request: web.Request, name: str, default: int | None, lo: int, hi: int | None = None
) -> int | None:
    """The query parameter ``name`` as an integer, clamped to ``hi``.

    Raises:
        ValueError: it is not an integer, or below ``lo`` (the message says so).
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ValueError(f"'{name}' must be an integer") from None
    if v < lo:
        raise ValueError(f"'{name}' must be >= {lo}")
    return min(v, hi) if hi is not None else v


async def api_news(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    try:
        since = _int_param(request, "since", None, 0)
        limit = _int_param(request, "limit", 100, 0, 10_000)
    except ValueError as exc:
        return _bad(str(exc))
    assert limit is not None
    entitled = grant_of(request).symbols
    if entitled is None:
        items = hub.news_after(since, limit)
    else:  # only items it may see, then the limit (ticker.core.auth.news_visible)
        items = [
            i for i in hub.news_after(since, len(hub.news)) if news_visible(i.symbols, entitled)
        ]
        if limit == 0:
            items = []
        else:
            items = items[:limit] if since is not None else items[-limit:]
    return _json(
        {
            "items": [orjson.loads(orjson.dumps(i)) for i in items],
            "oldest_id": hub.news[0][0] if hub.news else None,
            "last_id": hub.news_last_id,
        }
    )


async def api_history(request: web.Request) -> web.Response:
    """``GET /api/history?symbol=&interval=1s|5s|1min&limit=``: OHLCV bars (store.history)."""
    # pandas (~100 MB resident) loads on the first history request, not at start-up: a server
    # that nobody asks for bars keeps its memory for connections.
    from ticker.store.history import (
        DEFAULT_LIMIT as HISTORY_DEFAULT_LIMIT,
        MAX_LIMIT as HISTORY_MAX_LIMIT,
        Bars,
        bars_from_columns,
        parse_interval,
    )

    hub = request.app[HUB]
    symbol = request.query.get("symbol", "")
    if not symbol:
        return _bad("'symbol' is required")
    interval = request.query.get("interval", "1s")
    try:
        interval_ms = parse_interval(interval)
    except ValueError as exc:
        return _bad(str(exc))
    raw_limit = request.query.get("limit") or str(HISTORY_DEFAULT_LIMIT)
    try:
        limit = min(int(raw_limit), HISTORY_MAX_LIMIT)
    except ValueError:
        return _bad("'limit' must be an integer")
    if limit < 1:
        return _bad("'limit' must be >= 1")
    known = hub.book.known
    sym = symbol if symbol in known else symbol.upper()
    if sym not in known:
        return json_error(404, "unknown_symbol", f"unknown symbol {symbol!r}")
    if not permits(grant_of(request).symbols, sym):
        return json_error(403, "unauthorized", f"not entitled to {sym!r}")
    # The ring's columns are copies (every tick appends to it); ~3 ms for 10,000 ticks.
    ring = hub.history.get(sym)
    result = bars_from_columns(*ring.columns(), interval_ms, limit) if ring else Bars(interval_ms)
    return _json({"symbol": sym, "interval": interval, **result.to_json()})


def _replay_feeds(app: web.Application) -> list[tuple[str, Controllable, dict[str, Any]]]:
    """(runner name, feed, status) of every running feed that can be steered now (a loaded
    replay: :class:`~ticker.core.events.Controllable`)."""
    out: list[tuple[str, Controllable, dict[str, Any]]] = []
    for r in app[RUNNERS]:
        feed = r.feed
        if feed is None or not isinstance(feed, Controllable):
            continue
        if (st := feed.replay_status()) is not None:
            out.append((r.name, feed, {**st, "name": r.name}))
    return out


async def api_replay(request: web.Request) -> web.Response:
    """``GET /api/replay``: ``{"feeds": [{name, state, speed, clock, start, end}]}``.

    ``POST /api/replay`` with ``{"action": "pause"|"resume"|"seek"|"speed", "to": ms,
    "speed": x|"max", "feed": name}`` applies it (to every replay feed without ``feed``) and
    answers like GET. ``speed`` is null for ``max``; times are epoch ms of the market clock.
    """
    app = request.app
    if request.method == "POST":
        raw = await read_body(request, MAX_BODY)
        if isinstance(raw, web.Response):
            return raw
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _bad("body is not JSON")
        try:
            cmd = parse_command(body)
        except ReplayError as exc:
            return _bad(str(exc))
        targets = [(n, f) for n, f, _ in _replay_feeds(app) if cmd.feed in (None, n)]
        if not targets:
            return _bad(
                f"no replay feed named {cmd.feed!r}" if cmd.feed else "no replay feed is running"
            )
        for _, feed in targets:
            try:
                feed.replay_control(cmd.action, to=cmd.to, speed=cmd.speed)
            except ReplayError as exc:
                return _bad(str(exc))
    return _json({"feeds": [st for _, _, st in _replay_feeds(app)]})


# Static files


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html")


async def plotly_js(request: web.Request) -> web.FileResponse:
    return web.FileResponse(plotly_js_path(), headers={"Cache-Control": "max-age=86400"})


# Lifecycle


async def _run_feeds(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[HUB_CONFIG])
    app[HUB] = hub
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
        bus = redis_bus = RedisBus(url, sink, role=role, on_resync=hub.resync_all)
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

    Raises:
        ValueError: an unknown bus scheme or role, or a role other than ``all`` on memory.
    """
    check_role(role)
    scheme = bus.split(":", 1)[0]
    if scheme not in ("memory", "redis", "rediss", "unix"):
        raise ValueError(f"bus must be memory://, redis:// or rediss://, got {bus!r}")
    if scheme == "memory" and role != "all":
        raise ValueError(f"role {role!r} needs a shared bus (redis://), not memory://")
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
    app.cleanup_ctx.append(_run_feeds)
    app.cleanup_ctx.append(_observe)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/symbols", api_symbols)
    app.router.add_get("/api/quotes", api_quotes)
    app.router.add_get("/api/news", api_news)
    app.router.add_get("/api/history", api_history)
    app.router.add_get("/api/replay", api_replay)
    app.router.add_post("/api/replay", api_replay)
    add_publish_routes(app)
    app.router.add_get("/vendor/plotly.min.js", plotly_js)
    app.router.add_get("/", index)
    app.router.add_static("/static/", WEB_DIR, follow_symlinks=False)
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


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Run ``app`` until ``stop`` is set; print ``listening on http://HOST:PORT`` first
    (``https://`` with ``ssl_context``: the server speaks TLS, WebSockets are ``wss://``)."""
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
    site = web.TCPSite(runner, host, port, backlog=4096, ssl_context=ssl_context)
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

"""Access control for the aiohttp app: one middleware says who may do what.

I/O shell around :mod:`ticker.core.auth`. Every decision is made before the handler runs, so a
refused WebSocket is never upgraded:

========================================  ==================================================
``/ws``, ``/sse``, ``/api/*``             first a ``Host`` this server is known by (else
                                          421: DNS rebinding; ticker.core.auth.host_allowed)
``GET /ws``, ``GET /sse``                 allowed ``Origin`` (else 403), then a client token
                                          when required (else 401)
``GET /api/symbols|quotes|history|bars``  a client token when required (else 401); the
``GET /api/news``                         same
``POST /api/ticks``, ``POST /api/news``   the admin token (401); 403 when none is configured
``POST /api/replay``                      the admin token; without one configured, a loopback
                                          peer with an allowed origin (``local_replay``)
everything else                           open (``/``, ``/static/``, ``/healthz``, GET
                                          ``/api/replay``)
========================================  ==================================================

A client token comes as ``Authorization: Bearer <token>``, ``?token=<token>``, or (``/ws`` only) the
WebSocket subprotocol ``bearer.<token>`` offered together with ``ticker.v1`` (or
``ticker.v1.msgpack``), which the server then selects (browsers require the server to select one of
the offered protocols, and selecting the token would echo it). Without a token secret, client tokens
are not in use and one presented is ignored; with one, a bad token is refused even where none is
required. The admin token is accepted wherever a client token is (every symbol); the write endpoints
and replay control take it from the ``Authorization`` header only. Refusals never repeat a token,
and nothing here logs one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ticker.core.auth import (
    FULL,
    AuthConfig,
    AuthError,
    Grant,
    admin_ok,
    bearer,
    host_allowed,
    host_name,
    origin_allowed,
    verify_token,
)
from ticker.core.wire import SUBPROTOCOLS, select_subprotocol
from ticker.net.responses import json_error

__all__ = [
    "AUTH",
    "GRANT",
    "HOST_CHECKED",
    "WS_PROTOCOLS",
    "expire_when_due",
    "grant_of",
    "guard",
    "ws_offer",
]

AUTH = web.AppKey("auth", AuthConfig)
GRANT = web.RequestKey("grant", Grant)

WS_PROTOCOLS = tuple(SUBPROTOCOLS)
"""Subprotocols the server selects when offered, the first in the client's order
(``ticker.v1``: JSON text, ``ticker.v1.msgpack``: MessagePack binary; docs/protocol.md)."""

BEARER_PROTOCOL = "bearer."

HOST_CHECKED = ("/ws", "/sse", "/api/")
"""Paths that answer only an allowed ``Host`` (421 otherwise): exact, or every path under an
entry ending in ``/``. A new route a page could read from another site (SSE...) goes here."""

_READ = frozenset({"/api/symbols", "/api/quotes", "/api/history", "/api/bars", "/api/news"})
_WRITE = frozenset({"/api/ticks", "/api/news"})
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse(status: int, error: str, message: str) -> web.Response:
    # A 401 names the scheme it wants (RFC 9110 11.6.1).
    headers = {"WWW-Authenticate": 'Bearer realm="ticker"'} if status == 401 else None
    return json_error(status, error, message, headers=headers)


def _host_checked(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in HOST_CHECKED)


def _misdirected(request: web.Request, cfg: AuthConfig) -> web.Response | None:
    """421 when the request's ``Host`` is not one this server is known by."""
    host = request.headers.get("Host")  # not request.host: aiohttp makes one up when absent
    if host_allowed(host, cfg.host_rules):
        return None
    if host is None:
        return _refuse(421, "misdirected", "a Host header is required")
    name = host_name(host)[:100]
    return _refuse(
        421, "misdirected", f"host {name!r} is not served here; add it with --public-host"
    )


def ws_offer(request: web.Request) -> tuple[str | None, list[str]]:
    """(token, other offered protocols) of the ``Sec-WebSocket-Protocol`` header."""
    token = None
    others = []
    for p in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        p = p.strip()
        if p.startswith(BEARER_PROTOCOL):
            token = p[len(BEARER_PROTOCOL) :]
        elif p:
            others.append(p)
    return token, others


def _client_grant(request: web.Request, cfg: AuthConfig, token: str | None) -> Grant | None:
    """The grant of ``token`` (FULL when absent and not required); None when refused."""
    if token is None:
        token = bearer(request.headers.get("Authorization")) or request.query.get("token")
    if token is None:
        return None if cfg.require_token else FULL
    if admin_ok(token, cfg.admin_token):
        return Grant(sub="admin", admin=True)
    if cfg.token_secret is None:  # client tokens are not in use: everything is open anyway
        return FULL
    try:
        return verify_token(token, cfg.token_secret, now=time.time())
    except AuthError:
        return None


def _is_local(request: web.Request) -> bool:
    """A loopback peer that is not a proxy forwarding someone else."""
    if any(h in request.headers for h in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def _origin_ok(request: web.Request, cfg: AuthConfig) -> bool:
    return origin_allowed(request.headers.get("Origin"), request.host, cfg.rules)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The access policy (module docstring) in front of every route."""
    cfg = request.app[AUTH]
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else ""
    method = request.method
    if _host_checked(request.path) or _host_checked(path):
        misdirected = _misdirected(request, cfg)
        if misdirected is not None:
            return misdirected
    if path == "/ws":
        if not _origin_ok(request, cfg):
            return _refuse(403, "forbidden", "origin not allowed")
        token, others = ws_offer(request)
        if token is not None and select_subprotocol(others) is None:
            # Without a protocol we can select, aiohttp would log the offer (the token).
            return _refuse(400, "bad_request", "offer ticker.v1 together with bearer.<token>")
        grant = _client_grant(request, cfg, token)
        if grant is None:
            return _refuse(401, "unauthorized", "a valid client token is required")
        request[GRANT] = grant
    elif path == "/sse":  # the event stream: as /ws (its token by header or ?token=)
        if not _origin_ok(request, cfg):
            return _refuse(403, "forbidden", "origin not allowed")
        grant = _client_grant(request, cfg, None)
        if grant is None:
            return _refuse(401, "unauthorized", "a valid client token is required")
        request[GRANT] = grant
    elif method == "POST" and path in _WRITE:
        if cfg.admin_token is None:
            return _refuse(403, "forbidden", "publishing is disabled: no admin token is set")
        if not admin_ok(bearer(request.headers.get("Authorization")), cfg.admin_token):
            return _refuse(401, "unauthorized", "the admin token is required")
    elif path in _READ:
        grant = _client_grant(request, cfg, None)
        if grant is None:
            return _refuse(401, "unauthorized", "a valid client token is required")
        request[GRANT] = grant
    elif method == "POST" and path == "/api/replay":
        if cfg.admin_token is not None:
            if not admin_ok(bearer(request.headers.get("Authorization")), cfg.admin_token):
                return _refuse(401, "unauthorized", "the admin token is required")
        elif not (cfg.local_replay and _is_local(request) and _origin_ok(request, cfg)):
            return _refuse(403, "forbidden", "replay control needs the admin token")
    return await handler(request)


def grant_of(request: web.Request) -> Grant:
    """The request's grant (set by :func:`guard`); every symbol when none was set."""
    return request[GRANT] if GRANT in request else FULL


def expire_when_due(
    grant: Grant, close: Callable[[int, str], object]
) -> asyncio.TimerHandle | None:
    """Call ``close(1008, "token expired")`` when the grant's token expires; cancel the handle
    when the connection ends first."""
    if grant.expires is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.call_later(max(0.0, grant.expires - time.time()), close, 1008, "token expired")

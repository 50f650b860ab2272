"""The HTTP API beside the WebSocket: health, metrics, symbols, quotes, news, bars and replay
control (``add_api_routes``). Access is decided before a handler runs (ticker.net.guard).

I/O shell around the hub's queries.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from ticker import __version__
from ticker.core.auth import entitled_only, news_visible, permits
from ticker.core.bars import INTERVALS, IntervalError, interval_ms
from ticker.core.book import compact
from ticker.core.events import Controllable, HasNames
from ticker.core.protocol import BARS_LIMIT, wire_rows
from ticker.net.admission import ADMISSION
from ticker.net.guard import grant_of
from ticker.net.keys import BUS, HUB, METRICS, RECORDER, RUNNERS, STARTED
from ticker.net.publish import read_body
from ticker.net.responses import bad_request, json_error, json_response as _json
from ticker.replay.control import parse_command
from ticker.replay.errors import ReplayError

__all__ = ["MAX_BODY", "add_api_routes"]

MAX_BODY = 1024 * 1024
"""Largest request body but the publish API's (its own limits: ticker.net.publish)."""


BROKEN_FEED_STATES = frozenset({"quarantined", "backoff"})
"""Feed states that make ``/healthz`` say ``degraded``: stopped for good, or failing now."""


def overall_status(feeds: list[dict[str, Any]], bus: dict[str, Any]) -> tuple[str, list[str]]:
    """``ok`` or ``degraded``, and why: each feed quarantined or failing (in backoff), and a bus
    that is not up. Pure."""
    why = [f"feed {f['name']} {f['state']}" for f in feeds if f["state"] in BROKEN_FEED_STATES]
    if bus.get("state") not in (None, "up"):
        why.append(f"bus {bus['state']}")
    return ("degraded" if why else "ok"), why


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: state and counters; ``status`` is ``ok`` or ``degraded`` (with
    ``problems``). With ``?strict=1`` a degraded server answers 503 (for load balancers)."""
    app = request.app
    hub = app[HUB]
    feeds = [r.health() for r in app[RUNNERS]]
    bus = app[BUS].health()
    status, problems = overall_status(feeds, bus)
    body = {
        "status": status,
        "problems": problems,
        "server": f"ticker/{__version__}",
        "uptime_s": round(time.time() - app[STARTED], 3),
        "pid": os.getpid(),  # which process answered (several can share a port: --reuse-port)
        "feeds": feeds,
        "bus": bus,
        "tasks": len(asyncio.all_tasks()),  # leak check (tests/test_soak.py)
        "admission": app[ADMISSION].limits.health(),
    }
    if RECORDER in app:
        body["recorder"] = app[RECORDER].health()
    body.update(hub.health())
    strict = request.query.get("strict", "") not in ("", "0", "false", "no")
    return _json(body, status=503 if strict and status != "ok" else 200)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition (OpenMetrics when the scraper asks)."""
    body, content_type = request.app[METRICS].render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def api_symbols(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    quotes = hub.book.quotes
    bars = hub.bars.symbols
    known = entitled_only(hub.book.known, grant_of(request).symbols)
    names = _names(request.app)
    return _json(
        {
            "symbols": [
                {
                    "symbol": s,
                    "price": quotes[s]["price"] if s in quotes else None,
                    "finest": bars[s].finest_interval if s in bars else None,
                    **({"name": names[s]} if s in names else {}),
                }
                for s in known
            ]
        }
    )


def _names(app: web.Application) -> dict[str, str]:
    """Symbol -> name, from the running feeds that know names (``HasNames``; the first wins)."""
    out: dict[str, str] = {}
    for r in app[RUNNERS]:
        feed = r.feed
        if feed is None or not isinstance(feed, HasNames):
            continue
        try:
            names: object = feed.names()  # a plug-in's, shape unchecked: it must not break this
        except Exception:
            continue
        for sym, name in names.items() if isinstance(names, Mapping) else ():
            if isinstance(sym, str) and isinstance(name, str) and name:
                out.setdefault(sym, name[:200])
    return out


async def api_quotes(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    wanted = request.query.get("symbols")
    syms = [s for s in wanted.split(",") if s] if wanted else None
    entitled = grant_of(request).symbols
    if entitled is not None:
        syms = entitled_only(hub.book.quotes if syms is None else syms, entitled)
    # (Compact, as over the WebSocket: a client's merged book equals this.)
    return _json({"quotes": {s: compact(q) for s, q in hub.book.snapshot(syms).items()}})


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


def _float_param(request: web.Request, name: str) -> float | None:
    """The query parameter ``name`` as a finite number, or None when absent.

    Raises:
        ValueError: it is not a finite number.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"'{name}' must be a number") from None
    if not math.isfinite(v):
        raise ValueError(f"'{name}' must be a finite number")
    return v


_INTERVALS = ", ".join(INTERVALS)


async def api_news(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    try:
        since = _int_param(request, "since", None, 0)
        limit = _int_param(request, "limit", 100, 0, 10_000)
    except ValueError as exc:
        return bad_request(str(exc))
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


def _bars_query(
    request: web.Request, default_interval: str | None
) -> tuple[str, str, int, float | None] | web.Response:
    """(symbol, interval, limit, before) of a bars request, or the error answer."""
    hub = request.app[HUB]
    q = request.query
    symbol = q.get("symbol", "")
    if not symbol:
        return bad_request("'symbol' is required")
    name = q.get("interval", default_interval)
    if name is None:
        return json_error(400, "bad_interval", f"'interval' is required: one of {_INTERVALS}")
    try:
        width = interval_ms(name)
    except IntervalError as exc:
        return json_error(400, "bad_interval", str(exc))
    interval = next(k for k, v in INTERVALS.items() if v == width)
    low, high, default = BARS_LIMIT
    try:
        limit = _int_param(request, "limit", default, low, high)
        before = _float_param(request, "before")
    except ValueError as exc:
        return bad_request(str(exc))
    assert limit is not None
    known = hub.book.known
    sym = symbol if symbol in known else symbol.upper()
    if sym not in known:
        return json_error(404, "unknown_symbol", f"unknown symbol {symbol!r}")
    if not permits(grant_of(request).symbols, sym):
        return json_error(403, "unauthorized", f"not entitled to {sym!r}")
    return sym, interval, limit, before


async def api_bars(request: web.Request) -> web.Response:
    """``GET /api/bars?symbol=&interval=&limit=&before=``: what the ``bars`` op answers."""
    query = _bars_query(request, None)
    if isinstance(query, web.Response):
        return query
    sym, interval, limit, before = query
    try:
        rows = request.app[HUB].bar_rows(sym, interval, limit, before)
    except IntervalError as exc:
        return json_error(400, "bad_interval", str(exc), extra={"finest": exc.finest})
    return _json({"symbol": sym, "interval": interval, "bars": wire_rows(rows)})


async def api_history(request: web.Request) -> web.Response:
    """``GET /api/history?symbol=&interval=1s|5s|1min|...&limit=``: the bars of ``/api/bars``
    in the columnar shape of v1 (``interval_ms``, ``last_ts``, ``bars`` of columns)."""
    query = _bars_query(request, "1s")
    if isinstance(query, web.Response):
        return query
    sym, interval, limit, before = query
    hub = request.app[HUB]
    try:
        rows = hub.bar_rows(sym, interval, limit, before)
    except IntervalError as exc:
        return json_error(400, "bad_interval", str(exc), extra={"finest": exc.finest})
    names = ("t", "open", "high", "low", "close", "volume")
    columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    quote = hub.book.quotes.get(sym)
    return _json(
        {
            "symbol": sym,
            "interval": request.query.get("interval", "1s"),
            "interval_ms": INTERVALS[interval],
            "last_ts": quote["ts"] if quote and rows else None,
            "bars": columns,
        }
    )


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
            return bad_request("body is not JSON")
        try:
            cmd = parse_command(body)
        except ReplayError as exc:
            return bad_request(str(exc))
        targets = [(n, f) for n, f, _ in _replay_feeds(app) if cmd.feed in (None, n)]
        if not targets:
            return bad_request(
                f"no replay feed named {cmd.feed!r}" if cmd.feed else "no replay feed is running"
            )
        for _, feed in targets:
            try:
                feed.replay_control(cmd.action, to=cmd.to, speed=cmd.speed)
            except ReplayError as exc:
                return bad_request(str(exc))
    return _json({"feeds": [st for _, _, st in _replay_feeds(app)]})


def add_api_routes(app: web.Application) -> None:
    """Route ``/healthz``, ``/metrics`` and the read APIs of ``app``."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/symbols", api_symbols)
    app.router.add_get("/api/quotes", api_quotes)
    app.router.add_get("/api/news", api_news)
    app.router.add_get("/api/history", api_history)
    app.router.add_get("/api/bars", api_bars)
    app.router.add_get("/api/replay", api_replay)
    app.router.add_post("/api/replay", api_replay)

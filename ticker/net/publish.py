"""Publish API: external producers push ticks, bars and news over HTTP.

``POST /api/ticks``: a JSON array of ticks, or ``{"ticks": [...]}``, at most :data:`MAX_TICKS`.
``POST /api/bars``: a JSON array of OHLCV bars, or ``{"bars": [...]}``, at most :data:`MAX_BARS`.
``POST /api/news``: one news item (an object) or an array of at most :data:`MAX_NEWS`.

Pure validation (:func:`parse_ticks`, :func:`parse_bars`, :func:`parse_news`: msgspec, one pass
over the bytes; the events are built by ticker.core.codec; a bar also passes the core's
:func:`~ticker.core.validate.event_problem`, which knows its cross-field rules) and a thin I/O
shell (the handlers). A request is all or
nothing: the whole body is validated before any event is applied, so a producer told ``400`` fixes
its batch and sends it again, losing nothing and duplicating nothing. Accepted events take the
app's bus path: in one process, ``MemoryBus.publish`` (the hub and the recorder); on Redis,
:meth:`RedisBus.post` writes them in one transaction whatever the node's role (a posted event
reaches one node only, unlike a feed's, which every ingest node sees). The admin token is checked
by :mod:`ticker.net.guard` before these handlers run. Bodies are read by :func:`read_body`
(``POST /api/replay`` too): a size limit, and ``http_idle_s`` for the whole body.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from ticker.bus.memory import Transactional
from ticker.core.bars import INTERVALS
from ticker.core.codec import BAR, NEWS, TICK
from ticker.core.events import Bar, Event, Listing, News, Tick
from ticker.core.validate import event_problem
from ticker.net.keys import BUS, HUB, SERVER_CONFIG
from ticker.net.responses import json_error, json_response

__all__ = [
    "MAX_BARS",
    "MAX_BARS_BYTES",
    "MAX_NEWS",
    "MAX_NEWS_BYTES",
    "MAX_TICKS",
    "MAX_TICKS_BYTES",
    "PublishError",
    "add_publish_routes",
    "parse_bars",
    "parse_news",
    "parse_ticks",
    "read_body",
]

log = logging.getLogger("ticker.publish")

MAX_TICKS = 10_000
"""Ticks per ``POST /api/ticks``."""
MAX_TICKS_BYTES = 4 * 1024 * 1024
"""Body size of ``POST /api/ticks`` (10,000 ticks with every field take about 2 MB)."""
MAX_BARS = 10_000
"""Bars per ``POST /api/bars``."""
MAX_BARS_BYTES = 4 * 1024 * 1024
"""Body size of ``POST /api/bars`` (10,000 bars take about 1.5 MB)."""
MAX_NEWS = 1_000
"""Items per ``POST /api/news``."""
MAX_NEWS_BYTES = 1024 * 1024
"""Body size of ``POST /api/news``."""

_CHUNK = 1_000  # events applied between yields to the loop: other clients keep being served


# Pure validation. The structs are the events' fields (ticker.core.events; tests/test_codec.py
# checks they match) with what a producer may send: the constraints, and News without its id.

Symbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:/^=+-]{1,32}$")]
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class _TickIn(msgspec.Struct, forbid_unknown_fields=True):
    symbol: Symbol
    price: Positive
    ts: Positive  # epoch ms at the source
    size: NonNegative | None = None
    bid: Positive | None = None
    ask: Positive | None = None
    volume: NonNegative | None = None
    prev_close: Positive | None = None


_TickList = Annotated[list[_TickIn], msgspec.Meta(max_length=MAX_TICKS)]


class _TickBatch(msgspec.Struct, forbid_unknown_fields=True):
    ticks: _TickList


class _NewsIn(msgspec.Struct, forbid_unknown_fields=True):
    headline: Annotated[str, msgspec.Meta(min_length=1, max_length=1_000)]
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    symbols: Annotated[list[Symbol], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list
    )
    url: Annotated[str, msgspec.Meta(max_length=2_000, pattern=r"^https?://")] | None = None
    summary: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    ts: Positive | None = None  # default: when received


class _BarIn(msgspec.Struct, forbid_unknown_fields=True):
    symbol: Symbol
    ts: NonNegative  # the bar's open time, epoch ms, a multiple of its interval
    interval: Literal[tuple(INTERVALS)]  # type: ignore[valid-type]
    open: Positive
    high: Positive
    low: Positive
    close: Positive
    volume: NonNegative = 0.0


_BarList = Annotated[list[_BarIn], msgspec.Meta(max_length=MAX_BARS)]


class _BarBatch(msgspec.Struct, forbid_unknown_fields=True):
    bars: _BarList


_ticks_decoder = msgspec.json.Decoder(_TickList | _TickBatch)
_bars_decoder = msgspec.json.Decoder(_BarList | _BarBatch)
_news_decoder = msgspec.json.Decoder(
    _NewsIn | Annotated[list[_NewsIn], msgspec.Meta(max_length=MAX_NEWS)]
)

_AT = re.compile(r" - at `(\$[^`]*)`$")
_INDEX = re.compile(r"^\$(?:\.ticks|\.bars)?\[(\d+)\](?:\.(\w+))?")
_FIELD = re.compile(r"field `(\w+)`")


class PublishError(Exception):
    """A body was refused; nothing of it was applied.

    Attributes:
        code: ``bad_json`` (not JSON) or ``bad_request`` (JSON of the wrong shape).
        message: what is wrong, and where (``$[3].price``).
        index: the position of the offending tick or item, when one is.
        field: the offending field, when one is.
    """

    def __init__(
        self, code: str, message: str, index: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.index = index
        self.field = field

    def to_response(self) -> web.Response:
        """The 400 that refuses the body: ``{"error", "message", "index", "field"}``."""
        return json_error(
            400, self.code, self.message, extra={"index": self.index, "field": self.field}
        )


def _refused(exc: msgspec.DecodeError, too_many: str, single: bool = False) -> PublishError:
    """A msgspec error as a :class:`PublishError` naming the index and field (``single``: the
    body is one object, index 0)."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return PublishError("bad_json", f"body is not valid JSON: {text}")
    at = _AT.search(text)
    path = at.group(1) if at else "$"
    index = field = None
    m = _INDEX.match(path)
    if m:
        index = int(m.group(1))
        field = m.group(2)
    elif single:
        index = 0
        if path.startswith("$."):
            field = path[2:].split("[", 1)[0].split(".", 1)[0]
    if field is None and (f := _FIELD.search(text)):
        field = f.group(1)
    if text.startswith("Expected `array` of length"):
        text = too_many
    elif at is None:
        text += " - at `$`"
    return PublishError("bad_request", text, index, field)


def parse_ticks(body: bytes) -> list[Tick]:
    """Pure; no I/O. The ticks of a ``POST /api/ticks`` body (an array, or ``{"ticks": [...]}``).

    Raises:
        PublishError: not JSON, another shape, a bad field (``index``/``field`` say where) or more
            than :data:`MAX_TICKS` ticks.
    """
    try:
        raw = _ticks_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise _refused(exc, f"too many ticks: at most {MAX_TICKS:,} per request") from None
    items = raw.ticks if isinstance(raw, _TickBatch) else raw
    # (_TickIn's fields are a tick's, in its order: tests/test_codec.py)
    astuple, build = msgspec.structs.astuple, TICK.build
    return [build(list(astuple(t))) for t in items]


def parse_bars(body: bytes) -> list[Bar]:
    """Pure; no I/O. The bars of a ``POST /api/bars`` body (an array, or ``{"bars": [...]}``).

    Each bar must also be one the core takes (:func:`~ticker.core.validate.event_problem`):
    ``ts`` a multiple of its interval, ``low <= open, close <= high``.

    Raises:
        PublishError: as :func:`parse_ticks`, with :data:`MAX_BARS`.
    """
    try:
        raw = _bars_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise _refused(exc, f"too many bars: at most {MAX_BARS:,} per request") from None
    items = raw.bars if isinstance(raw, _BarBatch) else raw
    # (_BarIn's fields are a bar's, in its order: tests/test_publish.py)
    astuple, build = msgspec.structs.astuple, BAR.build
    out = [build(list(astuple(b))) for b in items]
    for i, bar in enumerate(out):
        problem = event_problem(bar)
        if problem is not None:
            field = "ts" if "ts must" in problem else ("low" if "low <=" in problem else None)
            raise PublishError("bad_request", f"{problem} - at `$[{i}]`", i, field)
    return out


def parse_news(body: bytes, now_ms: float) -> list[News]:
    """Pure; no I/O. The items of a ``POST /api/news`` body (one object, or an array); an item
    without ``ts`` gets ``now_ms``.

    Raises:
        PublishError: as :func:`parse_ticks`, with :data:`MAX_NEWS`.
    """
    try:
        raw = _news_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise _refused(
            exc, f"too many items: at most {MAX_NEWS:,} per request", body.lstrip()[:1] == b"{"
        ) from None
    items = [raw] if isinstance(raw, _NewsIn) else raw
    out: list[News] = []
    for n in items:
        fields = msgspec.structs.asdict(n)
        if n.ts is None:
            fields["ts"] = now_ms
        out.append(NEWS.from_dict(fields))
    return out


# I/O shell


async def read_body(request: web.Request, limit: int) -> bytes | web.Response:
    """The body, at most ``limit`` bytes (413 beyond, before reading all of it), received whole
    within ``http_idle_s`` of the handler starting (else 408, and the connection is closed: a
    slow body holds no handler for longer than a slow request head would hold the socket).

    A client that goes away mid-body is one INFO line; the response returned then is never sent.
    """
    too_large = json_error(413, "too_large", f"request body over {limit:,} bytes")
    if request.content_length is not None and request.content_length > limit:
        return too_large
    idle = request.app[SERVER_CONFIG].http_idle_s
    body = bytearray()
    try:
        async with asyncio.timeout(idle if idle > 0 else None):
            async for chunk in request.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > limit:
                    return too_large
    except TimeoutError:
        log.info(
            "%s %s from %s: body not received within %g s (%d of %s bytes); closed",
            request.method,
            request.path,
            request.remote,
            idle,
            len(body),
            request.content_length,
        )
        return await _give_up(
            request, json_error(408, "timeout", f"request body not received within {idle:g} s")
        )
    except ConnectionError:
        log.info(
            "%s %s from %s: the client went away mid-body (%d of %s bytes)",
            request.method,
            request.path,
            request.remote,
            len(body),
            request.content_length,
        )
        return json_error(400, "incomplete", "the body ended early")
    return bytes(body)


async def _give_up(request: web.Request, resp: web.Response) -> web.Response:
    """Send ``resp`` with ``Connection: close`` and close the connection at once: aiohttp would
    otherwise go on reading the rest of the body (its lingering time, 10 s) to drop it."""
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    request.protocol.force_close()  # after the write: the transport flushes, then closes
    return resp


async def _read(request: web.Request, limit: int) -> bytes | web.Response:
    """The body (:func:`read_body`); 415 unless JSON."""
    if request.content_type != "application/json":
        return json_error(415, "unsupported_media_type", "send Content-Type: application/json")
    return await read_body(request, limit)


async def _deliver(app: web.Application, events: list[Event]) -> list[int] | web.Response:
    """Apply ``events`` through the bus; the ids of the news items among them, in order."""

    hub, bus = app[HUB], app[BUS]
    symbols = dict.fromkeys(ev.symbol for ev in events if type(ev) is Tick or type(ev) is Bar)
    new = tuple(s for s in symbols if s not in hub.book.known)
    if new:  # known at once, like a feed's declared symbols (and kept in Redis's symbol set)
        events = [Listing(new), *events]
    if isinstance(bus, Transactional):  # RedisBus: written in one transaction, ids by Redis
        try:
            ids = await bus.post(events)
        except Exception as exc:
            log.warning("publish: the bus refused %d events: %s", len(events), type(exc).__name__)
            return json_error(
                503, "unavailable", "the bus is unavailable; nothing was applied, send it again"
            )
        return ids
    ids = []
    for i, ev in enumerate(events):
        bus.publish(ev)  # the hub assigns a news item its id at once
        if type(ev) is News:
            ids.append(hub.news_last_id)
        if i % _CHUNK == _CHUNK - 1:
            await asyncio.sleep(0)
    return ids


async def _publish(
    request: web.Request, limit: int, parse: Callable[[bytes], Sequence[Event]]
) -> tuple[int, list[int]] | web.Response:
    """Read, validate and deliver one publish request: (events accepted, news ids)."""
    body = await _read(request, limit)
    if isinstance(body, web.Response):
        return body
    try:
        events = parse(body)
    except PublishError as exc:
        return exc.to_response()
    ids = await _deliver(request.app, list(events))
    if isinstance(ids, web.Response):
        return ids
    return len(events), ids


async def post_ticks(request: web.Request) -> web.Response:
    """``POST /api/ticks``: 202 ``{"accepted": n}``."""
    done = await _publish(request, MAX_TICKS_BYTES, parse_ticks)
    if isinstance(done, web.Response):
        return done
    return json_response({"accepted": done[0]}, 202)


async def post_bars(request: web.Request) -> web.Response:
    """``POST /api/bars``: 202 ``{"accepted": n}``."""
    done = await _publish(request, MAX_BARS_BYTES, parse_bars)
    if isinstance(done, web.Response):
        return done
    return json_response({"accepted": done[0]}, 202)


async def post_news(request: web.Request) -> web.Response:
    """``POST /api/news``: 202 ``{"accepted": n, "ids": [...]}``."""
    now = time.time() * 1000.0
    done = await _publish(request, MAX_NEWS_BYTES, lambda body: parse_news(body, now))
    if isinstance(done, web.Response):
        return done
    return json_response({"accepted": done[0], "ids": done[1]}, 202)


def add_publish_routes(app: web.Application) -> None:
    """Add ``POST /api/ticks``, ``/api/bars`` and ``/api/news`` to ``app`` (ticker.net.server)."""
    app.router.add_post("/api/ticks", post_ticks)
    app.router.add_post("/api/bars", post_bars)
    app.router.add_post("/api/news", post_news)

"""Wire protocol v1 (``docs/protocol.md``): messages, encode/decode, request parsing, frame bytes.

Pure; no I/O. The rest of the code never builds JSON by hand: it calls :func:`encode`, or, on the
hot path, the pre-encoded fragment helpers (:func:`quote_fragments`, :func:`delta_tail`,
:func:`delta_payload`), which produce exactly what :func:`encode` would for a :class:`Delta` while
encoding each symbol once per window instead of once per connection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from ticker.core.bars import INTERVALS, IntervalError, interval_ms
from ticker.core.book import QUOTE_FIELDS

__all__ = [
    "BARS_LIMIT",
    "ERROR_CODES",
    "FIELDS",
    "PROTOCOL_VERSION",
    "Ack",
    "BarHistory",
    "BarUpdate",
    "BarsRequest",
    "ClientMessage",
    "Delta",
    "Error",
    "Fields",
    "Hello",
    "NewsItem",
    "NewsRequest",
    "Ping",
    "Pong",
    "ProtocolError",
    "Request",
    "RequestId",
    "Resync",
    "ServerMessage",
    "Snapshot",
    "Subscribe",
    "Throttle",
    "Unbars",
    "Unsubscribe",
    "decode",
    "delta_payload",
    "delta_tail",
    "encode",
    "message_dict",
    "message_type",
    "parse_object",
    "parse_request",
    "quote_fragments",
    "snapshot_from_fragments",
    "wire_rows",
]

PROTOCOL_VERSION = 1

ERROR_CODES = frozenset(
    {
        "bad_json",
        "bad_request",
        "unknown_op",
        "unknown_symbol",
        "rate_limited",
        "too_many_symbols",
        "unauthorized",
        "bad_interval",
    }
)

WINDOW_FIELDS = ("w_high", "w_low", "w_count")
FIELDS = (*QUOTE_FIELDS, *WINDOW_FIELDS)
"""The quote fields an ``op`` ``fields`` may select: a quote's and a delta's window stats."""

BARS_LIMIT = (1, 5000, 500)
"""A ``bars`` request's ``limit``: lowest, highest, default."""

RequestId = int | str | None
"""The optional ``id`` a client puts on a request; echoed in ``ack`` and ``error``."""


# Server -> client


@dataclass(frozen=True, slots=True)
class Hello:
    """Message type: hello. First frame after connect.

    ``{"type":"hello","v":1,"server":"ticker/0.1.0","session":"s-9f2","throttle_ms":100,
    "symbols":["AAPL","MSFT"],"news_last_id":41}``
    """

    session: str
    throttle_ms: float
    symbols: tuple[str, ...]
    news_last_id: int
    server: str = "ticker"
    v: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Message type: snapshot. Full quotes, after ``subscribe``, ``resync`` or a window change.

    ``{"type":"snapshot","seq":1,"quotes":{"AAPL":{"symbol":"AAPL","price":189.31,
    "ts":1732640000123.4,"volume":120033}}}``
    """

    seq: int
    quotes: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Delta:
    """Message type: delta. Changed fields only, at most once per window per connection.

    ``{"type":"delta","seq":2,"t":1732640000230.1,"quotes":{"AAPL":{"price":189.33,
    "ts":1732640000221.9,"w_high":189.4,"w_low":189.3,"w_count":3}}}``
    """

    seq: int
    t: float
    quotes: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class NewsItem:
    """Message type: news. Never conflated or dropped; ``id`` increases service-wide.

    ``{"type":"news","id":40,"ts":1732640000000.0,"headline":"AAPL beats estimates",
    "source":"simnews","symbols":["AAPL"],"url":"https://example.com/a","summary":"..."}``
    """

    id: int
    ts: float
    headline: str
    source: str
    symbols: tuple[str, ...] = ()
    url: str | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    """Message type: pong. The answer to ``ping``, with its ``t`` echoed.

    ``{"type":"pong","t":1732640000000.5}``
    """

    t: float | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """Message type: error. A request could not be served; the connection stays open.

    ``{"type":"error","code":"unknown_symbol","message":"unknown symbols: NOPE","id":3,
    "symbols":["NOPE"]}``
    """

    code: str
    message: str
    id: RequestId = None
    symbols: tuple[str, ...] | None = None
    finest: str | None = None  # bad_interval: the finest interval the symbol's data has


@dataclass(frozen=True, slots=True)
class Ack:
    """Message type: ack. Answers any request that carried an ``id``, with op-specific fields.

    ``{"type":"ack","id":1,"symbols":["AAPL"]}``;
    for ``throttle`` ``{"type":"ack","id":2,"ms":100}``;
    for ``news`` ``{"type":"ack","id":3,"topics":["*"],"oldest_id":12,"last_id":41}``.
    """

    id: RequestId
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BarHistory:
    """Message type: bars. A symbol's bars of one interval, oldest first, ``[t,o,h,l,c,v]`` each
    (``t`` = open time, epoch ms, market clock); the last one may still be forming. Replaces
    whatever the client held for (symbol, interval).

    ``{"type":"bars","symbol":"AAPL","interval":"1m","bars":[[1732639980000,189.2,189.4,189.1,
    189.3,5200]]}``
    """

    symbol: str
    interval: str
    bars: tuple[tuple[float, float, float, float, float, float], ...]


@dataclass(frozen=True, slots=True)
class BarUpdate:
    """Message type: bar. One bar of a live ``bars`` stream, new or changed (the forming one, or
    the final values of one that just closed); replaces the client's bar with the same ``t``.

    ``{"type":"bar","symbol":"AAPL","interval":"1m","bar":[1732640040000,189.3,189.35,189.3,
    189.33,300]}``
    """

    symbol: str
    interval: str
    bar: tuple[float, float, float, float, float, float]


ServerMessage = Hello | Snapshot | Delta | NewsItem | Pong | Error | Ack | BarHistory | BarUpdate


# Client -> server


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Op subscribe: add symbols (``["*"]`` = all, current and future).

    ``{"op":"subscribe","symbols":["AAPL","MSFT"],"id":1}``
    """

    symbols: tuple[str, ...]
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Op unsubscribe: remove symbols. ``{"op":"unsubscribe","symbols":["AAPL"],"id":2}``"""

    symbols: tuple[str, ...]
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class NewsRequest:
    """Op news: set news topics; with ``since``, replay retained items after that id first.

    ``{"op":"news","topics":["*"],"since":39,"id":3}``
    """

    topics: tuple[str, ...]
    since: int | None = None
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Throttle:
    """Op throttle: set this connection's window in ms (0 = as soon as possible), and
    optionally a cap on its quote bytes per second (``max_bps``; 0 = the server's maximum).

    ``{"op":"throttle","ms":250,"id":4}``; ``{"op":"throttle","ms":100,"max_bps":2000,"id":5}``
    """

    ms: float
    id: RequestId = None
    max_bps: float | None = None


@dataclass(frozen=True, slots=True)
class Fields:
    """Op fields: the quote fields this connection receives in snapshots and deltas (plus
    ``symbol`` in snapshots and ``ts`` always); ``[]`` = all.

    ``{"op":"fields","fields":["price","change_pct"],"id":3}``
    """

    fields: tuple[str, ...]
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Resync:
    """Op resync: a fresh snapshot of everything subscribed. ``{"op":"resync","id":5}``"""

    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Ping:
    """Op ping: answered by ``pong`` with ``t`` echoed. ``{"op":"ping","t":1732640000000.5}``"""

    t: float | None = None


@dataclass(frozen=True, slots=True)
class BarsRequest:
    """Op bars: a symbol's bars of one interval, then (``live``) every change to them.

    ``{"op":"bars","symbol":"AAPL","interval":"1m","limit":500,"id":7}``; ``before`` (ms)
    pages older history (no live stream follows).
    """

    symbol: str
    interval: str
    limit: int = BARS_LIMIT[2]
    before: float | None = None
    live: bool = True
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Unbars:
    """Op unbars: stop a live ``bars`` stream.

    ``{"op":"unbars","symbol":"AAPL","interval":"1m"}``
    """

    symbol: str
    interval: str
    id: RequestId = None


Request = (
    Subscribe | Unsubscribe | NewsRequest | Throttle | Resync | Ping | BarsRequest | Unbars | Fields
)
ClientMessage = Request


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """Why an inbound frame could not be turned into a :data:`Request` (becomes an ``error``)."""

    code: str
    message: str
    id: RequestId = None

    def to_message(self) -> Error:
        """The ``error`` frame to send back."""
        return Error(self.code, self.message, self.id)


# Encoding

_SERVER_TYPES: dict[type, str] = {
    Hello: "hello",
    Snapshot: "snapshot",
    Delta: "delta",
    NewsItem: "news",
    Pong: "pong",
    Error: "error",
    Ack: "ack",
    BarHistory: "bars",
    BarUpdate: "bar",
}
_CLIENT_OPS: dict[type, str] = {
    Subscribe: "subscribe",
    Unsubscribe: "unsubscribe",
    NewsRequest: "news",
    Throttle: "throttle",
    Resync: "resync",
    Ping: "ping",
    BarsRequest: "bars",
    Unbars: "unbars",
    Fields: "fields",
}


def message_type(msg: ServerMessage) -> str:
    """The ``type`` of a server message (``"delta"``, ``"news"``, ...)."""
    return _SERVER_TYPES[type(msg)]


def message_dict(msg: ServerMessage | Request) -> dict[str, Any]:
    """The JSON object of ``msg`` (what :func:`encode` serializes; other encodings too)."""
    if isinstance(msg, Ack):
        out: dict[str, Any] = {"type": "ack", "id": msg.id}
        out.update(msg.fields)
        return out
    key, name = (
        ("type", _SERVER_TYPES[type(msg)])
        if type(msg) in _SERVER_TYPES
        else (
            "op",
            _CLIENT_OPS[type(msg)],
        )
    )
    out = {key: name}
    for f in msg.__slots__:
        v = getattr(msg, f)
        if v is None and f in (
            "id",
            "url",
            "summary",
            "symbols",
            "since",
            "t",
            "before",
            "max_bps",
            "finest",
        ):
            continue
        out[f] = list(v) if isinstance(v, tuple) else v
    return out


def encode(msg: ServerMessage | Request) -> bytes:
    """Serialize one message to its JSON text (UTF-8 bytes), optional ``None`` fields omitted."""
    return orjson.dumps(message_dict(msg))


def _tuple(v: Any) -> tuple[str, ...]:
    return tuple(v)


def decode(data: bytes | str) -> ServerMessage | Request:
    """Parse one JSON frame (server message or client op) back into its dataclass.

    Raises:
        ValueError: not JSON, or not a message this module knows.
    """
    obj = orjson.loads(data)
    if not isinstance(obj, dict):
        raise ValueError("a message is a JSON object")
    if "type" in obj:
        t = obj.pop("type")
        if t == "hello":
            obj["symbols"] = _tuple(obj["symbols"])
            return Hello(**obj)
        if t == "snapshot":
            return Snapshot(**obj)
        if t == "delta":
            return Delta(**obj)
        if t == "news":
            obj["symbols"] = _tuple(obj.get("symbols", ()))
            return NewsItem(**obj)
        if t == "pong":
            return Pong(**obj)
        if t == "error":
            if "symbols" in obj:
                obj["symbols"] = _tuple(obj["symbols"])
            return Error(**obj)
        if t == "ack":
            rid = obj.pop("id", None)
            return Ack(rid, obj)
        if t == "bars":
            obj["bars"] = tuple(tuple(b) for b in obj["bars"])
            return BarHistory(**obj)
        if t == "bar":
            obj["bar"] = tuple(obj["bar"])
            return BarUpdate(**obj)
        raise ValueError(f"unknown message type {t!r}")
    result = parse_request(data, max_symbols=None)
    if isinstance(result, ProtocolError):
        raise ValueError(result.message)
    return result


# Request parsing (client -> server), with the error codes of docs/protocol.md

_INTERVAL_LIST = ", ".join(INTERVALS)


def _is_number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _symbols(
    obj: dict[str, Any],
    key: str,
    rid: RequestId,
    max_symbols: int | None,
) -> tuple[str, ...] | ProtocolError:
    v = obj.get(key)
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        return ProtocolError("bad_request", f"'{key}' must be a list of strings", rid)
    if max_symbols is not None and len(v) > max_symbols:
        return ProtocolError(
            "too_many_symbols", f"at most {max_symbols} symbols per request, got {len(v)}", rid
        )
    return tuple(v)


def parse_request(data: bytes | str, *, max_symbols: int | None = 1000) -> Request | ProtocolError:
    """Turn one inbound text frame into a :data:`Request`, or the :class:`ProtocolError` to send.

    Never raises: text that is not JSON (or not UTF-8) is ``bad_json``; a non-object, a missing or
    non-string ``op`` or a field of the wrong type is ``bad_request``; an unknown op is
    ``unknown_op``; more than ``max_symbols`` symbols is ``too_many_symbols``.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return ProtocolError("bad_json", f"not valid JSON: {exc}")
    return parse_object(obj, max_symbols=max_symbols)


def parse_object(obj: Any, *, max_symbols: int | None = 1000) -> Request | ProtocolError:
    """Turn one decoded inbound message (JSON, or MessagePack: ``ticker.core.wire``) into a
    :data:`Request`, or the :class:`ProtocolError` to send (:func:`parse_request`'s rules)."""
    if not isinstance(obj, dict):
        return ProtocolError("bad_request", "a request is a JSON object")
    rid = obj.get("id")
    if rid is not None and (not isinstance(rid, int | str) or isinstance(rid, bool)):
        return ProtocolError("bad_request", "'id' must be a string or an integer")
    op = obj.get("op")
    if not isinstance(op, str):
        return ProtocolError("bad_request", "'op' must be a string", rid)
    if op in ("subscribe", "unsubscribe"):
        syms = _symbols(obj, "symbols", rid, max_symbols)
        if isinstance(syms, ProtocolError):
            return syms
        return Subscribe(syms, rid) if op == "subscribe" else Unsubscribe(syms, rid)
    if op == "news":
        topics = _symbols(obj, "topics", rid, max_symbols)
        if isinstance(topics, ProtocolError):
            return topics
        since = obj.get("since")
        if since is not None and (
            not isinstance(since, int) or isinstance(since, bool) or since < 0
        ):
            return ProtocolError("bad_request", "'since' must be a news id (integer >= 0)", rid)
        return NewsRequest(topics, since, rid)
    if op == "throttle":
        ms = obj.get("ms")
        if not _is_number(ms) or not math.isfinite(ms) or ms < 0:
            return ProtocolError("bad_request", "'ms' must be a number >= 0", rid)
        bps = obj.get("max_bps")
        if bps is not None and (not _is_number(bps) or not math.isfinite(bps) or bps < 0):
            return ProtocolError("bad_request", "'max_bps' must be a number >= 0", rid)
        return Throttle(ms, rid, bps)
    if op == "fields":
        return _fields(obj, rid)
    if op == "resync":
        return Resync(rid)
    if op == "ping":
        t = obj.get("t")
        if t is not None and not _is_number(t):
            return ProtocolError("bad_request", "'t' must be a number", rid)
        return Ping(t)
    if op in ("bars", "unbars"):
        return _bars(op, obj, rid)
    return ProtocolError(
        "unknown_op",
        f"unknown op {op[:40]!r}; ops: {', '.join(_CLIENT_OPS.values())}",
        rid,
    )


_FIELD_SET = frozenset(FIELDS)


def _fields(obj: dict[str, Any], rid: RequestId) -> Fields | ProtocolError:
    names = obj.get("fields", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return ProtocolError("bad_request", "'fields' must be a list of strings", rid)
    unknown = [n for n in names if n not in _FIELD_SET]
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:5])
        return ProtocolError(
            "bad_request", f"unknown fields {shown}; valid fields: {', '.join(FIELDS)}", rid
        )
    return Fields(tuple(dict.fromkeys(names)), rid)


def _bars(op: str, obj: dict[str, Any], rid: RequestId) -> BarsRequest | Unbars | ProtocolError:
    symbol = obj.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        return ProtocolError("bad_request", "'symbol' must be a non-empty string", rid)
    name = obj.get("interval")
    if not isinstance(name, str):
        return ProtocolError("bad_interval", f"'interval' must be one of {_INTERVAL_LIST}", rid)
    try:
        width = interval_ms(name)
    except IntervalError as exc:
        return ProtocolError("bad_interval", str(exc), rid)
    interval = next(k for k, v in INTERVALS.items() if v == width)  # (1min -> 1m)
    if op == "unbars":
        return Unbars(symbol, interval, rid)
    low, high, default = BARS_LIMIT
    limit = obj.get("limit", default)
    if not isinstance(limit, int) or isinstance(limit, bool) or not low <= limit <= high:
        return ProtocolError("bad_request", f"'limit' must be an integer {low}-{high}", rid)
    before = obj.get("before")
    if before is not None and (not _is_number(before) or not math.isfinite(before)):
        return ProtocolError("bad_request", "'before' must be a time in epoch ms", rid)
    live = obj.get("live", True)
    if not isinstance(live, bool):
        return ProtocolError("bad_request", "'live' must be true or false", rid)
    return BarsRequest(symbol, interval, limit, before, live and before is None, rid)


# Hot-path encoding: per-symbol fragments, per-connection seq spliced in front


def quote_fragments(quotes: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    """``{symbol: b'"SYM":{...}'}``: each symbol's quotes encoded once, ready to join."""
    dumps = orjson.dumps
    return {s: dumps(s) + b":" + dumps(q) for s, q in quotes.items()}


def delta_tail(t: float, fragments: list[bytes]) -> bytes:
    """Everything of a ``delta`` after ``seq``: shared by all connections of one group."""
    return b',"t":' + orjson.dumps(t) + b',"quotes":{' + b",".join(fragments) + b"}}"


def delta_payload(seq: int, tail: bytes) -> bytes:
    """A whole ``delta`` frame payload: this connection's ``seq`` + the shared tail."""
    return b'{"type":"delta","seq":%d%s' % (seq, tail)


def snapshot_from_fragments(seq: int, fragments: list[bytes]) -> bytes:
    """A ``snapshot`` payload from per-symbol fragments (:func:`quote_fragments`' format)."""
    return b'{"type":"snapshot","seq":%d,"quotes":{%s}}' % (seq, b",".join(fragments))


def wire_rows(
    rows: list[tuple[float, float, float, float, float, float]],
) -> tuple[tuple[float, float, float, float, float, float], ...]:
    """Bars ``(t, o, h, l, c, v)`` as sent in ``bars``/``bar`` messages: ``t`` an integer."""
    return tuple((int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows)

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

__all__ = [
    "ERROR_CODES",
    "PROTOCOL_VERSION",
    "Ack",
    "ClientMessage",
    "Delta",
    "Error",
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
    "Unsubscribe",
    "decode",
    "delta_payload",
    "delta_tail",
    "encode",
    "parse_request",
    "quote_fragments",
    "snapshot_from_fragments",
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
    }
)

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


@dataclass(frozen=True, slots=True)
class Ack:
    """Message type: ack. Answers any request that carried an ``id``, with op-specific fields.

    ``{"type":"ack","id":1,"symbols":["AAPL"]}``;
    for ``throttle`` ``{"type":"ack","id":2,"ms":100}``;
    for ``news`` ``{"type":"ack","id":3,"topics":["*"],"oldest_id":12,"last_id":41}``.
    """

    id: RequestId
    fields: Mapping[str, Any] = field(default_factory=dict)


ServerMessage = Hello | Snapshot | Delta | NewsItem | Pong | Error | Ack


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
    """Op throttle: set this connection's window in ms (0 = as soon as possible).

    ``{"op":"throttle","ms":250,"id":4}``
    """

    ms: float
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Resync:
    """Op resync: a fresh snapshot of everything subscribed. ``{"op":"resync","id":5}``"""

    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Ping:
    """Op ping: answered by ``pong`` with ``t`` echoed. ``{"op":"ping","t":1732640000000.5}``"""

    t: float | None = None


Request = Subscribe | Unsubscribe | NewsRequest | Throttle | Resync | Ping
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
}
_CLIENT_OPS: dict[type, str] = {
    Subscribe: "subscribe",
    Unsubscribe: "unsubscribe",
    NewsRequest: "news",
    Throttle: "throttle",
    Resync: "resync",
    Ping: "ping",
}


def _as_dict(msg: ServerMessage | Request) -> dict[str, Any]:
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
        if v is None and f in ("id", "url", "summary", "symbols", "since", "t"):
            continue
        out[f] = list(v) if isinstance(v, tuple) else v
    return out


def encode(msg: ServerMessage | Request) -> bytes:
    """Serialize one message to its JSON text (UTF-8 bytes), optional ``None`` fields omitted."""
    return orjson.dumps(_as_dict(msg))


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
        raise ValueError(f"unknown message type {t!r}")
    result = parse_request(data, max_symbols=None)
    if isinstance(result, ProtocolError):
        raise ValueError(result.message)
    return result


# Request parsing (client -> server), with the error codes of docs/protocol.md


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
        return Throttle(ms, rid)
    if op == "resync":
        return Resync(rid)
    if op == "ping":
        t = obj.get("t")
        if t is not None and not _is_number(t):
            return ProtocolError("bad_request", "'t' must be a number", rid)
        return Ping(t)
    return ProtocolError(
        "unknown_op",
        f"unknown op {op[:40]!r}; ops: subscribe, unsubscribe, news, throttle, resync, ping",
        rid,
    )


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

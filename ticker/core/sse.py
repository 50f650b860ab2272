"""Server-Sent Events (the WHATWG HTML "server-sent events" event stream): framing, the HTTP/1.1
chunks that carry it, and what an ``/sse`` query asks for.

Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ticker.core.protocol import ProtocolError, Request, parse_object

__all__ = ["http_chunk", "sse_event", "sse_requests"]


def sse_event(kind: str, data: bytes, id: int | None = None) -> bytes:
    """One event: ``event: KIND``, ``id: ID`` (when given) and ``data: DATA`` (one line: JSON as
    the server encodes it has no line breaks), then the blank line that ends it.

    Raises:
        ValueError: ``data`` or ``kind`` holds a line break (it would split the event).
    """
    if b"\n" in data or b"\r" in data or "\n" in kind or "\r" in kind:
        raise ValueError("an SSE field cannot hold a line break")
    head = b"event: " + kind.encode() + b"\n"
    if id is not None:
        head += b"id: %d\n" % id
    return head + b"data: " + data + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk (RFC 9112 7.1); empty data would end the body, so it is
    not allowed."""
    if not data:
        raise ValueError("an empty chunk ends the body")
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_requests(
    query: Mapping[str, str],
    last_event_id: str | None = None,
    max_symbols: int | None = 1000,
    default_ms: float = 100.0,
) -> list[Request] | ProtocolError:
    """The requests an SSE stream's query stands for, in the order the hub applies them:
    ``throttle`` (``throttle_ms``, ``max_bps``), ``fields``, ``subscribe`` (``symbols``),
    ``news`` (``news`` topics, replaying after ``since`` or the ``Last-Event-ID`` header, which
    wins: it is where a reconnecting ``EventSource`` left off). Lists are comma-separated; empty
    items are ignored.

    Args:
        query: the query string's parameters.
        last_event_id: the ``Last-Event-ID`` header.
        max_symbols: symbols (or topics) one request may name.
        default_ms: the window of a stream that asks for a cap (``max_bps``) but no window.

    Returns:
        the requests, or the :class:`ProtocolError` that refuses the stream (``bad_request``,
        ``too_many_symbols``); a malformed ``Last-Event-ID`` is ignored (``since`` applies).
    """
    out: list[Request] = []
    objs: list[dict[str, Any]] = []
    ms, bps = query.get("throttle_ms"), query.get("max_bps")
    if ms is not None or bps is not None:
        throttle: dict[str, Any] = {"op": "throttle"}
        try:
            throttle["ms"] = default_ms if ms is None else float(ms)
            if bps is not None:
                throttle["max_bps"] = float(bps)
        except ValueError:
            return ProtocolError("bad_request", "'throttle_ms' and 'max_bps' must be numbers >= 0")
        objs.append(throttle)
    if "fields" in query:
        objs.append({"op": "fields", "fields": _items(query["fields"])})
    if "symbols" in query:
        objs.append({"op": "subscribe", "symbols": _items(query["symbols"])})
    if "news" in query:
        since: Any = query.get("since")
        if last_event_id is not None and _is_id(last_event_id.strip()):
            since = last_event_id.strip()
        news: dict[str, Any] = {"op": "news", "topics": _items(query["news"])}
        if since is not None:
            if not _is_id(since):
                return ProtocolError("bad_request", "'since' must be a news id (integer >= 0)")
            news["since"] = int(since)
        objs.append(news)
    for obj in objs:
        req = parse_object(obj, max_symbols=max_symbols)
        if isinstance(req, ProtocolError):
            return req
        out.append(req)
    return out


def _is_id(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _items(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]

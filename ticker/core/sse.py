"""Server-Sent Events framing (the WHATWG HTML "server-sent events" event stream), and the
HTTP/1.1 chunks that carry it.

Pure; no I/O.
"""

from __future__ import annotations

__all__ = ["http_chunk", "sse_event"]


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

"""WebSocket framing (RFC 6455), server side, without I/O: the handshake answer, the frames the
server sends, and :class:`FrameReader`, which turns the bytes a client sends into messages.

Pure logic (tested with hypothesis in ``tests/test_wsframe.py``, and against independent client
libraries over the wire). ``ticker.net.wsconn`` is the I/O shell that owns an upgraded socket.

What the reader enforces, each a :class:`FrameError` whose ``code`` the connection closes with:
client frames are masked, reserved bits are clear (no extension is ever negotiated), opcodes are
known, control frames are final and at most 125 bytes, continuation frames continue a message
and a new message does not start inside one (1002); a message over ``max_size`` bytes, counted
on the header before its payload is buffered, and a fragmented message whose payload plus
:data:`FRAGMENT_COST` per fragment passes ``max_size`` or that has more than ``max_fragments``
fragments (1009); more frames in one read than the caller's budget (1008: the connection's rate
limit, so a flood of tiny frames costs bounded work); a close frame carries no code or a valid
one, and a UTF-8 reason (1002/1007). Messages whole before a fault are handed over with the
error. Text payloads are handed over as bytes, unchecked: the hub answers a message that is not
valid UTF-8 JSON with a ``bad_json`` error instead of closing (the v1 contract; see
docs/protocol.md).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

__all__ = [
    "FRAGMENT_COST",
    "MAX_FRAGMENTS",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameError",
    "FrameReader",
    "Unmask",
    "accept_key",
    "handshake_response",
    "parse_close",
    "unmask",
    "ws_close_frame",
    "ws_frame",
    "ws_ping_frame",
    "ws_pong_frame",
    "ws_text_frame",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

FRAGMENT_COST = 16
"""Bytes each fragment counts toward a message's size bound (besides its payload): a message of
empty fragments is bounded too."""
MAX_FRAGMENTS = 1024
"""Fragments one message may have."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FrameError(Exception):
    """The client broke the protocol: close the connection with ``code`` (and ``reason``)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.messages: list[tuple[int, bytes]] = []
        """Messages that were whole before the fault (set by :meth:`FrameReader.feed`)."""


# Handshake


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def handshake_response(key: str, protocol: str | None = None) -> bytes:
    """The ``101 Switching Protocols`` answer to a validated upgrade request."""
    head = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
    )
    if protocol:
        head += f"Sec-WebSocket-Protocol: {protocol}\r\n"
    return (head + "\r\n").encode("ascii")


# Server frames (unmasked, final, uncompressed)


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame of ``opcode`` (RFC 6455 §5.2)."""
    n = len(payload)
    b0 = 0x80 | opcode
    if n < 126:
        return bytes((b0, n)) + payload
    if opcode >= OP_CLOSE:
        raise ValueError("a control frame carries at most 125 bytes")
    if n < 65536:
        return bytes((b0, 126)) + n.to_bytes(2, "big") + payload
    return bytes((b0, 127)) + n.to_bytes(8, "big") + payload


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed, final WebSocket text frame, server to client."""
    n = len(payload)
    if n < 126:  # (the hot path: most deltas; inlined rather than a call to ws_frame)
        return bytes((0x81, n)) + payload
    return ws_frame(OP_TEXT, payload)


def ws_ping_frame(payload: bytes) -> bytes:
    """An unmasked WebSocket ping (RFC 6455 §5.5.2); ``payload`` at most 125 bytes."""
    return ws_frame(OP_PING, payload)


def ws_pong_frame(payload: bytes) -> bytes:
    """The pong answering a ping with ``payload``."""
    return ws_frame(OP_PONG, payload)


def ws_close_frame(code: int | None, reason: str = "") -> bytes:
    """A close frame with ``code`` and ``reason`` (cut to fit 125 bytes on a character
    boundary); ``code`` None: an empty close frame."""
    if code is None:
        return ws_frame(OP_CLOSE, b"")
    raw = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return ws_frame(OP_CLOSE, code.to_bytes(2, "big") + raw)


# Client frames


Unmask = Callable[[bytes, bytes], bytes]
"""``unmask(mask, data)``: ``data`` XOR the 4-byte ``mask`` repeated. The I/O shell may pass a
faster one to :class:`FrameReader` (``ticker.net.wsconn`` uses aiohttp's C helper)."""


def unmask(mask: bytes, data: bytes) -> bytes:
    """``data`` XOR the 4-byte ``mask`` repeated (RFC 6455 §5.3), in pure Python (one big-integer
    XOR)."""
    n = len(data)
    if not n:
        return b""
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def _valid_close_code(code: int) -> bool:
    # RFC 6455 §7.4 and the IANA registry: codes a peer may send (1004-1006 and 1015 are
    # reserved for reporting, never sent); 3000-4999 belong to libraries and applications.
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """The code (None: none given) and reason of a close frame's payload.

    Raises:
        FrameError: a one-byte payload or a code no peer may send (1002), a reason that is not
            UTF-8 (1007).
    """
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise FrameError(1002, "close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise FrameError(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(1007, "close reason is not UTF-8") from None
    return code, reason


class FrameReader:
    """Incremental parser of client frames: ``feed(bytes) -> [(opcode, payload), ...]``.

    Returns whole messages (fragments joined; control frames as they come, also between
    fragments). Between calls it keeps at most one partial frame (header + ``max_size``) and one
    message in progress, whose fragments are collected in one buffer: its payload plus
    :data:`FRAGMENT_COST` bytes per fragment stays within ``max_size``, and it has at most
    ``max_fragments`` fragments (else 1009), so a flood of empty fragments costs no more memory
    than one maximal frame. After a :class:`FrameError` the stream is unusable: serve the
    error's ``messages`` (whole before the fault), then close the connection with its code.
    """

    __slots__ = (
        "_buf",
        "_message",
        "_message_cost",
        "_message_frames",
        "_message_op",
        "_need",
        "_unmask",
        "fragments",
        "max_fragments",
        "max_size",
    )

    def __init__(
        self, max_size: int, max_fragments: int = MAX_FRAGMENTS, unmask: Unmask = unmask
    ) -> None:
        self.max_size = max_size
        self._unmask = unmask
        self.max_fragments = max_fragments
        self._buf = bytearray()  # a partial frame
        self._need = 0  # bytes it must reach before parsing is worth trying again
        self._message = bytearray()  # the payload of the fragmented message in progress
        self._message_op = 0  # its opcode (0: no message in progress)
        self._message_cost = 0  # its payload + FRAGMENT_COST per fragment
        self._message_frames = 0  # its fragments so far
        self.fragments = 0
        """Data frames of the last :meth:`feed` that did not end a message (each one spends a
        rate token as a whole message does)."""

    @property
    def buffered(self) -> int:
        """Bytes held for the next ``feed``: a partial frame and a message in progress."""
        return len(self._buf) + len(self._message)

    def feed(self, data: bytes, max_frames: int | None = None) -> list[tuple[int, bytes]]:
        """Parse the bytes the client sent next.

        Args:
            data: the bytes read from the socket.
            max_frames: the most frames (of any kind) this call parses; one more means the
                client sends faster than its rate allows: :class:`FrameError` 1008 at once, so a
                flood of tiny frames costs a bounded amount of work per read.

        Returns:
            The whole messages and control frames in ``data``, in order, as ``(opcode,
            payload)``; payloads unmasked, fragments joined under the first fragment's opcode.

        Raises:
            FrameError: the client broke the protocol or a bound; its ``messages`` are the
                messages that were whole before the fault.
        """
        out: list[tuple[int, bytes]] = []
        self.fragments = 0
        buf = self._buf
        if buf:
            # (A frame trickling in is appended, not re-parsed: linear in its size.)
            buf += data
            if len(buf) < self._need:
                return out
            data = bytes(buf)
            buf.clear()
        try:
            pos, need = self._parse(data, out, max_frames)
        except FrameError as e:
            e.messages = out
            raise
        if pos < len(data):
            buf += memoryview(data)[pos:]
            self._need = need
        return out

    def _parse(
        self, data: bytes, out: list[tuple[int, bytes]], max_frames: int | None
    ) -> tuple[int, int]:
        """Append the frames of ``data`` to ``out``; returns (where the unparsed rest begins,
        the bytes that rest must reach before it can be parsed)."""
        pos = 0
        end = len(data)
        need = 2
        budget = -1 if max_frames is None else max_frames
        while end - pos >= 2:
            if budget == 0:
                raise FrameError(1008, "frames arrive faster than the message rate allows")
            budget -= 1
            head0 = data[pos]
            head1 = data[pos + 1]
            if head0 & 0x70:
                raise FrameError(1002, "reserved bits set (no extension was negotiated)")
            if not head1 & 0x80:
                raise FrameError(1002, "client frames must be masked")
            op = head0 & 0x0F
            final = head0 & 0x80
            size = head1 & 0x7F
            start = pos + 2  # of the mask key
            if size == 126:
                if end - start < 2:
                    need = 4
                    break
                size = int.from_bytes(data[start : start + 2], "big")
                start += 2
            elif size == 127:
                if end - start < 8:
                    need = 10
                    break
                size = int.from_bytes(data[start : start + 8], "big")
                start += 8
            self._check_header(op, final, size)
            stop = start + 4 + size
            if stop > end:
                need = stop - pos
                break
            payload = self._unmask(data[start : start + 4], data[start + 4 : stop]) if size else b""
            pos = stop
            if op >= OP_CLOSE:
                if op == OP_CLOSE:
                    parse_close(payload)  # (raises on a malformed one)
                out.append((op, payload))
            elif final and op:  # a whole message in one frame
                out.append((op, payload))
            else:
                self._add_fragment(op, final, payload, out)
        return pos, need

    def _check_header(self, op: int, final: int, size: int) -> None:
        """Refuse a frame by its header alone, before its payload is buffered."""
        if op >= OP_CLOSE:
            if op > OP_PONG:
                raise FrameError(1002, f"unknown opcode {op}")
            if not final or size > 125:
                raise FrameError(1002, "control frames must be final and at most 125 bytes")
        elif op == OP_CONTINUATION:
            if not self._message_op:
                raise FrameError(1002, "continuation frame outside a fragmented message")
            if self._message_cost + FRAGMENT_COST + size > self.max_size:
                raise FrameError(1009, f"message over {self.max_size} bytes")
        elif op <= OP_BINARY:
            if self._message_op:
                raise FrameError(1002, "new message inside a fragmented message")
            if size > self.max_size:
                raise FrameError(1009, f"message over {self.max_size} bytes")
        else:
            raise FrameError(1002, f"unknown opcode {op}")

    def _add_fragment(
        self, op: int, final: int, payload: bytes, out: list[tuple[int, bytes]]
    ) -> None:
        """Collect one fragment of a message; the last one completes it into ``out``."""
        if op:  # the first fragment
            self._message_op = op
        self._message += payload
        self._message_cost += FRAGMENT_COST + len(payload)
        self._message_frames += 1
        if not final:
            self.fragments += 1
            if self._message_frames >= self.max_fragments:
                raise FrameError(1009, f"message in over {self.max_fragments} fragments")
            return
        out.append((self._message_op, bytes(self._message)))
        self._message_op = 0
        self._message_cost = 0
        self._message_frames = 0
        self._message = bytearray()

"""Hostile clients, run as their own process by tests/test_hostile.py.

``python -m tests.hostile WS_URL SECONDS`` runs 18 misbehaving clients against a server for
SECONDS, each starting over whenever the server closes it, then prints one JSON line: per kind,
what the server did (close codes, HTTP statuses, error codes, how long a socket was kept).

A separate process, so its floods cannot delay the test's own measuring client. Everything here is
hand-written RFC 6455 over plain sockets: a library client would refuse to misbehave.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import socket
import struct
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from tests.probes import TCP_ESTABLISHED, tcp_state

Report = defaultdict[str, Counter[str]]
Kind = Callable[[str, int, Counter[str]], Awaitable[None]]


class Refused(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def frame(
    opcode: int, payload: bytes, *, mask: bool = True, fin: bool = True, rsv: int = 0
) -> bytes:
    """One client frame; ``mask=False``, ``fin=False`` on a control frame or ``rsv`` break it."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask(payload, key)
    return head + key + body


def _mask(payload: bytes, key: bytes) -> bytes:
    k = int.from_bytes(key * (len(payload) // 4 + 1), "little")
    p = int.from_bytes(payload, "little")
    return (p ^ (k & ((1 << (8 * len(payload))) - 1))).to_bytes(len(payload), "little")


def text(obj: Any) -> bytes:
    return frame(0x1, obj if isinstance(obj, bytes) else orjson.dumps(obj))


async def upgrade(
    host: str, port: int, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket connection after a 101 (raises :class:`Refused` on any other status)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split()[1])
    if status != 101:
        writer.close()
        raise Refused(status)
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(n)


async def until_closed(reader: asyncio.StreamReader, out: Counter[str], read_errors: bool) -> None:
    """Read (never answering pings) until the server's close frame or EOF; count what came."""
    try:
        while True:
            op, payload = await read_frame(reader)
            if op == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                out[f"close_{code}"] += 1
                return
            if op == 0x1 and read_errors:
                msg = orjson.loads(payload)
                if msg.get("type") == "error":
                    out[f"error_{msg['code']}"] += 1
    except (asyncio.IncompleteReadError, ConnectionError):
        out["eof"] += 1


def finish(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


# The kinds of hostile client. Each runs one connection's worth of misbehaviour; the driver
# starts it again until the time is up.


async def junk_text(host: str, port: int, out: Counter[str]) -> None:
    """Text that is not JSON, not UTF-8 or JSON of the wrong shape, 10 a second (under the
    rate limit): answered with errors, never closed."""
    reader, writer = await upgrade(host, port)
    reads = asyncio.create_task(until_closed(reader, out, read_errors=True))
    junk = [
        b"{",
        b"\xff\xfe",
        b"[1,2]",
        b'{"op": 5}',
        b'{"op":"x"}',
        b"null",
        b'{"op":"ping","t":"x"}',
    ]
    try:
        for i in range(10**9):
            if reads.done():
                return
            writer.write(text(junk[i % len(junk)] + os.urandom(i % 3)))
            await asyncio.sleep(0.1)
    finally:
        reads.cancel()
        finish(writer)


async def junk_binary(host: str, port: int, out: Counter[str]) -> None:
    """Binary frames, 10 a second: ``bad_request`` errors, never closed."""
    await _every(
        host, port, out, lambda: frame(0x2, os.urandom(random.randint(0, 300))), interval=0.1
    )


async def _flood(
    host: str, port: int, out: Counter[str], payload: bytes, read_errors: bool, first: bytes = b""
) -> None:
    """Write ``first``, then ``payload`` as fast as the socket takes it until the server
    closes."""
    reader, writer = await upgrade(host, port)
    reads = asyncio.create_task(until_closed(reader, out, read_errors=read_errors))
    try:
        writer.write(first)
        while not reads.done():
            writer.write(payload)
            await writer.drain()
            await asyncio.sleep(0)
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(reads, 3.0)
        finish(writer)


async def _every(
    host: str, port: int, out: Counter[str], make: Callable[[], bytes], interval: float
) -> None:
    """Write ``make()`` every ``interval`` s, reading errors, until the server closes."""
    reader, writer = await upgrade(host, port)
    reads = asyncio.create_task(until_closed(reader, out, read_errors=True))
    try:
        while not reads.done():
            writer.write(make())
            await asyncio.sleep(interval)
    finally:
        reads.cancel()
        finish(writer)


async def flood(host: str, port: int, out: Counter[str]) -> None:
    """Control messages as fast as the socket takes them: rate_limited, then 1008."""
    payload = text({"op": "subscribe", "symbols": ["*"]}) + text({"op": "ping", "t": 1})
    await _flood(host, port, out, payload, read_errors=True)


async def huge_frame(host: str, port: int, out: Counter[str]) -> None:
    """A 1 MiB frame: closed with 1009."""
    reader, writer = await upgrade(host, port)
    reads = asyncio.create_task(until_closed(reader, out, read_errors=False))
    try:
        writer.write(text(b'{"op":"ping","pad":"' + b"x" * (1 << 20) + b'"}'))
        await writer.drain()
    except ConnectionError:
        pass
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reads, 3.0)
    finish(writer)


async def huge_header(host: str, port: int, out: Counter[str]) -> None:
    """A frame header announcing 1 TiB, then a trickle: closed with 1009 on the header."""
    reader, writer = await upgrade(host, port)
    reads = asyncio.create_task(until_closed(reader, out, read_errors=False))
    writer.write(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40) + os.urandom(4))
    try:
        while not reads.done():
            writer.write(b"x")
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass
    finally:
        reads.cancel()
        finish(writer)


async def partial_http(host: str, port: int, out: Counter[str]) -> None:
    """Half a handshake, then silence: how long the server keeps the socket."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    await writer.drain()
    start = time.monotonic()
    with contextlib.suppress(ConnectionError):
        await reader.read()
    out[f"closed_after_s_{round(time.monotonic() - start)}"] += 1
    finish(writer)


async def silent_ws(host: str, port: int, out: Counter[str]) -> None:
    """A finished handshake, then nothing: no pongs, no frames (a dead peer)."""
    reader, writer = await upgrade(host, port)
    start = time.monotonic()
    pings = 0
    try:
        while True:
            op, _ = await read_frame(reader)
            pings += op == 0x9
            if op == 0x8:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    out["dropped"] += 1
    out[f"dropped_after_s_{round(time.monotonic() - start)}"] += 1
    out["pinged"] += pings > 0
    finish(writer)


async def never_reads(host: str, port: int, out: Counter[str]) -> None:
    """Subscribes to everything at window 0 and to all news, and never reads: 1013."""
    reader, writer = await upgrade(host, port, rcvbuf=4096)
    writer.write(
        text({"op": "throttle", "ms": 0})
        + text({"op": "subscribe", "symbols": ["*"]})
        + text({"op": "news", "topics": ["*"], "since": 0})
    )
    await writer.drain()
    for _ in range(50):  # keep asking for more while not reading
        await asyncio.sleep(0.1)
        with contextlib.suppress(ConnectionError):
            writer.write(text({"op": "resync"}))
    await until_closed(reader, out, read_errors=False)
    finish(writer)


async def tcp_garbage(host: str, port: int, out: Counter[str]) -> None:
    """Random bytes instead of HTTP: a 400, then the connection is closed."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(os.urandom(200).replace(b"\r", b"") + b"\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        await writer.drain()
        head = await asyncio.wait_for(reader.read(100), 3.0)
        out[f"status_{head.split()[1].decode()}" if head.startswith(b"HTTP/") else "eof"] += 1
    finish(writer)
    await asyncio.sleep(0.05)


async def violations(host: str, port: int, out: Counter[str]) -> None:
    """RFC 6455 violations (reserved opcode, fragmented or oversize control frame, a stray
    continuation, RSV1 without deflate, an invalid close code): closed with 1002."""
    bad = random.choice(
        [
            frame(0x3, b"?"),
            frame(0x9, b"ping", fin=False),
            frame(0x9, b"p" * 200),
            frame(0x0, b"more"),
            frame(0x1, b'{"op":"ping"}', rsv=4),
            frame(0x8, b"\x03\xe7"),  # close code 999
        ]
    )
    reader, writer = await upgrade(host, port)
    writer.write(bad)
    with contextlib.suppress(TimeoutError, ConnectionError):
        await writer.drain()
        await asyncio.wait_for(until_closed(reader, out, read_errors=False), 3.0)
    finish(writer)


async def ws_ping_flood(host: str, port: int, out: Counter[str]) -> None:
    """WebSocket pings as fast as the socket takes them, never reading the pongs."""
    _, writer = await upgrade(host, port, rcvbuf=4096)
    end = time.monotonic() + 3.0
    with contextlib.suppress(ConnectionError):
        while time.monotonic() < end:
            writer.write(frame(0x9, b"p" * 100) * 50)
            await asyncio.wait_for(writer.drain(), 3.0)
            out["pings_sent"] += 50
    finish(writer)


async def ws_ping_flood_reading(host: str, port: int, out: Counter[str]) -> None:
    """WebSocket pings as fast as the server answers them (the pongs are read)."""
    reader, writer = await upgrade(host, port)
    pongs = 0

    async def read() -> None:
        nonlocal pongs
        while True:
            op, _ = await read_frame(reader)
            pongs += op == 0xA
            if op == 0x8:
                return

    reads = asyncio.create_task(read())
    end = time.monotonic() + 3.0
    try:
        while time.monotonic() < end and not reads.done():
            writer.write(frame(0x9, b"p") * 100)
            await writer.drain()
            await asyncio.sleep(0)
    except ConnectionError:
        pass
    finally:
        reads.cancel()
        out["pongs"] += pongs
        finish(writer)


async def pong_flood(host: str, port: int, out: Counter[str]) -> None:
    """Unsolicited WebSocket pongs as fast as the socket takes them: closed with 1008."""
    await _flood(host, port, out, frame(0xA, b"unsolicited") * 100, read_errors=False)


async def fragment_flood(host: str, port: int, out: Counter[str]) -> None:
    """A text frame with FIN=0, then empty continuation frames as fast as the socket takes them:
    each fragment spends a rate token, so 1008 (past the fragment bounds it would be 1009)."""
    await _flood(
        host,
        port,
        out,
        frame(0x0, b"", fin=False) * 200,
        read_errors=False,
        first=frame(0x1, b'{"op":"ping"', fin=False),
    )


async def close_never_reads(host: str, port: int, out: Counter[str]) -> None:
    """Fills its buffers at a 10 ms window, sends a close frame and never reads again: the
    server must let go of its socket within its close timeout (its side leaves ESTABLISHED:
    closed, or reset when the unsent bytes hold it), not wait for them to drain."""
    _, writer = await upgrade(host, port, rcvbuf=4096)
    writer.write(
        text({"op": "throttle", "ms": 10})
        + text({"op": "subscribe", "symbols": ["*"]})
        + text({"op": "news", "topics": ["*"], "since": 0})
    )
    await asyncio.sleep(1.5)
    writer.write(frame(0x8, (1000).to_bytes(2, "big")))
    own_port = writer.get_extra_info("sockname")[1]
    start = time.monotonic()
    while time.monotonic() - start < 8.0:
        await asyncio.sleep(0.1)
        if tcp_state(port, own_port) != TCP_ESTABLISHED:
            out[f"dropped_after_s_{round(time.monotonic() - start)}"] += 1
            break
    else:
        out["kept"] += 1
    finish(writer)


async def churn(host: str, port: int, out: Counter[str]) -> None:
    """Connect and drop, over and over."""
    reader, writer = await upgrade(host, port)
    out["connected"] += 1
    if random.random() < 0.5:
        writer.write(frame(0x8, b"\x03\xe8"))
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(until_closed(reader, Counter(), read_errors=False), 1.0)
    finish(writer)
    await asyncio.sleep(0.02)


async def unknown_symbols(host: str, port: int, out: Counter[str]) -> None:
    """Near-maximal frames of unknown symbols (each answer echoes them), 5 a second."""
    syms = ["Z" * 58 + f"{i:03d}" for i in range(1000)]
    await _every(host, port, out, lambda: text({"op": "subscribe", "symbols": syms}), interval=0.2)


KINDS: list[Kind] = [
    junk_text,
    junk_binary,
    flood,
    huge_frame,
    huge_header,
    partial_http,
    partial_http,
    silent_ws,
    never_reads,
    tcp_garbage,
    violations,
    ws_ping_flood,
    ws_ping_flood_reading,
    pong_flood,
    churn,
    unknown_symbols,
    fragment_flood,
    close_never_reads,
]


async def drive(kind: Kind, host: str, port: int, report: Report, deadline: float) -> None:
    out = report[kind.__name__]
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.wait_for(kind(host, port, out), left)
            out["runs"] += 1
        except TimeoutError:
            if deadline - time.monotonic() <= 0:
                break
            out["timeouts"] += 1
        except Refused as exc:
            out[f"refused_{exc.status}"] += 1
            await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            out[f"exc_{type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)


async def main(url: str, seconds: float, only: str = "") -> Report:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    report: Report = defaultdict(Counter)
    deadline = time.monotonic() + seconds
    kinds = [k for k in KINDS if not only or k.__name__ in only.split(",")]
    await asyncio.gather(*(drive(k, host, port, report, deadline) for k in kinds))
    return report


if __name__ == "__main__":
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    result = asyncio.run(main(sys.argv[1], float(sys.argv[2]), only))
    print(orjson.dumps({k: dict(v) for k, v in result.items()}).decode(), flush=True)

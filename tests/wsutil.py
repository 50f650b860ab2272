"""Test helpers for the real-server tests: decoded receives and a raw, hand-driven WebSocket client.

``RawWebSocket`` speaks RFC 6455 over a plain non-blocking socket, so a test decides exactly when
bytes leave the kernel's receive buffer: a client that stops calling :meth:`RawWebSocket.recv_frame`
truly stops draining its TCP socket (no library reads ahead on its behalf).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from ticker.config import HubConfig, ServerConfig
from ticker.core.events import Event, Tick
from ticker.net.server import HUB, RUNNERS, create_app
from ticker_feeds.testing import FakeFeed

__all__ = [
    "Frame",
    "NormalClient",
    "RawWebSocket",
    "RecordingTransport",
    "Server",
    "apply_frame",
    "now_ms",
    "recv",
    "recv_type",
    "recv_until",
    "tick",
    "until",
]

Frame = dict[str, Any]


async def recv(ws: ClientWebSocketResponse, within: float = 2000 * MS) -> Frame:
    """The next frame from an aiohttp client websocket, decoded; fails on close or timeout."""
    msg = await ws.receive(timeout=within)
    assert msg.type is WSMsgType.TEXT, f"expected a text frame, got {msg.type!r} {msg.data!r}"
    obj = orjson.loads(msg.data)
    assert isinstance(obj, dict), obj
    return obj


async def recv_until(
    ws: ClientWebSocketResponse,
    pred: Callable[[Frame], bool],
    within: float = 3000 * MS,
    seen: list[Frame] | None = None,
) -> Frame:
    """Receive until a frame matches ``pred``; every frame received (the match included) is
    appended to ``seen`` when given."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        left = deadline - loop.time()
        assert left > 0, f"no matching frame within {within:.2f}s; seen {seen!r}"[:2000]
        frame = await recv(ws, left)
        if seen is not None:
            seen.append(frame)
        if pred(frame):
            return frame


async def recv_type(
    ws: ClientWebSocketResponse,
    type_: str,
    within: float = 3000 * MS,
    seen: list[Frame] | None = None,
) -> Frame:
    """Receive until a frame of ``type_``."""
    return await recv_until(ws, lambda f: f.get("type") == type_, within, seen)


class RawWebSocket:
    """A minimal client over a raw non-blocking socket; reads only when asked to.

    Args:
        sock: a connected non-blocking socket (use :meth:`connect`).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.bytes_read = 0
        self.handshake = b""  # the server's answer to the upgrade request (status and headers)

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str = "/ws",
        rcvbuf: int | None = 4096,
        headers: Sequence[str] = (),
    ) -> RawWebSocket:
        """Open a TCP connection (with a small receive buffer) and do the opening handshake;
        ``headers``: extra request header lines (``"Name: value"``)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the advertised window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
            ).encode(),
        )
        ws = cls(sock)
        head = await ws._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        ws.handshake = head
        return ws

    async def _fill(self, within: float) -> None:
        async with asyncio.timeout(within):
            data = await self.loop.sock_recv(self.sock, 1 << 16)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.bytes_read += len(data)
        self.buf += data

    async def _read_until(self, sep: bytes, within: float = 2000 * MS) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            await self._fill(within)
        out = bytes(self.buf[: i + len(sep)])
        del self.buf[: i + len(sep)]
        return out

    async def _read_exactly(self, n: int, within: float) -> bytes:
        while len(self.buf) < n:
            await self._fill(within)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def recv_frame(self, within: float = 2000 * MS) -> tuple[int, bytes]:
        """The next (opcode, payload) from the server (unmasked, unfragmented frames)."""
        b0, b1 = await self._read_exactly(2, within)
        assert b0 & 0x80, "fragmented frames are not expected from the server"
        assert not b1 & 0x80, "server frames are never masked"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self._read_exactly(2, within))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self._read_exactly(8, within))
        return b0 & 0x0F, await self._read_exactly(n, within)

    async def recv_json(self, within: float = 2000 * MS) -> Frame:
        """The next text frame, decoded (fails on anything else). Pings are answered on the way,
        as every WebSocket client does (RFC 6455 §5.5.2)."""
        op, payload = await self.recv_frame(within)
        while op == 0x9:
            await self.send_frame(0xA, payload)
            op, payload = await self.recv_frame(within)
        assert op == 0x1, (op, payload[:200])
        obj = orjson.loads(payload)
        assert isinstance(obj, dict)
        return obj

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        """Send one final, masked frame."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.loop.sock_sendall(self.sock, head + mask + masked)

    async def send_json(self, obj: Any) -> None:
        await self.send_frame(0x1, orjson.dumps(obj))

    async def send_raw(self, data: bytes) -> None:
        """Send ``data`` as it is, in one write (hand-built frames, broken ones included)."""
        await self.loop.sock_sendall(self.sock, data)

    async def recv_eof(self, within: float = 2000 * MS) -> None:
        """Wait for the server to close the TCP connection: a clean end of stream with nothing
        unread before it (fails on a byte more, a reset or a timeout)."""
        assert not self.buf, f"unread bytes before the end of stream: {bytes(self.buf[:200])!r}"
        async with asyncio.timeout(within):
            data = await self.loop.sock_recv(self.sock, 1 << 16)
        assert data == b"", f"bytes instead of the end of stream: {data[:200]!r}"

    def close(self) -> None:
        self.sock.close()


async def until(pred: Callable[[], bool], within: float = 3000 * MS, what: str = "") -> None:
    """Poll ``pred`` until it holds (fails after ``within`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not pred():
        assert loop.time() < deadline, f"timed out waiting for {what or pred}"
        await asyncio.sleep(0.002)


def apply_frame(state: dict[str, dict[str, Any]], frame: Frame) -> None:
    """What a client does with a snapshot or delta: its copy of the quotes."""
    if frame["type"] == "snapshot":
        for sym, q in frame["quotes"].items():
            state[sym] = dict(q)
    elif frame["type"] == "delta":
        for sym, d in frame["quotes"].items():
            state.setdefault(sym, {}).update(
                {k: v for k, v in d.items() if k not in ("w_high", "w_low", "w_count")}
            )


def now_ms() -> float:
    """Wall clock in epoch ms, as feeds stamp ticks."""
    return time.time() * 1000.0


def tick(symbol: str, price: float, **kw: Any) -> Tick:
    """A tick stamped now."""
    return Tick(symbol, price, now_ms(), **kw)


class NormalClient:
    """A client at a 50 ms window on ``symbols`` that records its worst gap between deltas and
    fails on a ``seq`` gap, while the test does something else (the hostile-client tests)."""

    def __init__(self, ws: ClientWebSocketResponse, seq: int) -> None:
        self.ws = ws
        self.seq = seq
        self.worst = 0.0
        self.deltas = 0
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls, session: ClientSession, url: str, symbols: Sequence[str]
    ) -> NormalClient:
        ws = await session.ws_connect(url)
        assert (await recv(ws))["type"] == "hello"
        await ws.send_json({"op": "throttle", "ms": 50, "id": "t"})
        assert (await recv(ws))["ms"] == 50
        await ws.send_json({"op": "subscribe", "symbols": list(symbols)})
        return cls(ws, (await recv_type(ws, "snapshot"))["seq"])

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            f = await recv(self.ws, within=2000 * MS)
            if f["type"] in ("delta", "snapshot"):
                assert f["seq"] == self.seq + 1, "no seq gap"
                self.seq = f["seq"]
            if f["type"] == "delta":
                now = loop.time()
                self.worst = max(self.worst, now - last)
                last = now
                self.deltas += 1

    async def stop(self) -> float:
        """Stop reading (raising what the reader raised); the worst gap seen. The socket stays
        open."""
        if self.task.done():
            self.task.result()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return self.worst


class Server:
    """An in-process app served on 127.0.0.1 (pytest-aiohttp), driven by one scripted FakeFeed."""

    def __init__(self, client: TestClient[Request, Application], feed: FakeFeed) -> None:
        self.client = client
        self.feed = feed
        self.hub = client.app[HUB]
        self.runner = client.app[RUNNERS][0]

    @classmethod
    async def start(
        cls,
        aiohttp_client: AiohttpClient,
        events: Sequence[Event] = (),
        config: HubConfig | None = None,
        server: ServerConfig | None = None,
    ) -> Server:
        """Serve ``create_app([FakeFeed(events)], config, server=server)`` and wait until
        ``events`` are in."""
        feed = FakeFeed(events)
        srv = cls(await aiohttp_client(create_app([feed], config, server=server)), feed)
        await until(lambda: srv.runner.events >= len(events), what="initial events")
        return srv

    async def push(self, *events: Event) -> None:
        """Feed ``events`` and wait until the hub has taken all of them."""
        target = self.runner.events + len(events)
        self.feed.push(*events)
        await until(lambda: self.runner.events >= target, what="events published")

    async def connect(self) -> tuple[ClientWebSocketResponse, Frame]:
        """A new aiohttp client websocket and its ``hello``."""
        ws = await self.client.ws_connect("/ws")
        hello = await recv(ws)
        assert hello["type"] == "hello", hello
        return ws, hello

    async def subscribed(
        self,
        symbols: Sequence[str],
        throttle_ms: float | None = None,
    ) -> tuple[ClientWebSocketResponse, Frame]:
        """A websocket subscribed to ``symbols`` (after an optional ``throttle``), and its
        snapshot."""
        ws, _ = await self.connect()
        if throttle_ms is not None:
            await ws.send_json({"op": "throttle", "ms": throttle_ms, "id": "t"})
            ack = await recv(ws)
            assert ack == {"type": "ack", "id": "t", "ms": throttle_ms}, ack
        await ws.send_json({"op": "subscribe", "symbols": list(symbols), "id": "s"})
        assert (await recv(ws))["type"] == "ack"
        snap = await recv(ws)
        assert snap["type"] == "snapshot", snap
        return ws, snap


class RecordingTransport:
    """What the hub writes, kept; never backpressured."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.data += data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

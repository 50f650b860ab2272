"""ticker.net.wsconn over the wire: after the upgrade the socket is ours, not aiohttp's. The close
handshake, pings, bytes sent right behind the upgrade request, and that aiohttp really let go
(no request, handler task or server-side connection left per socket; the limit slot comes back
when the socket goes)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

import pytest
from pytest_aiohttp import AiohttpClient

from tests.hostile import frame
from tests.wsutil import RawWebSocket, Server, until
from ticker.core.events import Listing, Tick
from ticker.net.admission import ADMISSION
from ticker.net.keys import SOCKETS


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await Server.start(aiohttp_client, [Listing(("AAPL",)), Tick("AAPL", 1.0, 1.0)])


def host_port(srv: Server) -> tuple[str, int]:
    assert srv.client.port is not None
    return "127.0.0.1", srv.client.port


def masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    head = struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_message_sent_behind_the_upgrade_request_is_served(srv: Server) -> None:
    """A client may pipeline its first frame with the upgrade request (aiohttp held those bytes
    back; the connection takes them over)."""
    host, port = host_port(srv)
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sub = masked(0x1, b'{"op":"subscribe","symbols":["AAPL"],"id":"p"}')
    await loop.sock_sendall(sock, request + sub)
    ws = RawWebSocket(sock)
    head = await ws._read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    try:
        assert (await ws.recv_json())["type"] == "hello"
        assert await ws.recv_json() == {"type": "ack", "id": "p", "symbols": ["AAPL"]}
        snap = await ws.recv_json()
        assert snap["type"] == "snapshot" and snap["quotes"]["AAPL"]["price"] == 1.0
    finally:
        ws.close()


async def test_close_handshake_echoes_the_code_and_the_server_closes_tcp(srv: Server) -> None:
    ws = await RawWebSocket.connect(*host_port(srv))
    try:
        assert (await ws.recv_json())["type"] == "hello"
        await ws.send_frame(0x8, (4001).to_bytes(2, "big") + b"bye")
        op, payload = await ws.recv_frame()
        assert op == 0x8 and int.from_bytes(payload[:2], "big") == 4001
        with pytest.raises(ConnectionError):  # then EOF: the server closed the socket
            await ws.recv_frame()
    finally:
        ws.close()
    await until(lambda: not srv.hub.clients, what="the hub forgot the connection")


async def test_pings_are_answered_with_their_payload(srv: Server) -> None:
    ws = await RawWebSocket.connect(*host_port(srv))
    try:
        assert (await ws.recv_json())["type"] == "hello"
        await ws.send_frame(0x9, b"are you there")
        assert await ws.recv_frame() == (0xA, b"are you there")
    finally:
        ws.close()


async def test_a_protocol_violation_closes_with_its_code_and_others_carry_on(srv: Server) -> None:
    good, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    bad = await RawWebSocket.connect(*host_port(srv))
    try:
        assert (await bad.recv_json())["type"] == "hello"
        await bad.loop.sock_sendall(bad.sock, b"\x81\x02{}")  # unmasked: 1002
        op, payload = await bad.recv_frame()
        assert op == 0x8 and int.from_bytes(payload[:2], "big") == 1002
    finally:
        bad.close()
    await srv.push(Tick("AAPL", 2.0, 2.0))
    msg = await good.receive_json(timeout=2)
    assert msg["type"] == "delta" and msg["quotes"]["AAPL"]["price"] == 2.0
    await good.close()


async def test_messages_before_a_bad_frame_in_the_same_read_are_served(srv: Server) -> None:
    """A subscribe and a broken close frame in one TCP write: the subscribe is served (ack,
    snapshot), then the connection is closed with 1002."""
    ws = await RawWebSocket.connect(*host_port(srv))
    try:
        assert (await ws.recv_json())["type"] == "hello"
        sub = frame(0x1, b'{"op":"subscribe","symbols":["AAPL"],"id":"s"}')
        await ws.loop.sock_sendall(ws.sock, sub + frame(0x8, b"\x03"))  # one-byte close
        assert await ws.recv_json() == {"type": "ack", "id": "s", "symbols": ["AAPL"]}
        assert (await ws.recv_json())["type"] == "snapshot"
        op, payload = await ws.recv_frame()
        assert op == 0x8 and int.from_bytes(payload[:2], "big") == 1002
    finally:
        ws.close()


async def test_each_fragment_spends_a_rate_token(srv: Server) -> None:
    """Fragments count toward the control-message rate like whole messages: with the default
    burst of 60, six pings of ten fragments each are served, a seventh is rate limited; a
    flood of fragments is closed with 1008."""
    ws = await RawWebSocket.connect(*host_port(srv))
    try:
        assert (await ws.recv_json())["type"] == "hello"
        parts = [b'{"op":"ping",', b'"t":1', *[b" "] * 7, b"}"]
        message = b"".join(
            frame(0x1 if i == 0 else 0x0, p, fin=i == len(parts) - 1) for i, p in enumerate(parts)
        )
        await ws.loop.sock_sendall(ws.sock, message * 6)
        for _ in range(6):
            assert await ws.recv_json() == {"type": "pong", "t": 1}
        await ws.loop.sock_sendall(ws.sock, message)
        assert (await ws.recv_json())["code"] == "rate_limited"
        flood = frame(0x1, b"{", fin=False) + frame(0x0, b" ", fin=False) * 500
        await ws.loop.sock_sendall(ws.sock, flood)
        op, payload = await ws.recv_frame()
        assert op == 0x8 and int.from_bytes(payload[:2], "big") == 1008
    finally:
        ws.close()


async def test_aiohttp_lets_go_of_upgraded_sockets(srv: Server) -> None:
    """Per open socket: one connection of ours, no aiohttp request handler or task; closing
    them gives the admission slots back."""
    app = srv.client.app
    base_tasks = len(asyncio.all_tasks())
    socks = [await RawWebSocket.connect(*host_port(srv)) for _ in range(20)]
    try:
        for s in socks:
            assert (await s.recv_json())["type"] == "hello"
        await until(lambda: len(app[SOCKETS].conns) == 20, what="20 connections")
        runner = srv.client.server.runner
        assert runner is not None and runner.server is not None
        server = runner.server
        assert len(server.connections) == 0  # aiohttp holds none of them
        assert len(asyncio.all_tasks()) <= base_tasks  # and runs no task for them
        assert app[ADMISSION].limits.open == 20
    finally:
        for s in socks:
            s.close()
    await until(lambda: app[ADMISSION].limits.open == 0, what="slots released")
    await until(lambda: not app[SOCKETS].conns and not srv.hub.clients, what="all forgotten")

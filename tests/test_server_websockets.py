"""The same real server, spoken to by an independent client library: ``websockets``.

Proves the wire format is not an aiohttp-to-aiohttp accident: hello, subscribe, snapshot, delta,
news, ping, the frame-level errors and the close codes, as another implementation sees them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from pytest_aiohttp import AiohttpClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import MS
from tests.wsutil import Server, now_ms, tick
from ticker.core.events import Listing, News


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await Server.start(
        aiohttp_client,
        [
            Listing(("AAPL", "MSFT")),
            tick("AAPL", 100.0, bid=99.9, ask=100.1, size=10),
            tick("MSFT", 200.0),
        ],
    )


def ws_url(srv: Server) -> str:
    return f"ws://127.0.0.1:{srv.client.port}/ws"


async def recv(ws: ClientConnection, within: float = 2000 * MS) -> dict[str, Any]:
    async with asyncio.timeout(within):
        data = await ws.recv(decode=False)  # bytes: decoded as the protocol says, by orjson
    assert isinstance(data, bytes)
    obj = orjson.loads(data)
    assert isinstance(obj, dict)
    return obj


async def send(ws: ClientConnection, obj: Any) -> None:
    await ws.send(orjson.dumps(obj).decode())


async def test_session_with_websockets_client(srv: Server) -> None:
    # The client offers permessage-deflate; the server declines it and everything still works.
    async with connect(ws_url(srv), proxy=None, open_timeout=2000 * MS) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        hello = await recv(ws)
        assert hello["type"] == "hello" and hello["v"] == 1
        assert hello["symbols"] == ["AAPL", "MSFT"]
        assert hello["throttle_ms"] == 100

        await send(ws, {"op": "throttle", "ms": 0, "id": 1})
        assert await recv(ws) == {"type": "ack", "id": 1, "ms": 0}
        await send(ws, {"op": "subscribe", "symbols": ["AAPL"], "id": 2})
        assert await recv(ws) == {"type": "ack", "id": 2, "symbols": ["AAPL"]}
        snap = await recv(ws)
        assert snap["type"] == "snapshot" and snap["seq"] == 1
        assert snap["quotes"]["AAPL"]["price"] == 100.0
        assert snap["quotes"]["AAPL"]["volume"] == 10

        await srv.push(tick("AAPL", 100.5, bid=99.9, ask=100.1, size=2))
        d = await recv(ws)
        assert d["type"] == "delta" and d["seq"] == 2
        assert set(d["quotes"]["AAPL"]) == {"price", "ts", "high", "size", "volume"}
        assert d["quotes"]["AAPL"]["volume"] == 12

        await send(ws, {"op": "news", "topics": ["AAPL"], "id": 3})
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["id"] == 3
        await srv.push(
            News("Apple news", now_ms(), "wire", ("AAPL",), url="https://a.test"),
            News("Other news", now_ms(), "wire", ("MSFT",)),
        )
        item = await recv(ws)
        assert item["type"] == "news" and item["headline"] == "Apple news"
        assert item["symbols"] == ["AAPL"] and item["url"] == "https://a.test"

        await send(ws, {"op": "ping", "t": 12.25})
        assert await recv(ws) == {"type": "pong", "t": 12.25}, "the MSFT item was filtered out"

        await send(ws, {"op": "resync", "id": 4})
        assert await recv(ws) == {"type": "ack", "id": 4}
        snap = await recv(ws)
        assert snap["type"] == "snapshot" and snap["seq"] == 3
        assert snap["quotes"]["AAPL"]["price"] == 100.5

        await send(ws, {"op": "unsubscribe", "symbols": ["AAPL"], "id": 5})
        assert await recv(ws) == {"type": "ack", "id": 5, "symbols": ["AAPL"]}

        # Protocol-level ping (a control frame) is answered too.
        pong_waiter = await ws.ping()
        latency = await pong_waiter
        assert latency >= 0


async def test_frame_level_errors_with_websockets_client(srv: Server) -> None:
    async with connect(ws_url(srv), proxy=None, compression=None) as ws:
        await recv(ws)
        # A text frame whose payload is not UTF-8: bad_json, not a close.
        await ws.send(b'{"op":"ping","t":"\xc3\x28"}', text=True)
        err = await recv(ws)
        assert (err["type"], err["code"]) == ("error", "bad_json")
        # A binary frame: bad_request.
        await ws.send(b'{"op":"ping","t":1}')
        err = await recv(ws)
        assert (err["type"], err["code"]) == ("error", "bad_request")
        await ws.send("{nope")
        assert (await recv(ws))["code"] == "bad_json"
        await send(ws, {"op": "explode"})
        assert (await recv(ws))["code"] == "unknown_op"
        await send(ws, {"op": "subscribe", "symbols": ["AAPL", "NOPE"], "id": 1})
        assert await recv(ws) == {"type": "ack", "id": 1, "symbols": ["AAPL"]}
        err = await recv(ws)
        assert (err["code"], err["symbols"]) == ("unknown_symbol", ["NOPE"])
        assert (await recv(ws))["type"] == "snapshot"
        await send(ws, {"op": "ping", "t": 2})
        assert await recv(ws) == {"type": "pong", "t": 2}


async def test_oversize_frame_closes_1009_with_websockets_client(srv: Server) -> None:
    async with connect(ws_url(srv), proxy=None) as ws:
        await recv(ws)
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_server_shutdown_closes_1001(srv: Server) -> None:
    async with connect(ws_url(srv), proxy=None) as a, connect(ws_url(srv), proxy=None) as b:
        await recv(a)
        await recv(b)
        await send(a, {"op": "subscribe", "symbols": ["*"], "id": 1})
        assert (await recv(a))["type"] == "ack"
        await srv.client.server.close()
        for ws in (a, b):
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await recv(ws)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001

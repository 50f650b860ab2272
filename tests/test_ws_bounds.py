"""Resource bounds of the upgraded connection, crossed by raw clients beside a normal one.

Each test runs a real ``ticker serve`` process, a normal client streaming a steady sim feed at
a 50 ms window (it must see no gap over 1 s and no ``seq`` gap), and hostile raw sockets:

- **Fragment flood**: a text frame with FIN=0 followed by tens of thousands of empty or one-byte
  continuation frames, on 20 connections at once. Each is closed with 1009 (a message's
  fragments are bounded in size and count), the server's memory during the flood stays far below
  what the fragments would cost if kept (~3.5 MB a connection before the bound), and afterwards
  RSS and sockets are back at their baseline (taken after a warm-up round of the same flood, so
  the allocator's high-water mark is in it).
- **Close, then never read**: connections that filled their send buffer, then sent a close frame
  (or broke the protocol) and never read again. The server must not keep them (it aborts a
  socket whose close does not complete within its close timeout): their sockets and admission
  slots are freed, so a new client from the same address is admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import MS, ServerProcess
from tests.hostile import frame
from tests.probes import established, rss_kb
from tests.wsutil import NormalClient, RawWebSocket, recv, until
from ticker.net.wsconn import CLOSE_TIMEOUT

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN"]
FEED = f"sim:symbols={'+'.join(SYMBOLS)},rate=200,seed=1,burst=1"


async def healthz(session: aiohttp.ClientSession, srv: ServerProcess) -> dict[str, Any]:
    async with session.get(srv.url + "/healthz") as r:
        body: dict[str, Any] = await r.json()
        return body


async def close_code(ws: RawWebSocket, within: float) -> int | str:
    """Read until the server's close frame: its code ('reset' or 'eof' when the socket went
    first, which a flood's unread bytes may cause)."""
    try:
        while True:
            op, payload = await ws.recv_frame(within)
            if op == 0x8:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    except ConnectionResetError:
        return "reset"
    except ConnectionError:
        return "eof"


async def fragment_flood(host: str, port: int, fragment: bytes) -> int | str:
    """One connection: a text frame with FIN=0, then continuation frames of ``fragment``
    (60,000 of them, ~0.4 MB) as fast as the socket takes them; the server's answer."""
    ws = await RawWebSocket.connect(host, port, rcvbuf=None)
    loop = asyncio.get_running_loop()
    flood = (
        frame(0x1, b'{"op":"ping","t":1,"pad":"', fin=False)
        + frame(0x0, fragment, fin=False) * 60_000
    )
    try:
        with contextlib.suppress(ConnectionError):
            await loop.sock_sendall(ws.sock, flood)
        return await close_code(ws, within=10_000 * MS)
    finally:
        ws.close()


async def flood_round(host: str, port: int) -> list[int | str]:
    """20 flooding connections at once (half with empty fragments, half with one-byte ones)."""
    return await asyncio.gather(
        *(fragment_flood(host, port, b"" if i % 2 else b"x") for i in range(20))
    )


@pytest.mark.slow
async def test_a_fragment_flood_is_bounded_and_leaves_nothing_behind(
    ticker_server: type[ServerProcess],
) -> None:
    # A generous message rate, so the fragment bounds (not the rate limiter) are what stops it.
    srv = ticker_server("--feed", FEED, "--control-rate", "1000000", "--control-burst", "1000000")
    assert srv.proc is not None
    pid, host, port = srv.proc.pid, "127.0.0.1", srv.port
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        normal = await NormalClient.connect(session, srv.ws_url, SYMBOLS)
        await flood_round(host, port)  # warm-up: the allocator's high-water mark
        await asyncio.sleep(1.0)
        baseline_rss = rss_kb(pid)
        assert established(port) <= 2  # the normal client (and a healthz keep-alive)

        peak = baseline_rss
        flooding = loop.create_task(flood_round(host, port))
        while not flooding.done():
            peak = max(peak, rss_kb(pid))
            await asyncio.sleep(0.01)
        codes = await flooding
        await asyncio.sleep(0.5)

        worst = await normal.stop()
        await normal.ws.close()
        assert worst <= 1.0, f"the normal client waited {worst:.2f}s for a delta"
        assert normal.deltas >= 10
        # Every flood was closed with 1009 (a reset when the close frame was lost under the
        # flood's own unread bytes); the server's counters say 1009 for each.
        assert set(codes) <= {1009, "reset"}, codes
        stats = (await healthz(session, srv))["stats"]
        assert stats["closed_1009"] >= 40, stats
        # Kept, 60,000 fragments cost ~3.5 MB a connection (70 MB for 20): bounded, each
        # message in progress holds at most one max-size buffer.
        assert peak - baseline_rss < 20_000, f"RSS grew {peak - baseline_rss} KiB in the flood"
        await until(lambda: established(port) <= 1, 5000 * MS, "flood sockets closed")
        assert rss_kb(pid) - baseline_rss < 4_000, (rss_kb(pid), baseline_rss)


async def never_reader(host: str, port: int, last: bytes) -> RawWebSocket:
    """A connection at a 10 ms window on every symbol and all news that never reads: once its
    buffers are full (unsent bytes wait in the server's own buffer) it sends ``last`` (a close
    frame, or a frame that breaks the protocol) and keeps not reading."""
    ws = await RawWebSocket.connect(host, port, rcvbuf=4096)
    for op in (
        {"op": "throttle", "ms": 10},
        {"op": "subscribe", "symbols": ["*"]},
        {"op": "news", "topics": ["*"], "since": 0},
    ):
        await ws.send_json(op)
    await asyncio.sleep(1.0)  # the server's send buffer fills up
    await asyncio.get_running_loop().sock_sendall(ws.sock, last)
    return ws


@pytest.mark.slow
async def test_a_closed_connection_that_stops_reading_is_dropped_and_frees_its_slot(
    ticker_server: type[ServerProcess],
) -> None:
    srv = ticker_server(
        "--feed",
        "sim:symbols=40,rate=4000,seed=2,burst=1",
        "--feed",
        "simnews:rate=6000",
        "--max-connections-per-ip",
        "5",
        "--slow-close-after",
        "30",  # (long: it is the close paths that must drop them, not the slow-consumer bound)
        "--heartbeat-s",
        "30",
    )
    host, port = "127.0.0.1", srv.port
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        normal = await NormalClient.connect(session, srv.ws_url, SYMBOLS)
        lasts = [
            frame(0x8, (1000).to_bytes(2, "big")),  # a clean close
            frame(0x8, (1001).to_bytes(2, "big") + b"bye"),
            frame(0x3, b"?"),  # a reserved opcode: 1002
            frame(0x1, b'{"op":"ping"}', rsv=4),  # RSV1 without deflate: 1002
        ]
        hostile = await asyncio.gather(*(never_reader(host, port, b) for b in lasts))
        # Five connections from this address: the limit. A sixth is refused while they last.
        async with session.get(srv.url + "/healthz") as r:
            assert (await r.json())["admission"]["open"] == 5

        start = loop.time()
        # (Before the close timeout aborted them, they stayed ESTABLISHED for good.)
        await until(lambda: established(port) == 1, CLOSE_TIMEOUT + 3.0, "closed sockets gone")
        assert loop.time() - start <= CLOSE_TIMEOUT + 1.5
        # Their admission slots are free: a new client from the same address is admitted.
        h = await healthz(session, srv)
        assert h["admission"]["open"] == 1, h["admission"]
        fresh = await session.ws_connect(srv.ws_url)
        assert (await recv(fresh))["type"] == "hello"
        await fresh.send_json({"op": "ping", "t": 7})
        assert orjson.loads((await fresh.receive()).data) == {"type": "pong", "t": 7}
        await fresh.close()
        for ws in hostile:
            ws.close()
        worst = await normal.stop()
        await normal.ws.close()
        assert worst <= 1.0, f"the normal client waited {worst:.2f}s for a delta"

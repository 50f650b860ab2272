"""Connection limits, the per-connection symbol limit and the heartbeat, each crossed for real.

Every test crosses one limit and checks the documented outcome (README "Limits"): an HTTP 503 or
429 with ``Retry-After`` before the upgrade, a ``too_many_symbols`` error with the connection left
open, or a closed connection, and that another client of the same server keeps receiving. The
pure parts (``ConnectionLimits``, ``client_key``) get property tests. Frame-size (1009), control
rate (1008) and slow consumer (1013) limits are crossed in test_server.py and
test_slow_consumer.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import ClientWebSocketResponse
from hypothesis import given, strategies as st
from pytest_aiohttp import AiohttpClient
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.conftest import MS, ROOT, ServerProcess
from tests.wsutil import RawWebSocket, Server, recv, recv_type, recv_until, tick, until
from ticker.bus.registry import sources_from_specs
from ticker.cli import build_parser, flags_given
from ticker.config import HubConfig, ServerConfig, parse_toml, serve_settings, split_server_table
from ticker.core.events import Event, Listing
from ticker.core.limits import ConnectionLimits, client_key, parse_networks
from ticker.net.admission import ADMISSION

SYMS = ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA")
WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def opening() -> list[Event]:
    return [Listing(SYMS), *(tick(s, 100.0 + i) for i, s in enumerate(SYMS))]


async def start(aiohttp_client: AiohttpClient, **limits: Any) -> Server:
    """A server with ``limits``: ``[server]`` keys, for the hub or the server."""
    hub, server = split_server_table(limits)
    return await Server.start(aiohttp_client, opening(), hub, server)


async def assert_receives(srv: Server, ws: ClientWebSocketResponse) -> None:
    """``ws`` (subscribed to AAPL) gets the next AAPL tick as a delta."""
    price = srv.hub.book.quotes["AAPL"]["price"] + 1.0
    await srv.push(tick("AAPL", price))
    frame = await recv_until(
        ws, lambda f: f["type"] == "delta" and "AAPL" in f["quotes"], within=3000 * MS
    )
    assert frame["quotes"]["AAPL"]["price"] == price


async def upgrade(
    srv: Server, *, local: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A WebSocket upgrade request from address ``local``: (status, headers, body). A 101 is
    closed at once (its slot is released when the server notices)."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0) if local else None, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = srv.client.make_url("/ws")
        async with session.get(url, headers={**WS_HEADERS, **(headers or {})}) as r:
            body = b"" if r.status == 101 else await r.read()
            return r.status, dict(r.headers), body


async def open_ws(
    srv: Server, local: str | None = None, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientSession, ClientWebSocketResponse]:
    """An admitted aiohttp websocket from address ``local`` (its session: close it after)."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0) if local else None)
    session = aiohttp.ClientSession(connector=connector)
    ws = await session.ws_connect(srv.client.make_url("/ws"), headers=headers)
    assert (await recv(ws))["type"] == "hello"
    return session, ws


def assert_refusal(status: int, headers: dict[str, str], body: bytes, want: int) -> None:
    assert status == want, (status, body)
    assert headers["Retry-After"] == "5"
    err = orjson.loads(body)
    assert err["error"] == "too_many_connections" and err["message"], err


# Pure: ConnectionLimits


@given(
    st.integers(0, 4),
    st.integers(0, 3),
    st.lists(st.tuples(st.booleans(), st.sampled_from("abc")), max_size=60),
)
def test_connection_limits_hold_under_any_admit_release_sequence(
    max_total: int, max_per_key: int, ops: list[tuple[bool, str]]
) -> None:
    limits = ConnectionLimits(max_total, max_per_key)
    held: dict[str, int] = {}  # the model: slots admitted and not yet released
    for admit, key in ops:
        if admit:
            refusal = limits.admit(key)
            total_full = bool(max_total) and sum(held.values()) >= max_total
            key_full = bool(max_per_key) and held.get(key, 0) >= max_per_key
            if total_full:
                assert refusal is not None and refusal.status == 503
            elif key_full:
                assert refusal is not None and refusal.status == 429
            else:
                assert refusal is None
                held[key] = held.get(key, 0) + 1
        elif held.get(key):
            limits.release(key)
            held[key] -= 1
        assert limits.open == sum(held.values())
        assert limits.per_key == {k: n for k, n in held.items() if n}
    for key, n in held.items():
        for _ in range(n):
            limits.release(key)
    assert limits.open == 0 and limits.per_key == {}
    limits.release("a")  # a stray release never goes negative
    assert limits.open == 0


# Pure: the client key


@given(st.ip_addresses(v=4), st.lists(st.ip_addresses().map(str), max_size=4))
def test_an_untrusted_peer_counts_under_its_own_address_whatever_it_forwards(
    peer: ipaddress.IPv4Address, forwarded: list[str]
) -> None:
    assert client_key(str(peer), [", ".join(forwarded)]) == str(peer)
    # A trusted proxy elsewhere does not make this peer's header believable.
    trusted = parse_networks(["10.255.255.254"])
    if str(peer) != "10.255.255.254":
        assert client_key(str(peer), [", ".join(forwarded)], trusted) == str(peer)


def test_client_key_behind_trusted_proxies() -> None:
    proxies = parse_networks(["10.0.0.0/8", "::1"])
    # The right-most address that is not a trusted proxy: what the client wrote is ignored.
    assert client_key("10.0.0.1", ["1.2.3.4, 203.0.113.9"], proxies) == "203.0.113.9"
    assert client_key("10.0.0.1", ["1.2.3.4, 203.0.113.9, 10.0.0.7"], proxies) == "203.0.113.9"
    assert client_key("10.0.0.1", ["1.2.3.4", "203.0.113.9"], proxies) == "203.0.113.9"
    # Every hop trusted: the left-most one.
    assert client_key("10.0.0.1", ["10.0.0.5, 10.0.0.6"], proxies) == "10.0.0.5"
    # No header, or garbage where the proxy wrote: the proxy's own address.
    assert client_key("10.0.0.1", [], proxies) == "10.0.0.1"
    assert client_key("10.0.0.1", ["not-an-ip"], proxies) == "10.0.0.1"
    assert client_key("::1", ["[2001:db8::1]"], proxies) == "2001:db8::/64"
    # IPv6 per /64; IPv4-mapped IPv6 is IPv4; a Unix socket has no address.
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "" and client_key("") == ""


@pytest.mark.parametrize(
    "proxies", [["nonsense"], ["10.0.0.1", "300.1.1.1"], "10.0.0.1", [1], {"a": 1}]
)
def test_bad_trusted_proxies_are_a_config_error(proxies: Any) -> None:
    with pytest.raises(ValueError, match=r"trusted_proxies|address or network"):
        ServerConfig(trusted_proxies=proxies)


def test_trusted_proxies_from_toml_become_a_tuple() -> None:
    cfg = ServerConfig(trusted_proxies=["10.0.0.1", "192.168.0.0/16"])  # type: ignore[arg-type]
    assert cfg.trusted_proxies == ("10.0.0.1", "192.168.0.0/16")
    with pytest.raises(ValueError, match="max_connections"):
        ServerConfig(max_connections=-1)
    with pytest.raises(ValueError, match="max_symbols_per_connection"):
        HubConfig(max_symbols_per_connection=2.5)  # type: ignore[arg-type]


# Connections in total: 503


async def test_global_limit_refuses_with_503_and_others_keep_receiving(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, max_connections=3, max_connections_per_ip=0)
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    second, _ = await srv.connect()
    third, _ = await srv.connect()
    assert_refusal(*await upgrade(srv), want=503)
    # The independent `websockets` client sees the same refusal.
    url = str(srv.client.make_url("/ws")).replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(url):
            pass
    assert info.value.response.status_code == 503
    assert info.value.response.headers["Retry-After"] == "5"
    assert srv.hub.health()["connections"] == 3, "a refused request never reached the hub"
    await assert_receives(srv, other)
    # A slot comes back when a connection ends.
    await third.close()
    await until(lambda: srv.hub.health()["connections"] == 2, what="third gone")
    await until(
        lambda: srv.client.app[ADMISSION].limits.open == 2, what="the slot released"
    )  # released when the handler's task ends, just after the hub forgets it
    fourth, _ = await srv.connect()
    await fourth.send_json({"op": "ping", "t": 4})
    assert await recv(fourth) == {"type": "pong", "t": 4}
    h = await (await srv.client.get("/healthz")).json()
    assert h["admission"]["refused_total"] == 2 and h["admission"]["open"] == 3
    await assert_receives(srv, other)
    await second.close()


async def test_handshakes_in_flight_count_so_a_burst_cannot_overshoot(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, max_connections=5, max_connections_per_ip=0)
    results = await asyncio.gather(
        *(srv.client.ws_connect("/ws") for _ in range(20)), return_exceptions=True
    )
    opened = [r for r in results if isinstance(r, ClientWebSocketResponse)]
    refused = [r for r in results if isinstance(r, aiohttp.WSServerHandshakeError)]
    assert len(opened) == 5 and len(refused) == 15, results
    assert all(r.status == 503 for r in refused)
    for ws in opened:
        assert (await recv(ws))["type"] == "hello"
        await ws.close()


async def test_a_failed_or_abandoned_handshake_gives_its_slot_back(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, max_connections=1, max_connections_per_ip=0)
    port = srv.client.port
    assert port is not None
    limits = srv.client.app[ADMISSION].limits
    for i in range(5):
        # Not a valid upgrade (no key): aiohttp answers 400 from prepare().
        r = await srv.client.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        assert r.status == 400
        r.release()
        # A peer that sends the upgrade and hangs up without reading the answer.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await until(
            lambda: limits.admitted == 2 * i + 2 and limits.open == 0,  # noqa: B023
            what="the aborted handshake admitted, then its slot back",
        )
    await until(lambda: srv.client.app[ADMISSION].limits.open == 0, what="every slot back")
    ws, _ = await srv.connect()
    await ws.send_json({"op": "ping", "t": 1})
    assert await recv(ws) == {"type": "pong", "t": 1}


# Connections per client address: 429


async def test_per_address_limit_refuses_with_429_and_other_addresses_are_served(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, max_connections_per_ip=2)
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)  # 127.0.0.1: one
    s1, _ws1 = await open_ws(srv, "127.0.0.1")  # two
    try:
        assert_refusal(*await upgrade(srv, local="127.0.0.1"), want=429)
        # Another address on the same server is still admitted.
        s2, ws2 = await open_ws(srv, "127.0.0.2")
        await ws2.send_json({"op": "ping", "t": 2})
        assert await recv(ws2) == {"type": "pong", "t": 2}
        await assert_receives(srv, other)
        await s2.close()
        # The same address again once one of its connections closed.
        await s1.close()
        await until(lambda: srv.client.app[ADMISSION].limits.open == 1, what="released")
        s3, ws3 = await open_ws(srv, "127.0.0.1")
        await ws3.send_json({"op": "ping", "t": 3})
        assert await recv(ws3) == {"type": "pong", "t": 3}
        await s3.close()
        await assert_receives(srv, other)
    finally:
        await s1.close()


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, max_connections_per_ip=1, trusted_proxies=("127.0.0.1",))
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)  # 127.0.0.1 itself
    a = {"X-Forwarded-For": "203.0.113.5"}
    s1, _ = await open_ws(srv, "127.0.0.1", a)
    assert_refusal(*await upgrade(srv, local="127.0.0.1", headers=a), want=429)
    # What the client wrote left of the proxy's entry is not believed.
    spoof = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}
    assert_refusal(*await upgrade(srv, local="127.0.0.1", headers=spoof), want=429)
    s2, _ = await open_ws(srv, "127.0.0.1", {"X-Forwarded-For": "203.0.113.6"})
    # 127.0.0.2 is no trusted proxy: its header is ignored and it counts as itself.
    s3, _ = await open_ws(srv, "127.0.0.2", a)
    assert_refusal(
        *await upgrade(srv, local="127.0.0.2", headers={"X-Forwarded-For": "203.0.113.7"}),
        want=429,
    )
    await assert_receives(srv, other)
    for s in (s1, s2, s3):
        await s.close()


async def test_serve_flags_set_the_connection_limits(ticker_server: type[ServerProcess]) -> None:
    """``ticker serve --max-connections 2 --max-connections-per-ip 1``: the documented refusals
    from a real process, and a subscribed client keeps ticking."""
    srv = ticker_server(
        "--feed",
        "sim:symbols=AAPL+MSFT,rate=50,seed=1,burst=1",
        "--max-connections",
        "2",
        "--max-connections-per-ip",
        "1",
        "--log-level",
        "WARNING",
    )
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(srv.ws_url)
        assert (await recv(ws))["type"] == "hello"
        await ws.send_json({"op": "subscribe", "symbols": ["AAPL"], "id": 1})
        await recv_type(ws, "snapshot")
        for local, want in (("127.0.0.1", 429), (None, 429)):
            conn = aiohttp.TCPConnector(local_addr=(local, 0) if local else None)
            async with aiohttp.ClientSession(connector=conn) as s:
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await s.ws_connect(srv.ws_url)
                assert info.value.status == want
        conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=conn) as s2:
            ws2 = await s2.ws_connect(srv.ws_url)  # the second connection: admitted
            assert (await recv(ws2))["type"] == "hello"
            conn3 = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
            async with aiohttp.ClientSession(connector=conn3) as s3:
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await s3.ws_connect(srv.ws_url)
                assert info.value.status == 503, "the global limit, before the per-address one"
            await ws2.close()
        for _ in range(3):
            await recv_type(ws, "delta")
        await ws.close()
    assert "refused a connection" in srv.stderr()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trusted-proxy", "nonsense"], "address or network"),
        (["--max-connections", "-1"], "max_connections"),
        (["--quarantine-after", "-2"], "quarantine_after"),
    ],
)
def test_bad_limit_flags_are_usage_errors(flags: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ticker", "serve", "--port", "0", *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert out.returncode == 2 and message in out.stderr, out.stderr


# Symbols per connection: too_many_symbols, nothing applied, connection open


async def test_symbols_per_connection_limit(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, max_symbols_per_connection=3)
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    ws, _ = await srv.subscribed(["AAPL", "MSFT"], throttle_ms=0)
    await ws.send_json({"op": "subscribe", "symbols": ["GOOGL", "AMZN"], "id": "over"})
    err = await recv(ws)
    assert (err["type"], err["code"], err["id"]) == ("error", "too_many_symbols", "over")
    assert "nothing was changed" in err["message"]
    # Nothing of the refused request applied: GOOGL does not arrive, MSFT still does.
    await srv.push(tick("GOOGL", 555.0), tick("MSFT", 333.0))
    d = await recv_type(ws, "delta")
    assert set(d["quotes"]) == {"MSFT"}
    # Up to the limit is fine; re-subscribing a symbol already held adds nothing.
    await ws.send_json({"op": "subscribe", "symbols": ["GOOGL", "AAPL"], "id": "ok"})
    assert await recv(ws) == {"type": "ack", "id": "ok", "symbols": ["GOOGL", "AAPL"]}
    assert set((await recv_type(ws, "snapshot"))["quotes"]) == {"GOOGL", "AAPL"}
    await ws.send_json({"op": "subscribe", "symbols": ["NVDA"]})  # no id: the error has none
    err = await recv(ws)
    assert err["code"] == "too_many_symbols" and "id" not in err
    # "*" counts 0, whatever the book holds; exclusions under "*" count.
    await ws.send_json({"op": "subscribe", "symbols": ["*"], "id": "star"})
    assert (await recv(ws))["type"] == "ack"
    assert set((await recv_type(ws, "snapshot"))["quotes"]) == set(SYMS)
    await ws.send_json({"op": "unsubscribe", "symbols": ["AAPL", "MSFT", "X1"], "id": "u3"})
    assert (await recv(ws))["type"] == "ack"
    await ws.send_json({"op": "unsubscribe", "symbols": ["X2"], "id": "u4"})
    err = await recv(ws)
    assert (err["code"], err["id"]) == ("too_many_symbols", "u4")
    await srv.push(tick("NVDA", 777.0))
    assert "NVDA" in (await recv_type(ws, "delta"))["quotes"], "still on '*' minus three"
    # The connection stays open and usable, and the other client keeps receiving.
    await ws.send_json({"op": "ping", "t": 7})
    assert await recv_type(ws, "pong") == {"type": "pong", "t": 7}
    await assert_receives(srv, other)
    assert srv.hub.stats["error_too_many_symbols"] == 3


# Heartbeat: a peer that never answers is dropped


async def test_a_peer_that_never_answers_pings_is_dropped_within_three_heartbeats(
    aiohttp_client: AiohttpClient,
) -> None:
    hb = 1.0
    srv = await start(aiohttp_client, heartbeat_s=hb)
    port = srv.client.port
    assert port is not None
    other, _ = await srv.subscribed(["AAPL"], throttle_ms=0)
    frames: list[dict[str, Any]] = []

    async def keep_reading() -> None:  # aiohttp answers pings while it reads
        async for msg in other:
            frames.append(orjson.loads(msg.data))

    keeper = asyncio.get_running_loop().create_task(keep_reading())
    dead = await RawWebSocket.connect("127.0.0.1", port, rcvbuf=None)
    loop = asyncio.get_running_loop()
    op, payload = await dead.recv_frame()
    assert op == 0x1 and orjson.loads(payload)["type"] == "hello"
    last_sent = loop.time()  # the handshake was the last thing this peer sent
    pings = 0
    with pytest.raises(ConnectionError):
        while True:
            op, _ = await dead.recv_frame(within=3 * hb + 2.0)
            pings += op == 0x9  # the heartbeat ping (ticker.net.wsconn.Sockets)
    gone = loop.time() - last_sent
    dead.close()
    assert pings >= 1, "the server pinged the silent peer before dropping it"
    assert gone <= 3 * hb, f"dropped after {gone:.2f}s (heartbeat {hb}s)"
    await until(lambda: len(srv.hub.clients) == 1, what="the dead peer forgotten")
    await asyncio.sleep(2 * hb)
    assert len(srv.hub.clients) == 1 and not keeper.done(), "a peer that answers stays"
    await srv.push(tick("AAPL", 999.0))
    await until(
        lambda: any(f["type"] == "delta" and "AAPL" in f["quotes"] for f in frames),
        what="the live peer still receives",
    )
    await other.close()
    await keeper


async def test_a_peer_that_sends_but_never_answers_pings_is_alive(
    aiohttp_client: AiohttpClient,
) -> None:
    """Anything received proves the peer alive (it resets the connection's heartbeat)."""
    hb = 0.3
    srv = await start(aiohttp_client, heartbeat_s=hb)
    port = srv.client.port
    assert port is not None
    raw = await RawWebSocket.connect("127.0.0.1", port, rcvbuf=None)
    loop = asyncio.get_running_loop()
    end = loop.time() + 6 * hb
    n = 0
    while loop.time() < end:
        n += 1
        await raw.send_json({"op": "ping", "t": n})
        while True:
            op, payload = await raw.recv_frame()
            if op == 0x1 and orjson.loads(payload).get("type") == "pong":
                break
        await asyncio.sleep(hb / 3)
    assert len(srv.hub.clients) == 1
    raw.close()


def test_limit_flags_and_config_keys_reach_the_hub_config_and_the_feeds(tmp_path: Path) -> None:
    cfg = tmp_path / "ticker.toml"
    cfg.write_text(
        "quarantine_after = 7\n"
        "[server]\nmax_connections = 50\nmax_connections_per_ip = 5\n"
        'trusted_proxies = ["10.0.0.0/8"]\nhttp_idle_s = 9.5\n'
    )
    args = build_parser().parse_args(
        ["serve", "--config", str(cfg), "--max-connections-per-ip", "6", "--control-rate", "3",
         "--trusted-proxy", "192.0.2.1", "--quarantine-window", "12"]
    )  # fmt: skip
    settings = serve_settings(parse_toml(cfg.read_bytes(), str(cfg)), flags_given(args), {})
    server = settings.server
    assert (server.max_connections, server.max_connections_per_ip) == (50, 6), "flags win"
    assert (settings.hub.rate, server.http_idle_s) == (3.0, 9.5)
    assert server.trusted_proxies == ("192.0.2.1",)
    policy = settings.supervision
    assert (policy.quarantine_after, policy.quarantine_window) == (7, 12.0)
    (src,), _ = sources_from_specs(["sim"], policy)
    assert (src.quarantine_after, src.quarantine_window) == (7, 12.0)

"""Who may do what, against a real server: origins, client tokens, entitlements, the HTTP APIs.

In-process servers (``create_app(..., auth=AuthConfig(...))`` on 127.0.0.1, port 0) spoken to by
aiohttp's client, the independent ``websockets`` library and a raw socket (to see that a refused
handshake is never upgraded).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from pytest_aiohttp import AiohttpClient
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from tests.conftest import MS
from tests.wsutil import Frame, Server, now_ms, recv, recv_type, recv_until, tick, until
from ticker.core.auth import AuthConfig, mint_token
from ticker.core.events import Event, Listing, News
from ticker.net.server import create_app
from ticker_feeds.testing import FakeFeed

SECRET = "test-secret-" + "q" * 32
ADMIN = "admin-token-" + "z" * 20
SYMS = ("AAPL", "MSFT", "GOOGL", "TSLA")


def opening() -> list[Event]:
    return [
        Listing(SYMS),
        tick("AAPL", 100.0, size=1),
        tick("MSFT", 200.0, size=1),
        tick("GOOGL", 300.0, size=1),
    ]


def news(headline: str, *symbols: str) -> News:
    return News(headline, now_ms(), "test", symbols)


def token(symbols: Sequence[str] | None = None, ttl: float = 60.0, secret: str = SECRET) -> str:
    return mint_token(secret, now=time.time(), ttl=ttl, sub="alice", symbols=symbols)


async def start(
    aiohttp_client: AiohttpClient, auth: AuthConfig, events: Sequence[Event] | None = None
) -> Server:
    events = opening() if events is None else events
    feed = FakeFeed(events)
    srv = Server(await aiohttp_client(create_app([feed], auth=auth)), feed)
    await until(lambda: srv.runner.events >= len(events), what="initial events")
    return srv


REQUIRED = AuthConfig(token_secret=SECRET, require_token=True, admin_token=ADMIN)


@pytest.fixture
async def open_srv(aiohttp_client: AiohttpClient) -> Server:
    return await start(aiohttp_client, AuthConfig())


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await start(aiohttp_client, REQUIRED)


def url(srv: Server, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{srv.client.port}{path}"


async def raw_handshake(port: int, headers: dict[str, str], path: str = "/ws") -> bytes:
    """Send a WebSocket opening handshake by hand; the server's whole answer (it closes)."""
    loop = asyncio.get_running_loop()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setblocking(False)
        req = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        await loop.sock_sendall(sock, req.encode())
        out = b""
        async with asyncio.timeout(2000 * MS):
            while b"\r\n\r\n" not in out:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    break
                out += chunk
        return out


async def refused(srv: Server, status: int, **kw: Any) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await srv.client.ws_connect("/ws", **kw)
    assert err.value.status == status


# Origins


async def test_cross_site_origin_gets_403_before_any_upgrade(open_srv: Server) -> None:
    for evil in ("https://evil.example", "http://127.0.0.1.evil.example", "null", "garbage"):
        await refused(open_srv, 403, origin=evil)
        assert open_srv.client.port is not None
        answer = await raw_handshake(open_srv.client.port, {"Origin": evil})
        assert answer.startswith(b"HTTP/1.1 403"), answer[:100]
        assert b"upgrade" not in answer.lower().split(b"\r\n\r\n")[0].split(b"\r\n", 1)[1]
    # websockets, an independent client, sees the same refusal.
    with pytest.raises(InvalidStatus) as err:
        async with ws_connect(url(open_srv), origin=Origin("https://evil.example"), proxy=None):
            pass
    assert err.value.response.status_code == 403
    assert open_srv.hub.stats["connections_total"] == 0, "no connection ever reached the hub"


async def test_same_origin_localhost_and_no_origin_are_served(open_srv: Server) -> None:
    port = open_srv.client.port
    assert port is not None
    for ok in (f"http://127.0.0.1:{port}", "http://localhost:5173", "https://[::1]:1", None):
        ws = await open_srv.client.ws_connect("/ws", origin=ok)
        assert (await recv(ws))["type"] == "hello"
        await ws.close()
    answer = await raw_handshake(port, {"Origin": f"http://127.0.0.1:{port}"})
    assert answer.startswith(b"HTTP/1.1 101"), answer[:100]


async def test_allow_list_replaces_the_localhost_default(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, AuthConfig(allow_origins=("https://*.example.com",)))
    ws = await srv.client.ws_connect("/ws", origin="https://app.example.com")
    assert (await recv(ws))["type"] == "hello"
    await refused(srv, 403, origin="http://localhost:5173")
    await refused(srv, 403, origin="https://example.com")
    own = await srv.client.ws_connect("/ws", origin=f"http://127.0.0.1:{srv.client.port}")
    assert (await recv(own))["type"] == "hello", "the server's own origin is always allowed"


async def test_a_refused_stranger_does_not_disturb_subscribers(open_srv: Server) -> None:
    ws, _ = await open_srv.subscribed(["AAPL"])
    for _ in range(30):
        await refused(open_srv, 403, origin="https://evil.example")
    await open_srv.push(tick("AAPL", 101.0))
    delta = await recv_type(ws, "delta")
    assert delta["quotes"]["AAPL"]["price"] == 101.0


# Client tokens on /ws


async def test_missing_expired_forged_tokens_get_401(srv: Server) -> None:
    expired = mint_token(SECRET, now=time.time() - 120, ttl=60)
    forged = token(secret="another-secret-" + "w" * 30)
    for bad in (None, expired, forged, "not-a-token", token()[:-3]):
        params = {} if bad is None else {"token": bad}
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await srv.client.ws_connect("/ws", params=params)
        assert err.value.status == 401
        if bad is not None:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await srv.client.ws_connect("/ws", protocols=("ticker.v1", f"bearer.{bad}"))
            assert err.value.status == 401
    resp = await srv.client.get("/ws", params={"token": forged})
    body = await resp.text()
    assert resp.status == 401 and forged not in body
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="ticker"'
    assert srv.hub.stats["connections_total"] == 0


async def test_token_in_query_and_in_subprotocol_aiohttp(srv: Server) -> None:
    ws = await srv.client.ws_connect("/ws", params={"token": token(["AAPL"])})
    hello = await recv(ws)
    assert hello["symbols"] == ["AAPL"]
    assert ws.protocol is None, "nothing offered, nothing selected"
    ws2 = await srv.client.ws_connect("/ws", protocols=("ticker.v1", f"bearer.{token(['MSFT'])}"))
    assert ws2.protocol == "ticker.v1", "the server selects ticker.v1, never the token"
    assert (await recv(ws2))["symbols"] == ["MSFT"]


async def test_token_in_subprotocol_websockets(srv: Server) -> None:
    offer = [Subprotocol("ticker.v1"), Subprotocol(f"bearer.{token(['GOOGL', 'TSLA'])}")]
    async with ws_connect(url(srv), subprotocols=offer, proxy=None) as ws:
        assert ws.subprotocol == "ticker.v1"
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "ticker.v1"
        hello = orjson.loads(await ws.recv())
        assert hello["symbols"] == ["GOOGL", "TSLA"]
    async with ws_connect(url(srv, f"/ws?token={token()}"), proxy=None) as ws:
        assert orjson.loads(await ws.recv())["symbols"] == list(SYMS)


async def test_bearer_offer_without_ticker_v1_is_refused(srv: Server) -> None:
    # Selecting the bearer value would echo the token; selecting nothing breaks browsers.
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await srv.client.ws_connect("/ws", protocols=(f"bearer.{token()}",))
    assert err.value.status == 400


async def test_admin_token_is_a_client_token_for_every_symbol(srv: Server) -> None:
    ws = await srv.client.ws_connect("/ws", protocols=("ticker.v1", f"bearer.{ADMIN}"))
    assert (await recv(ws))["symbols"] == list(SYMS)
    resp = await srv.client.get("/api/quotes", headers={"Authorization": f"Bearer {ADMIN}"})
    assert set((await resp.json())["quotes"]) == {"AAPL", "MSFT", "GOOGL"}


async def test_optional_tokens_still_refuse_bad_ones(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, AuthConfig(token_secret=SECRET))
    ws = await srv.client.ws_connect("/ws")
    assert (await recv(ws))["symbols"] == list(SYMS), "no token: everything"
    ws2 = await srv.client.ws_connect("/ws", params={"token": token(["TSLA"])})
    assert (await recv(ws2))["symbols"] == ["TSLA"], "a token limits what it sees"
    await refused(srv, 401, params={"token": "garbage"})


async def test_a_connection_is_closed_when_its_token_expires(srv: Server) -> None:
    ws = await srv.client.ws_connect("/ws", params={"token": token(ttl=0.5)})
    assert (await recv(ws))["type"] == "hello"
    msg = await ws.receive(timeout=5000 * MS)
    assert msg.type is WSMsgType.CLOSE
    assert (ws.close_code, msg.extra) == (1008, "token expired")


# Entitlements on /ws


async def test_subscribe_mixed_gets_unauthorized_for_the_rest(srv: Server) -> None:
    ws = await srv.client.ws_connect("/ws", params={"token": token(["AAPL", "GOOGL"])})
    assert (await recv(ws))["symbols"] == ["AAPL", "GOOGL"]
    await ws.send_json({"op": "subscribe", "symbols": ["AAPL", "msft", "NOPE", "googl"], "id": 1})
    ack = await recv(ws)
    assert ack == {"type": "ack", "id": 1, "symbols": ["AAPL", "GOOGL"]}
    err = await recv(ws)
    assert (err["type"], err["code"], err["symbols"]) == ("error", "unauthorized", ["MSFT", "NOPE"])
    assert err["id"] == 1
    snap = await recv(ws)
    assert snap["type"] == "snapshot" and set(snap["quotes"]) == {"AAPL", "GOOGL"}
    seen: list[Frame] = []
    await srv.push(tick("MSFT", 201.0), tick("AAPL", 101.0))
    delta = await recv_type(ws, "delta", seen=seen)
    assert set(delta["quotes"]) == {"AAPL"}
    await ws.send_json({"op": "ping", "t": 1})
    await recv_until(ws, lambda f: f["type"] == "pong", seen=seen)
    assert all("MSFT" not in f.get("quotes", {}) for f in seen)


async def test_star_is_every_entitled_symbol_now_and_later(srv: Server) -> None:
    ws = await srv.client.ws_connect("/ws", params={"token": token(["MSFT", "TSLA", "NVDA"])})
    await recv(ws)
    await ws.send_json({"op": "subscribe", "symbols": ["*"], "id": 1})
    assert await recv(ws) == {"type": "ack", "id": 1, "symbols": ["*"]}
    snap = await recv(ws)
    assert snap["type"] == "snapshot" and set(snap["quotes"]) == {"MSFT"}  # TSLA has no tick
    seen: list[Frame] = []
    # TSLA first ticks; NVDA and AMD were never known: NVDA is entitled, AMD is not.
    await srv.push(tick("TSLA", 250.0), tick("NVDA", 900.0), tick("AMD", 150.0), tick("AAPL", 99.0))
    got: set[str] = set()

    def both(f: Frame) -> bool:
        got.update(f.get("quotes", {}))
        return {"TSLA", "NVDA"} <= got

    await recv_until(ws, both, seen=seen)
    await ws.send_json({"op": "ping", "t": 1})
    await recv_until(ws, lambda f: f["type"] == "pong", seen=seen)
    assert got == {"TSLA", "NVDA"}, "never AMD nor AAPL"
    # A resync is a snapshot of entitled symbols only.
    await ws.send_json({"op": "resync"})
    snap = await recv_type(ws, "snapshot")
    assert set(snap["quotes"]) == {"MSFT", "TSLA", "NVDA"}


async def test_news_only_on_entitled_symbols_or_untagged(srv: Server) -> None:
    await srv.push(news("old aapl", "AAPL"), news("old msft", "MSFT"), news("old market"))
    ws = await srv.client.ws_connect("/ws", params={"token": token(["AAPL"])})
    hello = await recv(ws)
    await ws.send_json({"op": "news", "topics": ["*"], "since": 0, "id": 1})
    ack = await recv(ws)
    assert ack["topics"] == ["*"]
    replayed = [(await recv_type(ws, "news"))["headline"] for _ in range(2)]
    assert replayed == ["old aapl", "old market"]
    await srv.push(
        news("live msft", "MSFT"), news("live both", "MSFT", "AAPL"), news("live market")
    )
    live = [(await recv_type(ws, "news"))["headline"] for _ in range(2)]
    assert live == ["live both", "live market"]
    # Asking for news on a symbol it is not entitled to.
    await ws.send_json({"op": "news", "topics": ["MSFT", "AAPL"], "id": 2})
    ack = await recv(ws)
    assert (ack["type"], ack["topics"]) == ("ack", ["AAPL"])
    err = await recv(ws)
    assert (err["code"], err["symbols"]) == ("unauthorized", ["MSFT"])
    await srv.push(news("msft only", "MSFT"), news("aapl only", "AAPL"))
    assert (await recv_type(ws, "news"))["headline"] == "aapl only"
    assert hello["news_last_id"] > 0


# HTTP APIs


async def test_read_apis_need_a_token_and_filter_by_entitlement(srv: Server) -> None:
    await srv.push(news("aapl news", "AAPL"), news("msft news", "MSFT"), news("general"))
    c = srv.client
    for path in ("/api/quotes", "/api/symbols", "/api/news", "/api/history?symbol=AAPL"):
        resp = await c.get(path)
        assert resp.status == 401, path
        assert (await resp.json())["error"] == "unauthorized"
        resp = await c.get(path, headers={"Authorization": "Bearer nope"})
        assert resp.status == 401, path
    tok = token(["AAPL", "TSLA"])
    auth = {"Authorization": f"Bearer {tok}"}
    quotes = (await (await c.get("/api/quotes", headers=auth)).json())["quotes"]
    assert set(quotes) == {"AAPL"}
    quotes = (
        await (await c.get("/api/quotes", params={"symbols": "AAPL,MSFT", "token": tok})).json()
    )["quotes"]
    assert set(quotes) == {"AAPL"}, "?token= works as well, and MSFT is left out"
    symbols = (await (await c.get("/api/symbols", headers=auth)).json())["symbols"]
    assert [s["symbol"] for s in symbols] == ["AAPL", "TSLA"]
    items = (await (await c.get("/api/news", headers=auth)).json())["items"]
    assert [i["headline"] for i in items] == ["aapl news", "general"]
    items = (await (await c.get("/api/news?limit=1", headers=auth)).json())["items"]
    assert [i["headline"] for i in items] == ["general"], "the latest one it may see"
    first = (await (await c.get("/api/news?since=0&limit=1", headers=auth)).json())["items"]
    assert [i["headline"] for i in first] == ["aapl news"]
    assert (await c.get("/api/history?symbol=AAPL", headers=auth)).status == 200
    resp = await c.get("/api/history?symbol=MSFT", headers=auth)
    assert resp.status == 403 and (await resp.json())["error"] == "unauthorized"


async def test_open_paths_stay_open(srv: Server) -> None:
    for path in ("/healthz", "/", "/static/app.js", "/api/replay"):
        assert (await srv.client.get(path)).status == 200, path


async def test_without_tokens_everything_is_as_before(open_srv: Server) -> None:
    quotes = (await (await open_srv.client.get("/api/quotes")).json())["quotes"]
    assert set(quotes) == {"AAPL", "MSFT", "GOOGL"}
    ws = await open_srv.client.ws_connect("/ws")
    assert (await recv(ws))["symbols"] == list(SYMS)
    # No token secret: tokens are not in use, and a client that sends one anyway is served.
    ws = await open_srv.client.ws_connect("/ws", params={"token": token(["AAPL"])})
    assert (await recv(ws))["symbols"] == list(SYMS)
    resp = await open_srv.client.get("/api/quotes", headers={"Authorization": "Bearer x"})
    assert resp.status == 200


# Secrets stay secret


async def test_tokens_never_reach_logs_or_error_bodies(
    srv: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [
        token(secret="another-secret-" + "w" * 30),
        mint_token(SECRET, now=time.time() - 120, ttl=60),
        "plain-wrong-token-value",
        ADMIN[:-1] + "!",
    ]
    bodies: list[str] = []
    for bad in secrets:
        for kw in (
            {"params": {"token": bad}},
            {"protocols": ("ticker.v1", f"bearer.{bad}")},
            {"protocols": (f"bearer.{bad}",)},
            {"protocols": ("chat", f"bearer.{bad}")},
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await srv.client.ws_connect("/ws", **kw)
        for path in ("/api/quotes", "/ws", "/api/ticks", "/api/replay"):
            resp = await srv.client.request(
                "POST" if path in ("/api/ticks", "/api/replay") else "GET",
                path,
                params={"token": bad},
                headers={"Authorization": f"Bearer {bad}"},
                data=b"[]",
            )
            assert resp.status in (400, 401), (path, resp.status)
            bodies.append(await resp.text() + str(resp.headers))
    # A good token too: it is used, never logged.
    good = token()
    ws = await srv.client.ws_connect("/ws", protocols=("ticker.v1", f"bearer.{good}"))
    await recv(ws)
    await ws.close()
    # Everything but the test harness's access log (pytest-aiohttp's runner writes one; `ticker
    # serve` does not: see tests/test_tls.py for the whole stderr of a real process).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert any(r.name == "aiohttp.access" for r in caplog.records), "logging was captured"
    for s in [*secrets, good, ADMIN, SECRET]:
        assert s not in logged
        assert all(s not in b for b in bodies)

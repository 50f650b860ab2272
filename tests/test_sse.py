"""``GET /sse``: the hub's messages as Server-Sent Events, read by independent clients (aiohttp's
client parsing the event stream by hand, and ``curl -N``), with resume by ``Last-Event-ID``
(also across a real server restart), tokens, origin/Host rules, connection limits, keep-alive
comments and slow consumers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS, ServerProcess
from tests.wsutil import Server, now_ms, tick, until
from ticker.config import HubConfig, ServerConfig
from ticker.core.auth import AuthConfig, mint_token
from ticker.core.events import Listing, News
from ticker.net import sse as sse_module
from ticker.net.server import HUB, create_app
from ticker_feeds.testing import FakeFeed

SYMS = ("AAPL", "MSFT")


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def obj(self) -> dict[str, Any]:
        out = orjson.loads(self.data)
        assert isinstance(out, dict)
        return out


class EventStream:
    """A minimal event-stream reader (the WHATWG parsing rules that matter here)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.comments: list[str] = []

    async def next(self, within: float = 2000 * MS) -> Event:
        ev = Event()
        data: list[str] = []
        async with asyncio.timeout(within):
            while True:
                raw = await self.resp.content.readline()
                if not raw:
                    raise EOFError("stream ended")
                line = raw.decode().rstrip("\n").rstrip("\r")
                if line == "":
                    if data:
                        ev.data = "\n".join(data)
                        return ev
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    ev.event = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    ev.id = value

    async def until(self, kind: str, within: float = 3000 * MS) -> Event:
        deadline = time.monotonic() + within
        while True:
            ev = await self.next(max(0.01, deadline - time.monotonic()))
            if ev.event == kind:
                return ev


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await Server.start(
        aiohttp_client,
        [Listing(SYMS), tick("AAPL", 100.0, size=1, bid=99.5), tick("MSFT", 200.0)],
    )


async def open_stream(srv: Server, query: str, **kw: Any) -> EventStream:
    resp = await srv.client.get(f"/sse?{query}", **kw)
    assert resp.status == 200, await resp.text()
    return EventStream(resp)


def news(headline: str, *symbols: str) -> News:
    return News(headline, now_ms(), "test", symbols)


async def test_a_stream_carries_the_websocket_messages_as_events(srv: Server) -> None:
    es = await open_stream(srv, "symbols=AAPL,MSFT&news=*&throttle_ms=20&fields=price")
    h = es.resp.headers
    assert h["Content-Type"].startswith("text/event-stream")
    assert h["Cache-Control"] == "no-cache" and h["X-Accel-Buffering"] == "no"
    assert h["Transfer-Encoding"] == "chunked"
    hello = await es.next()
    assert hello.event == "hello" and hello.obj["type"] == "hello" and hello.id is None
    assert hello.obj["symbols"] == list(SYMS)
    snap = await es.next()
    assert snap.event == "snapshot"
    assert snap.obj["quotes"]["AAPL"].keys() == {"symbol", "price", "ts"}, "fields=price"
    await srv.push(tick("AAPL", 101.0, bid=100.0))
    delta = await es.until("delta")
    assert delta.obj["seq"] == snap.obj["seq"] + 1
    assert delta.obj["quotes"]["AAPL"].keys() == {"price", "ts"}
    await srv.push(news("Apple up", "AAPL"))
    item = await es.until("news")
    assert item.obj["headline"] == "Apple up" and item.id == str(item.obj["id"])
    assert srv.hub.window_stats()[20][0] == 1, "a hub connection in the 20 ms window"


async def test_shutdown_ends_the_stream_with_its_reason(srv: Server) -> None:
    es = await open_stream(srv, "symbols=AAPL")
    await es.until("snapshot")
    await srv.hub.close_all()
    with pytest.raises(EOFError):
        await es.next()
    assert es.comments[-1] == "close 1001 server shutdown"
    await until(lambda: not srv.hub.clients, what="gone from the hub")


async def test_query_errors_are_400_before_any_stream(srv: Server) -> None:
    for q, word in [
        ("fields=colour", "change_pct"),
        ("throttle_ms=soon", "throttle_ms"),
        ("throttle_ms=-5", "ms"),
        ("news=*&since=x", "since"),
    ]:
        resp = await srv.client.get(f"/sse?{q}")
        assert resp.status == 400, q
        body = await resp.json()
        assert body["error"] == "bad_request" and word in body["message"], (q, body)
    # An unknown symbol is the WebSocket's answer: an error event, and the stream goes on.
    es = await open_stream(srv, "symbols=AAPL,NOPE")
    await es.until("hello")
    err = await es.until("error")
    assert err.obj["code"] == "unknown_symbol" and err.obj["symbols"] == ["NOPE"]
    await es.until("snapshot")


async def test_a_capped_stream(srv: Server) -> None:
    es = await open_stream(srv, "symbols=AAPL&max_bps=1500")
    await es.until("snapshot")
    (c,) = srv.hub.clients
    assert c.pacer is not None and c.pacer.max_bps == 1500 and c.session.window == 100
    await srv.push(tick("AAPL", 105.0))
    assert (await es.until("delta")).obj["quotes"]["AAPL"]["price"] == 105.0


async def test_last_event_id_resumes_news_nothing_missed_or_repeated(srv: Server) -> None:
    es = await open_stream(srv, "news=*")
    await es.until("hello")
    await srv.push(news("one"), news("two"))
    first = [await es.until("news") for _ in range(2)]
    es.resp.close()
    await srv.push(news("three"), news("four"))
    await until(lambda: len(srv.hub.clients) == 0, what="the stream is gone")
    es2 = await open_stream(srv, "news=*", headers={"Last-Event-ID": first[-1].id or ""})
    await es2.until("hello")
    rest = [await es2.until("news") for _ in range(2)]
    assert [e.obj["headline"] for e in first + rest] == ["one", "two", "three", "four"]
    ids = [int(e.id or 0) for e in first + rest]
    assert ids == sorted(set(ids))
    # `since` in the query does the same; Last-Event-ID wins over it.
    es3 = await open_stream(srv, f"news=*&since={ids[2]}")
    assert (await es3.until("news")).obj["headline"] == "four"


async def test_keepalive_comments(aiohttp_client: AiohttpClient, monkeypatch: Any) -> None:
    monkeypatch.setattr(sse_module, "KEEPALIVE_S", 0.05)
    client = await aiohttp_client(create_app([FakeFeed([Listing(SYMS)])]))
    resp = await client.get("/sse")
    es = EventStream(resp)
    await es.until("hello")
    with pytest.raises(TimeoutError):
        await es.next(within=0.3)
    assert es.comments and all(c == "" for c in es.comments)


async def test_tokens_origin_and_host_as_for_ws(aiohttp_client: AiohttpClient) -> None:
    secret = "test-secret-" + "q" * 32
    auth = AuthConfig(token_secret=secret, require_token=True)
    client = await aiohttp_client(create_app([FakeFeed([Listing(SYMS)])], auth=auth))
    hub = client.app[HUB]
    await until(lambda: bool(hub.book.known), what="listing")
    tok = mint_token(secret, now=time.time(), ttl=60.0, sub="carol", symbols=["MSFT"])
    assert (await client.get("/sse")).status == 401
    assert (await client.get("/sse?token=nope")).status == 401
    for resp in (
        await client.get("/sse", params={"token": tok}),
        await client.get("/sse", headers={"Authorization": f"Bearer {tok}"}),
    ):
        assert resp.status == 200
        hello = await EventStream(resp).until("hello")
        assert hello.obj["symbols"] == ["MSFT"], "entitlements apply"
        resp.close()
    bad_origin = {"Origin": "https://evil.example", "Authorization": f"Bearer {tok}"}
    assert (await client.get("/sse", headers=bad_origin)).status == 403
    assert (await client.get("/sse", headers={"Host": "evil.example:80"})).status == 421


async def test_connection_limits_count_streams(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(
        create_app([FakeFeed([Listing(SYMS)])], server=ServerConfig(max_connections_per_ip=1))
    )
    resp = await client.get("/sse")
    assert resp.status == 200
    await EventStream(resp).until("hello")
    second = await client.get("/sse")
    assert second.status == 429 and second.headers["Retry-After"]
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/ws")
    resp.close()
    hub = client.app[HUB]
    await until(lambda: not hub.clients, what="slot freed")
    resp = await client.get("/sse")
    assert resp.status == 200


async def test_a_stuck_stream_is_paused_then_closed(aiohttp_client: AiohttpClient) -> None:
    """A reader that stops reading is conflated, then closed like a WebSocket (1013), while
    another stream keeps receiving."""
    feed = FakeFeed([Listing(SYMS), tick("AAPL", 1.0)])
    app = create_app([feed], HubConfig(slow_close_after=0.5, throttle_ms=0))
    client = await aiohttp_client(app)
    hub = client.app[HUB]
    await until(lambda: "AAPL" in hub.book.known)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", client.port))
    sock.sendall(
        f"GET /sse?symbols=AAPL&news=* HTTP/1.1\r\nHost: 127.0.0.1:{client.port}\r\n\r\n".encode()
    )
    good = EventStream(await client.get("/sse?symbols=AAPL"))
    await good.until("snapshot")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    price = 1.0
    pad = "x" * 400
    while hub.stats["slow_closes"] == 0:
        assert loop.time() < deadline, dict(hub.stats)
        price += 0.01
        feed.push(tick("AAPL", round(price, 2)), News(pad, now_ms(), "t", ("AAPL",)))
        await asyncio.sleep(0.002)
        assert (await good.until("delta")).obj["quotes"]["AAPL"]["price"] > 1.0
    await until(lambda: len(hub.clients) == 1, what="the stuck stream dropped")
    sock.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_n(srv: Server) -> None:
    url = f"http://127.0.0.1:{srv.client.port}/sse?symbols=AAPL&throttle_ms=0"
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sN", url, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    try:
        lines = []
        async with asyncio.timeout(3):
            while b"event: snapshot\n" not in lines:
                lines.append(await proc.stdout.readline())
            await srv.push(tick("AAPL", 123.0))
            while not any(b'"price":123.0' in ln for ln in lines):
                lines.append(await proc.stdout.readline())
        assert lines[0] == b"event: hello\n" and lines[1].startswith(b'data: {"type":"hello"')
    finally:
        proc.kill()
        await proc.wait()


async def test_resume_across_a_server_restart() -> None:
    """News ids come from the wall clock: a stream resumed with Last-Event-ID on a restarted
    server gets every item that server has, none twice."""
    server = ServerProcess("--feed", "simnews:rate=1200", "--host", "127.0.0.1")
    port = server.port
    got: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"{server.url}/sse?news=*")
            es = EventStream(resp)
            while len(got) < 5:
                ev = await es.until("news", within=5)
                got.append({"id": int(ev.id or 0), **ev.obj})
            resp.close()
    finally:
        server.stop()
        server.close()
    last = got[-1]["id"]
    server = ServerProcess(
        "--feed", "simnews:rate=1200", "--host", "127.0.0.1", "--port", str(port)
    )
    try:
        await asyncio.sleep(0.3)  # (the new server publishes a few items first)
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"{server.url}/sse?news=*", headers={"Last-Event-ID": str(last)})
            es = EventStream(resp)
            await es.until("hello")
            after: list[int] = []
            while len(after) < 8:
                ev = await es.until("news", within=5)
                after.append(int(ev.id or 0))
            resp.close()
            retained = await (await http.get(f"{server.url}/api/news?since={last}")).json()
    finally:
        server.stop()
        server.close()
    ids = [g["id"] for g in got] + after
    assert ids == sorted(set(ids)), "increasing: nothing twice"
    # Nothing missed: what the new server retained after the last id seen, in order.
    kept = [n["id"] for n in retained["items"]]
    assert kept[: len(after)] == after

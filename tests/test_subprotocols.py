"""Subprotocol negotiation and the MessagePack encoding (``ticker.v1.msgpack``), against a real
server, with an independent client: the ``websockets`` library offering subprotocols, and
``msgspec`` decoding MessagePack. Every message type arrives equal to its JSON twin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings, strategies as st
from pytest_aiohttp import AiohttpClient
from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.typing import Subprotocol

from tests.conftest import MS
from tests.hubsim import Sim
from tests.wsutil import Server, now_ms, tick
from ticker.config import HubConfig
from ticker.core.auth import AuthConfig, mint_token
from ticker.core.events import Listing, News, Tick
from ticker.core.wire import WS_MSGPACK, select_subprotocol
from ticker.net.server import create_app

SYMS = ("AAPL", "MSFT")
Frame = dict[str, Any]


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await Server.start(
        aiohttp_client, [Listing(SYMS), tick("AAPL", 100.0, size=1), tick("MSFT", 200.0)]
    )


def url(srv: Server) -> str:
    return f"ws://127.0.0.1:{srv.client.port}/ws"


def offer(*names: str) -> list[Subprotocol]:
    return [Subprotocol(n) for n in names]


async def recv_any(ws: ClientConnection, within: float = 2000 * MS) -> Frame:
    """The next message, decoded: MessagePack from a binary frame, JSON from a text frame."""
    data = await asyncio.wait_for(ws.recv(), within)
    obj = msgspec.msgpack.decode(data) if isinstance(data, bytes) else orjson.loads(data)
    assert isinstance(obj, dict), obj
    return obj


async def send_msgpack(ws: ClientConnection, obj: Frame) -> None:
    await ws.send(msgspec.msgpack.encode(obj))


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        (("ticker.v1.msgpack", "ticker.v1"), "ticker.v1.msgpack"),
        (("ticker.v1", "ticker.v1.msgpack"), "ticker.v1"),
        (("chat", "ticker.v1.msgpack"), "ticker.v1.msgpack"),
        (("chat", "v2.ticker"), None),
        ((), None),
    ],
)
async def test_the_first_supported_offer_in_the_clients_order_wins(
    srv: Server, offered: Sequence[str], selected: str | None
) -> None:
    async with ws_connect(url(srv), subprotocols=offer(*offered) or None, proxy=None) as ws:
        assert ws.subprotocol == selected
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Protocol") == selected
        data = await ws.recv()
        # The encoding follows the protocol: binary MessagePack, else JSON text.
        assert isinstance(data, bytes) == (selected == "ticker.v1.msgpack")
        hello = msgspec.msgpack.decode(data) if isinstance(data, bytes) else orjson.loads(data)
        assert hello["type"] == "hello" and hello["symbols"] == list(SYMS)


def test_select_subprotocol_is_client_order() -> None:
    assert select_subprotocol(["x", "ticker.v1", "ticker.v1.msgpack"]) == "ticker.v1"
    assert select_subprotocol(["bearer.abc"]) is None


async def _script(ws: ClientConnection, binary: bool) -> None:
    """The same requests from either client (MessagePack binary frames or JSON text)."""
    requests: list[Frame] = [
        {"op": "subscribe", "symbols": ["AAPL", "NOPE"], "id": 1},
        {"op": "news", "topics": ["*"], "id": 2},
        {"op": "bars", "symbol": "AAPL", "interval": "1s", "id": 3},
        {"op": "ping", "t": 12.5},
        {"op": "resync", "id": 4},
    ]
    for r in requests:
        if binary:
            await send_msgpack(ws, r)
        else:
            await ws.send(orjson.dumps(r).decode())


async def _collect(ws: ClientConnection, want: set[str], within: float = 3000 * MS) -> list[Frame]:
    seen: list[Frame] = []
    deadline = time.monotonic() + within
    while not want <= {f["type"] for f in seen}:
        assert time.monotonic() < deadline, [f["type"] for f in seen]
        seen.append(await recv_any(ws, deadline - time.monotonic()))
    return seen


async def test_every_message_type_arrives_equal_to_its_json_twin(srv: Server) -> None:
    """A JSON client and a MessagePack client (sending its ops as MessagePack) make the same
    requests in the same window: each message type decodes to the same object."""
    async with (
        ws_connect(url(srv), subprotocols=offer("ticker.v1"), proxy=None) as js,
        ws_connect(url(srv), subprotocols=offer("ticker.v1.msgpack"), proxy=None) as mp,
    ):
        hello_j, hello_m = await recv_any(js), await recv_any(mp)
        assert hello_j.pop("session") != hello_m.pop("session")
        assert hello_j == hello_m
        await _script(js, binary=False)
        await _script(mp, binary=True)
        first = {"ack", "error", "snapshot", "bars", "pong"}
        got_j, got_m = await _collect(js, first), await _collect(mp, first)
        assert got_j == got_m
        await srv.push(tick("AAPL", 101.5, size=3), tick("AAPL", 101.25, size=2))
        await srv.push(News("Apple beats", now_ms(), "test", ("AAPL",), url="https://x.test/1"))
        live = {"delta", "bar", "news"}
        got_j, got_m = await _collect(js, live), await _collect(mp, live)
        for kind in live:
            j = [f for f in got_j if f["type"] == kind]
            m = [f for f in got_m if f["type"] == kind]
            assert j[0] == m[0], kind
        # Floats stay floats, integers integers: the same Python values, not just equal ones.
        delta = next(f for f in got_m if f["type"] == "delta")
        assert isinstance(delta["seq"], int) and isinstance(delta["t"], float)
        assert delta["quotes"]["AAPL"]["w_count"] == 2


async def test_msgpack_connection_takes_json_text_too(srv: Server) -> None:
    async with ws_connect(url(srv), subprotocols=offer("ticker.v1.msgpack"), proxy=None) as ws:
        await recv_any(ws)
        await ws.send('{"op":"ping","t":1.0}')
        assert await ws.recv() == msgspec.msgpack.encode({"type": "pong", "t": 1.0})


async def test_bad_msgpack_is_bad_json_and_the_connection_stays(srv: Server) -> None:
    async with ws_connect(url(srv), subprotocols=offer("ticker.v1.msgpack"), proxy=None) as ws:
        await recv_any(ws)
        # Not MessagePack, truncated, trailing bytes:
        for bad in (b"\xc1", b"\x81\xa2op", b"\x92\x01\x02\x03"):
            await ws.send(bad)
            err = await recv_any(ws)
            assert err["type"] == "error" and err["code"] == "bad_json", (bad, err)
        # MessagePack, but not a request: not a map, a non-string op, a map with an array key.
        await ws.send(msgspec.msgpack.encode(["not", "a", "map"]))
        assert (await recv_any(ws))["code"] == "bad_request"
        await ws.send(b"\x81\x91\x01\x01")
        assert (await recv_any(ws))["code"] == "bad_request"
        await send_msgpack(ws, {"op": b"ping"})
        assert (await recv_any(ws))["code"] == "bad_request"
        await send_msgpack(ws, {"op": "ping", "t": 2.0})
        assert await recv_any(ws) == {"type": "pong", "t": 2.0}


async def test_json_connection_still_refuses_binary_frames(srv: Server) -> None:
    async with ws_connect(url(srv), subprotocols=offer("ticker.v1"), proxy=None) as ws:
        await recv_any(ws)
        await send_msgpack(ws, {"op": "ping", "t": 2.0})
        err = await recv_any(ws)
        assert err["code"] == "bad_request" and "binary" in err["message"]


async def test_bearer_token_beside_msgpack(aiohttp_client: AiohttpClient) -> None:
    secret = "test-secret-" + "q" * 32
    auth = AuthConfig(token_secret=secret, require_token=True)
    client = await aiohttp_client(create_app([], auth=auth))
    tok = mint_token(secret, now=time.time(), ttl=60.0, sub="bob", symbols=["AAPL"])
    uri = f"ws://127.0.0.1:{client.port}/ws"
    async with ws_connect(
        uri, subprotocols=offer("ticker.v1.msgpack", f"bearer.{tok}"), proxy=None
    ) as ws:
        assert ws.subprotocol == "ticker.v1.msgpack"
        hello = await recv_any(ws)
        assert hello["type"] == "hello"


# The whole hub on a manual clock (tests/hubsim.py): a JSON and a MessagePack connection with the
# same history, pauses and catch-ups included, read equal messages.

SIM_SYMS = ["AAPL", "MSFT", "GOOGL"]

sim_steps = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.sampled_from(SIM_SYMS), st.floats(1, 500)),
        st.tuples(st.just("news"), st.sampled_from(SIM_SYMS), st.just(0.0)),
        st.tuples(st.just("wait"), st.just(""), st.floats(0.0, 0.3)),
        st.tuples(st.just("stall"), st.just(""), st.integers(0, 1).map(float)),
        st.tuples(st.just("ask"), st.sampled_from(["resync", "throttle", "fields"]), st.just(0.0)),
    ),
    min_size=5,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(sim_steps)
def test_json_and_msgpack_twins_through_pauses_and_catch_ups(steps: list[Any]) -> None:
    sim = Sim(HubConfig(flow_hold_ms=0, throttle_ms=50), SIM_SYMS)
    for s in SIM_SYMS:
        sim.hub.publish(Tick(s, 100.0, 1.7e12))
    twins = [sim.connect(), sim.connect(wire=WS_MSGPACK)]
    requests: dict[str, Frame] = {
        "resync": {"op": "resync", "id": 1},
        "throttle": {"op": "throttle", "ms": 100, "id": 2},
        "fields": {"op": "fields", "fields": ["price", "volume"], "id": 3},
    }
    for conn in twins:
        conn.send({"op": "subscribe", "symbols": ["*"], "id": 0})
        conn.send({"op": "news", "topics": ["*"]})
    for i, (kind, arg, x) in enumerate(steps):
        if kind == "tick":
            sim.hub.publish(Tick(arg, round(x, 2), 1.7e12 + i, size=1.0))
        elif kind == "news":
            sim.hub.publish(News(f"n{i}", 1.7e12 + i, "t", (arg,)))
        elif kind == "wait":
            sim.loop.advance(x)
            sim.hub.housekeep()
        elif kind == "stall":  # both stop reading (paused), or drain again
            for conn in twins:
                conn.transport.unsent = int(x) * 10**7
        else:
            twins[0].send(requests[arg])
            binary = msgspec.msgpack.encode(requests[arg])
            twins[1].read()
            sim.hub.receive(twins[1].client, binary, binary=True)
    for conn in twins:
        conn.transport.unsent = 0
    sim.loop.advance(1.0)
    sim.hub.housekeep()
    for conn in twins:
        conn.read()
    js, mp = twins[0].frames, twins[1].frames

    def same(f: Frame) -> Frame:  # (session ids differ; a catch-up's t is its own send time)
        return {k: v for k, v in f.items() if k not in ("session", "t")}

    assert [same(f) for f in js] == [same(f) for f in mp]
    assert twins[0].quotes == twins[1].quotes

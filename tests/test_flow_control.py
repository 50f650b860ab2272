"""Window-0 flow control: a client whose last frame is still unread is held, not flooded.

After a frame the hub pings a throttle-0 connection; until the pong comes back (proof the client
has read everything before it) and for longer than ``flow_hold_ms``, whatever arrives is conflated
and then sent as one delta of the fields that changed since the client's last frame. A client
that keeps up never notices.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from tests.test_slow_consumer import SYMS, Producer, Reader, healthz, hub_client
from tests.wsutil import Frame, RawWebSocket, Server, apply_frame, now_ms, recv, until
from ticker.config import HubConfig
from ticker.core.book import compact
from ticker.core.events import Listing
from ticker.hub.flow import FlowState


async def test_stalled_reader_is_held_then_caught_up_with_one_delta(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await Server.start(aiohttp_client, [Listing(SYMS)], HubConfig(slow_close_after=60.0))
    normal, _ = await srv.subscribed(["*"], throttle_ms=0)
    reader = Reader(normal)
    producer = Producer(srv)  # ~5,000 ticks/s
    producer.start()
    port = srv.client.port
    assert port is not None
    raw = await RawWebSocket.connect("127.0.0.1", port)
    hello = await raw.recv_json()
    c = hub_client(srv, hello["session"])
    await raw.send_json({"op": "throttle", "ms": 0, "id": 1})
    assert (await raw.recv_json())["type"] == "ack"
    await raw.send_json({"op": "subscribe", "symbols": ["*"], "id": 2})
    assert (await raw.recv_json())["type"] == "ack"
    frames: list[Frame] = [await raw.recv_json()]
    assert frames[0]["type"] == "snapshot"

    # It stops reading (and so never answers the ping behind its last frame): held.
    await until(lambda: c.flow.state is FlowState.HELD, what="held")
    assert (await healthz(srv))["held"] == 1
    sizes = []
    for _ in range(40):
        sizes.append(c.transport.get_write_buffer_size())
        await asyncio.sleep(0.01)
    assert max(sizes) <= 32 * 1024, "nothing piles up for it"
    before = len(reader.frames)
    await until(lambda: len(reader.frames) > before + 10, what="the normal client is served")

    # Reading again (answering the ping): what was in flight, then one delta of every symbol it
    # missed, with just the fields changed since its last frame, fresh; then it is clocked again.
    caught = srv.hub.stats["catchup_deltas"]
    while srv.hub.stats["catchup_deltas"] == caught:
        frames.append(await raw.recv_json())
    target = c.flow.seq
    while frames[-1].get("seq", 0) < target:
        frames.append(await raw.recv_json())
    up = frames[-1]
    assert up["type"] == "delta" and up["seq"] == target
    assert set(up["quotes"]) == set(SYMS)
    assert "symbol" not in up["quotes"][SYMS[0]], "changed fields only, not whole quotes"
    newest = max(q["ts"] for q in up["quotes"].values())
    assert now_ms() - newest < 1000 * MS * 1000, "fresh, not a backlog"
    assert srv.hub.stats["flow_catchups"] >= 1
    await producer.stop()
    await raw.send_json({"op": "ping", "t": 1})
    while (f := await raw.recv_json())["type"] != "pong":
        frames.append(f)
    seqs = [f["seq"] for f in frames if f["type"] in ("delta", "snapshot")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    state: dict[str, dict[str, Any]] = {}
    for f in frames:
        apply_frame(state, f)
    await until(lambda: not c.flow.missed, what="caught up")
    assert state == {s: compact(dict(q)) for s, q in srv.hub.book.quotes.items()}  # (as sent)
    raw.close()
    await reader.stop()


async def test_a_slow_reader_gets_fewer_fresher_frames(aiohttp_client: AiohttpClient) -> None:
    """A client that needs 30 ms per frame at 5,000 ticks/s: conflated, never seconds behind."""
    srv = await Server.start(aiohttp_client, [Listing(SYMS)])
    ws, snap = await srv.subscribed(["*"], throttle_ms=0)
    state: dict[str, dict[str, Any]] = {}
    apply_frame(state, snap)
    producer = Producer(srv)
    producer.start()
    lags = []
    kinds: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5
    while loop.time() < end:
        msg = await ws.receive(timeout=2)  # answers pings as it reads
        assert msg.type is aiohttp.WSMsgType.TEXT
        f = orjson.loads(msg.data)
        kinds[f["type"]] = kinds.get(f["type"], 0) + 1
        apply_frame(state, f)
        lags.append(now_ms() - max(q["ts"] for q in f["quotes"].values()))
        await asyncio.sleep(0.03)  # slow work per frame
    await producer.stop()
    frames = sum(kinds.values())
    assert frames < producer.n / 5, "conflated: far fewer frames than ticks"
    assert srv.hub.stats["catchup_deltas"] >= 1, "caught up by deltas while held"
    assert "snapshot" not in kinds, "a held client needs no snapshot"
    lags.sort()
    assert lags[len(lags) // 2] < 500 * MS * 1000, lags
    # Drain to the end: its state is the server's.
    while True:
        try:
            msg = await ws.receive(timeout=0.3)
        except TimeoutError:
            break
        apply_frame(state, orjson.loads(msg.data))
    assert state == {s: compact(dict(q)) for s, q in srv.hub.book.quotes.items()}  # (as sent)
    await ws.close()


async def test_never_answering_pings_is_closed_1013(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(aiohttp_client, [Listing(SYMS)], HubConfig(slow_close_after=0.3))
    producer = Producer(srv)
    producer.start()
    port = srv.client.port
    assert port is not None
    raw = await RawWebSocket.connect("127.0.0.1", port)
    await raw.recv_json()
    await raw.send_json({"op": "throttle", "ms": 0})
    await raw.send_json({"op": "subscribe", "symbols": ["*"]})
    await until(lambda: srv.hub.stats.get("closed_1013", 0) == 1, what="closed 1013")
    while True:
        op, payload = await raw.recv_frame()
        if op == 0x8:
            break
    assert int.from_bytes(payload[:2], "big") == 1013
    raw.close()
    await producer.stop()


async def test_flow_control_can_be_turned_off(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(aiohttp_client, [Listing(SYMS)], HubConfig(flow_hold_ms=0))
    ws, _ = await srv.subscribed(["*"], throttle_ms=0)
    producer = Producer(srv)
    producer.start()
    await asyncio.sleep(0.3)
    await producer.stop()
    kinds: dict[str, int] = {}
    while True:
        try:
            f = await recv(ws, within=0.3)
        except TimeoutError:
            break
        kinds[f["type"]] = kinds.get(f["type"], 0) + 1
    assert kinds.get("delta", 0) > 5 and "snapshot" not in kinds
    assert srv.hub.stats.get("flow_catchups", 0) == 0
    await ws.close()

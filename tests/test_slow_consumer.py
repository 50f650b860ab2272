"""Slow consumers: a client that stops reading while ticks flow at ~5,000/s.

The slow client is :class:`~tests.wsutil.RawWebSocket`: a plain socket with a small receive buffer
that reads only when the test says so, so it truly stops draining TCP (no library reads ahead for
it). The server's side of each WebSocket has a small SO_SNDBUF
(``ServerConfig.socket_send_buffer``), so a stalled reader shows up as unsent bytes in the server's
transport within a frame or two.

These tests exercise the buffer-bound mechanism (pause, catch-up snapshot, 1013) on its own, so
they turn window-0 flow control off (``flow_hold_ms=0``), which would otherwise hold a stalled
window-0 reader before its buffer ever fills; tests/test_flow_control.py covers that path.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS, ServerProcess
from tests.wsutil import Frame, RawWebSocket, Server, apply_frame, now_ms, recv, until
from ticker.config import HubConfig, ServerConfig
from ticker.core.book import compact
from ticker.core.events import Listing, News, Tick
from ticker.hub.broadcaster import Client
from ticker.hub.flow import FlowState

SYMS = tuple(f"S{i:03d}" for i in range(50))
RATE = 5000  # ticks per second
STEP = 0.01  # one batch of RATE * STEP ticks every STEP seconds
BOUND = 64 * 1024


class Producer:
    """Pushes ~RATE ticks/s into a FakeFeed, in batches, on a steady clock."""

    def __init__(self, srv: Server, symbols: tuple[str, ...] = SYMS) -> None:
        self.srv = srv
        self.symbols = symbols
        self.n = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        batch = int(RATE * STEP)
        nsym = len(self.symbols)
        t = loop.time()
        while True:
            ts = now_ms()
            ticks = []
            for i in range(self.n, self.n + batch):
                price = 100.0 + (i * 7919 % 1000) / 100.0
                ticks.append(
                    Tick(
                        self.symbols[i % nsym],
                        price,
                        ts,
                        size=1.0,
                        bid=price - 0.01,
                        ask=price + 0.01,
                    )
                )
            self.srv.feed.push(*ticks)
            self.n += batch
            t += STEP
            await asyncio.sleep(max(0.0, t - loop.time()))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        await until(
            lambda: self.srv.runner.events >= self.srv_base + self.n, what="all ticks published"
        )

    @property
    def srv_base(self) -> int:
        return 1  # the Listing


class Reader:
    """Keeps reading an aiohttp websocket, stamping each frame with its arrival time (ms)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[tuple[float, Frame]] = []
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames.append((now_ms(), orjson.loads(msg.data)))

    def deltas_between(self, start: float, end: float) -> list[tuple[float, Frame]]:
        return [(t, f) for t, f in self.frames if start <= t < end and f["type"] == "delta"]

    async def stop(self) -> None:
        await self.ws.close()
        await self.task


def staleness(at: float, frame: Frame) -> float:
    """How old the newest tick in a delta was when it arrived (ms)."""
    newest: float = max(q["ts"] for q in frame["quotes"].values())
    return at - newest


def paused(c: Client) -> bool:
    """Whether the hub has paused ``c`` (a slow consumer)."""
    return c.flow.state is FlowState.PAUSED


def hub_client(srv: Server, session: str) -> Client:
    (c,) = [c for c in srv.hub.clients if c.session.id == session]
    return c


async def stalled_client(
    srv: Server,
    news: bool = False,
) -> tuple[RawWebSocket, Client, list[Frame]]:
    """A raw client subscribed to everything at throttle 0 (and news), then no longer reading.

    Returns the socket, the hub's view of it and the frames it read (up to its snapshot)."""
    port = srv.client.port
    assert port is not None
    raw = await RawWebSocket.connect("127.0.0.1", port)
    hello = await raw.recv_json()
    c = hub_client(srv, hello["session"])
    await raw.send_json({"op": "throttle", "ms": 0, "id": 1})
    assert await raw.recv_json() == {"type": "ack", "id": 1, "ms": 0}
    if news:
        await raw.send_json({"op": "news", "topics": ["*"], "id": 2})
        assert (await raw.recv_json())["type"] == "ack"
    await raw.send_json({"op": "subscribe", "symbols": ["*"], "id": 3})
    assert (await raw.recv_json())["type"] == "ack"
    frames = [await raw.recv_json()]
    assert frames[0]["type"] == "snapshot"
    return raw, c, frames


async def healthz(srv: Server) -> dict[str, Any]:
    r = await srv.client.get("/healthz")
    body: dict[str, Any] = await r.json()
    return body


async def wait_slow(srv: Server, n: int = 1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5000 * MS
    while (await healthz(srv))["slow_consumers"] < n:
        assert loop.time() < deadline, "the stalled client was never marked slow"
        await asyncio.sleep(0.02)


async def test_slow_reader_is_bounded_others_unaffected_then_caught_up(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await Server.start(
        aiohttp_client, [Listing(SYMS)], HubConfig(slow_close_after=60.0, flow_hold_ms=0)
    )
    normal, _ = await srv.subscribed(["*"], throttle_ms=0)
    reader = Reader(normal)
    producer = Producer(srv)
    producer.start()
    await asyncio.sleep(0.3)
    base_start = now_ms()
    await asyncio.sleep(0.4)
    base_end = now_ms()

    raw, c, frames = await stalled_client(srv, news=True)
    await wait_slow(srv)
    stall_start = now_ms()
    # News while stalled: not sent now, replayed in order after the catch-up.
    headlines = [f"while stalled {i}" for i in range(5)]
    for h in headlines:
        srv.feed.push(News(h, now_ms(), "test", ("S001",)))
        await asyncio.sleep(0.02)
    sizes = []
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.6
    while loop.time() < end:
        sizes.append(c.transport.get_write_buffer_size())
        await asyncio.sleep(0.01)
    stall_end = now_ms()
    assert producer.n >= 0.5 * RATE * (stall_end - base_start) / 1000, "ticks kept flowing"
    assert paused(c), "still stuck"

    # Bounded: what the server holds for it is at most about one frame, not a backlog.
    assert max(sizes) <= 32 * 1024, max(sizes)
    assert (await healthz(srv))["slow_consumers"] == 1

    # The normal client kept receiving, just as fresh as before.
    base = reader.deltas_between(base_start, base_end)
    during = reader.deltas_between(stall_start, stall_end)
    assert len(base) > 10 and len(during) > 10
    rate_base = len(base) / (base_end - base_start)
    rate_during = len(during) / (stall_end - stall_start)
    assert rate_during > 0.5 * rate_base, (rate_base, rate_during)
    stale_base = sorted(staleness(t, f) for t, f in base)
    stale_during = sorted(staleness(t, f) for t, f in during)
    p90_base = stale_base[int(len(stale_base) * 0.9)]
    p90_during = stale_during[int(len(stale_during) * 0.9)]
    assert p90_during <= p90_base + 100 * MS * 1000, (stale_base, stale_during)
    normal_bytes = sum(len(orjson.dumps(f)) for _, f in during)
    seqs = [f["seq"] for _, f in reader.frames if f["type"] in ("delta", "snapshot")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

    # Reading again: the little that was in flight, then one delta of everything that changed
    # meanwhile (not a backlog of every delta), then live deltas.
    resumed = len(frames)
    read_before = raw.bytes_read
    caught = srv.hub.stats["catchup_deltas"]
    while srv.hub.stats["catchup_deltas"] == caught:
        frames.append(await raw.recv_json())
    target = c.flow.seq  # the catch-up delta's seq
    while not frames or frames[-1].get("seq", 0) < target:
        frames.append(await raw.recv_json())
    backlog = raw.bytes_read - read_before
    catch_up = len(frames) - 1
    assert backlog < normal_bytes / 2, "conflated, not a backlog of every delta"
    up = frames[catch_up]
    assert up["type"] == "delta" and up["seq"] == target
    assert set(up["quotes"]) == set(SYMS), "every symbol it missed"
    assert staleness(now_ms(), up) < 1000 * MS * 1000, "fresh, not a backlog"
    while (f := await raw.recv_json())["type"] != "delta":
        frames.append(f)
    frames.append(f)
    assert srv.hub.stats["slow_resyncs"] >= 1
    await producer.stop()
    await raw.send_json({"op": "ping", "t": 1})
    while (f := await raw.recv_json())["type"] != "pong":
        frames.append(f)
    assert not paused(c)
    assert (await healthz(srv))["slow_consumers"] == 0

    # seq is continuous on the slow connection, and snapshot + deltas = the server's state.
    seqs = [f["seq"] for f in frames if f["type"] in ("delta", "snapshot")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    state: dict[str, dict[str, Any]] = {}
    for f in frames:
        apply_frame(state, f)
    assert state == {s: compact(dict(q)) for s, q in srv.hub.book.quotes.items()}  # (as sent)
    # No news lost or repeated: replayed in order after the catch-up.
    news = [f for f in frames if f["type"] == "news"]
    assert [n["headline"] for n in news] == headlines
    assert frames.index(news[0]) > catch_up > resumed
    raw.close()
    await reader.stop()


async def test_stuck_past_slow_close_after_is_closed_1013(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(
        aiohttp_client,
        [Listing(SYMS)],
        HubConfig(max_buffer_bytes=BOUND, slow_close_after=0.3, flow_hold_ms=0),
    )
    normal, _ = await srv.subscribed(["*"], throttle_ms=0)
    reader = Reader(normal)
    producer = Producer(srv)
    producer.start()
    raw, c, _ = await stalled_client(srv)
    await wait_slow(srv)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3000 * MS
    while (await healthz(srv))["stats"].get("slow_closes", 0) < 1:
        assert loop.time() < deadline, "never closed"
        await asyncio.sleep(0.02)
    # The close frame is queued behind the bounded backlog: read up to it.
    while True:
        op, payload = await raw.recv_frame()
        if op == 0x8:
            break
        assert op == 0x1
    assert int.from_bytes(payload[:2], "big") == 1013
    await raw.send_frame(0x8, payload[:2])
    raw.close()
    await until(lambda: c not in srv.hub.clients, what="the slow client forgotten")
    assert srv.hub.stats["closed_1013"] == 1
    # The normal client is still served.
    before = len(reader.frames)
    await until(lambda: len(reader.frames) > before + 5, what="normal client deltas")
    assert not normal.closed
    await producer.stop()
    await reader.stop()


async def test_stalled_client_cannot_grow_buffer_with_snapshot_requests(
    aiohttp_client: AiohttpClient,
) -> None:
    many = tuple(f"X{i:04d}" for i in range(1000))
    srv = await Server.start(
        aiohttp_client,
        [Listing(many)]
        + [
            Tick(s, 10.0 + i / 100, now_ms(), bid=9.9, ask=10.1, size=1.0)
            for i, s in enumerate(many)
        ],
        HubConfig(max_buffer_bytes=BOUND, slow_close_after=60.0, flow_hold_ms=0),
    )
    raw, c, _ = await stalled_client(srv)
    snapshot_bytes = srv.hub.stats["bytes_sent"]
    assert snapshot_bytes > 100_000, "a snapshot of everything is big"
    # Twenty resyncs and twenty re-subscribes (within the rate limit's burst), none read:
    # unbounded, that would be 40 snapshots (~6 MB) queued in the server for this socket.
    for _ in range(20):
        await raw.send_json({"op": "resync"})
        await raw.send_json({"op": "subscribe", "symbols": ["*"]})
    await raw.send_json({"op": "ping", "t": 1})
    stats = srv.hub.stats
    await until(
        lambda: stats["snapshots_sent"] + stats["snapshots_deferred"] >= 41,
        what="all requests served",
    )
    assert stats["error_rate_limited"] == 0
    assert c.transport.get_write_buffer_size() <= BOUND + snapshot_bytes
    assert paused(c), "paused"
    # Reading again: the little that was queued, the pong, then one fresh snapshot.
    frames = []
    while (f := await raw.recv_json())["type"] != "pong":
        frames.append(f)
    assert sum(f["type"] == "snapshot" for f in frames) <= 2
    snap = await raw.recv_json()
    assert snap["type"] == "snapshot" and len(snap["quotes"]) == len(many)
    assert stats["slow_resyncs"] == 1
    raw.close()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
async def test_server_process_memory_stays_bounded(
    ticker_server: type[ServerProcess], tmp_path: Path
) -> None:
    """``ticker serve`` at 5,000 ticks/s; a stalled client asks for hundreds of big snapshots
    (its rate limit raised in the config so it may): the server's RSS does not follow."""
    cfg = tmp_path / "slow.toml"
    cfg.write_text(
        'feeds = ["sim:symbols=2000,rate=5000,seed=3"]\n'
        "[server]\nmax_buffer_bytes = 262144\nslow_close_after = 60.0\n"
        "rate = 1000.0\nburst = 1000.0\n"
    )
    server = ticker_server("--config", str(cfg))
    assert server.proc is not None
    pid = server.proc.pid
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:

        async def health() -> dict[str, Any]:
            async with http.get(server.url + "/healthz") as r:
                body: dict[str, Any] = await r.json()
                return body

        normal = await http.ws_connect(server.ws_url)
        assert (await recv(normal))["type"] == "hello"
        await normal.send_json({"op": "subscribe", "symbols": ["*"]})
        assert (await recv(normal))["type"] == "snapshot"
        reader = Reader(normal)
        deadline = loop.time() + 5000 * MS
        while True:  # let the book fill up, so that a snapshot of "*" is big
            async with http.get(server.url + "/api/quotes") as r:
                if len((await r.json())["quotes"]) >= 800:
                    break
            assert loop.time() < deadline
            await asyncio.sleep(0.05)

        raw = await RawWebSocket.connect("127.0.0.1", server.port)
        await raw.recv_json()
        await raw.send_json({"op": "throttle", "ms": 0, "id": 1})
        assert (await raw.recv_json())["type"] == "ack"
        await raw.send_json({"op": "subscribe", "symbols": ["*"], "id": 2})
        assert (await raw.recv_json())["type"] == "ack"
        before = raw.bytes_read
        assert (await raw.recv_json())["type"] == "snapshot"
        snapshot_bytes = raw.bytes_read - before
        assert snapshot_bytes > 100_000
        rss0 = rss_bytes(pid)
        # Now stalled, asking for 400 snapshots (~40+ MB if each were queued), reading nothing.
        n = 400
        for _ in range(n):
            await raw.send_json({"op": "resync"})
        deadline = loop.time() + 5000 * MS
        while True:
            h = await health()
            st = h["stats"]
            if st.get("snapshots_sent", 0) + st.get("snapshots_deferred", 0) >= n + 2:
                break
            assert loop.time() < deadline, h
            await asyncio.sleep(0.05)
        assert h["slow_consumers"] == 1
        assert st.get("error_rate_limited", 0) == 0
        peak = rss0
        end = loop.time() + 0.5
        while loop.time() < end:
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.05)
        assert peak - rss0 < n * snapshot_bytes / 4, (rss0, peak, snapshot_bytes)
        # The normal client kept getting fresh prices all along.
        recent = [(t, f) for t, f in reader.frames if f["type"] == "delta" and t > now_ms() - 1000]
        assert recent, "the normal client is still served"
        assert max(staleness(t, f) for t, f in recent) < 1000 * MS * 1000
        raw.close()
        await reader.stop()
    assert server.stop() == 0


async def test_big_news_replay_is_paced_and_complete(aiohttp_client: AiohttpClient) -> None:
    """A ``since`` replay larger than the buffer bound goes out in bounded slices; news that
    arrives meanwhile follows it: every item exactly once, in id order."""
    srv = await Server.start(
        aiohttp_client,
        [Listing(("AAPL",))],
        HubConfig(news_retain=5000, max_buffer_bytes=BOUND, flow_hold_ms=0),
    )
    summary = "x" * 1000
    await srv.push(
        *(News(f"old {i}", now_ms(), "test", ("AAPL",), summary=summary) for i in range(600))
    )
    ws, _ = await srv.connect()
    await ws.send_json({"op": "news", "topics": ["*"], "since": 0, "id": 1})
    ack = await recv(ws)
    assert ack["type"] == "ack" and ack["oldest_id"] == srv.hub.news[0][0]
    got: list[Frame] = []
    live_sent = 0
    while len(got) < 600 + 20:
        f = await recv(ws)
        assert f["type"] == "news", f
        got.append(f)
        if len(got) % 30 == 0 and live_sent < 20:  # live news while the replay is under way
            srv.feed.push(
                *(News(f"live {live_sent + i}", now_ms(), "test", ("AAPL",)) for i in range(5))
            )
            live_sent += 5
    ids = [f["id"] for f in got]
    assert ids == sorted(set(ids)), "in order, no duplicates"
    assert [f["headline"] for f in got] == [f"old {i}" for i in range(600)] + [
        f"live {i}" for i in range(20)
    ]
    assert srv.hub.stats["slow_behind"] >= 1, "the replay really was paced (non-vacuous)"
    await ws.send_json({"op": "ping", "t": 1})
    assert await recv(ws) == {"type": "pong", "t": 1}, "nothing more"


async def test_dead_peer_is_dropped_by_heartbeat(aiohttp_client: AiohttpClient) -> None:
    srv = await Server.start(
        aiohttp_client, [Listing(("AAPL",))], server=ServerConfig(heartbeat_s=0.2)
    )
    port = srv.client.port
    assert port is not None
    alive, _ = await srv.connect()
    reader = Reader(alive)  # aiohttp answers pings while it reads
    dead = await RawWebSocket.connect("127.0.0.1", port)  # never answers
    assert (await dead.recv_json())["type"] == "hello"
    await until(lambda: len(srv.hub.clients) == 1, within=3000 * MS, what="dead peer dropped")
    await asyncio.sleep(0.5)  # a few more heartbeats: the live one stays
    await alive.send_json({"op": "ping", "t": 1})
    await until(lambda: any(f["type"] == "pong" for _, f in reader.frames), what="pong")
    assert len(srv.hub.clients) == 1
    dead.close()
    await reader.stop()

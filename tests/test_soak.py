"""Soak: 300 clients connecting and disconnecting at random for a while, then nothing leaked.

A real ``ticker serve`` process (sim + simnews). 300 client slots each connect, subscribe to a
random set (or ``"*"``), pick a random window and news topics, read for a random while (some
slowly), and leave (a clean close, an abort without a close frame, or a socket that stopped
reading), over and over. ``make test`` runs it for 15 s; ``make soak`` for ``TICKER_SOAK_S``
seconds (default 600).

Method: the server keeps tiny bounds on the data it is meant to retain (10 ticks per symbol, 20
news items), full within the warm-up, so growth can only come from connections. A 10 s warm-up
of the same workload with 400 clients (more than the soak's 300, so imports, caches and the
allocator's high-water mark are in the baseline); then the baseline of the server process: its
asyncio tasks (``/healthz`` ``tasks``), open file descriptors (``/proc/PID/fd``), established
TCP sockets on its port (``/proc/net/tcp*``) and resident memory (``VmRSS``). After the soak and
once every client is gone: tasks back to the baseline exactly, descriptors within 2, no
established socket, RSS within 10 % of the baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import tracemalloc
import weakref
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from tests.conftest import ServerProcess
from tests.probes import established, fds, rss_kb
from tests.wsutil import Server, recv, tick, until
from ticker.config import HubConfig
from ticker.core.bars import INTERVALS
from ticker.core.events import Listing, News
from ticker.hub.broadcaster import Hub

SOAK_S = float(os.environ.get("TICKER_SOAK_S", "15"))
WARMUP_S = 10.0
CLIENTS = 300
WARMUP_CLIENTS = 400
SYMBOLS = [f"S{i:02d}" for i in range(20)]


async def healthz(srv: ServerProcess) -> dict[str, Any]:
    # A connection of its own, closed before returning: it never counts as a leak.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
        s.get(srv.url + "/healthz") as r,
    ):
        body: dict[str, Any] = await r.json()
        return body


class Stats:
    def __init__(self) -> None:
        self.sessions = 0
        self.frames = 0
        self.closes: dict[str, int] = {}
        self.errors = 0


async def one_client(
    session: aiohttp.ClientSession, url: str, rng: random.Random, stats: Stats
) -> None:
    """One connection's life: random subscriptions, a random stay, a random way out."""
    ws = await session.ws_connect(url, autoping=True, max_msg_size=0)
    stats.sessions += 1
    try:
        window = rng.choice([0, 100, 100, 250, 1000]) if rng.random() < 0.9 else 5000
        await ws.send_json({"op": "throttle", "ms": window})
        if rng.random() < 0.15:
            await ws.send_json({"op": "subscribe", "symbols": ["*"], "id": 1})
        else:
            syms = rng.sample(SYMBOLS, rng.randint(1, 6)) + (["NOPE"] if rng.random() < 0.1 else [])
            await ws.send_json({"op": "subscribe", "symbols": syms, "id": 1})
        if rng.random() < 0.5:
            topics = ["*"] if rng.random() < 0.5 else rng.sample(SYMBOLS, 2)
            await ws.send_json({"op": "news", "topics": topics, "since": rng.randint(0, 5)})
        stay = rng.uniform(0.1, 3.0)
        slow = rng.random() < 0.1
        end = asyncio.get_running_loop().time() + stay
        while (left := end - asyncio.get_running_loop().time()) > 0:
            if rng.random() < 0.02:
                op = rng.choice(
                    [
                        {"op": "resync"},
                        {"op": "unsubscribe", "symbols": rng.sample(SYMBOLS, 2)},
                        {"op": "ping", "t": 1},
                        {"op": "throttle", "ms": rng.choice([0, 100, 500])},
                    ]
                )
                await ws.send_json(op)
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                code = str(ws.close_code)
                stats.closes[code] = stats.closes.get(code, 0) + 1
                return
            stats.frames += 1
            if slow:
                await asyncio.sleep(0.05)
        way = rng.random()
        if way < 0.7:
            await ws.close()
        elif way < 0.9:
            transport = ws._response.connection.transport if ws._response.connection else None
            if transport is not None:
                transport.abort()  # gone without a close frame
        else:
            await asyncio.sleep(rng.uniform(0.1, 1.0))  # stopped reading for a while, then gone
    finally:
        if not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)


async def churn(url: str, seconds: float, seed: int, clients: int = CLIENTS) -> Stats:
    """``clients`` slots, each running one client after another for ``seconds``."""
    stats = Stats()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def slot(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            await asyncio.sleep(rng.uniform(0, 1.0))
            while loop.time() < deadline:
                try:
                    await asyncio.wait_for(
                        one_client(session, url, rng, stats), deadline - loop.time() + 5.0
                    )
                except (aiohttp.ClientError, ConnectionError, TimeoutError):
                    stats.errors += 1
                await asyncio.sleep(rng.uniform(0, 0.3))

        await asyncio.gather(*(slot(i) for i in range(clients)))
    return stats


async def settled(srv: ServerProcess) -> dict[str, Any]:
    """Wait until the server has no connection left (and every slot is released)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15.0
    while True:
        h = await healthz(srv)
        if h["connections"] == 0 and h["admission"]["open"] == 0:
            return h
        assert loop.time() < deadline, f"connections never went away: {h['connections']}"
        await asyncio.sleep(0.2)


async def measure(srv: ServerProcess) -> dict[str, int]:
    assert srv.proc is not None
    pid = srv.proc.pid
    h = await settled(srv)
    return {
        "tasks": h["tasks"],
        "fds": fds(pid),
        "established": established(srv.port),
        "rss_kb": rss_kb(pid),
    }


@pytest.mark.slow
@pytest.mark.timeout(SOAK_S + WARMUP_S + 90)
async def test_soak_leaves_no_leaked_tasks_sockets_fds_or_memory(
    ticker_server: type[ServerProcess], tmp_path: Path
) -> None:
    # The data the server is meant to keep (bars per symbol and interval, news for `since`)
    # grows until its bound: tiny bounds, full within the warm-up, so what is measured is what
    # connections leave behind.
    config = tmp_path / "soak.toml"
    retain = ", ".join(f'"{name}" = 2' for name in INTERVALS)
    config.write_text(f"[server]\nbars = {{ {retain} }}\nnews_retain = 20\n")
    srv = ticker_server(
        "--config",
        str(config),
        "--feed",
        f"sim:symbols={'+'.join(SYMBOLS)},rate=100,seed=1",
        "--feed",
        "simnews:rate=120,seed=2",
        "--log-level",
        "WARNING",
    )
    # The warm-up runs more clients than the soak, so the allocator's high-water mark is set
    # before the baseline, not during the soak.
    warm = await churn(srv.ws_url, WARMUP_S, seed=1, clients=WARMUP_CLIENTS)
    assert warm.sessions >= WARMUP_CLIENTS
    base = await measure(srv)
    assert base["established"] == 0

    stats = await churn(srv.ws_url, SOAK_S, seed=2)
    assert stats.sessions >= CLIENTS * max(1.0, SOAK_S / 5), vars(stats)  # each slot, often
    assert stats.frames > stats.sessions, "clients really received data"
    assert stats.errors <= stats.sessions * 0.01, vars(stats)

    # Leaks: the server may take a moment to notice the last aborted sockets.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15.0
    while True:
        after = await measure(srv)
        ok = (
            after["tasks"] == base["tasks"]
            and after["fds"] <= base["fds"] + 2
            and after["established"] == 0
            and after["rss_kb"] <= base["rss_kb"] * 1.10
        )
        if ok or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert after["tasks"] == base["tasks"], (base, after)
    assert after["fds"] <= base["fds"] + 2, (base, after)
    assert after["established"] == 0, (base, after)
    assert after["rss_kb"] <= base["rss_kb"] * 1.10, (base, after)
    h = await healthz(srv)
    assert h["status"] == "ok" and h["stats"]["connections_total"] >= stats.sessions
    assert all(f["state"] == "running" for f in h["feeds"])
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]
    print(f"soak {SOAK_S:g}s: {vars(stats)}; baseline {base}; after {after}")


async def test_a_closed_connection_leaves_nothing_behind_in_the_hub(
    aiohttp_client: AiohttpClient,
) -> None:
    """What the soak found: ``disconnect`` returned early (``pop`` of a None-valued dict), so
    every closed connection stayed in its window's group and in the news set for good."""
    syms = tuple(SYMBOLS[:5])
    srv = await Server.start(aiohttp_client, [Listing(syms), *(tick(s, 10.0) for s in syms)])
    rng = random.Random(5)
    sockets = []
    for i in range(20):
        ws, _ = await srv.connect()
        await ws.send_json({"op": "throttle", "ms": rng.choice([0, 100, 250]), "id": "t"})
        await ws.send_json({"op": "subscribe", "symbols": rng.sample(syms, 2) if i % 4 else ["*"]})
        await ws.send_json({"op": "news", "topics": ["*"], "id": "n"})
        sockets.append(ws)
    await until(lambda: len(srv.hub._news_clients) == 20, what="all subscribed")
    await srv.push(*(tick(s, 11.0) for s in syms), News("h", 1.7e12, "t", syms[:1]))
    refs = [weakref.ref(c) for c in srv.hub.clients]
    assert srv.hub.health()["groups"] >= 2
    for ws in sockets[:10]:
        await ws.close()
    for ws in sockets[10:]:
        conn = ws._response.connection
        assert conn is not None and conn.transport is not None
        conn.transport.abort()
    await until(lambda: not srv.hub.clients, what="all disconnected")
    h = srv.hub.health()
    assert (h["windows_ms"], h["groups"], h["slow_consumers"]) == ([], 0, 0), h
    assert not srv.hub._news_clients and not srv.hub.delivery.behind
    await asyncio.sleep(0.1)
    gc.collect()
    assert [r for r in refs if r() is not None] == [], "a closed connection is still referenced"
    # And the hub still serves a new client normally.
    ws, hello = await srv.connect()
    await ws.send_json({"op": "subscribe", "symbols": [syms[0]], "id": 1})
    assert (await recv(ws))["type"] == "ack"
    assert hello["type"] == "hello"


async def test_retained_news_costs_its_size_not_an_encoder_buffer() -> None:
    """What the long soak found: each retained item held orjson's whole 4 KiB output buffer, so
    the 10,000-item ring cost ~40 MB. Measured with tracemalloc over 2,000 items."""
    hub = Hub(HubConfig(news_retain=2000))
    headline = "Company X beats estimates as revenue grows " * 2
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            hub.publish(News(f"{headline} {i}", 1.7e12 + i, "wire", ("AAPL", "MSFT")))
        per_item = (tracemalloc.get_traced_memory()[0] - before) / 2000
    finally:
        tracemalloc.stop()
    payload = hub.news[-1][2]
    assert len(payload) < 400
    assert per_item < 1500, f"{per_item:.0f} B per retained news item"
    await hub.stop()

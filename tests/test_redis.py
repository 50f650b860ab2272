"""Scale-out on Redis Streams: real ``ticker serve`` processes sharing a private ``redis-server``.

Ingest and edge nodes run as subprocesses (``--bus redis://... --role ...``); clients speak the
wire protocol over real WebSockets. Each test gets a fresh key prefix (or its own Redis when it
kills it), so tests never see each other's streams.
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis
from aiohttp import ClientWebSocketResponse
from hypothesis import given, strategies as st

from tests.conftest import MS, ROOT, ServerProcess
from tests.redisutil import RedisServer, free_port, redis_server  # noqa: F401 (a fixture)
from tests.wsutil import Frame, recv, recv_type, recv_until
from ticker.bus.redis import (
    SKIP_GAP_S,
    RedisBus,
    far_behind,
    max_lag_ms,
    news_key,
    split_options,
    split_url,
)
from ticker.core.bars import INTERVALS, BarBook
from ticker.core.codec import decode_event, encode_event
from ticker.core.events import Listing, News, Reset, Tick

FEEDS = ("--feed", "sim:symbols=5,rate=200", "--feed", "simnews:rate=600")


async def health(http: aiohttp.ClientSession, node: ServerProcess) -> dict[str, Any]:
    async with http.get(node.url + "/healthz") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def wait_health(
    http: aiohttp.ClientSession, node: ServerProcess, pred: Any, within: float = 8000 * MS
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        body = await health(http, node)
        if pred(body):
            return body
        assert loop.time() < deadline, f"/healthz never matched: {body['bus']}"
        await asyncio.sleep(0.05)


async def client(
    http: aiohttp.ClientSession, node: ServerProcess, since: int | None = None
) -> ClientWebSocketResponse:
    """A client subscribed to every symbol and every news topic (from ``since`` when given)."""
    ws = await http.ws_connect(node.ws_url)
    assert (await recv(ws))["type"] == "hello"
    news: dict[str, Any] = {"op": "news", "topics": ["*"]}
    if since is not None:
        news["since"] = since
    await ws.send_str(orjson.dumps(news).decode())
    await ws.send_str(orjson.dumps({"op": "subscribe", "symbols": ["*"]}).decode())
    return ws


async def collect_news(
    ws: ClientWebSocketResponse, n: int, within: float = 8000 * MS
) -> list[Frame]:
    seen: list[Frame] = []
    news: list[Frame] = []

    def got(f: Frame) -> bool:
        if f["type"] == "news":
            news.append(f)
        return len(news) >= n

    await recv_until(ws, got, within, seen)
    return news


def test_event_encoding_round_trips() -> None:
    for ev in (
        Tick("AAPL", 189.31, 1.7e12, 10.0, 189.3, 189.32, 1200.0, 188.0),
        Tick("BTC", 1.0, 2.0),
        Listing(("A", "B")),
    ):
        assert decode_event(encode_event(ev)) == ev
    n = News("Up", 1.7e12, "sim", ("AAPL",), "https://x", "s")
    assert decode_event(encode_event(n), 42) == News(
        "Up", 1.7e12, "sim", ("AAPL",), "https://x", "s", 42
    )


def test_url_prefix_is_ours_and_the_rest_goes_to_redis() -> None:
    assert split_url("redis://:pw@h:1/2?prefix=desk&ssl_cert_reqs=none") == (
        "redis://:pw@h:1/2?ssl_cert_reqs=none",
        "desk",
    )
    assert split_url("rediss://h/0") == ("rediss://h/0", "ticker")
    assert split_options("redis://h/0?max_lag_s=2&db=1") == (
        "redis://h/0?db=1",
        {"prefix": "ticker", "max_lag_s": "2"},
    )
    assert max_lag_ms("redis://h/0") == 5000.0 and max_lag_ms("redis://h/0?max_lag_s=0") == 0.0
    for bad in ("x", "-1", "inf", "nan", ""):
        with pytest.raises(ValueError, match="max_lag_s"):
            max_lag_ms(f"redis://h/0?max_lag_s={bad}")


@given(
    lag=st.integers(0, 10**6), read=st.integers(0, 2000), batch=st.integers(1, 2000),
    max_lag=st.sampled_from([0.0, 1.0, 1000.0, 5000.0]),
    since=st.sampled_from([0.0, SKIP_GAP_S - 1, SKIP_GAP_S, math.inf]),
)  # fmt: skip
def test_far_behind_means_a_full_read_older_than_the_bound(
    lag: int, read: int, batch: int, max_lag: float, since: float
) -> None:
    skip = far_behind(lag, read, batch, max_lag, since)
    if max_lag == 0 or read < batch or lag <= max_lag or since < SKIP_GAP_S:
        # never off, never with nothing more waiting, never within the bound, never twice soon
        assert not skip
    else:
        assert skip


async def test_two_edges_one_ingest_and_news_resume_across_nodes(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    url = redis_server.url()
    ingest = ticker_server("--bus", url, "--role", "ingest", *FEEDS)
    edges = [ticker_server("--bus", url, "--role", "edge") for _ in range(2)]
    async with aiohttp.ClientSession() as http:
        wss = [await client(http, e) for e in edges]
        per_edge: list[list[Frame]] = []
        for ws in wss:
            snap = await recv_type(ws, "snapshot")
            # Ticks made it through Redis: the edge (which runs no feed) knows prices.
            await recv_until(ws, lambda f: f["type"] in ("delta", "snapshot") and bool(f["quotes"]))
            per_edge.append(await collect_news(ws, 4))
            del snap
        # Both edges number the same stories the same way.
        a = {f["id"]: f["headline"] for f in per_edge[0]}
        b = {f["id"]: f["headline"] for f in per_edge[1]}
        common = set(a) & set(b)
        assert common, (a, b)
        assert all(a[i] == b[i] for i in common)
        for news in per_edge:
            ids = [f["id"] for f in news]
            assert ids == sorted(set(ids))

        # A client of edge 0 reconnects to edge 1 with `since`: it gets exactly what followed.
        first = per_edge[0][0]["id"]
        seen_after = [(f["id"], f["headline"]) for f in per_edge[0][1:]]
        for ws in wss:
            await ws.close()
        ws = await client(http, edges[1], since=first)
        replay = await collect_news(ws, len(seen_after))
        assert [(f["id"], f["headline"]) for f in replay][: len(seen_after)] == seen_after
        await ws.close()

        for e in edges:
            body = await health(http, e)
            assert body["feeds"] == []
            assert body["bus"]["state"] == "up" and body["bus"]["role"] == "edge"
            assert body["bus"]["read"] > 0 and body["bus"]["news_read"] >= 4
        body = await health(http, ingest)
        assert body["bus"]["leader"] is True and body["bus"]["written"] > 0


async def test_a_new_edge_serves_the_full_snapshot_at_once(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    url = redis_server.url()
    ingest = ticker_server("--bus", url, "--role", "ingest", "--feed", "sim:symbols=5,rate=50")
    async with aiohttp.ClientSession() as http:
        await wait_health(http, ingest, lambda b: b["bus"]["written"] >= 20)
        ingest.kill()  # nothing new arrives: the edge can only know prices from the hash
        edge = ticker_server("--bus", url, "--role", "edge")
        ws = await client(http, edge)
        snap = await recv_type(ws, "snapshot")
        assert len(snap["quotes"]) == 5
        assert all(q["price"] > 0 for q in snap["quotes"].values())
        await ws.close()


async def test_redis_killed_and_restarted_under_load(
    ticker_server: type[ServerProcess],
) -> None:
    redis = RedisServer()  # our own: this test kills it
    try:
        url = redis.url()
        ingest = ticker_server("--bus", url, "--role", "ingest", *FEEDS)
        edge = ticker_server("--bus", url, "--role", "edge")
        async with aiohttp.ClientSession() as http:
            ws = await client(http, edge)
            await recv_type(ws, "snapshot")
            before = await collect_news(ws, 2)

            redis.kill()
            for node in (ingest, edge):
                await wait_health(http, node, lambda b: b["bus"]["state"] == "retrying")
            # Still serving: the client is connected and answered.
            await ws.send_str(orjson.dumps({"op": "ping", "t": 1}).decode())
            await recv_type(ws, "pong")

            redis.restart()
            # Back: the client gets a resync snapshot, then live news again with larger ids.
            seen: list[Frame] = []
            await recv_until(ws, lambda f: f["type"] == "snapshot", 10_000 * MS, seen)
            after = await collect_news(ws, 2, 10_000 * MS)
            assert after[-1]["id"] > before[-1]["id"]
            assert not ws.closed
            for node in (ingest, edge):
                body = await wait_health(http, node, lambda b: b["bus"]["state"] == "up")
                assert body["bus"]["reconnects"] >= 1
            assert (await health(http, edge))["bus"]["resyncs"] >= 1
            assert ingest.proc is not None and ingest.proc.poll() is None
            assert edge.proc is not None and edge.proc.poll() is None
            await ws.close()
    finally:
        redis.close()


async def test_ingest_failover_within_5s_and_no_duplicate_news_ids(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    url = redis_server.url()
    nodes = [ticker_server("--bus", url, "--role", "ingest", *FEEDS) for _ in range(2)]
    edge = ticker_server("--bus", url, "--role", "edge")
    async with aiohttp.ClientSession() as http:
        leaders = []
        for n in nodes:
            body = await wait_health(http, n, lambda b: b["bus"]["writer"] in ("up", "standby"))
            leaders.append(body["bus"]["leader"])
        assert sorted(leaders) == [False, True]  # exactly one publishes
        holder, standby = (nodes[0], nodes[1]) if leaders[0] else (nodes[1], nodes[0])
        ws = await client(http, edge)
        news = await collect_news(ws, 3)

        holder.kill()  # SIGKILL: the lease is not released, it expires
        # The standby publishes within 5 s (the bound; scaled on slow machines).
        body = await wait_health(
            http, standby, lambda b: b["bus"]["leader"] and b["bus"]["news_written"] > 0, 5000 * MS
        )
        news += await collect_news(ws, 3, 8000 * MS)
        body = await health(http, standby)
        assert body["bus"]["takeovers"] == 1 and body["bus"]["news_written"] >= 1
        ids = [f["id"] for f in news]
        assert ids == sorted(set(ids))  # strictly increasing: no duplicates across the takeover
        await ws.close()


def test_the_same_news_item_has_the_same_key() -> None:
    a = encode_event(News("Up", 1.7e12, "rss", ("AAPL",), "https://x", None))
    b = encode_event(News("Up", 1.7e12, "rss", ("AAPL",), "https://x", None))
    c = encode_event(News("Up", 1.7e12 + 1, "rss", ("AAPL",), "https://x", None))
    assert news_key(a) == news_key(b) != news_key(c)


async def stream_news(r: aioredis.Redis, bus: RedisBus) -> list[tuple[int, str]]:
    """(id, headline) of every entry of the bus's news stream, oldest first."""
    entries: Any = await r.xrange(bus.k_news)
    out = []
    for _, fields in entries:
        ev = decode_event(fields[b"e"])
        assert isinstance(ev, News)
        out.append((int(fields[b"id"]), ev.headline))
    return out


async def until(pred: Any, within: float = 5000 * MS) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not pred():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_write_that_fails_partway_is_retried_without_giving_news_a_second_id(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """A pipeline whose news script ran but whose HSET failed is retried whole: one id."""
    bus = RedisBus(redis_server.url(), lambda ev: None, role="ingest", initial_backoff=0.05)
    r = aioredis.Redis.from_url(bus.url)
    try:
        await r.set(bus.k_quotes, "not a hash")  # HSET in the same pipeline fails: WRONGTYPE
        await bus.start()
        await until(lambda: bus.leader)
        bus.publish(Tick("AAPL", 1.0, 1.0))
        bus.publish(News("First", 1.0, "wire", ("AAPL",)))
        await until(lambda: bus.counters["write_errors"] >= 2)
        assert bus.counters["news_written"] == 0
        await r.delete(bus.k_quotes)  # the retry now succeeds
        await until(lambda: bus.counters["news_written"] == 1)
        bus.publish(News("Second", 2.0, "wire", ()))
        await until(lambda: bus.counters["news_written"] == 2)
        items = await stream_news(r, bus)
        assert [h for _, h in items] == ["First", "Second"]
        assert items[0][0] < items[1][0]
    finally:
        await bus.stop()
        await r.aclose()


async def test_a_standby_writes_at_takeover_the_news_the_dead_holder_never_wrote(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Both ingest nodes run the same news feed; the holder dies with an item unwritten."""
    url = redis_server.url()
    holder = RedisBus(url, lambda ev: None, role="ingest", lease_ms=600)
    standby = RedisBus(url, lambda ev: None, role="ingest", lease_ms=600)
    r = aioredis.Redis.from_url(holder.url)
    try:
        await holder.start()
        await until(lambda: holder.leader)
        await standby.start()
        await until(lambda: standby.writer_state == "standby")
        first = News("Written by the holder", 1.0, "wire", ("AAPL",))
        for bus in (holder, standby):
            bus.publish(first)
        await until(lambda: holder.counters["news_written"] == 1)
        for t in holder._tasks:  # the holder dies: nothing released, nothing more written
            t.cancel()
        lost = News("Never written by the holder", 2.0, "wire", ("AAPL",))
        for bus in (holder, standby):
            bus.publish(lost)
        await until(lambda: standby.leader and standby.counters["news_written"] >= 2)
        items = await stream_news(r, standby)
        assert [h for _, h in items] == [first.headline, lost.headline]  # each once
        assert standby.counters["takeover_news"] == 2
    finally:
        await standby.stop()
        holder.leader = False  # dead: it must not release the lease the standby now holds
        await holder.stop()
        await r.aclose()


def test_an_ingest_node_records_what_its_feeds_publish(
    tmp_path: Path,
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    out = tmp_path / "rec"
    node = ticker_server(
        "--bus", redis_server.url(), "--role", "ingest", *FEEDS, "--record", str(out)
    )
    time.sleep(1.0)
    assert node.stop() == 0
    table = pq.read_table(sorted(out.glob("*.parquet")))
    kinds = set(table.column("kind").to_pylist())
    assert {"tick", "news"} <= kinds


@pytest.mark.parametrize("role", ["edge", "ingest"])
def test_role_needs_a_shared_bus(role: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ticker", "serve", "--port", "0", "--role", role],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert "needs a shared bus" in out.stderr


async def test_a_news_item_posted_again_keeps_its_id(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """A producer retrying ``POST /api/news`` after a timeout does not publish the item twice."""
    bus = RedisBus(redis_server.url(), lambda ev: None, role="edge")
    r = aioredis.Redis.from_url(bus.url)
    try:
        item = News("Posted", 1.7e12, "desk", ("AAPL",))
        first = await bus.post([item])
        again = await bus.post([item, News("Other", 1.7e12, "desk", ())])
        assert again[0] == first[0] and again[1] > first[0]
        assert [h for _, h in await stream_news(r, bus)] == ["Posted", "Other"]
    finally:
        await bus.stop()
        await r.aclose()


async def bars_of(http: aiohttp.ClientSession, node: ServerProcess, symbol: str, iv: str) -> Any:
    params = {"symbol": symbol, "interval": iv, "limit": "5000"}
    async with http.get(node.url + "/api/bars", params=params) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["bars"]


async def test_an_edge_started_later_serves_the_same_bars(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    url = redis_server.url()
    ingest = ticker_server("--bus", url, "--role", "ingest", "--feed", "sim:symbols=3,rate=300")
    early = ticker_server("--bus", url, "--role", "edge")
    async with aiohttp.ClientSession() as http:
        await wait_health(http, ingest, lambda b: b["bus"]["written"] >= 600)
        late = ticker_server("--bus", url, "--role", "edge")  # ~2 s of ticks behind it
        await wait_health(http, late, lambda b: b["bus"]["read"] >= 100)
        ingest.stop()  # nothing new: both edges can read to the end
        await asyncio.sleep(1.0)
        async with http.get(early.url + "/api/quotes") as resp:
            symbols = sorted((await resp.json())["quotes"])
        assert len(symbols) == 3
        for s in symbols:
            for iv in ("1s", "5s", "1m", "1h"):
                a, b = await bars_of(http, early, s, iv), await bars_of(http, late, s, iv)
                assert a and a == b, (s, iv, a[-3:], b[-3:])
        body = await health(http, late)
        assert body["bus"]["read"] < (await health(http, early))["bus"]["read"]


async def zscores(r: aioredis.Redis, key: str) -> list[tuple[bytes, float]]:
    got: Any = await r.zrange(key, 0, -1, withscores=True)
    return [(m, float(s)) for m, s in got]


async def test_bar_state_in_redis_is_bounded_and_written_with_the_ticks(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """The ingest side's bars in Redis: one sorted set per symbol and interval trimmed to the
    retention, a head per symbol; a reset cuts them; a new bus starts from them."""
    url = redis_server.url()
    got: list[Any] = []
    retain = {"1s": 5, "5s": 3}
    bus = RedisBus(url, got.append, role="ingest", bars=BarBook(retain), lease_ms=600)
    await bus.start()
    try:
        deadline = time.monotonic() + 5
        while not bus.leader:
            assert time.monotonic() < deadline, bus.health()
            await asyncio.sleep(0.02)
        t0 = 1_709_303_400_000.0
        for k in range(40):  # 40 seconds, two trades each
            bus.publish(Tick("AAPL", 100.0 + k, t0 + k * 1000, size=1.0))
            bus.publish(Tick("AAPL", 99.0 + k, t0 + k * 1000 + 500, size=2.0))
        while bus.counters["written"] < 80:
            assert time.monotonic() < deadline, bus.health()
            await asyncio.sleep(0.02)
        r = aioredis.Redis.from_url(split_url(url)[0])
        try:
            key = bus.bar_key("AAPL", "1s")
            assert await r.zcard(key) == 5
            assert await r.zcard(bus.bar_key("AAPL", "5s")) == 3
            scores = [s for _, s in await zscores(r, key)]
            assert scores == [t0 + k * 1000 for k in range(34, 39)]  # 39 is forming: the head
            bus.publish(Reset(("AAPL",), t0 + 36_000))
            bus.publish(Tick("AAPL", 5.0, t0 + 36_000, size=1.0))
            bus.publish(Tick("AAPL", 6.0, t0 + 37_000, size=1.0))
            while bus.counters["written"] < 83:
                assert time.monotonic() < deadline, bus.health()
                await asyncio.sleep(0.02)
            scores = [s for _, s in await zscores(r, key)]
            assert scores == [t0 + k * 1000 for k in range(34, 37)]  # as the ring: 33 is gone
            fresh = BarBook(retain)
            edge = RedisBus(url, got.append, role="edge", bars=fresh)
            await edge.start()
            await edge.stop()
            a, b = bus.bar_book.of("AAPL"), fresh.of("AAPL")
            for w in INTERVALS.values():
                assert a.bars(w, 100) == b.bars(w, 100)
            assert b.bars(1000, 1)[0][:5] == (t0 + 37_000, 6.0, 6.0, 6.0, 6.0)
        finally:
            await r.aclose()
    finally:
        await bus.stop()


async def test_edges_share_one_port_with_reuse_port(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """``--reuse-port``: several edges listen on one port (as W5 runs past one process's
    open-file limit), the kernel spreads connections over them, and every client is served the
    same market whichever edge took it. Without the flag the second edge cannot bind."""
    url = redis_server.url()
    ticker_server("--bus", url, "--role", "ingest", "--feed", "sim:symbols=5,rate=200")
    port = free_port()
    args = ("--bus", url, "--role", "edge", "--port", str(port))
    edges = [ticker_server(*args, "--reuse-port") for _ in range(2)]
    assert {e.port for e in edges} == {port}
    taken = await asyncio.create_subprocess_exec(  # taken, and it did not ask to share
        *(sys.executable, "-m", "ticker", "serve", *args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    _, err = await asyncio.wait_for(taken.communicate(), 60)
    assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in err.decode()
    async with aiohttp.ClientSession() as http:
        wss = [await client(http, edges[0]) for _ in range(40)]
        for ws in wss:  # every client gets prices from whichever edge took it
            await recv_until(ws, lambda f: f["type"] in ("delta", "snapshot") and bool(f["quotes"]))
        # /healthz answers from one edge or the other (its `pid` says which), each counting
        # only its own clients: both took some, and together all 40.
        by_pid: dict[int, int] = {}
        for _ in range(200):
            async with aiohttp.ClientSession() as fresh:  # a new connection: a new pick
                body = await health(fresh, edges[0])
            by_pid[body["pid"]] = body["connections"]
            if len(by_pid) == 2:
                break
        assert set(by_pid) == {e.proc.pid for e in edges if e.proc is not None}, by_pid
        assert all(n > 0 for n in by_pid.values()) and sum(by_pid.values()) == 40, by_pid
        for ws in wss:
            await ws.close()


async def test_an_edge_far_behind_skips_to_the_end_and_loses_no_news(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """An edge stopped (SIGSTOP) while the ingest node writes ~3,000 ticks wakes up far behind
    the ticks stream: with ``max_lag_s=1`` it skips to the end (bars, quotes and position loaded
    as at start; every client resynced), reading less than was written, and still delivers every
    news item; its bars equal those of an edge that read everything (``max_lag_s=0``)."""
    url = redis_server.url()
    ingest = ticker_server(
        "--bus", url, "--role", "ingest", "--feed", "sim:symbols=5,rate=800", "--feed",
        "simnews:rate=1200",
    )  # fmt: skip
    skipper = ticker_server("--bus", url + "&max_lag_s=1", "--role", "edge")
    reader = ticker_server("--bus", url + "&max_lag_s=0", "--role", "edge")
    async with aiohttp.ClientSession() as http:
        ws = await client(http, skipper)
        await recv_type(ws, "snapshot")
        before = await collect_news(ws, 2)
        await wait_health(http, ingest, lambda b: b["bus"]["written"] >= 1000)
        stopped = [e.proc for e in (skipper, reader) if e.proc is not None]
        for proc in stopped:
            proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(4.0)  # ~3,200 ticks: more than one XREAD batch (1,000) behind
        finally:
            for proc in stopped:
                proc.send_signal(signal.SIGCONT)
        written_at_resume = (await health(http, ingest))["bus"]["written"]
        body = await wait_health(http, skipper, lambda b: b["bus"]["skips"] >= 1)
        assert body["bus"]["read"] < written_at_resume  # it did not read its way through
        # Its client: a fresh snapshot after the skip, and every news item (none skipped).
        seen: list[Frame] = []
        await recv_until(ws, lambda f: f["type"] == "snapshot", 8000 * MS, seen)
        r = aioredis.from_url(url.split("?")[0])
        try:
            entries: Any = await r.xrange(f"{split_url(url)[1]}:news")
        finally:
            await r.aclose()
        written = [int(f[b"id"]) for _, f in entries if int(f[b"id"]) > before[-1]["id"]]
        assert len(written) >= 20, written  # (~20 a second: some came while it was stopped)
        got = [f["id"] for f in seen if f["type"] == "news"]

        def has_all(f: Frame) -> bool:
            if f["type"] == "news":
                got.append(f["id"])
            return bool(got) and got[-1] >= written[-1]

        await recv_until(ws, has_all, 8000 * MS)
        assert [i for i in got if i <= written[-1]] == written
        await ws.close()
        # Bars: the skipper loaded Redis's; they equal those of the edge that read every tick.
        rl = await wait_health(http, reader, lambda b: b["bus"]["lag_ms"] < 1000)
        assert rl["bus"]["skips"] == 0
        for sym in ("AAPL", "MSFT"):
            bars = []
            for edge in (skipper, reader):
                async with http.get(
                    edge.url + f"/api/bars?symbol={sym}&interval=1s&limit=50"
                ) as resp:
                    bars.append((await resp.json())["bars"])
            upto = min(bars[0][-1][0], bars[1][-1][0]) - 2000  # closed in both
            closed = [[b for b in rows if b[0] <= upto] for rows in bars]
            assert closed[0] and closed[0] == closed[1], sym

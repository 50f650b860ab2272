"""``GET /metrics``: real servers scraped over HTTP, the exposition parsed by prometheus-client.

Each test drives a real server (in-process on an ephemeral port, or a ``ticker serve`` process)
with real WebSocket clients (aiohttp's, the ``websockets`` library, a raw socket that stops
reading) and checks that the figures move as the traffic says they must: connections, frames and
bytes (to the byte, against what the client received), conflation, error and close codes, slow
consumers, feed events and lag, event-loop lag, the memory and the Redis bus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from hypothesis import given, strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient
from websockets.asyncio.client import connect as ws_connect

from tests.conftest import MS, ServerProcess
from tests.redisutil import RedisServer, free_port, redis_server  # noqa: F401 (a fixture)
from tests.test_slow_consumer import BOUND, SYMS, Producer, stalled_client
from tests.wsutil import Server, now_ms, recv, recv_type, tick, until
from ticker.config import HubConfig, ServerConfig
from ticker.core.conflate import Conflator
from ticker.core.events import Listing, News, Tick
from ticker.core.protocol import ERROR_CODES
from ticker.net.keys import BUS, HUB, RUNNERS
from ticker.net.server import create_app
from ticker.ops.metrics import LAG_BUCKETS, LoopMonitor
from ticker_feeds.testing import FakeFeed

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]

TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"


def parse(text: str) -> Samples:
    """Every sample of a text exposition, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def key(name: str, **labels: str) -> tuple[str, Labels]:
    return name, tuple(sorted(labels.items()))


async def scrape(client: TestClient[Any, Any]) -> Samples:
    """``GET /metrics`` from an in-process server, parsed."""
    r = await client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"] == TEXT_0_0_4
    return parse(await r.text())


async def scrape_until(
    client: TestClient[Any, Any],
    pred: Callable[[Samples], bool],
    within: float = 5000 * MS,
    what: str = "",
) -> Samples:
    """Scrape until ``pred`` holds on the samples (fails after ``within`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        m = await scrape(client)
        if pred(m):
            return m
        assert loop.time() < deadline, (
            f"metrics never showed {what}: "
            + str({k: v for k, v in m.items() if k[0].startswith("ticker_")})[:3000]
        )
        await asyncio.sleep(0.02)


def wire_size(payload: bytes) -> int:
    """Bytes of an unmasked server frame carrying ``payload`` (RFC 6455 header + payload)."""
    n = len(payload)
    return n + (2 if n < 126 else 4 if n < 1 << 16 else 10)


async def start(
    aiohttp_client: AiohttpClient,
    events: list[Any],
    config: HubConfig | None = None,
    server: ServerConfig | None = None,
) -> Server:
    return await Server.start(aiohttp_client, events, config, server)


# Pure parts


@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("offer"), st.sampled_from("ABC"), st.sampled_from([1.0, 2.0, 3.0])),
            st.tuples(st.just("drain"), st.floats(0, 0.05), st.none()),
        ),
        max_size=60,
    ),
    interval=st.sampled_from([0.0, 0.01, 0.1]),
)
def test_conflator_counts_ticks_and_updates(
    ops: list[tuple[str, Any, Any]], interval: float
) -> None:
    quotes: dict[str, dict[str, Any]] = {}
    c = Conflator(interval)
    now = 0.0
    pending = drained = updates = 0
    for op, a, b in ops:
        if op == "offer":
            quotes[a] = {"symbol": a, "price": b, "ts": 1.0}  # the book after the tick
            c.offer(a, b)
            pending += 1
        else:
            now += a
            out = c.drain(now, quotes)
            updates += len(out)
            if not c.pending:  # it was due: every pending tick is accounted for
                drained += pending
                pending = 0
        assert c.ticks == drained and c.updates == updates
        assert c.ticks - c.updates >= 0  # conflated: never negative


@given(
    samples=st.lists(
        st.tuples(st.floats(0, 5), st.floats(0, 20, allow_subnormal=False)), max_size=50
    ),
    window=st.sampled_from([1.0, 10.0, 60.0]),
)
def test_loop_monitor_histogram_and_recent_max(
    samples: list[tuple[float, float]], window: float
) -> None:
    m = LoopMonitor(window=window)
    now = 0.0
    seen = []
    for step, lag in samples:
        now += step
        m.record(now, lag)
        seen.append((now, lag))
    cum = m.cumulative()
    assert [b for b, _ in cum] == [*(repr(b) for b in LAG_BUCKETS), "+Inf"]
    for (bound, n), upper in zip(cum, (*LAG_BUCKETS, float("inf")), strict=True):
        assert n == sum(1 for _, lag in seen if lag <= upper), bound
    assert m.count == len(seen) and m.sum == pytest.approx(sum(lag for _, lag in seen))
    assert m.last == (seen[-1][1] if seen else None)
    recent = [lag for t, lag in seen if t >= now - window]
    assert m.recent_max(now) == (max(recent) if recent else None)


# Exposition


async def test_exposition_is_typed_and_prefixed_and_negotiates_openmetrics(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(aiohttp_client, [Listing(("AAPL",)), tick("AAPL", 1.0)])
    r = await srv.client.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"] == TEXT_0_0_4
    families = list(text_string_to_metric_families(await r.text()))
    ours = [f for f in families if f.name.startswith("ticker_")]
    names = {f.name for f in ours}
    assert len(names) == len(ours), "no family twice"
    for f in ours:
        assert f.documentation, f.name
        assert f.type in ("counter", "gauge", "histogram"), (f.name, f.type)
        for s in f.samples:
            if f.type == "counter":
                assert s.name == f.name + "_total", s.name
            assert s.value >= 0, s
    for must in (
        "ticker_connections",
        "ticker_connections_open",
        "ticker_frames_sent",
        "ticker_bytes_sent",
        "ticker_errors",
        "ticker_closes",
        "ticker_slow_consumer_resyncs",
        "ticker_slow_consumer_closes",
        "ticker_feed_events",
        "ticker_feed_lag_seconds",
        "ticker_bus_lag_seconds",
        "ticker_event_loop_lag_seconds",
    ):
        assert must in names, must
    # Process figures come along (from the app's own registry).
    m = parse(await r.text())
    assert m[key("process_resident_memory_bytes")] > 0
    # Prometheus asks for OpenMetrics first: it gets it, and it parses as such.
    r = await srv.client.get(
        "/metrics",
        headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
    )
    assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = await r.text()
    assert text.endswith("# EOF\n")
    om = {f.name: f.type for f in openmetrics_families(text)}  # type: ignore[no-untyped-call]
    assert om["ticker_frames_sent"] == "counter" and om["ticker_build"] == "info"


async def test_two_apps_in_one_process_keep_their_own_figures(
    aiohttp_client: AiohttpClient,
) -> None:
    a = await start(aiohttp_client, [Listing(("AAPL",))])
    b = await start(aiohttp_client, [Listing(("AAPL",))])
    ws, _ = await a.connect()
    ma, mb = await scrape(a.client), await scrape(b.client)
    assert ma[key("ticker_connections_open")] == 1
    assert mb[key("ticker_connections_open")] == 0
    await ws.close()


# Connections, frames, bytes, errors, closes


async def test_connections_follow_connects_and_disconnects(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, [Listing(("AAPL",))])
    m = await scrape(srv.client)
    assert m[key("ticker_connections_open")] == 0 and m[key("ticker_connections_total")] == 0
    first, _ = await srv.connect()
    async with ws_connect(f"ws://127.0.0.1:{srv.client.port}/ws", proxy=None) as second:
        assert orjson.loads(await second.recv())["type"] == "hello"
        m = await scrape(srv.client)
        assert m[key("ticker_connections_open")] == 2
        assert m[key("ticker_connections_total")] == 2
        assert m[key("ticker_disconnections_total")] == 0
        await first.close()
        m = await scrape_until(
            srv.client, lambda m: m[key("ticker_connections_open")] == 1, what="1 open"
        )
        assert m[key("ticker_disconnections_total")] == 1
    m = await scrape_until(
        srv.client, lambda m: m[key("ticker_connections_open")] == 0, what="0 open"
    )
    assert m[key("ticker_connections_total")] == 2
    assert m[key("ticker_disconnections_total")] == 2
    # A window's connections are a gauge too (the default window is 100 ms).
    assert m[key("ticker_window_connections", window="100")] == 0
    assert m[key("ticker_groups")] == 0, "a closed connection leaves its group"


async def test_frames_and_bytes_sent_are_what_the_client_received(
    aiohttp_client: AiohttpClient,
) -> None:
    srv = await start(
        aiohttp_client, [Listing(("AAPL", "MSFT")), tick("AAPL", 100.0), tick("MSFT", 50.0)]
    )
    before = await scrape(srv.client)
    assert before[key("ticker_frames_sent_total")] == 0
    ws = await srv.client.ws_connect("/ws")
    frames = 0
    nbytes = 0

    async def receive() -> dict[str, Any]:
        nonlocal frames, nbytes
        msg = await ws.receive(timeout=2000 * MS)
        assert msg.type is WSMsgType.TEXT, msg
        payload = msg.data.encode()
        frames += 1
        nbytes += wire_size(payload)
        frame: dict[str, Any] = orjson.loads(payload)
        return frame

    assert (await receive())["type"] == "hello"
    await ws.send_json({"op": "subscribe", "symbols": ["AAPL", "MSFT"], "id": 1})
    assert (await receive())["type"] == "ack"
    assert (await receive())["type"] == "snapshot"
    await ws.send_json({"op": "news", "topics": ["*"], "id": 2})
    assert (await receive())["type"] == "ack"
    prices = [100.0 + i for i in range(1, 30)]
    for p in prices:
        await srv.push(tick("AAPL", p), tick("MSFT", p / 2))
        await asyncio.sleep(0.01)
    await srv.push(News("headline", now_ms(), "test", ("AAPL",)))
    seen_news = False
    last = 0.0
    while not (seen_news and last == prices[-1]):
        f = await receive()
        seen_news |= f["type"] == "news"
        if f["type"] == "delta" and "AAPL" in f["quotes"]:
            last = f["quotes"]["AAPL"]["price"]
    # A pong after everything: nothing sent before it is still in flight.
    await ws.send_json({"op": "ping", "t": 1})
    while (await receive())["type"] != "pong":
        pass
    m = await scrape(srv.client)
    assert m[key("ticker_frames_sent_total")] == frames
    assert m[key("ticker_bytes_sent_total")] == nbytes
    assert m[key("ticker_deltas_sent_total")] >= 1
    assert m[key("ticker_snapshots_sent_total")] == 1
    await ws.close()


async def test_errors_are_counted_by_code(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, [Listing(("AAPL",))])
    ws, _ = await srv.connect()
    sent = {
        "bad_json": ["{not json", "\xff"],
        "unknown_op": ['{"op":"dance"}'],
        "bad_request": ["[1, 2]", '{"op":"throttle","ms":-5}', '{"op":"subscribe"}'],
        "unknown_symbol": ['{"op":"subscribe","symbols":["NOPE"]}'],
    }
    for code, texts in sent.items():
        for text in texts:
            await ws.send_str(text)
            err = await recv_type(ws, "error")
            assert err["code"] == code, (text, err)
    m = await scrape(srv.client)
    for code in ERROR_CODES:
        assert m[key("ticker_errors_total", code=code)] == len(sent.get(code, [])), code
    await ws.close()


async def test_frame_over_the_limit_counts_a_1009_close(aiohttp_client: AiohttpClient) -> None:
    srv = await start(
        aiohttp_client, [Listing(("AAPL",))], server=ServerConfig(max_frame_bytes=1024)
    )
    ws, _ = await srv.connect()
    await ws.send_str("x" * 2048)
    msg = await ws.receive(timeout=2000 * MS)
    assert msg.type is WSMsgType.CLOSE and msg.data == 1009
    m = await scrape_until(
        srv.client, lambda m: m[key("ticker_connections_open")] == 0, what="the close"
    )
    assert m[key("ticker_closes_total", code="1009")] == 1
    assert m[key("ticker_closes_total", code="1013")] == 0


async def test_updates_conflated_per_window(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, [Listing(("AAPL",)), tick("AAPL", 100.0)])
    ws, _ = await srv.subscribed(["AAPL"], throttle_ms=250)
    n = 40
    await srv.push(*(tick("AAPL", 100.0 + i / 10) for i in range(1, n + 1)))
    deltas: list[dict[str, Any]] = []
    while not deltas or deltas[-1]["quotes"]["AAPL"]["price"] != 100.0 + n / 10:
        deltas.append(await recv_type(ws, "delta"))
    # What the client saw: every tick is in exactly one delta (w_count when several).
    assert sum(d["quotes"]["AAPL"].get("w_count", 1) for d in deltas) == n
    assert len(deltas) < n, "a 250 ms window conflates a burst"
    m = await scrape(srv.client)
    w = {"window": "250"}
    assert m[key("ticker_window_ticks_total", **w)] == n
    assert m[key("ticker_updates_total", **w)] == len(deltas)
    assert m[key("ticker_updates_conflated_total", **w)] == n - len(deltas)
    assert m[key("ticker_window_connections", **w)] == 1
    assert m[key("ticker_ticks_total")] == n + 1
    # Moving to another window keeps the old window's counts (counters never go back).
    await ws.send_json({"op": "throttle", "ms": 0, "id": "z"})
    await recv_type(ws, "ack")
    m = await scrape(srv.client)
    assert m[key("ticker_window_connections", **w)] == 0
    assert m[key("ticker_updates_conflated_total", **w)] == n - len(deltas)
    await ws.close()


async def test_slow_consumers_pause_resync_and_close_1013(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticker.broadcaster")
    srv = await start(
        aiohttp_client,
        [Listing(SYMS)],
        HubConfig(max_buffer_bytes=BOUND, slow_close_after=2.0, flow_hold_ms=0),
    )
    producer = Producer(srv)
    producer.start()
    stuck, stuck_c, _ = await stalled_client(srv)
    late, late_c, _ = await stalled_client(srv)
    await scrape_until(
        srv.client, lambda m: m[key("ticker_slow_consumers")] == 2, what="two slow consumers"
    )

    # One starts reading again: it is caught up (a resync), the other stays stuck.
    async def read() -> None:
        while True:
            await late.recv_json(5000 * MS)

    reader = asyncio.get_running_loop().create_task(read())
    m = await scrape_until(
        srv.client,
        lambda m: (
            m[key("ticker_slow_consumer_resyncs_total")] >= 1
            and m[key("ticker_slow_consumer_closes_total")] == 1
        ),
        within=8000 * MS,
        what="a resync and a close",
    )
    assert m[key("ticker_closes_total", code="1013")] == 1
    assert m[key("ticker_slow_consumer_pauses_total")] >= 2
    assert m[key("ticker_catchup_deltas_total")] >= 1
    await until(lambda: stuck_c not in srv.hub.clients, what="the stuck client forgotten")
    assert late_c in srv.hub.clients
    # The close is logged once, with who and why as fields.
    (closed,) = [r for r in caplog.records if r.name == "ticker.broadcaster"]
    assert closed.levelno == logging.INFO and "slow consumer" in closed.getMessage()
    assert (closed.session, closed.code) == (stuck_c.session.id, 1013)  # type: ignore[attr-defined]
    await producer.stop()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    stuck.close()
    late.close()


# Feeds, event loop, bus


async def test_feed_events_counter_and_lag(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, [Listing(("AAPL",))])
    feed = {"feed": "fake"}
    m = await scrape(srv.client)
    assert m[key("ticker_feed_events_total", **feed)] == 1
    assert m[key("ticker_feed_state", feed="fake", state="running")] == 1
    assert m[key("ticker_feed_state", feed="fake", state="backoff")] == 0
    assert ("ticker_feed_lag_seconds", (("feed", "fake"),)) not in m, "a listing has no time"
    # Five ticks stamped five seconds ago: counted, and the lag says how old they are.
    old = now_ms() - 5000
    await srv.push(*(Tick("AAPL", 10.0 + i, old) for i in range(5)))
    m = await scrape(srv.client)
    assert m[key("ticker_feed_events_total", **feed)] == 6
    assert 5.0 <= m[key("ticker_feed_lag_seconds", **feed)] < 5.0 + 30
    assert 0.0 <= m[key("ticker_feed_last_event_age_seconds", **feed)] < 30
    await srv.push(tick("AAPL", 20.0))
    m = await scrape(srv.client)
    assert m[key("ticker_feed_lag_seconds", **feed)] < 4.0
    assert m[key("ticker_feed_events_total", **feed)] == 7
    assert m[key("ticker_bus_published_total")] == 7
    assert m[key("ticker_bus_up", kind="memory")] == 1
    assert m[key("ticker_bus_lag_seconds")] == 0


async def test_event_loop_lag_shows_a_blocked_loop(aiohttp_client: AiohttpClient) -> None:
    srv = await start(aiohttp_client, [])
    m = await scrape_until(
        srv.client,
        lambda m: m[key("ticker_event_loop_lag_seconds_count")] >= 3,
        what="lag samples",
    )
    assert 0 <= m[key("ticker_event_loop_lag_last_seconds")] < 30
    count = m[key("ticker_event_loop_lag_seconds_count")]
    over = count - m[key("ticker_event_loop_lag_seconds_bucket", le="0.25")]
    # Block the loop (the server shares it) for 0.4 s: the next sample is at least 0.3 s late.
    asyncio.get_running_loop().call_soon(time.sleep, 0.4)
    m = await scrape_until(
        srv.client,
        lambda m: m[key("ticker_event_loop_lag_seconds_count")] > count,
        what="a sample after the block",
    )
    assert m[key("ticker_event_loop_lag_max_seconds")] >= 0.3
    after = m[key("ticker_event_loop_lag_seconds_count")]
    assert after - m[key("ticker_event_loop_lag_seconds_bucket", le="0.25")] > over
    assert m[key("ticker_event_loop_lag_seconds_sum")] >= 0.3
    assert m[key("ticker_event_loop_lag_seconds_bucket", le="+Inf")] == after


async def test_redis_bus_metrics(
    aiohttp_client: AiohttpClient,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    feed = FakeFeed([Listing(("AAPL",))])
    client = await aiohttp_client(create_app([feed], bus=redis_server.url(), role="all"))
    runner = client.app[RUNNERS][0]
    await until(lambda: runner.events >= 1, what="the listing")
    n = 50
    feed.push(*(tick("AAPL", 100.0 + i) for i in range(n)))
    m = await scrape_until(
        client,
        lambda m: m.get(key("ticker_bus_read_total"), 0) >= n + 1,
        what="every tick read back from Redis",
    )
    assert m[key("ticker_bus_up", kind="redis")] == 1
    assert m[key("ticker_bus_published_total")] == n + 1
    assert m[key("ticker_bus_written_total")] == n + 1
    assert m[key("ticker_bus_leader")] == 1
    assert m[key("ticker_bus_buffered")] == 0
    assert 0 <= m[key("ticker_bus_lag_seconds")] < 5
    assert 0 <= m[key("ticker_bus_last_read_age_seconds")] < 5
    for op in ("write", "read", "lease"):
        assert m[key("ticker_bus_errors_total", op=op)] == 0
    assert client.app[BUS].health()["read"] == m[key("ticker_bus_read_total")]
    assert client.app[HUB].stats["ticks_in"] == m[key("ticker_ticks_total")] == n


async def test_redis_bus_down_shows_in_metrics(aiohttp_client: AiohttpClient) -> None:
    # Nothing listens on this port: the ingest node keeps retrying, and says so.
    url = f"redis://127.0.0.1:{free_port()}/0?prefix=down"
    client = await aiohttp_client(create_app([FakeFeed()], bus=url, role="ingest"))
    m = await scrape_until(
        client,
        lambda m: m[key("ticker_bus_errors_total", op="lease")] >= 1,
        what="lease errors",
    )
    assert m[key("ticker_bus_up", kind="redis")] == 0
    assert m[key("ticker_bus_leader")] == 0
    assert key("ticker_bus_read_total") in m and key("ticker_bus_lag_seconds") not in m


# A real process


async def test_ticker_serve_process_metrics(ticker_server: type[ServerProcess]) -> None:
    srv = ticker_server("--feed", "sim:symbols=5,rate=200,seed=1")
    async with aiohttp.ClientSession() as http:

        async def get() -> Samples:
            async with http.get(srv.url + "/metrics") as r:
                assert r.status == 200 and r.headers["Content-Type"] == TEXT_0_0_4
                return parse(await r.text())

        ws = await http.ws_connect(srv.ws_url)
        assert (await recv(ws))["type"] == "hello"
        await ws.send_json({"op": "subscribe", "symbols": ["*"]})
        await recv_type(ws, "delta", within=5000 * MS)
        first = await get()
        await asyncio.sleep(0.5)
        second = await get()
        sim = key("ticker_feed_events_total", feed="sim")
        assert second[sim] > first[sim] > 0
        assert second[key("ticker_frames_sent_total")] > first[key("ticker_frames_sent_total")]
        assert second[key("ticker_connections_open")] == 1
        assert 0 <= second[key("ticker_feed_lag_seconds", feed="sim")] < 10
        assert second[key("process_resident_memory_bytes")] > 0
        assert second[key("ticker_event_loop_lag_seconds_count")] > 0
        # /healthz is still there, as it was.
        async with http.get(srv.url + "/healthz") as r:
            body = await r.json()
        assert body["status"] == "ok" and body["feeds"][0]["name"] == "sim"
        await ws.close()
    assert srv.stop() == 0

"""The nginx sample in deploy/ really fronts two edge nodes: WebSocket upgrade, both edges used,
Server-Sent Events unbuffered.

Runs Debian's nginx (installed by scripts/system-deps.sh) with deploy/nginx.conf, its edge
addresses and listen port rewritten to this test's, in front of one ingest and two edge nodes on a
private redis-server.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MS, ROOT, ServerProcess
from tests.redisutil import RedisServer, free_port, redis_server  # noqa: F401 (a fixture)
from tests.wsutil import Frame

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _config(tmp: Path, listen: int, edges: list[int]) -> Path:
    """deploy/nginx.conf with our addresses, wrapped in a main config that runs unprivileged."""
    sample = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in edges)
    site, n = re.subn(
        r"(upstream ticker_edges \{\n    least_conn;\n)(?:    server [^\n]+\n)+",
        lambda m: m.group(1) + servers,
        sample,
    )
    assert n == 1, "the sample's upstream block changed shape"
    site, n = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen};", site)
    assert n == 1
    (tmp / "site.conf").write_text(site)
    main = tmp / "nginx.conf"
    main.write_text(
        f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n"
        f"  proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fcgi;\n"
        f"  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n"
        # Run as root, nginx's workers are `nobody`, who cannot write under pytest's private
        # tmp dirs: a large answer a slow reader takes (plotly.min.js in a browser) must not
        # spill into a temp file.
        "  proxy_max_temp_file_size 0;\n"
        f"  include {tmp}/site.conf;\n}}\n"
    )
    return main


@pytest.fixture
def front(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[str, list[ServerProcess]]]:
    """nginx with the sample config in front of two edges (plus an ingest node) on Redis."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run `make system-deps` (installs Debian's nginx-light)")
    url = redis_server.url()
    ticker_server("--bus", url, "--role", "ingest", "--feed", "sim:symbols=5,rate=100,seed=1")
    edges = [ticker_server("--bus", url, "--role", "edge") for _ in range(2)]
    port = free_port()
    conf = _config(tmp_path, port, [e.port for e in edges])
    check = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}", edges
    finally:
        nginx.terminate()
        nginx.wait(10)


async def test_nginx_sample_fronts_two_edges(front: tuple[str, list[ServerProcess]]) -> None:
    front_url, edges = front
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            try:
                async with http.get(front_url + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        for _ in range(100):
            if await up():
                break
            await asyncio.sleep(0.05)
        assert await up(), "nginx did not come up"
        # Through nginx: the WebSocket upgrade works and prices flow from Redis via an edge.
        wss = []
        for _ in range(4):
            ws = await http.ws_connect(front_url.replace("http", "ws") + "/ws")
            hello: Frame = await ws.receive_json(timeout=5000 * MS)
            assert hello["type"] == "hello" and hello["symbols"]
            await ws.send_json({"op": "subscribe", "symbols": ["*"]})
            wss.append(ws)
        for ws in wss:
            for _ in range(20):
                f = await ws.receive_json(timeout=5000 * MS)
                if f["type"] == "delta" and f["quotes"]:
                    break
            else:
                pytest.fail("no delta through nginx")
        # least_conn spread the sockets over both edges.
        counts = []
        for e in edges:
            async with http.get(e.url + "/healthz") as r:
                counts.append((await r.json())["connections"])
        assert all(c >= 1 for c in counts) and sum(counts) == 4, counts
        # /metrics stays internal: refused through nginx, served by each edge to its scraper,
        # where the edge's Redis reads show up.
        async with http.get(front_url + "/metrics") as r:
            assert r.status == 403
        for e in edges:
            async with http.get(e.url + "/metrics") as r:
                assert r.status == 200
                m = {
                    s.name: s.value
                    for f in text_string_to_metric_families(await r.text())
                    for s in f.samples
                }
            assert m["ticker_bus_up"] == 1 and m["ticker_bus_read_total"] > 0
            assert 0 <= m["ticker_bus_lag_seconds"] < 10
        for ws in wss:
            await ws.close()
        # Server-Sent Events through the sample's /sse location: an idle stream's hello (a few
        # hundred bytes) arrives at once, and deltas flow.
        assert await _sse_events(http, front_url + "/sse", until="hello") == ["hello"]
        kinds = await _sse_events(http, front_url + "/sse?symbols=*&throttle_ms=100", until="delta")
        assert kinds[:2] == ["hello", "snapshot"], kinds


async def _sse_events(http: aiohttp.ClientSession, url: str, until: str) -> list[str]:
    """The event types of a stream, up to the first ``until`` (within 5 s)."""
    kinds: list[str] = []
    async with http.get(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")

        async def read() -> None:
            async for line in r.content:
                if line.startswith(b"event: "):
                    kinds.append(line[7:].strip().decode())
                    if kinds[-1] == until:
                        return

        await asyncio.wait_for(read(), 5000 * MS)
    return kinds

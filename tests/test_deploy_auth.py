"""deploy/nginx.conf with access control on: the page's own origin through the proxy, the publish
API through it, and its commented TLS server block, uncommented, serving https and wss.

Debian's nginx in front of two edge nodes on a private redis-server, as tests/test_deploy_nginx.py
runs it; the edges have an admin token and an allow-list without localhost, so only the same-origin
rule (Host with its port, as the sample forwards it) lets a page on the proxy's origin in. The
edges are run with ``--public-host ticker.example.com``, the name the sample's TLS block serves:
nginx forwards the name the client used, and the edges answer only names they serve.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from tests.conftest import MS, ROOT, ServerProcess
from tests.redisutil import RedisServer, free_port, redis_server  # noqa: F401 (a fixture)
from tests.test_deploy_nginx import NGINX, _config
from tests.wsutil import Frame, recv, recv_type

ADMIN = "deploy-admin-token-" + "n" * 16


def _with_tls(conf: Path, tls_port: int, cert: Path, key: Path, tmp: Path) -> None:
    """Uncomment the sample's TLS server block in the site config next to ``conf``."""
    site = conf.parent / "site.conf"
    text = site.read_text()
    start = text.index("# server {")
    block = "\n".join(
        line.removeprefix("#").removeprefix(" ") for line in text[start:].splitlines()
    )
    block, n = re.subn(r"listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;", block)
    assert n == 1
    block = re.sub(r"ssl_certificate .*;", f"ssl_certificate {cert};", block)
    block = re.sub(r"ssl_certificate_key .*;", f"ssl_certificate_key {key};", block)
    block = re.sub(r"access_log .*;", f"access_log {tmp}/access.log ticker;", block)
    site.write_text(text[:start] + block + "\n")


@pytest.fixture
def front(
    ticker_server: type[ServerProcess],
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[str, str, ssl.SSLContext]]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run `make system-deps` (installs Debian's nginx-light)")
    url = redis_server.url()
    edges = [
        ticker_server(
            "--bus",
            url,
            "--role",
            "edge",
            "--allow-origin",
            "https://app.example.com",
            "--public-host",
            "ticker.example.com",
            env={"TICKER_ADMIN_TOKEN": ADMIN},
        )
        for _ in range(2)
    ]
    port, tls_port = free_port(), free_port()
    conf = _config(tmp_path, port, [e.port for e in edges])
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(p.bytes() for p in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    _with_tls(conf, tls_port, cert, key, tmp_path)
    check = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL, cwd=ROOT)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    try:
        yield f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}", client_ssl
    finally:
        nginx.terminate()
        nginx.wait(10)


async def test_sample_with_origins_publish_and_tls(
    front: tuple[str, str, ssl.SSLContext],
) -> None:
    plain, tls, client_ssl = front
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(plain + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        # The page's own origin (port included) gets through the proxy; another port does not.
        ws = await http.ws_connect(plain.replace("http", "ws") + "/ws", origin=plain)
        assert (await recv(ws))["type"] == "hello"
        other = "http://127.0.0.1:1"
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(plain.replace("http", "ws") + "/ws", origin=other)
        assert err.value.status == 403
        await ws.send_json({"op": "subscribe", "symbols": ["*"]})
        await recv_type(ws, "snapshot", within=5000 * MS)

        # By name: nginx forwards the Host the client used; the edges serve the --public-host
        # name (a page on it is same-origin) and refuse any other (DNS rebinding).
        named = {"Host": "ticker.example.com"}
        async with http.get(plain + "/api/quotes", headers=named) as r:
            assert r.status == 200
        by_name = await http.ws_connect(
            plain.replace("http", "ws") + "/ws", headers=named, origin="http://ticker.example.com"
        )
        assert (await recv(by_name))["type"] == "hello"
        await by_name.close()
        for path in ("/api/quotes", "/ws"):
            async with http.get(plain + path, headers={"Host": "evil.example"}) as r:
                assert r.status == 421, path
                assert (await r.json())["error"] == "misdirected"

        # 10,000 ticks (about 1 MB) through the proxy's body limit, to an edge, to Redis, to
        # the subscriber (on whichever edge).
        t0 = time.time() * 1000
        ticks: list[dict[str, Any]] = [
            {"symbol": f"N{i % 40:02d}", "price": 1 + i / 1000, "ts": t0 + i, "size": 10}
            for i in range(10_000)
        ]
        async with http.post(
            plain + "/api/ticks", json=ticks, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as resp:
            assert (resp.status, await resp.json()) == (202, {"accepted": 10_000})
        last: dict[str, float] = {t["symbol"]: t["price"] for t in ticks}
        got: dict[str, float] = {}

        def complete(f: Frame) -> bool:
            got.update((s, q["price"]) for s, q in f.get("quotes", {}).items() if "price" in q)
            return all(got.get(s) == p for s, p in last.items())

        while not complete(await recv(ws, within=8000 * MS)):
            pass
        await ws.close()

        # The TLS block: https and wss at nginx, plain HTTP to the edges; the page's origin is
        # the https one.
        async with http.get(tls + "/healthz", ssl=client_ssl) as r:
            assert r.status == 200
        wss = await http.ws_connect(tls.replace("https", "wss") + "/ws", ssl=client_ssl, origin=tls)
        hello = await recv(wss)
        assert set(last) <= set(hello["symbols"])
        sock = wss.get_extra_info("socket")
        await wss.close()
        deadline = asyncio.get_running_loop().time() + 5000 * MS
        while sock is not None and sock.fileno() != -1:  # TLS shut down before the loop ends
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)

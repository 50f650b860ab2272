"""``ticker serve --tls-cert/--tls-key``: https and wss with a real certificate, real clients.

A throwaway CA and a server certificate for 127.0.0.1/localhost are made per module (trustme);
the server is a real ``ticker serve`` process; aiohttp and ``websockets`` connect over TLS and
verify the certificate against that CA.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import trustme
from websockets.asyncio.client import connect as ws_connect

from tests.conftest import MS, ServerProcess
from tests.wsutil import recv, recv_type
from ticker.cli import main
from ticker.core.auth import mint_token

SECRET = "tls-test-secret-" + "t" * 32
ADMIN = "tls-admin-token-" + "a" * 16


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = d / "cert.pem", d / "key.pem"
    chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    return chain, key


@pytest.fixture
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def tls_server(cert_files: tuple[Path, Path]) -> Iterator[ServerProcess]:
    cert, key = cert_files
    s = ServerProcess(
        "--feed",
        "sim:symbols=AAPL+MSFT,rate=200,seed=1",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--require-token",
        "--log-level",
        "DEBUG",
        env={"TICKER_TOKEN_SECRET": SECRET, "TICKER_ADMIN_TOKEN": ADMIN},
    )
    try:
        yield s
    finally:
        s.close()


async def close(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Close ``ws`` and wait until its TLS connection is shut down and its socket closed: a test
    that ended first would leave the socket to the garbage collector (a ResourceWarning)."""
    sock = ws.get_extra_info("socket")
    await ws.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5000 * MS
    while sock is not None and sock.fileno() != -1:
        assert loop.time() < deadline, "the TLS connection was never shut down"
        await asyncio.sleep(0.01)


def wss(s: ServerProcess) -> str:
    return s.url.replace("https://", "wss://") + "/ws"


def token(symbols: list[str] | None = None) -> str:
    return mint_token(SECRET, now=time.time(), ttl=60, symbols=symbols)


async def test_https_and_wss_with_aiohttp(
    tls_server: ServerProcess, client_ssl: ssl.SSLContext
) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:"), tls_server.url
    async with aiohttp.ClientSession() as http:
        async with http.get(tls_server.url + "/healthz", ssl=client_ssl) as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ok"
        async with http.get(tls_server.url + "/api/quotes", ssl=client_ssl) as resp:
            assert resp.status == 401, "tokens are still required over TLS"
        ws = await http.ws_connect(
            wss(tls_server), ssl=client_ssl, protocols=("ticker.v1", f"bearer.{token()}")
        )
        assert ws.protocol == "ticker.v1"
        hello = await recv(ws)
        assert hello["symbols"] == ["AAPL", "MSFT"]
        await ws.send_json({"op": "subscribe", "symbols": ["*"], "throttle_ms": 0})
        await recv_type(ws, "snapshot")
        delta = await recv_type(ws, "delta", within=5000 * MS)
        assert set(delta["quotes"]) <= {"AAPL", "MSFT"}
        await close(ws)


async def test_wss_with_websockets(tls_server: ServerProcess, client_ssl: ssl.SSLContext) -> None:
    url = wss(tls_server) + "?token=" + token(symbols=["MSFT"])
    async with ws_connect(url, ssl=client_ssl, proxy=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["symbols"] == ["MSFT"]
        await ws.send(orjson.dumps({"op": "subscribe", "symbols": ["*"]}).decode())
        snap = orjson.loads(await ws.recv())
        assert snap["type"] == "snapshot" and set(snap["quotes"]) <= {"MSFT"}
        for _ in range(3):
            frame = orjson.loads(await ws.recv())
            assert set(frame.get("quotes", {})) <= {"MSFT"}


async def test_certificate_is_checked_and_plain_http_is_refused(
    tls_server: ServerProcess,
) -> None:
    untrusting = ssl.create_default_context()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(tls_server.url + "/healthz", ssl=untrusting)
        with pytest.raises(aiohttp.ClientError):
            await http.get(tls_server.url.replace("https://", "http://") + "/healthz")
    assert tls_server.proc is not None and tls_server.proc.poll() is None, "still serving"


async def test_no_secret_in_a_real_servers_log(
    tls_server: ServerProcess, client_ssl: ssl.SSLContext
) -> None:
    # The whole stderr of a real `ticker serve` at DEBUG, after good and bad tokens of every
    # kind and transport, holds none of them.
    good, expired = token(), mint_token(SECRET, now=1.0, ttl=60)
    forged = mint_token("x" * 40, now=2e9, ttl=60)
    async with aiohttp.ClientSession() as http:
        for t in (good, expired, forged, ADMIN, "wrong-admin-" + "b" * 20):
            for kw in (
                {"params": {"token": t}},
                {"protocols": ("ticker.v1", f"bearer.{t}")},
                {"protocols": (f"bearer.{t}",)},
            ):
                try:
                    ws = await http.ws_connect(wss(tls_server), ssl=client_ssl, **kw)
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status in (400, 401)
                else:
                    await close(ws)
            async with http.post(
                tls_server.url + "/api/ticks",
                json=[{"symbol": "X", "price": 1, "ts": 1}],
                headers={"Authorization": f"Bearer {t}"},
                ssl=client_ssl,
            ) as resp:
                assert resp.status in (202, 401)
        # aiohttp logs the offered subprotocols when none is ours: proof that this log is read
        # (and why an offer of bearer.<token> without ticker.v1 is refused before aiohttp).
        ws = await http.ws_connect(
            wss(tls_server) + "?token=" + good, ssl=client_ssl, protocols=("chat.v9",)
        )
        await close(ws)
    assert tls_server.stop() == 0
    log = tls_server.stderr()
    assert "chat.v9" in log, log
    for s in (good, expired, forged, ADMIN, SECRET, "wrong-admin-" + "b" * 20):
        assert s not in log


def test_tls_usage_errors(
    cert_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = cert_files
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for args, expected in (
        (["--tls-cert", str(cert)], "--tls-cert and --tls-key go together"),
        (["--tls-key", str(key)], "--tls-cert and --tls-key go together"),
        (["--tls-cert", str(junk), "--tls-key", str(key)], "cannot load TLS certificate"),
        (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(key)], "cannot load TLS"),
    ):
        # A taken port: were the case not refused, serving would fail at once (exit 1).
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = str(taken.getsockname()[1])
            rc = main(["serve", "--host", "127.0.0.1", "--port", port, "--feed", "sim", *args])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "", (out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], err

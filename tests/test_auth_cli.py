"""Access settings on the command line: ``[auth]`` in ``--config``, ``TICKER_*`` variables, the
``--allow-origin``/``--require-token``/``--public-host`` flags, and ``ticker token``.

Real ``ticker serve`` processes for what they serve; ``main()`` in-process for usage errors (one
line, exit 2, never the secret).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT, ServerProcess
from tests.wsutil import recv
from ticker.cli import main
from ticker.config import with_served_name
from ticker.core.auth import AuthConfig, AuthError, host_allowed, verify_token

SECRET = "cli-test-secret-" + "c" * 32
ADMIN = "cli-admin-token-" + "d" * 16


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKER_")}
    return subprocess.run(
        [sys.executable, "-m", "ticker", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **(env or {})},
        timeout=30,
    )


def test_token_command_mints_a_verifiable_token(tmp_path: Path) -> None:
    r = run(
        "token",
        "--sub",
        "bob",
        "--symbols",
        "AAPL,MSFT",
        "--ttl",
        "120",
        env={"TICKER_TOKEN_SECRET": SECRET},
    )
    assert r.returncode == 0 and r.stderr == "", r
    grant = verify_token(r.stdout.strip(), SECRET, now=time.time())
    assert grant.sub == "bob"
    assert grant.symbols == frozenset({"AAPL", "MSFT"})
    assert grant.expires is not None and 110 < grant.expires - time.time() <= 121
    with pytest.raises(AuthError, match="expired"):
        verify_token(r.stdout.strip(), SECRET, now=time.time() + 122)
    # From the [auth] table of a config file; every symbol by default.
    cfg = tmp_path / "ticker.toml"
    cfg.write_text(f'[auth]\ntoken_secret = "{SECRET}"\n')
    r = run("token", "--config", str(cfg))
    assert r.returncode == 0, r
    assert verify_token(r.stdout.strip(), SECRET, now=time.time()).symbols is None


def test_token_command_without_a_secret_is_a_usage_error() -> None:
    r = run("token")
    assert r.returncode == 2 and r.stdout == ""
    assert (
        r.stderr.strip()
        == "ticker: no token secret: set TICKER_TOKEN_SECRET or [auth] token_secret"
    )
    r = run("token", env={"TICKER_TOKEN_SECRET": "too-short"})
    assert r.returncode == 2 and "at least 32 bytes" in r.stderr and "too-short" not in r.stderr


@pytest.mark.parametrize(
    ("argv", "config", "env", "expected"),
    [
        (["--require-token"], None, {}, "require_token needs a token secret"),
        ([], "[auth]\nrequire_token = true\n", {}, "require_token needs a token secret"),
        ([], None, {"TICKER_ADMIN_TOKEN": "short-admin"}, "at least 16 characters"),
        ([], '[auth]\nadmin_token = "short-admin"\n', {}, "at least 16 characters"),
        ([], None, {"TICKER_TOKEN_SECRET": "short-secret"}, "at least 32 bytes"),
        ([], "[auth]\nbogus = 1\n", {}, "config [auth]: unknown keys ['bogus']"),
        ([], "auth = 5\n", {}, "config 'auth' must be a table"),
        ([], "[auth]\nallow_origins = 'x'\n", {}, "allow_origins must be a list"),
        (["--allow-origin", "example.com"], None, {}, "allowed origin 'example.com'"),
        ([], "[auth]\nrequire_token = 'yes'\n", {}, "must be true or false"),
        (["--public-host", "https://x.example"], None, {}, "public host 'https://x.example'"),
        ([], "[auth]\npublic_hosts = 'x.example'\n", {}, "public_hosts must be a list"),
        ([], '[auth]\npublic_hosts = ["x.example:443"]\n', {}, "public host 'x.example:443'"),
    ],
)
def test_access_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    config: str | None,
    env: dict[str, str],
    expected: str,
) -> None:
    for k in ("TICKER_ADMIN_TOKEN", "TICKER_TOKEN_SECRET"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if config is not None:
        cfg = tmp_path / "ticker.toml"
        cfg.write_text(config)
        argv = [*argv, "--config", str(cfg)]
    # A taken port: were the case not refused, serving would fail at once (exit 1).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        rc = main(["serve", "--host", "127.0.0.1", "--port", port, "--feed", "sim", *argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticker: ") and expected in lines[0], err
    for secret in ("short-admin", "short-secret"):
        assert secret not in err


async def test_config_auth_table_and_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "ticker.toml"
    cfg.write_text(
        'feeds = ["sim:symbols=AAPL+MSFT,rate=20,seed=3"]\n'
        "[auth]\n"
        f'token_secret = "{SECRET}"\n'
        f'admin_token = "{ADMIN}"\n'
        "require_token = true\n"
        'allow_origins = ["https://app.example.com"]\n'
    )
    s = ServerProcess("--config", str(cfg))
    try:
        minted = run("token", "--symbols", "MSFT", "--config", str(cfg)).stdout.strip()
        async with aiohttp.ClientSession() as http:
            async with http.get(s.url + "/api/symbols") as resp:
                assert resp.status == 401, "[auth] require_token"
            async with http.get(
                s.url + "/api/symbols", headers={"Authorization": f"Bearer {minted}"}
            ) as resp:
                assert [x["symbol"] for x in (await resp.json())["symbols"]] == ["MSFT"]
            ws = await http.ws_connect(
                s.ws_url, params={"token": minted}, origin="https://app.example.com"
            )
            assert (await recv(ws))["symbols"] == ["MSFT"]
            await ws.close()
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(
                    s.ws_url, params={"token": minted}, origin="http://localhost:3000"
                )
            assert err.value.status == 403, "the [auth] list replaced the localhost default"
            async with http.post(
                s.url + "/api/news",
                json={"headline": "h", "source": "cli"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ) as resp:
                assert resp.status == 202, "[auth] admin_token"
    finally:
        s.close()
    # Flags override the file.
    s = ServerProcess("--config", str(cfg), "--allow-origin", "http://localhost:*")
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                s.ws_url, params={"token": minted}, origin="http://localhost:3000"
            )
            assert (await recv(ws))["type"] == "hello"
            await ws.close()
    finally:
        s.close()


async def test_environment_gives_the_secrets(tmp_path: Path) -> None:
    s = ServerProcess(
        "--feed",
        "sim:symbols=AAPL,rate=20",
        "--require-token",
        env={"TICKER_TOKEN_SECRET": SECRET, "TICKER_ADMIN_TOKEN": ADMIN},
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(s.url + "/api/quotes") as resp:
                assert resp.status == 401
            async with http.get(
                s.url + "/api/quotes", headers={"Authorization": f"Bearer {ADMIN}"}
            ) as resp:
                assert resp.status == 200
    finally:
        s.close()


def test_the_name_serve_binds_to_is_a_public_host() -> None:
    """``ticker serve --host ticker.lan``: clients reach it by that name (no rebinding there)."""
    auth = with_served_name(AuthConfig(public_hosts=("a.example",)), "Ticker.LAN")
    assert auth.host_rules == ("a.example", "ticker.lan")
    assert host_allowed("ticker.lan:8080", auth.host_rules)
    for address in ("0.0.0.0", "::", "127.0.0.1", "::1", "localhost", "a.example"):
        assert with_served_name(AuthConfig(public_hosts=("a.example",)), address).host_rules == (
            "a.example",
        ), address

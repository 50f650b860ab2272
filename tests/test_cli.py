"""``python -m ticker serve`` and ``ticker feeds`` as subprocesses.

The first stdout line, usage errors, ``--config`` with flags overriding it, and SIGINT/SIGTERM
shutdown (every socket closed with 1001, exit 0 within 5 s).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import MS, ROOT, ServerProcess
from tests.wsutil import RawWebSocket, recv, recv_type
from ticker.cli import main

LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$")


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


# Usage errors: (name, argv after `serve`, config text or None, substrings of the one-line error)
USAGE_ERRORS: list[tuple[str, list[str], str | None, list[str]]] = [
    ("unknown feed", ["--feed", "nope"], None, ["unknown feed 'nope'", "sim", "simnews"]),
    ("unknown feed option", ["--feed", "sim:bogus=1"], None, ["bogus", "rate", "seed", "symbols"]),
    ("bad option value", ["--feed", "sim:rate=abc"], None, ["rate", "abc"]),
    ("option out of range", ["--feed", "sim:rate=0"], None, ["rate", "1..100000"]),
    ("option too big", ["--feed", "sim:rate=1000000"], None, ["rate"]),
    ("bad symbols count", ["--feed", "sim:symbols=0"], None, ["symbols"]),
    ("bad news rate", ["--feed", "simnews:rate=-1"], None, ["rate"]),
    ("option without value", ["--feed", "sim:rate"], None, ["'rate'", "key=value"]),
    ("missing feed name", ["--feed", ":rate=5"], None, ["missing feed name"]),
    ("one bad feed of two", ["--feed", "sim", "--feed", "simnews:bogus=2"], None, ["bogus"]),
    ("negative throttle", ["--throttle-ms", "-5"], None, ["throttle"]),
    ("port out of range", ["--port", "70000"], None, ["port", "70000"]),
    ("missing config", ["--config", "/nonexistent/ticker.toml"], None, ["cannot read config"]),
    ("invalid toml", [], "feeds = [\n", ["not valid TOML"]),
    ("unknown config key", [], 'colour = "red"\n', ["colour", "feeds", "throttle_ms"]),
    ("unknown server key", [], "[server]\nbogus = 1\n", ["bogus", "max_buffer_bytes"]),
    ("config feeds not a list", [], 'feeds = "sim"\n', ["feeds", "list"]),
    ("config unknown feed", [], 'feeds = ["nope"]\n', ["unknown feed 'nope'", "sim"]),
    ("config bad throttle type", [], 'throttle_ms = "fast"\n', ["throttle_ms", "fast"]),
    (
        "config bad server value",
        [],
        '[server]\nmax_buffer_bytes = "big"\n',
        ["max_buffer_bytes", "big"],
    ),
    (
        "config negative server value",
        [],
        "[server]\nslow_close_after = -1.0\n",
        ["slow_close_after", "-1.0"],
    ),
    ("config zero rate", [], "[server]\nrate = 0\n", ["rate"]),
]


def run_cli(*args: str, timeout: float = 20.0) -> Result:
    p = subprocess.run(
        [sys.executable, "-m", "ticker", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    return Result(p.returncode, p.stdout, p.stderr)


# The first few run as real processes (exit code and stderr of `python -m ticker`); the rest call
# the same `main()` in-process, which is much cheaper than an interpreter start each.
IN_PROCESS_FROM = 5


def run_usage_case(args: list[str]) -> Result:
    """``ticker serve --port 0 ARGS``, expected to fail; killed at once if it starts serving."""
    p = subprocess.Popen(
        [sys.executable, "-m", "ticker", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert p.stdout is not None
    first = p.stdout.readline()  # "" at exit; "listening on ..." if it did not fail
    if first:
        p.kill()
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return Result(p.returncode, first + out, err)


def case_args(tmp: Path, name: str, argv: list[str], config: str | None) -> list[str]:
    args = list(argv)
    if config is not None:
        path = tmp / (re.sub(r"\W+", "_", name) + ".toml")
        path.write_text(config)
        args += ["--config", str(path)]
    return args


@pytest.fixture(scope="module")
def process_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """The subprocess cases, concurrently."""
    tmp = tmp_path_factory.mktemp("cli")
    cases = {c[0]: case_args(tmp, c[0], c[1], c[2]) for c in USAGE_ERRORS[:IN_PROCESS_FROM]}
    with ThreadPoolExecutor(len(cases)) as pool:
        return dict(zip(cases, pool.map(run_usage_case, cases.values()), strict=True))


def check_usage_error(r: Result, expected: list[str]) -> None:
    assert r.rc == 2, r
    assert r.stdout == "", "never reached listening"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("ticker: "), lines[0]
    for s in expected:
        assert s in lines[0], (s, lines[0])


@pytest.mark.parametrize(
    ("name", "expected"),
    [(c[0], c[3]) for c in USAGE_ERRORS[:IN_PROCESS_FROM]],
    ids=[c[0] for c in USAGE_ERRORS[:IN_PROCESS_FROM]],
)
def test_usage_error_process_one_line_exit_2(
    process_results: dict[str, Result], name: str, expected: list[str]
) -> None:
    check_usage_error(process_results[name], expected)


@pytest.mark.parametrize(
    ("name", "argv", "config", "expected"),
    USAGE_ERRORS[IN_PROCESS_FROM:],
    ids=[c[0] for c in USAGE_ERRORS[IN_PROCESS_FROM:]],
)
def test_usage_error_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    argv: list[str],
    config: str | None,
    expected: list[str],
) -> None:
    # Were the case not refused, serving would fail at once on a port that is taken (exit 1),
    # so a regression fails this test instead of hanging it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        if "--port" not in argv:
            argv = ["--port", port, *argv]
        rc = main(["serve", "--host", "127.0.0.1", *case_args(tmp_path, name, argv, config)])
    out, err = capsys.readouterr()
    check_usage_error(Result(rc, out, err), expected)


def test_unknown_flag_exits_2_naming_it() -> None:
    r = run_cli("serve", "--port", "0", "--colour", "red")
    assert r.rc == 2 and r.stdout == ""
    assert "unrecognized arguments: --colour red" in r.stderr


def test_feeds_lists_adapters_and_options() -> None:
    r = run_cli("feeds")
    assert r.rc == 0, r.stderr
    blocks: dict[str, list[str]] = {}
    current = ""
    for line in r.stdout.splitlines():
        if line.startswith("    "):
            blocks[current].append(line.split()[0])
        else:
            current = line.split()[0]
            blocks[current] = []
            assert len(line.split(maxsplit=1)) == 2, f"{line!r} has a description"
    assert {"sim", "simnews"} <= set(blocks)
    assert blocks["sim"] == ["symbols", "rate", "seed", "step_ms", "burst"]
    assert {"symbols", "rate", "seed"} <= set(blocks["simnews"])


def health(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
        body: dict[str, Any] = orjson.loads(r.read())
    return body


def test_first_line_and_port_zero(ticker_server: type[ServerProcess]) -> None:
    a = ticker_server("--host", "127.0.0.1", "--port", "0", "--feed", "sim:rate=10")
    b = ticker_server("--feed", "sim:rate=10")
    for s in (a, b):
        m = LISTENING.match(f"listening on {s.url}")
        assert m and int(m.group(1)) > 0
        assert s.proc is not None and s.proc.poll() is None
    assert a.port != b.port, "each --port 0 bound its own free port"
    h = health(a.url)
    assert h["status"] == "ok" and [f["name"] for f in h["feeds"]] == ["sim"]
    # The port is taken: a clear one-line error, exit 1.
    r = run_cli("serve", "--port", str(a.port), "--feed", "sim:rate=10")
    assert r.rc == 1 and r.stdout == ""
    assert (
        r.stderr.strip().splitlines()[-1].startswith(f"ticker: cannot listen on 127.0.0.1:{a.port}")
    )


def test_default_feeds(ticker_server: type[ServerProcess]) -> None:
    s = ticker_server()
    assert [f["name"] for f in health(s.url)["feeds"]] == ["sim", "simnews"]


@pytest.fixture
def config_file(tmp_path: Path) -> Iterator[Path]:
    cfg = tmp_path / "ticker.toml"
    cfg.write_text(
        "throttle_ms = 250\n"
        'feeds = ["sim:symbols=AAPL+MSFT,rate=50,seed=2",'
        ' {name = "simnews", rate = "3000", symbols = "AAPL+MSFT"}]\n'
        "[server]\nmax_throttle_ms = 2000\nnews_retain = 5\n"
    )
    yield cfg


async def hello_and_throttle_ack(ws_url: str, ms: int) -> tuple[dict[str, Any], int]:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        hello = await recv(ws)
        await ws.send_json({"op": "throttle", "ms": ms, "id": 1})
        ack = await recv_type(ws, "ack")
        return hello, ack["ms"]


async def test_config_file_sets_feeds_and_settings(
    ticker_server: type[ServerProcess], config_file: Path
) -> None:
    s = ticker_server("--config", str(config_file))
    hello, ms = await hello_and_throttle_ack(s.ws_url, 5000)
    assert hello["throttle_ms"] == 250
    assert hello["symbols"] == ["AAPL", "MSFT"]
    assert ms == 2000, "[server] max_throttle_ms"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5000 * MS
    while (h := health(s.url))["news_last_id"] == 0 or h["stats"].get("news_in", 0) <= 5:
        assert loop.time() < deadline, h
        await asyncio.sleep(0.05)
    assert h["news_retained"] == 5, "[server] news_retain"
    assert [f["name"] for f in h["feeds"]] == ["sim", "simnews"]


async def test_flags_override_config(ticker_server: type[ServerProcess], config_file: Path) -> None:
    s = ticker_server(
        "--config", str(config_file), "--throttle-ms", "40", "--feed", "sim:symbols=KO,rate=20"
    )
    hello, ms = await hello_and_throttle_ack(s.ws_url, 5000)
    assert hello["throttle_ms"] == 40
    assert hello["symbols"] == ["KO"]
    assert ms == 2000, "settings the flags do not name still come from the file"
    assert [f["name"] for f in health(s.url)["feeds"]] == ["sim"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_closes_every_socket_1001_and_exits_0(
    ticker_server: type[ServerProcess], sig: signal.Signals
) -> None:
    s = ticker_server("--feed", "sim:rate=2000,seed=1", "--feed", "simnews:rate=600")
    assert s.proc is not None
    async with aiohttp.ClientSession() as http:
        a = await http.ws_connect(s.ws_url)
        await recv(a)
        await a.send_json({"op": "subscribe", "symbols": ["*"], "id": 1})
        await recv_type(a, "snapshot")
        b = await connect(s.ws_url, proxy=None)
        await b.recv()
        # A client that stopped reading (its close frame waits behind what is in flight), and
        # with SIGTERM one that will never read again (the server gives up on it in time).
        stalled = await RawWebSocket.connect("127.0.0.1", s.port)
        raws = [stalled]
        if sig == signal.SIGTERM:
            raws.append(await RawWebSocket.connect("127.0.0.1", s.port))
        for raw in raws:
            await raw.recv_json()
            await raw.send_json({"op": "throttle", "ms": 0})
            await raw.send_json({"op": "subscribe", "symbols": ["*"]})
            await raw.send_json({"op": "news", "topics": ["*"]})
        await asyncio.sleep(0.5)
        assert health(s.url)["connections"] == 2 + len(raws)

        t0 = time.monotonic()
        os.kill(s.proc.pid, sig)

        msg = await a.receive(timeout=5000 * MS)
        while msg.type is aiohttp.WSMsgType.TEXT:
            msg = await a.receive(timeout=5000 * MS)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001, msg

        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(5000 * MS):
                while True:
                    await b.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001

        while True:
            op, payload = await stalled.recv_frame(5000 * MS)
            if op == 0x8:
                break
        assert int.from_bytes(payload[:2], "big") == 1001
        await stalled.send_frame(0x8, payload[:2])

        rc = await asyncio.to_thread(s.proc.wait, 10)
        elapsed = time.monotonic() - t0
        for raw in raws:
            raw.close()
    assert rc == 0, s.stderr()[-3000:]
    assert elapsed < 5.0, f"took {elapsed:.2f}s to exit"
    assert "Traceback" not in s.stderr(), s.stderr()[-3000:]

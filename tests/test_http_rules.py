"""HTTP rules in front of the routes, against real ``ticker serve`` processes and raw sockets.

* The ``Host`` allow-list (DNS rebinding): ``/ws`` and ``/api/*`` answer only to IP literals,
  ``localhost`` (and ``*.localhost``) and the configured public names, else **421**.
* WebSocket handshake rules: version 13 only (**426**), no ``HEAD`` nor HTTP/1.0 upgrades (**400**),
  refused before an admission slot is taken.
* A signed token with an absurd ``exp`` is a **401** like any bad token.
* A request body must arrive within ``http_idle_s`` (**408**), and a client that goes away
  mid-body costs one log line, not a traceback.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import MS, ServerProcess
from tests.test_auth_logic import signed_token

SECRET = "http-rules-secret-" + "s" * 32
ADMIN = "http-rules-admin-" + "a" * 16
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
IDLE_S = 1.0
EVIL = {
    "error": "misdirected",
    "message": "host 'evil.example' is not served here; add it with --public-host",
}


# A raw HTTP/1.x client: whatever the test writes goes out as is.


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def _parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body, raw)


def read_answer(sock: socket.socket, head_only: bool = False, within: float = 5.0) -> Answer:
    """One response from ``sock``: its head and, unless ``head_only`` or a 101 (frames follow),
    its Content-Length body."""
    sock.settimeout(within)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed without an answer: {raw!r}")
        raw += chunk
    answer = _parse(raw)
    if head_only or answer.status == 101:
        return answer
    while len(answer.body) < int(answer.headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
        answer = _parse(raw)
    return answer


def request(
    port: int,
    target: str,
    host: str | None,
    *,
    method: str = "GET",
    version: str = "1.1",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Answer:
    """One request as written (no Host line when ``host`` is None); the answer."""
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        return read_answer(sock, head_only=method == "HEAD")


def upgrade(
    port: int,
    host: str | None,
    *,
    target: str = "/ws",
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> Answer:
    """A WebSocket opening handshake: the 101's head, or the refusal."""
    hs = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }
    return request(port, target, host, headers=hs, **kw)


def healthz(port: int) -> dict[str, Any]:
    answer = request(port, "/healthz", f"127.0.0.1:{port}")
    assert answer.status == 200
    out: dict[str, Any] = answer.json()
    return out


def wait_for(pred: Any, within: float = 5000 * MS, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# Servers (one process each for the module)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """No tokens (so ``local_replay`` obeys a loopback ``POST /api/replay``), a replay feed."""
    csv = tmp_path_factory.mktemp("replay") / "ticks.csv"
    t0 = 1_709_303_400_000
    csv.write_text(
        "ts,symbol,price\n" + "".join(f"{t0 + i * 1000},AAA,{10 + i}\n" for i in range(3600))
    )
    s = ServerProcess("--feed", f"replay:path={csv},speed=1", "--http-idle-s", str(IDLE_S))
    wait_for(
        lambda: any(f["state"] == "playing" for f in replay_state(s.port)),
        what="the replay feed",
    )
    yield s
    s.close()


@pytest.fixture(scope="module")
def secured() -> Iterator[ServerProcess]:
    """Client tokens (optional) and the admin token: publishing on."""
    s = ServerProcess(
        "--feed",
        "sim:symbols=AAPL,rate=5,seed=1",
        "--http-idle-s",
        str(IDLE_S),
        env={"TICKER_TOKEN_SECRET": SECRET, "TICKER_ADMIN_TOKEN": ADMIN},
    )
    yield s
    s.close()


def replay_state(port: int) -> list[dict[str, Any]]:
    feeds: list[dict[str, Any]] = request(port, "/api/replay", f"127.0.0.1:{port}").json()["feeds"]
    return feeds


# The Host allow-list


def test_a_rebound_name_is_misdirected_on_ws_and_the_apis(plain: ServerProcess) -> None:
    port = plain.port
    host, origin = f"evil.example:{port}", f"http://evil.example:{port}"
    # Same-origin by Host and Origin: only the Host rule can tell.
    ws = upgrade(port, host, headers={"Origin": origin})
    assert (ws.status, ws.json()) == (421, EVIL), ws.raw
    assert "upgrade" not in ws.headers, "never upgraded"
    quotes = request(port, "/api/quotes", host, headers={"Origin": origin})
    assert (quotes.status, quotes.json()) == (421, EVIL)
    assert quotes.headers["content-type"].startswith("application/json")
    for h in (host, "EVIL.example", "evil.example."):
        pause = request(
            port,
            "/api/replay",
            h,
            method="POST",
            headers={"Origin": origin, "Content-Type": "application/json"},
            body=b'{"action": "pause"}',
        )
        assert (pause.status, pause.json()) == (421, EVIL), h
    assert [f["state"] for f in replay_state(port)] == ["playing"], "the command was not obeyed"
    # Any /api/ path is behind the rule, even one that does not exist.
    assert request(port, "/api/nothing-here", host).status == 421


def test_ip_literals_and_localhost_are_served(plain: ServerProcess) -> None:
    port = plain.port
    for name in ("127.0.0.1", "[::1]", "localhost", "LocalHost", "app.localhost", "10.9.8.7"):
        for host in (f"{name}:{port}", name):
            origin = f"http://{host}"
            ws = upgrade(port, host, headers={"Origin": origin})
            assert ws.status == 101, (host, ws.raw)
            assert request(port, "/api/quotes", host).status == 200, host
    # A replay command from this machine (local_replay) is still obeyed.
    for action in ("pause", "resume"):
        answer = request(
            port,
            "/api/replay",
            f"localhost:{port}",
            method="POST",
            headers={"Content-Type": "application/json"},
            body=orjson.dumps({"action": action}),
        )
        assert answer.status == 200, answer.raw


def test_a_request_without_host_is_refused(plain: ServerProcess) -> None:
    answer = request(plain.port, "/api/quotes", None, version="1.0")
    assert answer.status == 421 and answer.json()["error"] == "misdirected"


def test_the_dashboard_and_healthz_do_not_look_at_host(plain: ServerProcess) -> None:
    for path in ("/", "/static/app.js", "/healthz"):
        assert request(plain.port, path, f"evil.example:{plain.port}").status == 200, path
        assert request(plain.port, path, None, version="1.0").status == 200, path


def _named(ticker_server: type[ServerProcess], *args: str) -> ServerProcess:
    return ticker_server("--feed", "sim:symbols=AAPL,rate=5,seed=1", *args)


def test_public_host_flag_serves_that_name(ticker_server: type[ServerProcess]) -> None:
    s = _named(ticker_server, "--public-host", "ticker.example.com", "--public-host", "b.example")
    for host in ("ticker.example.com:8443", "Ticker.Example.COM", "b.example:1"):
        assert request(s.port, "/api/quotes", host).status == 200, host
        ws = upgrade(s.port, host, headers={"Origin": f"https://{host}"})
        assert ws.status == 101, (host, ws.raw)
    for host in ("evil.example", "sub.ticker.example.com", "ticker.example.com.evil.example"):
        answer = request(s.port, "/api/quotes", host)
        assert answer.status == 421, host
        assert answer.json()["message"] == (
            f"host '{host}' is not served here; add it with --public-host"
        )


def test_public_hosts_config_key_and_star(
    ticker_server: type[ServerProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "ticker.toml"
    cfg.write_text('[auth]\npublic_hosts = ["ticker.example.org", "*.tenants.example.org"]\n')
    s = _named(ticker_server, "--config", str(cfg))
    for host in ("ticker.example.org:443", "acme.tenants.example.org"):
        assert request(s.port, "/api/quotes", host).status == 200, host
    for host in ("tenants.example.org", "example.org", "evil.example"):
        assert request(s.port, "/api/quotes", host).status == 421, host
    # "*": any Host (a proxy in front rewrites it); a request still needs one.
    anyhost = _named(ticker_server, "--public-host", "*")
    for host in ("evil.example", "whatever.internal:81"):
        assert request(anyhost.port, "/api/quotes", host).status == 200, host
    assert request(anyhost.port, "/api/quotes", None, version="1.0").status == 421


# Handshake rules


def test_websocket_versions_other_than_13_get_426(plain: ServerProcess) -> None:
    port = plain.port
    before = healthz(port)["admission"]
    for version in ("8", "7", "12", "14", "0", "thirteen"):
        answer = upgrade(port, f"127.0.0.1:{port}", headers={"Sec-WebSocket-Version": version})
        assert answer.status == 426, (version, answer.raw)
        assert answer.headers["sec-websocket-version"] == "13"
        assert answer.json()["error"] == "upgrade_required"
    after = healthz(port)["admission"]
    assert after["admitted"] == before["admitted"], "refused before admission"
    assert upgrade(port, f"127.0.0.1:{port}").status == 101


def test_head_and_http10_upgrades_are_refused(plain: ServerProcess) -> None:
    port = plain.port
    before = healthz(port)["admission"]
    head = upgrade(port, f"127.0.0.1:{port}", method="HEAD")
    assert head.status == 400, head.raw
    assert head.headers["content-type"].startswith("application/json")
    old = upgrade(port, f"127.0.0.1:{port}", version="1.0")
    assert old.status == 400, old.raw
    assert old.json()["error"] == "bad_request"
    after = healthz(port)["admission"]
    assert (after["admitted"], after["open"]) == (before["admitted"], before["open"])


# Tokens with absurd claims


ABSURD = [
    b'{"exp": 1' + b"0" * 400 + b"}",
    b'{"exp": -1' + b"0" * 400 + b"}",
    b'{"exp": 1e308}',
    b'{"exp": 1e400}',
    b'{"exp": 1.7976931348623157e308, "sub": "x"}',
    b'{"exp": "soon"}',
    b'{"exp": [1]}',
    b'{"exp": {"a": 1}}',
    b'{"exp": true}',
    b'{"exp": 4102444800, "nbf": 1e400}',
    b'{"exp": 4102444800, "nbf": 1' + b"0" * 400 + b"}",
]


def test_a_token_with_an_absurd_exp_is_a_401(secured: ServerProcess) -> None:
    port = secured.port
    host = f"127.0.0.1:{port}"
    assert upgrade(port, host).status == 101, "no token: served (tokens are optional here)"
    for payload in ABSURD:
        token = signed_token(payload, SECRET)
        ws = upgrade(port, host, target=f"/ws?token={token}")
        assert ws.status == 401, (payload[:40], ws.raw[:200])
        assert ws.json()["error"] == "unauthorized"
        bearer = request(port, "/api/quotes", host, headers={"Authorization": f"Bearer {token}"})
        assert bearer.status == 401, (payload[:40], bearer.raw[:200])
    log = secured.stderr()
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]


# Request bodies


def _slow_post(port: int, path: str, trickle: bool) -> tuple[Answer, float, float]:
    """Headers with ``Content-Length: 1000``, ten bytes, then silence or a byte every 100 ms:
    (the answer, seconds until it came, seconds until the server closed)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {ADMIN}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        t0 = time.monotonic()
        sock.sendall(head + b'{"action":')
        raw = b""
        sock.settimeout(0.1)
        answered = closed = None
        deadline = t0 + 10 * IDLE_S
        while closed is None and time.monotonic() < deadline:
            if trickle and answered is None:
                try:
                    sock.sendall(b" ")
                except OSError:
                    pass
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionError:
                chunk = b""
            if not chunk:
                closed = time.monotonic() - t0
                break
            raw += chunk
            if answered is None and b"\r\n\r\n" in raw:
                answered = time.monotonic() - t0
        assert answered is not None, f"no answer within {10 * IDLE_S} s: {raw!r}"
        assert closed is not None, "the connection was left open"
        return _parse(raw), answered, closed


@pytest.mark.parametrize("trickle", [False, True], ids=["pause", "trickle"])
def test_a_slow_body_gets_408_within_http_idle_s(
    plain: ServerProcess, secured: ServerProcess, trickle: bool
) -> None:
    bound = 2 * IDLE_S * 1000 * MS
    for server, path in (
        (plain, "/api/replay"),
        (secured, "/api/ticks"),
        (secured, "/api/news"),
    ):
        answer, answered, closed = _slow_post(server.port, path, trickle)
        assert answer.status == 408, (path, answer.raw)
        assert answer.json()["error"] == "timeout"
        assert answer.headers.get("connection", "").lower() == "close"
        assert 0.8 * IDLE_S <= answered <= bound, (path, answered)
        assert closed <= bound, (path, closed)
    assert [f["state"] for f in replay_state(plain.port)] == ["playing"]


def test_a_client_gone_mid_body_is_one_log_line(
    plain: ServerProcess, secured: ServerProcess
) -> None:
    for server, path in (
        (plain, "/api/replay"),
        (secured, "/api/ticks"),
        (secured, "/api/news"),
    ):
        before = server.stderr().count("went away")
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    f"Content-Type: application/json\r\nAuthorization: Bearer {ADMIN}\r\n"
                    "Content-Length: 1000\r\n\r\n[{"
                ).encode()
            )
            time.sleep(0.2)
        wait_for(
            lambda: server.stderr().count("went away") == before + 1,  # noqa: B023
            what=f"the log line of {path}",
        )
        time.sleep(0.2)
        log = server.stderr()
        assert log.count("went away") == before + 1, log[-2000:]
        assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]
        assert healthz(server.port)["status"] == "ok"

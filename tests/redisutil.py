"""Test helpers: a private ``redis-server`` per test session (never one already running).

I/O shell around a subprocess. The binary comes from Debian's ``redis-server`` package
(``scripts/system-deps.sh``). Every server listens on 127.0.0.1 on a free port with persistence
off, so a restart really starts from an empty Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

__all__ = ["RedisServer", "free_port", "redis_server"]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server --port N --save '' --appendonly no`` subprocess; restartable on N."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.binary = binary
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.TemporaryDirectory(prefix="ticker-redis-")
        for _ in range(5):  # another process may take the port between probe and bind
            self.port = free_port()
            if self._spawn():
                return
        raise RuntimeError("could not start redis-server on a free port")

    def _spawn(self) -> bool:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.name,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.ping():
                return True
            time.sleep(0.01)
        self.kill()
        return False

    def ping(self) -> bool:
        """True when the server answers PING (a raw RESP round trip)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, prefix: str | None = None) -> str:
        """``redis://127.0.0.1:PORT/0?prefix=...``: a fresh key prefix isolates each test."""
        return f"redis://127.0.0.1:{self.port}/0?prefix={prefix or 't' + uuid.uuid4().hex[:10]}"

    def kill(self) -> None:
        """SIGKILL, as a crash: clients see their connections reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def restart(self) -> None:
        """Start again on the same port (empty: persistence is off)."""
        self.kill()
        deadline = time.monotonic() + 10.0
        while not self._spawn():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not restart on port {self.port}")
            time.sleep(0.1)

    def close(self) -> None:
        self.kill()
        self.dir.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private Redis for the test session, stopped at the end."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()

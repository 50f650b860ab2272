"""Shared test helpers: timing scale, real-data location, a running ``ticker serve`` process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Timing constants are multiplied by MS; TICKER_TEST_TIMEOUT_FACTOR scales them on slow machines.
MS = 0.001 * float(os.environ.get("TICKER_TEST_TIMEOUT_FACTOR", "1"))


def real_data_dir() -> Path | None:
    """``$TICKER_REAL_DATA`` or ``../shared/data`` beside the repo; None when absent."""
    env = os.environ.get("TICKER_REAL_DATA")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture
def real_data() -> Path:
    """The folder of real third-party data; skips (one line) only when it is absent."""
    d = real_data_dir()
    if d is None:
        pytest.skip("real data folder absent (set TICKER_REAL_DATA or provide ../shared/data)")
    return d


class ServerProcess:
    """A ``python -m ticker serve`` (or ``command``) subprocess; ``url`` is read from its first
    stdout line."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, command: str = "serve"
    ) -> None:
        self.args = ["--port", "0", *args] if "--port" not in args else list(args)
        self.env = env
        self.command = command
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log = tempfile.TemporaryFile(mode="w+")
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ticker", self.command, *self.args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(self.env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"server did not start: {line!r} {self.stderr()[-2000:]}")
        self.url = line.split()[-1]

    def stderr(self) -> str:
        """Everything the server logged so far."""
        self.log.seek(0)
        return self.log.read()

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """Kill the process if still running and close its pipe and log (no ResourceWarning)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.kill()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.log.close()


@pytest.fixture
def ticker_server() -> Iterator[type[ServerProcess]]:
    """Factory fixture: ``ticker_server("--feed", "sim:seed=1")``; every process is stopped."""
    started: list[ServerProcess] = []

    class _Tracked(ServerProcess):
        def start(self) -> None:
            super().start()
            started.append(self)

    yield _Tracked
    for s in started:
        s.close()

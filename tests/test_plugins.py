"""Plug-in feeds: discovery by entry point, broken plug-ins reported by name, end to end.

The registry tests hand it entry points directly (nothing is scanned). The end-to-end test
pip-installs ``examples/ticker-walk`` into a temporary venv (offline: no index, no build
isolation) next to a broken plug-in, then runs ``ticker feeds`` and ``ticker serve --feed
walk:...`` from that venv: the entry-point path, all the way to prices on ``/api/quotes``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import MS, ROOT
from ticker.bus.registry import (
    PluginError,
    SpecError,
    deferred_source,
    describe,
    load,
    source_from_options,
    sources_from_specs,
)
from ticker.bus.supervisor import FeedRunner
from ticker.core.events import Event, Tick

GROUP = "ticker.feeds"


class Quiet:
    """A feed factory that declares a stall timeout."""

    description: ClassVar[str] = "quiet"
    options: ClassVar[dict[str, str]] = {}
    stall_timeout: ClassVar[float] = 12.0

    def __init__(self, options: Mapping[str, str]) -> None:
        if options:
            raise ValueError(f"unknown option {', '.join(options)}")
        self.name = "quiet"

    async def events(self) -> AsyncIterator[Event]:
        yield Tick("Q", 1.0, 1.7e12)

    async def aclose(self) -> None:
        pass


class Buggy:
    def __init__(self, options: Mapping[str, str]) -> None:
        raise TypeError("oops")


def eps(**entries: str) -> dict[str, EntryPoint]:
    return {n: EntryPoint(name=n, value=v, group=GROUP) for n, v in entries.items()}


PLUGINS = eps(
    quiet="tests.test_plugins:Quiet",
    buggy="tests.test_plugins:Buggy",
    broken="ticker_no_such_module_for_tests:Feed",
)


def test_a_broken_plugin_is_reported_by_name_and_the_others_still_load() -> None:
    infos = {i.name: i for i in describe(PLUGINS)}
    assert infos["broken"].error is not None
    assert "'broken' failed to load: ModuleNotFoundError" in infos["broken"].error
    assert (infos["quiet"].error, infos["quiet"].description) == (None, "quiet")
    with pytest.raises(PluginError, match="'broken'"):
        load("broken", PLUGINS)
    with pytest.raises(SpecError, match="unknown feed 'nope'; available feeds: broken, buggy"):
        load("nope", PLUGINS)


def test_sources_carry_the_feeds_stall_timeout_and_bugs_are_one_line() -> None:
    assert source_from_options("quiet", {}, PLUGINS).stall_timeout == 12.0
    assert source_from_options("quiet", {}, PLUGINS, stall_timeout=3.0).stall_timeout == 3.0
    with pytest.raises(SpecError, match="feed 'quiet': unknown option x"):
        source_from_options("quiet", {"x": "1"}, PLUGINS)
    with pytest.raises(PluginError, match="feed 'buggy' failed to start: TypeError: oops"):
        source_from_options("buggy", {}, PLUGINS)


async def test_a_plugin_whose_constructor_raises_does_not_stop_the_others() -> None:
    """Not a bad option (a ValueError, a usage error): a bug or a missing resource. The other
    feeds run, and its construction is retried under supervision like ``events()``."""
    sources, broken = sources_from_specs(["quiet", "buggy"], eps=PLUGINS)
    assert [s.name for s in sources] == ["quiet", "buggy"]
    assert [str(e) for e in broken] == ["feed 'buggy' failed to start: TypeError: oops"]
    runner = FeedRunner(
        sources[1], lambda ev: None, initial_backoff=0.01, max_backoff=0.02, rng=random.Random(2)
    )
    runner.start()
    for _ in range(200):
        if runner.errors >= 2:
            break
        await asyncio.sleep(0.01)
    assert runner.health()["last_error"] == "TypeError: oops"
    await runner.stop()
    with pytest.raises(PluginError, match="'buggy'"):  # alone, it is still an error at start
        sources_from_specs(["buggy"], eps=PLUGINS)


async def test_a_broken_plugin_is_retried_with_backoff_under_its_name() -> None:
    runner = FeedRunner(
        deferred_source("broken", PLUGINS),
        lambda ev: None,
        initial_backoff=0.01,
        max_backoff=0.02,
        rng=random.Random(2),
    )
    runner.start()
    for _ in range(200):
        if runner.errors >= 2:
            break
        await asyncio.sleep(0.01)
    health = runner.health()
    assert health["name"] == "broken" and health["errors"] >= 2
    assert "'broken' failed to load" in str(health["last_error"])
    await runner.stop()


# End to end through pip and a real `ticker serve`


def _venv(tmp_path: Path) -> Path:
    """A venv that sees this environment's packages (ticker, aiohttp...), installing into itself."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    ours = sysconfig.get_paths()["purelib"]
    # addsitedir, not a bare path: our site-packages' own .pth files (the editable install) run.
    (site / "_ticker_test_parent.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    # A plug-in whose module is gone: installed metadata, nothing to import.
    info = site / "ticker_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ticker-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nbroken = ticker_broken_gone:Feed\n")
    return venv / "bin" / "python"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_pip_installed_example_plugin_serves_through_its_entry_point(tmp_path: Path) -> None:
    python = _venv(tmp_path)
    example = shutil.copytree(ROOT / "examples" / "ticker-walk", tmp_path / "ticker-walk")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            str(example),
        ],
        check=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
    )
    run: dict[str, Any] = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True}

    listing = subprocess.run([str(python), "-m", "ticker", "feeds"], **run)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert "walk  example plug-in: random-walk prices for the symbols you name" in lines
    assert any(
        line.split() == ["symbols", "+-separated", "symbols", "(default", "WALK)"] for line in lines
    )
    broken = [line for line in lines if line.startswith("broken")]
    assert broken and "(broken) feed 'broken' failed to load: ModuleNotFoundError" in broken[0]
    assert any(line.startswith("replay  ") for line in lines)

    alone = subprocess.run(
        [str(python), "-m", "ticker", "serve", "--port", "0", "--feed", "broken"], **run
    )
    assert alone.returncode == 2
    assert alone.stderr.strip().startswith("ticker: feed 'broken' failed to load")
    assert len(alone.stderr.strip().splitlines()) == 1

    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [
            str(python),
            "-m",
            "ticker",
            "serve",
            "--port",
            "0",
            "--feed",
            "walk:symbols=ABC+XYZ,interval_ms=20",
            "--feed",
            "broken",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        url = line.split()[-1]
        deadline = time.monotonic() + 10000 * MS
        quotes: dict[str, Any] = {}
        while time.monotonic() < deadline and not {"ABC", "XYZ"} <= set(quotes):
            quotes = _get(url + "/api/quotes")["quotes"]
            time.sleep(0.02)
        assert {"ABC", "XYZ"} <= set(quotes) and quotes["ABC"]["price"] > 0
        feeds = {f["name"]: f for f in _get(url + "/healthz")["feeds"]}
        assert feeds["walk"]["state"] == "running" and feeds["walk"]["stall_timeout_s"] == 30.0
        assert "failed to load" in str(feeds["broken"]["last_error"])
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.seek(0)
        stderr = log.read()
        log.close()
    assert "feed 'broken' failed to load" in stderr and "Traceback" not in stderr

    # The example's own test (Ticker's conformance check) passes against the installed package.
    own = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(example / "test_ticker_walk.py"),
        ],
        **run,
    )
    assert own.returncode == 0, own.stdout + own.stderr

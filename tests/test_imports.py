"""Layering guards: the pure modules never pull in I/O (STYLE.md, rule zero)."""

from __future__ import annotations

import subprocess
import sys

IO_MODULES = ("aiohttp", "asyncio", "pandas", "pyarrow")


def loaded_by(modules: str, watched: tuple[str, ...] = IO_MODULES) -> list[str]:
    """The ``watched`` modules a fresh interpreter has loaded after ``import modules``."""
    code = (
        f"import sys; import {modules}; print(','.join(m for m in {watched!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_pure_modules_import_no_io() -> None:
    modules = (
        "ticker.events, ticker.book, ticker.conflate, ticker.protocol, ticker.limits, feeds.base"
    )
    assert loaded_by(modules, ("aiohttp", "asyncio", "pandas")) == []


def test_feeds_do_not_import_the_core_beyond_events() -> None:
    code = (
        "import sys; import feeds.sim, feeds.simnews, feeds.base; "
        "bad = [m for m in sys.modules if m.startswith('ticker.') and m != 'ticker.events']; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_serving_without_replay_or_history_does_not_load_pandas() -> None:
    """pandas costs ~100 MB resident: a plain server loads it only on first use (history,
    replay), so its memory goes to connections (the RSS targets of the performance issue)."""
    code = (
        "import sys, asyncio\n"
        "from ticker.server import create_app\n"
        "from ticker.registry import source_from_spec\n"
        "from aiohttp.test_utils import TestServer, TestClient\n"
        "async def main():\n"
        "    app = create_app([source_from_spec('sim'), source_from_spec('simnews')])\n"
        "    async with TestClient(TestServer(app)) as c:\n"
        "        for path in ('/healthz', '/api/replay', '/api/quotes', '/api/news', '/'):\n"
        "            assert (await c.get(path)).status == 200, path\n"
        "        ws = await c.ws_connect('/ws'); await ws.receive(); await ws.close()\n"
        "asyncio.run(main())\n"
        "print(','.join(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_pure_replay_modules_import_no_pandas_or_io() -> None:
    """The server parses replay commands with ticker.replay.control: that must not cost pandas."""
    modules = (
        "ticker.replay, ticker.replay.errors, ticker.replay.control, ticker.replay.clock, "
        "ticker.replay.columns"
    )
    assert loaded_by(modules) == []

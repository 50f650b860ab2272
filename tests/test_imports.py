"""Layering guards: the pure modules never pull in I/O (STYLE.md, rule zero)."""

from __future__ import annotations

import subprocess
import sys


def test_pure_modules_import_no_io() -> None:
    code = (
        "import sys; import ticker.events, ticker.book, ticker.conflate, ticker.protocol, "
        "ticker.limits, feeds.base; "
        "bad = [m for m in ('aiohttp', 'asyncio', 'pandas') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


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

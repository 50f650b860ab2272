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

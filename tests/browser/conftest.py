"""Browser fixtures: one headless Debian Chromium per module, driven by Playwright's sync API."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from tests.conftest import ROOT

__all__ = ["ARTIFACTS", "CHROMIUM", "CHROMIUM_ARGS", "Console", "browser"]

CHROMIUM = os.environ.get("TICKER_CHROMIUM", "/usr/bin/chromium")
# This machine's network is closed: without these flags Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's package; Playwright's own download cannot work here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (installs Debian's chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """Collects a page's console errors, uncaught exceptions and every URL it requested.

    ``timed`` keeps each error with the ``time.monotonic()`` at which it arrived, so a test can
    tell errors during a deliberate outage from the others.
    """

    def __init__(self, page: Page) -> None:
        self.timed: list[tuple[float, str]] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", self._pageerror)
        page.on("request", lambda r: self.requests.append(r.url))

    @property
    def errors(self) -> list[str]:
        return [text for _, text in self.timed]

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.timed.append((time.monotonic(), f"{msg.text} @ {msg.location.get('url', '')}"))

    def _pageerror(self, err: Error) -> None:
        self.timed.append((time.monotonic(), f"uncaught: {err.message}"))

"""The dashboard's replay bar against the real ``/api/replay``: a real browser, real S&P 500 bars.

``ticker replay`` serves the mplfinance S&P 500 1-minute bars from the real data folder; headless
Chromium (Debian's) loads the dashboard, and the bar's play/pause, speed and scrubber drive the
replay, checked through ``GET /api/replay``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS as ARGS
from tests.conftest import MS, ServerProcess

pytestmark = pytest.mark.browser

WAIT = 15000 * MS * 1000  # Playwright timeouts are in ms


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def replay_server(real_data: Path, tmp_path: Path) -> Iterator[str]:
    bars = real_data / "intraday" / "mplfinance_SP500_NOV2019_IDayRVol.csv"
    srv = ServerProcess(str(bars), "--symbol", "SPX", "--speed", "60", command="replay")
    try:
        yield srv.url
    finally:
        srv.close()


def test_replay_bar_drives_the_replay(replay_server: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    url = replay_server

    def replay() -> dict[str, Any]:
        feeds = _get(url + "/api/replay")["feeds"]
        assert len(feeds) == 1
        return dict(feeds[0])

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(e.message))
            page.goto(url + "/")
            page.wait_for_selector("#replay:not([hidden])", timeout=WAIT)
            # The market's clock (November 2019), not today's.
            page.wait_for_function(
                "document.getElementById('replay-clock').textContent.startsWith('2019-11-0')",
                timeout=WAIT,
            )
            start = replay()
            assert (start["state"], start["speed"]) == ("playing", 60.0)

            page.click("#replay-play")
            page.wait_for_function(
                "document.getElementById('replay-state').textContent.startsWith('paused')",
                timeout=WAIT,
            )
            assert replay()["state"] == "paused"

            page.select_option("#replay-speed", "600")
            deadline = time.monotonic() + 5
            while replay()["speed"] != 600.0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert replay()["speed"] == 600.0

            target = start["start"] + 24 * 3600 * 1000  # a day in: Nov 6, 09:30
            page.eval_on_selector(
                "#replay-scrub",
                "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('change')); }",
                target,
            )
            deadline = time.monotonic() + 5
            while abs(replay()["clock"] - target) > 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
            after = replay()
            assert abs(after["clock"] - target) <= 1000 and after["state"] == "paused"
            quote = _get(url + "/api/quotes")["quotes"]["SPX"]
            assert quote["ts"] <= after["clock"], "the state at the scrubbed-to time"

            page.click("#replay-play")
            page.wait_for_function(
                "document.getElementById('replay-state').textContent.startsWith('playing')",
                timeout=WAIT,
            )
            assert errors == []
        finally:
            browser.close()

"""The dashboard against a real ``ticker replay`` of real S&P 500 1-minute bars: a real browser.

``ticker replay`` serves the mplfinance S&P 500 1-minute bars from the real data folder; headless
Chromium (Debian's) loads the dashboard. The replay bar's play/pause, speed and scrubber drive the
replay, checked through ``GET /api/replay``; the chart draws the file's own candles (the `bars`
stream, docs/protocol.md "Bars"), every bar at ``speed=max``, and redraws after a seek.
"""

from __future__ import annotations

import csv
import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS as ARGS
from tests.conftest import MS, ServerProcess

pytestmark = pytest.mark.browser

WAIT = 15000 * MS * 1000  # Playwright timeouts are in ms


SP500 = Path("intraday") / "mplfinance_SP500_NOV2019_IDayRVol.csv"
CHART = "document.getElementById('price-chart')"
# Plotly's UTC date text ("2019-11-08 15:59:00.000") -> epoch ms, in the page.
UTC_MS = "(s) => Date.parse(s.replace(' ', 'T') + 'Z')"
LAST_X = f"({UTC_MS})({CHART}.data?.[0]?.x?.at(-1) ?? '')"
FIRST_X = f"({UTC_MS})({CHART}.data[0].x[0])"
Bar = tuple[float, float, float, float, float, float]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def file_bars(path: Path) -> list[Bar]:
    """The file's bars as the wire's ``[t, o, h, l, c, v]`` (its naive times are UTC)."""
    with path.open(newline="") as f:
        return [
            (
                datetime.fromisoformat(r["Date"]).replace(tzinfo=UTC).timestamp() * 1000,
                float(r["Open"]),
                float(r["High"]),
                float(r["Low"]),
                float(r["Close"]),
                float(r["Volume"]),
            )
            for r in csv.DictReader(f)
        ]


@pytest.fixture
def replay_server(real_data: Path, tmp_path: Path) -> Iterator[str]:
    bars = real_data / SP500
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


def drawn(page: Any) -> dict[str, Any]:
    """The chart's candlestick trace: x (each bar's open time, epoch ms; plotly holds UTC date
    text) and its O/H/L/C."""
    result: dict[str, Any] = page.evaluate(
        f"""(() => {{ const d = {CHART}.data[0];
            return {{type: d.type, x: Array.from(d.x, {UTC_MS}), open: Array.from(d.open),
                     high: Array.from(d.high), low: Array.from(d.low),
                     close: Array.from(d.close)}}; }})()"""
    )
    return result


def test_replayed_bar_file_draws_its_candles(real_data: Path, tmp_path: Path) -> None:
    """``speed=max``, interval 1m: every candle is the file's bar; a seek redraws from there."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    rows = file_bars(real_data / SP500)
    by_t = {r[0]: r for r in rows}
    srv = ServerProcess(
        str(real_data / SP500), "--symbol", "SPX", "--speed", "max", command="replay"
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                # Not UTC: the axis must show the market's UTC clock whatever the browser's zone.
                ctx = browser.new_context(
                    viewport={"width": 1280, "height": 800}, timezone_id="America/New_York"
                )
                ctx.add_init_script("localStorage.setItem('ticker.v1.interval', '1m')")
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(e.message))
                page.goto(srv.url + "/")
                deadline = time.monotonic() + 15
                while _get(srv.url + "/api/replay")["feeds"][0]["state"] != "finished":
                    assert time.monotonic() < deadline, "the replay did not finish"
                    time.sleep(0.1)
                # The whole file, at max speed: the chart's last candle is the file's last bar.
                page.wait_for_function(f"{LAST_X} === {rows[-1][0]}", timeout=WAIT)
                assert page.evaluate("window.__ticker.chart.interval") == "1m"
                page.screenshot(path=str(tmp_path / "replay-1m.png"))
                assert (tmp_path / "replay-1m.png").stat().st_size > 10_000

                d = drawn(page)
                n = len(d["x"])
                assert d["type"] == "candlestick" and n > 100, n
                candles = [
                    (t, d["open"][i], d["high"][i], d["low"][i], d["close"][i])
                    for i, t in enumerate(d["x"])
                ]
                # Real candles, not dashes: most have a range and a body.
                distinct = [c for c in candles if c[2] > c[3] and c[1] != c[4]]
                assert len(distinct) > 0.9 * n, (len(distinct), n)
                # Each drawn candle is the file's bar of the same minute, the last one its last.
                assert [c for c in candles if c != by_t[c[0]][:5]] == []
                assert candles[-1] == rows[-1][:5]
                # The chart holds every bar of the file (no merging), from its first.
                held = page.evaluate("window.__ticker.chart.bars.rows()")
                assert [tuple(b) for b in held] == rows
                # Market time: the axis reads 15:00 (UTC), not New York's 10:00.
                ticks = page.eval_on_selector_all(
                    "[data-testid=price-chart] .xtick text", "ts => ts.map(t => t.textContent)"
                )
                assert "15:00" in ticks, ticks

                # A seek a day in: a fresh `bars` message, the chart redrawn up to that time.
                target = rows[0][0] + 24 * 3600 * 1000  # Nov 6, 09:30
                first = d["x"][0]
                _post(srv.url + "/api/replay", {"action": "pause"})
                _post(srv.url + "/api/replay", {"action": "seek", "to": target})
                page.wait_for_function(
                    f"{FIRST_X} !== {first} && {LAST_X} <= {target}",
                    timeout=WAIT,
                )
                after = drawn(page)
                # The last bar at or before the target (the target's own, once its tick played).
                before = [t for t in by_t if t <= target]
                assert after["x"][-1] in (before[-1], before[-2]), after["x"][-1]
                for i, t in enumerate(after["x"]):
                    assert (
                        t,
                        after["open"][i],
                        after["high"][i],
                        after["low"][i],
                        after["close"][i],
                    ) == by_t[t][:5]
                assert errors == []
            finally:
                browser.close()
    finally:
        srv.close()

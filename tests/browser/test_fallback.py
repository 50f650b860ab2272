"""The dashboard behind a proxy that refuses WebSockets: it falls back to Server-Sent Events.

Debian's nginx runs deploy/nginx.conf (as tests/test_deploy_nginx.py does) with the WebSocket
upgrade headers taken out: nginx forwards ``GET /ws`` as a plain request, the server answers 400
and every handshake fails, as behind a proxy that strips ``Upgrade``. The sample's ``/sse``
location (no buffering) carries the stream. The page switches within seconds, says ``live`` with
``SSE``, shows changing prices, new news and the chart's bars (polled over ``/api/bars``).
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, WebSocket

from tests.browser.conftest import ARTIFACTS, Console
from tests.conftest import MS, ServerProcess
from tests.redisutil import free_port
from tests.test_deploy_nginx import NGINX, _config

pytestmark = pytest.mark.browser

WAIT = 20_000 * MS * 1000  # Playwright timeouts are in ms
STATUS = "document.querySelector('[data-testid=status]')"
LAST = (
    "Array.from(document.querySelectorAll('[data-testid=watchlist] tbody tr td.last'),"
    " td => td.textContent).join('|')"
)
NEWS_IDS = "Array.from(document.querySelectorAll('[data-news-id]'), e => Number(e.dataset.newsId))"
CHART_LEN = "document.querySelector('[data-testid=price-chart]').data?.[0]?.x?.length ?? 0"


@pytest.fixture
def no_upgrade_proxy(
    ticker_server: type[ServerProcess], tmp_path: Path
) -> Iterator[tuple[str, ServerProcess]]:
    """nginx with the sample config less its upgrade headers, in front of one server."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run `make system-deps` (installs Debian's nginx-light)")
    server = ticker_server(
        "--feed", "sim:symbols=6,rate=200,seed=1", "--feed", "simnews:rate=600,seed=1"
    )
    port = free_port()
    conf = _config(tmp_path, port, [server.port])
    site = tmp_path / "site.conf"
    text, n = re.subn(r"\n *proxy_set_header (?:Upgrade|Connection) \$[^;]+;", "", site.read_text())
    assert n == 2, "the sample's /ws location changed shape"
    assert "proxy_buffering off" in text.split("location = /sse", 1)[1].split("}", 1)[0]
    site.write_text(text)
    check = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, server
    finally:
        nginx.terminate()
        nginx.wait(10)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


def test_dashboard_falls_back_to_sse_behind_a_proxy_without_upgrade(
    context: BrowserContext, no_upgrade_proxy: tuple[str, ServerProcess]
) -> None:
    url, _server = no_upgrade_proxy
    page = context.new_page()
    console = Console(page)
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    t0 = time.monotonic()
    page.goto(url)
    page.wait_for_function(f"{STATUS}.dataset.state === 'live'", timeout=WAIT)
    switched_after = time.monotonic() - t0
    assert page.evaluate(f"{STATUS}.dataset.transport") == "SSE"
    assert page.text_content("#conn-state") == "live"
    assert page.text_content("#conn-detail") == "SSE"
    assert len(sockets) >= 3, "the WebSocket was tried first"
    assert switched_after < 15 * MS * 1000, switched_after

    # Live prices over the stream: the rows fill, then change.
    page.wait_for_function(
        f"{LAST}.split('|').filter(t => /\\d/.test(t)).length === 6", timeout=WAIT
    )
    before = page.evaluate(LAST)
    page.wait_for_function(f"{LAST} !== {before!r}", timeout=WAIT)
    # News: items newer than the page's first (HTTP) fetch arrive over the stream, once each.
    page.wait_for_function(f"{NEWS_IDS}.length >= 1", timeout=WAIT)
    first = max(page.evaluate(NEWS_IDS))
    page.wait_for_function(f"Math.max(...{NEWS_IDS}) > {first}", timeout=WAIT)
    ids = page.evaluate(NEWS_IDS)
    assert len(ids) == len(set(ids))
    # The chart: its bars over GET /api/bars, then polled.
    page.wait_for_function(f"({CHART_LEN}) >= 1", timeout=WAIT)
    n = page.evaluate(CHART_LEN)
    page.wait_for_function(f"({CHART_LEN}) >= {n + 2}", timeout=WAIT)  # 1s bars, polled
    assert any("/sse?" in u for u in console.requests)
    assert any("/api/bars?" in u for u in console.requests)
    page.screenshot(path=str(ARTIFACTS / "sse-fallback.png"))

    # Failed handshakes are the browser's own console errors; nothing from our code.
    unexpected = [e for e in console.errors if not e.startswith("WebSocket connection to")]
    assert unexpected == []

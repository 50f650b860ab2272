"""The dashboard with access control on, in headless Chromium against real servers.

``?token=`` in the page URL: the page opens /ws with the subprotocol ``bearer.<token>`` (the token
never appears in a URL it requests) and calls the APIs with it, showing only entitled symbols.
``#admin=`` (or the prompt after a 401): the replay bar's commands carry the admin token.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Response, WebSocket

from tests.browser.conftest import Console
from tests.conftest import MS, ServerProcess
from ticker.core.auth import mint_token

pytestmark = pytest.mark.browser

WAIT = 20_000 * MS * 1000  # Playwright timeouts are in ms
STATE = "document.querySelector('[data-testid=status]').dataset.state"
ROWS = "[data-testid=watchlist] tbody tr[data-symbol]"
SECRET = "browser-secret-" + "b" * 32
ADMIN = "browser-admin-" + "a" * 20
ALL = ("AAPL", "MSFT", "GOOGL", "TSLA")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


def test_dashboard_with_a_client_token(
    context: BrowserContext, ticker_server: type[ServerProcess]
) -> None:
    syms = "+".join(ALL)
    server = ticker_server(
        "--feed",
        f"sim:symbols={syms},rate=200,seed=1",
        "--feed",
        f"simnews:rate=1200,symbols={syms}",
        "--require-token",
        env={"TICKER_TOKEN_SECRET": SECRET},
    )
    token = mint_token(SECRET, now=time.time(), ttl=600, sub="browser", symbols=["AAPL", "MSFT"])
    page = context.new_page()
    console = Console(page)
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.goto(f"{server.url}/?token={token}")
    page.wait_for_function(f"{STATE} === 'live'", timeout=WAIT)
    page.wait_for_function(
        f"""Array.from(document.querySelectorAll('{ROWS} td.last'))
              .filter(td => /\\d/.test(td.textContent)).length === 2""",
        timeout=WAIT,
    )
    assert page.eval_on_selector_all(ROWS, "rs => rs.map(r => r.dataset.symbol)") == [
        "AAPL",
        "MSFT",
    ]
    # The chart draws its `bars` stream (an entitled symbol, over the token's socket).
    page.wait_for_function(
        "document.querySelector('[data-testid=price-chart]').data?.[0]?.x?.length >= 1",
        timeout=WAIT,
    )
    # News: only items on an entitled symbol (or none).
    page.wait_for_function("document.querySelectorAll('[data-news-id]').length >= 3", timeout=WAIT)
    tags = page.evaluate(
        """Array.from(document.querySelectorAll('[data-news-id]'), li =>
             Array.from(li.querySelectorAll('button.tag'), b => b.dataset.tag))"""
    )
    assert all(not t or {"AAPL", "MSFT"} & set(t) for t in tags), tags
    # The token went in the subprotocol, never in a URL (where proxies would log it).
    assert sockets and all(token not in ws.url for ws in sockets)
    page_url = f"{server.url}/?token={token}"
    assert all(token not in u for u in console.requests if u != page_url)
    assert [u for u in console.requests if "/api/" in u], "the APIs were called"
    assert console.errors == []


@pytest.fixture
def replay_server(tmp_path: Path) -> Iterator[str]:
    """``ticker replay`` of an hour of one-second ticks, with an admin token set."""
    t0 = 1_732_640_000_000
    data = tmp_path / "ticks.csv"
    rows = "\n".join(f"{t0 + i * 1000},ABC,{100 + (i % 50) / 10}" for i in range(3600))
    data.write_text("ts,symbol,price\n" + rows + "\n")
    srv = ServerProcess(
        str(data), "--speed", "5", command="replay", env={"TICKER_ADMIN_TOKEN": ADMIN}
    )
    try:
        yield srv.url
    finally:
        srv.close()


def replay_state(url: str) -> str:
    feeds = get_json(url + "/api/replay")["feeds"]
    return str(feeds[0]["state"])


def open_replay(ctx: BrowserContext, url: str) -> tuple[Page, list[Response], list[str]]:
    page = ctx.new_page()
    posts: list[Response] = []
    dialogs: list[str] = []
    page.on("response", lambda r: posts.append(r) if r.request.method == "POST" else None)

    def dismiss(d: Dialog) -> None:  # a listener must answer, or the page hangs
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dismiss)
    page.goto(url)
    page.wait_for_selector("#replay:not([hidden])", timeout=WAIT)
    page.wait_for_function(
        "document.getElementById('replay-state').textContent.startsWith('playing')", timeout=WAIT
    )
    return page, posts, dialogs


def wait_posts(page: Page, posts: list[Response], n: int) -> None:
    deadline = time.monotonic() + 10
    while len(posts) < n:
        assert time.monotonic() < deadline, f"{len(posts)} POSTs, expected {n}"
        page.wait_for_timeout(50)


def test_replay_bar_needs_the_admin_token(context: BrowserContext, replay_server: str) -> None:
    url = replay_server
    # No admin token: the POST is refused (401), the prompt is dismissed, nothing changes.
    page, posts, dialogs = open_replay(context, url)
    page.click("#replay-play")
    wait_posts(page, posts, 1)
    assert posts[0].status == 401
    assert dialogs == ["Admin token for replay control"]
    assert replay_state(url) == "playing"
    page.close()

    # #admin= in the URL: used, and dropped from the address bar.
    page, posts, dialogs = open_replay(context, f"{url}/#admin={ADMIN}")
    assert page.evaluate("location.hash") == ""
    page.click("#replay-play")
    page.wait_for_function(
        "document.getElementById('replay-state').textContent.startsWith('paused')", timeout=WAIT
    )
    assert [p.status for p in posts] == [200] and dialogs == []
    assert replay_state(url) == "paused"
    page.close()

    # The prompt, answered.
    page = context.new_page()

    def answer(d: Dialog) -> None:
        d.accept(ADMIN)

    page.on("dialog", answer)
    page.goto(url)
    page.wait_for_selector("#replay:not([hidden])", timeout=WAIT)
    page.evaluate("sessionStorage.clear()")
    page.wait_for_function(
        "document.getElementById('replay-state').textContent.startsWith('paused')", timeout=WAIT
    )
    page.click("#replay-play")
    page.wait_for_function(
        "document.getElementById('replay-state').textContent.startsWith('playing')", timeout=WAIT
    )
    assert replay_state(url) == "playing"

"""The dashboard in a real browser: headless Chromium against a real ``ticker serve`` process.

Screenshots land in ``test-artifacts/dashboard/`` (gitignored).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import ARTIFACTS, Console
from tests.conftest import MS, ServerProcess

pytestmark = pytest.mark.browser

FEEDS = ("--feed", "sim:symbols=20,rate=200,seed=1", "--feed", "simnews:rate=120")
WAIT = 20_000 * MS * 1000  # Playwright timeouts are in ms

STATE = "document.querySelector('[data-testid=status]').dataset.state"
ROWS = "[data-testid=watchlist] tbody tr[data-symbol]"
CHART = "document.querySelector('[data-testid=price-chart]')"
# Points in the chart's first trace (candles: bars; line mode reads trace 2, the price line).
TRACE_LEN = CHART + ".data?.[{i}]?.x?.length ?? 0"
# The open time (epoch ms) of the chart's last bar: plotly holds UTC date text.
LAST_T = f"Date.parse(({CHART}.data?.[0]?.x?.at(-1) ?? '').replace(' ', 'T') + 'Z')"
NEWS_IDS = "Array.from(document.querySelectorAll('[data-news-id]'), e => Number(e.dataset.newsId))"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    yield ctx
    ctx.close()


def open_dashboard(ctx: BrowserContext, url: str) -> tuple[Page, Console]:
    page = ctx.new_page()
    console = Console(page)
    page.goto(url)
    page.wait_for_function(f"{STATE} === 'live'", timeout=WAIT)
    return page, console


def trace_len(page: Page, i: int) -> int:
    return int(page.evaluate(TRACE_LEN.format(i=i)))


def wait_growth(page: Page, i: int, at_least: int = 2) -> None:
    """The chart's trace ``i`` gains at least ``at_least`` points from now on."""
    n0 = trace_len(page, i)
    page.wait_for_function(f"({TRACE_LEN.format(i=i)}) >= {n0 + at_least}", timeout=WAIT)


def horizontal_overflow(page: Page) -> dict[str, Any]:
    """Page scroll width, and any element (outside plotly's SVG) poking out sideways."""
    result: dict[str, Any] = page.evaluate(
        """() => {
        const W = document.documentElement.clientWidth;
        const bad = [];
        for (const el of document.body.querySelectorAll('*')) {
          if (el.closest('svg, .js-plotly-plot .plot-container')) continue;
          const r = el.getBoundingClientRect();
          if (r.width === 0 || r.height === 0) continue;
          if (r.right > W + 0.5 || r.left < -0.5) {
            bad.push(`${el.tagName.toLowerCase()}.${el.className} ${r.left}..${r.right}`);
          }
        }
        return {scrollWidth: document.documentElement.scrollWidth, width: W,
                bodyScroll: document.body.scrollWidth, bad: bad.slice(0, 10)};
      }"""
    )
    return result


def test_dashboard_live(context: BrowserContext, ticker_server: type[ServerProcess]) -> None:
    server = ticker_server(*FEEDS)
    symbols = [s["symbol"] for s in get_json(server.url + "/api/symbols")["symbols"]]
    assert len(symbols) == 20
    page, console = open_dashboard(context, server.url)

    # The watchlist fills: one row per symbol, each with a price.
    page.wait_for_function(
        f"""Array.from(document.querySelectorAll('{ROWS} td.last'))
              .filter(td => /\\d/.test(td.textContent)).length === 20""",
        timeout=WAIT,
    )
    assert page.eval_on_selector_all(ROWS, "rs => rs.map(r => r.dataset.symbol)") == symbols
    assert page.locator(f"{ROWS} td.chg .arr").first.inner_text() in ("▲", "▼", "·")

    # The chart: candlesticks of the first symbol, backfilled, and growing with live bars.
    page.wait_for_function(f"({TRACE_LEN.format(i=0)}) >= 1", timeout=WAIT)
    assert page.evaluate(f"{CHART}.data[0].type") == "candlestick"
    assert page.locator("#chart-sym").inner_text() == symbols[0]
    wait_growth(page, 0, 2)

    # News: items appear, newest first, each id once.
    page.wait_for_function(f"{NEWS_IDS}.length >= 3", timeout=WAIT)
    ids = page.evaluate(NEWS_IDS)
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == len(set(ids))
    page.screenshot(path=str(ARTIFACTS / "desktop-dark-candles.png"))

    # Clicking a tag filters the news to that symbol; clicking the filter chip clears it.
    tag = page.locator("[data-testid=news] button.tag").first
    sym = tag.inner_text()
    tag.click()
    page.wait_for_function(
        f"""document.querySelectorAll('[data-testid=news] li').length > 0 &&
            Array.from(document.querySelectorAll('[data-testid=news] li')).every(li =>
              Array.from(li.querySelectorAll('button.tag'), b => b.dataset.tag)
                .includes('{sym}'))""",
        timeout=WAIT,
    )
    assert page.locator("#news-filter").is_visible()
    page.click("#news-filter-tag")
    page.wait_for_function(f"{NEWS_IDS}.length >= {len(ids)}", timeout=WAIT)

    # Keyboard: arrow down moves the selection and the chart follows.
    page.locator(f"{ROWS}[aria-selected=true]").focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_function(f"document.querySelector('#chart-sym').textContent === '{symbols[1]}'")
    assert page.locator(f"{ROWS}[aria-selected=true]").get_attribute("data-symbol") == symbols[1]
    page.wait_for_function(f"({TRACE_LEN.format(i=0)}) >= 1", timeout=WAIT)

    # Panning the chart leaves the live edge (a "Live" button appears); clicking it follows again.
    box = page.locator("[data-testid=price-chart] .nsewdrag").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    page.wait_for_selector("#follow:not([hidden])", timeout=WAIT)
    renders = page.evaluate("window.__ticker.chart.renders")
    page.wait_for_function(f"window.__ticker.chart.renders > {renders}", timeout=WAIT)
    page.click("#follow")
    page.wait_for_selector("#follow[hidden]", state="attached", timeout=WAIT)
    assert page.evaluate("window.__ticker.chart.following") is True

    # Line mode: the price line grows point by point; w_high/w_low shape the band around it.
    page.click("[data-mode=line]")
    page.wait_for_function(f"{CHART}.data?.[2]?.type === 'scatter'", timeout=WAIT)
    wait_growth(page, 2, 5)
    page.screenshot(path=str(ARTIFACTS / "desktop-dark-line.png"))

    # Sort by symbol (ascending, then descending).
    page.click("th button[data-sort=symbol]")
    order = page.eval_on_selector_all(ROWS, "rs => rs.map(r => r.dataset.symbol)")
    assert order == sorted(symbols)
    page.click("th button[data-sort=symbol]")
    order = page.eval_on_selector_all(ROWS, "rs => rs.map(r => r.dataset.symbol)")
    assert order == sorted(symbols, reverse=True)

    # Remove a symbol with the keyboard; the watchlist is remembered across a reload.
    gone = symbols[5]
    page.locator(f"{ROWS}[data-symbol={gone}]").focus()
    page.keyboard.press("Delete")
    assert page.locator(f"{ROWS}[data-symbol={gone}]").count() == 0
    page.reload()
    page.wait_for_function(f"{STATE} === 'live'", timeout=WAIT)
    assert page.locator(ROWS).count() == 19
    assert page.locator(f"{ROWS}[data-symbol={gone}]").count() == 0
    assert page.evaluate(f"{CHART}.dataset.testid") == "price-chart"
    # ... and added back through the search box (it becomes the charted symbol).
    page.fill("#search", gone[:-1].lower())
    page.wait_for_selector(f"#search-list li[data-symbol={gone}]")
    page.click(f"#search-list li[data-symbol={gone}]")
    page.wait_for_function(
        f"document.querySelector('{ROWS}[data-symbol={gone}] td.last').textContent.match(/\\d/)",
        timeout=WAIT,
    )
    assert page.locator("#chart-sym").inner_text() == gone

    # The window control reaches the server (the ack's effective window is shown).
    page.select_option("#window", "250")
    page.wait_for_function(
        "document.querySelector('#m-throttle').textContent === '250 ms'", timeout=WAIT
    )
    # A hidden tab asks for a slow window; back in view, its own window and a fresh snapshot.
    snapshots = page.evaluate("window.__ticker.S.snapshots")
    set_hidden(page, True)
    page.wait_for_function(
        "document.querySelector('#m-throttle').textContent === '5000 ms'", timeout=WAIT
    )
    set_hidden(page, False)
    page.wait_for_function(
        "document.querySelector('#m-throttle').textContent === '250 ms'", timeout=WAIT
    )
    page.wait_for_function(f"window.__ticker.S.snapshots > {snapshots}", timeout=WAIT)

    # Pause freezes the screen while data keeps arriving; resume shows the latest at once.
    lasts = f"Array.from(document.querySelectorAll('{ROWS} td.last'), td => td.textContent)"
    book = "Array.from(window.__ticker.S.book.values(), q => q.price).join()"
    page.click("#pause")
    frozen, book0 = page.evaluate(lasts), page.evaluate(book)
    page.wait_for_function(f"{book} !== {json.dumps(book0)}", timeout=WAIT)
    page.wait_for_timeout(300)
    assert page.evaluate(lasts) == frozen
    assert page.locator("#pause").get_attribute("aria-pressed") == "true"
    page.click("#pause")
    page.wait_for_function(f"{lasts}.join() !== {json.dumps(','.join(frozen))}", timeout=WAIT)

    overflow = horizontal_overflow(page)
    assert overflow["scrollWidth"] <= overflow["width"], overflow
    assert overflow["bad"] == [], overflow

    assert console.errors == []
    # Everything came from our own server: plotly.js too (no CDN).
    foreign = [u for u in console.requests if not u.startswith((server.url, "data:"))]
    assert foreign == []
    assert any(u.startswith(server.url + "/vendor/plotly.min.js?v=") for u in console.requests)


BARS = "window.__ticker.chart.bars.rows()"


def test_live_bars_at_1s_and_1m(
    context: BrowserContext, ticker_server: type[ServerProcess]
) -> None:
    """A live sim: the chart draws the server's `bars` stream at 1s, then at 1m (interval picker);
    its closed bars are the server's (``GET /api/bars``)."""
    server = ticker_server("--feed", "sim:symbols=AAPL+MSFT,rate=100,seed=1")
    page, console = open_dashboard(context, server.url)
    intervals = page.eval_on_selector_all(
        "[data-interval]", "bs => bs.map(b => b.dataset.interval)"
    )
    assert intervals == ["1s", "5s", "15s", "1m", "5m", "15m", "1h", "1d"]
    page.wait_for_function(f"({TRACE_LEN.format(i=0)}) >= 3", timeout=WAIT)
    assert page.evaluate(f"{CHART}.data[0].type") == "candlestick"
    assert page.evaluate("window.__ticker.chart.interval") == "1s"
    held = page.evaluate(BARS)
    served = get_json(server.url + "/api/bars?symbol=AAPL&interval=1s&limit=500")["bars"]
    assert all(t % 1000 == 0 for t, *_ in held)
    # Closed bars (all but each side's last, which may still be forming) are the server's.
    mine = {b[0]: b for b in held[:-1]}
    theirs = {b[0]: b for b in served[:-1]}
    common = sorted(mine.keys() & theirs.keys())
    assert common and all(mine[t] == theirs[t] for t in common), (mine, theirs)
    # Several trades a second: real candles (a range), not dashes.
    assert any(h > lo for _, _, h, lo, _, _ in held), held

    page.click("[data-interval='1m']")
    page.wait_for_function(
        "window.__ticker.chart.interval === '1m' && window.__ticker.chart.bars.length >= 1",
        timeout=WAIT,
    )
    page.wait_for_function(f"({TRACE_LEN.format(i=0)}) >= 1", timeout=WAIT)
    assert page.get_attribute("[data-interval='1m']", "aria-pressed") == "true"
    assert all(t % 60000 == 0 for t, *_ in page.evaluate(BARS))
    # The 1m bar keeps forming: its volume grows with every update of it.
    page.wait_for_function(
        f"window.__ticker.chart.bars.rows().at(-1)[5] > {page.evaluate(BARS)[-1][5]}",
        timeout=WAIT,
    )
    assert page.evaluate("localStorage.getItem('ticker.v1.interval')") == "1m"
    assert console.errors == []


def set_hidden(page: Page, hidden: bool) -> None:
    """Simulate the Page Visibility API (headless Chromium's tab is always visible)."""
    page.evaluate(
        """(hidden) => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
        Object.defineProperty(document, 'visibilityState',
                              {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
        document.dispatchEvent(new Event('visibilitychange'));
      }""",
        hidden,
    )


def test_light_theme_follows_the_os(browser: Browser, ticker_server: type[ServerProcess]) -> None:
    server = ticker_server(*FEEDS)
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    try:
        page, console = open_dashboard(ctx, server.url)
        page.wait_for_function(f"({TRACE_LEN.format(i=0)}) >= 2", timeout=WAIT)
        page.wait_for_function(f"{NEWS_IDS}.length >= 3", timeout=WAIT)
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        paper = page.evaluate(f"{CHART}.layout.paper_bgcolor")
        page.emulate_media(color_scheme="dark")
        page.wait_for_function(f"{CHART}.layout.paper_bgcolor !== '{paper}'", timeout=WAIT)
        dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.emulate_media(color_scheme="light")
        page.wait_for_function(f"{CHART}.layout.paper_bgcolor === '{paper}'", timeout=WAIT)
        page.screenshot(path=str(ARTIFACTS / "desktop-light.png"))
        assert bg != dark_bg
        assert console.errors == []
    finally:
        ctx.close()


def test_phone_width_has_no_horizontal_scroll(
    browser: Browser, ticker_server: type[ServerProcess]
) -> None:
    server = ticker_server(*FEEDS)
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    )
    try:
        page, console = open_dashboard(ctx, server.url)
        page.wait_for_function(
            f"document.querySelectorAll('{ROWS}').length === 20 && "
            f"({TRACE_LEN.format(i=0)}) >= 2 && {NEWS_IDS}.length >= 3",
            timeout=WAIT,
        )
        overflow = horizontal_overflow(page)
        assert overflow["width"] == 390
        assert overflow["scrollWidth"] <= 390, overflow
        assert overflow["bodyScroll"] <= 390, overflow
        assert overflow["bad"] == [], overflow
        page.screenshot(path=str(ARTIFACTS / "phone-dark.png"))
        page.screenshot(path=str(ARTIFACTS / "phone-dark-full.png"), full_page=True)
        assert console.errors == []
    finally:
        ctx.close()


def test_points_per_trace_are_bounded(
    context: BrowserContext, ticker_server: type[ServerProcess]
) -> None:
    server = ticker_server(*FEEDS)
    page = context.new_page()
    console = Console(page)
    # A remembered watchlist, with a symbol this server does not know: kept, greyed out.
    page.add_init_script(
        "localStorage.setItem('ticker.v1.mode', 'line');"
        """localStorage.setItem('ticker.v1.watchlist', '["AAPL","NOPE","MSFT"]');"""
    )
    # The line draws 1 s bars: 10 points (the lowest bound) fill in 10 s.
    page.goto(server.url + "/?points=10")
    page.wait_for_function(f"({TRACE_LEN.format(i=2)}) === 10", timeout=WAIT)
    assert page.eval_on_selector_all(ROWS, "rs => rs.map(r => r.dataset.symbol)") == [
        "AAPL",
        "NOPE",
        "MSFT",
    ]
    page.wait_for_selector(f"{ROWS}[data-symbol=NOPE].unknown", timeout=WAIT)
    assert page.locator(f"{ROWS}[data-symbol=MSFT].unknown").count() == 0
    last = LAST_T.replace("data?.[0]", "data?.[2]")
    x_end = page.evaluate(last)
    page.wait_for_function(f"{last} > {x_end}", timeout=WAIT)  # still moving ...
    for i in range(3):  # ... and every trace of the line (band high, band low, price) bounded
        assert trace_len(page, i) == 10
    assert page.evaluate("window.__ticker.chart.bars.length") == 10  # and the bars held
    assert console.errors == []


def test_survives_server_restart(
    context: BrowserContext, ticker_server: type[ServerProcess]
) -> None:
    server = ticker_server(*FEEDS)
    page, console = open_dashboard(context, server.url)
    # Record every status change and check, on every change of the news list, that no id is
    # in it twice (so a duplicate that was shown and later trimmed would still be caught).
    page.evaluate(
        """() => {
        const rec = window.__rec = {states: [], dupes: [], ids: new Set()};
        const status = document.querySelector('[data-testid=status]');
        new MutationObserver(() => {
          const s = status.dataset.state;
          if (rec.states[rec.states.length - 1] !== s) rec.states.push(s);
        }).observe(status, {attributes: true, attributeFilter: ['data-state']});
        const list = document.querySelector('[data-testid=news]');
        new MutationObserver(() => {
          const ids = Array.from(list.querySelectorAll('[data-news-id]'), e => e.dataset.newsId);
          if (new Set(ids).size !== ids.length) rec.dupes.push(ids.join(','));
          ids.forEach(i => rec.ids.add(Number(i)));
        }).observe(list, {childList: true});
      }"""
    )
    page.wait_for_function(f"{NEWS_IDS}.length >= 3", timeout=WAIT)
    wait_growth(page, 0, 1)
    before_ids = set(page.evaluate(NEWS_IDS))
    port = server.port

    outage_start = time.monotonic()
    server.kill()
    page.wait_for_function(f"{STATE} === 'reconnecting'", timeout=WAIT)
    last_down = page.evaluate(LAST_T)
    time.sleep(1.0)
    restarted = ticker_server("--port", str(port), *FEEDS)
    assert restarted.port == port
    back = time.monotonic()  # the server listens again
    page.wait_for_function(f"{STATE} === 'live'", timeout=WAIT)
    outage_end = time.monotonic()
    # The page probes /healthz each second while down: live again within 2 s of the server's
    # return, whatever wait the backoff (capped at 5 s) was in.
    assert outage_end - back <= 2.0, f"live {outage_end - back:.2f} s after the server was back"
    states = page.evaluate("window.__rec.states")
    assert states[-2:] == ["reconnecting", "live"], states

    # The chart continues: the bars stream is asked for again, the new server's `bars` answer
    # replaces the chart's (a restart without --history has only its own), and they grow live.
    page.wait_for_function(f"{LAST_T} > {last_down}", timeout=WAIT)
    wait_growth(page, 0, 2)

    # News: the new server's items arrive once each, and none from before was lost.
    page.wait_for_function(f"Math.max(...{NEWS_IDS}) > {max(before_ids)}", timeout=WAIT)
    page.wait_for_timeout(500)
    dom_ids = page.evaluate(NEWS_IDS)
    assert len(dom_ids) == len(set(dom_ids))
    assert page.evaluate("window.__rec.dupes") == []
    assert before_ids <= set(dom_ids)
    served = [i["id"] for i in get_json(restarted.url + "/api/news?limit=1000")["items"]]
    shown_max = max(dom_ids)
    missed = [i for i in served if i <= shown_max and i not in set(dom_ids)]
    assert served and missed == []
    assert min(served) > max(before_ids)  # ids keep increasing across the restart
    page.screenshot(path=str(ARTIFACTS / "after-restart.png"))

    # The only console errors allowed are the browser's own network errors (refused or reset
    # connections, failed WebSocket handshakes) while the server was down; nothing from our code.
    unexpected = [
        text
        for t, text in console.timed
        if not (outage_start <= t <= outage_end and is_network_error(text))
    ]
    assert unexpected == [], console.errors


def is_network_error(text: str) -> bool:
    """A console error the browser itself logs for a failed connection."""
    return "net::ERR_" in text or text.startswith("WebSocket connection to")


def test_stale_upstream_symbols_are_marked(
    context: BrowserContext, ticker_server: type[ServerProcess]
) -> None:
    """An upstream feed that reports a symbol stale (/healthz feeds[].stale) marks its row; the
    others stay normal. Here the binance adapter points at a closed loopback port, so its
    symbol never updates."""
    server = ticker_server(
        "--feed",
        "sim:symbols=AAPL+MSFT,rate=50,seed=1",
        "--feed",
        "binance:symbols=btcusdt,url=ws://127.0.0.1:9/stream,stale_after=1,backoff=5",
    )
    page, console = open_dashboard(context, server.url)
    page.wait_for_function(
        f"document.querySelector('{ROWS}[data-symbol=BTCUSDT]')?.classList.contains('stale')",
        timeout=WAIT,
    )
    stale = page.eval_on_selector_all(f"{ROWS}.stale", "rs => rs.map(r => r.dataset.symbol)")
    assert stale == ["BTCUSDT"]
    assert "stale" in (page.get_attribute(f"{ROWS}[data-symbol=BTCUSDT]", "title") or "")
    page.screenshot(path=str(ARTIFACTS / "stale.png"))
    page.close()
    assert console.errors == [], console.errors

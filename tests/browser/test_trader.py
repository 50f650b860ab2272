"""The dashboard as a trader's tool (issue 18), in headless Chromium against ``ticker serve``.

First paint before plotly (local and on a throttled 1.6 Mbit/s, 150 ms link), the layout at four
screen sizes (screenshots kept in ``test-artifacts/dashboard/``), contrast computed from the page's
styles in both themes, the offline state, undo, unknown symbols, search by company name and the
chart's essentials.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from bench.dashboard import SLOW_LINK, first_paint
from tests.browser.conftest import ARTIFACTS, Console
from tests.conftest import MS, ServerProcess

pytestmark = pytest.mark.browser

LONG = "VERYLONGSYMBOLNAME"
SYMBOLS = "+".join(
    ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "JNJ", LONG, "WMT")
)
FEEDS = ("--feed", f"sim:symbols={SYMBOLS},rate=150,seed=1", "--feed", "simnews:rate=60")
WAIT = 20_000 * MS * 1000  # Playwright timeouts are in ms
# The targets of issue 18 for the first prices; asserted with SLACK on this shared machine (the
# figures themselves are written to test-artifacts/ and printed, and `make bench` reports them).
SLACK = 2.0 * float(os.environ.get("TICKER_TEST_TIMEOUT_FACTOR", "1"))
LOCAL_MS, THROTTLED_MS = 1000, 3000

STATE = "document.querySelector('[data-testid=status]').dataset.state"
ROWS = "[data-testid=watchlist] tbody tr[data-symbol]"
CHART = "document.getElementById('price-chart')"
DRAWN = f"({CHART}.data?.[0]?.x?.length ?? 0) >= 3"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    s = ServerProcess(*FEEDS)
    yield s
    s.close()


def open_page(
    browser: Browser, url: str, w: int = 1280, h: int = 800, scheme: str = "dark"
) -> tuple[BrowserContext, Page, Console]:
    ctx = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme)  # type: ignore[arg-type]
    page = ctx.new_page()
    console = Console(page)
    page.goto(url)
    page.wait_for_function(f"{STATE} === 'live'", timeout=WAIT)
    return ctx, page, console


def test_prices_paint_before_plotly_local_and_throttled(
    browser: Browser, server: ServerProcess
) -> None:
    first_paint(browser, server.url, chart=False)  # the server's first requests (gzip once)
    local = first_paint(browser, server.url, chart=False)
    slow = first_paint(browser, server.url, SLOW_LINK, chart=False)
    figures = {"local": local, "1.6mbit_150ms": slow, "targets_ms": [LOCAL_MS, THROTTLED_MS]}
    (ARTIFACTS / "first-paint.json").write_text(json.dumps(figures, indent=2))
    print("first paint (ms from navigation):", json.dumps(figures))
    # The watchlist does not wait for plotly: the prices are on screen before it has even run.
    for fig in (local, slow):
        assert fig.get("plotly") is None or fig["prices"] < fig["plotly"], fig
    assert local["prices"] <= LOCAL_MS * SLACK, figures
    assert slow["prices"] <= THROTTLED_MS * SLACK, figures


def test_plotly_and_modules_come_gzipped_and_cached(
    browser: Browser, server: ServerProcess
) -> None:
    ctx, page, _ = open_page(browser, server.url)
    try:
        page.wait_for_function(DRAWN, timeout=WAIT)
        sizes = page.evaluate(
            """() => performance.getEntriesByType('resource')
                 .filter((e) => e.name.includes('/vendor/') || e.name.endsWith('/static/app.js'))
                 .map((e) => [e.name, e.encodedBodySize, e.decodedBodySize])"""
        )
        for name, encoded, decoded in sizes:
            assert encoded < decoded * 0.6, (name, encoded, decoded)
        # The second visit: plotly from the cache (immutable), the modules revalidated.
        page.reload()
        page.wait_for_function(DRAWN, timeout=WAIT)
        plotly = page.evaluate(
            """() => performance.getEntriesByType('resource')
                 .find((e) => e.name.includes('/vendor/plotly')).transferSize"""
        )
        assert plotly == 0, "plotly.js came from the cache"
    finally:
        ctx.close()


def cell_overlaps(page: Page) -> list[str]:
    """Watchlist cells drawn over their neighbours, and symbol cells cut without a title."""
    out: list[str] = page.evaluate(
        """(rows) => {
        const bad = [];
        for (const tr of document.querySelectorAll(rows)) {
          const cells = [...tr.children].filter((td) => td.getBoundingClientRect().width > 0);
          for (let i = 0; i + 1 < cells.length; i++) {
            const a = cells[i].getBoundingClientRect(), b = cells[i + 1].getBoundingClientRect();
            if (a.right > b.left + 0.5) bad.push(`${tr.dataset.symbol} ${cells[i].className}`);
          }
          const sym = tr.querySelector('td.sym');
          if (sym.scrollWidth > sym.clientWidth + 1 && !sym.title.startsWith(tr.dataset.symbol))
            bad.push(`${tr.dataset.symbol} cut without a title`);
          if (getComputedStyle(sym).textOverflow !== 'ellipsis') bad.push('no ellipsis');
        }
        return bad;
      }""",
        ROWS,
    )
    return out


def box(page: Page, selector: str) -> dict[str, float]:
    r: dict[str, float] = page.evaluate(
        "(s) => { const r = document.querySelector(s).getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,"
        " width: r.width, height: r.height}; }",
        selector,
    )
    return r


@pytest.mark.parametrize(("w", "h"), [(1440, 900), (1024, 768), (899, 800), (390, 844)])
def test_layout_uses_the_screen(browser: Browser, server: ServerProcess, w: int, h: int) -> None:
    ctx, page, console = open_page(browser, server.url, w, h)
    try:
        page.wait_for_function(DRAWN, timeout=WAIT)
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / f"layout-{w}x{h}.png"))
        assert page.evaluate("document.documentElement.scrollWidth") <= w
        assert cell_overlaps(page) == []
        # The long symbol is cut with an ellipsis, and its title has it whole.
        title = page.locator(f"{ROWS}[data-symbol='{LONG}'] td.sym").get_attribute("title")
        assert title is not None and title.startswith(LONG)
        chart = box(page, "#price-chart")
        shown = page.evaluate(
            """() => ['bid', 'ask', 'vol', 'time'].filter((c) =>
                 document.querySelector(`.wl thead .c-${c}`).getBoundingClientRect().width > 0)"""
        )
        if w >= 1180:
            assert shown == ["bid", "ask", "vol", "time"]
        elif w > 620:
            assert {"bid", "ask", "vol"} <= set(shown), shown
        if w > 900:
            # Two columns: the chart takes the whole height beside the watchlist; the watchlist
            # is as tall as its rows (no empty bottom), the news fills the rest of its column.
            header = box(page, "header.bar")["height"]
            assert chart["height"] >= 0.8 * (h - header), chart
            watch, news = box(page, ".panel.watch"), box(page, ".panel.news")
            last_row = page.evaluate(
                f"Math.max(...[...document.querySelectorAll('{ROWS}')]"
                ".map((r) => r.getBoundingClientRect().bottom))"
            )
            assert watch["bottom"] - min(last_row, watch["bottom"]) < 60, (watch, last_row)
            assert news["top"] >= watch["bottom"] - 1 and news["height"] >= 150
        else:
            assert chart["height"] >= min(0.5 * h, 400), chart
            rm = box(page, f"{ROWS} .rm")
            assert rm["width"] >= 32 and rm["height"] >= 32, rm
        assert console.errors == []
    finally:
        ctx.close()


CONTRAST = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (fg, bg) => [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat(1);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  // The background an element's text is drawn on: its ancestors' backgrounds, blended.
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg && bg[3] > 0) layers.push(bg);
      if (bg && bg[3] >= 1) break;
    }
    let c = [255, 255, 255, 1];
    for (const l of layers.reverse()) c = over(l, c);
    return c;
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.data.trim() || el.closest('svg, [hidden], :disabled')) continue;
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    if (!r.width || !r.height || cs.visibility === 'hidden') continue;
    if (r.bottom < 0 || r.top > innerHeight) continue;
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const bg = background(el);
    const fg = over([...parse(cs.color).slice(0, 3), parse(cs.color)[3] * opacity], bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const what = `${el.tagName.toLowerCase()}.${el.className} "${n.data.trim().slice(0, 20)}"`;
    out.push([(a + 0.05) / (b + 0.05), what]);
  }
  return out;
}"""


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_text_contrast_in_both_themes(browser: Browser, server: ServerProcess, scheme: str) -> None:
    ctx, page, _ = open_page(browser, server.url, 1440, 900, scheme)
    try:
        page.wait_for_function(DRAWN, timeout=WAIT)
        # Hover a row and show a removal's toast and an unknown symbol's note: their text too.
        page.hover(f"{ROWS}:nth-child(2)")
        page.wait_for_function(
            "document.querySelectorAll('.news-list li').length > 3", timeout=WAIT
        )
        ratios: list[list[Any]] = page.evaluate(CONTRAST)
        assert len(ratios) > 100
        low = sorted((r, what) for r, what in ratios if r < 4.5)
        assert low == [], low[:10]
        worst = min(r for r, _ in ratios)
        print(f"{scheme}: {len(ratios)} text nodes, lowest contrast {worst:.2f}:1")
    finally:
        ctx.close()


def test_offline_dims_with_as_of_and_retry_now(
    browser: Browser, ticker_server: type[ServerProcess]
) -> None:
    srv = ticker_server(*FEEDS)
    ctx, page, _ = open_page(browser, srv.url)
    try:
        page.wait_for_function(DRAWN, timeout=WAIT)
        port = srv.port
        muted = page.evaluate(
            "getComputedStyle(document.documentElement).getPropertyValue('--muted')"
        )
        srv.kill()
        page.wait_for_function(f"['reconnecting', 'offline'].includes({STATE})", timeout=WAIT)
        page.wait_for_function("document.body.classList.contains('stale')", timeout=WAIT)
        as_of = page.locator("[data-testid=as-of]")
        assert as_of.is_visible()
        text = as_of.text_content() or ""
        assert text.startswith("as of ") and text.endswith(" UTC") and len(text.split()[2]) == 8, (
            text
        )
        # The values are muted (still legible), not at full brightness.
        color = page.evaluate(f"getComputedStyle(document.querySelector('{ROWS} td.last')).color")
        probe = page.evaluate(
            "(c) => { const d = document.createElement('i'); d.style.color = c;"
            " document.body.append(d); const v = getComputedStyle(d).color; d.remove();"
            " return v; }",
            muted.strip(),
        )
        assert color == probe
        page.screenshot(path=str(ARTIFACTS / "offline.png"))
        retry = page.locator("#retry")
        assert retry.is_visible()
        # Retry now tries at once, whatever the backoff's wait: one more (failed) attempt.
        attempts = "window.__ticker.S.client.session.attempt"
        page.wait_for_function(f"!{attempts.replace('session.attempt', 'ws')}", timeout=WAIT)
        n = page.evaluate(attempts)
        retry.click()
        page.wait_for_function(f"{attempts} > {n}", timeout=WAIT)
        # The server is back: live again at once with Retry now (or the backoff's own try).
        ticker_server("--port", str(port), *FEEDS)
        t0 = time.monotonic()
        page.evaluate("(b => b.hidden || b.click())(document.getElementById('retry'))")
        page.wait_for_function(f"{STATE} === 'live'", timeout=WAIT)
        back = time.monotonic() - t0
        assert back < 2.0 * SLACK, back
        assert not as_of.is_visible() and not retry.is_visible()
        assert not page.evaluate("document.body.classList.contains('stale')")
    finally:
        ctx.close()


def test_undo_removal_unknown_symbol_and_names(browser: Browser, server: ServerProcess) -> None:
    ctx, page, console = open_page(browser, server.url)
    try:

        def order() -> list[str]:
            got: list[str] = page.evaluate(
                f"Array.from(document.querySelectorAll('{ROWS}'), (r) => r.dataset.symbol)"
            )
            return got

        before = order()
        victim = before[2]
        page.hover(f"{ROWS}[data-symbol='{victim}']")
        page.click(f"{ROWS}[data-symbol='{victim}'] .rm")
        assert victim not in order()
        toast = page.locator("[data-testid=toast]")
        assert toast.is_visible() and victim in (toast.text_content() or "")
        page.click("#toast-undo")
        assert order() == before, "back where it was"
        assert not toast.is_visible()
        page.wait_for_function(
            f"/\\d/.test(document.querySelector(\"{ROWS}[data-symbol='{victim}'] td.last\")"
            ".textContent)",
            timeout=WAIT,
        )
        # Ctrl+Z undoes too.
        page.focus(f"{ROWS}[data-symbol='{victim}']")
        page.keyboard.press("Delete")
        page.keyboard.press("Control+z")
        assert order() == before

        # Search by company name (sim names its tickers; /api/symbols gives them).
        page.wait_for_function("window.__ticker.S.market.names.size > 0", timeout=WAIT)
        page.evaluate("localStorage.setItem('ticker.v1.watchlist', JSON.stringify(['AAPL']))")
        page.reload()
        page.wait_for_function(f"{STATE} === 'live'", timeout=WAIT)
        page.wait_for_function("window.__ticker.S.market.names.size > 0", timeout=WAIT)
        page.fill("#search", "micro")
        first = page.locator("#search-list li").first
        assert (
            first.get_attribute("data-symbol"),
            first.locator(".search-name").text_content(),
        ) == (
            "MSFT",
            "Microsoft Corporation",
        )
        page.keyboard.press("Enter")
        page.wait_for_selector(f"{ROWS}[data-symbol='MSFT']")

        # An unknown symbol says so.
        page.fill("#search", "ZZZZQ")
        page.keyboard.press("Enter")
        note = page.locator("[data-testid=search-note]")
        assert note.is_visible() and "ZZZZQ" in (note.text_content() or "")
        page.screenshot(path=str(ARTIFACTS / "unknown-symbol.png"))
        assert console.errors == []
    finally:
        ctx.close()


def test_chart_essentials(browser: Browser, server: ServerProcess) -> None:
    ctx, page, console = open_page(browser, server.url, 1440, 900)
    try:
        page.wait_for_function(f"({CHART}.data?.[0]?.x?.length ?? 0) >= 6", timeout=WAIT)
        lay = page.evaluate(
            f"(() => {{ const g = {CHART}, l = g.layout; return {{last: g.data[0].close.at(-1),"
            " ann: l.annotations, shapes: l.shapes, y2: l.yaxis2, y: l.yaxis}; })()"
        )
        last = lay["last"]
        assert lay["shapes"][0]["y0"] == last, "the last-price line"
        assert lay["ann"][0]["y"] == last and lay["ann"][0]["text"], "its label on the axis"
        assert lay["y2"]["showticklabels"] is True, "a volume scale"
        # Every tick label different (prices and times).
        for axis in ("ytick", "xtick"):
            labels = page.evaluate(
                f"Array.from(document.querySelectorAll('#price-chart .{axis} text'),"
                " (t) => t.textContent)"
            )
            assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
        # The crosshair's readout: the last bar, then the bar under the pointer.
        readout = page.locator("[data-testid=readout]")
        assert all(k in (readout.text_content() or "") for k in (" O ", " H ", " L ", " C ", " V "))
        plot = box(page, "#price-chart .nsewdrag")
        page.mouse.move(plot["left"] + plot["width"] * 0.3, plot["top"] + plot["height"] / 2)
        page.wait_for_timeout(300)
        assert " O " in (readout.text_content() or "")
        # News markers are big enough to see and hover.
        size = page.evaluate(f"{CHART}.data.at(-1).marker.size")
        assert size >= 12
        # The chart has a text alternative.
        label = page.get_attribute("#price-chart", "aria-label") or ""
        assert "chart" in label and "last" in label
        # Log scale.
        page.click("#log-scale")
        page.wait_for_function(f"{CHART}.layout.yaxis.type === 'log'", timeout=WAIT)
        assert page.get_attribute("#log-scale", "aria-pressed") == "true"
        page.screenshot(path=str(ARTIFACTS / "chart-log.png"))
        page.click("#log-scale")
        page.wait_for_function(f"{CHART}.layout.yaxis.type !== 'log'", timeout=WAIT)
        assert console.errors == []
    finally:
        ctx.close()

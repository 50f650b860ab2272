"""The rss adapter against every real RSS/Atom document in shared/data/news, served on loopback."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from tests.upstream.http import NewsServer
from ticker.core.events import News
from ticker_feeds import rss
from ticker_feeds.rss import (
    RssFeed,
    parse_companies,
    parse_document,
    public_url,
    strip_html,
    tag_symbols,
)
from ticker_feeds.testing import check_event, check_feed

NOW_MS = 1_720_000_000_000.0  # 2024-07-03


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    rss.forget()
    yield
    rss.forget()


def _docs(real_data: Path) -> dict[str, bytes]:
    root = real_data / "news"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.xml"))}


def _clean(n: News) -> list[str]:
    bad = check_event(n)
    for text in (n.headline, n.summary or ""):
        if re.search(r"</?[a-zA-Z][^>]*>|<!\[CDATA\[|\]\]>", text):
            bad.append(f"markup left in {text[:60]!r}")
        if text != text.strip() or "  " in text:
            bad.append(f"unnormalised spaces in {text[:60]!r}")
    if n.url is not None and n.url != n.url.strip():
        bad.append(f"url not stripped: {n.url!r}")
    return bad


# Real documents over HTTP


async def test_every_real_document_yields_clean_items_or_a_counted_problem(
    real_data: Path,
) -> None:
    docs = _docs(real_data)
    assert len(docs) >= 25
    async with NewsServer(docs) as server:
        feed = RssFeed({"urls": "+".join(server.url(n) for n in docs), "interval": "60"})
        try:
            got: dict[str, list[News]] = {}
            empty: list[str] = []
            for name in docs:
                problems_before = feed.counters["parse_problems"]
                got[name] = await feed.poll(server.url(name))
                problem = feed.counters["parse_problems"] > problems_before
                if not got[name] and not problem:  # only a well-formed feed with no entries
                    parsed = parse_document(docs[name], source="", now_ms=NOW_MS)
                    assert parsed.entries == 0 and parsed.problem is None, name
                    empty.append(name)
                for n in got[name]:
                    assert _clean(n) == [], name
        finally:
            await feed.aclose()
    assert feed.counters["http_errors"] == 0
    assert len(empty) <= 5  # small well-formed encoding cases with a channel and no item
    # Real feeds, real counts: the flaws do not cost items.
    counts = {k: len(v) for k, v in got.items()}
    assert counts["sec_litigation_releases_rss_2024-07-01.xml"] == 25
    assert counts["feedjira/TechCrunch.xml"] == 20  # blank line before the XML declaration
    assert counts["feedjira/TypePadNews.xml"] == 10  # Atom, same flaw
    assert counts["feedjira/google_alerts_atom.xml"] == 20
    assert counts["feedparser/large_atom_feed_touchnokia_ru.xml"] == 15
    # Undeclared non-ASCII encodings: decoded as detected (the guess is a counted problem).
    assert counts["feedparser/chardet__koi8r.xml"] == 1
    koi8r = feed.last_problem[server.url("feedparser/chardet__koi8r.xml")]
    assert koi8r == "encoding not declared; decoded as koi8_r (detected)"
    # Specific values from the documents.
    sec = got["sec_litigation_releases_rss_2024-07-01.xml"]
    assert sec[0].headline == "Adrian J. Kawuba"
    assert all(n.url and n.url.startswith("https://www.sec.gov/") for n in sec)
    alerts = got["feedjira/google_alerts_atom.xml"]
    assert alerts[0].headline.startswith("Report offers Prediction of Automotive Slack Market")
    dates = got["feedjira/InvalidDateFormat.xml"]
    assert [n.headline for n in dates] == [
        "Item 0 with an invalid date",
        "Item 1 with all valid dates",
    ]
    assert dates[0].ts == 1_508_166_600_000.0  # its pubDate, Mon, 16 Oct 2017 15:10:00 +0000
    ru = got["feedparser/large_atom_feed_touchnokia_ru.xml"]
    assert ru[0].headline == "Невидимая броня для Вашего Nokia 5800"
    # No source option: the feed's own title labels it.
    assert ru[0].source.startswith("Все для Nokia 5800")  # noqa: RUF001


async def test_304_yields_nothing_and_sends_validators(real_data: Path) -> None:
    name = "sec_litigation_releases_rss_2024-07-01.xml"
    async with NewsServer({name: (real_data / "news" / name).read_bytes()}) as server:
        feed = RssFeed({"urls": server.url(name)})
        try:
            first = await feed.poll(server.url(name))
            second = await feed.poll(server.url(name))
        finally:
            await feed.aclose()
    assert len(first) == 25 and second == []
    assert "If-None-Match" not in server.requests[0]
    assert server.requests[1]["If-None-Match"] == server.etag(name)
    assert server.requests[1]["If-Modified-Since"] == NewsServer.LAST_MODIFIED
    assert server.sent_304 == 1 and feed.counters["not_modified"] == 1


async def test_dedupe_across_polls_and_restarts_without_validators(real_data: Path) -> None:
    name = "feedjira/TechCrunch.xml"
    docs = {name: (real_data / "news" / name).read_bytes()}
    async with NewsServer(docs, conditional=False) as server:
        url = server.url(name)
        first = RssFeed({"urls": url})
        try:
            assert len(await first.poll(url)) == 20
            assert await first.poll(url) == []
            assert first.counters["duplicates"] == 20
        finally:
            await first.aclose()
        restarted = RssFeed({"urls": url})  # what FeedRunner does on a restart
        try:
            assert await restarted.poll(url) == []
        finally:
            await restarted.aclose()
        assert len(server.requests) == 3  # each poll did fetch: dedupe, not a cache, saved us


async def test_http_errors_are_counted_not_fatal(real_data: Path) -> None:
    name = "feedjira/HuffPostCanada.xml"
    async with NewsServer({name: (real_data / "news" / name).read_bytes()}) as server:
        missing = server.url("nope.xml") + "?token=s3cret-key"
        feed = RssFeed({"urls": f"{missing}+{server.url(name)}", "interval": "60"})
        events = []
        try:
            async with contextlib.aclosing(feed.events()) as agen:  # type: ignore[type-var]
                async for ev in agen:
                    events.append(ev)
                    if len(events) == 2:
                        break
        finally:
            await feed.aclose()
    assert feed.counters["http_errors"] == 1 and "HTTP 404" in feed.last_problem[missing]
    assert all(isinstance(e, News) for e in events)
    # /healthz is open: the URL shows there without its query values (feed keys live there).
    shown = feed.health()["last_problem"]
    assert "s3cret-key" not in str(shown)
    assert shown == {missing.replace("s3cret-key", "%2A%2A%2A"): feed.last_problem[missing]}


async def test_rss_conforms(real_data: Path) -> None:
    name = "feedjira/youtube_atom.xml"
    async with NewsServer({name: (real_data / "news" / name).read_bytes()}) as server:
        events = await check_feed(
            RssFeed, {"urls": server.url(name), "interval": "1"}, max_events=15
        )
    assert len(events) == 15


async def test_symbols_tagged_from_real_headlines(real_data: Path) -> None:
    body = (real_data / "news" / "feedjira" / "TechCrunch.xml").read_bytes()
    parsed = parse_document(
        body,
        source="TechCrunch",
        now_ms=NOW_MS,
        companies=parse_companies("ANGI:Angie's List+AAPL:Apple"),
    )
    angi = [n for _, n in parsed.items if "ANGI" in n.symbols]
    assert angi and "Angie" in angi[0].headline
    assert all(n.source == "TechCrunch" for _, n in parsed.items)


# Pure core


def test_tag_symbols_rules() -> None:
    text = "Buy $aapl now; IT spend up; MSFT and msft; Alphabet's results; $TSLA"
    watch = ["MSFT", "IT", "GOOGL", "AAPL"]
    assert tag_symbols(text, watch, {"GOOGL": "Alphabet"}) == (
        "AAPL",
        "IT",
        "MSFT",
        "GOOGL",
        "TSLA",
    )
    assert tag_symbols("visit it now", ["IT"]) == ()
    assert tag_symbols("AAPLX rose", ["AAPL"]) == ()
    assert tag_symbols("costs $11 to $13", ["AAPL"]) == ()


def test_strip_html() -> None:
    assert strip_html("<b>Slack</b>&amp;Co <script>x()</script> <p>ok</p>") == "Slack&Co ok"
    assert strip_html("  a \n\t b ") == "a b"


def test_epoch_dc_date_and_missing_dates() -> None:
    doc = (
        b"<rss version='2.0'><channel><title>T</title>"
        b"<item><title>a</title><guid>1</guid></item>"
        b"<item><title>  </title><guid>2</guid></item></channel></rss>"
    )
    parsed = parse_document(doc, source="", now_ms=NOW_MS)
    assert [(k, n.headline, n.ts, n.source) for k, n in parsed.items] == [("1", "a", NOW_MS, "T")]
    assert parsed.skipped == 1


@pytest.mark.parametrize(
    ("name", "headline"),
    [  # feedparser's test feeds that declare no encoding anywhere (their charset detection cases)
        ("chardet__koi8r.xml", "Как пережить новогоднюю ночь"),
        ("chardet__eucjp.xml", "ゲーム三昧な正月"),
        ("chardet__euckr.xml", "EUC-KR 에서 TypeKey 한글닉네임 표시하기"),
        ("chardet__gb2312.xml", "不归移民漫画系列：专业工作"),  # noqa: RUF001
        ("chardet__shiftjis.xml", "DrecomRSSに記事投稿が反映されない…"),
    ],
)
def test_undeclared_encodings_are_detected_not_dropped(
    real_data: Path, name: str, headline: str
) -> None:
    body = (real_data / "news" / "feedparser" / name).read_bytes()
    assert not body.isascii() and b"encoding=" not in body[:200]
    parsed = parse_document(body, source="x", now_ms=NOW_MS)
    assert [n.headline for _, n in parsed.items] == [headline]
    assert parsed.problem is not None and "encoding not declared; decoded as" in parsed.problem


def test_options() -> None:
    for bad in ("0.01", "0", "86401"):
        with pytest.raises(ValueError, match=r"^option interval: .* out of range 1\.\.86400$"):
            RssFeed({"urls": "http://x/", "interval": bad})
    assert RssFeed({"urls": "http://x/", "interval": "1"}).interval == 1.0
    with pytest.raises(ValueError, match="urls is required"):
        RssFeed({})
    with pytest.raises(ValueError, match="not an http"):
        RssFeed({"urls": "ftp://x"})
    with pytest.raises(ValueError, match="SYMBOL:Company"):
        RssFeed({"urls": "http://x/", "companies": "Apple"})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_garbage_never_raises(body: bytes) -> None:
    parsed = parse_document(body, source="s", now_ms=NOW_MS)
    for _, n in parsed.items:
        assert n.headline and check_event(n) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_strip_html_total(text: str) -> None:
    out = strip_html(text)
    assert out == out.strip() and "  " not in out


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[A-Z]{1,5}", fullmatch=True))
def test_watched_ticker_is_tagged(sym: str) -> None:
    assert tag_symbols(f"News: {sym} rallies", [sym]) == (sym,)
    assert tag_symbols(f"News: ${sym.lower()} rallies") == (sym,)


@given(
    user=st.from_regex(r"[a-z]{3,8}", fullmatch=True),
    password=st.from_regex(r"[A-Za-z0-9]{10,20}", fullmatch=True),
    values=st.lists(st.from_regex(r"[A-Za-z0-9_-]{10,30}", fullmatch=True), max_size=4),
)
def test_public_urls_carry_no_credentials_or_query_values(
    user: str, password: str, values: list[str]
) -> None:
    query = "&".join(f"k{i}={v}" for i, v in enumerate(values))
    url = f"https://{user}:{password}@news.example:8443/feed.xml?{query}"
    shown = public_url(url)
    assert shown.startswith("https://news.example:8443/feed.xml")
    assert password not in shown and all(v not in shown for v in values)
    assert public_url(shown) == shown

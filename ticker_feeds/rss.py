"""RSS/Atom news: poll feed URLs, turn new entries into ``News`` tagged with watched symbols.

The pure core (:func:`parse_document`, :func:`entry_to_news`, :func:`tag_symbols`,
:func:`strip_html`, :class:`SeenSet`) maps bytes to events with no I/O and no clock (the caller
passes ``now_ms``). :class:`RssFeed` is the I/O shell: a conditional GET per URL per interval.

Dedupe across restarts: the supervisor (``FeedRunner``) builds a new feed instance at every
restart, and the adapter cannot see the news ring buffer, so the seen-set and the HTTP validators
(ETag / Last-Modified) live at module level keyed by feed URL, bounded to :data:`SEEN_PER_URL`
keys each. A restarted feed therefore neither re-fetches an unchanged document nor re-emits
items it already emitted. A process restart forgets them (the first poll re-emits the current
items once).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
import html
import io
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import charset_normalizer
import feedparser

from ticker_feeds.base import Event, News, Option, as_float, help_of, parse_options

__all__ = [
    "SEEN_PER_URL",
    "Parsed",
    "RssFeed",
    "SeenSet",
    "entry_to_news",
    "forget",
    "parse_companies",
    "parse_document",
    "parse_urls",
    "strip_html",
    "tag_symbols",
]

log = logging.getLogger("ticker.feeds.rss")

SEEN_PER_URL = 5000
"""Keys remembered per feed URL (a publisher's feed holds tens of items; this is weeks of them)."""

_MAX_HEADLINE = 300
_MAX_SUMMARY = 1000


# Pure core


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_WS = re.compile(r"\s+")


def strip_html(text: str) -> str:
    """Pure; no I/O. Plain text of an HTML fragment: tags dropped, entities decoded, spaces
    collapsed."""
    if "<" not in text and "&" not in text:
        return _WS.sub(" ", text).strip()
    p = _TextExtractor()
    try:
        p.feed(text)
        p.close()
        out = "".join(p.parts)
    except Exception:  # HTMLParser is lenient; belt and braces for odd input
        out = html.unescape(re.sub(r"<[^>]*>", " ", text))
    return _WS.sub(" ", out).strip()


_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")


def tag_symbols(
    text: str, watch: Iterable[str] = (), companies: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Pure; no I/O. Symbols an item is about, in order of first mention.

    Cashtags (``$AAPL``) always tag; a bare ticker tags when it is on the watch list and appears
    as a whole upper-case word (so "IT" in a sentence is not the ticker IT unless written so);
    a company name from ``companies`` (symbol -> name) tags, case-insensitively, as whole words.
    """
    found: dict[str, int] = {}
    for m in _CASHTAG.finditer(text):
        found.setdefault(m.group(1).upper(), m.start())
    for sym in watch:
        if sym in found:
            continue
        word = re.search(rf"(?<![\w$.]){re.escape(sym)}(?![\w])", text)
        if word is not None:
            found[sym] = word.start()
    for sym, name in (companies or {}).items():
        if sym in found or not name:
            continue
        named = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE)
        if named is not None:
            found[sym] = named.start()
    return tuple(s for s, _ in sorted(found.items(), key=lambda kv: kv[1]))


class SeenSet:
    """Pure; no I/O. Insertion-ordered set of keys, oldest dropped past ``limit``."""

    def __init__(self, limit: int = SEEN_PER_URL) -> None:
        self.limit = limit
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> bool:
        """Remember ``key``; True if it was new."""
        if key in self._keys:
            return False
        self._keys[key] = None
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)
        return True


@dataclass
class Parsed:
    """What one document held: clean items (with their dedupe keys) and problems found.

    ``problem`` is set when the document was not (entirely) well-formed; ``entries`` counts the
    entries found, ``skipped`` those dropped for having no usable headline.
    """

    items: list[tuple[str, News]] = field(default_factory=list)
    problem: str | None = None
    skipped: int = 0
    title: str = ""
    entries: int = 0


def _epoch_ms_from_text(raw: Any) -> float | None:
    """An epoch number written as text (s or ms), as some publishers put in dc:date."""
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    if not re.fullmatch(r"\d{9,13}(\.\d+)?", s):
        return None
    v = float(s)
    return v if v >= 1e11 else v * 1000.0


def _entry_ms(entry: Mapping[str, Any]) -> float | None:
    for key in ("published", "updated", "created"):
        st = entry.get(f"{key}_parsed")
        if isinstance(st, time.struct_time):
            try:
                return float(calendar.timegm(st)) * 1000.0
            except (OverflowError, ValueError):
                pass
        ms = _epoch_ms_from_text(entry.get(key))
        if ms is not None:
            return ms
    return None


def entry_to_news(
    entry: Mapping[str, Any],
    *,
    source: str,
    now_ms: float,
    watch: Iterable[str] = (),
    companies: Mapping[str, str] | None = None,
) -> tuple[str, News] | None:
    """Pure; no I/O. One feedparser entry -> (dedupe key, News), or None without a headline.

    Times are UTC epoch ms; an entry with no (or a future, or pre-1990) date gets ``now_ms``.
    The key is the guid, else the link, else a hash of the headline.
    """
    title = strip_html(str(entry.get("title") or ""))[:_MAX_HEADLINE]
    if not title:
        return None
    link = str(entry.get("link") or "").strip() or None
    raw_summary = entry.get("summary")
    summary = strip_html(str(raw_summary))[:_MAX_SUMMARY] if raw_summary else ""
    ts = _entry_ms(entry)
    if ts is None or not 631_152_000_000.0 <= ts <= now_ms + 86_400_000.0:
        ts = now_ms
    guid = str(entry.get("id") or "").strip()
    key = guid or link or "sha1:" + hashlib.sha1(title.encode()).hexdigest()
    syms = tag_symbols(f"{title}\n{summary}", watch, companies)
    return key, News(
        headline=title, ts=ts, source=source, symbols=syms, url=link, summary=summary or None
    )


def parse_document(
    body: bytes,
    *,
    source: str,
    now_ms: float,
    content_type: str | None = None,
    watch: Iterable[str] = (),
    companies: Mapping[str, str] | None = None,
) -> Parsed:
    """Pure; no I/O. An RSS/Atom document -> :class:`Parsed`. Never raises.

    feedparser copes with most flaws (a blank line before the XML declaration, broken CDATA,
    bad ampersands) and says so (``bozo``); such a document still yields its clean items, and the
    flaw is reported as ``problem``. A document whose bytes are not ASCII and whose encoding is
    declared nowhere (a KOI8-R or Big5 feed served without a charset) is decoded with the
    encoding charset-normalizer detects, and the guess is reported as ``problem``; when nothing
    fits, it yields nothing: a wrong guess would turn headlines into mojibake.
    """
    headers = {"content-type": content_type} if content_type else {}
    try:
        # A stream, never bytes or str: feedparser treats a string as a URL or file name.
        d = feedparser.parse(io.BytesIO(body), response_headers=headers)
    except Exception as exc:  # feedparser is meant not to raise; a parse must never kill a poll
        return Parsed(problem=f"unparseable: {type(exc).__name__}: {exc}"[:200])
    flaw = d.get("bozo_exception") if d.get("bozo") else None
    guessed = None
    if isinstance(flaw, feedparser.CharacterEncodingOverride) and not body.isascii():
        guessed = _detect_encoding(body)
        if guessed is None:
            return Parsed(
                problem="encoding not declared, not UTF-8 and not detected; items dropped"
            )
        try:
            d = feedparser.parse(
                io.BytesIO(body),
                response_headers={"content-type": f"application/xml; charset={guessed}"},
            )
        except Exception as exc:
            return Parsed(problem=f"unparseable as {guessed}: {type(exc).__name__}: {exc}"[:200])
        flaw = d.get("bozo_exception") if d.get("bozo") else None
    out = Parsed(title=strip_html(str(d.get("feed", {}).get("title") or "")))
    if guessed is not None:
        out.problem = f"encoding not declared; decoded as {guessed} (detected)"
    if flaw is not None:
        out.problem = out.problem or f"{type(flaw).__name__}: {flaw}"[:200]
    label = source or out.title
    out.entries = len(d.get("entries", []))
    for entry in d.get("entries", []):
        try:
            got = entry_to_news(
                entry, source=label, now_ms=now_ms, watch=watch, companies=companies
            )
        except Exception as err:  # one odd entry must not cost the others
            got = None
            out.problem = out.problem or f"entry: {type(err).__name__}: {err}"[:200]
        if got is None:
            out.skipped += 1
        else:
            out.items.append(got)
    if not out.items and not d.get("entries") and out.problem is None and not out.title:
        out.problem = "no feed found in the document"
    return out


def _detect_encoding(body: bytes) -> str | None:
    """Pure; no I/O. The encoding charset-normalizer finds most likely for ``body``, or None."""
    best = charset_normalizer.from_bytes(body).best()
    return best.encoding if best is not None else None


def parse_urls(value: str) -> list[str]:
    """``"https://a/rss+https://b/atom"`` -> URLs (``+`` separates; write ``%2B`` for a plus)."""
    urls = [u.strip().replace("%2B", "+") for u in value.split("+") if u.strip()]
    if not urls:
        raise ValueError("urls is empty")
    for u in urls:
        if not u.startswith(("http://", "https://")):
            raise ValueError(f"{u!r} is not an http(s) URL")
    return list(dict.fromkeys(urls))


def parse_watch(value: str) -> list[str]:
    """``"AAPL+msft"`` -> ``["AAPL", "MSFT"]``."""
    return list(dict.fromkeys(s.strip().upper() for s in value.split("+") if s.strip()))


def parse_companies(value: str) -> dict[str, str]:
    """``"AAPL:Apple+MSFT:Microsoft"`` -> ``{"AAPL": "Apple", "MSFT": "Microsoft"}``."""
    out: dict[str, str] = {}
    for part in value.split("+"):
        if not part.strip():
            continue
        sym, colon, name = part.partition(":")
        if not colon or not sym.strip() or not name.strip():
            raise ValueError(f"{part!r} is not SYMBOL:Company Name")
        out[sym.strip().upper()] = name.strip()
    return out


# I/O shell


@dataclass
class _UrlState:
    seen: SeenSet = field(default_factory=SeenSet)
    etag: str | None = None
    last_modified: str | None = None


# Module level on purpose: it outlives a feed instance, so a supervisor restart keeps it.
_STATE: dict[str, _UrlState] = {}


def forget(url: str | None = None) -> None:
    """Drop what is remembered (seen keys, validators) for ``url``, or for every URL."""
    if url is None:
        _STATE.clear()
    else:
        _STATE.pop(url, None)


def _state(url: str) -> _UrlState:
    st = _STATE.get(url)
    if st is None:
        st = _STATE[url] = _UrlState()
    return st


_OPTIONS: dict[str, Option] = {
    "urls": Option("feed URLs, +-separated", None, parse_urls),
    "interval": Option("seconds between polls of each URL, 1..86400", "60", as_float(1, 86_400)),
    "watch": Option("tickers to tag when named as whole words, +-separated", "", parse_watch),
    "companies": Option("company names to tag, SYMBOL:Name+SYMBOL:Name", "", parse_companies),
    "source": Option("source label (default: each feed's own title)", "", str),
    "timeout": Option("HTTP timeout in seconds", "20", as_float(0.1, 600)),
}


def public_url(url: str) -> str:
    """Pure; no I/O. ``url`` without user info and with every query value masked."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class RssFeed:
    """RSS/Atom news from one or more URLs, polled with conditional GET, deduplicated."""

    description: ClassVar[str] = "RSS/Atom news: polled with conditional GET, deduped, tagged"
    options: ClassVar[dict[str, str]] = help_of(_OPTIONS)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = parse_options(_OPTIONS, options or {})
        if not opts["urls"]:
            raise ValueError("option urls is required (feed URLs, +-separated)")
        self.name = "rss"
        self.urls: list[str] = opts["urls"]
        self.interval: float = opts["interval"]
        self.watch: list[str] = opts["watch"]
        self.companies: dict[str, str] = opts["companies"]
        self.source: str = opts["source"]
        self.timeout: float = opts["timeout"]
        self.counters: dict[str, int] = {
            "polls": 0,
            "not_modified": 0,
            "items": 0,
            "duplicates": 0,
            "skipped": 0,
            "parse_problems": 0,
            "http_errors": 0,
        }
        self.last_problem: dict[str, str] = {}
        self._closed = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    # Public API

    async def events(self) -> AsyncIterator[Event]:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            while not self._closed.is_set():
                for url in self.urls:
                    for news in await self.poll(url):
                        yield news
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), self.interval)
        finally:
            await self._close_session()

    async def poll(self, url: str) -> list[News]:
        """One conditional GET of ``url``: the new items (none on 304 or on any failure)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        st = _state(url)
        headers = {"User-Agent": "ticker-rss/0.1 (+feedparser)"}
        if st.etag:
            headers["If-None-Match"] = st.etag
        if st.last_modified:
            headers["If-Modified-Since"] = st.last_modified
        self.counters["polls"] += 1
        try:
            async with self._session.get(url, headers=headers) as resp:
                if resp.status == 304:
                    self.counters["not_modified"] += 1
                    return []
                if resp.status != 200:
                    self._problem("http_errors", url, f"HTTP {resp.status}")
                    return []
                body = await resp.read()
                etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
                ctype = resp.headers.get("Content-Type")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._problem("http_errors", url, f"{type(exc).__name__}: {exc}")
            return []
        parsed = parse_document(
            body,
            source=self.source,
            now_ms=time.time() * 1000.0,
            content_type=ctype,
            watch=self.watch,
            companies=self.companies,
        )
        # Validators only after a body was read and parsed: a failed fetch must not turn the
        # next poll into a 304 for a document we never saw.
        st.etag, st.last_modified = etag, modified
        if parsed.problem:
            self._problem("parse_problems", url, parsed.problem)
        self.counters["skipped"] += parsed.skipped
        out: list[News] = []
        for key, news in parsed.items:
            if st.seen.add(key):
                out.append(news)
            else:
                self.counters["duplicates"] += 1
        self.counters["items"] += len(out)
        return out

    def status(self) -> str:
        return "running" if self.counters["polls"] else "starting"

    def health(self) -> dict[str, Any]:
        """Counters and the last problem per URL (for /healthz, which anyone may read: the URLs
        are shown without credentials or query values, where feed keys live)."""
        shown = {public_url(u): what for u, what in self.last_problem.items()}
        return {**self.counters, "last_problem": shown}

    async def aclose(self) -> None:
        self._closed.set()
        await self._close_session()

    # Internals

    def _problem(self, counter: str, url: str, what: str) -> None:
        self.counters[counter] += 1
        self.last_problem[url] = what
        log.warning("rss %s: %s", url, what)

    async def _close_session(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

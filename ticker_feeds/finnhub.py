"""Finnhub real-time trades (stocks, forex, crypto) and news over its WebSocket API.

:class:`FinnhubCodec` is pure (no I/O): one ``{"type": "subscribe", "symbol": ...}`` per symbol
(and, with ``news=yes``, one ``{"type": "subscribe-news", "symbol": ...}``), and
``{"type": "trade", "data": [{"p", "s", "t", "v"}]}`` frames mapped onto ``Tick`` (price, volume
as the trade size, ``t`` the trade time in ms). ``{"type": "news", "data": [{"category",
"datetime", "headline", "id", "image", "related", "source", "summary", "url"}]}`` frames (a
premium stream) become ``News`` (``datetime`` in seconds, ``related`` the comma-separated symbols,
an ``id`` already seen counted, not repeated). ``{"type": "ping"}`` frames are the upstream's
heartbeat (liveness only).

:class:`FinnhubFeed` is the I/O shell (:func:`ticker_feeds._ws.stream`). The shell sends the first
subscribe at once and the others at 5 a second while ticks already flow, so the free tier's 50
symbols take 10 s to subscribe without holding anything back. Finnhub allows **one connection per
API key**: run one finnhub feed per key, and no other program with the same key. The
API key is read from an environment variable, goes only into the connection URL (as Finnhub
requires), and is scrubbed from every error it logs or reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote

from ticker_feeds._ws import (
    NOT_JSON,
    CountsGarbage,
    LinkStats,
    SeenIds,
    SymbolClock,
    WsConfig,
    WsFeed,
    link_options,
    load_frame,
)
from ticker_feeds.base import Event, News, Option, Tick, finite_number

__all__ = ["FinnhubCodec", "FinnhubFeed"]

log = logging.getLogger("ticker.feeds.finnhub")

# JSON numbers as floats, None when absent or not finite (ticker_feeds.base)
_num = finite_number


_SEEN_NEWS = 4096


def _yes_no(value: str) -> bool:
    v = value.strip().lower()
    if v not in ("yes", "no"):
        raise ValueError(f"{value!r} is not yes or no")
    return v == "yes"


def _symbols(value: str) -> list[str]:
    syms = list(dict.fromkeys(s.strip() for s in value.split("+") if s.strip()))
    if not syms:
        raise ValueError("symbols is empty")
    return syms


class FinnhubCodec(CountsGarbage):
    """Pure; no I/O. Finnhub frames -> ticks."""

    def __init__(self, symbols: list[str], news: bool = False) -> None:
        self.symbols = symbols
        self.news = news
        self.clock = SymbolClock(tuple(symbols))
        self.counters: dict[str, int] = dict.fromkeys(
            ("ticks", "news", "news_updates", "garbage", "pings", "errors"), 0
        )
        self.last_problem: str | None = None
        self._seen_news = SeenIds(_SEEN_NEWS)

    def subscribe_messages(self) -> list[str]:
        out = [json.dumps({"type": "subscribe", "symbol": s}) for s in self.symbols]
        if self.news:
            out += [json.dumps({"type": "subscribe-news", "symbol": s}) for s in self.symbols]
        return out

    def handle(self, text: str, now_ms: float) -> list[Event]:
        """One text frame -> events. Never raises."""
        msg = load_frame(text, self.garbage)
        if msg is NOT_JSON:
            return []
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "ping":
            self.counters["pings"] += 1
            return []
        if kind == "error":
            self.counters["errors"] += 1
            self.last_problem = f"error: {str(msg.get('msg'))[:200]}"
            log.warning("finnhub: %s", self.last_problem)
            return []
        if kind == "news" and isinstance(msg.get("data"), list):
            return self._news(msg["data"])
        if kind != "trade" or not isinstance(msg.get("data"), list):
            self.garbage(f"unknown frame: {text[:80]!r}")
            return []
        out: list[Event] = []
        for d in msg["data"]:
            if not isinstance(d, dict):
                self.garbage(f"trade is not an object: {str(d)[:80]!r}")
                continue
            sym, price, ts, size = d.get("s"), _num(d.get("p")), _num(d.get("t")), _num(d.get("v"))
            if not isinstance(sym, str) or not sym or price is None or price <= 0:
                self.garbage(f"bad trade: {str(d)[:80]!r}")
                continue
            if ts is None or ts <= 0:
                self.garbage(f"bad trade time: {str(d)[:80]!r}")
                continue
            out.append(Tick(sym, price, ts, size=size if size and size > 0 else None))
            self.clock.touch(sym, now_ms)
        self.counters["ticks"] += len(out)
        return out

    def _news(self, items: list[object]) -> list[Event]:
        out: list[Event] = []
        for d in items:
            news = self._one_news(d)
            if news is not None:
                out.append(news)
        return out

    def _one_news(self, d: object) -> News | None:
        if not isinstance(d, dict):
            self.garbage(f"news item is not an object: {str(d)[:80]!r}")
            return None
        headline, secs = d.get("headline"), _num(d.get("datetime"))
        if not isinstance(headline, str) or not headline.strip() or secs is None or secs <= 0:
            self.garbage(f"bad news: {str(d)[:80]!r}")
            return None
        if self._seen_news.repeated(d.get("id")):
            self.counters["news_updates"] += 1
            return None
        related = d.get("related")
        syms = related.split(",") if isinstance(related, str) else []
        source, url, summary = d.get("source"), d.get("url"), d.get("summary")
        who = source.strip() if isinstance(source, str) else ""
        self.counters["news"] += 1
        return News(
            headline=" ".join(headline.split()),
            ts=secs * 1000.0,
            source=f"finnhub/{who}" if who else "finnhub",
            symbols=tuple(dict.fromkeys(s.strip() for s in syms if s.strip())),
            url=url.strip() or None if isinstance(url, str) else None,
            summary=" ".join(summary.split()) or None if isinstance(summary, str) else None,
        )


class FinnhubFeed(WsFeed):
    """Finnhub trades; the API key comes from an environment variable."""

    description: ClassVar[str] = "Finnhub trades (API key from $FINNHUB_API_KEY)"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "symbols": Option("Finnhub symbols, +-separated (AAPL, BINANCE:BTCUSDT)", "AAPL", _symbols),
        "url": Option(
            "WebSocket endpoint (the key is added as ?token=)", "wss://ws.finnhub.io", str
        ),
        "key_env": Option("environment variable holding the API key", "FINNHUB_API_KEY", str),
        "news": Option("also subscribe to news of the symbols (premium): yes or no", "no", _yes_no),
        **link_options("300", "a trade before a symbol"),
    }
    codec: FinnhubCodec

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = self.parse(options)
        key = os.environ.get(opts["key_env"], "")
        if not key:
            raise ValueError(f"set the Finnhub API key in ${opts['key_env']}")
        self.name = "finnhub"
        self.codec = FinnhubCodec(opts["symbols"], opts["news"])
        sep = "&" if "?" in opts["url"] else "?"
        self.config = WsConfig(
            url=f"{opts['url']}{sep}token={quote(key)}",
            backoff_initial=opts["backoff"],
            secrets=(key, quote(key)),
        )
        self.stale_after: float = opts["stale_after"]
        self.link = LinkStats()
        self._closed = asyncio.Event()

    def __repr__(self) -> str:  # never show the URL (it holds the key)
        return f"FinnhubFeed(symbols={self.codec.symbols!r})"

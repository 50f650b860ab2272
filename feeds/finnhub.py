"""Finnhub real-time trades (stocks, forex, crypto) over its WebSocket API.

:class:`FinnhubCodec` is pure (no I/O): one ``{"type": "subscribe", "symbol": ...}`` per symbol,
and ``{"type": "trade", "data": [{"p", "s", "t", "v"}]}`` frames mapped onto ``Tick`` (price,
volume as the trade size, ``t`` the trade time in ms). ``{"type": "ping"}`` frames are the
upstream's heartbeat (liveness only). :class:`FinnhubFeed` is the I/O shell
(:func:`feeds._ws.stream`); the API key is read from an environment variable, goes only into the
connection URL (as Finnhub requires), and is scrubbed from every error it logs or reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote

from feeds._ws import (
    NOT_JSON,
    CountsGarbage,
    LinkStats,
    SymbolClock,
    WsConfig,
    WsFeed,
    link_options,
    load_frame,
)
from feeds.base import Event, Option, Tick, finite_number

__all__ = ["FinnhubCodec", "FinnhubFeed"]

log = logging.getLogger("ticker.feeds.finnhub")

# JSON numbers as floats, None when absent or not finite (feeds.base)
_num = finite_number


def _symbols(value: str) -> list[str]:
    syms = list(dict.fromkeys(s.strip() for s in value.split("+") if s.strip()))
    if not syms:
        raise ValueError("symbols is empty")
    return syms


class FinnhubCodec(CountsGarbage):
    """Pure; no I/O. Finnhub frames -> ticks."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.clock = SymbolClock(tuple(symbols))
        self.counters: dict[str, int] = {"ticks": 0, "garbage": 0, "pings": 0, "errors": 0}
        self.last_problem: str | None = None

    def subscribe_messages(self) -> list[str]:
        return [json.dumps({"type": "subscribe", "symbol": s}) for s in self.symbols]

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


class FinnhubFeed(WsFeed):
    """Finnhub trades; the API key comes from an environment variable."""

    description: ClassVar[str] = "Finnhub trades (API key from $FINNHUB_API_KEY)"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "symbols": Option("Finnhub symbols, +-separated (AAPL, BINANCE:BTCUSDT)", "AAPL", _symbols),
        "url": Option(
            "WebSocket endpoint (the key is added as ?token=)", "wss://ws.finnhub.io", str
        ),
        "key_env": Option("environment variable holding the API key", "FINNHUB_API_KEY", str),
        **link_options("300", "a trade before a symbol"),
    }
    codec: FinnhubCodec

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = self.parse(options)
        key = os.environ.get(opts["key_env"], "")
        if not key:
            raise ValueError(f"set the Finnhub API key in ${opts['key_env']}")
        self.name = "finnhub"
        self.codec = FinnhubCodec(opts["symbols"])
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

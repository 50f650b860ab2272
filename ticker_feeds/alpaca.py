"""Feeds layer: Alpaca real-time market data (trades, quotes, bars) and news over its WebSocket API.

:class:`AlpacaCodec` is pure (no I/O). The key and secret go in the handshake's
``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` headers, as Alpaca allows, so the session is
authenticated before the first message: the one ``{"action": "subscribe", "trades": [...],
"quotes": [...], "bars": [...]}`` (or ``"news": [...]``) goes out at once, with no race against
the ``authenticated`` reply (a subscribe before it is Alpaca's error 401, which ends the session).
Alpaca sends JSON arrays of messages keyed by ``T``:

* ``"t"`` trade -> ``Tick`` (price ``p``, size ``s``, time ``t``),
* ``"q"`` quote -> ``Tick`` with ``bid``/``ask``; its price is the symbol's last trade price when a
  trade has been seen (so quotes never move the last price), else the mid (or the only side quoted),
* ``"b"`` minute bar -> ``Bar`` (``t`` is the minute's start, interval ``1m``, ``o h l c v``); the
  core builds the coarser intervals from it. ``"u"`` is an updated bar (late trades corrected a
  bar already sent): the core keeps the first final bar of a minute, so a correction is not
  applied; an updated bar newer than the last bar sent is emitted as that minute's bar, an older
  one is counted in ``bar_corrections``. A symbol's bars come from one source: with trades or
  quotes subscribed too, the core takes whichever reaches it first (in practice the ticks) and
  refuses the other, so subscribe ``channels=bars`` alone to chart Alpaca's own minute bars,
* ``"n"`` news -> ``News`` (HTML stripped from headline and summary, time ``created_at``, source
  ``alpaca/<source>``, e.g. ``alpaca/benzinga``); an update of an item already seen (same ``id``)
  is counted, not repeated,
* ``"success"``/``"subscription"``/``"error"`` control messages are tracked, never events.

Times are RFC-3339 with up to nanoseconds (``2021-02-22T15:51:45.335689322Z``) -> epoch ms.
:class:`AlpacaFeed` is the I/O shell (:func:`ticker_feeds._ws.stream`). The key and secret are read
from environment variables, go only into the handshake headers, and are scrubbed from every error
logged or reported. Alpaca's documented errors that end a session (401 not authenticated, 402 auth
failed, 404 auth timeout, 406 connection limit exceeded, 407 slow client, 409 insufficient
subscription, 410 invalid subscribe action) close the connection and retry with exponential
backoff and jitter, growing while they repeat; the others (400 invalid syntax, 403 already
authenticated, 405 symbol limit exceeded, 500 internal error) are counted and logged. Most
subscriptions allow one connection per endpoint (error 406 for a second one).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar

from ticker.core.events import Bar
from ticker_feeds._ws import (
    NOT_JSON,
    LinkStats,
    SeenIds,
    SymbolClock,
    WsConfig,
    backoff_delay,
    link_options,
    load_frame,
    stream,
)
from ticker_feeds.base import (
    Event,
    Listing,
    News,
    Option,
    Tick,
    finite_number,
    help_of,
    parse_options,
    positive_number,
)
from ticker_feeds.rss import strip_html

__all__ = ["AlpacaCodec", "AlpacaFeed", "rfc3339_ms"]

log = logging.getLogger("ticker.feeds.alpaca")

# JSON numbers as floats, None when absent or not finite (ticker_feeds.base)
_num = finite_number
_pos = positive_number

MARKET_URL = "wss://stream.data.alpaca.markets/v2/iex"
NEWS_URL = "wss://stream.data.alpaca.markets/v1beta1/news"
CHANNELS = ("trades", "quotes", "bars", "news")

# Alpaca's documented error codes after which the session is useless (auth failed or timed out,
# connection limit, slow client dropped, feed or channel not in the subscription): close, back off,
# connect and auth again.
FATAL_CODES = frozenset({401, 402, 404, 406, 407, 409, 410})
AUTH_CODES = frozenset({401, 402, 404})
# Documented message types we do not subscribe to (daily bars, statuses, LULD, corrections, ...).
_OTHER_TYPES = frozenset({"d", "s", "l", "c", "x", "o", "i", "e", "p", "ds"})
_SEEN_NEWS = 4096

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


def rfc3339_ms(value: Any) -> float | None:
    """Pure. An RFC-3339 time with up to nanosecond digits -> epoch ms (None: not one)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    m = _RFC3339.fullmatch(value.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    try:
        off = dt.timedelta(0) if z else dt.timedelta(hours=int(oh), minutes=int(om))
        if sign == "-":
            off = -off
        base = dt.datetime(
            int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=dt.timezone(off)
        )
    except (ValueError, OverflowError):
        return None
    ms = base.timestamp() * 1000.0 + (int(frac.ljust(9, "0")) / 1e6 if frac else 0.0)
    return ms if ms > 0 else None


def _symbols(value: str) -> list[str]:
    syms = list(dict.fromkeys(s.strip().upper() for s in value.split("+") if s.strip()))
    if not syms:
        raise ValueError("symbols is empty")
    return syms


def _channels(value: str) -> tuple[str, ...]:
    chans = tuple(dict.fromkeys(c.strip().lower() for c in value.split("+") if c.strip()))
    bad = [c for c in chans if c not in CHANNELS]
    if bad or not chans:
        raise ValueError(f"channels must be +-separated from {', '.join(CHANNELS)}")
    if "news" in chans and len(chans) > 1:
        raise ValueError(
            "news is on its own endpoint: use a second feed, e.g. alpaca:channels=news"
        )
    return chans


class AlpacaCodec:
    """Pure; no I/O. Alpaca frames -> ticks and news; control messages -> state and counters.

    Args:
        symbols: symbols to subscribe (``*`` is every symbol, as Alpaca allows).
        channels: any of trades, quotes, bars; or news alone.
        key: API key id (only ever put into the auth message).
        secret: API secret (likewise).
        on_fatal: called with the reason when the upstream sends an error that ends the session.
    """

    def __init__(
        self,
        symbols: list[str],
        channels: tuple[str, ...],
        key: str,
        secret: str,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.symbols = symbols
        self.channels = channels
        self.headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
        self._secrets = (key, secret)
        self.on_fatal = on_fatal
        market = [s for s in symbols if s != "*"] if channels != ("news",) else []
        self.clock = SymbolClock(tuple(market))
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "trades",
                "quotes",
                "bars",
                "bar_corrections",
                "news",
                "news_updates",
                "crossed_quotes",
                "ignored",
                "garbage",
                "errors",
                "auth_failures",
                "subscription_acks",
            ),
            0,
        )
        self.authenticated = False
        self.fatal_code: int | None = None
        self.subscribed: dict[str, list[str]] = {}
        self.last_problem: str | None = None
        self.last_trade: dict[str, float] = {}
        self.last_bar: dict[str, float] = {}  # start of the last bar sent, per symbol
        self._seen_news = SeenIds(_SEEN_NEWS)

    def scrub(self, text: str) -> str:
        """``text`` with the key and secret replaced by ``***``."""
        for s in self._secrets:
            if s:
                text = text.replace(s, "***")
        return text

    def subscribe_messages(self) -> list[str]:
        """One subscribe (the handshake's headers authenticated the session); called on every
        connect (a new session)."""
        self.authenticated = False
        self.fatal_code = None
        self.subscribed = {}
        sub: dict[str, Any] = {"action": "subscribe"}
        for c in self.channels:
            sub[c] = self.symbols
        return [json.dumps(sub)]

    def garbage(self, what: str) -> None:
        self.counters["garbage"] += 1
        self.last_problem = self.scrub(what)[:200]

    def handle(self, text: str, now_ms: float) -> list[Event]:
        """One text frame (a JSON array of messages, or one message) -> events. Never raises."""
        msg = load_frame(text, self.garbage)
        if msg is NOT_JSON:
            return []
        items = msg if isinstance(msg, list) else [msg]
        out: list[Event] = []
        for item in items:
            try:
                ev = self._one(item, now_ms)
            except (ValueError, TypeError, OverflowError) as exc:  # belt and braces
                self.garbage(f"bad message ({exc}): {str(item)[:80]!r}")
                continue
            if ev is not None:
                out.append(ev)
        return out

    def _one(self, d: Any, now_ms: float) -> Event | None:
        if not isinstance(d, dict):
            self.garbage(f"message is not an object: {str(d)[:80]!r}")
            return None
        kind = d.get("T")
        if kind == "t":
            return self._trade(d, now_ms)
        if kind == "q":
            return self._quote(d, now_ms)
        if kind in ("b", "u"):
            return self._bar(d, now_ms)
        if kind == "n":
            return self._news(d)
        if kind == "success":
            if d.get("msg") == "authenticated":
                self.authenticated = True
            return None
        if kind == "subscription":
            self.authenticated = True  # only an authenticated session gets one
            self.counters["subscription_acks"] += 1
            self.subscribed = {
                k: [s for s in v if isinstance(s, str)]
                for k, v in d.items()
                if k != "T" and isinstance(v, list) and v
            }
            return None
        if kind == "error":
            self._error(d)
            return None
        if isinstance(kind, str) and kind in _OTHER_TYPES:
            self.counters["ignored"] += 1
            return None
        self.garbage(f"unknown message: {str(d)[:80]!r}")
        return None

    def _error(self, d: dict[str, Any]) -> None:
        code = d.get("code") if isinstance(d.get("code"), int) else None
        self.counters["errors"] += 1
        self.last_problem = self.scrub(
            f"error {str(d.get('code'))[:10]}: {str(d.get('msg'))[:200]}"
        )
        log.warning("alpaca: %s", self.last_problem)
        if code in AUTH_CODES:
            self.counters["auth_failures"] += 1
            self.authenticated = False
        if code in FATAL_CODES:
            self.fatal_code = code
            if self.on_fatal is not None:
                self.on_fatal(self.last_problem)

    def _symbol(self, d: dict[str, Any]) -> str | None:
        s = d.get("S")
        return s if isinstance(s, str) and s and s.strip() == s else None

    def _trade(self, d: dict[str, Any], now_ms: float) -> Tick | None:
        sym, price, ts = self._symbol(d), _pos(d.get("p")), rfc3339_ms(d.get("t"))
        if sym is None or price is None or ts is None:
            self.garbage(f"bad trade: {str(d)[:80]!r}")
            return None
        size = _num(d.get("s"))
        self.last_trade[sym] = price
        self.clock.touch(sym, now_ms)
        self.counters["trades"] += 1
        return Tick(sym, price, ts, size=size if size is not None and size > 0 else None)

    def _quote(self, d: dict[str, Any], now_ms: float) -> Tick | None:
        sym, ts = self._symbol(d), rfc3339_ms(d.get("t"))
        bid, ask = _pos(d.get("bp")), _pos(d.get("ap"))  # 0: that side is empty
        if sym is None or ts is None or (bid is None and ask is None):
            self.garbage(f"bad quote: {str(d)[:80]!r}")
            return None
        if bid is not None and ask is not None and bid > ask:
            self.counters["crossed_quotes"] += 1
            return None
        price = self.last_trade.get(sym)
        if price is None:
            price = (bid + ask) / 2.0 if bid is not None and ask is not None else bid or ask
        assert price is not None
        self.clock.touch(sym, now_ms)
        self.counters["quotes"] += 1
        return Tick(sym, price, ts, bid=bid, ask=ask)

    def _bar(self, d: dict[str, Any], now_ms: float) -> Bar | None:
        sym, ts = self._symbol(d), rfc3339_ms(d.get("t"))
        o, h, lo, c = (_pos(d.get(k)) for k in ("o", "h", "l", "c"))
        if sym is None or ts is None or o is None or h is None or lo is None or c is None:
            self.garbage(f"bad bar: {str(d)[:80]!r}")
            return None
        if ts % 60_000 or not lo <= min(o, c) <= max(o, c) <= h:
            self.garbage(f"bad bar (not a minute, or low/high not around open/close): {d!r}"[:200])
            return None
        self.clock.touch(sym, now_ms)
        if ts <= self.last_bar.get(sym, float("-inf")):
            # An updated bar ("u") of a minute already sent: the core keeps the first final bar.
            self.counters["bar_corrections"] += 1
            return None
        self.last_bar[sym] = ts
        vol = _num(d.get("v"))
        self.counters["bars"] += 1
        return Bar(sym, ts, "1m", o, h, lo, c, vol if vol is not None and vol > 0 else 0.0)

    def _news(self, d: dict[str, Any]) -> News | None:
        headline = strip_html(d["headline"]) if isinstance(d.get("headline"), str) else ""
        ts = rfc3339_ms(d.get("created_at"))
        if not headline or ts is None:
            self.garbage(f"bad news: {str(d)[:80]!r}")
            return None
        if self._seen_news.repeated(d.get("id")):
            self.counters["news_updates"] += 1
            return None
        raw = d.get("symbols")
        syms = tuple(
            dict.fromkeys(
                s.strip() for s in (raw if isinstance(raw, list) else []) if isinstance(s, str)
            )
        )
        summary = strip_html(d["summary"]) if isinstance(d.get("summary"), str) else ""
        url = link.strip() if isinstance(link := d.get("url"), str) else ""
        who = d["source"] if isinstance(d.get("source"), str) else ""
        self.counters["news"] += 1
        return News(
            headline=headline,
            ts=ts,
            source=f"alpaca/{who.strip()}" if who.strip() else "alpaca",
            symbols=tuple(s for s in syms if s),
            url=url or None,
            summary=summary or None,
        )


_OPTIONS: dict[str, Option] = {
    "symbols": Option("symbols, +-separated (* is every symbol)", "AAPL", _symbols),
    "channels": Option(
        "trades, quotes, bars (+-separated), or news alone", "trades+quotes", _channels
    ),
    "url": Option(
        f"WebSocket endpoint (default {MARKET_URL}; {NEWS_URL} for channels=news)", None, str
    ),
    "key_env": Option("environment variable holding the API key id", "APCA_API_KEY_ID", str),
    "secret_env": Option("environment variable holding the API secret", "APCA_API_SECRET_KEY", str),
    **link_options("300", "an update before a symbol"),
}


class AlpacaFeed:
    """Alpaca trades, quotes, bars or news; key and secret come from environment variables."""

    description: ClassVar[str] = (
        "Alpaca trades/quotes/bars or news (keys from $APCA_API_KEY_ID, $APCA_API_SECRET_KEY)"
    )
    options: ClassVar[dict[str, str]] = help_of(_OPTIONS)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = parse_options(_OPTIONS, options or {})
        key = os.environ.get(opts["key_env"], "")
        secret = os.environ.get(opts["secret_env"], "")
        if not key or not secret:
            raise ValueError(
                f"set the Alpaca API key in ${opts['key_env']} "
                f"and its secret in ${opts['secret_env']}"
            )
        self.name = "alpaca"
        channels: tuple[str, ...] = opts["channels"]
        self.codec = AlpacaCodec(opts["symbols"], channels, key, secret, self._fatal)
        url = opts["url"] or (NEWS_URL if channels == ("news",) else MARKET_URL)
        self.config = WsConfig(
            url=url,
            backoff_initial=opts["backoff"],
            secrets=(key, secret),
            headers=self.codec.headers,
        )
        self.stale_after: float = opts["stale_after"]
        self.link = LinkStats()
        self.fatal_in_a_row = 0
        self.retry_in_s: float | None = None
        self._rng = random.Random()
        self._closed = asyncio.Event()
        self._session_over = asyncio.Event()

    def __repr__(self) -> str:  # never show the config (it holds the key and secret)
        return f"AlpacaFeed(symbols={self.codec.symbols!r}, channels={self.codec.channels!r})"

    def _fatal(self, reason: str) -> None:
        """The upstream ended the session (auth failed, connection limit...): leave and back off."""
        self.link.last_error = reason
        self._session_over.set()

    async def events(self) -> AsyncIterator[Event]:
        if self.codec.clock.expected:
            yield Listing(self.codec.clock.expected)
        while not self._closed.is_set():
            self._session_over = asyncio.Event()
            async for ev in stream(
                self.config, self.codec, self.link, self._session_over, name=self.name
            ):
                self.fatal_in_a_row = 0  # this session delivered: the next error starts afresh
                yield ev
            if self._closed.is_set():
                break
            # The session ended on an Alpaca error: back off longer each time it repeats.
            self.retry_in_s = backoff_delay(
                self.fatal_in_a_row,
                initial=self.config.backoff_initial,
                maximum=self.config.backoff_max,
                rng=self._rng,
            )
            self.fatal_in_a_row += 1
            self.link.reconnects += 1
            self.link.state = "auth-failed" if self.codec.fatal_code in AUTH_CODES else "error"
            log.warning(
                "alpaca: session ended (%s); retrying in %.2fs",
                self.link.last_error,
                self.retry_in_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self.retry_in_s)
        self.link.state = "stopped"

    def status(self) -> str:
        return self.link.state

    def health(self) -> dict[str, Any]:
        """Link and codec counters, the session state, and which symbols are stale."""
        now = time.time() * 1000.0
        return {
            **self.link.as_dict(),
            **self.codec.counters,
            "authenticated": self.codec.authenticated,
            "subscribed": self.codec.subscribed,
            "retry_in_s": self.retry_in_s,
            "last_problem": self.codec.last_problem,
            "stale": self.codec.clock.stale(now, self.stale_after),
            "last_update_age_s": self.codec.clock.ages(now),
        }

    async def aclose(self) -> None:
        self._closed.set()
        self._session_over.set()

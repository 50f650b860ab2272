"""Coinbase market data: the Exchange feed's ``ticker`` and ``matches`` channels (plus
``heartbeat``), or with ``api=advanced`` Advanced Trade's ``market_trades`` and ``ticker`` (plus
``heartbeats``): :class:`AdvancedTradeCodec`. Both are public (no key).

:class:`CoinbaseCodec` is pure (no I/O; the shell passes ``now_ms``): it builds the subscribe
message and maps each feed message onto ``Tick``. :class:`CoinbaseFeed` is the I/O shell
(:func:`ticker_feeds._ws.stream`), which sends the subscribe at once on connecting, well inside the
5 seconds Coinbase allows, and again after every reconnect.

Mapping: a ``ticker`` carries the trade price and size, best bid/ask, 24 h volume and open (as
``prev_close``) and the trade ``time``; a ``match`` (or ``last_match``) carries price, size and
time. Both channels report the same trade (same ``trade_id``), and the ticker channel *batches*
during cascading matches: one ticker for trade 12 may arrive before the matches of trades 10, 11
and 12. So each trade is reported exactly once, by its match, in trade-id order: a ticker ahead
of the matches is held until its own match arrives and rides on that match's tick (bid/ask, 24 h
volume and open); a ticker for a trade a match already reported is a quote update (no size). A
held ticker whose match never comes (a newer match, or a heartbeat whose ``last_trade_id`` covers
it, shows the trade is done) is emitted as that trade's only report.

Sequence numbers: ``sequence`` is per product and shared by every channel, so on ticker/matches it
jumps over order-book events we do not subscribe to; since the ticker channel runs ahead of the
matches, each channel's order is checked on its own: a message whose sequence is not above the
last one seen on its channel is out of order (dropped, counted; so is the ``last_match`` repeated
after a reconnect). A match for a trade already reported is a duplicate (dropped, counted).
Missed trades show as jumps in the per-product ``trade_id`` (matches are contiguous), counted as
``gaps``/``missed_trades``; the heartbeat's ``last_trade_id`` reveals trades missed on a quiet
product too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from ticker_feeds._ws import (
    NOT_JSON,
    CountsGarbage,
    LinkStats,
    SymbolClock,
    WsConfig,
    WsFeed,
    link_options,
    load_frame,
)
from ticker_feeds.base import Event, Option, Tick, finite_number, positive_number

__all__ = [
    "ADVANCED_URL",
    "EXCHANGE_URL",
    "AdvancedTradeCodec",
    "CoinbaseCodec",
    "CoinbaseFeed",
    "parse_iso_ms",
    "parse_products",
]

log = logging.getLogger("ticker.feeds.coinbase")

# JSON numbers as floats, None when absent or not finite (ticker_feeds.base)
_num = partial(finite_number, strings=True)
_pos = partial(positive_number, strings=True)


def parse_products(value: str) -> list[str]:
    """``"btc-usd+ETH-USD"`` -> ``["BTC-USD", "ETH-USD"]``."""
    prods = list(dict.fromkeys(p.strip().upper() for p in value.split("+") if p.strip()))
    if not prods:
        raise ValueError("products is empty")
    for p in prods:
        base, dash, quote = p.partition("-")
        if not dash or not base.isalnum() or not quote.isalnum():
            raise ValueError(f"{p!r} is not a product id like BTC-USD")
    return prods


def parse_iso_ms(value: Any) -> float | None:
    """Pure. ``"2021-04-17T16:43:30.244075Z"`` -> epoch ms; None if it is not such a time."""
    if not isinstance(value, str) or not 19 <= len(value) <= 40:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp() * 1000.0


class CoinbaseCodec(CountsGarbage):
    """Pure; no I/O. Coinbase Exchange feed messages -> ticks, with sequence/trade-id tracking."""

    CHANNELS = ("ticker", "matches", "heartbeat")

    def __init__(self, products: list[str]) -> None:
        self.products = products
        self.clock = SymbolClock(tuple(products))
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "ticks",
                "garbage",
                "ignored",
                "gaps",
                "missed_trades",
                "out_of_order",
                "duplicates",
                "errors",
            ),
            0,
        )
        self.last_problem: str | None = None
        self._seq: dict[tuple[str, str], int] = {}  # per (product, channel)
        self._trade: dict[str, int] = {}  # highest trade id seen per product
        self._emitted: dict[str, int] = {}  # highest trade id whose size was emitted
        self._pending: dict[str, tuple[int, Tick]] = {}  # a ticker ahead of its match

    def subscribe_messages(self) -> list[str]:
        msg = {"type": "subscribe", "product_ids": self.products, "channels": list(self.CHANNELS)}
        return [json.dumps(msg)]

    def handle(self, text: str, now_ms: float) -> list[Event]:
        """One text frame -> events. Never raises."""
        msg = load_frame(text, self.garbage)
        if msg is NOT_JSON:
            return []
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.garbage(f"no type: {text[:80]!r}")
            return []
        try:
            return self._dispatch(msg, now_ms)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.garbage(f"{type(exc).__name__}: {exc}: {text[:80]!r}")
            return []

    # Internals

    def _dispatch(self, msg: dict[str, Any], now_ms: float) -> list[Event]:
        kind = msg["type"]
        if kind == "ticker":
            return self._ticker(msg, now_ms)
        if kind in ("match", "last_match"):
            return self._match(msg, now_ms)
        if kind == "heartbeat":
            prod, tid = msg["product_id"], msg.get("last_trade_id")
            if isinstance(prod, str) and isinstance(tid, int) and tid > 0:
                self._track_trade(prod, tid, allow_equal=True)
                held = self._pending.get(prod)
                if held is not None and held[0] <= tid:
                    # The trade is done and its match never came: the ticker is its only report.
                    del self._pending[prod]
                    return self._emit(held[1], held[0], now_ms)
            return []
        if kind == "subscriptions":
            return []
        if kind == "error":
            self.counters["errors"] += 1
            self.last_problem = f"error: {msg.get('message')}: {msg.get('reason')}"[:200]
            log.warning("coinbase: %s", self.last_problem)
            return []
        self.counters["ignored"] += 1  # l2update, snapshot, ... : known kinds we do not map
        return []

    def _track_trade(self, prod: str, tid: int, *, allow_equal: bool = False) -> None:
        """``allow_equal``: ``tid`` is the last trade done (a heartbeat), not the next one."""
        last = self._trade.get(prod)
        missed = 0 if last is None else tid - last - (0 if allow_equal else 1)
        if missed > 0:
            self.counters["gaps"] += 1
            self.counters["missed_trades"] += missed
        if last is None or tid > last:
            self._trade[prod] = tid

    def _fields(
        self, msg: dict[str, Any], kind: str
    ) -> tuple[str, int, int, float, float, float | None] | None:
        """(product, sequence, trade id, price, time ms, size) of a trade message, or None (and
        counted as garbage) when one is missing or malformed."""
        prod, seq, tid = msg["product_id"], msg["sequence"], msg["trade_id"]
        price, ts = _pos(msg["price"]), parse_iso_ms(msg["time"])
        size = _pos(msg["last_size"] if kind == "ticker" else msg["size"])
        ok = isinstance(prod, str) and prod and isinstance(seq, int) and isinstance(tid, int)
        if not ok or price is None or ts is None:
            self.garbage(f"bad {kind}: {str(msg)[:80]!r}")
            return None
        return prod, seq, tid, price, ts, size

    def _in_order(self, prod: str, channel: str, seq: int) -> bool:
        """Whether ``seq`` is above the last one seen on this product's ``channel`` (the ticker
        channel batches, so it runs ahead of matches: each channel is ordered on its own)."""
        last = self._seq.get((prod, channel))
        if last is not None and seq <= last:
            self.counters["out_of_order"] += 1
            return False
        self._seq[prod, channel] = seq
        return True

    def _emit(self, tick: Tick, tid: int, now_ms: float) -> list[Event]:
        if tick.size is not None:
            self._emitted[tick.symbol] = max(tid, self._emitted.get(tick.symbol, 0))
        self.counters["ticks"] += 1
        self.clock.touch(tick.symbol, now_ms)
        return [tick]

    def _ticker(self, msg: dict[str, Any], now_ms: float) -> list[Event]:
        got = self._fields(msg, "ticker")
        if got is None:
            return []
        prod, seq, tid, price, ts, size = got
        if not self._in_order(prod, "ticker", seq):
            return []
        bid, ask = _pos(msg.get("best_bid")), _pos(msg.get("best_ask"))
        if bid is not None and ask is not None and bid > ask:
            bid = ask = None
        tick = Tick(
            prod,
            price,
            ts,
            size=size,
            bid=bid,
            ask=ask,
            volume=_num(msg.get("volume_24h")),
            prev_close=_pos(msg.get("open_24h")),
        )
        if tid <= self._emitted.get(prod, 0):
            # Its match came first and reported the trade: the ticker is a quote update.
            return self._emit(dataclasses.replace(tick, size=None), tid, now_ms)
        # Ahead of the matches (a batched ticker, or simply first): hold it for its match, which
        # reports the trade with this quote; a newer ticker replaces an older one still held.
        self._pending[prod] = (tid, tick)
        return []

    def _match(self, msg: dict[str, Any], now_ms: float) -> list[Event]:
        got = self._fields(msg, msg["type"])
        if got is None:
            return []
        prod, seq, tid, price, ts, size = got
        if not self._in_order(prod, "matches", seq):
            return []
        if tid <= self._emitted.get(prod, 0):
            self.counters["duplicates"] += 1  # already reported (by a ticker whose match was late)
            return []
        self._track_trade(prod, tid)
        out: list[Event] = []
        tick = Tick(prod, price, ts, size=size)
        held = self._pending.get(prod)
        if held is not None and held[0] <= tid:
            del self._pending[prod]
            if held[0] == tid:  # the held ticker's own trade: one tick with the quote
                tick = dataclasses.replace(
                    held[1], price=price, ts=ts, size=size if size is not None else held[1].size
                )
            else:  # its match was missed: the ticker is that trade's only report
                out += self._emit(held[1], held[0], now_ms)
        return out + self._emit(tick, tid, now_ms)


class AdvancedTradeCodec(CountsGarbage):
    """Pure; no I/O. Coinbase Advanced Trade market data messages -> ticks.

    Every message is an envelope ``{"channel", "client_id", "timestamp", "sequence_num",
    "events": [...]}``; ``sequence_num`` counts the messages of one connection (from 0), so a jump
    is messages lost (``gaps``/``missed_messages``). Channels:

    * ``market_trades``: ``events[].trades[]`` of ``{trade_id, product_id, price, size, side,
      time}`` (a ``snapshot`` of recent trades on subscribing, then ``update``s collected over
      250 ms) -> one ``Tick`` with its size per trade, oldest first; a trade id already reported
      (the snapshot again after a reconnect) is counted in ``duplicates``, not repeated;
    * ``ticker``: ``events[].tickers[]`` of ``{product_id, price, volume_24_h,
      price_percent_chg_24_h, best_bid, best_ask, ...}`` -> a ``Tick`` without a size (the trade
      came on market_trades) stamped with the envelope's ``timestamp``; ``prev_close`` is the
      price 24 h ago, derived from the percent change (the channel sends no open);
    * ``heartbeats``: liveness (it also keeps quiet subscriptions open); ``subscriptions``:
      acknowledgements; any other channel is counted as ignored.
    """

    CHANNELS = ("market_trades", "ticker", "heartbeats")

    def __init__(self, products: list[str]) -> None:
        self.products = products
        self.clock = SymbolClock(tuple(products))
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "ticks",
                "garbage",
                "ignored",
                "heartbeats",
                "gaps",
                "missed_messages",
                "duplicates",
                "errors",
            ),
            0,
        )
        self.last_problem: str | None = None
        self._seq: int | None = None
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def subscribe_messages(self) -> list[str]:
        """One subscribe per channel (Advanced Trade takes one channel a message); called on every
        connect, which restarts ``sequence_num``."""
        self._seq = None
        out = []
        for ch in self.CHANNELS:
            msg: dict[str, Any] = {"type": "subscribe", "channel": ch}
            if ch != "heartbeats":
                msg["product_ids"] = self.products
            out.append(json.dumps(msg))
        return out

    def handle(self, text: str, now_ms: float) -> list[Event]:
        """One text frame -> events. Never raises."""
        msg = load_frame(text, self.garbage)
        if msg is NOT_JSON:
            return []
        if isinstance(msg, dict) and msg.get("type") == "error":
            self.counters["errors"] += 1
            self.last_problem = f"error: {msg.get('message')}: {msg.get('reason')}"[:200]
            log.warning("coinbase advanced: %s", self.last_problem)
            return []
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("channel"), str)
            or not isinstance(msg.get("events"), list)
        ):
            self.garbage(f"not a channel message: {text[:80]!r}")
            return []
        self._sequence(msg.get("sequence_num"))
        try:
            return self._dispatch(msg, now_ms)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.garbage(f"{type(exc).__name__}: {exc}: {text[:80]!r}")
            return []

    # Internals

    def _sequence(self, seq: Any) -> None:
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        if self._seq is not None and seq > self._seq + 1:
            self.counters["gaps"] += 1
            self.counters["missed_messages"] += seq - self._seq - 1
        if self._seq is None or seq > self._seq:
            self._seq = seq

    def _dispatch(self, msg: dict[str, Any], now_ms: float) -> list[Event]:
        channel, events = msg["channel"], msg["events"]
        if channel == "market_trades":
            trades = [t for e in events if isinstance(e, dict) for t in _list(e.get("trades"))]
            return self._trades(trades, now_ms)
        if channel == "ticker":
            ts = parse_iso_ms(msg.get("timestamp"))
            if ts is None:
                self.garbage(f"ticker without a timestamp: {str(msg)[:80]!r}")
                return []
            tickers = [t for e in events if isinstance(e, dict) for t in _list(e.get("tickers"))]
            out: list[Event] = []
            for t in tickers:
                out += self._ticker(t, ts, now_ms)
            return out
        if channel == "heartbeats":
            self.counters["heartbeats"] += 1
            return []
        if channel == "subscriptions":
            return []
        self.counters["ignored"] += 1
        return []

    def _trades(self, trades: list[Any], now_ms: float) -> list[Event]:
        parsed: list[tuple[float, int, str, str, Tick]] = []
        for d in trades:
            if not isinstance(d, dict):
                self.garbage(f"trade is not an object: {str(d)[:80]!r}")
                continue
            prod, tid = d.get("product_id"), d.get("trade_id")
            price, ts, size = _pos(d.get("price")), parse_iso_ms(d.get("time")), _pos(d.get("size"))
            if isinstance(tid, int) and not isinstance(tid, bool):
                tid = str(tid)
            if not isinstance(prod, str) or not prod or not isinstance(tid, str) or not tid:
                self.garbage(f"bad trade: {str(d)[:80]!r}")
                continue
            if price is None or ts is None:
                self.garbage(f"bad trade: {str(d)[:80]!r}")
                continue
            order = int(tid) if tid.isdigit() else 0
            parsed.append((ts, order, prod, tid, Tick(prod, price, ts, size=size)))
        out: list[Event] = []
        for _, _, prod, tid, tick in sorted(parsed, key=lambda p: (p[0], p[1])):
            if (prod, tid) in self._seen:
                self.counters["duplicates"] += 1
                continue
            self._seen[prod, tid] = None
            if len(self._seen) > _SEEN_TRADES:
                self._seen.popitem(last=False)
            self.counters["ticks"] += 1
            self.clock.touch(prod, now_ms)
            out.append(tick)
        return out

    def _ticker(self, d: Any, ts: float, now_ms: float) -> list[Event]:
        if not isinstance(d, dict):
            self.garbage(f"ticker is not an object: {str(d)[:80]!r}")
            return []
        prod, price = d.get("product_id"), _pos(d.get("price"))
        if not isinstance(prod, str) or not prod or price is None:
            self.garbage(f"bad ticker: {str(d)[:80]!r}")
            return []
        bid, ask = _pos(d.get("best_bid")), _pos(d.get("best_ask"))
        if bid is not None and ask is not None and bid > ask:
            bid = ask = None
        pct = _num(d.get("price_percent_chg_24_h"))
        prev = price / (1.0 + pct / 100.0) if pct is not None and pct > -100.0 else None
        vol = _num(d.get("volume_24_h"))
        tick = Tick(
            prod,
            price,
            ts,
            bid=bid,
            ask=ask,
            volume=vol if vol is not None and vol >= 0 else None,
            prev_close=prev if prev is not None and math.isfinite(prev) and prev > 0 else None,
        )
        self.counters["ticks"] += 1
        self.clock.touch(prod, now_ms)
        return [tick]


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


_SEEN_TRADES = 20_000  # trade ids remembered (a snapshot is the last 50 trades per product)

EXCHANGE_URL = "wss://ws-feed.exchange.coinbase.com"
ADVANCED_URL = "wss://advanced-trade-ws.coinbase.com"


def _api(value: str) -> str:
    v = value.strip().lower()
    if v not in ("exchange", "advanced"):
        raise ValueError(f"{value!r} is not exchange or advanced")
    return v


class CoinbaseFeed(WsFeed):
    """Coinbase market data: the Exchange feed (ticker + matches channels, the default) or
    Advanced Trade (``api=advanced``: market_trades + ticker channels)."""

    description: ClassVar[str] = (
        "Coinbase (public): Exchange ticker+matches, or Advanced Trade (api=advanced)"
    )
    OPTIONS: ClassVar[dict[str, Option]] = {
        "products": Option("Coinbase product ids, +-separated", "BTC-USD+ETH-USD", parse_products),
        "api": Option(
            "exchange (ws-feed: ticker, matches) or advanced (Advanced Trade: market_trades, "
            "ticker)",
            "exchange",
            _api,
        ),
        "url": Option(
            f"websocket feed (default {EXCHANGE_URL}; {ADVANCED_URL} with api=advanced)",
            None,
            str,
        ),
        **link_options("60", "an update before a product"),
    }
    codec: CoinbaseCodec | AdvancedTradeCodec

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = self.parse(options)
        self.name = "coinbase"
        self.api: str = opts["api"]
        if self.api == "advanced":
            self.codec = AdvancedTradeCodec(opts["products"])
        else:
            self.codec = CoinbaseCodec(opts["products"])
        # Heartbeats arrive every second, so 30 s of silence is a dead link. Both APIs drop a
        # client that has not subscribed within 5 s (the shell sends the first one at once).
        self.config = WsConfig(
            url=opts["url"] or (ADVANCED_URL if self.api == "advanced" else EXCHANGE_URL),
            subscribe_within=5.0,
            idle_timeout=30.0,
            backoff_initial=opts["backoff"],
        )
        self.stale_after: float = opts["stale_after"]
        self.link = LinkStats()
        self._closed = asyncio.Event()

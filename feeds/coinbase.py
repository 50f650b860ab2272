"""Coinbase Exchange market data: the ``ticker`` and ``matches`` channels (plus ``heartbeat``).

:class:`CoinbaseCodec` is pure (no I/O; the shell passes ``now_ms``): it builds the subscribe
message and maps each feed message onto ``Tick``. :class:`CoinbaseFeed` is the I/O shell
(:func:`feeds._ws.stream`), which sends the subscribe at once on connecting, well inside the
5 seconds Coinbase allows, and again after every reconnect.

Mapping: a ``ticker`` carries the trade price and size, best bid/ask, 24 h volume and open (as
``prev_close``) and the trade ``time``; a ``match`` (or ``last_match``) carries price, size and
time. Both channels report the same trade (same ``trade_id``), so each trade's size is emitted
once: a match already covered by a ticker is dropped, and a ticker for a trade a match already
reported is emitted without a size (a quote/volume update).

Sequence numbers: ``sequence`` is per product and shared by every channel, so on ticker/matches it
jumps over order-book events we do not subscribe to; a message whose sequence is not above the
last one seen is out of order (dropped, counted). Missed trades show as jumps in the per-product
``trade_id`` (matches are contiguous), counted as ``gaps``/``missed_trades``; the heartbeat's
``last_trade_id`` reveals trades missed on a quiet product too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

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
from feeds.base import Event, Option, Tick, finite_number, positive_number

__all__ = ["CoinbaseCodec", "CoinbaseFeed", "parse_iso_ms", "parse_products"]

log = logging.getLogger("ticker.feeds.coinbase")

# JSON numbers as floats, None when absent or not finite (feeds.base)
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
        self._seq: dict[str, int] = {}
        self._trade: dict[str, int] = {}  # highest trade id seen per product
        self._emitted: dict[str, int] = {}  # highest trade id whose size was emitted

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
        if kind in ("ticker", "match", "last_match"):
            return self._trade_msg(msg, kind, now_ms)
        if kind == "heartbeat":
            prod, tid = msg["product_id"], msg.get("last_trade_id")
            if isinstance(prod, str) and isinstance(tid, int) and tid > 0:
                self._track_trade(prod, tid, allow_equal=True)
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

    def _trade_msg(self, msg: dict[str, Any], kind: str, now_ms: float) -> list[Event]:
        prod, seq, tid = msg["product_id"], msg["sequence"], msg["trade_id"]
        price, ts = _pos(msg["price"]), parse_iso_ms(msg["time"])
        size = _pos(msg["last_size"] if kind == "ticker" else msg["size"])
        ok = isinstance(prod, str) and prod and isinstance(seq, int) and isinstance(tid, int)
        if not ok or price is None or ts is None:
            self.garbage(f"bad {kind}: {str(msg)[:80]!r}")
            return []
        last_seq = self._seq.get(prod)
        if last_seq is not None and seq < last_seq:
            self.counters["out_of_order"] += 1
            return []
        self._seq[prod] = seq
        if kind != "ticker":
            self._track_trade(prod, tid)
        emitted = self._emitted.get(prod, 0)
        if kind == "ticker":
            bid, ask = _pos(msg.get("best_bid")), _pos(msg.get("best_ask"))
            if bid is not None and ask is not None and bid > ask:
                bid = ask = None
            if tid <= emitted:
                size = None  # a match already reported this trade's size
            else:
                self._emitted[prod] = tid
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
        else:
            if tid <= emitted:
                self.counters["duplicates"] += 1
                return []
            self._emitted[prod] = tid
            tick = Tick(prod, price, ts, size=size)
        self.counters["ticks"] += 1
        self.clock.touch(prod, now_ms)
        return [tick]


class CoinbaseFeed(WsFeed):
    """Coinbase Exchange trades with best bid/ask (ticker + matches channels)."""

    description: ClassVar[str] = "Coinbase Exchange (public): ticker and matches channels"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "products": Option("Coinbase product ids, +-separated", "BTC-USD+ETH-USD", parse_products),
        "url": Option("Exchange websocket feed", "wss://ws-feed.exchange.coinbase.com", str),
        **link_options("60", "an update before a product"),
    }
    codec: CoinbaseCodec

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = self.parse(options)
        self.name = "coinbase"
        self.codec = CoinbaseCodec(opts["products"])
        # Heartbeats arrive every second per product, so 30 s of silence is a dead link.
        self.config = WsConfig(
            url=opts["url"],
            subscribe_within=5.0,
            idle_timeout=30.0,
            backoff_initial=opts["backoff"],
        )
        self.stale_after: float = opts["stale_after"]
        self.link = LinkStats()
        self._closed = asyncio.Event()

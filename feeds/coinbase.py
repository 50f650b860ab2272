"""Coinbase Exchange market data: the ``ticker`` and ``matches`` channels (plus ``heartbeat``).

:class:`CoinbaseCodec` is pure (no I/O; the shell passes ``now_ms``): it builds the subscribe
message and maps each feed message onto ``Tick``. :class:`CoinbaseFeed` is the I/O shell
(:func:`feeds._ws.stream`), which sends the subscribe at once on connecting, well inside the
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
after a reconnect). A match for a trade already reported is a duplicate (dropped, counted). Missed trades show
as jumps in the per-product ``trade_id`` (matches are contiguous), counted as
``gaps``/``missed_trades``; the heartbeat's ``last_trade_id`` reveals trades missed on a quiet
product too.
"""

from __future__ import annotations

import asyncio
import dataclasses
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

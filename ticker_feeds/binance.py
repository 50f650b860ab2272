"""Binance spot market data: combined streams (aggTrade or trade, bookTicker, 24hrTicker).

:class:`BinanceCodec` is pure (no I/O, no clock: the shell passes ``now_ms``): it builds the
SUBSCRIBE messages and maps each combined-stream frame ``{"stream": ..., "data": {...}}`` onto
``Tick``. :class:`BinanceFeed` is the I/O shell (:func:`ticker_feeds._ws.stream`).

Mapping: a trade/aggTrade is a Tick with its price, quantity and trade time ``T``; a bookTicker
updates bid/ask (it carries no event time, so its tick is stamped at receipt) and keeps the last
trade price (or the mid before any trade); a 24hrTicker carries last price, bid/ask, the rolling
24 h base volume and its open (as ``prev_close``, so change matches Binance's own). Other events
of the stream (depthUpdate, kline) are counted as ignored; frames that are not JSON objects of a
known shape are counted as garbage and skipped.

Control messages: a reply to a SUBSCRIBE ``{"result": null, "id": 1}`` is an acknowledgement; an
error reply (``{"code": 2, "msg": "Invalid request: ...", "id": 1}``, or the ``{"error": {"code",
"msg"}, "id"}`` form) is counted in ``errors``, kept as ``last_problem`` and logged. A
``serverShutdown`` event (``{"event": {"e": "serverShutdown", "E": ...}}``; also taken bare or
inside a combined-stream wrapper) means the server is about to close the connection: the feed
reconnects at once, before it does, without a backoff.

Limits honoured: at most 5 outgoing messages per second (SUBSCRIBE batches are paced), at most
1024 streams per connection, and a planned reconnect before Binance's 24 h connection lifetime.
Update ids: aggTrade ``a`` (trade ``t``) ids are consecutive per symbol, so a jump is a gap
(counted); a bookTicker ``u`` not above the last one is out of order and dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
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
from ticker_feeds.base import (
    Event,
    Option,
    Tick,
    as_float,
    finite_number,
    positive_number,
)

__all__ = ["MAX_STREAMS", "BinanceCodec", "BinanceFeed", "parse_streams", "parse_symbols"]

log = logging.getLogger("ticker.feeds.binance")

# JSON numbers as floats, None when absent or not finite (ticker_feeds.base)
_num = partial(finite_number, strings=True)
_pos = partial(positive_number, strings=True)

MAX_STREAMS = 1024  # per connection (Binance docs)
_PER_MESSAGE = 200  # streams per SUBSCRIBE message
_STREAMS = {
    "aggTrade": "aggTrade",
    "trade": "trade",
    "bookTicker": "bookTicker",
    "ticker": "ticker",
}


def parse_symbols(value: str) -> list[str]:
    """``"btcusdt+ETHUSDT"`` -> ``["btcusdt", "ethusdt"]`` (stream names are lower case)."""
    syms = list(dict.fromkeys(s.strip().lower() for s in value.split("+") if s.strip()))
    if not syms:
        raise ValueError("symbols is empty")
    for s in syms:
        if not s.isalnum():
            raise ValueError(f"{s!r} is not a Binance symbol")
    return syms


def parse_streams(value: str) -> list[str]:
    """``"aggTrade+bookTicker+ticker"`` -> stream kinds (one of aggTrade, trade, bookTicker,
    ticker)."""
    kinds = [s.strip() for s in value.split("+") if s.strip()]
    bad = [k for k in kinds if k not in _STREAMS]
    if bad or not kinds:
        raise ValueError(f"streams must be +-separated from {', '.join(_STREAMS)}")
    return list(dict.fromkeys(kinds))


class BinanceCodec(CountsGarbage):
    """Pure; no I/O. Binance combined-stream frames -> ticks, with counters and update ids."""

    def __init__(self, symbols: list[str], streams: list[str]) -> None:
        self.symbols = symbols
        self.streams = streams
        self.clock = SymbolClock(tuple(s.upper() for s in symbols))
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "ticks",
                "garbage",
                "ignored",
                "gaps",
                "missed_trades",
                "out_of_order",
                "errors",
                "shutdowns",
            ),
            0,
        )
        self.last_problem: str | None = None
        self.reconnect = False  # a serverShutdown was seen: the shell reconnects at once
        self._trade_id: dict[str, int] = {}
        self._book_u: dict[str, int] = {}
        self._last_price: dict[str, float] = {}
        self._bid_ask: dict[str, tuple[float, float]] = {}
        self._next_id = 1

    # Outgoing

    def stream_names(self) -> list[str]:
        return [f"{s}@{k}" for s in self.symbols for k in self.streams]

    def subscribe_messages(self) -> list[str]:
        names = self.stream_names()[:MAX_STREAMS]
        out = []
        for i in range(0, len(names), _PER_MESSAGE):
            out.append(
                json.dumps(
                    {
                        "method": "SUBSCRIBE",
                        "params": names[i : i + _PER_MESSAGE],
                        "id": self._next_id,
                    }
                )
            )
            self._next_id += 1
        return out

    # Incoming

    def handle(self, text: str, now_ms: float) -> list[Event]:
        """One text frame -> events. Never raises."""
        msg = load_frame(text, self.garbage)
        if msg is NOT_JSON:
            return []
        try:
            return self._dispatch(msg, now_ms)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.garbage(f"{type(exc).__name__}: {exc}: {text[:80]!r}")
            return []

    def _dispatch(self, msg: Any, now_ms: float) -> list[Event]:
        if not isinstance(msg, dict):
            self.garbage(f"not an object: {str(msg)[:80]!r}")
            return []
        if "result" in msg and "id" in msg:
            return []  # SUBSCRIBE acknowledged
        if "error" in msg or ("code" in msg and "msg" in msg):
            raw = msg.get("error", msg)
            self._error(raw if isinstance(raw, dict) else {"msg": raw}, msg.get("id"))
            return []
        data = msg.get("data", msg) if "stream" in msg else msg
        data = data.get("event", data) if isinstance(data, dict) and "e" not in data else data
        if isinstance(data, dict) and data.get("e") == "serverShutdown":
            self.counters["shutdowns"] += 1
            self.reconnect = True
            log.info("binance: serverShutdown announced; reconnecting now")
            return []
        if not isinstance(data, dict):
            self.garbage(f"data is not an object: {str(data)[:80]!r}")
            return []
        kind = data.get("e")
        if kind in ("aggTrade", "trade"):
            return self._trade(data, kind, now_ms)
        if kind == "24hrTicker":
            return self._ticker(data, now_ms)
        if kind is None and {"u", "s", "b", "a"} <= data.keys():
            return self._book(data, now_ms)
        if isinstance(kind, str):
            self.counters["ignored"] += 1
            return []
        self.garbage(f"unknown frame: {str(data)[:80]!r}")
        return []

    def _error(self, err: dict[str, Any], rid: Any) -> None:
        self.counters["errors"] += 1
        self.last_problem = f"error {err.get('code')}: {err.get('msg')} (id {rid})"[:200]
        log.warning("binance: %s", self.last_problem)

    def _emit(self, tick: Tick, now_ms: float) -> list[Event]:
        self.counters["ticks"] += 1
        self.clock.touch(tick.symbol, now_ms)
        return [tick]

    def _quote(self, sym: str) -> tuple[float | None, float | None]:
        ba = self._bid_ask.get(sym)
        return (ba[0], ba[1]) if ba else (None, None)

    def _trade(self, d: dict[str, Any], kind: str, now_ms: float) -> list[Event]:
        sym, price, size, ts = d["s"], _pos(d["p"]), _num(d["q"]), _pos(d["T"])
        tid = d["a"] if kind == "aggTrade" else d["t"]
        if not isinstance(sym, str) or not sym or price is None or ts is None:
            self.garbage(f"bad {kind}: {str(d)[:80]!r}")
            return []
        if not isinstance(tid, int):
            raise TypeError("trade id is not an integer")
        last = self._trade_id.get(sym)
        if last is not None:
            if tid <= last:
                self.counters["out_of_order"] += 1
                return []
            if tid > last + 1:
                self.counters["gaps"] += 1
                self.counters["missed_trades"] += tid - last - 1
        self._trade_id[sym] = tid
        self._last_price[sym] = price
        bid, ask = self._quote(sym)
        tick = Tick(
            sym, price, float(ts), size=size if size and size > 0 else None, bid=bid, ask=ask
        )
        return self._emit(tick, now_ms)

    def _book(self, d: dict[str, Any], now_ms: float) -> list[Event]:
        sym, u, bid, ask = d["s"], d["u"], _pos(d["b"]), _pos(d["a"])
        if (
            not isinstance(sym, str)
            or not sym
            or not isinstance(u, int)
            or bid is None
            or ask is None
        ):
            self.garbage(f"bad bookTicker: {str(d)[:80]!r}")
            return []
        last = self._book_u.get(sym)
        if last is not None and u <= last:
            self.counters["out_of_order"] += 1
            return []
        self._book_u[sym] = u
        if bid > ask:
            self.garbage(f"crossed bookTicker: {str(d)[:80]!r}")
            return []
        self._bid_ask[sym] = (bid, ask)
        price = self._last_price.get(sym, (bid + ask) / 2.0)
        return self._emit(Tick(sym, price, now_ms, bid=bid, ask=ask), now_ms)

    def _ticker(self, d: dict[str, Any], now_ms: float) -> list[Event]:
        sym, price, ts = d["s"], _pos(d["c"]), _pos(d["E"])
        if not isinstance(sym, str) or not sym or price is None or ts is None:
            self.garbage(f"bad 24hrTicker: {str(d)[:80]!r}")
            return []
        bid, ask = _pos(d.get("b")), _pos(d.get("a"))
        if bid is not None and ask is not None and bid <= ask:
            self._bid_ask[sym] = (bid, ask)
        else:
            bid, ask = self._quote(sym)
        self._last_price[sym] = price
        tick = Tick(
            sym,
            price,
            float(ts),
            bid=bid,
            ask=ask,
            volume=_num(d.get("v")),
            prev_close=_pos(d.get("o")),
        )
        return self._emit(tick, now_ms)


class BinanceFeed(WsFeed):
    """Binance spot trades, best bid/ask and 24 h tickers over one combined-stream connection."""

    description: ClassVar[str] = "Binance spot (public): aggTrade/trade, bookTicker, 24hrTicker"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "symbols": Option("Binance symbols, +-separated", "btcusdt+ethusdt", parse_symbols),
        "streams": Option(
            "streams per symbol: aggTrade, trade, bookTicker, ticker (+-separated)",
            "aggTrade+bookTicker+ticker",
            parse_streams,
        ),
        "url": Option("combined-stream endpoint", "wss://stream.binance.com:9443/stream", str),
        "lifetime": Option(
            "seconds before a planned reconnect (Binance closes at 24 h)",
            "84600",
            as_float(1, 86_000),
        ),
        **link_options("60", "an update before a symbol"),
    }
    codec: BinanceCodec

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        opts = self.parse(options)
        if len(opts["symbols"]) * len(opts["streams"]) > MAX_STREAMS:
            raise ValueError(f"symbols x streams exceeds Binance's {MAX_STREAMS} per connection")
        self.name = "binance"
        self.codec = BinanceCodec(opts["symbols"], opts["streams"])
        self.config = WsConfig(
            url=opts["url"],
            send_rate=4.0,  # under Binance's 5 incoming messages per second
            lifetime=opts["lifetime"],
            backoff_initial=opts["backoff"],
        )
        self.stale_after: float = opts["stale_after"]
        self.link = LinkStats()
        self._closed = asyncio.Event()

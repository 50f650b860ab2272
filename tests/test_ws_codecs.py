"""What every upstream codec shares: a frame that is not JSON is garbage, counted, never raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ticker_feeds.alpaca import AlpacaCodec
from ticker_feeds.binance import BinanceCodec
from ticker_feeds.coinbase import CoinbaseCodec
from ticker_feeds.finnhub import FinnhubCodec

CODECS: dict[str, Callable[[], Any]] = {
    "alpaca": lambda: AlpacaCodec(["AAPL"], ("trades",), "PKTESTKEY0123456789", "sekrit/abc987"),
    "binance": lambda: BinanceCodec(["btcusdt"], ["ticker"]),
    "coinbase": lambda: CoinbaseCodec(["BTC-USD"]),
    "finnhub": lambda: FinnhubCodec(["AAPL"]),
}


@pytest.mark.parametrize("name", sorted(CODECS))
@pytest.mark.parametrize("frame", ["{", "", "\x00", "[" * 100_000 + "]" * 100_000])
def test_a_frame_that_is_not_json_is_counted_as_garbage(name: str, frame: str) -> None:
    codec: Any = CODECS[name]()
    assert codec.handle(frame, 0.0) == []
    assert codec.counters["garbage"] == 1
    assert codec.last_problem.startswith("not JSON")

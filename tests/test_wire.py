"""ticker.core.wire and ticker.core.sse: encodings, formats (field selection) and framings. Pure;
no event loop."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, strategies as st

from ticker.core.protocol import (
    FIELDS,
    Delta,
    Fields,
    NewsRequest,
    ProtocolError,
    Snapshot,
    Subscribe,
    Throttle,
    encode,
)
from ticker.core.sse import http_chunk, sse_event, sse_requests
from ticker.core.wire import JSON, MSGPACK, SUBPROTOCOLS, Format, SseWire, ws_binary_frame

symbols = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=8)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53),
    st.text(max_size=5),
)
quote = st.dictionaries(st.sampled_from(FIELDS[1:]), values, max_size=6).map(
    lambda d: {**d, "ts": 1.7e12}
)
quotes = st.dictionaries(symbols, quote, max_size=40)


def _both(quotes: dict[str, dict[str, Any]], seq: int, t: float) -> tuple[Any, Any]:
    out = []
    for enc in (JSON, MSGPACK):
        parts = list(enc.fragments(quotes).values())
        payload = enc.delta_payload(seq, enc.delta_tail(t, parts))
        out.append(msgspec.msgpack.decode(payload) if enc.binary else orjson.loads(payload))
    return out[0], out[1]


@given(quotes, st.integers(0, 2**40), st.floats(0, 2e12))
def test_spliced_msgpack_delta_equals_the_json_delta(
    q: dict[str, dict[str, Any]], seq: int, t: float
) -> None:
    j, m = _both(q, seq, t)
    assert j == m == orjson.loads(encode(Delta(seq, t, q)))
    assert list(m) == ["type", "seq", "t", "quotes"]  # the same key order as the JSON


@given(quotes, st.integers(0, 2**40))
def test_spliced_msgpack_snapshot_equals_the_json_snapshot(
    q: dict[str, dict[str, Any]], seq: int
) -> None:
    parts = list(MSGPACK.fragments(q).values())
    decoded = msgspec.msgpack.decode(MSGPACK.snapshot(seq, parts))
    assert decoded == orjson.loads(encode(Snapshot(seq, q)))
    assert MSGPACK.encode(Snapshot(seq, q)) == MSGPACK.snapshot(seq, parts)


def test_fields_select_what_a_format_encodes() -> None:
    fmt = Format(JSON, frozenset({"price", "change_pct"}))
    changed = {
        "AAPL": {"price": 1.5, "volume": 10.0, "ts": 5.0},
        "MSFT": {"volume": 3.0, "ts": 6.0},  # nothing selected changed: left out
    }
    frags = fmt.fragments(changed)
    assert list(frags) == ["AAPL"]
    assert orjson.loads(b"{" + frags["AAPL"] + b"}") == {"AAPL": {"price": 1.5, "ts": 5.0}}
    full = {"AAPL": {"symbol": "AAPL", "price": 1.5, "ts": 5.0, "bid": 1.4, "change_pct": 0.1}}
    snap = orjson.loads(b"{" + fmt.snapshot_fragments(full)["AAPL"] + b"}")
    assert snap == {"AAPL": {"symbol": "AAPL", "price": 1.5, "ts": 5.0, "change_pct": 0.1}}
    # No selection: everything.
    assert Format(JSON).fragments(changed) == JSON.fragments(changed)


def test_subprotocols_and_their_frames() -> None:
    assert SUBPROTOCOLS["ticker.v1"].frame("pong", b"{}") == b"\x81\x02{}"
    assert SUBPROTOCOLS["ticker.v1.msgpack"].delta(b"\x80") == b"\x82\x01\x80"
    big = b"x" * 300
    assert ws_binary_frame(big)[:4] == b"\x82\x7e\x01\x2c"


def test_sse_events_and_chunks() -> None:
    assert sse_event("news", b'{"id":7}', 7) == b'event: news\nid: 7\ndata: {"id":7}\n\n'
    assert sse_event("delta", b"{}") == b"event: delta\ndata: {}\n\n"
    with pytest.raises(ValueError):
        sse_event("news", b"a\nb")
    assert http_chunk(b"hello") == b"5\r\nhello\r\n"
    with pytest.raises(ValueError):
        http_chunk(b"")
    chunked, plain = SseWire(chunked=True), SseWire(chunked=False)
    assert chunked.delta(b"{}") == http_chunk(sse_event("delta", b"{}"))
    assert plain.frame("news", b"{}", 3) == sse_event("news", b"{}", 3)
    assert chunked.comment() == b"3\r\n:\n\n\r\n" and chunked.end() == b"0\r\n\r\n"
    assert plain.end() == b""


def test_sse_query_becomes_requests_in_order() -> None:
    reqs = sse_requests(
        {
            "news": "*",
            "symbols": "AAPL, MSFT,",
            "throttle_ms": "250",
            "fields": "price",
            "since": "7",
        }
    )
    assert reqs == [
        Throttle(250.0),
        Fields(("price",)),
        Subscribe(("AAPL", "MSFT")),
        NewsRequest(("*",), 7),
    ]
    assert sse_requests({"news": "AAPL", "since": "7"}, "9") == [NewsRequest(("AAPL",), 9)]
    assert sse_requests({"news": "AAPL", "since": "7"}, "junk") == [NewsRequest(("AAPL",), 7)]
    assert sse_requests({}) == []
    assert sse_requests({"max_bps": "2000"}, default_ms=250) == [Throttle(250, None, 2000.0)]
    assert sse_requests({"throttle_ms": "0", "max_bps": "0"}) == [Throttle(0.0, None, 0.0)]
    bad_queries: list[dict[str, str]] = [
        {"throttle_ms": "x"},
        {"max_bps": "lots"},
        {"max_bps": "-3"},
        {"fields": "colour"},
        {"news": "*", "since": "-1"},
        {"news": "*", "since": "²"},
    ]
    for bad in bad_queries:
        err = sse_requests(bad)
        assert isinstance(err, ProtocolError) and err.code == "bad_request", bad
    many = sse_requests({"symbols": ",".join(f"S{i}" for i in range(11))}, max_symbols=10)
    assert isinstance(many, ProtocolError) and many.code == "too_many_symbols"


@given(
    st.dictionaries(
        st.sampled_from(["symbols", "news", "throttle_ms", "fields", "since"]), st.text(max_size=20)
    ),
    st.none() | st.text(max_size=12),
)
def test_sse_query_never_raises(query: dict[str, str], last: str | None) -> None:
    out = sse_requests(query, last)
    assert isinstance(out, list | ProtocolError)


@given(
    st.integers(0, 2**40),
    st.sampled_from([0, 1, 90, 100, 101, 102, 103, 125, 126, 200, 65_500, 65_536, 70_000]),
)
def test_fused_delta_frame_is_the_spliced_payload_framed(seq: int, size: int) -> None:
    """The per-connection hot path (Wire.delta_frame: issue 20) makes the same bytes as splicing
    seq into the shared tail and framing the payload, across every frame-length boundary."""
    for wire in (*SUBPROTOCOLS.values(), SseWire(chunked=True), SseWire(chunked=False)):
        enc = wire.encoding
        tail = enc.delta_tail(
            1795715689330.2, list(enc.fragments({"A": {"x": "y" * size}}).values())
        )
        assert wire.delta_frame(seq, tail) == wire.delta(enc.delta_payload(seq, tail))

"""Wire protocol: round trips, request parsing and its error codes, hot-path encoders. Sync."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from ticker.core.protocol import (
    ERROR_CODES,
    Ack,
    Delta,
    Error,
    Hello,
    NewsItem,
    NewsRequest,
    Ping,
    Pong,
    ProtocolError,
    Resync,
    ServerMessage,
    Snapshot,
    Subscribe,
    Throttle,
    Unsubscribe,
    decode,
    delta_payload,
    delta_tail,
    encode,
    parse_request,
    quote_fragments,
    snapshot_from_fragments,
)
from ticker.core.wsframe import ws_text_frame

MESSAGES: list[Any] = [
    Hello("s-1", 100, ("AAPL", "MSFT"), 41, server="ticker/0.1.0"),
    Snapshot(1, {"AAPL": {"symbol": "AAPL", "price": 189.31, "ts": 1732640000123.4}}),
    Delta(2, 1732640000230.1, {"AAPL": {"price": 189.33, "ts": 1732640000221.9}}),
    NewsItem(40, 1.5, "AAPL beats", "simnews", ("AAPL",), "https://x.test/a", "sum"),
    NewsItem(41, 2.5, "no link", "wire"),
    Pong(12.5),
    Pong(),
    Error("unknown_symbol", "unknown symbols: NOPE", 3, ("NOPE",)),
    Error("bad_json", "not JSON"),
    Ack(1, {"symbols": ["AAPL"]}),
    Ack("req-2", {"ms": 250}),
    Subscribe(("AAPL", "*"), 1),
    Unsubscribe(("AAPL",)),
    NewsRequest(("*",), 39, 7),
    NewsRequest(()),
    Throttle(0),
    Throttle(250.5, "t"),
    Resync(5),
    Ping(3.25),
    Ping(),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Any) -> None:
    assert decode(encode(msg)) == msg


def test_server_messages_carry_their_type() -> None:
    types = {orjson.loads(encode(m)).get("type") for m in MESSAGES}
    assert {"hello", "snapshot", "delta", "news", "pong", "error", "ack"} <= types


def test_optional_fields_are_omitted_not_null() -> None:
    assert orjson.loads(encode(NewsItem(1, 1.0, "h", "s"))).keys() == {
        "type",
        "id",
        "ts",
        "headline",
        "source",
        "symbols",
    }
    assert "id" not in orjson.loads(encode(Error("bad_json", "x")))


def test_hot_path_delta_equals_encode() -> None:
    quotes = {"AAPL": {"price": 1.5, "ts": 3.0}, "BRK.B": {"bid": 2, "ts": 4.25}}
    frags = quote_fragments(quotes)
    payload = delta_payload(9, delta_tail(123.5, list(frags.values())))
    assert payload == encode(Delta(9, 123.5, quotes))
    assert snapshot_from_fragments(3, list(frags.values())) == encode(Snapshot(3, quotes))


def test_symbols_needing_escapes_are_encoded_safely() -> None:
    quotes = {'we"ird\\sym': {"price": 1.0}}
    payload = delta_payload(1, delta_tail(0.0, list(quote_fragments(quotes).values())))
    assert orjson.loads(payload)["quotes"] == quotes


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_ws_text_frame_lengths(n: int) -> None:
    payload = b"x" * n
    frame = ws_text_frame(payload)
    assert frame[0] == 0x81  # FIN + text
    assert frame[1] & 0x80 == 0  # server frames are unmasked
    if n < 126:
        assert frame[1] == n and frame[2:] == payload
    elif n < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == n
        assert frame[4:] == payload
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == n
        assert frame[10:] == payload


# Request parsing: every error code docs/protocol.md names for bad input


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "bad_json"),
        (b"\xff\xfe{", "bad_json"),
        (b"", "bad_json"),
        (b"[1,2]", "bad_request"),
        (b"42", "bad_request"),
        (b'{"symbols":["A"]}', "bad_request"),
        (b'{"op":7}', "bad_request"),
        (b'{"op":"subscribe","symbols":"AAPL"}', "bad_request"),
        (b'{"op":"subscribe"}', "bad_request"),
        (b'{"op":"subscribe","symbols":[1]}', "bad_request"),
        (b'{"op":"news","topics":["*"],"since":-1}', "bad_request"),
        (b'{"op":"news","topics":["*"],"since":"5"}', "bad_request"),
        (b'{"op":"throttle","ms":-5}', "bad_request"),
        (b'{"op":"throttle","ms":"100"}', "bad_request"),
        (b'{"op":"throttle","ms":true}', "bad_request"),
        (b'{"op":"throttle"}', "bad_request"),
        (b'{"op":"ping","t":"now"}', "bad_request"),
        (b'{"op":"subscribe","symbols":[],"id":[1]}', "bad_request"),
        (b'{"op":"ping","t":1e400}', "bad_json"),
        (b'{"op":"resync","id":123456789012345678901234567890}', "bad_request"),
        (b'{"op":"dance"}', "unknown_op"),
    ],
)
def test_bad_requests_get_their_code(raw: bytes, code: str) -> None:
    result = parse_request(raw)
    assert isinstance(result, ProtocolError)
    assert result.code == code
    assert result.message


def test_request_id_is_echoed_in_errors() -> None:
    result = parse_request(b'{"op":"dance","id":"abc"}')
    assert isinstance(result, ProtocolError) and result.id == "abc"
    assert result.to_message() == Error("unknown_op", result.message, "abc")


def test_too_many_symbols() -> None:
    raw = orjson.dumps({"op": "subscribe", "symbols": [f"S{i}" for i in range(11)], "id": 1})
    result = parse_request(raw, max_symbols=10)
    assert isinstance(result, ProtocolError) and result.code == "too_many_symbols"
    assert isinstance(parse_request(raw, max_symbols=11), Subscribe)


def test_valid_requests() -> None:
    assert parse_request(b'{"op":"subscribe","symbols":["A","*"],"id":1}') == Subscribe(
        ("A", "*"), 1
    )
    assert parse_request('{"op":"news","topics":[],"since":0}') == NewsRequest((), 0)
    assert parse_request(b'{"op":"throttle","ms":0}') == Throttle(0)
    assert parse_request(b'{"op":"resync"}') == Resync()
    assert parse_request(b'{"op":"ping","t":1.5}') == Ping(1.5)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ops = st.sampled_from(["subscribe", "unsubscribe", "news", "throttle", "resync", "ping", "x"])
requestish = st.fixed_dictionaries(
    {"op": ops},
    optional={
        "symbols": json_values,
        "topics": json_values,
        "since": json_values,
        "ms": json_values,
        "t": json_values,
        "id": json_values,
    },
)


@settings(max_examples=500, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        json_values.map(orjson.dumps),
        requestish.map(orjson.dumps),
    )
)
def test_parse_request_never_raises(raw: bytes) -> None:
    """Any bytes at all: a Request, or a ProtocolError with a documented code."""
    result = parse_request(raw)
    if isinstance(result, ProtocolError):
        assert result.code in ERROR_CODES
        error: ServerMessage = result.to_message()
        assert decode(encode(error)) == error
    else:
        assert decode(encode(result)) == result


def test_snapshot_from_fragments_equals_encode() -> None:
    quotes = {"AAPL": {"price": 1.5, "ts": 3.0}, "MSFT": {"price": 2.0, "ts": 4.0}}
    frags = list(quote_fragments(quotes).values())
    assert decode(snapshot_from_fragments(4, frags)) == Snapshot(4, quotes)
    assert decode(snapshot_from_fragments(5, [])) == Snapshot(5, {})

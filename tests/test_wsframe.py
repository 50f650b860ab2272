"""ticker.core.wsframe: the server's own RFC 6455 framing, checked against an independent
implementation (the ``websockets`` library's sans-I/O frames) with hypothesis: whatever a client
sends, split however TCP splits it, comes out as the same messages; every protocol violation has
its close code.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import given, settings, strategies as st
from websockets.frames import Close, Frame, Opcode

from ticker.core.wsframe import (
    FRAGMENT_COST,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    accept_key,
    handshake_response,
    parse_close,
    unmask,
    ws_close_frame,
    ws_frame,
    ws_ping_frame,
    ws_pong_frame,
    ws_text_frame,
)
from ticker.net.wsconn import fast_unmask

MAX = 4096


def client_frame(op: int, data: bytes, fin: bool = True) -> bytes:
    """A masked client frame, encoded by the websockets library."""
    return Frame(Opcode(op), data, fin=fin).serialize(mask=True)


def raw_frame(b0: int, payload: bytes, *, masked: bool = True, length: int | None = None) -> bytes:
    """A hand-made frame header (for what a library refuses to encode)."""
    n = len(payload) if length is None else length
    if n < 126:
        head = bytes((b0, (0x80 if masked else 0) | n))
    elif n < 65536:
        head = bytes((b0, (0x80 if masked else 0) | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, (0x80 if masked else 0) | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + unmask(key, payload)


def feed_all(reader: FrameReader, chunks: list[bytes]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for c in chunks:
        out += reader.feed(c)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


def parse_server(frame: bytes) -> Frame:
    """Read a server frame with the websockets library (as a client would)."""
    pos = 0

    def read_exact(n: int) -> Generator[None, None, bytes]:
        nonlocal pos
        yield from ()  # (a generator, as websockets expects; never suspends here)
        chunk = frame[pos : pos + n]
        pos += n
        return chunk

    gen = Frame.parse(read_exact, mask=False)
    try:
        next(gen)
    except StopIteration as done:
        assert pos == len(frame)
        result: Frame = done.value
        return result
    raise AssertionError("incomplete frame")


# A message: (opcode, payload, fragment sizes); control frames may sit between its fragments.
payloads = st.binary(max_size=600)
messages = st.lists(
    st.tuples(
        st.sampled_from([OP_TEXT, OP_BINARY]),
        payloads,
        st.lists(st.integers(1, 300), max_size=4),
        st.lists(
            st.tuples(st.sampled_from([OP_PING, OP_PONG]), st.binary(max_size=125)), max_size=2
        ),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(messages, st.lists(st.integers(0, 10_000), max_size=12))
def test_messages_survive_any_tcp_split(
    msgs: list[tuple[int, bytes, list[int], list[tuple[int, bytes]]]], cuts: list[int]
) -> None:
    wire = b""
    expected: list[tuple[int, bytes]] = []
    for op, data, sizes, controls in msgs:
        parts, rest = [], data
        for n in sizes:
            if len(rest) <= n:
                break
            parts.append(rest[:n])
            rest = rest[n:]
        parts.append(rest)
        for i, part in enumerate(parts):
            wire += client_frame(op if i == 0 else 0, part, fin=i == len(parts) - 1)
            if i == 0 and len(parts) > 1:  # control frames between fragments
                for cop, cdata in controls:
                    wire += client_frame(cop, cdata)
                    expected.append((cop, cdata))
        expected.append((op, data))
    reader = FrameReader(MAX)
    assert feed_all(reader, split(wire, cuts)) == expected
    assert reader.buffered == 0


@given(st.binary(min_size=4, max_size=4), st.binary(max_size=3000))
def test_unmask_is_the_rfc_xor(mask: bytes, data: bytes) -> None:
    naive = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert unmask(mask, data) == naive
    assert unmask(mask, naive) == data
    assert fast_unmask(mask, data) == naive  # (aiohttp's helper, which the server uses)


def test_accept_key_matches_rfc_6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    head = handshake_response("dGhlIHNhbXBsZSBub25jZQ==", "ticker.v1").decode()
    assert head.startswith("HTTP/1.1 101 Switching Protocols\r\n") and head.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Protocol: ticker.v1\r\n" in head
    assert "Sec-WebSocket-Protocol" not in handshake_response("x", None).decode()


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY])
def test_server_frames_parse_with_an_independent_library(n: int, op: int) -> None:
    payload = os.urandom(n)
    frame = ws_text_frame(payload) if op == OP_TEXT else ws_frame(op, payload)
    parsed = parse_server(frame)
    assert parsed.opcode == Opcode(op) and parsed.fin and parsed.data == payload


@given(st.binary(max_size=125))
def test_ping_and_pong_frames(payload: bytes) -> None:
    assert parse_server(ws_ping_frame(payload)).opcode == Opcode.PING
    assert parse_server(ws_pong_frame(payload)).data == payload


def test_control_frames_are_at_most_125_bytes() -> None:
    with pytest.raises(ValueError):
        ws_ping_frame(b"x" * 126)


@given(st.sampled_from([1000, 1001, 1008, 1009, 1013, 3000, 4999]), st.text(max_size=200))
def test_close_frames_fit_and_parse(code: int, reason: str) -> None:
    frame = ws_close_frame(code, reason)
    parsed = parse_server(frame)
    data = bytes(parsed.data)
    assert len(data) <= 125
    close = Close.parse(data)
    assert close.code == code and reason.startswith(close.reason)
    assert parse_close(data) == (code, close.reason)
    assert parse_server(ws_close_frame(None)).data == b""


VIOLATIONS = {
    "unmasked": (raw_frame(0x81, b"{}", masked=False), 1002),
    "reserved bit (RSV1, no deflate)": (raw_frame(0xC1, b"{}"), 1002),
    "unknown data opcode": (raw_frame(0x83, b""), 1002),
    "unknown control opcode": (raw_frame(0x8B, b""), 1002),
    "fragmented ping": (raw_frame(0x09, b"x"), 1002),
    "ping over 125 bytes": (raw_frame(0x89, b"x" * 126), 1002),
    "continuation first": (raw_frame(0x80, b"x"), 1002),
    "new message inside a fragmented one": (raw_frame(0x01, b"a") + raw_frame(0x81, b"b"), 1002),
    "frame over the limit": (raw_frame(0x82, b"x" * (MAX + 1)), 1009),
    "fragments over the limit": (raw_frame(0x02, b"x" * MAX) + raw_frame(0x80, b"y"), 1009),
    "close with one byte": (raw_frame(0x88, b"\x03"), 1002),
    "close code 1005 (never sent)": (raw_frame(0x88, (1005).to_bytes(2, "big")), 1002),
    "close code 999": (raw_frame(0x88, (999).to_bytes(2, "big")), 1002),
    "close code 2000": (raw_frame(0x88, (2000).to_bytes(2, "big")), 1002),
    "close code 5000": (raw_frame(0x88, (5000).to_bytes(2, "big")), 1002),
    "close reason not UTF-8": (raw_frame(0x88, (1000).to_bytes(2, "big") + b"\xff"), 1007),
}


@pytest.mark.parametrize("name", VIOLATIONS)
def test_each_violation_has_its_close_code(name: str) -> None:
    wire, code = VIOLATIONS[name]
    with pytest.raises(FrameError) as info:
        FrameReader(MAX).feed(wire)
    assert info.value.code == code


def test_an_oversize_header_is_refused_before_its_payload_arrives() -> None:
    """A frame announcing 1 TiB is refused on its header: nothing waits for (or buffers) it."""
    head = bytes((0x82, 0x80 | 127)) + (1 << 40).to_bytes(8, "big")
    reader = FrameReader(MAX)
    assert reader.feed(head[:5]) == []  # an incomplete header waits
    with pytest.raises(FrameError) as info:
        reader.feed(head[5:])
    assert info.value.code == 1009


@given(st.binary(max_size=200), st.integers(1, 30))
def test_a_trickled_frame_waits_then_arrives_whole(data: bytes, step: int) -> None:
    wire = client_frame(OP_TEXT, data)
    reader = FrameReader(MAX)
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(wire), step):
        out += reader.feed(wire[i : i + step])
    assert out == [(OP_TEXT, data)]


@given(st.sampled_from([None, 1000, 1001, 3000, 4999]), st.text(max_size=40))
def test_valid_close_frames_are_messages(code: int | None, reason: str) -> None:
    payload = b"" if code is None else Close(code, reason).serialize()
    assert FrameReader(MAX).feed(client_frame(OP_CLOSE, payload)) == [(OP_CLOSE, payload)]
    assert parse_close(payload) == (code, reason if code is not None else "")


# Bounds on a fragmented message: its buffer (payload + FRAGMENT_COST per fragment) and its
# fragment count; a per-read frame budget; messages whole before a fault are kept.


@given(st.lists(st.integers(0, 700), min_size=1, max_size=12))
def test_a_fragmented_message_is_bounded_in_size_and_count(sizes: list[int]) -> None:
    reader = FrameReader(MAX, max_fragments=8)
    parts = [b"x" * n for n in sizes]
    wire = [
        client_frame(OP_TEXT if i == 0 else 0, part, fin=i == len(parts) - 1)
        for i, part in enumerate(parts)
    ]
    cost = sum(n + FRAGMENT_COST for n in sizes)
    fits = len(sizes) <= 8 and (len(sizes) == 1 or cost <= MAX)
    out: list[tuple[int, bytes]] = []
    charged = 0
    try:
        for w in wire:
            out += reader.feed(w)
            charged += reader.fragments
            assert reader.buffered <= MAX  # never more than one max-size message held
    except FrameError as e:
        assert not fits, (sizes, e)
        assert e.code == 1009
        return
    assert fits, sizes
    assert out == [(OP_TEXT, b"".join(parts))]
    assert charged == len(sizes) - 1  # each non-final frame; the final one is the message


def test_a_flood_of_empty_fragments_is_cut_at_the_fragment_bound() -> None:
    reader = FrameReader(MAX, max_fragments=100)
    flood = client_frame(OP_TEXT, b"{", fin=False) + client_frame(0, b"", fin=False) * 100_000
    with pytest.raises(FrameError) as info:
        reader.feed(flood)
    assert info.value.code == 1009 and "fragments" in info.value.reason
    assert reader.fragments == 100
    assert reader.buffered <= MAX


def test_fragments_of_each_read_are_counted_for_the_rate() -> None:
    reader = FrameReader(MAX)
    first, *rest = [client_frame(OP_TEXT if i == 0 else 0, b"ab", fin=i == 4) for i in range(5)]
    assert reader.feed(first) == [] and reader.fragments == 1
    assert reader.feed(b"".join(rest)) == [(OP_TEXT, b"ab" * 5)]
    assert reader.fragments == 3  # the final frame is charged with the message itself


def test_a_read_over_its_frame_budget_is_a_flood() -> None:
    pings = b"".join(client_frame(OP_PING, b"%d" % i) for i in range(100))
    with pytest.raises(FrameError) as info:
        FrameReader(MAX).feed(pings, max_frames=10)
    assert info.value.code == 1008
    assert info.value.messages == [(OP_PING, b"%d" % i) for i in range(10)]
    assert len(FrameReader(MAX).feed(pings, max_frames=100)) == 100


@pytest.mark.parametrize("name", VIOLATIONS)
def test_messages_before_a_violation_are_kept(name: str) -> None:
    wire, code = VIOLATIONS[name]
    good = client_frame(OP_TEXT, b'{"op":"ping"}') + client_frame(OP_PING, b"p")
    with pytest.raises(FrameError) as info:
        FrameReader(MAX).feed(good + wire)
    assert info.value.code == code
    assert info.value.messages == [(OP_TEXT, b'{"op":"ping"}'), (OP_PING, b"p")]

"""RFC 6455 conformance over the wire: Autobahn TestSuite's case categories 1-7, 9 and 12/13
(extensions offered and declined), replayed with hand-built frames over a plain TCP socket
against a real in-process server (``create_app`` on 127.0.0.1, an ephemeral port).

The server is not an echo server: a text frame is a request of the wire protocol (docs/protocol.md).
That a message arrived intact shows as the answer to ``{"op":"ping","t":N,"pad":"..."}``, padded
to the size a case needs (valid UTF-8 under test goes into ``pad``): ``{"type":"pong","t":N}``.
A binary message is answered with an ``error`` ``bad_request``, text that is not UTF-8 JSON with
``bad_json``; the connection stays open after either (the v1 contract: invalid UTF-8 in a data
frame is ``bad_json``, not the RFC's 1007 close). Protocol violations close with their code,
then the server closes TCP, and a new client is served (every failing case checks that).

Case ids follow Autobahn's numbering where a case has an Autobahn counterpart.

The control-message rate limit (default 20/s, burst 60) counts frames: cases on the default
configuration send fewer than ~50 frames per connection; bulk and heavily fragmented cases run
on a server with a high ``rate`` and ``burst`` (:data:`FAST`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import orjson
import pytest
from pytest_aiohttp import AiohttpClient

from tests.conftest import MS
from tests.wsutil import Frame, RawWebSocket, Server
from ticker.config import HubConfig, ServerConfig
from ticker.core.wsframe import FRAGMENT_COST

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

MAX = ServerConfig().max_frame_bytes  # 64 KiB: a message over it is closed with 1009
FAST = HubConfig(rate=100_000.0, burst=100_000.0)  # for bulk and heavy fragmentation
EOF_WITHIN = 1000 * MS  # the server closes TCP right after its close frame

# Client frames, built by hand (independent of ticker.core.wsframe)


def xor_mask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the 4-byte ``key`` repeated (RFC 6455 §5.3)."""
    n = len(data)
    if not n:
        return b""
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ k).to_bytes(n, "big")


def head(opcode: int, n: int, *, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked frame's first bytes (without the key) for ``n`` payload bytes, the length in
    its shortest form: 7 bits up to 125, 16 up to 65535, else 64."""
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    if n < 126:
        return struct.pack("!BB", b0, 0x80 | n)
    if n < 1 << 16:
        return struct.pack("!BBH", b0, 0x80 | 126, n)
    return struct.pack("!BBQ", b0, 0x80 | 127, n)


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """One masked client frame."""
    key = os.urandom(4)
    return head(opcode, len(payload), fin=fin, rsv=rsv) + key + xor_mask(key, payload)


def fragmented(parts: Sequence[bytes], opcode: int = TEXT, between: bytes = b"") -> bytes:
    """A message in ``len(parts)`` frames (``opcode``, then continuations, the last final);
    ``between``: frames put between the fragments."""
    last = len(parts) - 1
    return between.join(
        frame(opcode if i == 0 else CONT, p, fin=i == last) for i, p in enumerate(parts)
    )


def split(data: bytes, n: int) -> list[bytes]:
    """``data`` in ``n`` consecutive parts of (nearly) equal size, some empty when short."""
    cuts = [len(data) * i // n for i in range(n + 1)]
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ping_msg(t: int, size: int | None = None, pad: str | bytes = b"") -> bytes:
    """``{"op":"ping","t":t,"pad":"<pad>"}``; ``pad`` as UTF-8 (bytes as they are, invalid
    ones too), filled up with ``x`` to exactly ``size`` bytes when given."""
    raw = pad.encode() if isinstance(pad, str) else pad
    start = b'{"op":"ping","t":%d,"pad":"' % t
    if size is not None:
        fill = size - len(start) - len(raw) - 2
        assert fill >= 0, f"{size} bytes is too short for a ping"
        raw += b"x" * fill
    return start + raw + b'"}'


def pong(t: int) -> Frame:
    return {"type": "pong", "t": t}


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


# The server under test and its clients


class Target:
    """A real server on 127.0.0.1 and the raw clients a case opened (closed at teardown)."""

    def __init__(self, srv: Server) -> None:
        assert srv.client.port is not None
        self.srv = srv
        self.port = srv.client.port
        self.opened: list[RawWebSocket] = []

    async def client(self, headers: Sequence[str] = ()) -> RawWebSocket:
        """A new raw client past its ``hello``; small writes leave at once (no Nagle)."""
        ws = await RawWebSocket.connect("127.0.0.1", self.port, rcvbuf=None, headers=headers)
        self.opened.append(ws)
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = await ws.recv_json()
        assert hello["type"] == "hello", hello
        return ws

    async def serves_a_new_client(self) -> None:
        """A second, normal client connects and is served."""
        ws = await self.client()
        await alive(ws, 424242)
        ws.close()

    def close(self) -> None:
        for ws in self.opened:
            ws.close()


async def target(aiohttp_client: AiohttpClient, config: HubConfig | None) -> Target:
    return Target(await Server.start(aiohttp_client, config=config))


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> AsyncIterator[Target]:
    """A server with the default configuration."""
    t = await target(aiohttp_client, None)
    yield t
    t.close()


@pytest.fixture
async def fast(aiohttp_client: AiohttpClient) -> AsyncIterator[Target]:
    """A server whose rate limit does not get in the way of bulk and fragmentation cases."""
    t = await target(aiohttp_client, FAST)
    yield t
    t.close()


# What comes back


async def send_chopped(ws: RawWebSocket, data: bytes, size: int) -> None:
    """``data`` in TCP writes of ``size`` bytes, the (in-process) server reading each on its
    own: two turns of the loop per write (in one, its read callback runs after this task)."""
    for part in chunks(data, size):
        await ws.send_raw(part)
        await asyncio.sleep(0)
        await asyncio.sleep(0)


async def expect_pongs(ws: RawWebSocket, ts: Iterable[int]) -> None:
    """The answers to ping requests ``ts``, in that order, and nothing before them."""
    for t in ts:
        assert await ws.recv_json() == pong(t)


async def expect_error(ws: RawWebSocket, code: str) -> None:
    msg = await ws.recv_json()
    assert msg["type"] == "error" and msg["code"] == code, msg


async def alive(ws: RawWebSocket, t: int = 999_999) -> None:
    """The connection is open and serves requests: a ping request round-trips."""
    await ws.send_raw(frame(TEXT, ping_msg(t)))
    await expect_pongs(ws, [t])


async def expect_close(ws: RawWebSocket, code: int | None) -> None:
    """The next frame is a close with ``code`` (None: an empty one) and a UTF-8 reason; then the
    server closes TCP."""
    op, payload = await ws.recv_frame()
    assert op == CLOSE, (op, payload[:200])
    if code is None:
        assert payload == b""
    else:
        assert len(payload) >= 2 and int.from_bytes(payload[:2], "big") == code, payload
        payload[2:].decode("utf-8")
    await ws.recv_eof(EOF_WITHIN)


async def fails(t: Target, ws: RawWebSocket, code: int) -> None:
    """The connection is closed with ``code``, and the server still serves a new client."""
    await expect_close(ws, code)
    await t.serves_a_new_client()


# 1 Framing


TEXT_SIZES = [0, 125, 126, 127, 128, 65535, 65536]


@pytest.mark.parametrize(
    "size", TEXT_SIZES, ids=[f"1.1.{i}-text-{n}B" for i, n in enumerate(TEXT_SIZES, 1)]
)
async def test_1_1_text_payload_sizes(srv: Target, size: int) -> None:
    """7-bit (0, 125), 16-bit (126-65535) and 64-bit (65536) lengths, up to the limit."""
    ws = await srv.client()
    if size == 0:  # an empty text is not JSON
        await ws.send_raw(frame(TEXT))
        await expect_error(ws, "bad_json")
        await alive(ws)
    else:
        await ws.send_raw(frame(TEXT, ping_msg(1, size)))
        await expect_pongs(ws, [1])


@pytest.mark.parametrize(
    "size", TEXT_SIZES, ids=[f"1.2.{i}-binary-{n}B" for i, n in enumerate(TEXT_SIZES, 1)]
)
async def test_1_2_binary_is_refused_and_the_connection_stays(srv: Target, size: int) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(BINARY, bytes(i % 256 for i in range(size))))
    await expect_error(ws, "bad_request")
    await alive(ws)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["1.1.9-text", "1.2.9-binary"])
async def test_1_x_9_one_byte_over_the_limit_closes_1009(srv: Target, opcode: int) -> None:
    """The length is judged from the header: only the header and key are sent (the payload
    would be refused unread)."""
    ws = await srv.client()
    await ws.send_raw(head(opcode, MAX + 1) + os.urandom(4))
    await fails(srv, ws, 1009)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["1.1.10-text", "1.2.10-binary"])
async def test_1_x_10_fragments_one_byte_over_the_limit_close_1009(
    srv: Target, opcode: int
) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(opcode, b"x" * MAX, fin=False) + frame(PING, b"in"))
    # The pong: the first fragment has been read, so the last one arrives in one piece (the
    # server refuses it on its header: a byte of it left unread would turn the close into a
    # reset).
    assert await ws.recv_frame() == (PONG, b"in")
    await ws.send_raw(frame(CONT, b"x"))
    await fails(srv, ws, 1009)


@pytest.mark.parametrize(
    ("size", "write"),
    [(125, 1), (126, 1), (300, 3), (MAX, 997)],
    ids=[
        "1.3.1-text-125B-in-1B-writes",
        "1.3.2-text-126B-in-1B-writes",
        "1.3.3-text-300B-in-3B-writes",
        "1.1.8-text-65536B-in-997B-writes",
    ],
)
async def test_1_3_chopped_into_small_tcp_writes(srv: Target, size: int, write: int) -> None:
    """Header, extended length, key and payload split across TCP writes."""
    ws = await srv.client()
    await send_chopped(ws, frame(TEXT, ping_msg(7, size)), write)
    await expect_pongs(ws, [7])


# 2 Pings and pongs


PING_PAYLOADS = {
    "2.1-empty": b"",
    "2.2-text": b"Hello, world!",
    "2.3-binary": bytes((0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF)),
    "2.4-64B": bytes(range(64)),
    "2.4-124B": bytes(range(124)),
    "2.4-125B": bytes(255 - i for i in range(125)),
}


@pytest.mark.parametrize("payload", PING_PAYLOADS.values(), ids=PING_PAYLOADS.keys())
async def test_2_ping_is_answered_with_its_payload(srv: Target, payload: bytes) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(PING, payload))
    assert await ws.recv_frame() == (PONG, payload)
    await alive(ws)


async def test_2_5_ping_of_126_bytes_closes_1002(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(PING, b"x" * 126))
    await fails(srv, ws, 1002)


async def test_2_6_ping_in_1_byte_writes(srv: Target) -> None:
    ws = await srv.client()
    payload = bytes(range(125))
    await send_chopped(ws, frame(PING, payload), 1)
    assert await ws.recv_frame() == (PONG, payload)


@pytest.mark.parametrize("payload", [b"", b"unsolicited"], ids=["2.7-empty", "2.8-payload"])
async def test_2_7_unsolicited_pong_is_ignored(srv: Target, payload: bytes) -> None:
    """No answer: the first frame back is the answer to the request sent after it."""
    ws = await srv.client()
    await ws.send_raw(frame(PONG, payload))
    await alive(ws)


async def test_2_9_unsolicited_pong_then_ping_gets_one_pong(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(PONG, b"unsolicited") + frame(PING, b"ping"))
    assert await ws.recv_frame() == (PONG, b"ping")
    await alive(ws)


@pytest.mark.parametrize("one_write", [True, False], ids=["2.10-one-write", "2.11-ten-writes"])
async def test_2_10_pings_in_a_row_get_as_many_pongs_in_order(srv: Target, one_write: bool) -> None:
    ws = await srv.client()
    pings = [frame(PING, b"payload-%d" % i) for i in range(10)]
    if one_write:
        await ws.send_raw(b"".join(pings))
    else:
        for p in pings:
            await ws.send_raw(p)
            await asyncio.sleep(0)
    for i in range(10):
        assert await ws.recv_frame() == (PONG, b"payload-%d" % i)
    await alive(ws)


# 3 Reserved bits


RSV_FRAMES: dict[str, Callable[[], bytes]] = {
    "text": lambda: frame(TEXT, ping_msg(1)),
    "binary": lambda: frame(BINARY, b"\x00\x01"),
    "ping": lambda: frame(PING, b"ping"),
    "pong": lambda: frame(PONG, b"pong"),
    "close": lambda: frame(CLOSE, close_payload(1000)),
}
RSV_CASES = [
    pytest.param(kind, rsv, id=f"3.{rsv}-rsv{rsv:03b}-{kind}")
    for rsv in range(1, 8)
    for kind in ("text", "binary", "ping", "pong", "close")
]


def with_rsv(data: bytes, rsv: int) -> bytes:
    return bytes((data[0] | rsv << 4,)) + data[1:]


@pytest.mark.parametrize(("kind", "rsv"), RSV_CASES)
async def test_3_reserved_bits_close_1002(srv: Target, kind: str, rsv: int) -> None:
    """``rsv``: the bits RSV1 RSV2 RSV3 as Autobahn numbers its cases (4: RSV1 alone)."""
    ws = await srv.client()
    await ws.send_raw(with_rsv(RSV_FRAMES[kind](), rsv))
    await fails(srv, ws, 1002)


async def test_3_reserved_bit_on_a_continuation_closes_1002(srv: Target) -> None:
    ws = await srv.client()
    a, b = split(ping_msg(1), 2)
    await ws.send_raw(frame(TEXT, a, fin=False) + frame(CONT, b, rsv=1))
    await fails(srv, ws, 1002)


# 4 Reserved opcodes


OPCODE_CASES = [
    pytest.param(op, payload, id=f"4.{1 if op < 8 else 2}-opcode-{op}-{what}")
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)
    for what, payload in (("empty", b""), ("payload", b"reserved"))
]


@pytest.mark.parametrize(("opcode", "payload"), OPCODE_CASES)
async def test_4_reserved_opcodes_close_1002(srv: Target, opcode: int, payload: bytes) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(opcode, payload))
    await fails(srv, ws, 1002)


# 3, 4, 5, 7: what came before the violation in the same write is still served


SERVED_FIRST = [
    pytest.param(
        frame(TEXT, ping_msg(1)) + frame(TEXT, ping_msg(2), rsv=2) + frame(PING, b"after"),
        1002,
        id="3.2-rsv2-after-a-message",
    ),
    pytest.param(
        frame(TEXT, ping_msg(1)) + frame(TEXT, ping_msg(2), rsv=3) + frame(PING, b"after"),
        1002,
        id="3.3-rsv3-after-a-message-same-write",
    ),
    pytest.param(
        frame(TEXT, ping_msg(1)) + frame(5, b"") + frame(PING, b"after"),
        1002,
        id="4.1.3-opcode-5-after-a-message",
    ),
    pytest.param(
        frame(TEXT, ping_msg(1)) + frame(13, b"") + frame(PING, b"after"),
        1002,
        id="4.2.3-opcode-13-after-a-message",
    ),
    pytest.param(
        fragmented(split(ping_msg(1), 2)) + frame(CONT, b"x", fin=False) + frame(TEXT, b"{}"),
        1002,
        id="5.15-continuation-after-a-fragmented-message",
    ),
    pytest.param(
        frame(TEXT, ping_msg(1)) + frame(CLOSE, close_payload(1005)),
        1002,
        id="7.9-invalid-close-code-after-a-message",
    ),
    pytest.param(
        frame(TEXT, ping_msg(1)) + frame(CLOSE, close_payload(1000, b"\xff")),
        1007,
        id="7.5.1-non-utf8-close-reason-after-a-message",
    ),
    pytest.param(
        frame(TEXT, ping_msg(1)) + head(TEXT, MAX + 1) + os.urandom(4),
        1009,
        id="9-oversize-header-after-a-message",
    ),
]


@pytest.mark.parametrize(("data", "code"), SERVED_FIRST)
async def test_a_message_before_a_violation_is_served_first(
    srv: Target, data: bytes, code: int
) -> None:
    """The answer to the valid message comes before the close; nothing after the violation
    is served (the trailing ping gets no pong)."""
    ws = await srv.client()
    await ws.send_raw(data)
    await expect_pongs(ws, [1])
    await fails(srv, ws, code)


async def test_a_ping_before_a_violation_is_answered_first(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(PING, b"first") + frame(TEXT, ping_msg(1), rsv=1))
    assert await ws.recv_frame() == (PONG, b"first")
    await fails(srv, ws, 1002)


# 5 Fragmentation


FRAGMENT_COUNTS = [2, 3, 5, 10, 40]


@pytest.mark.parametrize(
    "n", FRAGMENT_COUNTS, ids=[f"5.3-text-in-{n}-fragments" for n in FRAGMENT_COUNTS]
)
async def test_5_3_text_in_fragments_is_one_message(srv: Target, n: int) -> None:
    ws = await srv.client()
    await ws.send_raw(fragmented(split(ping_msg(3, 100), n)))
    await expect_pongs(ws, [3])


EMPTY_FRAGMENTS: dict[str, Callable[[bytes], list[bytes]]] = {
    "empty-first": lambda m: [b"", m],
    "empty-last": lambda m: [m, b""],
    "empty-first-and-last": lambda m: [b"", m, b""],
    "empty-middle": lambda m: [m[:10], b"", m[10:]],
    "only-one-non-empty": lambda m: [b"", b"", m, b"", b""],
}


@pytest.mark.parametrize(
    "layout", EMPTY_FRAGMENTS.values(), ids=[f"5.x-{k}" for k in EMPTY_FRAGMENTS]
)
async def test_5_empty_fragments(srv: Target, layout: Callable[[bytes], list[bytes]]) -> None:
    ws = await srv.client()
    await ws.send_raw(fragmented(layout(ping_msg(4))))
    await expect_pongs(ws, [4])


async def test_5_4_fragments_in_1_byte_writes(srv: Target) -> None:
    ws = await srv.client()
    await send_chopped(ws, fragmented(split(ping_msg(5, 60), 3)), 1)
    await expect_pongs(ws, [5])


@pytest.mark.parametrize("write", [0, 1], ids=["5.6-one-write", "5.8-1B-writes"])
async def test_5_6_ping_between_fragments_is_answered_then_the_message(
    srv: Target, write: int
) -> None:
    ws = await srv.client()
    data = fragmented(split(ping_msg(6), 2), between=frame(PING, b"between"))
    if write:
        await send_chopped(ws, data, write)
    else:
        await ws.send_raw(data)
    assert await ws.recv_frame() == (PONG, b"between")
    await expect_pongs(ws, [6])


async def test_5_19_pings_between_fragments_one_at_a_time(srv: Target) -> None:
    """Each ping between the fragments is answered before the message is complete."""
    ws = await srv.client()
    parts = split(ping_msg(19, 80), 5)
    for i, p in enumerate(parts):
        await ws.send_raw(frame(TEXT if i == 0 else CONT, p, fin=i == len(parts) - 1))
        if i < len(parts) - 1:
            await ws.send_raw(frame(PING, b"ping-%d" % i))
            assert await ws.recv_frame() == (PONG, b"ping-%d" % i)
    await expect_pongs(ws, [19])


async def test_5_unsolicited_pong_between_fragments_is_ignored(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(fragmented(split(ping_msg(8), 3), between=frame(PONG, b"x")))
    await expect_pongs(ws, [8])


FRAGMENT_VIOLATIONS = {
    "5.1-fragmented-ping": frame(PING, b"a", fin=False) + frame(CONT, b"b"),
    "5.2-fragmented-pong": frame(PONG, b"a", fin=False) + frame(CONT, b"b"),
    "5.x-fragmented-close": frame(CLOSE, close_payload(1000), fin=False) + frame(CONT, b""),
    "5.9-continuation-without-a-message": frame(CONT, ping_msg(1)),
    "5.12-unfinished-continuation-without-a-message": frame(CONT, ping_msg(1), fin=False),
    "5.16-two-continuations-without-a-message": (
        frame(CONT, b"a", fin=False) + frame(CONT, b"b") + frame(TEXT, ping_msg(1))
    ),
    "5.18-text-inside-a-text-message": frame(TEXT, b"{", fin=False) + frame(TEXT, b"}"),
    "5.x-binary-inside-a-text-message": frame(TEXT, b"{", fin=False) + frame(BINARY, b"}"),
    "5.x-text-inside-a-binary-message": frame(BINARY, b"{", fin=False) + frame(TEXT, b"}"),
    "5.x-unfinished-text-inside-a-text-message": (
        frame(TEXT, b"{", fin=False) + frame(TEXT, b"}", fin=False)
    ),
}


@pytest.mark.parametrize("data", FRAGMENT_VIOLATIONS.values(), ids=FRAGMENT_VIOLATIONS.keys())
async def test_5_fragmentation_violations_close_1002(srv: Target, data: bytes) -> None:
    ws = await srv.client()
    await ws.send_raw(data)
    await fails(srv, ws, 1002)


async def test_5_close_between_fragments_ends_the_connection_unserved(srv: Target) -> None:
    """The client's close in the middle of a message is answered; the message never completes,
    and what follows the close is ignored."""
    ws = await srv.client()
    a, b = split(ping_msg(1), 2)
    await ws.send_raw(
        frame(TEXT, a, fin=False) + frame(CLOSE, close_payload(1000)) + frame(CONT, b)
    )
    await expect_close(ws, 1000)


async def test_5_binary_in_fragments_is_one_refused_message(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(fragmented([b"\x00" * 10] * 4, BINARY))
    await expect_error(ws, "bad_request")
    await alive(ws)


# 6 UTF-8


VALID_UTF8 = {
    "6.2-hello": "Hello-µ@ßöäüàá-UTF-8!!",
    "6.5-kosme": "κόσμε",
    "6.7-first-of-each-length": "\u0080\u0800\U00010000",
    "6.9-last-of-each-length": "\u007f\u07ff\uffff\U0010ffff",
    "6.11-boundaries": "\ud7ff\ue000\ufffd\U0010ffff",
    "6.23-noncharacters": "\ufdd0\ufdef\ufffe\U0001fffe\U0010fffe",
    "6.x-4-byte": "\U0001d11e\U0001f600\U0001f004\U00020000",
    "6.x-bom-and-mixed": "\ufeffa\u00e9\u20ac\U0001d11e" * 3,
}


@pytest.mark.parametrize("text", VALID_UTF8.values(), ids=VALID_UTF8.keys())
async def test_6_valid_utf8_split_at_every_byte_is_served_intact(fast: Target, text: str) -> None:
    """One frame; two fragments split at every byte position (inside code points too); one
    fragment per byte. Every message answered, in order."""
    ws = await fast.client()
    first = 1000  # (every t of 4 digits: the messages are of one length)
    n = len(ping_msg(first, pad=text))
    msgs = [ping_msg(t, pad=text) for t in range(first, first + n + 1)]
    data = [frame(TEXT, msgs[0])]
    data += [fragmented([msgs[i][:i], msgs[i][i:]]) for i in range(1, n)]
    data.append(fragmented(chunks(msgs[n], 1)))
    await ws.send_raw(b"".join(data))
    await expect_pongs(ws, range(first, first + n + 1))


async def test_6_1_empty_fragments_are_an_empty_text(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(fragmented([b"", b"", b""]))  # 6.1.2
    await expect_error(ws, "bad_json")
    await ws.send_raw(fragmented([b"", ping_msg(613), b""]))  # 6.1.3
    await expect_pongs(ws, [613])


INVALID_UTF8 = {
    "6.3.1-kosme-with-a-surrogate": (
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
    ),
    "6.6.1-truncated-2-byte": b"\xce",
    "6.6.4-truncated-3-byte": b"\xce\xba\xe1\xbd",
    "6.8.1-5-byte-sequence": b"\xf8\x88\x80\x80\x80",
    "6.8.2-6-byte-sequence": b"\xfc\x84\x80\x80\x80\x80",
    "6.10.1-above-u10ffff": b"\xf4\x90\x80\x80",
    "6.10.2-f7": b"\xf7\xbf\xbf\xbf",
    "6.12.1-lone-continuation-80": b"\x80",
    "6.12.2-lone-continuation-bf": b"\xbf",
    "6.12.3-continuations": b"\x80\xbf\x80\xbf",
    "6.13.1-lonely-2-byte-start": b"\xc0 ",
    "6.13.2-lonely-3-byte-start": b"\xe0 ",
    "6.13.3-lonely-4-byte-start": b"\xf0 ",
    "6.14.1-missing-last-byte-2": b"\xdf",
    "6.14.2-missing-last-byte-3": b"\xef\xbf",
    "6.14.3-missing-last-byte-4": b"\xf7\xbf\xbf",
    "6.17.1-fe": b"\xfe",
    "6.17.2-ff": b"\xff",
    "6.17.3-fe-fe-ff-ff": b"\xfe\xfe\xff\xff",
    "6.18.1-overlong-slash-2": b"\xc0\xaf",
    "6.18.2-overlong-slash-3": b"\xe0\x80\xaf",
    "6.18.3-overlong-slash-4": b"\xf0\x80\x80\xaf",
    "6.18.4-overlong-slash-5": b"\xf8\x80\x80\x80\xaf",
    "6.19.1-max-overlong-2": b"\xc1\xbf",
    "6.19.2-max-overlong-3": b"\xe0\x9f\xbf",
    "6.19.3-max-overlong-4": b"\xf0\x8f\xbf\xbf",
    "6.20.1-overlong-nul-2": b"\xc0\x80",
    "6.20.2-overlong-nul-3": b"\xe0\x80\x80",
    "6.21.1-surrogate-d800": b"\xed\xa0\x80",
    "6.21.2-surrogate-db7f": b"\xed\xad\xbf",
    "6.21.3-surrogate-db80": b"\xed\xae\x80",
    "6.21.4-surrogate-dbff": b"\xed\xaf\xbf",
    "6.21.5-surrogate-dc00": b"\xed\xb0\x80",
    "6.21.6-surrogate-df80": b"\xed\xbe\x80",
    "6.21.7-surrogate-dfff": b"\xed\xbf\xbf",
    "6.22.1-surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "6.22.2-surrogate-pair": b"\xed\xaf\xbf\xed\xbf\xbf",
}


@pytest.mark.parametrize("bad", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
async def test_6_invalid_utf8_text_is_bad_json_and_the_connection_stays(
    srv: Target, bad: bytes
) -> None:
    """The v1 contract, not RFC 6455's 1007: text that is not UTF-8 is answered with
    ``bad_json``. Sent alone, inside an otherwise valid ping request, and in two fragments
    split inside the invalid sequence; then the connection still serves requests."""
    ws = await srv.client()
    inside = ping_msg(1, pad=bad)
    cut = inside.index(bad) + (len(bad) + 1) // 2
    await ws.send_raw(
        frame(TEXT, bad) + frame(TEXT, inside) + fragmented([inside[:cut], inside[cut:]])
    )
    for _ in range(3):
        await expect_error(ws, "bad_json")
    await alive(ws)


# 7 Close


async def test_7_1_1_message_then_close(srv: Target) -> None:
    ws = await srv.client()
    await alive(ws, 711)
    await ws.send_raw(frame(CLOSE, close_payload(1000)))
    await expect_close(ws, 1000)


CLOSE_THEN = {
    "7.1.2-close-twice": frame(CLOSE, close_payload(1000)) + frame(CLOSE, close_payload(1000)),
    "7.1.3-close-then-ping": frame(CLOSE, close_payload(1000)) + frame(PING, b"late"),
    "7.1.4-close-then-text": frame(CLOSE, close_payload(1000)) + frame(TEXT, ping_msg(1)),
    "7.1.x-close-then-binary": frame(CLOSE, close_payload(1000)) + frame(BINARY, b"x"),
    "7.1.5-fragment-close-continuation": (
        frame(TEXT, ping_msg(1)[:5], fin=False)
        + frame(CLOSE, close_payload(1000))
        + frame(CONT, ping_msg(1)[5:])
    ),
}


@pytest.mark.parametrize("data", CLOSE_THEN.values(), ids=CLOSE_THEN.keys())
async def test_7_1_frames_after_the_clients_close_are_ignored(srv: Target, data: bytes) -> None:
    """One close back, no other answer, then the server closes TCP."""
    ws = await srv.client()
    await ws.send_raw(data)
    await expect_close(ws, 1000)


async def test_7_1_6_answers_before_the_close_arrive_first(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(
        b"".join(frame(TEXT, ping_msg(t)) for t in range(20)) + frame(CLOSE, close_payload(1000))
    )
    await expect_pongs(ws, range(20))
    await expect_close(ws, 1000)


async def test_7_3_1_empty_close_is_answered_with_an_empty_close(srv: Target) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(CLOSE))
    await expect_close(ws, None)


CLOSE_REASONS = {
    "7.3.3-no-reason": b"",
    "7.3.4-reason": b"Hello World!",
    "7.3.5-123-byte-utf8-reason": ("κόσμε" * 12).encode() + b"x" * 3,
}


@pytest.mark.parametrize("reason", CLOSE_REASONS.values(), ids=CLOSE_REASONS.keys())
async def test_7_3_close_with_a_reason_is_echoed(srv: Target, reason: bytes) -> None:
    assert len(reason) <= 123
    ws = await srv.client()
    await ws.send_raw(frame(CLOSE, close_payload(1000, reason)))
    await expect_close(ws, 1000)


BAD_CLOSES = {
    "7.3.2-1-byte-payload": (b"\x03", 1002),
    "7.3.6-124-byte-reason": (close_payload(1000, b"x" * 124), 1002),
    "7.5.1-non-utf8-reason": (close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80"), 1007),
    "7.5.x-truncated-utf8-reason": (close_payload(1000, "κόσμε".encode()[:-1]), 1007),
}


@pytest.mark.parametrize(("payload", "code"), BAD_CLOSES.values(), ids=BAD_CLOSES.keys())
async def test_7_malformed_close_payloads(srv: Target, payload: bytes, code: int) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(CLOSE, payload))
    await fails(srv, ws, code)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CODES += [3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize(
    "code", VALID_CODES, ids=[f"7.7.{i}-{c}" for i, c in enumerate(VALID_CODES, 1)]
)
async def test_7_7_valid_close_codes_are_echoed(srv: Target, code: int) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(CLOSE, close_payload(code, b"bye")))
    await expect_close(ws, code)


@pytest.mark.parametrize(
    "code", INVALID_CODES, ids=[f"7.9.{i}-{c}" for i, c in enumerate(INVALID_CODES, 1)]
)
async def test_7_9_invalid_close_codes_close_1002(srv: Target, code: int) -> None:
    ws = await srv.client()
    await ws.send_raw(frame(CLOSE, close_payload(code)))
    await fails(srv, ws, 1002)


# 9 Bulk (a server with a high rate limit)


@pytest.mark.parametrize(
    "size", [1024, 16384, MAX], ids=["9.1.1-10x1KiB", "9.1.2-10x16KiB", "9.1.3-10x64KiB"]
)
async def test_9_1_large_text_messages(fast: Target, size: int) -> None:
    ws = await fast.client()
    await ws.send_raw(b"".join(frame(TEXT, ping_msg(t, size)) for t in range(10)))
    await expect_pongs(ws, range(10))


async def test_9_2_large_binary_messages(fast: Target) -> None:
    ws = await fast.client()
    await ws.send_raw(frame(BINARY, os.urandom(MAX)) * 10)
    for _ in range(10):
        await expect_error(ws, "bad_request")
    await alive(ws)


FRAGMENT_SIZES = [64, 256, 1024, 4096, MAX]


def largest_fragmented(size: int) -> int:
    """The largest message that fits in fragments of ``size`` bytes: its payload plus
    FRAGMENT_COST per fragment stays within MAX (one maximal message's worth of memory)."""
    n = MAX
    while n + FRAGMENT_COST * -(-n // size) > MAX:
        n -= 1
    return n


@pytest.mark.parametrize(
    "size",
    FRAGMENT_SIZES,
    ids=[f"9.3.{i}-max-text-in-{n}B-fragments" for i, n in enumerate(FRAGMENT_SIZES, 1)],
)
async def test_9_3_max_size_text_in_fragments(fast: Target, size: int) -> None:
    ws = await fast.client()
    n = largest_fragmented(size)
    await ws.send_raw(fragmented(chunks(ping_msg(93, n), size)))
    await expect_pongs(ws, [93])


@pytest.mark.parametrize(
    "size",
    FRAGMENT_SIZES[:-1],
    ids=[f"9.3.{i}-max+1-text-in-{n}B-fragments" for i, n in enumerate(FRAGMENT_SIZES[:-1], 6)],
)
async def test_9_3_one_byte_over_in_fragments_is_1009(fast: Target, size: int) -> None:
    ws = await fast.client()
    *parts, last = chunks(ping_msg(93, largest_fragmented(size) + 1), size)
    # All but the last fragment, and a ping between them that proves they were read (so no
    # unread byte turns the close into a reset); the last one's header crosses the bound.
    await ws.send_raw(fragmented([*parts, b""])[: -len(frame(CONT, b""))] + frame(PING, b"ok"))
    assert await ws.recv_frame() == (PONG, b"ok")
    await ws.send_raw(frame(CONT, last))
    await expect_close(ws, 1009)


@pytest.mark.parametrize(
    "size",
    FRAGMENT_SIZES,
    ids=[f"9.4.{i}-max-binary-in-{n}B-fragments" for i, n in enumerate(FRAGMENT_SIZES, 1)],
)
async def test_9_4_max_size_binary_in_fragments(fast: Target, size: int) -> None:
    ws = await fast.client()
    await ws.send_raw(fragmented(chunks(os.urandom(largest_fragmented(size)), size), BINARY))
    await expect_error(ws, "bad_request")
    await alive(ws)


WRITE_SIZES = [64, 256, 1024, 4096]


@pytest.mark.parametrize(
    "write",
    WRITE_SIZES,
    ids=[f"9.5.{i}-64KiB-in-{n}B-writes" for i, n in enumerate(WRITE_SIZES, 1)],
)
async def test_9_5_max_size_text_in_small_tcp_writes(fast: Target, write: int) -> None:
    ws = await fast.client()
    await send_chopped(ws, frame(TEXT, ping_msg(95, MAX)), write)
    await expect_pongs(ws, [95])


@pytest.mark.parametrize(
    ("count", "one_write"),
    [(200, True), (200, False), (1000, True)],
    ids=["9.7.1-200-in-one-write", "9.7.2-200-one-write-each", "9.7.3-1000-in-one-write"],
)
async def test_9_7_many_messages_answered_in_order(
    fast: Target, count: int, one_write: bool
) -> None:
    ws = await fast.client()
    msgs = [frame(TEXT, ping_msg(t)) for t in range(count)]
    if one_write:
        await ws.send_raw(b"".join(msgs))
    else:
        for m in msgs:
            await ws.send_raw(m)
            await asyncio.sleep(0)
    await expect_pongs(ws, range(count))


async def test_9_8_many_pings_answered_in_order(fast: Target) -> None:
    ws = await fast.client()
    await ws.send_raw(b"".join(frame(PING, b"%d" % i) for i in range(200)))
    for i in range(200):
        assert await ws.recv_frame() == (PONG, b"%d" % i)
    await alive(ws)


# 12/13 Extensions offered, declined


OFFERS = {
    "12.1-permessage-deflate": "permessage-deflate",
    "12.2-client_max_window_bits": "permessage-deflate; client_max_window_bits",
    "13.3-no-context-takeover": (
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
    ),
    "13.5-two-offers": "permessage-deflate; server_max_window_bits=9, permessage-deflate",
    "13.x-x-webkit-deflate-frame": "x-webkit-deflate-frame",
}


def deflated(data: bytes) -> bytes:
    """``data`` as permessage-deflate would send it (RFC 7692 §7.2.1)."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


@pytest.mark.parametrize("offer", OFFERS.values(), ids=OFFERS.keys())
async def test_12_extension_offer_is_declined_and_rsv1_closes_1002(srv: Target, offer: str) -> None:
    ws = await srv.client(headers=[f"Sec-WebSocket-Extensions: {offer}"])
    assert b"sec-websocket-extensions" not in ws.handshake.lower(), ws.handshake
    await alive(ws, 12)  # uncompressed messages are served
    await ws.send_raw(frame(TEXT, deflated(ping_msg(13)), rsv=4))  # RSV1: "compressed"
    await fails(srv, ws, 1002)


# Failures on one connection leave the others alone


async def test_a_bystander_is_served_through_every_kind_of_failure(srv: Target) -> None:
    bystander = await srv.client()
    violations = [
        frame(TEXT, ping_msg(1), rsv=1),
        frame(7, b""),
        frame(CONT, b"x"),
        frame(PING, b"x" * 126),
        frame(CLOSE, close_payload(1005)),
        frame(CLOSE, close_payload(1000, b"\xff")),
        head(TEXT, MAX + 1) + os.urandom(4),
    ]
    for i, data in enumerate(violations):
        ws = await srv.client()
        await ws.send_raw(data)
        op, _ = await ws.recv_frame()
        assert op == CLOSE
        await ws.recv_eof(EOF_WITHIN)
        ws.close()
        await alive(bystander, i)
    assert len(srv.srv.hub.clients) == 1
    await srv.serves_a_new_client()


def test_the_case_builders() -> None:
    """The frame builder uses the 7-, 16- and 64-bit length forms the framing cases are named
    for; masking, padding and the longest close reason are what the cases say."""
    assert frame(TEXT, b"x" * 125)[1] == 0x80 | 125
    assert frame(TEXT, b"x" * 126)[1:4] == bytes((0x80 | 126, 0, 126))
    assert frame(TEXT, b"x" * 65535)[1:4] == bytes((0x80 | 126, 0xFF, 0xFF))
    assert frame(TEXT, b"x" * 65536)[1:10] == bytes((0x80 | 127,)) + (65536).to_bytes(8, "big")
    key = b"\x01\x02\x03\x04"
    assert xor_mask(key, xor_mask(key, b"hello")) == b"hello"
    assert xor_mask(key, b"\x00" * 6) == key + key[:2]
    assert orjson.loads(ping_msg(1, 200)) == {"op": "ping", "t": 1, "pad": "x" * 172}
    assert len(ping_msg(1, 200)) == 200
    assert len(CLOSE_REASONS["7.3.5-123-byte-utf8-reason"]) == 123  # the most a close allows

"""Property-based fuzzing of the inbound path: whatever a client sends, the hub answers with
protocol frames (or closes with a documented code) and never raises.

Two layers:

- ``Hub.receive`` in-process, on a recording transport: arbitrary bytes, text, JSON values and
  request-shaped objects (random ops, fields of random types). Every frame gets its answer:
  an input that is not a valid request gets one ``error`` with the code ``parse_request`` gives it;
  a request with an ``id`` gets an ``ack`` or ``error`` carrying that id; ``ping`` gets ``pong``;
  ``subscribe``/``resync`` get their ``snapshot``. Requests without an ``id`` that change only
  the connection's state have no answer by design (docs/protocol.md): ``unsubscribe``, ``news``
  without ``since`` (or with nothing retained after it), ``throttle`` that changes nothing to
  resend, and a ``subscribe`` naming nothing. Flooding past the rate limit gets
  ``rate_limited`` errors, then a close with 1008 and nothing more.
- A real ``ticker serve`` process and the independent ``websockets`` (sync) client: random text,
  binary and oversize frames over the wire; oversize frames are closed with 1009.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import ServerProcess
from tests.hubsim import server_frames
from tests.wsutil import RecordingTransport
from ticker.config import HubConfig
from ticker.core.events import Listing, News, Tick
from ticker.core.protocol import ERROR_CODES, Ping, ProtocolError, Resync, Subscribe, parse_request
from ticker.hub.broadcaster import Client, Hub

SYMS = ("AAPL", "MSFT", "GOOGL")
TYPES = {"hello", "snapshot", "delta", "news", "pong", "error", "ack"}
OPS = ("subscribe", "unsubscribe", "news", "throttle", "resync", "ping")


def decoded(data: bytes) -> list[dict[str, Any]]:
    """The text frames in ``data``, decoded and checked against the protocol's shape."""
    out = []
    for op, payload in server_frames(data):
        assert op in (0x1, 0x9), op  # text, or a flow-control ping
        if op == 0x9:
            continue
        obj = orjson.loads(payload)
        assert isinstance(obj, dict) and obj.get("type") in TYPES, obj
        if obj["type"] == "error":
            assert obj["code"] in ERROR_CODES and isinstance(obj["message"], str), obj
        out.append(obj)
    return out


class Session:
    """One hub and one connection on a recording transport, on a running loop."""

    def __init__(self, config: HubConfig) -> None:
        self.hub = Hub(config)
        self.hub.publish(Listing(SYMS))
        for i, s in enumerate(SYMS):
            self.hub.publish(Tick(s, 100.0 + i, 1.7e12, size=1.0))
        self.hub.publish(News("old", 1.7e12, "t", ("AAPL",)))
        self.transport = RecordingTransport()
        self.closes: list[int] = []

        async def close(code: int, reason: str) -> None:
            self.closes.append(code)
            self.transport.closing = True

        self.client: Client = self.hub.connect(self.transport, close, "127.0.0.1")
        (hello,) = decoded(self.take())
        assert hello["type"] == "hello"

    def take(self) -> bytes:
        out = bytes(self.transport.data)
        self.transport.data.clear()
        return out

    async def send(self, data: bytes | None) -> list[dict[str, Any]]:
        """One inbound frame (None: binary) -> the frames written in answer."""
        self.hub.receive(self.client, data)  # must never raise
        await asyncio.sleep(0)  # a close runs in a task
        return decoded(self.take())

    async def aclose(self) -> None:
        await self.hub.stop()
        await asyncio.gather(*self.hub.closer.tasks)
        self.hub.disconnect(self.client)


def check_answer(data: bytes | None, answer: list[dict[str, Any]], config: HubConfig) -> None:
    """The answer the protocol promises for one inbound frame (rate limit not reached)."""
    if data is None:
        assert [(f["type"], f["code"]) for f in answer] == [("error", "bad_request")]
        return
    req = parse_request(data, max_symbols=config.max_symbols_per_request)
    if isinstance(req, ProtocolError):
        assert len(answer) == 1, answer
        (err,) = answer
        assert (err["type"], err["code"]) == ("error", req.code), (data[:200], err)
        assert err.get("id") == req.id
        return
    if isinstance(req, Ping):
        assert answer == [{"type": "pong", **({"t": req.t} if req.t is not None else {})}]
        return
    rid = getattr(req, "id", None)
    if rid is not None:
        first = answer[0] if answer else None
        assert first is not None and first["type"] in ("ack", "error"), (data[:200], answer)
        assert first["id"] == rid
    if isinstance(req, Resync):
        assert answer[-1]["type"] == "snapshot"
    if isinstance(req, Subscribe) and req.symbols:
        known = [s for s in req.symbols if s == "*" or s.upper() in SYMS]
        assert any(f["type"] in ("snapshot", "error") for f in answer), (req, answer)
        if len(known) < len(req.symbols):
            assert any(f.get("code") in ("unknown_symbol", "too_many_symbols") for f in answer)
    for f in answer:
        if f["type"] in ("ack", "error") and rid is not None:
            assert f.get("id") == rid, (req, f)


# Strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)
symbols = st.sampled_from([*SYMS, "*", "aapl", "NOPE", "", " AAPL"]) | st.text(max_size=8)
field_values = {
    "id": st.none() | st.integers(-(2**64), 2**64) | st.text(max_size=10) | json_values,
    "symbols": st.lists(symbols, max_size=6) | json_values,
    "topics": st.lists(symbols, max_size=6) | json_values,
    "since": st.none() | st.integers(-5, 2**63) | json_values,
    "ms": st.floats(-10, 1e9) | st.integers(-5, 10**12) | json_values,
    "t": st.floats() | st.integers(-(2**63), 2**63) | json_values,
}
requests = st.fixed_dictionaries(
    {"op": st.sampled_from(OPS) | st.text(max_size=10) | json_values},
    optional=field_values,
)


rids = st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10)
sym_lists = st.lists(symbols, max_size=6)
valid_requests = st.one_of(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["subscribe", "unsubscribe"]), "symbols": sym_lists},
        optional={"id": rids},
    ),
    st.fixed_dictionaries(
        {"op": st.just("news"), "topics": sym_lists},
        optional={"id": rids, "since": st.integers(0, 2**63)},
    ),
    st.fixed_dictionaries(
        {"op": st.just("throttle"), "ms": st.floats(0, 1e9) | st.integers(0, 10**12)},
        optional={"id": rids},
    ),
    st.fixed_dictionaries({"op": st.just("resync")}, optional={"id": rids}),
    st.fixed_dictionaries(
        {"op": st.just("ping")}, optional={"t": st.floats(allow_nan=False) | st.integers()}
    ),
)


def as_json(v: Any) -> bytes:
    """``v`` as JSON text the way a sloppy client might write it (NaN, huge ints included)."""
    return json.dumps(v, allow_nan=True).encode()


inbound = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    json_values.map(as_json),
    requests.map(as_json),
    valid_requests.map(as_json),
    valid_requests.map(as_json),
    st.none(),  # a binary frame
    st.sampled_from(
        [
            b"[" * 5000,
            b'{"op":"subscribe","symbols":["\\ud800"]}',
            b'{"op": "ping", "t": 1e400}',
            b'{"op":"subscribe","symbols":["AAPL"],"op":"ping"}',
            b"\xef\xbb\xbf{}",
            '{"op":"ping","t":"\ud800"}'.encode("utf-8", "surrogatepass"),
        ]
    ),
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(inbound, min_size=1, max_size=12))
def test_every_inbound_frame_is_answered_and_nothing_raises(frames: list[bytes | None]) -> None:
    config = HubConfig(rate=1000.0, burst=1000.0, max_symbols_per_request=4)

    async def run() -> None:
        s = Session(config)
        for data in frames:
            check_answer(data, await s.send(data), config)
        assert s.closes == [], "no close without abuse"
        await s.aclose()

    asyncio.run(run())


@FUZZ
@given(st.lists(inbound, min_size=1, max_size=30), st.integers(1, 5))
def test_flooding_gets_rate_limited_then_1008_and_nothing_after(
    frames: list[bytes | None], burst: int
) -> None:
    config = HubConfig(rate=0.001, burst=float(burst))  # time stands still: no refill

    async def run() -> None:
        s = Session(config)
        flood = (frames * (2 * burst + 3))[: 2 * burst + 3]
        answers = [await s.send(data) for data in flood]
        for data, answer in zip(flood[:burst], answers[:burst], strict=True):
            check_answer(data, answer, config)  # the burst is served
        limited = answers[burst : 2 * burst]
        assert all(
            [(f["type"], f["code"]) for f in a] == [("error", "rate_limited")] for a in limited
        ), limited
        assert s.closes == [1008], "closed once the strikes passed the burst"
        assert answers[2 * burst :] == [[]] * 3, "the close, and nothing after it"
        await s.aclose()

    asyncio.run(run())


# Over the wire: a real server, the independent `websockets` client


@pytest.fixture(scope="module")
def wire_server() -> Iterator[ServerProcess]:
    srv = ServerProcess(
        "--feed",
        "sim:symbols=AAPL+MSFT+GOOGL,rate=20,seed=1,burst=1",
        "--max-frame-bytes",
        "1024",
        "--control-rate",
        "1000",
        "--control-burst",
        "1000",
        "--log-level",
        "WARNING",
    )
    yield srv
    srv.close()


wire_frames = st.one_of(
    st.binary(max_size=200).map(lambda b: ("bin", b)),
    st.text(max_size=200).map(lambda t: ("text", t)),
    requests.map(lambda r: ("text", json.dumps(r, allow_nan=True))),
    st.integers(1025, 4000).map(lambda n: ("text", '{"op":"ping","pad":"' + "x" * n + '"}')),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(wire_frames, min_size=1, max_size=6))
def test_over_the_wire_frames_are_answered_or_closed_1009(
    wire_server: ServerProcess, frames: list[tuple[str, Any]]
) -> None:
    with connect(wire_server.ws_url, max_size=2**22, open_timeout=5) as ws:
        assert orjson.loads(ws.recv(timeout=5))["type"] == "hello"
        for kind, payload in frames:
            data = payload.encode() if kind == "text" else payload
            ws.send(data, text=kind == "text")
            if len(data) > 1024:
                with pytest.raises(ConnectionClosed) as info:
                    while True:  # deltas may come first; then the close
                        ws.recv(timeout=5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009
                return
            # The answer: an error, ack, pong or snapshot (deltas of the sim feed may interleave).
            ws.send(orjson.dumps({"op": "ping", "t": -1}).decode())
            seen: list[dict[str, Any]] = []
            while True:
                f = orjson.loads(ws.recv(timeout=5))
                assert f["type"] in TYPES
                if f == {"type": "pong", "t": -1}:
                    break
                seen.append(f)
            if kind == "bin":
                assert [f["code"] for f in seen if f["type"] == "error"] == ["bad_request"]
            else:
                req = parse_request(data, max_symbols=1000)
                if isinstance(req, ProtocolError):
                    errors = [f for f in seen if f["type"] == "error"]
                    assert [e["code"] for e in errors] == [req.code], (payload[:100], seen)
                elif isinstance(req, Ping):
                    pongs = [f for f in seen if f["type"] == "pong"]
                    assert len(pongs) == 1 and pongs[0].get("t") == req.t, (payload, seen)


def test_inbound_strategies_produce_each_kind() -> None:
    """The fuzzer really reaches valid requests of every op, and errors of every parse code."""
    seen_ops: set[str] = set()
    seen_codes: set[str] = set()

    @settings(max_examples=500, deadline=None)
    @given(inbound)
    def collect(data: bytes | None) -> None:
        if data is None:
            return
        req = parse_request(data, max_symbols=4)
        if isinstance(req, ProtocolError):
            seen_codes.add(req.code)
        else:
            seen_ops.add(type(req).__name__)

    collect()
    assert seen_codes >= {"bad_json", "bad_request", "unknown_op", "too_many_symbols"}
    assert seen_ops == {"Subscribe", "Unsubscribe", "NewsRequest", "Throttle", "Resync", "Ping"}

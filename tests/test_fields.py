"""Field selection (``op`` ``fields``): parsing, the session's answers (pure), and what reaches a
real client: snapshots and deltas carry only the selected fields (plus ``symbol``/``ts``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, strategies as st
from pytest_aiohttp import AiohttpClient

from tests.wsutil import Server, recv, recv_type, tick
from ticker.core.conflate import Subscription
from ticker.core.events import Listing
from ticker.core.protocol import FIELDS, Ack, Fields, ProtocolError, parse_request
from ticker.hub.news import NewsRing
from ticker.hub.session import Move, Send, Session, SessionRules, Snapshot

RULES = SessionRules(100.0, 10_000.0, 1_000, 2_000, 20.0, 60.0)


def test_parse_fields() -> None:
    assert parse_request(b'{"op":"fields","fields":["price","ts"],"id":3}') == Fields(
        ("price", "ts"), 3
    )
    assert parse_request(b'{"op":"fields"}') == Fields(())
    bad = parse_request(b'{"op":"fields","fields":["price","colour"],"id":4}')
    assert isinstance(bad, ProtocolError) and bad.code == "bad_request" and bad.id == 4
    assert "'colour'" in bad.message and all(f in bad.message for f in FIELDS)
    bad = parse_request(b'{"op":"fields","fields":"price"}')
    assert isinstance(bad, ProtocolError) and bad.code == "bad_request"


@given(st.lists(st.sampled_from(FIELDS), max_size=len(FIELDS) + 2))
def test_the_session_selects_fields(names: list[str]) -> None:
    s = Session("s", RULES, 0.0)
    news = NewsRing(4)
    s.receive(b'{"op":"subscribe","symbols":["AAPL"]}', 0.0, ["AAPL"], news)
    out = s.receive(orjson.dumps({"op": "fields", "fields": names, "id": 1}), 0.0, ["AAPL"], news)
    selected = frozenset(names) or None
    assert s.fields == selected
    if selected is None:  # (nothing changed: all, as before)
        assert out == [Send(Ack(1, {"fields": []}))]
        return
    assert out == [
        Move(s.window, Subscription(False, frozenset({"AAPL"})), selected),
        Send(Ack(1, {"fields": list(dict.fromkeys(names))})),
        Snapshot(("AAPL",)),
    ]
    # The same again: nothing to do but the ack.
    again = s.receive(orjson.dumps({"op": "fields", "fields": names}), 0.0, ["AAPL"], news)
    assert again == []


@pytest.fixture
async def srv(aiohttp_client: AiohttpClient) -> Server:
    return await Server.start(
        aiohttp_client,
        [Listing(("AAPL", "MSFT")), tick("AAPL", 100.0, size=1, bid=99.9), tick("MSFT", 50.0)],
    )


async def _delta(ws: Any) -> dict[str, Any]:
    return await recv_type(ws, "delta")


async def test_snapshots_and_deltas_carry_only_the_selected_fields(srv: Server) -> None:
    ws, snap = await srv.subscribed(["AAPL", "MSFT"], throttle_ms=20)
    assert "bid" in snap["quotes"]["AAPL"]
    full, _ = await srv.subscribed(["AAPL", "MSFT"], throttle_ms=20)
    await ws.send_json({"op": "fields", "fields": ["price", "change_pct"], "id": "f"})
    assert await recv(ws) == {"type": "ack", "id": "f", "fields": ["price", "change_pct"]}
    snap = await recv(ws)
    assert snap["type"] == "snapshot"
    aapl = snap["quotes"]["AAPL"]
    # (change_pct only once there is a prev_close)
    assert {"symbol", "price", "ts"} <= set(aapl) <= {"symbol", "price", "ts", "change_pct"}
    # A tick that changes price: price (and change_pct) and ts only.
    await srv.push(tick("AAPL", 101.0, size=2, bid=100.5))
    d = await _delta(ws)
    assert set(d["quotes"]) == {"AAPL"}
    assert set(d["quotes"]["AAPL"]) <= {"price", "ts", "change_pct"}
    assert d["quotes"]["AAPL"]["price"] == 101.0
    assert "bid" in (await _delta(full))["quotes"]["AAPL"], "the other client gets everything"
    # A tick that changes nothing selected (same price, only bid/size/volume): no delta for it.
    await srv.push(tick("AAPL", 101.0, size=3, bid=100.7), tick("MSFT", 51.0))
    d = await _delta(ws)
    assert set(d["quotes"]) == {"MSFT"}, d
    # An unknown field: bad_request naming the valid ones; nothing changes.
    await ws.send_json({"op": "fields", "fields": ["price", "colour"], "id": "x"})
    err = await recv(ws)
    assert err["code"] == "bad_request" and "change_pct" in err["message"] and err["id"] == "x"
    # [] = all again, from a fresh snapshot.
    await ws.send_json({"op": "fields", "fields": [], "id": "a"})
    assert (await recv(ws))["fields"] == []
    snap = await recv(ws)
    assert snap["type"] == "snapshot" and "bid" in snap["quotes"]["AAPL"]


async def test_one_encoding_per_selection(srv: Server) -> None:
    """Connections with the same selection share a group (one encoded delta tail)."""
    socks = []
    for _ in range(3):
        ws, _ = await srv.subscribed(["AAPL"], throttle_ms=20)
        await ws.send_json({"op": "fields", "fields": ["price"]})
        await recv_type(ws, "snapshot")
        socks.append(ws)
    window = srv.hub.windows.by_key[20, 0]
    groups = [g for g in window.groups.values() if g.members]
    assert len(groups) == 1 and len(groups[0].members) == 3
    await srv.push(tick("AAPL", 102.0))
    frames = [await _delta(ws) for ws in socks]
    assert all(f["quotes"] == frames[0]["quotes"] for f in frames)
    assert set(frames[0]["quotes"]["AAPL"]) <= {"price", "ts"}

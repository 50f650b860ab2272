"""The event codec (ticker.core.codec) and its three consumers: the Redis bus's payload, the
recorder's rows, the publish API's bodies. Sync, no event loop; hypothesis for the round trips:
whatever event a feed or a producer can make comes back equal through each of them."""

from __future__ import annotations

import dataclasses
import string
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st

from ticker.core.codec import (
    FIELD_TYPES,
    KINDS,
    NEWS,
    TICK,
    decode_event,
    encode_event,
    event_from_dict,
    event_to_dict,
    events_to_columns,
    kind_of,
)
from ticker.core.events import Bar, Event, Listing, News, Reset, Tick
from ticker.net import publish
from ticker.net.publish import parse_news, parse_ticks
from ticker.store.recorder import SCHEMA, events_to_table

# Ticks and news as the publish API accepts them (its constraints).
symbols = st.text(string.ascii_uppercase + string.digits + ".-", min_size=1, max_size=12)
positive = st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False)
non_negative = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
text = st.text(min_size=1, max_size=40)
ticks = st.builds(
    Tick,
    symbol=symbols,
    price=positive,
    ts=positive,
    size=st.none() | non_negative,
    bid=st.none() | positive,
    ask=st.none() | positive,
    volume=st.none() | non_negative,
    prev_close=st.none() | positive,
)
news = st.builds(
    News,
    headline=text,
    ts=positive,
    source=text,
    symbols=st.lists(symbols, max_size=5).map(tuple),
    url=st.none() | st.from_regex(r"\Ahttps?://[a-z]{1,10}\.test/[a-z0-9]{0,10}\Z"),
    summary=st.none() | st.text(max_size=80),
)

# Any values of the fields' types (what the codec must carry, valid or not; NaN is not equal to
# itself, so it is left out).
finite = st.floats(allow_nan=False, allow_infinity=False)
strings = st.text(max_size=20)
tuples = st.lists(strings, max_size=4).map(tuple)
any_events: st.SearchStrategy[Event] = (
    st.builds(
        Tick,
        *(strings, finite, finite),
        *(st.none() | finite for _ in range(5)),
    )
    | st.builds(News, strings, finite, strings, tuples, st.none() | strings, st.none() | strings)
    | st.builds(Listing, tuples)
    | st.builds(Bar, strings, finite, strings, finite, finite, finite, finite, finite)
    | st.builds(Reset, tuples, finite)
)
news_ids = st.integers(0, 2**53)


def without_id(ev: Event) -> Event:
    return dataclasses.replace(ev, id=0) if type(ev) is News else ev


# The kinds, read from the dataclasses


def test_kinds_are_the_event_dataclasses_less_the_news_id() -> None:
    assert [(k.name, k.tag, k.cls) for k in KINDS] == [
        ("tick", "T", Tick),
        ("news", "N", News),
        ("listing", "L", Listing),
        ("bar", "B", Bar),
        ("reset", "R", Reset),
    ]
    for k in KINDS:
        assert k.fields == tuple(f.name for f in dataclasses.fields(k.cls) if f.name != "id")
    tick, item, listing, bar, reset = KINDS
    assert bar.defaults == {"volume": 0.0} and reset.defaults == {}
    assert (tick, item) == (TICK, NEWS)
    assert set(tick.defaults) == {"size", "bid", "ask", "volume", "prev_close"}
    assert item.defaults == {"symbols": (), "url": None, "summary": None}
    assert listing.defaults == {}
    assert FIELD_TYPES["ts"] == "float" and FIELD_TYPES["symbol"] == "str"
    assert FIELD_TYPES["symbols"] == "symbols" and FIELD_TYPES["headline"] == "str"


def test_not_an_event_is_refused() -> None:
    with pytest.raises(TypeError, match="not an event: dict"):
        kind_of({})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an event: str"):
        encode_event("tick")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an event: int"):
        events_to_columns([Tick("A", 1.0, 2.0), 3], ["kind"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no event has a field 'colour'"):
        events_to_columns([], ["kind", "colour"])


# Compact bytes (the Redis bus's stream entries and quote hash)


def test_compact_bytes_are_those_redis_already_holds() -> None:
    """The format is shared with every node of a running deployment: pinned byte for byte."""
    assert encode_event(Tick("AAPL", 189.5, 1.7e12, 10.0, None, 189.6, 1200.0, 188.0)) == (
        b'["T","AAPL",189.5,1700000000000.0,10.0,null,189.6,1200.0,188.0]'
    )
    assert encode_event(News("Up", 1.5, "sim", ("AAPL", "MSFT"), None, "s", id=41)) == (
        b'["N","Up",1.5,"sim",["AAPL","MSFT"],null,"s"]'
    )
    assert encode_event(Listing(("A", "B"))) == b'["L",["A","B"]]'


@settings(max_examples=300, deadline=None)
@given(ev=any_events, news_id=news_ids)
def test_redis_payload_round_trips(ev: Event, news_id: int) -> None:
    """decode(encode(ev)) == ev for every kind; a news item's id travels beside it."""
    if type(ev) is News:
        ev = dataclasses.replace(ev, id=news_id)
    assert decode_event(encode_event(ev), news_id) == ev
    assert decode_event(encode_event(ev).decode(), news_id) == ev


def test_compact_bytes_tolerate_a_field_appended_by_another_version() -> None:
    """An older reader ignores a newer writer's appended field; a newer reader defaults the
    optional fields an older entry lacks."""
    assert decode_event(b'["T","A",1.0,2.0,null,null,null,null,null,"later"]') == Tick("A", 1, 2)
    assert decode_event(b'["T","A",1.0,2.0]') == Tick("A", 1.0, 2.0)
    assert decode_event(b'["N","H",1.0,"S"]', 5) == News("H", 1.0, "S", id=5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{}", "non-empty JSON array"),
        (b"[]", "non-empty JSON array"),
        (b'["X",1]', "unknown event kind 'X'"),
        (b"[1]", "unknown event kind 1"),
        (b'["T","A",1.0]', "a tick without its ts"),
        (b'["L"]', "a listing without its symbols"),
    ],
)
def test_compact_bytes_that_are_no_event_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_event(data)


# Dicts (a book quote, a recorder row, a validated publish body)


@settings(max_examples=200, deadline=None)
@given(ev=any_events, news_id=news_ids)
def test_dict_round_trips(ev: Event, news_id: int) -> None:
    if type(ev) is News:
        ev = dataclasses.replace(ev, id=news_id)
    d = event_to_dict(ev)
    assert d["kind"] == kind_of(ev).name
    assert orjson.loads(orjson.dumps(d)) == d, "plain values only"
    assert event_from_dict(d, news_id=news_id) == ev
    assert event_from_dict(d, kind=d.pop("kind"), news_id=news_id) == ev


def test_a_dict_may_carry_more_and_less() -> None:
    quote = {"symbol": "A", "price": 2.0, "ts": 3.0, "high": 4.0, "change": 0.5, "bid": 1.9}
    assert (
        event_from_dict(quote, kind="tick") == TICK.from_dict(quote) == Tick("A", 2.0, 3.0, bid=1.9)
    )
    assert event_from_dict({"kind": "news", "headline": "H", "ts": 1.0, "source": "S"}) == News(
        "H", 1.0, "S"
    )
    with pytest.raises(ValueError, match="a tick needs 'ts'"):
        TICK.from_dict({"symbol": "A", "price": 1.0})
    with pytest.raises(ValueError, match="unknown event kind 'quote'"):
        event_from_dict({"kind": "quote"})
    with pytest.raises(ValueError, match="unknown event kind None"):
        event_from_dict({})


# Recorder rows


def parquet_round_trip(table: pa.Table) -> pa.Table:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return pq.read_table(pa.BufferReader(sink.getvalue()))


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(any_events, max_size=30))
def test_recorder_rows_round_trip(batch: list[Event]) -> None:
    """Every event comes back from a Parquet recording equal, in order (a news item's service id
    is not recorded: a replay gives new ones)."""
    table = events_to_table(batch)
    assert table.schema == SCHEMA
    rows = parquet_round_trip(table).to_pylist()
    assert [event_from_dict(r) for r in rows] == [without_id(ev) for ev in batch]


def test_the_recorder_has_a_column_of_the_right_type_for_every_field() -> None:
    arrow = {"str": pa.string(), "float": pa.float64(), "symbols": pa.list_(pa.string())}
    assert SCHEMA.names[0] == "kind" and SCHEMA.field("kind").type == pa.string()
    assert {f.name: f.type for f in SCHEMA if f.name != "kind"} == {
        name: arrow[t] for name, t in FIELD_TYPES.items()
    }


def test_columns_are_the_dicts_column_wise() -> None:
    batch: list[Event] = [
        Listing(("A",)),
        Tick("A", 1.0, 2.0, size=3.0),
        News("H", 4.0, "S", ("A", "B")),
    ]
    names = ["kind", *FIELD_TYPES]
    columns = events_to_columns(batch, names)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    assert rows == [dict.fromkeys(names) | event_to_dict(ev) for ev in batch]


# Publish bodies


def body_item(ev: Tick | News) -> dict[str, Any]:
    """What a producer sends for ``ev``: its fields, optional ones left out when unset."""
    kind = kind_of(ev)
    d = event_to_dict(ev)
    del d["kind"]
    return {f: v for f, v in d.items() if f not in kind.defaults or v != kind.defaults[f]}


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(ticks, max_size=20), wrapped=st.booleans())
def test_publish_tick_bodies_round_trip(batch: list[Tick], wrapped: bool) -> None:
    items = [body_item(t) for t in batch]
    assert parse_ticks(orjson.dumps({"ticks": items} if wrapped else items)) == batch


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(news, min_size=1, max_size=10), single=st.booleans())
def test_publish_news_bodies_round_trip(batch: list[News], single: bool) -> None:
    """(A listing is not published: the API declares new symbols itself.)"""
    items = [body_item(n) for n in batch]
    body = orjson.dumps(items[0] if single else items)
    assert parse_news(body, now_ms=1.0) == (batch[:1] if single else batch)


def test_the_publish_schema_has_the_events_fields() -> None:
    """The msgspec structs add constraints to the events' fields; they name the same ones, with
    the same optional ones (but ``ts`` of a news item, which defaults to when it is received).
    A tick's are in its order too (parse_ticks builds ticks from their values)."""
    for struct, kind in ((publish._TickIn, TICK), (publish._NewsIn, NEWS)):
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        assert {f.name for f in info.fields} == set(kind.fields)
        optional = {f.name for f in info.fields if not f.required}
        assert optional == set(kind.defaults) | ({"ts"} if kind is NEWS else set())
    assert publish._TickIn.__struct_fields__ == TICK.fields

"""Event codec: every event kind <-> plain values (a dict of fields, compact JSON bytes).

Pure; no I/O. The one place that knows each event kind's name, its fields (names, order, value
types) and how a value converts outside Python (a tuple of symbols is a list). Everything here is
derived from the dataclasses in :mod:`ticker.core.events`, so a field added there reaches every
form at once. Consumers keep only their own schema layer on top:

* the Redis bus stores :func:`encode_event` bytes in its streams and quote hash;
* the recorder writes :func:`events_to_columns` as Parquet columns (:data:`FIELD_TYPES` gives
  each column's value type) and reads rows back with :func:`event_from_dict`;
* the publish API validates a body with msgspec, then builds events with :func:`event_from_dict`.

``News.id`` is not part of an event's content: the service assigns it (:mod:`ticker.core.news_id`),
so a form that carries it carries it beside the event (the Redis stream entry's ``id`` field) and
passes it back as ``news_id``. The wire protocol's messages (:mod:`ticker.core.protocol`) are
another thing: what clients are sent, not what feeds produce.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import orjson

from ticker.core.events import Bar, Event, Listing, News, Reset, Tick

__all__ = [
    "BAR",
    "FIELD_TYPES",
    "KINDS",
    "LISTING",
    "NEWS",
    "RESET",
    "TICK",
    "AnyKind",
    "Kind",
    "ValueType",
    "decode_event",
    "encode_event",
    "event_from_dict",
    "event_to_dict",
    "events_to_columns",
    "kind_of",
]

ValueType = Literal["str", "float", "symbols"]
"""What a field holds outside Python: a string, a number, or a list of symbols (a tuple inside)."""

# Annotation (as written in events.py) -> value type. Optional fields are the same type or None.
_VALUE_TYPES: dict[str, ValueType] = {"str": "str", "float": "float", "tuple[str, ...]": "symbols"}

E = TypeVar("E", Tick, News, Listing, Bar, Reset)


@dataclass(frozen=True, slots=True)
class Kind(Generic[E]):
    """One event kind in its plain forms.

    Attributes:
        name: ``tick``, ``news``, ``listing``, ``bar`` or ``reset`` (the ``kind`` of a dict,
            the recorder's column).
        tag: the first item of the compact form (``T``, ``N``, ``L``, ``B``, ``R``).
        cls: the event class.
        fields: its fields in constructor order, without ``News.id``.
        types: each field's value type.
        defaults: the optional fields' defaults; the others are required.
    """

    name: str
    tag: str
    cls: type[E]
    fields: tuple[str, ...]
    types: Mapping[str, ValueType]
    defaults: Mapping[str, Any]
    # Derived: the values in field order, and the positions of the symbol lists among them.
    values: Callable[[Any], Any] = dataclasses.field(repr=False, compare=False)
    symbol_lists: tuple[int, ...] = dataclasses.field(repr=False, compare=False)

    @staticmethod
    def of(name: str, tag: str, event: type[E]) -> Kind[E]:
        """The kind of ``event``, read from its dataclass fields."""
        every = dataclasses.fields(event)
        own = [f for f in every if f.name != "id"]
        if len(own) < len(every) and every[-1].name != "id":
            raise TypeError(f"{event.__name__}.id must be its last field (Kind.build)")
        names = tuple(f.name for f in own)
        types = {f.name: _value_type(event, f) for f in own}
        defaults = {f.name: f.default for f in own if f.default is not dataclasses.MISSING}
        getter = operator.attrgetter(*names)
        return Kind(
            name,
            tag,
            event,
            names,
            types,
            defaults,
            getter if len(names) > 1 else lambda ev: (getter(ev),),
            tuple(i for i, n in enumerate(names) if types[n] == "symbols"),
        )

    def build(self, values: list[Any], news_id: int = 0) -> E:
        """The event of its values in field order (the compact form without its tag); symbol
        lists become tuples. Takes ``values`` over (it is changed)."""
        for i in self.symbol_lists:
            values[i] = tuple(values[i])
        if self.cls is News:
            values.append(news_id)  # (News.id comes last)
        return self.cls(*values)

    def from_dict(self, d: Mapping[str, Any], news_id: int = 0) -> E:
        """The event of a dict of fields (:func:`event_from_dict`, this kind whatever ``d`` says).

        Raises:
            ValueError: a required field is missing.
        """
        defaults = self.defaults
        try:
            values = [d[f] if f in d else defaults[f] for f in self.fields]
        except KeyError as exc:
            raise ValueError(f"a {self.name} needs {exc.args[0]!r}") from None
        return self.build(values, news_id)


def _value_type(event: type, f: dataclasses.Field[Any]) -> ValueType:
    # events.py has `from __future__ import annotations` (house style): annotations are strings.
    written = str(f.type)
    base = written.removesuffix(" | None")
    if base not in _VALUE_TYPES:
        raise TypeError(f"{event.__name__}.{f.name}: no plain form for {written!r} (codec.py)")
    return _VALUE_TYPES[base]


TICK = Kind.of("tick", "T", Tick)
NEWS = Kind.of("news", "N", News)
LISTING = Kind.of("listing", "L", Listing)
BAR = Kind.of("bar", "B", Bar)
RESET = Kind.of("reset", "R", Reset)
AnyKind = Kind[Tick] | Kind[News] | Kind[Listing] | Kind[Bar] | Kind[Reset]
"""A kind of any event."""
KINDS: tuple[AnyKind, ...] = (TICK, NEWS, LISTING, BAR, RESET)
"""Every event kind (:data:`ticker.core.events.Event`)."""

_BY_CLASS: dict[type, AnyKind] = {k.cls: k for k in KINDS}
_BY_NAME: dict[str, AnyKind] = {k.name: k for k in KINDS}
_BY_TAG: dict[str, AnyKind] = {k.tag: k for k in KINDS}


def _field_types() -> dict[str, ValueType]:
    out: dict[str, ValueType] = {}
    for k in KINDS:
        for name, t in k.types.items():
            # A field name means one thing in every kind (one column, one validation rule).
            if out.setdefault(name, t) != t:
                raise TypeError(f"field {name!r} is {out[name]} in one kind, {t} in another")
    return out


FIELD_TYPES: Mapping[str, ValueType] = _field_types()
"""The value type of every field name of any kind (the same in every kind that has it)."""


def kind_of(ev: Event) -> AnyKind:
    """The :class:`Kind` of an event.

    Raises:
        TypeError: ``ev`` is not an event.
    """
    kind = _BY_CLASS.get(type(ev))
    if kind is None:
        raise TypeError(f"not an event: {type(ev).__name__}")
    return kind


# Compact bytes: ["T", symbol, price, ts, size, bid, ask, volume, prev_close], ["N", headline, ts,
# source, [symbols], url, summary], ["L", [symbols]], ["B", symbol, ts, interval, open, high, low,
# close, volume], ["R", [symbols], ts]. Stored in Redis and read by every version a
# deployment runs side by side, so a new field is only ever appended (and optional): an older
# reader ignores it, a newer one reading an older entry gives it its default.


def encode_event(ev: Event) -> bytes:
    """One event as compact JSON: its tag, then its values in field order (no ``News.id``).

    Raises:
        TypeError: ``ev`` is not an event.
    """
    try:
        kind = _BY_CLASS[type(ev)]
    except KeyError:
        raise TypeError(f"not an event: {type(ev).__name__}") from None
    return orjson.dumps((kind.tag, *kind.values(ev)))


def decode_event(data: bytes | str, news_id: int = 0) -> Event:
    """The inverse of :func:`encode_event`; ``news_id`` becomes ``News.id``.

    Raises:
        ValueError: ``data`` is not an encoded event.
    """
    v = orjson.loads(data)
    if type(v) is not list or not v:
        raise ValueError("an encoded event is a non-empty JSON array")
    try:
        kind = _BY_TAG[v[0]]
    except (KeyError, TypeError):  # (TypeError: a list or an object is no key)
        raise ValueError(f"unknown event kind {v[0]!r}") from None
    values = v[1:]
    if len(values) != len(kind.fields):  # written by another version
        values = values[: len(kind.fields)]
        absent = kind.fields[len(values) :]
        if not all(f in kind.defaults for f in absent):
            raise ValueError(f"a {kind.name} without its {', '.join(absent)}")
        values += [kind.defaults[f] for f in absent]
    return kind.build(values, news_id)


# Dicts: {"kind": "tick", "symbol": ..., ...}


def event_to_dict(ev: Event) -> dict[str, Any]:
    """``{"kind": NAME, FIELD: VALUE, ...}``: every field (``None`` too), symbols as a list.

    Raises:
        TypeError: ``ev`` is not an event.
    """
    kind = kind_of(ev)
    out: dict[str, Any] = {"kind": kind.name}
    out.update(zip(kind.fields, kind.values(ev), strict=True))
    for i in kind.symbol_lists:
        name = kind.fields[i]
        out[name] = list(out[name])
    return out


def event_from_dict(d: Mapping[str, Any], *, kind: str | None = None, news_id: int = 0) -> Event:
    """The event of a dict of fields: the inverse of :func:`event_to_dict`.

    Keys that are not the kind's fields are ignored (a recorder row has every kind's columns, a
    book quote its statistics); a missing optional field takes its default.

    Args:
        d: the fields, and ``kind`` unless given.
        kind: ``tick``, ``news``, ``listing``, ``bar`` or ``reset``; default ``d["kind"]``.
        news_id: becomes ``News.id``.

    Raises:
        ValueError: an unknown kind, or a required field missing.
    """
    name = d.get("kind") if kind is None else kind
    k = _BY_NAME.get(name) if isinstance(name, str) else None
    if k is None:
        raise ValueError(f"unknown event kind {name!r}")
    return k.from_dict(d, news_id)


# Columns: the dict form of many events, one list per name


def _absent(ev: Event) -> None:
    return None


def events_to_columns(events: Sequence[Event], names: Sequence[str]) -> list[list[Any]]:
    """For each of ``names`` (``kind`` or a field of any kind), its value in each event, in order:
    what :func:`event_to_dict` gives, column-wise, with ``None`` where an event has no such field.

    Raises:
        TypeError: one of ``events`` is not an event.
        ValueError: one of ``names`` is neither ``kind`` nor a field.
    """
    unknown = [n for n in names if n != "kind" and n not in FIELD_TYPES]
    if unknown:
        raise ValueError(f"no event has a field {unknown[0]!r}")
    kinds = {k.cls: k.name for k in KINDS}
    out: list[list[Any]] = []
    try:
        for name in names:
            if name == "kind":
                out.append([kinds[type(ev)] for ev in events])
                continue
            # One getter per kind: a C-level attrgetter, or None for a kind without the field.
            get: dict[type, Callable[[Any], Any]] = {
                k.cls: operator.attrgetter(name) if name in k.types else _absent for k in KINDS
            }
            column = [get[type(ev)](ev) for ev in events]
            if FIELD_TYPES.get(name) == "symbols":
                column = [None if v is None else list(v) for v in column]
            out.append(column)
    except KeyError as exc:  # a type that is no kind of event
        raise TypeError(f"not an event: {exc.args[0].__name__}") from None
    return out

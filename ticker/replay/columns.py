"""Pure; no I/O. Column detection: which layout a table has and which column plays which role.

Works on column names only (no pandas): the caller says which columns hold numbers.

Layouts (:func:`detect_layout`):

- ``recording``: what :mod:`ticker.store.recorder` writes (ticks, news and listings, in ingest
  order).
- ``ticks``: a time column, a price and optionally symbol, size, bid, ask, volume. A per-trade
  quantity (``size``, ``qty``, or a plain ``Volume`` column) is ``size``; only a column named as
  cumulative (``cum_volume``, ``total_volume``...) or declared with ``columns=volume:NAME`` is the
  session's running ``volume``.
- ``bars``: OHLCV bars as finance sites export them (Date, Open, High, Low, Close, Adj Close,
  Volume): roles ``open``, ``high``, ``low``, ``price`` (the close) and ``size`` (the bar's own
  volume). Without a symbol column the symbol comes from the file name
  (:func:`symbol_from_filename`) or the ``symbol`` option.
- ``long``: symbol, time and one value column (``close``, ``value``...).
- ``wide``: a time column and one numeric column per symbol.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ticker.replay.errors import ReplayError

__all__ = [
    "LAYOUTS",
    "ROLES",
    "Layout",
    "detect_layout",
    "parse_columns_option",
    "symbol_from_filename",
]

LAYOUTS = ("recording", "ticks", "bars", "long", "wide")
ROLES = (
    "ts",
    "symbol",
    "price",
    "size",
    "bid",
    "ask",
    "volume",
    "prev_close",
    "open",
    "high",
    "low",
)
"""Roles a ``columns=role:Name+...`` override may assign."""

# Candidates per role, best first, as normalised names (lower case, runs of other chars -> "_").
# Event time before receive time: a replay keeps the market's clock.
_TS = (
    "ts",
    "ts_event",
    "event_time",
    "trade_time",
    "trade_time_ms",
    "timestamp",
    "time",
    "datetime",
    "date_time",
    "date",
    "ts_recv",
    "recv_ts",
    "recv_time",
    "receive_time",
)
_SYMBOL = (
    "symbol",
    "ticker",
    "sym",
    "product_id",
    "product",
    "instrument",
    "pair",
    "ric",
    "security",
    "code",
)
_PRICE = ("price", "last", "last_price", "trade_price", "px", "mid")
_CLOSE = ("close", "close_price", "adj_close", "adjclose", "closing_price")
_OPEN = ("open", "open_price")
_HIGH = ("high", "high_price")
_LOW = ("low", "low_price")
_VALUE = ("value", "val", "quote", "rate")
# A plain "volume" column of a trades (or bars) table is the row's own quantity, not a running
# total: a running total is named so, or declared with columns=volume:NAME.
_SIZE = ("size", "qty", "quantity", "trade_size", "last_size", "amount", "volume", "vol")
_BID = ("bid", "bid_price", "bid_px", "bid_px_00", "best_bid", "bidprice")
_ASK = ("ask", "ask_price", "ask_px", "ask_px_00", "best_ask", "askprice", "offer")
_VOLUME = ("cum_volume", "cumulative_volume", "total_volume", "day_volume", "session_volume")
_PREV_CLOSE = ("prev_close", "previous_close", "prevclose")
_OPTIONAL = (
    ("symbol", _SYMBOL),
    ("size", _SIZE),
    ("bid", _BID),
    ("ask", _ASK),
    ("volume", _VOLUME),
    ("prev_close", _PREV_CLOSE),
)
_RECORDING = {"kind", "ts", "symbol", "price", "headline"}

_NAME_SUFFIXES = (".gz", ".csv", ".txt", ".tsv", ".parquet", ".pq", ".parq", ".arrows")


@dataclass(frozen=True, slots=True)
class Layout:
    """How a table maps onto events.

    Args:
        kind: one of :data:`LAYOUTS`.
        columns: role (see :data:`ROLES`) -> column name in the table.
        wide: for ``wide`` tables, the columns that are symbols (their names are the symbols).
        ignored: columns that play no part.
    """

    kind: str
    columns: Mapping[str, str]
    wide: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


def parse_columns_option(spec: str) -> dict[str, str]:
    """Parse a ``columns`` option, e.g. ``"ts:Date+price:Close"``.

    Args:
        spec: ``role:column`` parts joined by ``+``; roles are :data:`ROLES`.

    Returns:
        Role -> column name, e.g. ``{"ts": "Date", "price": "Close"}``.

    Raises:
        ReplayError: a part that is not ``role:column`` or an unknown role.
    """
    out: dict[str, str] = {}
    for part in spec.split("+"):
        if not part.strip():
            continue
        role, sep, col = part.partition(":")
        role = role.strip().lower()
        if not sep or not col.strip():
            raise ReplayError(f"columns: {part!r} is not role:column")
        if role not in ROLES:
            raise ReplayError(f"columns: unknown role {role!r}; roles: {', '.join(ROLES)}")
        out[role] = col.strip()
    return out


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


class _Names:
    """A table's column names, looked up by their normalised form (the first of equals wins)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.cols = [str(c) for c in columns]
        self.by_norm: dict[str, str] = {}
        for c in self.cols:
            self.by_norm.setdefault(_norm(c), c)
        self.found = ", ".join(self.cols) or "(none)"

    def pick(self, candidates: Sequence[str], taken: Collection[str] = ()) -> str | None:
        """The column of the best candidate present and not ``taken``, None if none is."""
        return next(
            (
                self.by_norm[c]
                for c in candidates
                if c in self.by_norm and self.by_norm[c] not in taken
            ),
            None,
        )

    def resolve(self, name: str) -> str:
        """The column an override names: as written, else by its normalised form."""
        if name in self.cols:
            return name
        match = self.by_norm.get(_norm(name))
        if match is None:
            raise ReplayError(f"columns: no column {name!r}; the table has: {self.found}")
        return match


def detect_layout(
    columns: Sequence[str],
    *,
    numeric: Collection[str] = (),
    overrides: Mapping[str, str] | None = None,
    first_is_time: bool = False,
) -> Layout:
    """Find the layout of a table from its column names.

    Args:
        columns: the table's column names, in order.
        numeric: the names of the columns that hold numbers (decides ``long`` and ``wide``).
        overrides: role -> column name, taking precedence over detection.
        first_is_time: the first column holds times (used when no column name says so).

    Returns:
        The layout: its kind, the column of each role found, and the columns ignored.

    Raises:
        ReplayError: an override names a missing column, there is no time column, or the price
            column is ambiguous. The message lists the columns found.
    """
    names = _Names(columns)
    over = {role: names.resolve(name) for role, name in (overrides or {}).items()}
    if _RECORDING <= names.by_norm.keys() and not over:
        by_norm = names.by_norm
        return Layout(
            "recording",
            {"ts": by_norm["ts"], "symbol": by_norm["symbol"], "price": by_norm["price"]},
        )
    cols = names.cols
    ts = over.get("ts") or names.pick(_TS) or (cols[0] if first_is_time and cols else None)
    if ts is None:
        raise ReplayError(
            f"no time column found (looked for date/time/timestamp/ts); "
            f"the table has: {names.found}; name it with columns=ts:NAME"
        )
    roles: dict[str, str] = {"ts": ts}
    # A column plays one role: what an override names is not detected for another.
    taken = {ts, *over.values()}
    for role, candidates in _OPTIONAL:
        col = over.get(role) or names.pick(candidates, taken)
        if col is not None and col != ts:
            roles[role] = col
            taken.add(col)
    return _classify(names, roles, over, numeric)


def _classify(
    names: _Names, roles: dict[str, str], over: Mapping[str, str], numeric: Collection[str]
) -> Layout:
    """Bars, ticks, long or wide, from the roles found so far (``roles`` gains the price)."""
    cols, ts = names.cols, roles["ts"]
    close = names.pick(_CLOSE)
    ohlc = {
        role: over.get(role) or names.pick(cands)
        for role, cands in (("open", _OPEN), ("high", _HIGH), ("low", _LOW))
    }
    price = over.get("price") or names.pick(_PRICE)
    if (close is not None or price is not None) and sum(c is not None for c in ohlc.values()) >= 2:
        kind = "bars"
        roles["price"] = price or close or ""
        # Bars replay as bars with all of open, high and low (else as ticks at their close).
        roles.update({role: col for role, col in ohlc.items() if col is not None})
        # A bar's volume is that bar's own: a running total is not a bar's.
        vol = roles.pop("volume", None)
        if vol is not None and "size" not in roles:
            roles["size"] = vol
    elif price is not None:
        kind = "ticks"
        roles["price"] = price
    elif "symbol" in roles:
        kind = "long"
        value = close or names.pick(_VALUE)
        if value is None:
            rest = [c for c in cols if c in numeric and c not in roles.values()]
            if len(rest) != 1:
                raise ReplayError(
                    f"cannot tell which column is the price (numeric: "
                    f"{', '.join(rest) or 'none'}); name it with columns=price:NAME"
                )
            value = rest[0]
        roles["price"] = value
    else:
        wide = tuple(c for c in cols if c != ts and c in numeric and c not in roles.values())
        if not wide:
            raise ReplayError(
                f"no price columns found; the table has: {names.found}; "
                "name them with columns=price:NAME"
            )
        used = {ts, *wide}
        return Layout("wide", {"ts": ts}, wide, tuple(c for c in cols if c not in used))
    used = set(roles.values())
    return Layout(kind, roles, (), tuple(c for c in cols if c not in used))


def symbol_from_filename(name: str) -> str:
    """The symbol of a table without a symbol column: ``"aapl.us.csv.gz"`` -> ``"AAPL.US"``.

    Args:
        name: a file name or path.

    Returns:
        The base name without its data suffixes, upper case.
    """
    base = Path(name).name
    low = base.lower()
    for suffix in _NAME_SUFFIXES:
        if low.endswith(suffix):
            base, low = base[: -len(suffix)], low[: -len(suffix)]
    return base.strip().upper()

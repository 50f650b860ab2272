"""Replay data: read tables with pandas, detect their layout, parse their times; the replay clock.

Pure, except ``read_table``/``load`` (the thin I/O shell that reads files). Everything else
takes arrays or DataFrames and returns values, vectorised: nothing here loops over DataFrame rows
in Python.

Layouts (``detect_layout``):

- ``recording``: what :mod:`ticker.store.recorder` writes (ticks, news and listings, in ingest
  order).
- ``ticks``: a time column, a price and optionally symbol, size, bid, ask, volume.
- ``bars``: OHLCV bars as finance sites export them (Date, Open, High, Low, Close, Adj Close,
  Volume); one tick per bar at its close, the bar's volume as the tick's ``size``. Without a symbol
  column the symbol comes from the file name or the ``symbol`` option.
- ``long``: symbol, time and one value column (``close``, ``value``...).
- ``wide``: a time column and one numeric column per symbol.

Times become float epoch milliseconds (``parse_timestamps``): ISO 8601 with any offset, epoch
seconds/ms/µs/ns told apart by magnitude, ``YYYYMMDD`` integers and free text (``Jan 1 2000``);
naive times are taken as UTC. The schedule is a function of the data's clock and the speed only
(``schedule``, ``ReplayClock``), so pause, seek and speed changes are arithmetic, not I/O.
"""

from __future__ import annotations

import gc
import math
import re
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ticker.core.events import Event, News, Tick

__all__ = [
    "DATA_SUFFIXES",
    "LAYOUTS",
    "ROLES",
    "Command",
    "Layout",
    "LoadReport",
    "ReplayClock",
    "ReplayError",
    "Tape",
    "concat",
    "data_files",
    "detect_layout",
    "epoch_to_ms",
    "events_between",
    "load",
    "normalise",
    "parse_columns_option",
    "parse_command",
    "parse_speed",
    "parse_time",
    "parse_timestamps",
    "read_table",
    "schedule",
    "state_rows",
    "symbol_from_filename",
]

Floats = npt.NDArray[np.float64]
Objects = npt.NDArray[np.object_]

LAYOUTS = ("recording", "ticks", "bars", "long", "wide")
ROLES = ("ts", "symbol", "price", "size", "bid", "ask", "volume", "prev_close")
"""Roles a ``columns=role:Name+...`` override may assign."""

DATA_SUFFIXES = (
    ".csv",
    ".csv.gz",
    ".txt",
    ".txt.gz",
    ".tsv",
    ".tsv.gz",
    ".gz",
    ".parquet",
    ".pq",
    ".parq",
    ".arrows",
)
"""What a directory replay reads (``.arrows``: the recorder's journal of an unfinished segment)."""


class ReplayError(ValueError):
    """Data that cannot be replayed: a missing or unreadable file, undetectable columns.

    The message is one line, fit to show a user as it is.
    """


# Column detection (pure)

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
_SIZE = ("size", "qty", "quantity", "trade_size", "last_size", "amount")
_BID = ("bid", "bid_price", "bid_px", "bid_px_00", "best_bid", "bidprice")
_ASK = ("ask", "ask_price", "ask_px", "ask_px_00", "best_ask", "askprice", "offer")
_VOLUME = ("volume", "vol", "cum_volume", "total_volume")
_PREV_CLOSE = ("prev_close", "previous_close", "prevclose")
_RECORDING = {"kind", "ts", "symbol", "price", "headline"}


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


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
    """``"ts:Date+price:Close"`` -> ``{"ts": "Date", "price": "Close"}``. Pure.

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


def detect_layout(
    columns: Sequence[str],
    *,
    numeric: Collection[str] = (),
    overrides: Mapping[str, str] | None = None,
    first_is_time: bool = False,
) -> Layout:
    """Find the layout of a table from its column names. Pure.

    Args:
        columns: the table's column names, in order.
        numeric: the names of the columns that hold numbers (decides ``long`` and ``wide``).
        overrides: role -> column name, taking precedence over detection.
        first_is_time: the first column holds times (used when no column name says so).

    Raises:
        ReplayError: an override names a missing column, there is no time column, or the price
            column is ambiguous. The message lists the columns found.
    """
    cols = [str(c) for c in columns]
    by_norm: dict[str, str] = {}
    for c in cols:
        by_norm.setdefault(_norm(c), c)
    found = ", ".join(cols) or "(none)"
    over = dict(overrides or {})
    for role, name in over.items():
        if name not in cols:
            match = by_norm.get(_norm(name))
            if match is None:
                raise ReplayError(f"columns: no column {name!r}; the table has: {found}")
            over[role] = match

    def pick(cands: Sequence[str]) -> str | None:
        return next((by_norm[c] for c in cands if c in by_norm), None)

    if _RECORDING <= by_norm.keys() and not over:
        return Layout(
            "recording",
            {"ts": by_norm["ts"], "symbol": by_norm["symbol"], "price": by_norm["price"]},
        )

    ts = over.get("ts") or pick(_TS) or (cols[0] if first_is_time and cols else None)
    if ts is None:
        raise ReplayError(
            f"no time column found (looked for date/time/timestamp/ts); "
            f"the table has: {found}; name it with columns=ts:NAME"
        )
    roles: dict[str, str] = {"ts": ts}
    for role, cands in (
        ("symbol", _SYMBOL),
        ("size", _SIZE),
        ("bid", _BID),
        ("ask", _ASK),
        ("volume", _VOLUME),
        ("prev_close", _PREV_CLOSE),
    ):
        col = over.get(role) or pick(cands)
        if col is not None and col != ts:
            roles[role] = col
    close = pick(_CLOSE)
    ohlc = sum(pick(c) is not None for c in (_OPEN, _HIGH, _LOW))
    price = over.get("price") or pick(_PRICE)

    if close is not None and ohlc >= 2:
        kind = "bars"
        roles["price"] = price or close
        # A bar's volume is that bar's, not the session's running total: it replays as size.
        vol = roles.pop("volume", None)
        if vol is not None and "size" not in over:
            roles["size"] = vol
    elif price is not None:
        kind = "ticks"
        roles["price"] = price
    elif "symbol" in roles:
        kind = "long"
        value = close or pick(_VALUE)
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
                f"no price columns found; the table has: {found}; name them with columns=price:NAME"
            )
        used = {ts, *wide}
        return Layout("wide", {"ts": ts}, wide, tuple(c for c in cols if c not in used))
    used = set(roles.values())
    return Layout(kind, roles, (), tuple(c for c in cols if c not in used))


def symbol_from_filename(name: str) -> str:
    """``"aapl.us.csv.gz"`` -> ``"AAPL.US"``: the name without data suffixes, upper case. Pure."""
    base = Path(name).name
    low = base.lower()
    for suffix in (".gz", ".csv", ".txt", ".tsv", ".parquet", ".pq", ".parq", ".arrows"):
        if low.endswith(suffix):
            base, low = base[: -len(suffix)], low[: -len(suffix)]
    return base.strip().upper()


# Timestamps (pure, vectorised)


def epoch_to_ms(x: npt.ArrayLike) -> Floats:
    """Epoch numbers in seconds, ms, µs or ns (told apart by magnitude) -> float ms. Pure.

    Below 1e11 is seconds (up to the year 5138), below 1e14 ms, below 1e17 µs, else ns. Integers
    ``YYYYMMDD`` between 19000101 and 21001231 are dates (as exports like Stooq's write them).
    NaN and infinities give NaN.
    """
    v = np.asarray(x, dtype=np.float64)
    a = np.abs(v)
    out: Floats = np.select([a < 1e11, a < 1e14, a < 1e17], [v * 1e3, v, v / 1e3], v / 1e6)
    out[~np.isfinite(out)] = np.nan
    ymd = (v >= 19000101) & (v <= 21001231) & (v == np.floor(v))
    if ymd.any():
        d = v[ymd].astype(np.int64)
        parts = pd.DataFrame({"year": d // 10000, "month": d // 100 % 100, "day": d % 100})
        dates = pd.to_datetime(parts, errors="coerce", utc=True)
        out[ymd] = _datetimes_to_ms(dates)
    return out


def _datetimes_to_ms(values: pd.Series | pd.DatetimeIndex) -> Floats:
    """tz-aware or naive (taken as UTC) datetimes -> float epoch ms; NaT -> NaN."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    ns = idx.as_unit("ns").asi8
    # Whole ms and the remainder apart: ns since 1970 do not fit a float64 exactly.
    out: Floats = (ns // 1_000_000).astype(np.float64) + (ns % 1_000_000) / 1e6
    out[np.asarray(idx.isna())] = np.nan
    return out


def parse_timestamps(values: pd.Series) -> Floats:
    """A column of times in (almost) any format -> float epoch ms, NaN where unparseable. Pure.

    Numbers are epochs (:func:`epoch_to_ms`); datetimes are converted; strings are tried as
    numbers, then ISO 8601, then free formats (``Jan 1 2000``, ``01/02/2000 13:45``). Naive times
    are UTC.
    """
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
        values.dtype
    ):
        return _datetimes_to_ms(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.full(n, np.nan)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return epoch_to_ms(values.to_numpy(dtype=np.float64, na_value=np.nan))
    out = np.full(n, np.nan)
    text = values.astype("string")
    present = text.notna().to_numpy(dtype=bool)
    if not present.any():
        return out
    # A sample decides the costly passes: strip only padded columns, and try numbers (epochs)
    # only when some values are numbers (``to_numeric`` over a million ISO strings is slow).
    sample = text[present].iloc[:256]
    if bool((sample.str.strip() != sample).any()):
        text = text.str.strip()
        sample = text[present].iloc[:256]
    isnum = np.zeros(n, dtype=bool)
    if bool(pd.to_numeric(sample, errors="coerce").notna().any()):
        nums = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        isnum = present & ~np.isnan(nums)
        out[isnum] = epoch_to_ms(nums[isnum])
    rest = present & ~isnum
    if rest.any():
        iso = pd.to_datetime(text[rest], utc=True, format="ISO8601", errors="coerce")
        out[rest] = _datetimes_to_ms(iso)
        still = rest & np.isnan(out)
        if still.any():
            free = pd.to_datetime(text[still], utc=True, format="mixed", errors="coerce")
            out[still] = _datetimes_to_ms(free)
    return out


def parse_time(text: str) -> float:
    """One time in any format :func:`parse_timestamps` takes -> epoch ms. Pure.

    Raises:
        ReplayError: unparseable.
    """
    ms = float(parse_timestamps(pd.Series([text], dtype=object))[0])
    if math.isnan(ms):
        raise ReplayError(f"{text!r} is not a time (try ISO 8601 or epoch ms)")
    return ms


def parse_speed(text: str) -> float:
    """``"max"`` -> ``inf``; a number in (0, 1e9] -> itself. Pure.

    Raises:
        ReplayError: anything else.
    """
    t = text.strip().lower()
    if t in ("max", "inf", "fastest"):
        return math.inf
    try:
        v = float(t.rstrip("x"))
    except ValueError:
        raise ReplayError(f"speed {text!r} is not a number or 'max'") from None
    if not 0 < v <= 1e9:
        raise ReplayError(f"speed {v:g} is out of range (0, 1e9]; use max for as fast as possible")
    return v


# The tape: a replay's rows as arrays (pure)


def _nan_floats(n: int) -> Floats:
    return np.full(n, np.nan)


def _none_objects(n: int) -> Objects:
    return np.full(n, None, dtype=object)


def _tuples(items: Iterable[tuple[str, ...]]) -> Objects:
    """A 1-d object array of tuples (``np.array`` would make a 2-d array of their items)."""
    return np.fromiter(items, dtype=object)


@dataclass(frozen=True, eq=False)
class Tape:
    """A replay's rows as column arrays, in replay order.

    ``clock`` is non-decreasing (the schedule's time, ms): ``ts`` itself for sorted sources, its
    running maximum for recordings (which keep their ingest order). Optional numbers are NaN when
    absent. News rows have ``is_news`` set and ``symbol`` ``""``.
    """

    ts: Floats
    clock: Floats
    symbol: Objects
    price: Floats
    size: Floats
    bid: Floats
    ask: Floats
    volume: Floats
    prev_close: Floats
    is_news: npt.NDArray[np.bool_] | None = None
    headline: Objects | None = None
    source: Objects | None = None
    url: Objects | None = None
    summary: Objects | None = None
    tags: Objects | None = None
    listed: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Tape:
        e = np.empty(0)
        return cls(e, e, np.empty(0, dtype=object), e, e, e, e, e, e)

    def take(self, idx: npt.NDArray[np.intp] | npt.NDArray[np.bool_] | slice) -> Tape:
        """The rows selected by ``idx`` (indices, a mask or a slice), in that order."""

        def sel(a: Any) -> Any:
            return None if a is None else a[idx]

        return Tape(
            self.ts[idx],
            self.clock[idx],
            self.symbol[idx],
            self.price[idx],
            self.size[idx],
            self.bid[idx],
            self.ask[idx],
            self.volume[idx],
            self.prev_close[idx],
            sel(self.is_news),
            sel(self.headline),
            sel(self.source),
            sel(self.url),
            sel(self.summary),
            sel(self.tags),
            self.listed,
        )

    def symbols(self) -> tuple[str, ...]:
        """Every symbol: recorded listings first, then in order of first tick."""
        ticks = self.symbol if self.is_news is None else self.symbol[~self.is_news]
        seen = pd.unique(pd.Series(ticks, dtype=object)).tolist()
        return tuple(dict.fromkeys([*self.listed, *(str(s) for s in seen)]))

    def select(
        self,
        start: float | None = None,
        end: float | None = None,
        symbols: Collection[str] | None = None,
    ) -> Tape:
        """Rows with ``start <= clock <= end`` and (ticks only) a symbol in ``symbols``.

        Symbols match case-insensitively; news is kept when it is tagged with one of them.
        """
        keep = np.ones(len(self), dtype=bool)
        if start is not None:
            keep &= self.clock >= start
        if end is not None:
            keep &= self.clock <= end
        listed = self.listed
        if symbols is not None:
            wanted = {s.upper() for s in symbols}
            upper = pd.Series(self.symbol, dtype=object).str.upper()
            hit = upper.isin(wanted).to_numpy(dtype=bool, copy=True)
            if self.is_news is not None and self.tags is not None:
                news = self.is_news
                tagged = np.fromiter(
                    (bool(wanted.intersection(s.upper() for s in t)) for t in self.tags[news]),
                    dtype=bool,
                    count=int(news.sum()),
                )
                hit[news] = tagged
            keep &= hit
            listed = tuple(s for s in listed if s.upper() in wanted)
        return replace(self.take(keep), listed=listed)


def concat(tapes: Sequence[Tape], *, keep_order: bool = False) -> Tape:
    """One tape from several, merged in ``clock`` order (stable: ties keep file order). Pure.

    With ``keep_order`` (recordings, in file order) the rows stay in the given order and the
    clock is the running maximum of ``ts`` across all of them: ingest order is the truth.
    """
    tapes = [t for t in tapes if len(t) or t.listed]
    if not tapes:
        return Tape.empty()
    if len(tapes) == 1:
        return tapes[0]
    has_news = any(t.is_news is not None for t in tapes)

    def cat(name: str) -> Any:
        parts = []
        for t in tapes:
            a = getattr(t, name)
            if a is None:
                a = np.zeros(len(t), dtype=bool) if name == "is_news" else _none_objects(len(t))
            parts.append(a)
        return np.concatenate(parts)

    news = ("is_news", "headline", "source", "url", "summary", "tags")
    merged = Tape(
        ts=cat("ts"),
        clock=cat("clock"),
        symbol=cat("symbol"),
        price=cat("price"),
        size=cat("size"),
        bid=cat("bid"),
        ask=cat("ask"),
        volume=cat("volume"),
        prev_close=cat("prev_close"),
        **({f: cat(f) for f in news} if has_news else {}),
        listed=tuple(dict.fromkeys(s for t in tapes for s in t.listed)),
    )
    if keep_order:
        return replace(merged, clock=np.maximum.accumulate(merged.ts))
    if len(merged) > 1 and not bool(np.all(merged.clock[1:] >= merged.clock[:-1])):
        merged = replace(merged.take(np.argsort(merged.clock, kind="stable")), listed=merged.listed)
    return merged


# Normalising a table into a tape (pure)


@dataclass
class _Counts:
    rows: int = 0
    bad: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, k: int) -> None:
        if k:
            self.bad[what] = self.bad.get(what, 0) + int(k)


def _numbers(col: pd.Series) -> Floats:
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        out = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        out = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    out = out.copy()
    out[~np.isfinite(out)] = np.nan
    return out


def _positive_or_nan(a: Floats) -> Floats:
    out = a.copy()
    out[~(out > 0)] = np.nan
    return out


def _non_negative_or_nan(a: Floats) -> Floats:
    out = a.copy()
    out[~(out >= 0)] = np.nan
    return out


def _strings(col: pd.Series) -> Objects:
    """Stripped strings; missing or blank -> None.

    Through the distinct values (``factorize``): symbols repeat, so this strips and allocates
    each once, and the result shares their string objects.
    """
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    u = pd.Series(uniques, dtype=object).astype(str).str.strip()
    table = np.concatenate(
        [u.where(u.str.len() > 0, None).to_numpy(dtype=object), np.array([None], dtype=object)]
    )
    out: Objects = table[codes]  # code -1 (missing) picks the trailing None
    return out


def normalise(
    df: pd.DataFrame, layout: Layout, *, symbol: str | None = None, counts: _Counts | None = None
) -> Tape:
    """One table -> a tape, bad rows dropped and counted in ``counts``. Pure.

    Rows are dropped for an unparseable time (``bad time``), a missing, non-finite or
    non-positive price (``bad price``) or a missing symbol (``no symbol``); empty cells of a wide
    table count as ``empty``.

    Raises:
        ReplayError: the table needs a symbol (no symbol column) and none was given.
    """
    counts = counts if counts is not None else _Counts()
    if layout.kind == "recording":
        return _normalise_recording(df, counts)
    cols = layout.columns
    ts = parse_timestamps(df[cols["ts"]])
    if layout.kind == "wide":
        k = len(layout.wide)
        values = (
            np.column_stack([_numbers(df[c]) for c in layout.wide]) if k else np.empty((len(df), 0))
        )
        counts.rows += values.size
        price = values.ravel()
        ts_all = np.repeat(ts, k)
        syms = np.tile(np.array([str(c).strip() for c in layout.wide], dtype=object), len(df))
        empty = np.isnan(price)
        counts.add("empty", int(empty.sum()))
        bad_time = np.isnan(ts_all) & ~empty
        bad_price = ~empty & ~np.isnan(ts_all) & ~(price > 0)
        counts.add("bad time", int(bad_time.sum()))
        counts.add("bad price", int(bad_price.sum()))
        keep = ~(empty | bad_time | bad_price)
        n = int(keep.sum())
        order = np.argsort(ts_all[keep], kind="stable")
        t = ts_all[keep][order]
        nan = _nan_floats(n)
        return Tape(t, t, syms[keep][order], price[keep][order], nan, nan, nan, nan, nan)

    counts.rows += len(df)
    price = _numbers(df[cols["price"]])
    if "symbol" in cols:
        syms = _strings(df[cols["symbol"]])
    else:
        if not symbol:
            raise ReplayError("this table has no symbol column: give symbol=NAME")
        syms = np.full(len(df), symbol, dtype=object)
    bad_time = np.isnan(ts)
    bad_price = ~bad_time & ~(price > 0)
    no_symbol = ~bad_time & ~bad_price & pd.isna(syms)
    counts.add("bad time", int(bad_time.sum()))
    counts.add("bad price", int(bad_price.sum()))
    counts.add("no symbol", int(no_symbol.sum()))
    keep = ~(bad_time | bad_price | no_symbol)

    def opt(role: str, clean: Any) -> Floats:
        name = cols.get(role)
        if name is None:
            return _nan_floats(int(keep.sum()))
        out: Floats = clean(_numbers(df[name]))[keep]
        return out

    tape = Tape(
        ts[keep],
        ts[keep],
        syms[keep],
        price[keep],
        opt("size", _non_negative_or_nan),
        opt("bid", _positive_or_nan),
        opt("ask", _positive_or_nan),
        opt("volume", _non_negative_or_nan),
        opt("prev_close", _positive_or_nan),
    )
    if len(tape) > 1 and not bool(np.all(tape.ts[1:] >= tape.ts[:-1])):
        tape = tape.take(np.argsort(tape.ts, kind="stable"))
    return tape


def _normalise_recording(df: pd.DataFrame, counts: _Counts) -> Tape:
    """A recorder table: ticks and news keep their ingest order; listings become ``listed``."""
    kind = _strings(df["kind"])
    is_listing = kind == "listing"
    counts.rows += len(df) - int(is_listing.sum())  # a listing is a declaration, not a row
    listed: list[str] = []
    if is_listing.any() and "symbols" in df:
        for syms in df["symbols"].to_numpy(dtype=object)[is_listing]:
            listed.extend(str(s) for s in (syms if syms is not None else ()))
    is_news = kind == "news"
    is_tick = kind == "tick"
    counts.add("unknown kind", int((~(is_news | is_tick | is_listing)).sum()))
    ts = parse_timestamps(df["ts"])
    price = _numbers(df["price"])
    syms = _strings(df["symbol"])
    bad_time = np.isnan(ts) & (is_news | is_tick)
    bad_price = is_tick & ~bad_time & ~(price > 0)
    no_symbol = is_tick & ~bad_time & ~bad_price & pd.isna(syms)

    def text(name: str) -> Objects:
        """A news column, read for the news rows only (None elsewhere)."""
        out = _none_objects(len(df))
        if name in df and is_news.any():
            out[is_news] = _strings(df[name][is_news])
        return out

    headline = text("headline")
    no_headline = is_news & ~bad_time & pd.isna(headline)
    counts.add("bad time", int(bad_time.sum()))
    counts.add("bad price", int(bad_price.sum()))
    counts.add("no symbol", int(no_symbol.sum()))
    counts.add("no headline", int(no_headline.sum()))
    keep = (is_tick & ~(bad_time | bad_price | no_symbol)) | (is_news & ~(bad_time | no_headline))

    def num(name: str, clean: Any) -> Floats:
        out: Floats = (
            clean(_numbers(df[name]))[keep] if name in df else _nan_floats(int(keep.sum()))
        )
        return out

    news = is_news[keep]
    symbol_col = syms[keep]
    symbol_col[news] = ""
    tags = _none_objects(int(keep.sum()))
    if news.any() and "symbols" in df:
        raw = df["symbols"].to_numpy(dtype=object)[keep][news]
        tags[news] = _tuples(tuple(str(s) for s in t) if t is not None else () for t in raw)
    elif news.any():
        tags[news] = _tuples(() for _ in range(int(news.sum())))
    t = ts[keep]
    return Tape(
        t,
        np.maximum.accumulate(t) if len(t) else t,
        symbol_col,
        price[keep],
        num("size", _non_negative_or_nan),
        num("bid", _positive_or_nan),
        num("ask", _positive_or_nan),
        num("volume", _non_negative_or_nan),
        num("prev_close", _positive_or_nan),
        news,
        headline[keep],
        text("source")[keep],
        text("url")[keep],
        text("summary")[keep],
        tags,
        tuple(dict.fromkeys(listed)),
    )


# Events from a tape (pure)


def _optional(a: Floats) -> Iterable[float | None]:
    """NaN -> None, without a Python loop over the values."""
    missing = np.isnan(a)
    if missing.all():
        return repeat(None, len(a))
    if not missing.any():
        return a.tolist()  # type: ignore[no-any-return]
    o = a.astype(object)
    o[missing] = None
    return o.tolist()  # type: ignore[no-any-return]


# Building ticks column-wise. ``Tick`` is a frozen slots dataclass: its generated __init__ sets
# each field through ``object.__setattr__`` (about 1 µs a tick, the replay's main cost). For a
# batch, we allocate the instances and fill each slot for all of them with ``map`` over the slot
# descriptor's setter: C speed, no Python frame per tick, and the very same objects (equal,
# hashable, frozen afterwards). Fields this module does not know get their default; a Tick with
# a __post_init__ (validation) would be built the ordinary way.
_TICK_FIELDS = tuple(f.name for f in fields(Tick))
_TICK_SETTERS = tuple(Tick.__dict__[name].__set__ for name in _TICK_FIELDS)
_TICK_DEFAULTS = {f.name: f.default for f in fields(Tick) if f.default is not MISSING}
_FAST_TICKS = not hasattr(Tick, "__post_init__") and set(_TICK_FIELDS) <= {
    "symbol",
    "price",
    "ts",
    *_TICK_DEFAULTS,
}
_consume = deque[Any](maxlen=0).extend


def _ticks(tape: Tape, i: int, j: int) -> list[Event]:
    n = j - i
    cols: dict[str, Iterable[Any]] = {
        "symbol": tape.symbol[i:j].tolist(),
        "price": tape.price[i:j].tolist(),
        "ts": tape.ts[i:j].tolist(),
        "size": _optional(tape.size[i:j]),
        "bid": _optional(tape.bid[i:j]),
        "ask": _optional(tape.ask[i:j]),
        "volume": _optional(tape.volume[i:j]),
        "prev_close": _optional(tape.prev_close[i:j]),
    }
    if not _FAST_TICKS:
        return [
            Tick(**dict(zip(cols, row, strict=True))) for row in zip(*cols.values(), strict=True)
        ]
    # A batch allocates thousands of objects and creates no reference cycles: the cyclic
    # collector would only rescan them midway (a third of the time). Refcounting still frees.
    collecting = gc.isenabled()
    gc.disable()
    try:
        out: list[Event] = list(map(object.__new__, repeat(Tick, n)))
        for name, setter in zip(_TICK_FIELDS, _TICK_SETTERS, strict=True):
            values = cols[name] if name in cols else repeat(_TICK_DEFAULTS[name], n)
            _consume(map(setter, out, values))
    finally:
        if collecting:
            gc.enable()
    return out


def events_between(tape: Tape, i: int, j: int) -> list[Event]:
    """The events of rows ``i`` to ``j`` (exclusive), in order. Pure.

    Built column-wise (``tolist`` + ``map``); a per-row step happens only for news rows.
    """
    j = min(j, len(tape))
    if i >= j:
        return []
    if tape.is_news is None or not tape.is_news[i:j].any():
        return _ticks(tape, i, j)
    assert tape.headline is not None and tape.source is not None and tape.tags is not None
    assert tape.url is not None and tape.summary is not None
    news = tape.is_news[i:j]
    out: list[Event] = _ticks(tape, i, j)
    for k in np.flatnonzero(news).tolist():
        r = i + k
        out[k] = News(
            headline=str(tape.headline[r]),
            ts=float(tape.ts[r]),
            source=str(tape.source[r] or ""),
            symbols=tuple(tape.tags[r] or ()),
            url=tape.url[r],
            summary=tape.summary[r],
        )
    return out


def state_rows(tape: Tape, position: int) -> npt.NDArray[np.intp]:
    """Indices of the last tick of each symbol before ``position``, ascending. Pure.

    What a seek replays so that every symbol shows its state at the new clock.
    """
    if position <= 0:
        return np.empty(0, dtype=np.intp)
    rows = np.arange(position)
    if tape.is_news is not None:
        rows = rows[~tape.is_news[:position]]
    if not len(rows):
        return rows
    last = pd.Series(rows).groupby(pd.Series(tape.symbol[rows], dtype=object), sort=False).last()
    return np.sort(last.to_numpy(dtype=np.intp))


# The schedule (pure)


def schedule(clock: npt.ArrayLike, speed: float) -> Floats:
    """Wall-clock offsets (seconds from the first row) at which each row is due. Pure.

    ``clock`` is the rows' market time in ms, non-decreasing; ``speed`` is market seconds per
    wall second (``inf`` = all at once). Order and relative timing are kept, scaled by ``speed``.
    """
    c = np.asarray(clock, dtype=np.float64)
    if not len(c) or math.isinf(speed):
        return np.zeros(len(c))
    out: Floats = (c - c[0]) / (1000.0 * speed)
    return out


State = Literal["playing", "paused", "finished"]


class ReplayClock:
    """Where a replay is: position in the tape, market clock, state and speed.

    Sans-I/O: callers pass ``now`` (``loop.time()``, seconds); nothing here sleeps. While playing,
    the market clock runs at ``speed`` market seconds per wall second from an anchor, and the rows
    due are those whose clock is at or before it (:meth:`due`); the caller emits them and calls
    :meth:`advance`. Pausing stops the clock; seeking moves it; changing speed re-anchors it.

    Args:
        times: the tape's ``clock`` (ms, non-decreasing).
        speed: market seconds per wall second; ``inf`` is as fast as the consumer takes rows.
        now: the current time.
    """

    def __init__(self, times: Floats, speed: float, now: float) -> None:
        self.times = times
        self.speed = speed
        self.position = 0
        self.state: State = "playing" if len(times) else "finished"
        self._anchor_market = float(times[0]) if len(times) else 0.0
        self._anchor_wall = now

    # Queries

    @property
    def start(self) -> float | None:
        """Market time of the first row (ms), None for an empty tape."""
        return float(self.times[0]) if len(self.times) else None

    @property
    def end(self) -> float | None:
        """Market time of the last row (ms), None for an empty tape."""
        return float(self.times[-1]) if len(self.times) else None

    def market_time(self, now: float) -> float:
        """The market clock (ms) at ``now``: where the replay is in the data's time."""
        if self.state == "playing" and not math.isinf(self.speed) and len(self.times):
            t = self._anchor_market + (now - self._anchor_wall) * self.speed * 1000.0
            return min(t, float(self.times[-1]))
        return self._anchor_market

    def due(self, now: float) -> int:
        """Rows ``position`` up to this index (exclusive) are due at ``now``."""
        if self.state != "playing":
            return self.position
        if math.isinf(self.speed):
            return len(self.times)
        due = int(np.searchsorted(self.times, self.market_time(now), side="right"))
        return max(due, self.position)

    def next_deadline(self) -> float | None:
        """When the next row falls due (``now`` units); None when paused or finished."""
        if self.state != "playing" or self.position >= len(self.times):
            return None
        if math.isinf(self.speed):
            return self._anchor_wall
        gap = float(self.times[self.position]) - self._anchor_market
        return self._anchor_wall + max(0.0, gap) / (self.speed * 1000.0)

    # Commands

    def advance(self, to: int) -> None:
        """Rows before ``to`` have been emitted."""
        n = len(self.times)
        self.position = min(max(to, self.position), n)
        if math.isinf(self.speed) and self.position:
            self._anchor_market = float(self.times[self.position - 1])
        if self.position >= n:
            self.state = "finished"
            self._anchor_market = float(self.times[-1]) if n else 0.0

    def pause(self, now: float) -> None:
        """Stop the clock where it is (no-op unless playing)."""
        if self.state == "playing":
            self._anchor_market = self.market_time(now)
            self.state = "paused"

    def resume(self, now: float) -> None:
        """Run the clock again from where it stopped; a finished replay starts over."""
        if self.state == "finished":
            self.restart(now)
        elif self.state == "paused":
            self._anchor_wall = now
            self.state = "playing"

    def restart(self, now: float) -> None:
        """Back to the first row, playing."""
        if len(self.times):
            self.position = 0
            self._anchor_market = float(self.times[0])
            self._anchor_wall = now
            self.state = "playing"

    def seek(self, to: float, now: float) -> int:
        """Move the market clock to ``to`` (ms, clamped to the data); returns the new position.

        Rows at or before ``to`` count as past. Playing or paused stays so; a finished replay
        plays again unless the seek is to its end.
        """
        n = len(self.times)
        if not n:
            return 0
        t = min(max(float(to), float(self.times[0])), float(self.times[-1]))
        self.position = int(np.searchsorted(self.times, t, side="right"))
        self._anchor_market = t
        self._anchor_wall = now
        if self.position >= n:
            self.state = "finished"
        elif self.state == "finished":
            self.state = "playing"
        return self.position

    def set_speed(self, speed: float, now: float) -> None:
        """Change speed from now on, the market clock continuing from where it is."""
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self._anchor_market = self.market_time(now)
        if math.isinf(self.speed) and self.position and self.state == "playing":
            self._anchor_market = float(self.times[self.position - 1])
        self._anchor_wall = now
        self.speed = speed


# Control commands (pure)


@dataclass(frozen=True, slots=True)
class Command:
    """A replay control request (``POST /api/replay``).

    Args:
        action: ``pause``, ``resume``, ``seek`` or ``speed``.
        to: for ``seek``, the market time in epoch ms.
        speed: for ``speed``, market seconds per wall second (``inf`` = max).
        feed: the replay feed's name; None for every replay feed.
    """

    action: Literal["pause", "resume", "seek", "speed"]
    to: float | None = None
    speed: float | None = None
    feed: str | None = None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def parse_command(body: Any) -> Command:
    """A decoded JSON body -> :class:`Command`. Pure.

    Raises:
        ReplayError: not an object, an unknown action, a missing or bad ``to``/``speed``/``feed``.
    """
    if not isinstance(body, dict):
        raise ReplayError("body must be a JSON object")
    action = body.get("action")
    feed = body.get("feed")
    if feed is not None and not isinstance(feed, str):
        raise ReplayError("'feed' must be a string")
    if action in ("pause", "resume"):
        return Command(action, feed=feed)
    if action == "seek":
        to = _number(body.get("to"))
        if to is None:
            raise ReplayError("seek needs 'to': a market time in epoch ms")
        return Command("seek", to=to, feed=feed)
    if action == "speed":
        raw = body.get("speed")
        speed = math.inf if raw == "max" else _number(raw)
        if speed is None or not (0 < speed <= 1e9 or speed == math.inf):
            raise ReplayError("speed needs 'speed': a number in (0, 1e9] or \"max\"")
        return Command("speed", speed=speed, feed=feed)
    raise ReplayError("'action' must be one of pause, resume, seek, speed")


# Reading files (I/O shell)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load found: sizes, layouts and the bad rows it skipped (category -> count)."""

    files: int
    rows: int
    events: int
    layouts: tuple[str, ...]
    symbols: int
    bad: Mapping[str, int]
    ignored: tuple[str, ...] = ()
    start: float | None = None
    end: float | None = None

    @property
    def skipped(self) -> int:
        return sum(v for k, v in self.bad.items() if k != "empty")

    def summary(self) -> str:
        """One line for logs and the CLI."""

        def when(ms: float | None) -> str:
            if ms is None:
                return "-"
            return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%SZ")

        s = (
            f"replay: {self.files} file{'s' if self.files != 1 else ''} "
            f"({', '.join(self.layouts) or 'no data'}), {self.rows:,} rows -> "
            f"{self.events:,} events, {self.symbols:,} symbol{'s' if self.symbols != 1 else ''}"
        )
        if self.events:
            s += f", {when(self.start)} .. {when(self.end)}"
        bad = {k: v for k, v in self.bad.items() if v}
        if bad:
            detail = ", ".join(f"{v:,} {k}" for k, v in sorted(bad.items()))
            s += f"; skipped {self.skipped:,} bad rows ({detail})"
        if self.ignored:
            names = ", ".join(self.ignored[:4]) + (", ..." if len(self.ignored) > 4 else "")
            s += f"; ignored {len(self.ignored)} columns ({names})"
        return s


def data_files(path: Path) -> list[Path]:
    """The files a replay of ``path`` reads: the file itself, or a directory's data files by name.

    Raises:
        ReplayError: missing, or a directory with no data files.
    """
    if not path.exists():
        raise ReplayError(f"no such file or directory: {path}")
    if not path.is_dir():
        return [path]
    try:
        entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from None
    files = [p for p in entries if p.name.lower().endswith(DATA_SUFFIXES)]
    # A journal beside its finished Parquet segment was already converted (crash mid-rotation).
    parquet = {p.name[: -len(".parquet")] for p in files if p.name.endswith(".parquet")}
    files = [
        p
        for p in files
        if not (p.name.endswith(".arrows") and p.name[: -len(".arrows")] in parquet)
    ]
    if not files:
        raise ReplayError(f"no data files (.csv, .csv.gz, .parquet) in {path}")
    return files


def read_table(path: Path, *, nrows: int | None = None) -> tuple[pd.DataFrame, int]:
    """Read one CSV (plain or gzipped), Parquet or recorder journal; (table, malformed lines).

    Malformed CSV lines (more fields than the header) are skipped and counted. I/O shell.

    Raises:
        ReplayError: missing, unreadable, empty or not a table.
    """
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq", ".parq")):
            import pyarrow.parquet as pq

            if nrows is not None:
                with pq.ParquetFile(path) as pf:
                    first = next(pf.iter_batches(batch_size=nrows), None)
                    table = pf.schema_arrow.empty_table() if first is None else first
                return table.to_pandas(), 0
            return pq.read_table(path).to_pandas(), 0
        if name.endswith(".arrows"):
            from ticker.store.recorder import read_journal

            return read_journal(path).to_pandas(), 0
        return _read_csv(path, nrows)
    except ReplayError:
        raise
    except FileNotFoundError:
        raise ReplayError(f"no such file: {path}") from None
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReplayError(f"cannot read {path}: {reason}") from None
    except pd.errors.EmptyDataError:
        raise ReplayError(f"cannot read {path}: the file is empty") from None
    except Exception as exc:  # pyarrow and the CSV parser raise many types for a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReplayError(f"cannot read {path}: {first}") from None


def _read_csv(path: Path, nrows: int | None) -> tuple[pd.DataFrame, int]:
    name = path.name.lower()
    sep = "\t" if ".tsv" in name else ","
    kw: dict[str, Any] = {
        "sep": sep,
        "nrows": nrows,
        "skipinitialspace": True,
        "compression": "infer",
    }
    for encoding in ("utf-8", "latin-1"):
        try:
            try:
                return pd.read_csv(path, encoding=encoding, **kw), 0
            except pd.errors.ParserError:
                # Lines with too many fields: the slow parser skips and counts them.
                bad: list[int] = []
                df = pd.read_csv(
                    path,
                    encoding=encoding,
                    engine="python",
                    on_bad_lines=lambda line, bad=bad: bad.append(len(line)),
                    **kw,
                )
                return df, len(bad)
        except UnicodeDecodeError:
            continue
    raise ReplayError(f"cannot read {path}: unknown text encoding")


def _numeric_names(df: pd.DataFrame) -> set[str]:
    """Columns that hold numbers (at least half of a sample's non-empty cells)."""
    sample = df.head(1000)
    out: set[str] = set()
    for c in sample.columns:
        col = sample[c]
        if pd.api.types.is_bool_dtype(col.dtype):
            continue
        if pd.api.types.is_numeric_dtype(col.dtype):
            out.add(str(c))
            continue
        if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            present = col.notna().sum()
            if present and pd.to_numeric(col, errors="coerce").notna().sum() * 2 >= present:
                out.add(str(c))
    return out


def _layout_of(df: pd.DataFrame, overrides: Mapping[str, str] | None) -> Layout:
    first_is_time = False
    if len(df.columns):
        head = df.iloc[:100, 0]
        parsed = parse_timestamps(head)
        first_is_time = bool(len(head)) and bool(np.mean(~np.isnan(parsed)) >= 0.9)
        if pd.api.types.is_numeric_dtype(head.dtype):
            first_is_time = False  # a number column is more likely a price than a time
    return detect_layout(
        [str(c) for c in df.columns],
        numeric=_numeric_names(df),
        overrides=overrides,
        first_is_time=first_is_time,
    )


def load(
    path: Path,
    *,
    columns: Mapping[str, str] | None = None,
    symbol: str | None = None,
    probe: bool = False,
) -> tuple[Tape, LoadReport]:
    """Read ``path`` (a file or a directory of them) into one tape, bad rows skipped and counted.

    Args:
        path: a data file or a directory of data files (read in name order, merged by time).
        columns: role -> column overrides (:func:`parse_columns_option`).
        symbol: the symbol for tables without a symbol column (default: from the file name).
        probe: read only the first rows of each file (a quick check of readability and layout).

    Raises:
        ReplayError: missing or unreadable file, or columns that cannot be detected.
    """
    files = data_files(path)
    tapes: list[Tape] = []
    counts = _Counts()
    layouts: list[str] = []
    ignored: list[str] = []
    for f in files:
        df, malformed = read_table(f, nrows=200 if probe else None)
        counts.rows += malformed
        counts.add("malformed", malformed)
        df.columns = [str(c).strip() for c in df.columns]
        try:
            layout = _layout_of(df, columns)
            tape = normalise(
                df, layout, symbol=symbol or symbol_from_filename(f.name), counts=counts
            )
        except ReplayError as exc:
            raise ReplayError(f"{f}: {exc}") from None
        except Exception as exc:  # data we did not foresee: still one line, never a traceback
            raise ReplayError(f"{f}: cannot interpret: {type(exc).__name__}: {exc}") from exc
        layouts.append(layout.kind)
        ignored.extend(layout.ignored)
        tapes.append(tape)
    tape = concat(tapes, keep_order=bool(layouts) and set(layouts) == {"recording"})
    report = LoadReport(
        files=len(files),
        rows=counts.rows,
        events=len(tape),
        layouts=tuple(dict.fromkeys(layouts)),
        symbols=len(tape.symbols()),
        bad=dict(counts.bad),
        ignored=tuple(dict.fromkeys(ignored)),
        start=float(tape.clock[0]) if len(tape) else None,
        end=float(tape.clock[-1]) if len(tape) else None,
    )
    return tape, report

"""Pure; no I/O. Normalising: a table (a pandas DataFrame) -> its layout and a tape.

Needs pandas: it works on DataFrames, vectorised (nothing loops over rows in Python). Bad rows
are dropped and counted by category in a :class:`RowCounts`.

OHLCV bars become bar rows of one interval per symbol: the one given (``interval=``), else the
one their spacing shows (:func:`bar_interval`). A bar's ``ts`` is its open time, a multiple of its
interval: a daily bar is put at UTC midnight of its *local* calendar date (``2019-01-04
00:00+09:00`` -> ``2019-01-04T00:00Z``); an intraday bar keeps its instant, floored to the
interval when it is not aligned (counted), and bars that then share a start are merged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from ticker.core.bars import INTERVALS, IntervalError, interval_ms
from ticker.replay.columns import Layout, detect_layout
from ticker.replay.errors import ReplayError
from ticker.replay.tape import DAY_MS, Floats, Objects, Tape, nan_floats, none_objects
from ticker.replay.times import local_offsets, parse_timestamps

__all__ = ["RowCounts", "bar_interval", "normalise", "table_layout"]

Bools = npt.NDArray[np.bool_]


@dataclass
class RowCounts:
    """Rows read, and the bad rows dropped per category (``bad time``, ``bad price``...).

    Args:
        rows: the rows read (every cell of a wide table; listings of a recording excluded).
        bad: category -> rows dropped; ``empty`` counts the empty cells of a wide table.
    """

    rows: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    adjusted: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, k: int) -> None:
        """Count ``k`` more bad rows of category ``what`` (a zero adds no category)."""
        if k:
            self.bad[what] = self.bad.get(what, 0) + int(k)

    def note(self, what: str, k: int) -> None:
        """Count ``k`` more rows kept but changed (``floored to the interval``, ``merged``)."""
        if k:
            self.adjusted[what] = self.adjusted.get(what, 0) + int(k)


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


def table_layout(df: pd.DataFrame, overrides: Mapping[str, str] | None = None) -> Layout:
    """Find the layout of a table from its column names and a sample of its values.

    Args:
        df: the table.
        overrides: role -> column name, taking precedence over detection.

    Returns:
        The layout (:func:`~ticker.replay.columns.detect_layout`).

    Raises:
        ReplayError: as :func:`~ticker.replay.columns.detect_layout`.
    """
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


# Cleaning columns


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
    """Stripped strings; missing or blank -> None."""
    # Through the distinct values (``factorize``): symbols repeat, so this strips and allocates
    # each once, and the result shares their string objects.
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    u = pd.Series(uniques, dtype=object).astype(str).str.strip()
    table = np.concatenate(
        [u.where(u.str.len() > 0, None).to_numpy(dtype=object), np.array([None], dtype=object)]
    )
    out: Objects = table[codes]  # code -1 (missing) picks the trailing None
    return out


def _tuples(items: Iterable[tuple[str, ...]]) -> Objects:
    """A 1-d object array of tuples (``np.array`` would make a 2-d array of their items)."""
    return np.fromiter(items, dtype=object)


# The optional numbers of a tick, in Tape field order, each with what makes a value valid.
_EXTRAS: tuple[tuple[str, Callable[[Floats], Floats]], ...] = (
    ("size", _non_negative_or_nan),
    ("bid", _positive_or_nan),
    ("ask", _positive_or_nan),
    ("volume", _non_negative_or_nan),
    ("prev_close", _positive_or_nan),
)


def _extras(
    df: pd.DataFrame, columns: Mapping[str, str], keep: Bools
) -> tuple[Floats, Floats, Floats, Floats, Floats]:
    """Size, bid, ask, volume and prev_close of the kept rows; NaN where invalid or absent."""
    n = int(keep.sum())
    size, bid, ask, volume, prev_close = (
        clean(_numbers(df[columns[role]]))[keep] if role in columns else nan_floats(n)
        for role, clean in _EXTRAS
    )
    return size, bid, ask, volume, prev_close


def _good_ticks(counts: RowCounts, ts: Floats, price: Floats, syms: Objects, ticks: Bools) -> Bools:
    """The rows of ``ticks`` with a time, a positive price and a symbol; the others counted."""
    bad_time = ticks & np.isnan(ts)
    bad_price = ticks & ~bad_time & ~(price > 0)
    no_symbol = ticks & ~bad_time & ~bad_price & pd.isna(syms)
    counts.add("bad time", int(bad_time.sum()))
    counts.add("bad price", int(bad_price.sum()))
    counts.add("no symbol", int(no_symbol.sum()))
    keep: Bools = ticks & ~(bad_time | bad_price | no_symbol)
    return keep


# Tables -> tapes


def normalise(
    df: pd.DataFrame,
    layout: Layout,
    *,
    symbol: str | None = None,
    counts: RowCounts | None = None,
    interval: str | None = None,
) -> Tape:
    """One table -> a tape in time order (a recording: in ingest order), bad rows dropped.

    Rows are dropped for an unparseable time (``bad time``), a missing, non-finite or
    non-positive price (``bad price``) or a missing symbol (``no symbol``); empty cells of a wide
    table count as ``empty``.

    Args:
        df: the table.
        layout: its layout (:func:`table_layout`).
        symbol: the symbol of every row, for a table without a symbol column.
        counts: where the rows read and dropped are counted.
        interval: the interval of a bars table's rows (default: from their spacing).

    Returns:
        The tape.

    Raises:
        ReplayError: the table needs a symbol (no symbol column) and none was given, or the
            spacing of its bars is not an interval (and none was given).
    """
    counts = counts if counts is not None else RowCounts()
    if layout.kind == "recording":
        return _normalise_recording(df, counts)
    ts = parse_timestamps(df[layout.columns["ts"]])
    if layout.kind == "wide":
        return _normalise_wide(df, layout.wide, ts, counts)
    cols = layout.columns
    counts.rows += len(df)
    price = _numbers(df[cols["price"]])
    if "symbol" in cols:
        syms = _strings(df[cols["symbol"]])
    else:
        if not symbol:
            raise ReplayError("this table has no symbol column: give symbol=NAME")
        syms = np.full(len(df), symbol, dtype=object)
    keep = _good_ticks(counts, ts, price, syms, np.ones(len(df), dtype=bool))
    if layout.kind == "bars" and {"open", "high", "low"} <= cols.keys():
        return _normalise_bars(df, cols, ts, price, syms, keep, counts, interval)
    t = ts[keep]
    tape = Tape(t, t, syms[keep], price[keep], *_extras(df, cols, keep))
    if len(tape) > 1 and not bool(np.all(tape.ts[1:] >= tape.ts[:-1])):
        tape = tape.take(np.argsort(tape.ts, kind="stable"))
    return tape


def _normalise_bars(
    df: pd.DataFrame,
    cols: Mapping[str, str],
    ts: Floats,
    close: Floats,
    syms: Objects,
    keep: Bools,
    counts: RowCounts,
    interval: str | None,
) -> Tape:
    """The good rows of an OHLCV table -> bar rows, aligned to their interval, by time."""
    o, h, lo = (_numbers(df[cols[k]]) for k in ("open", "high", "low"))
    with np.errstate(invalid="ignore"):
        whole = (o > 0) & (h > 0) & (lo > 0)
        whole &= (lo <= np.minimum(o, close)) & (h >= np.maximum(o, close))
    counts.add("bad bar", int((keep & ~whole).sum()))
    keep = keep & whole
    vol = _non_negative_or_nan(_numbers(df[cols["size"]])) if "size" in cols else None
    utc = ts[keep]
    local = utc + local_offsets(df[cols["ts"]])[keep]
    sym = syms[keep]
    codes, uniques = pd.factorize(pd.Series(sym, dtype=object))
    if interval is not None:
        widths = np.full(len(utc), float(_width(interval)))
    else:
        per = _bar_widths(codes, local, [str(u) for u in uniques])
        widths = per[codes] if len(codes) else np.empty(0)
    # A daily bar is its local calendar date; an intraday bar its instant.
    base = np.where(widths == DAY_MS, local, utc)
    start = base - base % widths
    counts.note("floored to the interval", int((start != base).sum()))
    cols_out = [
        o[keep],
        h[keep],
        lo[keep],
        close[keep],
        vol[keep] if vol is not None else nan_floats(len(utc)),
    ]
    order = np.lexsort((base, start, codes))
    start, widths, codes = start[order], widths[order], codes[order]
    op, hi, low, cl, vo = (a[order] for a in cols_out)
    dup = np.zeros(len(start), dtype=bool)
    dup[1:] = (codes[1:] == codes[:-1]) & (start[1:] == start[:-1])
    if dup.any():  # bars that share a start after flooring (or given twice): one bar
        counts.note("merged", int(dup.sum()))
        firsts = np.flatnonzero(~dup)
        lasts = np.append(firsts[1:], len(start)) - 1
        hi = np.maximum.reduceat(hi, firsts)
        low = np.minimum.reduceat(low, firsts)
        given = np.add.reduceat((~np.isnan(vo)).astype(np.int64), firsts)
        vo = np.where(given > 0, np.add.reduceat(np.nan_to_num(vo), firsts), np.nan)
        op, cl = op[firsts], cl[lasts]
        start, widths, codes = start[firsts], widths[firsts], codes[firsts]
    by_time = np.argsort(start, kind="stable")
    t = start[by_time]
    n = len(t)
    nan = nan_floats(n)
    return Tape(
        t,
        t,
        np.asarray(uniques, dtype=object)[codes[by_time]] if n else np.empty(0, dtype=object),
        cl[by_time],
        vo[by_time],
        nan,
        nan,
        nan,
        nan,
        interval=widths[by_time],
        open=op[by_time],
        high=hi[by_time],
        low=low[by_time],
    )


_WIDTHS = frozenset(float(w) for w in INTERVALS.values())


def _width(name: str) -> int:
    try:
        return interval_ms(name)
    except IntervalError as exc:
        raise ReplayError(f"interval: {exc}") from None


def _span(ms: float) -> str:
    """``90000.0`` -> ``"1m30s"``: a gap as people write it."""
    out, rest = [], round(ms)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not out:
        out.append(f"{rest}ms")
    return "".join(out)


def bar_interval(times: Floats, *, symbol: str = "") -> int:
    """The interval of one symbol's bars from their spacing: its width in ms.

    The smallest positive gap between consecutive distinct times that is frequent (at least a
    tenth of the gaps): 1m bars are 60 s apart, however many minutes a thinly traded symbol skips;
    daily bars are a day apart, weekends aside; a stray row off the grid is not frequent. It must
    be an interval. A single bar: the widest interval its time is a multiple of.

    Args:
        times: the bars' times, ms (a daily file's local dates as UTC midnights), any order.
        symbol: named in the error.

    Returns:
        A width of :data:`ticker.core.bars.INTERVALS`.

    Raises:
        ReplayError: that gap is not an interval; the message suggests ``interval=``.
    """
    t = np.unique(times[~np.isnan(times)])
    gaps = np.round(np.diff(t))
    gaps = gaps[gaps > 0]
    if not len(gaps):
        t0 = float(t[0]) if len(t) else 0.0
        return max((w for w in INTERVALS.values() if t0 % w == 0), default=INTERVALS["1s"])
    values, n = np.unique(gaps, return_counts=True)
    g = float(values[n >= max(1.0, 0.1 * float(n.sum()))][0])
    if g in _WIDTHS:
        return int(g)
    of = f" of {symbol}" if symbol else ""
    raise ReplayError(
        f"bars{of} are {_span(g)} apart, which is not an interval "
        f"({' '.join(INTERVALS)}): give one with interval=NAME"
    )


def _bar_widths(codes: npt.NDArray[np.intp], local: Floats, names: list[str]) -> Floats:
    """Each symbol's bar width (by code): from its own spacing; a symbol with a single bar takes
    the most common width of the others."""
    out = np.zeros(len(names))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    by_symbol = [local[order[bounds[k] : bounds[k + 1]]] for k in range(len(names))]
    single: list[int] = []
    for k, (name, mine) in enumerate(zip(names, by_symbol, strict=True)):
        if len(np.unique(mine)) < 2:
            single.append(k)
            continue
        out[k] = bar_interval(mine, symbol=name)
    if single:
        found = out[out > 0]
        common = float(pd.Series(found).mode().min()) if len(found) else 0.0
        for k in single:
            out[k] = common or bar_interval(by_symbol[k], symbol=names[k])
    return out


def _normalise_wide(
    df: pd.DataFrame, columns: tuple[str, ...], ts: Floats, counts: RowCounts
) -> Tape:
    """A wide table (one price column per symbol) -> one tick per non-empty cell, by time."""
    k = len(columns)
    values = np.column_stack([_numbers(df[c]) for c in columns]) if k else np.empty((len(df), 0))
    counts.rows += values.size
    price = values.ravel()
    ts_all = np.repeat(ts, k)
    syms = np.tile(np.array([str(c).strip() for c in columns], dtype=object), len(df))
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
    nan = nan_floats(n)
    return Tape(t, t, syms[keep][order], price[keep][order], nan, nan, nan, nan, nan)


def _normalise_recording(df: pd.DataFrame, counts: RowCounts) -> Tape:
    """A recorder table: ticks and news keep their ingest order; listings become ``listed``."""
    kind = _strings(df["kind"])
    is_listing = kind == "listing"
    is_news = kind == "news"
    is_tick = kind == "tick"
    is_bar = kind == "bar"
    is_reset = kind == "reset"
    counts.rows += len(df) - int(is_listing.sum())  # a listing is a declaration, not a row
    counts.add("unknown kind", int((~(is_news | is_tick | is_listing | is_bar | is_reset)).sum()))
    # A recorded reset marks a seek of the replay that was recorded; this replay seeks its own.
    counts.note("resets not replayed", int(is_reset.sum()))
    ts = parse_timestamps(df["ts"])
    price = _numbers(df["price"])
    syms = _strings(df["symbol"])
    bars = _recorded_bars(df, is_bar)
    if bars is not None:
        price = np.where(is_bar, bars[3], price)
    keep = _good_ticks(counts, ts, price, syms, is_tick | is_bar)
    if bars is not None:
        o, h, lo, c, width = bars
        with np.errstate(invalid="ignore"):
            whole = (o > 0) & (h > 0) & (lo > 0) & (width > 0)
            whole &= (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c)) & (ts % width == 0)
        bad = keep & is_bar & ~whole
        counts.add("bad bar", int(bad.sum()))
        keep &= ~bad
    headline = _news_text(df, "headline", is_news)
    bad_time = is_news & np.isnan(ts)
    no_headline = is_news & ~bad_time & pd.isna(headline)
    counts.add("bad time", int(bad_time.sum()))
    counts.add("no headline", int(no_headline.sum()))
    keep |= is_news & ~(bad_time | no_headline)

    news = is_news[keep]
    symbol = syms[keep]
    symbol[news] = ""
    t = ts[keep]
    size, bid, ask, volume, prev_close = _extras(
        df, {role: role for role, _ in _EXTRAS if role in df}, keep
    )
    bar_fields: dict[str, Floats] = {}
    if bars is not None and (is_bar & keep).any():
        bar = is_bar[keep]
        size = np.where(bar, volume, size)  # a bar's volume is its own: the tape's size
        volume = np.where(bar, np.nan, volume)
        o, h, lo, _, width = (a[keep] for a in bars)
        bar_fields = {
            "interval": np.where(bar, width, np.nan),
            "open": np.where(bar, o, np.nan),
            "high": np.where(bar, h, np.nan),
            "low": np.where(bar, lo, np.nan),
        }
    return Tape(
        t,
        np.maximum.accumulate(t) if len(t) else t,
        symbol,
        price[keep],
        size,
        bid,
        ask,
        volume,
        prev_close,
        is_news=news,
        headline=headline[keep],
        source=_news_text(df, "source", is_news)[keep],
        url=_news_text(df, "url", is_news)[keep],
        summary=_news_text(df, "summary", is_news)[keep],
        tags=_news_tags(df, keep, news),
        listed=_listed(df, is_listing),
        **bar_fields,
    )


def _recorded_bars(
    df: pd.DataFrame, is_bar: Bools
) -> tuple[Floats, Floats, Floats, Floats, Floats] | None:
    """Open, high, low, close and width (ms; NaN for an unknown interval) of a recording's rows;
    None without bar rows."""
    if not is_bar.any() or not {"open", "high", "low", "close", "interval"} <= set(df.columns):
        return None
    widths = {k: float(v) for k, v in INTERVALS.items()}
    width = np.asarray(
        pd.Series(df["interval"], dtype=object).map(widths).to_numpy(na_value=np.nan),
        dtype=np.float64,
    )
    o, h, lo, c = (_numbers(df[k]) for k in ("open", "high", "low", "close"))
    return o, h, lo, c, width


def _news_text(df: pd.DataFrame, name: str, is_news: Bools) -> Objects:
    """A news column of a recording, read for the news rows only (None elsewhere)."""
    out = none_objects(len(df))
    if name in df and is_news.any():
        out[is_news] = _strings(df[name][is_news])
    return out


def _news_tags(df: pd.DataFrame, keep: Bools, news: Bools) -> Objects:
    """The symbols each kept news row is tagged with (a tuple; None for ticks)."""
    tags = none_objects(int(keep.sum()))
    if news.any() and "symbols" in df:
        raw = df["symbols"].to_numpy(dtype=object)[keep][news]
        tags[news] = _tuples(tuple(str(s) for s in t) if t is not None else () for t in raw)
    elif news.any():
        tags[news] = _tuples(() for _ in range(int(news.sum())))
    return tags


def _listed(df: pd.DataFrame, is_listing: Bools) -> tuple[str, ...]:
    """The symbols a recording's listing rows declare, in order, each once."""
    listed: list[str] = []
    if is_listing.any() and "symbols" in df:
        for syms in df["symbols"].to_numpy(dtype=object)[is_listing]:
            listed.extend(str(s) for s in (syms if syms is not None else ()))
    return tuple(dict.fromkeys(listed))

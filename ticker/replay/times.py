"""Pure; no I/O. Time parsing: a column of times in (almost) any format -> float epoch ms.

Needs pandas (its date parsers, vectorised over a Series). ISO 8601 with any offset, epoch
seconds/ms/µs/ns told apart by magnitude, ``YYYYMMDD`` integers and free text (``Jan 1 2000``);
naive times are taken as UTC.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from ticker.replay.errors import ReplayError

__all__ = ["epoch_to_ms", "local_offsets", "parse_time", "parse_timestamps"]

Floats = npt.NDArray[np.float64]


def epoch_to_ms(x: npt.ArrayLike) -> Floats:
    """Epoch numbers in seconds, ms, µs or ns (told apart by magnitude) -> float ms.

    Below 1e11 is seconds (up to the year 5138), below 1e14 ms, below 1e17 µs, else ns. Integers
    ``YYYYMMDD`` between 19000101 and 21001231 are dates (as exports like Stooq's write them).

    Args:
        x: numbers, any array-like.

    Returns:
        Epoch ms as floats; NaN for NaN and infinities.
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
    """A column of times in (almost) any format -> float epoch ms.

    Numbers are epochs (:func:`epoch_to_ms`); datetimes are converted; strings are tried as
    numbers, then ISO 8601, then free formats (``Jan 1 2000``, ``01/02/2000 13:45``). Naive times
    are UTC.

    Args:
        values: the column.

    Returns:
        Epoch ms as floats, NaN where a value is missing or unparseable.
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


# A UTC offset after a time of day: "09:30:00-04:00", "00:00+0900", "12:00Z", "12:00 UTC".
_OFFSET = r"\d:\d{2}(?::\d{2}(?:\.\d*)?)?\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)\s*$"


def local_offsets(values: pd.Series) -> Floats:
    """The UTC offset (ms) each time was written with: add it to :func:`parse_timestamps` for the
    local wall clock (``2019-01-04 00:00+09:00`` -> 9 h: local midnight of 2019-01-04).

    Naive times, epochs and unparseable values have offset 0.

    Args:
        values: the column, as given to :func:`parse_timestamps`.

    Returns:
        Offsets in ms, one per value.
    """
    n = len(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        local = _datetimes_to_ms(values.dt.tz_localize(None))
        out: Floats = local - _datetimes_to_ms(values)
        out[np.isnan(out)] = 0.0
        return out
    if (
        n == 0
        or pd.api.types.is_numeric_dtype(values.dtype)
        or (pd.api.types.is_datetime64_any_dtype(values.dtype))
    ):
        return np.zeros(n)
    found = values.astype("string").str.extract(_OFFSET, expand=False)
    text = found.fillna("").str.replace(":", "", regex=False)
    sign = np.where(text.str.startswith("-").to_numpy(dtype=bool), -1.0, 1.0)
    digits = text.str.slice(1)
    hours = pd.to_numeric(digits.str.slice(0, 2), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    minutes = pd.to_numeric(digits.str.slice(2, 4), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    out = sign * (np.nan_to_num(hours) * 60.0 + np.nan_to_num(minutes)) * 60_000.0
    return out


def parse_time(text: str) -> float:
    """One time in any format :func:`parse_timestamps` takes -> epoch ms.

    Args:
        text: the time, e.g. ``"2019-11-06"`` or ``"1573000000000"``.

    Returns:
        Epoch ms.

    Raises:
        ReplayError: unparseable.
    """
    ms = float(parse_timestamps(pd.Series([text], dtype=object))[0])
    if math.isnan(ms):
        raise ReplayError(f"{text!r} is not a time (try ISO 8601 or epoch ms)")
    return ms

"""Bar timeframes the project knows, and how to recognise one from a bar index.

One small table ties the config's ``timeframe`` strings (``configs.schema.DataConfig``) to
backtrader's (TimeFrame, compression) pair, so the CSV loader, the cache and ``make_feed`` agree
on what "5min" means. Inference looks at the bars themselves because a CSV file does not say its
bar size: the most common gap between consecutive bars of the same day is the bar size.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Timeframe = Literal["daily", "5min", "1min"]

TIMEFRAME_MINUTES: dict[str, int] = {"1min": 1, "5min": 5}
"""Intraday timeframes and their bar size in minutes (daily is not intraday)."""

TIMEFRAMES: tuple[str, ...] = ("daily", "5min", "1min")


def check_timeframe(timeframe: str) -> str:
    """Return ``timeframe`` unchanged, or raise ValueError listing the allowed values."""
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe {timeframe!r} is not supported; allowed: {', '.join(TIMEFRAMES)}")
    return timeframe


def backtrader_timeframe(timeframe: str) -> tuple[int, int]:
    """(backtrader TimeFrame constant, compression) for a project timeframe string."""
    import backtrader as bt  # local: keep this module importable without backtrader's start-up cost

    check_timeframe(timeframe)
    if timeframe == "daily":
        return bt.TimeFrame.Days, 1
    return bt.TimeFrame.Minutes, TIMEFRAME_MINUTES[timeframe]


def infer_timeframe(index: pd.DatetimeIndex, has_time_column: bool | None = None) -> str:
    """Guess the timeframe of a bar index.

    Daily bars sit at midnight (the CSV ``date`` column); intraday bars carry a time of day. For
    intraday, the modal gap between consecutive bars on the same day must be a known bar size;
    anything else (e.g. 15-minute or hourly bars) is refused rather than mislabelled.
    ``has_time_column`` short-cuts the midnight test when the caller knows the file layout.
    """
    if has_time_column is False:
        return "daily"
    if len(index) == 0:
        return "daily"
    normalized = index.normalize()
    if has_time_column is None and bool((index == normalized).all()):
        return "daily"
    values = index.asi8 if index.unit == "ns" else index.as_unit("ns").asi8
    same_day = normalized[1:] == normalized[:-1]
    gaps = np.diff(values)[same_day] // 60_000_000_000  # minutes
    if len(gaps) == 0:
        raise ValueError("cannot tell the bar size: no two bars fall on the same day")
    uniq, counts = np.unique(gaps, return_counts=True)
    minutes = int(uniq[np.argmax(counts)])
    for name, size in TIMEFRAME_MINUTES.items():
        if size == minutes:
            return name
    raise ValueError(f"bars are {minutes} minutes apart; supported intraday sizes: "
                     + ", ".join(f"{m} min" for m in TIMEFRAME_MINUTES.values()))


def bar_index(values: object) -> pd.DatetimeIndex:
    """The index every bar frame of the project uses: naive (KST wall time), nanosecond unit,
    named ``datetime``. One definition so frames from demo, CSV and cache compare equal."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("Asia/Seoul").tz_localize(None)
    return idx.as_unit("ns").rename("datetime")


def is_plain_date(value: object) -> bool:
    """True for a ``date`` (not ``datetime``) or 'YYYY-MM-DD' text: an end bound meaning "that whole day"."""
    from datetime import date, datetime

    if isinstance(value, str):
        return len(value.strip()) == 10
    return isinstance(value, date) and not isinstance(value, datetime)


def slice_bars(df: pd.DataFrame, start: object = None, end: object = None) -> pd.DataFrame:
    """Rows of a sorted bar frame inside ``[start, end]``.

    A plain date (or 'YYYY-MM-DD') as ``end`` includes that whole day, so intraday bars of the
    last day are kept; a datetime ``end`` is inclusive to the instant.
    """
    idx = df.index
    lo = 0 if start is None else int(idx.searchsorted(pd.Timestamp(start), side="left"))
    if end is None:
        hi = len(idx)
    elif is_plain_date(end):
        hi = int(idx.searchsorted(pd.Timestamp(end) + pd.Timedelta(days=1), side="left"))
    else:
        hi = int(idx.searchsorted(pd.Timestamp(end), side="right"))
    return df.iloc[lo:hi]

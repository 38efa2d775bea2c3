"""Benchmarks a run is compared with, as value series on the run's own equity index.

Both builders return ``(values, label)``: a float ``Series`` on exactly ``index`` that starts at
``initial_cash`` (from the bar where the benchmark starts), and a short label for legends and tables
that says what the series is and what it leaves out.

* :func:`equal_weight_buy_and_hold` — "what if I had simply bought the universe": no timing, no
  selection, no costs.
* :func:`index_benchmark` — a market index from a CSV file (e.g. KOSPI), scaled to the initial cash.
  Price indices exclude dividends, which the label says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.metrics import to_kst_index
from configs.errors import InputError

INDEX_CLOSE_TIME = pd.Timedelta(hours=15, minutes=30)
"""When an index's daily close is known (KRX regular close), used to align it with intraday bars."""


def _closes_on(prices: pd.DataFrame, index: pd.DatetimeIndex) -> pd.Series:
    """One code's closes restricted to the window of ``index``, forward-filled onto ``index``.

    Bars of the code that fall between two equity bars are carried to the next equity bar (as-of
    alignment), so a slightly different timestamp convention never drops data.
    """
    if prices is None or len(prices) == 0 or "close" not in prices:
        return pd.Series(np.nan, index=index)
    close = pd.Series(pd.to_numeric(prices["close"], errors="coerce").to_numpy(dtype=float),
                      index=to_kst_index(prices.index)).sort_index().dropna()
    close = close[(close.index >= index[0]) & (close.index <= index[-1])]
    close = close[~close.index.duplicated(keep="last")]
    if len(close) == 0:
        return pd.Series(np.nan, index=index)
    pos = close.index.searchsorted(index, side="right") - 1
    vals = np.where(pos >= 0, close.to_numpy()[np.clip(pos, 0, None)], np.nan)
    return pd.Series(vals, index=index)


def equal_weight_buy_and_hold(prices: dict[str, pd.DataFrame], initial_cash: int,
                              index: pd.DatetimeIndex) -> tuple[pd.Series, str]:
    """Equal-value buy-and-hold of every code that trades inside the window of ``index``.

    Rule: the N codes with at least one close in the window each get ``initial_cash / N``. A code
    is bought (fractional shares, no costs, no tax) at its first close in the window and held to the
    end; until then its share waits as cash, so codes listed or resumed later enter with their share
    when they start. Missing bars (halts, holidays of one feed) are forward-filled: a halted code
    keeps its last close. Codes without a bar in the window are left out and do not dilute the rest.
    """
    idx = to_kst_index(index)
    if len(idx) == 0:
        return pd.Series(dtype=float, index=idx), "Equal-weight buy & hold (no data)"
    columns = {code: _closes_on(df, idx) for code, df in sorted(prices.items())}
    closes = pd.DataFrame(columns, index=idx)
    return equal_weight_from_closes(closes.to_numpy(dtype=float), initial_cash, idx)


def equal_weight_from_closes(closes: np.ndarray, initial_cash: int, index: pd.DatetimeIndex
                             ) -> tuple[pd.Series, str]:
    """The rule of ``equal_weight_buy_and_hold`` on a ready matrix: one column per code (sorted by
    code), closes forward-filled onto ``index``, NaN before a code's first close. The fast engine
    builds that matrix from its panel directly (no per-code frames for 2,500 codes)."""
    idx = to_kst_index(index)
    arr = np.ascontiguousarray(closes, dtype=float)
    arr = arr[:, ~np.isnan(arr).all(axis=0)]
    n = arr.shape[1]
    if n == 0:
        raise InputError("equal-weight benchmark: no code has a close inside the run's window "
                         f"{idx[0].date()}..{idx[-1].date()}")
    share = float(initial_cash) / n
    first_pos = np.argmax(~np.isnan(arr), axis=0)
    first_price = arr[first_pos, np.arange(n)]
    holdings = share * (arr / first_price)           # NaN before a code's first close
    values = np.where(np.isnan(holdings), share, holdings).sum(axis=1)
    label = f"Equal-weight buy & hold, {n} codes (no costs)"
    return pd.Series(values, index=idx, name="benchmark"), label


def read_index_csv(csv_path: str | Path) -> pd.Series:
    """An index file's closes by date: ``date,open,high,low,close[,volume]`` or ``date,close``.

    Column names are matched case-insensitively (``date``/``datetime``, ``close``/``adj close``).
    Errors name the file.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise InputError(f"benchmark index file not found: {path}")
    df = pd.read_csv(path)
    cols = {c.strip().lower(): c for c in df.columns}
    date_col = cols.get("date") or cols.get("datetime")
    close_col = cols.get("close") or cols.get("adj close") or cols.get("adj_close")
    if date_col is None or close_col is None:
        raise InputError(f"benchmark index file {path}: needs a 'date' and a 'close' column, "
                         f"found {list(df.columns)}")
    dates = pd.to_datetime(df[date_col], errors="coerce")
    close = pd.to_numeric(df[close_col], errors="coerce")
    s = pd.Series(close.to_numpy(dtype=float), index=pd.DatetimeIndex(dates))
    s = s[s.index.notna() & s.notna() & (s > 0)].sort_index()
    s = s[~s.index.duplicated(keep="last")]
    if len(s) == 0:
        raise InputError(f"benchmark index file {path}: no usable (date, close) rows")
    return s


def index_benchmark(csv_path: str | Path, initial_cash: int,
                    index: pd.DatetimeIndex) -> tuple[pd.Series, str]:
    """An index from ``csv_path`` as the value of ``initial_cash`` invested at the run's start.

    Alignment: for daily runs (one bar per date) each bar takes the index close of the same date;
    for intraday runs each bar takes the latest close already published (the close of date D is
    known at 15:30 KST of D), so an intraday curve never sees the day's close early. Dates the file
    lacks are forward-filled. When the file starts after the run, the bars before its first date
    are held at the initial cash and the label says from when it is real; it is an error
    (``ValueError`` naming the file) if the file and the run do not overlap at all.
    """
    path = Path(csv_path)
    idx = to_kst_index(index)
    closes = read_index_csv(path)
    if len(idx) == 0:
        return pd.Series(dtype=float, index=idx), f"{path.name} (no bars)"
    daily = pd.Series(1, index=idx.normalize()).groupby(level=0).size().max() <= 1
    dates = to_kst_index(closes.index).normalize()
    published = dates if daily else dates + INDEX_CLOSE_TIME
    overlaps = bool(((dates >= idx[0].normalize()) & (dates <= idx[-1].normalize())).any())
    if not overlaps:
        raise InputError(
            f"benchmark index file {path} covers {dates[0].date()}..{dates[-1].date()}, which does not "
            f"overlap the run {idx[0].date()}..{idx[-1].date()}; choose another file or benchmark: none")
    keys = idx.normalize() if daily else idx
    pos = published.searchsorted(keys, side="right") - 1
    raw = np.where(pos >= 0, closes.to_numpy()[np.clip(pos, 0, None)], np.nan)
    # Leading NaNs are bars before the file starts; a close carried in from before the run's
    # first bar is the level at the start and a valid base.
    valid = ~np.isnan(raw)
    first = int(np.argmax(valid))
    base = raw[first]
    values = np.where(valid, float(initial_cash) * raw / base, float(initial_cash))
    name = path.stem
    label = f"Index {name} (price index, no dividends, no costs)"
    if first > 0:
        label += f", from {idx[first].date()}"
    last_date = dates[-1]
    if last_date.normalize() < idx[-1].normalize():
        label += f", held flat after {last_date.date()}"
    return pd.Series(values, index=idx, name="benchmark"), label

"""Plausibility of bar data: what no KRX session can have produced, and what only looks odd.

The CSV loader (``feeds/csv_folder.py``) checks each file's *form* (columns, numbers, ascending
times, OHLC order). This module checks whether the numbers can be *real*, against KRX's own rules
(``market/``):

errors (the data is refused — a backtest on it would be a backtest on garbage)
* ``magnitude`` — a price above ``MAX_PRICE_KRW`` or a volume above ``MAX_VOLUME``: no KRX share has
  traded at 1억 KRW, and no session has traded 1,000억 shares (9e18 is a unit or parsing error);
* ``session`` — a bar on a day the XKRX calendar has no session (weekend, holiday, out of range);
* ``spike`` — a price outside the price band (가격제한폭) of its session that the next bar takes back:
  a one-day ×1000 or ÷10 is a typo, not a market (a real move beyond the band cannot happen, and a
  corporate action does not revert the next day).

warnings (reported; the bars are used)
* ``level_shift`` — the close leaves the band and *stays* there: a base-price reset (기준가 재산정),
  i.e. a split, bonus issue, merger or spin-off in unadjusted (or stale back-adjusted) data;
* ``gap`` — sessions of the calendar with no bar between two bars (a halt or missing data; bars alone
  cannot tell which);
* ``zero_volume`` — a bar with no volume (a halt stored as a bar, or a missing value).

The band allows for missing sessions (k sessions apart, the move may reach (1 + band)^k) and for the
rounding of back-adjusted prices (``BAND_TOLERANCE``). Intraday bars are checked per session (the
day's open, high, low and close), and a finding names the first bar of the day that shows it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from market.calendar import CALENDAR_END, CALENDAR_START, krx_calendar
from market.limits import WIDE_BAND_SINCE

SATURDAY_SESSIONS_UNTIL = date(1998, 12, 5)
"""KRX traded on Saturday mornings until 1998-12-05 (the five-day week began 1998-12-07); exchange_calendars'
XKRX omits those sessions, and real daily bars of the 1990s have them."""
MAX_PRICE_KRW = 100_000_000
MAX_VOLUME = 100_000_000_000
CALENDAR_TRUSTED_FROM = date(2000, 1, 1)
"""exchange_calendars' XKRX misses a few real sessions of the early 1990s (1992-12-28, 1993-07-07, ...):
before this date a bar on a day it does not know is a warning, not an error."""
MAX_FINDINGS_PER_KIND = 20
BAND_TOLERANCE = 0.01
"""Relative slack on the band: back-adjusted prices are rounded per field, so a limit-up day can land a
fraction of a percent past +30 % after adjustment."""

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one code's bars. ``row`` is the 0-based position in the frame checked."""

    code: str
    kind: str               # magnitude | session | spike | level_shift | gap | zero_volume
    severity: Severity
    row: int | None
    when: pd.Timestamp | None
    field: str | None
    value: Any
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@functools.lru_cache(maxsize=1)
def _all_sessions() -> np.ndarray:
    return np.array(krx_calendar().trading_days(CALENDAR_START, CALENDAR_END), dtype="datetime64[D]")


def check_bars(frame: pd.DataFrame, code: str) -> list[Finding]:
    """Findings for one code's bars (index: naive KST datetimes, ascending; int columns OHLCV).

    Daily and intraday frames alike; errors come first in the list.
    """
    out: list[Finding] = []
    if frame.empty:
        return out
    idx = pd.DatetimeIndex(frame.index)
    prices = {f: frame[f].to_numpy(dtype=np.float64) for f in ("open", "high", "low", "close")}
    volume = frame["volume"].to_numpy(dtype=np.float64)

    for f, arr in prices.items():
        bad = np.flatnonzero(arr > MAX_PRICE_KRW)
        if len(bad):
            i = int(bad[0])
            out.append(Finding(code, "magnitude", "error", i, idx[i], f, int(arr[i]),
                               f"{f} {arr[i]:,.0f} KRW is above {MAX_PRICE_KRW:,} KRW, more than any KRX share "
                               "has traded at (a unit or parsing error?)"))
    bad = np.flatnonzero(volume > MAX_VOLUME)
    if len(bad):
        i = int(bad[0])
        out.append(Finding(code, "magnitude", "error", i, idx[i], "volume", int(volume[i]),
                           f"volume {volume[i]:,.0f} is above {MAX_VOLUME:,} shares, more than any session has traded"))

    days = idx.normalize()
    first_of_day = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    day_dates = np.array(days[first_of_day].values, dtype="datetime64[D]")
    lo_day, hi_day = np.datetime64(CALENDAR_START, "D"), np.datetime64(CALENDAR_END, "D")
    outside_range = np.flatnonzero((day_dates < lo_day) | (day_dates > hi_day))
    if len(outside_range):
        i = int(first_of_day[outside_range[0]])
        d = pd.Timestamp(day_dates[outside_range[0]]).date()
        out.append(Finding(code, "session", "error", i, idx[i], "date", d.isoformat(),
                           f"{d} is outside the KRX calendar ({CALENDAR_START}..{CALENDAR_END})"))
        return _ordered(out)
    sessions = _all_sessions()
    weekday = (day_dates.astype("datetime64[D]").view("int64") - 4) % 7       # 0 = Monday
    is_session = np.isin(day_dates, sessions) | ((weekday == 5) & (day_dates <= np.datetime64(SATURDAY_SESSIONS_UNTIL)))
    for j in np.flatnonzero(~is_session)[:MAX_FINDINGS_PER_KIND]:
        i = int(first_of_day[j])
        d = pd.Timestamp(day_dates[j]).date()
        trusted = d >= CALENDAR_TRUSTED_FROM
        out.append(Finding(code, "session", "error" if trusted else "warning", i, idx[i], "date", d.isoformat(),
                           f"{d} ({d:%A}) is not a KRX session (weekend, holiday or closure)"
                           + ("" if trusted else "; the calendar before "
                              f"{CALENDAR_TRUSTED_FROM} is incomplete, so the bar is kept")))
    if any(f.is_error for f in out):
        return _ordered(out)

    # the day's OHLC (intraday: aggregated per session; daily: the bars themselves)
    day_open = prices["open"][first_of_day]
    day_close = prices["close"][np.r_[first_of_day[1:] - 1, len(idx) - 1]]
    day_high = np.maximum.reduceat(prices["high"], first_of_day)
    day_low = np.minimum.reduceat(prices["low"], first_of_day)
    pos = np.searchsorted(sessions, day_dates)
    apart = np.maximum(np.diff(pos), 1)          # Saturday sessions of the 1990s are not in the calendar
    gaps = np.flatnonzero(apart > 1)
    if len(gaps):
        g = int(gaps[0])
        i = int(first_of_day[g + 1])
        d = pd.Timestamp(day_dates[g + 1]).date()
        out.append(Finding(code, "gap", "warning", i, idx[i], "date", d.isoformat(),
                           f"{int(apart[g]) - 1} session(s) without a bar before {d} "
                           f"({len(gaps)} gap(s) in all: halts or missing data)"))

    rates = np.where(day_dates[1:] >= np.datetime64(WIDE_BAND_SINCE), 0.30, 0.15)
    ref = day_close[:-1]
    low_ok = ref * (1 - rates) ** apart / (1 + BAND_TOLERANCE)
    high_ok = ref * (1 + rates) ** apart * (1 + BAND_TOLERANCE)
    nxt = slice(1, None)
    fields = {"open": day_open[nxt], "high": day_high[nxt], "low": day_low[nxt], "close": day_close[nxt]}
    out_of_band = {f: (v < low_ok) | (v > high_ok) for f, v in fields.items()}
    # the next session's close is measured against the same reference: back inside → the move was taken back
    next_close = np.r_[day_close[2:], np.nan]
    taken_back = (next_close >= low_ok) & (next_close <= high_ok)
    flagged = np.flatnonzero(np.logical_or.reduce(list(out_of_band.values())))
    counts = {"spike": 0, "level_shift": 0}
    for k in flagged:
        j = k + 1
        outside = [f for f in ("close", "open", "high", "low") if out_of_band[f][k]]
        i = int(first_of_day[j])
        d = pd.Timestamp(day_dates[j]).date()
        f = outside[0]
        move = fields[f][k] / ref[k] - 1
        band_text = f"±{rates[k] * 100:.0f} % band of {d} (previous close {ref[k]:,.0f})"
        if out_of_band["close"][k] and not taken_back[k]:
            kind = "level_shift"
        else:
            kind = "spike"
        counts[kind] += 1
        if counts[kind] > MAX_FINDINGS_PER_KIND:
            continue
        if kind == "level_shift":
            out.append(Finding(code, kind, "warning", i, idx[i], "close", int(day_close[j]),
                               f"close {day_close[j]:,.0f} moved {move * 100:+.1f} % outside the {band_text} and "
                               "stayed there: looks like an unadjusted corporate action (base-price reset)"))
            continue
        end = int(first_of_day[j + 1]) if j + 1 < len(first_of_day) else len(idx)
        row = i + int(np.argmax(prices[f][i:end] == fields[f][k])) if f in ("high", "low") else i
        out.append(Finding(code, kind, "error", row, idx[row], f, int(fields[f][k]),
                           f"{f} {fields[f][k]:,.0f} is {move * 100:+.1f} % from the previous close, outside the "
                           f"{band_text}, and the next session takes it back: not a price KRX can print "
                           "(a typo or a unit error?)"))

    zero = np.flatnonzero(volume == 0)
    if len(zero):
        i = int(zero[0])
        out.append(Finding(code, "zero_volume", "warning", i, idx[i], "volume", 0,
                           f"{len(zero)} bar(s) with zero volume, the first on {idx[i]} (a halt stored as a bar?)"))
    return _ordered(out)


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (not f.is_error, f.row if f.row is not None else -1))


def first_error(findings: list[Finding]) -> Finding | None:
    return next((f for f in findings if f.is_error), None)

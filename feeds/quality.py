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

* ``order`` — bars not in strictly ascending time, or two bars for one session (a duplicate);
* ``ohlc`` — a high below the low, or an open/close outside the bar's low..high.

warnings (reported; the bars are used — refused in strict mode)
* ``level_shift`` — the close leaves the band and *stays* there: a base-price reset (기준가 재산정),
  i.e. a split, bonus issue, merger or spin-off in unadjusted (or stale back-adjusted) data;
* ``gap`` — sessions of the calendar with no bar between two bars that no known halt explains:
  missing data (bars alone cannot tell a halt from a hole; the stock master's halt intervals can);
* ``zero_volume`` — a bar with no volume outside a known halt (a missing value, or a halt stored as a bar).

info (what the data says and is right to say)
* ``halt`` — sessions without a bar, or zero-volume bars, inside a known halt (거래정지) of the code.

``check_bars(frame, code, halts=[(first_day, last_day), ...])`` takes the code's known halt intervals
(``feeds.master.StockMaster.halts``: the master's 거래정지 flags over time, or a reference file's dated
designations); without them every gap is a ``gap``. ``QualityReport`` collects the findings of many
codes (one report per import or download) and says which codes strict mode refuses, and why.

The band allows for missing sessions (k sessions apart, the move may reach (1 + band)^k) and for the
rounding of back-adjusted prices (``BAND_TOLERANCE``). Intraday bars are checked per session (the
day's open, high, low and close), and a finding names the first bar of the day that shows it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Literal, Mapping, Sequence

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

Severity = Literal["error", "warning", "info"]
HaltIntervals = Sequence[tuple[date, date | None]]
"""Known halts of one code: (first day, last day or None while it lasts), inclusive."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one code's bars. ``row`` is the 0-based position in the frame checked."""

    code: str
    kind: str               # magnitude | session | order | ohlc | spike | level_shift | gap | zero_volume | halt
    severity: Severity
    row: int | None
    when: pd.Timestamp | None
    field: str | None
    value: Any
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def is_warning(self) -> bool:
        return self.severity == "warning"


@functools.lru_cache(maxsize=1)
def _all_sessions() -> np.ndarray:
    return np.array(krx_calendar().trading_days(CALENDAR_START, CALENDAR_END), dtype="datetime64[D]")


def order_violation(index: pd.DatetimeIndex) -> tuple[int, bool] | None:
    """(row, is_duplicate) of the first bar whose time is not after the previous bar's, or None.

    The one home of the "strictly ascending, one bar per time" rule (the CSV loader reports it with the
    file's line, ``check_bars`` as an ``order`` finding)."""
    steps = np.diff(pd.DatetimeIndex(index).asi8)
    bad = np.flatnonzero(steps <= 0)
    if not len(bad):
        return None
    i = int(bad[0]) + 1
    return i, bool(steps[i - 1] == 0)


def ohlc_violations(o: np.ndarray, h: np.ndarray, lo: np.ndarray,
                    c: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Where a bar's prices contradict each other: ``{"high_low": (rows, gaps), "high": …, "low": …}``.

    ``high_low``: high below low; ``high``: high below max(open, close) by ``gap`` KRW; ``low``: low above
    min(open, close). The one home of OHLC consistency: ``check_bars`` turns it into ``ohlc`` errors, the
    CSV loader into line-numbered errors (or clamps of back-adjusted rounding)."""
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    out = {"high_low": h < lo, "high": top > h, "low": lo > bottom}
    gaps = {"high_low": lo - h, "high": top - h, "low": lo - bottom}
    return {k: (np.flatnonzero(m), gaps[k][m]) for k, m in out.items()}


def _in_halts(days: np.ndarray, halts: HaltIntervals) -> np.ndarray:
    """Mask of ``days`` (datetime64[D]) inside any of ``halts``."""
    inside = np.zeros(len(days), dtype=bool)
    for first, last in halts:
        lo = np.datetime64(first, "D")
        hi = np.datetime64(last, "D") if last is not None else np.datetime64("2100-01-01", "D")
        inside |= (days >= lo) & (days <= hi)
    return inside


def check_bars(frame: pd.DataFrame, code: str, halts: HaltIntervals = ()) -> list[Finding]:
    """Findings for one code's bars (index: naive KST datetimes; int columns OHLCV).

    Daily and intraday frames alike; errors come first in the list. ``halts``: the code's known halt
    intervals, which turn missing sessions and zero-volume bars inside them into ``halt`` info.
    """
    out: list[Finding] = []
    if frame.empty:
        return out
    idx = pd.DatetimeIndex(frame.index)
    prices = {f: frame[f].to_numpy(dtype=np.float64) for f in ("open", "high", "low", "close")}
    volume = frame["volume"].to_numpy(dtype=np.float64)

    bad_order = order_violation(idx)
    if bad_order is not None:
        i, dup = bad_order
        out.append(Finding(code, "order", "error", i, idx[i], "datetime", str(idx[i]),
                           f"{idx[i]} " + ("repeats the previous bar's time (a duplicate session)" if dup else
                                           f"is earlier than the previous bar's {idx[i - 1]}")))
        return out
    violations = ohlc_violations(prices["open"], prices["high"], prices["low"], prices["close"])
    for kind, fld, text in (("high_low", "high", "is below the low"), ("high", "high", "is below max(open, close)"),
                            ("low", "low", "is above min(open, close)")):
        rows, gaps = violations[kind]
        if len(rows):
            i = int(rows[0])
            out.append(Finding(code, "ohlc", "error", i, idx[i], fld, int(prices[fld][i]),
                               f"{fld} {prices[fld][i]:,.0f} on {idx[i]} {text} by {gaps[0]:,.0f} KRW "
                               f"({len(rows)} bar(s) like it): not a bar KRX can print"))

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
        missing_runs, halt_runs = [], []
        for g in gaps:
            skipped = sessions[pos[g] + 1:pos[g + 1]]
            (halt_runs if len(halts) and bool(_in_halts(skipped, halts).all()) else missing_runs).append(int(g))
        for runs, kind, severity, what in ((missing_runs, "gap", "warning", "no known halt: missing data"),
                                           (halt_runs, "halt", "info", "inside known halts (거래정지)")):
            if not runs:
                continue
            g = runs[0]
            i = int(first_of_day[g + 1])
            d = pd.Timestamp(day_dates[g + 1]).date()
            total = int(sum(int(apart[r]) - 1 for r in runs))
            out.append(Finding(code, kind, severity, i, idx[i], "date", d.isoformat(),
                               f"{int(apart[g]) - 1} session(s) without a bar before {d} "
                               f"({len(runs)} gap(s), {total} session(s) in all, {what})"))

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
        halted = _in_halts(np.array(idx[zero].values, dtype="datetime64[D]"), halts) if len(halts) else \
            np.zeros(len(zero), dtype=bool)
        for rows, kind, severity, what in ((zero[~halted], "zero_volume", "warning", "a halt stored as a bar?"),
                                           (zero[halted], "halt", "info", "inside known halts (거래정지)")):
            if len(rows):
                i = int(rows[0])
                out.append(Finding(code, kind, severity, i, idx[i], "volume", 0,
                                   f"{len(rows)} bar(s) with zero volume, the first on {idx[i]} ({what})"))
    return _ordered(out)


_RANK = {"error": 0, "warning": 1, "info": 2}


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (_RANK[f.severity], f.row if f.row is not None else -1))


def first_error(findings: list[Finding]) -> Finding | None:
    return next((f for f in findings if f.is_error), None)


STRICT_KINDS = frozenset({"level_shift", "gap", "zero_volume"})
"""Warnings strict mode refuses (errors are always refused; ``halt`` info never is)."""


@dataclass
class QualityReport:
    """The findings of many codes (one import or download): a per-code table and strict-mode refusals."""

    findings: dict[str, list[Finding]]
    strict: bool = False

    @classmethod
    def of(cls, frames: Mapping[str, pd.DataFrame], halts: Mapping[str, HaltIntervals] | None = None,
           strict: bool = False) -> "QualityReport":
        return cls({code: check_bars(df, code, (halts or {}).get(code, ())) for code, df in frames.items()}, strict)

    def add(self, code: str, findings: list[Finding]) -> None:
        self.findings[code] = findings

    def refusal(self, code: str) -> Finding | None:
        """The finding that refuses ``code`` (its first error; in strict mode also its first strict
        warning), or None when its bars are accepted."""
        for f in self.findings.get(code, ()):
            if f.is_error or (self.strict and f.is_warning and f.kind in STRICT_KINDS):
                return f
        return None

    def refused(self) -> dict[str, Finding]:
        return {code: f for code in self.findings if (f := self.refusal(code)) is not None}

    def counts(self) -> dict[str, int]:
        """Findings per kind over every code."""
        out: dict[str, int] = {}
        for fs in self.findings.values():
            for f in fs:
                out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def describe(self, only_problems: bool = True, limit: int = 50) -> str:
        """A table: one line per code with its errors, warnings and halts, and the first problem."""
        rows = []
        for code in sorted(self.findings):
            fs = self.findings[code]
            err = sum(f.is_error for f in fs)
            warn = sum(f.is_warning for f in fs)
            info = sum(f.severity == "info" for f in fs)
            if only_problems and not (err or warn):
                continue
            first = next((f for f in fs if f.severity != "info"), fs[0] if fs else None)
            refused = self.refusal(code) is not None
            rows.append(f"{code:<8} {'REFUSED' if refused else 'ok':<8} {err:>6} {warn:>8} {info:>5}  "
                        + (f"{first.kind}: {first.message}" if first else ""))
        head = [f"quality: {len(self.findings)} code(s), {len(self.refused())} refused"
                + (" (strict)" if self.strict else "")
                + (", findings " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts().items())) if self.counts() else ""),
                f"{'code':<8} {'status':<8} {'errors':>6} {'warnings':>8} {'halts':>5}  first problem"]
        more = [f"... {len(rows) - limit} more code(s)"] if len(rows) > limit else []
        return "\n".join(head + rows[:limit] + more)


def iter_problems(report: QualityReport) -> Iterable[Finding]:
    """Every error and warning of a report, code by code."""
    for code in sorted(report.findings):
        yield from (f for f in report.findings[code] if f.severity != "info")

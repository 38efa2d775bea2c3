"""The KRX trading calendar: exchange_calendars' XKRX plus closures it does not know yet.

RULES.md §8: exchange_calendars 4.13.2 treats 2026-06-03 (local election) and 2026-07-17
(Constitution Day, a holiday again from 2026) as sessions; KRX is closed on both. The project owns
that list (``EXTRA_CLOSURES``) so a calendar upgrade never silently reopens them.

exchange_calendars needs about two seconds to build XKRX, so the session list is built once per
process and queried with ``bisect`` (microseconds) afterwards.
"""

from __future__ import annotations

import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")

EXTRA_CLOSURES: frozenset[date] = frozenset({date(2026, 6, 3), date(2026, 7, 17)})
"""Days KRX is closed that exchange_calendars 4.13.2 lists as sessions (RULES.md §8)."""

CALENDAR_START = date(1990, 1, 1)
CALENDAR_END = date(2035, 12, 31)


@dataclass(frozen=True, slots=True)
class SessionHours:
    """Regular-session open and close of one trading day, timezone-aware (Asia/Seoul)."""

    day: date
    open: datetime
    close: datetime


class KRXCalendar:
    """Trading days and regular-session hours of KRX between ``CALENDAR_START`` and ``CALENDAR_END``."""

    def __init__(self, extra_closures: frozenset[date] = EXTRA_CLOSURES) -> None:
        import exchange_calendars as xcals  # deferred: importing it costs ~1 s

        with warnings.catch_warnings():
            # exchange_calendars 4.13.2 reads Series.values on tz-aware data (a pandas 3.1 deprecation
            # inside the library, harmless here)
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            try:
                from pandas.errors import Pandas4Warning
                warnings.simplefilter("ignore", category=Pandas4Warning)
            except ImportError:  # older pandas
                pass
            cal = xcals.get_calendar("XKRX", start=CALENDAR_START.isoformat(), end=CALENDAR_END.isoformat())
        opens = cal.opens.dt.tz_convert(KST)
        closes = cal.closes.dt.tz_convert(KST)
        self._days: list[date] = []
        self._hours: dict[date, tuple[time, time]] = {}
        for ts, o, c in zip(cal.sessions, opens, closes):
            d = ts.date()
            if d in extra_closures:
                continue
            self._days.append(d)
            self._hours[d] = (o.time(), c.time())
        self.first_day = self._days[0]
        self.last_day = self._days[-1]

    def _check_range(self, d: date) -> None:
        if not (CALENDAR_START <= d <= CALENDAR_END):
            raise ValueError(
                f"date {d.isoformat()} is outside the KRX calendar range "
                f"{CALENDAR_START.isoformat()}..{CALENDAR_END.isoformat()}")

    def is_trading_day(self, d: date) -> bool:
        self._check_range(d)
        return d in self._hours

    def trading_days(self, start: date, end: date) -> list[date]:
        """Trading days in ``[start, end]``, ascending."""
        return self._days[bisect_left(self._days, start):bisect_right(self._days, end)]

    def next_trading_day(self, d: date) -> date:
        """The first trading day strictly after ``d``."""
        return self.add_trading_days(d, 1)

    def previous_trading_day(self, d: date) -> date:
        """The last trading day strictly before ``d``."""
        return self.add_trading_days(d, -1)

    def add_trading_days(self, d: date, n: int) -> date:
        """The ``n``-th trading day strictly after ``d`` (n > 0) or strictly before it (n < 0).

        ``n == 0`` returns ``d`` itself and requires it to be a trading day.
        """
        self._check_range(d)
        if n == 0:
            if d not in self._hours:
                raise ValueError(f"{d.isoformat()} is not a KRX trading day")
            return d
        i = bisect_right(self._days, d) + n - 1 if n > 0 else bisect_left(self._days, d) + n
        if not (0 <= i < len(self._days)):
            raise ValueError(f"{n} trading days from {d.isoformat()} is outside the calendar range")
        return self._days[i]

    def session_hours(self, d: date) -> SessionHours:
        """Open and close of the regular session on trading day ``d`` (first day of year: 10:00)."""
        if not self.is_trading_day(d):
            raise ValueError(f"{d.isoformat()} is not a KRX trading day")
        o, c = self._hours[d]
        return SessionHours(d, datetime.combine(d, o, KST), datetime.combine(d, c, KST))


@lru_cache(maxsize=1)
def krx_calendar() -> KRXCalendar:
    """The process-wide calendar (built once)."""
    return KRXCalendar()


def settlement_date(trade_date: date) -> date:
    """T+2: the second trading day after the trade date (RULES.md §4); taxes follow this date."""
    return krx_calendar().add_trading_days(trade_date, 2)


def is_trading_day(d: date) -> bool:
    return krx_calendar().is_trading_day(d)


def trading_days(start: date, end: date) -> list[date]:
    return krx_calendar().trading_days(start, end)


def next_trading_day(d: date) -> date:
    return krx_calendar().next_trading_day(d)


def previous_trading_day(d: date) -> date:
    return krx_calendar().previous_trading_day(d)


def today_kst(now: datetime | None = None) -> date:
    """Today's date in Seoul (the date that matters for sessions), from an aware ``now``."""
    now = now or datetime.now(KST)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(KST).date()


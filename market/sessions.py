"""KRX session phases of a trading day (RULES.md §3), timezone-aware in Asia/Seoul.

The regular session's open and close come from the calendar (09:00–15:30; 10:00 on the first
trading day of the year; CSAT late opens where exchange_calendars models them). The phases inside
it are placed relative to those two times, so a late open shifts the opening auction with it:

* order entry and the opening call auction (시가 단일가) start 30 minutes before the open;
* continuous trading runs from the open until 10 minutes before the close;
* the closing call auction (종가 단일가) fills the last 10 minutes;
* the off-hours sessions (15:40–16:00 at the close, 16:00–18:00 single price) follow the close.

Whether the pre-open and after-hours windows also move on late-open days is unconfirmed; only the
regular session is used for fills by the simulator and the emulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum

from market.calendar import KST, SessionHours, krx_calendar


class Phase(str, Enum):
    """What the exchange is doing at a moment."""

    CLOSED = "closed"                    # not a trading day, or outside every window below
    PRE_OPEN_AUCTION = "pre_open"        # orders collected for the 09:00 single-price call
    CONTINUOUS = "continuous"            # regular continuous matching
    CLOSING_AUCTION = "closing_auction"  # orders collected for the 15:30 single-price call
    AFTER_HOURS = "after_hours"          # off-hours closing-price and single-price sessions


@dataclass(frozen=True, slots=True)
class DaySchedule:
    """All phase boundaries of one trading day, aware datetimes in Asia/Seoul."""

    day: date
    order_entry: datetime
    open: datetime
    closing_auction: datetime
    close: datetime
    after_hours_end: datetime

    def phase_at(self, moment: datetime) -> Phase:
        if moment < self.order_entry or moment >= self.after_hours_end:
            return Phase.CLOSED
        if moment < self.open:
            return Phase.PRE_OPEN_AUCTION
        if moment < self.closing_auction:
            return Phase.CONTINUOUS
        if moment < self.close:
            return Phase.CLOSING_AUCTION
        if moment < self.close + timedelta(minutes=10):
            return Phase.CLOSED  # 15:30–15:40 gap before the post-market closing-price session
        return Phase.AFTER_HOURS

    def is_regular(self, moment: datetime) -> bool:
        """Inside 09:00–15:30 (or the day's shifted equivalent)."""
        return self.open <= moment < self.close


def schedule(d: date) -> DaySchedule:
    """The day's schedule; ``ValueError`` if ``d`` is not a trading day."""
    hours: SessionHours = krx_calendar().session_hours(d)
    return DaySchedule(
        day=d,
        order_entry=hours.open - timedelta(minutes=30),
        open=hours.open,
        closing_auction=hours.close - timedelta(minutes=10),
        close=hours.close,
        after_hours_end=datetime.combine(d, datetime.min.time(), KST) + timedelta(hours=18),
    )


def phase_at(moment: datetime) -> Phase:
    """The exchange phase at an aware ``moment`` (naive datetimes are refused, not guessed)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware (Asia/Seoul or any zone)")
    local = moment.astimezone(KST)
    if not krx_calendar().is_trading_day(local.date()):
        return Phase.CLOSED
    return schedule(local.date()).phase_at(local)

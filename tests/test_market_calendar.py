"""XKRX calendar with the project's extra closures, and session phases (RULES.md §3, §8)."""

from datetime import date, datetime

import pytest

from market.calendar import KST, EXTRA_CLOSURES, is_trading_day, krx_calendar, next_trading_day, trading_days
from market.sessions import Phase, phase_at, schedule


def test_extra_closures_2026():
    assert date(2026, 6, 3) in EXTRA_CLOSURES and date(2026, 7, 17) in EXTRA_CLOSURES
    assert not is_trading_day(date(2026, 6, 3))
    assert not is_trading_day(date(2026, 7, 17))
    assert next_trading_day(date(2026, 6, 2)) == date(2026, 6, 4)


def test_known_holidays_and_sessions():
    assert not is_trading_day(date(2025, 12, 31))   # last business day of the year
    assert not is_trading_day(date(2025, 5, 1))     # Labour Day
    assert not is_trading_day(date(2024, 1, 6))     # Saturday
    assert is_trading_day(date(2024, 1, 2))
    days = trading_days(date(2024, 12, 23), date(2025, 1, 3))
    assert days == [date(2024, 12, 23), date(2024, 12, 24), date(2024, 12, 26), date(2024, 12, 27),
                    date(2024, 12, 30), date(2025, 1, 2), date(2025, 1, 3)]


def test_first_trading_day_opens_at_ten():
    day = schedule(date(2026, 1, 2))
    assert day.open == datetime(2026, 1, 2, 10, 0, tzinfo=KST)
    assert day.close == datetime(2026, 1, 2, 15, 30, tzinfo=KST)
    normal = schedule(date(2026, 1, 5))
    assert normal.open.hour == 9 and normal.close.hour == 15 and normal.close.minute == 30


@pytest.mark.parametrize("hhmm,phase", [
    ((8, 29), Phase.CLOSED), ((8, 30), Phase.PRE_OPEN_AUCTION), ((9, 0), Phase.CONTINUOUS),
    ((15, 19), Phase.CONTINUOUS), ((15, 20), Phase.CLOSING_AUCTION), ((15, 30), Phase.CLOSED),
    ((15, 45), Phase.AFTER_HOURS), ((18, 0), Phase.CLOSED),
])
def test_phases_of_a_normal_day(hhmm, phase):
    assert phase_at(datetime(2024, 3, 4, *hhmm, tzinfo=KST)) == phase


def test_phase_on_holiday_and_naive_refused():
    assert phase_at(datetime(2026, 6, 3, 10, 0, tzinfo=KST)) == Phase.CLOSED
    with pytest.raises(ValueError, match="aware"):
        phase_at(datetime(2024, 3, 4, 10, 0))


def test_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        krx_calendar().is_trading_day(date(1980, 1, 2))

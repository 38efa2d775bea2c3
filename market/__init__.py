"""Facts of the KRX market as pure functions: calendar, sessions, tick grid, price band, costs.

Nothing here does I/O or knows about backtrader or KIS; every other package builds on it.
"""

from market.calendar import (KST, EXTRA_CLOSURES, KRXCalendar, is_trading_day, krx_calendar,
                             next_trading_day, previous_trading_day, settlement_date, trading_days)
from market.costs import DEFAULT_COMMISSION_RATE, CostModel, sell_tax_rate
from market.limits import PriceBand, lower_limit, price_band, upper_limit
from market.sessions import DaySchedule, Phase, phase_at, schedule
from market.ticks import Market, is_on_tick, round_to_tick, shift_ticks, tick_size

__all__ = [
    "KST", "EXTRA_CLOSURES", "KRXCalendar", "is_trading_day", "krx_calendar", "next_trading_day",
    "previous_trading_day", "settlement_date", "trading_days", "DEFAULT_COMMISSION_RATE", "CostModel",
    "sell_tax_rate", "PriceBand", "lower_limit", "price_band", "upper_limit", "DaySchedule", "Phase",
    "phase_at", "schedule", "Market", "is_on_tick", "round_to_tick", "shift_ticks", "tick_size",
]

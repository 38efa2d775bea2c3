"""The kernel's restatement of the KRX rules equals ``market/`` on every table, band and price class.

The kernel cannot call Python, so tick sizes, rounding, grid steps and the price band are re-stated
in numba over ``research.rules``' tables; ``market.ticks`` and ``market.limits`` are the reference.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from market.costs import CostModel, sell_tax_rate
from market.calendar import settlement_date
from market.limits import band_rate_percent, price_band
from market.ticks import Market, is_on_tick, round_to_tick, shift_ticks, tick_size
from research import kernel as K
from research.rules import FastEngineUnsupported, _table_id, session_rules, tick_arrays

DATES = [date(2014, 6, 2), date(2020, 3, 16), date(2023, 1, 24), date(2023, 1, 25), date(2025, 6, 2)]
MARKETS = [Market.KOSPI, Market.KOSDAQ, Market.KONEX, Market.ETF]


def prices() -> list[float]:
    rng = np.random.default_rng(3)
    edges = [1, 2, 999, 1000, 1001, 1999, 2000, 2001, 4999, 5000, 9999, 10000, 19999, 20000, 49999, 50000,
             99999, 100000, 199999, 200000, 499999, 500000, 1_234_567]
    return [float(p) for p in edges] + list(np.round(rng.uniform(1, 900_000, 400), 2))


@pytest.mark.parametrize("on", DATES)
@pytest.mark.parametrize("market", MARKETS)
def test_ticks_rounding_and_steps_equal_market_ticks(on, market):
    bounds, steps, nlev = tick_arrays()
    tab = _table_id(on, market)
    for p in prices():
        assert K.tick_of(p, tab, bounds, steps, nlev) == tick_size(p, on, market), p
        assert K.round_down(p, tab, bounds, steps, nlev) == round_to_tick(p, on, market, "down"), p
        assert K.round_up(p, tab, bounds, steps, nlev) == round_to_tick(p, on, market, "up"), p
        assert K.on_tick(p, tab, bounds, steps, nlev) == is_on_tick(p, on, market), p
        grid = round_to_tick(p, on, market, "down")
        for n in (1, 2, -1, -3):
            assert K.shift_ticks(grid, n, tab, bounds, steps, nlev) == shift_ticks(grid, n, on, market), (p, n)


@pytest.mark.parametrize("on", DATES)
@pytest.mark.parametrize("market", MARKETS)
def test_price_band_equals_market_limits(on, market):
    bounds, steps, nlev = tick_arrays()
    tab = _table_id(on, market)
    for p in prices():
        base = max(1, int(round(p)))
        band = price_band(base, on, market)
        assert K.band_of(base, band_rate_percent(on), tab, bounds, steps, nlev) == (band.lower, band.upper), base


def test_session_rules_follow_the_calendar_and_the_tax_table():
    days = [date(2024, 12, 26), date(2024, 12, 27), date(2024, 12, 30), date(2025, 1, 2), date(2025, 1, 6)]
    model = CostModel()
    r = session_rules(days, model)
    assert list(r.fill_ok) == [True, True, True, False, False]   # 2025-01-03 is missing from the bars
    assert r.sessions[2] == date(2025, 1, 2)
    rate = sell_tax_rate(settlement_date(date(2024, 12, 27)), Market.KOSPI)
    assert Decimal(int(r.tax_num[1, 0])) / Decimal(int(r.tax_den[1, 0])) == rate == Decimal("0.0015")
    with pytest.raises(FastEngineUnsupported, match="2024-12-28 is not a KRX trading day"):
        session_rules([date(2024, 12, 27), date(2024, 12, 28)], model)


def test_fee_is_exact_truncation_of_the_decimal_rate():
    model = CostModel()
    num, den = Decimal(model.commission_rate).as_integer_ratio()
    for value in (0, 1, 7_116, 380_000, 999_999_999, 123_456_789_012):
        assert K._fee(float(value), num, den) == model.commission(value)
    assert K._fee(2.0 ** 62, num, den) == -1                     # overflow is reported, never wrapped

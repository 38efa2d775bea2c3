"""Commission and sell tax in integer KRW, tax year by settlement date (RULES.md §4–§6)."""

from datetime import date
from decimal import Decimal

import pytest

from market.calendar import settlement_date
from market.costs import CostModel, sell_tax_rate
from market.ticks import Market


def test_settlement_is_two_trading_days_later():
    assert settlement_date(date(2024, 1, 2)) == date(2024, 1, 4)
    assert settlement_date(date(2024, 1, 5)) == date(2024, 1, 9)         # over a weekend
    assert settlement_date(date(2024, 12, 27)) == date(2025, 1, 2)       # 12-31 and 01-01 closed


def test_tax_year_follows_settlement_date():
    model = CostModel()
    # 2024-12-26 settles 2024-12-30: 2024 rate 0.18 %; 2024-12-27 settles 2025-01-02: 2025 rate 0.15 %
    assert model.sell_tax(10_000_000, date(2024, 12, 26)) == 18_000
    assert model.sell_tax(10_000_000, date(2024, 12, 27)) == 15_000
    # 2025 -> 2026: 0.15 % -> 0.20 %; 2025-12-29 settles 2026-01-02 (12-31 and 01-01 closed)
    assert model.sell_tax(10_000_000, date(2025, 12, 26)) == 15_000
    assert model.sell_tax(10_000_000, date(2025, 12, 29)) == 20_000


@pytest.mark.parametrize("settles,market,rate", [
    (date(2023, 3, 2), Market.KOSPI, "0.0020"), (date(2023, 3, 2), Market.KOSDAQ, "0.0020"),
    (date(2024, 3, 4), Market.KOSPI, "0.0018"), (date(2024, 3, 4), Market.KOSDAQ, "0.0018"),
    (date(2025, 3, 4), Market.KOSPI, "0.0015"), (date(2025, 3, 4), Market.KOSDAQ, "0.0015"),
    (date(2026, 3, 3), Market.KOSPI, "0.0020"), (date(2026, 3, 3), Market.KOSDAQ, "0.0020"),
    (date(2026, 3, 3), Market.ETF, "0"),
])
def test_rules_table_2023_2026(settles, market, rate):
    assert sell_tax_rate(settles, market) == Decimal(rate)


def test_round_trip_costs_worked_by_hand():
    """Buy 37 sh at 71,900 and sell them at 75,300 on KOSPI in March 2024, default commission."""
    model = CostModel()
    buy_value = 37 * 71_900          # 2,660,300
    sell_value = 37 * 75_300         # 2,786,100
    # commission 0.0140527 %: 2,660,300 x 0.000140527 = 373.84... -> 373
    assert model.costs(buy_value, False, date(2024, 3, 4)) == (373, 0)
    # 2,786,100 x 0.000140527 = 391.52... -> 391; tax 0.18 % = 5,014.98 -> 5,014
    assert model.costs(sell_value, True, date(2024, 3, 5)) == (391, 5_014)


def test_commission_is_configurable_and_validated():
    assert CostModel(commission_rate=Decimal("0.00015")).commission(1_000_000) == 150
    with pytest.raises(ValueError, match="commission_rate"):
        CostModel(commission_rate=Decimal("0.5"))

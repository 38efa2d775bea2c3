"""Daily price band with KRX's rounding rule (RULES.md §2)."""

from datetime import date

import pytest

from market.limits import price_band
from market.ticks import Market, is_on_tick


def test_rules_example_unified_table():
    band = price_band(9_980, date(2023, 6, 1))
    assert (band.lower, band.upper) == (6_990, 12_970)   # width 2,994 -> 2,990


def test_rules_example_old_table_truncates_upper_to_its_own_tick():
    band = price_band(9_980, date(2022, 6, 1), Market.KOSPI)
    assert band.upper == 12_950                           # 12,970 truncated to the 50-KRW tick


def test_fifteen_percent_before_2015_06_15():
    assert price_band(10_000, date(2015, 6, 12)).upper == 11_500
    assert price_band(10_000, date(2015, 6, 15)).upper == 13_000


@pytest.mark.parametrize("base,day,market", [
    (71_900, date(2023, 6, 12), Market.KOSPI), (188_000, date(2021, 3, 2), Market.KOSDAQ),
    (1_234, date(2024, 5, 2), Market.KOSDAQ), (612_000, date(2019, 1, 3), Market.KOSPI),
])
def test_band_limits_are_on_grid_and_within_thirty_percent(base, day, market):
    band = price_band(base, day, market)
    assert is_on_tick(band.upper, day, market) and is_on_tick(band.lower, day, market)
    assert band.upper <= base * 1.3 and band.lower >= base * 0.7
    assert band.contains(base) and not band.contains(band.upper + 1)


def test_real_kosdaq_high_priced_upper_limit():
    # old KOSDAQ table: 100-KRW tick above 50,000, so the upper limit keeps 100-KRW precision
    band = price_band(188_000, date(2021, 3, 2), Market.KOSDAQ)
    assert band.upper == 244_400 and band.lower == 131_600


def test_bad_base():
    with pytest.raises(ValueError, match="base price"):
        price_band(0, date(2024, 1, 2))

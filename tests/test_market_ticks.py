"""Tick tables of RULES.md §1, every band boundary in both eras and both markets."""

from datetime import date

import pytest

from market.ticks import Market, is_on_tick, round_to_tick, shift_ticks, tick_size

NEW = date(2023, 1, 25)      # first day of the unified table
OLD = date(2023, 1, 24)      # last day of the old tables

# (price just below a bound, tick there, bound, tick from the bound) — straight from RULES.md tables
UNIFIED_BOUNDS = [(1_999, 1, 2_000, 5), (4_999, 5, 5_000, 10), (19_999, 10, 20_000, 50),
                  (49_999, 50, 50_000, 100), (199_999, 100, 200_000, 500), (499_999, 500, 500_000, 1_000)]
OLD_KOSPI_BOUNDS = [(999, 1, 1_000, 5), (4_999, 5, 5_000, 10), (9_999, 10, 10_000, 50),
                    (49_999, 50, 50_000, 100), (99_999, 100, 100_000, 500), (499_999, 500, 500_000, 1_000)]
OLD_KOSDAQ_BOUNDS = [(999, 1, 1_000, 5), (4_999, 5, 5_000, 10), (9_999, 10, 10_000, 50),
                     (49_999, 50, 50_000, 100), (99_999, 100, 100_000, 100), (499_999, 100, 500_000, 100)]


@pytest.mark.parametrize("market", [Market.KOSPI, Market.KOSDAQ, Market.KONEX])
@pytest.mark.parametrize("below,tick_below,bound,tick_at", UNIFIED_BOUNDS)
def test_unified_table_boundaries(market, below, tick_below, bound, tick_at):
    assert tick_size(below, NEW, market) == tick_below
    assert tick_size(bound, NEW, market) == tick_at


@pytest.mark.parametrize("below,tick_below,bound,tick_at", OLD_KOSPI_BOUNDS)
def test_old_kospi_table_boundaries(below, tick_below, bound, tick_at):
    assert tick_size(below, OLD, Market.KOSPI) == tick_below
    assert tick_size(bound, OLD, Market.KOSPI) == tick_at


@pytest.mark.parametrize("below,tick_below,bound,tick_at", OLD_KOSDAQ_BOUNDS)
def test_old_kosdaq_table_boundaries(below, tick_below, bound, tick_at):
    assert tick_size(below, OLD, Market.KOSDAQ) == tick_below
    assert tick_size(bound, OLD, Market.KOSDAQ) == tick_at


def test_table_switches_on_2023_01_25():
    # 1,500 KRW: 5 under the old tables, 1 under the unified one (the made-finer 1,000–2,000 band)
    assert tick_size(1_500, OLD, Market.KOSPI) == 5
    assert tick_size(1_500, NEW, Market.KOSPI) == 1
    assert tick_size(15_000, OLD) == 50 and tick_size(15_000, NEW) == 10
    assert tick_size(150_000, OLD) == 500 and tick_size(150_000, NEW) == 100
    assert tick_size(600_000, OLD, Market.KOSDAQ) == 100 and tick_size(600_000, NEW, Market.KOSDAQ) == 1_000


def test_etf_tick_is_flat_five():
    assert tick_size(1_000, NEW, Market.ETF) == 5
    assert tick_size(90_000, OLD, Market.ETF) == 5


def test_rounding_modes_and_grid():
    assert round_to_tick(70_150, NEW, mode="down") == 70_100
    assert round_to_tick(70_150, NEW, mode="up") == 70_200
    assert round_to_tick(70_149, NEW, mode="nearest") == 70_100
    assert round_to_tick(70_151, NEW, mode="nearest") == 70_200
    # across a band bound the result is on the coarser grid
    assert round_to_tick(4_998, NEW, mode="up") == 5_000
    assert round_to_tick(4_998, NEW, mode="down") == 4_995
    # adjusted (fractional) prices
    assert round_to_tick(26_799.4, NEW, mode="down") == 26_750
    assert is_on_tick(26_750, NEW) and not is_on_tick(26_799, NEW) and not is_on_tick(100.5, NEW)
    with pytest.raises(ValueError, match="mode"):
        round_to_tick(100, NEW, mode="sideways")
    with pytest.raises(ValueError, match="positive"):
        tick_size(0, NEW)


def test_shift_ticks_crosses_bounds():
    assert shift_ticks(2_000, -1, NEW) == 1_999
    assert shift_ticks(1_999, 1, NEW) == 2_000
    assert shift_ticks(1_999, 2, NEW) == 2_005
    assert shift_ticks(10_000, -1, OLD, Market.KOSPI) == 9_990
    assert shift_ticks(1, -3, NEW) == 1

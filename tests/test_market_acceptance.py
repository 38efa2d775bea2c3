"""KRX order acceptance (``market/acceptance.py``) against RULES.md, and its three users refusing the
same orders with the same reasons: the simulator, the KIS broker and the KIS emulator."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from market.acceptance import (band_refusal, buying_power_refusal, order_session, quantity_refusal, sellable_refusal,
                               tick_refusal, window_refusal)
from market.calendar import KST
from market.limits import price_band
from market.ticks import Market

DAY = date(2024, 3, 5)          # a Tuesday, unified tick table


def at(h: int, m: int, d: date = DAY) -> datetime:
    return datetime(d.year, d.month, d.day, h, m, tzinfo=KST)


def test_ticks_follow_the_unified_table():
    assert tick_refusal(12_970, DAY, Market.KOSPI) is None          # 10-won tick under 20,000
    assert tick_refusal(12_975, DAY, Market.KOSPI).key == "tick_error"
    assert tick_refusal(52_050, DAY, Market.KOSDAQ).key == "tick_error"  # 100-won tick from 50,000
    assert tick_refusal(0, DAY, Market.KOSPI).key == "tick_error"


def test_band_from_the_rules_example():
    band = price_band(9_980, DAY)                                    # RULES.md §2: upper 12,970
    assert band_refusal(12_970, band, DAY) is None
    r = band_refusal(12_980, band, DAY)
    assert r.key == "band_error" and "above the upper limit" in r.message and "12,970" in r.message
    assert band_refusal(band.lower - 10, band, DAY).key == "band_error"


def test_buying_power_covers_commission_and_market_buys_at_the_upper_limit():
    fee = lambda value: int(value * 0.000140527)                     # noqa: E731 - KIS's rate, truncated
    assert buying_power_refusal(10, 70_000, 700_098, fee) is None    # 700,000 + 98 commission
    r = buying_power_refusal(10, 70_000, 700_097, fee)
    assert r.key == "insufficient_cash" and "700,098" in r.message


def test_sellable_and_quantity():
    assert sellable_refusal(10, held=30, offered=20) is None
    assert sellable_refusal(11, held=30, offered=20).key == "sell_qty_exceeded"
    assert quantity_refusal(1.5).key == "bad_quantity" and quantity_refusal(0).key == "bad_quantity"


@pytest.mark.parametrize("moment, window, key", [
    (at(8, 29), "extended", "market_not_open"), (at(8, 30), "extended", None), (at(8, 59), "regular", "market_not_open"),
    (at(9, 0), "regular", None), (at(15, 29), "regular", None), (at(15, 30), "regular", "market_closed"),
    (datetime(2024, 3, 9, 10, 0, tzinfo=KST), "regular", "market_closed"),      # a Saturday
])
def test_order_window(moment, window, key):
    r = window_refusal(moment, window)
    assert (r.key if r else None) == key


def test_an_order_after_the_close_works_in_the_next_session():
    assert order_session(at(15, 29), "regular") == DAY
    assert order_session(at(15, 31), "regular") == date(2024, 3, 6)
    assert order_session(datetime(2024, 3, 8, 16, 0, tzinfo=KST), "regular") == date(2024, 3, 11)


def test_the_simulator_and_the_emulator_use_these_reasons():
    """The same refusal reaches each user: the simulator's order reason is the refusal's message, the
    emulator answers the refusal's key (its KIS msg_cd comes from protocol.MESSAGES, one table)."""
    import inspect

    import brokers.kis.emulator.matching as matching
    import brokers.kis.orders as orders
    import brokers.sim as sim
    from brokers.kis import protocol as P

    for module in (sim, matching, orders):
        src = inspect.getsource(module)
        assert "market.acceptance import" in src, f"{module.__name__} must use market/acceptance.py"
    for key in ("tick_error", "band_error", "insufficient_cash", "sell_qty_exceeded", "market_closed",
                "market_not_open", "bad_quantity"):
        assert key in P.MESSAGES, f"the emulator cannot answer {key!r}"

"""Tick sizes (호가가격단위, the price grid orders must sit on) for KOSPI, KOSDAQ, KONEX and ETFs.

Facts from ``shared/krx/RULES.md`` §1:

* since 2023-01-25 one unified table for KOSPI, KOSDAQ and KONEX;
* until 2023-01-24 separate KOSPI and KOSDAQ tables (KOSDAQ stops at 100 KRW for prices >= 50,000);
* ETF/ETN/ELW use a flat 5 KRW tick (under 2,000 KRW unconfirmed, kept at 5).

KONEX before 2023-01-25 is not documented in RULES.md; it uses the KOSPI table here (unconfirmed).
Every function is pure: price in, integer KRW out. Prices may be ``int`` or ``float`` (adjusted data
is not on the grid); results of rounding are always ``int``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import date
from enum import Enum
from typing import Literal

UNIFIED_TABLE_SINCE = date(2023, 1, 25)


class Market(str, Enum):
    """Listing market of a code; decides tick table, tax rate and (for ETFs) the flat tick."""

    KOSPI = "KOSPI"
    KOSDAQ = "KOSDAQ"
    KONEX = "KONEX"
    ETF = "ETF"


# (lower bound of the band, tick) pairs, ascending; the tick applies from the bound upwards.
_UNIFIED: tuple[tuple[int, int], ...] = (
    (0, 1), (2_000, 5), (5_000, 10), (20_000, 50), (50_000, 100), (200_000, 500), (500_000, 1_000),
)
_OLD_KOSPI: tuple[tuple[int, int], ...] = (
    (0, 1), (1_000, 5), (5_000, 10), (10_000, 50), (50_000, 100), (100_000, 500), (500_000, 1_000),
)
_OLD_KOSDAQ: tuple[tuple[int, int], ...] = (
    (0, 1), (1_000, 5), (5_000, 10), (10_000, 50), (50_000, 100),
)
ETF_TICK = 5

RoundMode = Literal["down", "up", "nearest"]


def tick_table(on: date, market: Market | str = Market.KOSPI) -> tuple[tuple[int, int], ...]:
    """The (band start, tick) table in force on ``on`` for ``market`` (ETFs have no table: flat tick)."""
    market = Market(market)
    if on >= UNIFIED_TABLE_SINCE:
        return _UNIFIED
    if market is Market.KOSDAQ:
        return _OLD_KOSDAQ
    return _OLD_KOSPI


_BOUNDS = {id(t): [b for b, _ in t] for t in (_UNIFIED, _OLD_KOSPI, _OLD_KOSDAQ)}


def tick_size(price: float, on: date, market: Market | str = Market.KOSPI) -> int:
    """The tick for a price level on a date: the step between valid order prices around ``price``."""
    if price <= 0:
        raise ValueError(f"price must be positive, got {price!r}")
    market = Market(market)
    if market is Market.ETF:
        return ETF_TICK
    table = tick_table(on, market)
    return table[bisect_right(_BOUNDS[id(table)], price) - 1][1]


def round_to_tick(price: float, on: date, market: Market | str = Market.KOSPI,
                  mode: RoundMode = "nearest") -> int:
    """Move ``price`` onto the tick grid: ``down`` (buy limits), ``up`` (sell limits) or ``nearest``.

    The grid changes step at band bounds; because every bound is a multiple of the coarser tick,
    rounding with the tick of the price itself always lands on a valid grid point.
    """
    if price <= 0:
        raise ValueError(f"price must be positive, got {price!r}")
    if mode == "down":
        tick = tick_size(price, on, market)
        return max(tick, int(math.floor(price / tick + 1e-9)) * tick)
    if mode == "up":
        tick = tick_size(price, on, market)
        return int(math.ceil(price / tick - 1e-9)) * tick
    if mode == "nearest":
        low = round_to_tick(price, on, market, "down")
        high = round_to_tick(price, on, market, "up")
        return low if price - low < high - price else high
    raise ValueError(f"mode must be 'down', 'up' or 'nearest', got {mode!r}")


def is_on_tick(price: float, on: date, market: Market | str = Market.KOSPI) -> bool:
    """True when ``price`` is a valid order price (an integer multiple of its band's tick)."""
    if price <= 0 or price != int(price):
        return False
    return int(price) % tick_size(price, on, market) == 0


def shift_ticks(price: int, ticks: int, on: date, market: Market | str = Market.KOSPI) -> int:
    """The grid price ``ticks`` steps above (positive) or below (negative) an on-grid ``price``.

    Steps cross band bounds correctly: one tick below 2,000 (unified table) is 1,999, not 1,995.
    Never goes below the smallest tick.
    """
    p = int(price)
    for _ in range(abs(ticks)):
        if ticks > 0:
            p += tick_size(p, on, market)
        else:
            if p <= 1:
                break
            p -= tick_size(p - 1, on, market)
    return p

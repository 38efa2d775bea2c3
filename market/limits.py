"""Daily price band (가격제한폭): the lowest and highest price a code may trade at on a day.

RULES.md §2: ±30 % of the base price (기준가격, normally the previous close) since 2015-06-15,
±15 % before. KRX rounds in three steps, which this module follows exactly:

1. width = base × rate, truncated to the tick of the *base* price;
2. upper = base + width, truncated to the tick of the *upper* price level;
3. lower = base − width (already on the grid because ticks nest).

Integer arithmetic only, so 9,980 × 0.30 never becomes 2,993.9999.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from market.ticks import Market, tick_size

WIDE_BAND_SINCE = date(2015, 6, 15)


@dataclass(frozen=True, slots=True)
class PriceBand:
    """The day's band; ``contains`` is the check an exchange applies to a limit price."""

    base: int
    lower: int
    upper: int

    def contains(self, price: float) -> bool:
        return self.lower <= price <= self.upper


def band_rate_percent(on: date) -> int:
    """Band width in percent of the base price on a date (30 since 2015-06-15, else 15)."""
    return 30 if on >= WIDE_BAND_SINCE else 15


def price_band(base: int, on: date, market: Market | str = Market.KOSPI) -> PriceBand:
    """Lower and upper limit for a day whose base price is ``base`` (usually yesterday's close)."""
    base = int(base)
    if base <= 0:
        raise ValueError(f"base price must be positive, got {base!r}")
    base_tick = tick_size(base, on, market)
    width = base * band_rate_percent(on) // 100 // base_tick * base_tick
    upper = base + width
    upper = upper // tick_size(upper, on, market) * tick_size(upper, on, market)
    lower = max(base - width, 1)
    return PriceBand(base=base, lower=lower, upper=upper)


def upper_limit(base: int, on: date, market: Market | str = Market.KOSPI) -> int:
    """상한가: the price a market buy reserves cash at on KIS."""
    return price_band(base, on, market).upper


def lower_limit(base: int, on: date, market: Market | str = Market.KOSPI) -> int:
    """하한가."""
    return price_band(base, on, market).lower

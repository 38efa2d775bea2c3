"""Trading costs in integer KRW: broker commission on both sides and the sell tax by settlement date.

* Commission: KIS non-face-to-face default 0.0140527 % of trade value (RULES.md §6, unconfirmed
  against KIS's fee page, hence configurable), charged on buys and sells.
* Sell tax (증권거래세 + 농어촌특별세): the rate of the year the trade *settles* in (T+2 trading
  days), so a sale on 2024-12-27 pays the 2025 rate (RULES.md §5). Buys are untaxed.
* Amounts are truncated to whole KRW as brokers do. ``Decimal`` keeps 0.0140527 % exact.

RULES.md documents 2023–2026. Earlier years are included from public knowledge of the 2019 and
2021 cuts (KOSPI 0.10+0.15 and KOSDAQ 0.25 from 2019-06-03; 0.08+0.15 / 0.23 from 2021; 0.30
before) so backtests over ``shared/data/krx/daily`` (2015–2022) are taxed; they are marked
unconfirmed here. Years after the last known row reuse that row. Every rate can be overridden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Mapping

from market.calendar import settlement_date
from market.ticks import Market

DEFAULT_COMMISSION_RATE = Decimal("0.000140527")
"""0.0140527 % — KIS BanKIS / non-face-to-face accounts, KOSPI/KOSDAQ/KONEX (RULES.md §6)."""

# (first settlement date the rate applies to, {market: total sell-tax rate}). Ascending.
SELL_TAX_SCHEDULE: tuple[tuple[date, Mapping[Market, Decimal]], ...] = (
    # before 2019-06-03 (unconfirmed, not in RULES.md): KOSPI 0.15 + 0.15, KOSDAQ 0.30
    (date(1990, 1, 1), {Market.KOSPI: Decimal("0.0030"), Market.KOSDAQ: Decimal("0.0030"),
                        Market.KONEX: Decimal("0.0030")}),
    # 2019-06-03 cut (unconfirmed): KOSPI 0.10 + 0.15, KOSDAQ 0.25, KONEX 0.10
    (date(2019, 6, 3), {Market.KOSPI: Decimal("0.0025"), Market.KOSDAQ: Decimal("0.0025"),
                        Market.KONEX: Decimal("0.0010")}),
    # 2021 (unconfirmed): KOSPI 0.08 + 0.15, KOSDAQ 0.23
    (date(2021, 1, 1), {Market.KOSPI: Decimal("0.0023"), Market.KOSDAQ: Decimal("0.0023"),
                        Market.KONEX: Decimal("0.0010")}),
    # RULES.md §5 from here on
    (date(2023, 1, 1), {Market.KOSPI: Decimal("0.0020"), Market.KOSDAQ: Decimal("0.0020"),
                        Market.KONEX: Decimal("0.0010")}),
    (date(2024, 1, 1), {Market.KOSPI: Decimal("0.0018"), Market.KOSDAQ: Decimal("0.0018"),
                        Market.KONEX: Decimal("0.0010")}),
    (date(2025, 1, 1), {Market.KOSPI: Decimal("0.0015"), Market.KOSDAQ: Decimal("0.0015"),
                        Market.KONEX: Decimal("0.0010")}),
    (date(2026, 1, 1), {Market.KOSPI: Decimal("0.0020"), Market.KOSDAQ: Decimal("0.0020"),
                        Market.KONEX: Decimal("0.0010")}),
)
"""ETFs pay no securities transaction tax on sells (not listed: rate 0)."""


def _to_decimal(value: float | int | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def truncate_krw(amount: Decimal) -> int:
    """Whole KRW, fractions dropped (brokers truncate fees and taxes)."""
    return int(amount.to_integral_value(rounding=ROUND_DOWN))


def sell_tax_rate(settles_on: date, market: Market | str = Market.KOSPI,
                  schedule: tuple[tuple[date, Mapping[Market, Decimal]], ...] = SELL_TAX_SCHEDULE) -> Decimal:
    """Total sell-tax rate (fraction, not percent) for a trade settling on ``settles_on``."""
    market = Market(market)
    rate_table = None
    for since, rates in schedule:
        if settles_on >= since:
            rate_table = rates
        else:
            break
    if rate_table is None:
        raise ValueError(f"no sell-tax rate known for settlement date {settles_on.isoformat()}")
    return rate_table.get(market, Decimal(0))


@dataclass(frozen=True)
class CostModel:
    """Commission and tax rules of one account; pure, so backtest, emulator and live agree."""

    commission_rate: Decimal = DEFAULT_COMMISSION_RATE
    tax_schedule: tuple[tuple[date, Mapping[Market, Decimal]], ...] = field(default=SELL_TAX_SCHEDULE)

    def __post_init__(self) -> None:
        object.__setattr__(self, "commission_rate", _to_decimal(self.commission_rate))
        if not (Decimal(0) <= self.commission_rate < Decimal("0.01")):
            raise ValueError(f"commission_rate must be a fraction in [0, 0.01), got {self.commission_rate}")

    def commission(self, value: int | float) -> int:
        """Broker commission on a trade of ``value`` KRW (either side)."""
        return truncate_krw(_to_decimal(value) * self.commission_rate)

    def sell_tax(self, value: int | float, trade_date: date, market: Market | str = Market.KOSPI) -> int:
        """Tax on a sale of ``value`` KRW traded on ``trade_date`` (rate of the settlement year)."""
        rate = sell_tax_rate(settlement_date(trade_date), market, self.tax_schedule)
        return truncate_krw(_to_decimal(value) * rate)

    def costs(self, value: int | float, is_sell: bool, trade_date: date,
              market: Market | str = Market.KOSPI) -> tuple[int, int]:
        """(commission, tax) of one fill."""
        tax = self.sell_tax(value, trade_date, market) if is_sell else 0
        return self.commission(value), tax

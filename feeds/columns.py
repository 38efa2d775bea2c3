"""What a screen, a rule or a strategy may read: one vocabulary for both engines.

Every name a rule reads (``strategies.screens``), a strategy asks for (``indicators`` /
``required_indicators``) or a config lists (``data.indicators``) is exactly one of:

* a **price column** — ``open``, ``high``, ``low``, ``close``, ``volume``: the bar itself;
* an **indicator column** — computed from the code's own bars by an indicator spec of
  ``feeds.indicators`` (``sma_20``; ``macd_signal_12_26_9`` comes from the spec ``macd_12_26_9``),
  NaN during its warm-up;
* a **fundamental field** — ``FUNDAMENTAL_FIELDS`` (``per``, ``pbr``, ``roe``, ``market_cap``...):
  point-in-time values from the market-data database (``data.cache_url``, ``feeds.fundamentals``),
  each day holding only the figures public by then. Not an indicator: no spec to parse, no ``ta``,
  no warm-up — and never handed to an indicator parser.

Wherever a list of wanted columns becomes work, ``split_columns`` sorts it: the indicator specs go to
``feeds.indicators`` (event engine) or ``research.indicators`` (fast engine), the fundamental fields
to ``feeds.fundamentals.add_fundamentals`` (event engine's feed lines) or the panel's fundamentals
provider (fast engine). Both engines therefore read the same names the same way, and an unknown name
gets the same message, listing all three kinds. Indicator and fundamental names never overlap
(``tests/test_feeds_columns.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from configs.errors import InputError

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")

FUNDAMENTAL_FIELDS = ("per", "pbr", "eps", "bps", "roe", "debt_ratio", "market_cap", "shares_listed", "revenue",
                      "operating_income", "net_income")
"""Point-in-time fields (their definitions: ``feeds.fundamentals``, module docstring and ``point_in_time``)."""

_MULTI_COLUMN = {"bb_high_": "bb_", "bb_mid_": "bb_", "bb_low_": "bb_", "bb_pband_": "bb_",
                 "macd_signal_": "macd_", "macd_diff_": "macd_"}


def is_fundamental(name: str) -> bool:
    return name in FUNDAMENTAL_FIELDS


def spec_of_column(column: str) -> str:
    """The indicator spec that produces ``column`` (``bb_high_20_2`` comes from ``bb_20_2``); any other
    name is returned unchanged (a price column, a fundamental field, or a one-column spec)."""
    for prefix, spec_prefix in _MULTI_COLUMN.items():
        if column.startswith(prefix):
            return spec_prefix + column[len(prefix):]
    return column


@dataclass(frozen=True)
class Columns:
    """A wanted list sorted by kind: canonical indicator specs and fundamental fields, each in first
    order without repeats (price columns need no work and are dropped)."""

    indicators: tuple[str, ...] = ()
    fundamentals: tuple[str, ...] = ()


def _unknown(name: object, why: Exception) -> InputError:
    return InputError(f"{name!r} is not a column a strategy can read: not a price column ({', '.join(PRICE_COLUMNS)}), "
                      f"not a fundamental field ({', '.join(FUNDAMENTAL_FIELDS)}), and not an indicator: {why}")


def split_columns(names: Iterable[str]) -> Columns:
    """Sort indicator specs (or indicator column names), fundamental fields and price columns; an
    ``InputError`` names the first name that is none of them."""
    from feeds.indicators import parse_indicator_spec

    specs: dict[str, None] = {}
    fundamentals: dict[str, None] = {}
    for name in names:
        if isinstance(name, str) and name in PRICE_COLUMNS:
            continue
        if isinstance(name, str) and is_fundamental(name):
            fundamentals.setdefault(name, None)
            continue
        try:
            spec = parse_indicator_spec(spec_of_column(name) if isinstance(name, str) else name)
        except InputError as exc:
            raise _unknown(name, exc) from None
        specs.setdefault(spec.spec, None)
    return Columns(tuple(specs), tuple(fundamentals))


__all__ = ["Columns", "FUNDAMENTAL_FIELDS", "PRICE_COLUMNS", "is_fundamental", "spec_of_column", "split_columns"]

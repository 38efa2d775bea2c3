"""What a finished run hands to the report: plain DataFrames, no backtrader objects.

The backtest runner (and later the paper/live runner) fills a ``RunRecord``; ``analysis.report``
turns it into files. Keeping this boundary free of backtrader lets a report be re-rendered from
the files of an earlier run (``run.py report --run DIR``).

Column contracts (all money integer KRW, datetimes timezone-aware Asia/Seoul):

* ``equity``: index ``datetime``; columns ``value`` (cash + positions at the bar close), ``cash``.
* ``trades``: one row per fill; ``datetime, code, side ('BUY'|'SELL'), qty, price, value,
  commission, tax, order_ref``.
* ``orders``: one row per order; ``ref, created, code, side, type ('Market'|'Limit'|...), qty,
  price (limit/stop or empty), status ('Completed'|'Canceled'|'Expired'|'Rejected'|'Margin'|
  'Partial'|'Accepted'|'Refused'), filled_qty, avg_price, reason, updated``. ``Refused`` rows are
  pre-trade risk refusals that never reached the broker (``ref`` empty).
* ``prices``: code -> DataFrame indexed by ``datetime`` with ``open, high, low, close, volume``.
* ``progress``: Trade Target progress ("Data2") at the end, indexed by ``code``; columns
  ``target_buy_price, target_return_pct, max_capital, shares, capital_used, avg_price,
  last_price, current_return_pct, absolute_return`` (see ``strategies.targets``).
* ``events``: ``datetime, kind, code, message`` — risk refusals, kill switch, checker alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

TRADE_COLUMNS = ["datetime", "code", "side", "qty", "price", "value", "commission", "tax", "order_ref"]
ORDER_COLUMNS = ["ref", "created", "code", "side", "type", "qty", "price", "status", "filled_qty",
                 "avg_price", "reason", "updated"]
EVENT_COLUMNS = ["datetime", "kind", "code", "message"]
PROGRESS_COLUMNS = ["target_buy_price", "target_return_pct", "max_capital", "shares", "capital_used",
                    "avg_price", "last_price", "current_return_pct", "absolute_return"]


@dataclass
class RunRecord:
    """Everything a report needs about one run."""

    name: str
    mode: str                       # backtest | paper | live
    strategy: str
    data_label: str                 # e.g. "SYNTHETIC demo market (seed 20240101)" or a folder path
    synthetic: bool
    initial_cash: int
    equity: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    prices: dict[str, pd.DataFrame]
    progress: pd.DataFrame
    events: pd.DataFrame
    markets: dict[str, str] = field(default_factory=dict)   # code -> KOSPI/KOSDAQ/...
    config: dict[str, Any] = field(default_factory=dict)    # the validated config, JSON-safe
    benchmark: pd.Series | None = None                      # value series, same index as equity
    benchmark_label: str = ""
    risk_free_pct: float = 0.0

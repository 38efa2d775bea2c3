"""The textbook moving-average crossover, declared (runs on both engines).

Buy when SMA(``fast``) crosses above SMA(``slow``) — above on this bar, not above on the code's
previous bar — sized by the configured sizer (``fixed_size`` gives the classic "N shares per
signal"); sell everything when SMA(``fast``) falls below SMA(``slow``). Every signal is taken
(no top-N cut) unless ``max_positions`` caps the number held; when cash runs short the most traded
codes (bar volume) are served first. The stop-loss and kill switch of the risk config apply on top.

``bench/research.py`` runs it over the whole demo market against vectorbt on the same signals.
"""

from __future__ import annotations

from typing import Any

from strategies.declared import DeclaredStrategy
from strategies.screens import Screener, below, crosses_above
from strategies.spec import ExitWhen, ScreenEntry, StrategySpec


class SmaCross(DeclaredStrategy):
    params = (("fast", 10), ("slow", 30), ("max_positions", 0))

    @classmethod
    def declare(cls, p: dict[str, Any]) -> StrategySpec:
        fast, slow = f"sma_{p['fast']}", f"sma_{p['slow']}"
        screener = Screener(crosses_above(fast, slow), rank_by="volume", top_n=p["max_positions"] or None)
        return StrategySpec(entry=ScreenEntry(screener, rebalance_every=1),
                            exits=(ExitWhen(below(fast, slow), "cross down"),))

"""Equal weight, bought on the first bar, held to the end — a declared strategy (both engines).

KIS reserves a market buy's cash at the day's upper limit (+30 %), so on the first bar only about
1/1.3 of each slot can be bought at market. With ``topup`` (default) the remaining cash is put to
work on the following bars, still at market and still within each code's equal slot (measured at
cost, so a rising price does not trigger more buying), until no further whole share fits — what a
retail trader does on KIS by hand. ``topup=False`` keeps the single first-bar purchase.
"""

from __future__ import annotations

from typing import Any

from strategies.declared import DeclaredStrategy
from strategies.spec import HoldEntry, StrategySpec


class BuyAndHold(DeclaredStrategy):
    params = (("topup", True),)

    @classmethod
    def declare(cls, p: dict[str, Any]) -> StrategySpec:
        return StrategySpec(entry=HoldEntry(topup=bool(p["topup"])))

"""Trade Targets executed as written: buy at or under the target price up to the allocation, sell at
the target return or the stop — a declared strategy (runs on both engines).

Every session, for each target (Data1):

* while capital is left in its allocation, a DAY limit buy at ``target_buy_price`` for as many
  whole shares as the allocation and the free cash allow (skipped when the price is outside the
  next session's band, where KRX would reject it);
* while shares are held, a DAY limit sell of all of them at ``avg_price × (1 + target_return)``
  (the broker moves it up onto the tick grid);
* the stop-loss (``stop_loss_pct`` of the target, else the config's default) is enforced by
  ``TargetStrategy`` on every bar.

KIS cancels unfilled orders overnight, so the orders are placed again each session, exactly as a
trader would have to. A target that has been sold out is finished unless ``repeat`` is set.
"""

from __future__ import annotations

from typing import Any

from strategies.declared import DeclaredStrategy
from strategies.spec import StrategySpec, TargetEntry


class TargetBuy(DeclaredStrategy):
    params = (("repeat", False),)

    @classmethod
    def declare(cls, p: dict[str, Any]) -> StrategySpec:
        return StrategySpec(entry=TargetEntry(repeat=bool(p["repeat"])))

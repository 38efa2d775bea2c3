"""Trade Targets executed as written: buy at or under the target price up to the allocation, sell at
the target return or the stop.

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

import math

import backtrader as bt

from strategies.base import TargetStrategy
from strategies.targets import TargetStatus


class TargetBuy(TargetStrategy):
    params = (("repeat", False),)

    def on_start(self) -> None:
        missing = [t.code for t in self.targets if t.code not in self.data_by_code]
        if missing:
            self.event("config", f"targets without data (ignored): {', '.join(missing)}")
        if not len(self.targets):
            self.event("config", "target_buy has no targets: set strategy.targets in the config")

    def on_bar(self) -> None:
        for target in self.targets:
            data = self.data_by_code.get(target.code)
            if data is None or not self.has_new_bar(data):
                continue
            code = target.code
            status = self.progress.status(code)
            finished = status in (TargetStatus.DONE, TargetStatus.STOPPED)
            if not self.trading_stopped and (not finished or self.p.repeat):
                self._place_buy(code, data, target.target_buy_price)
            if self.progress.shares(code) > 0 and not self.pending_qty(code, buys=False):
                avg = self.progress.row(code).avg_price
                take_profit = avg * (1 + target.target_return_pct / 100)
                if self.in_next_band(data, take_profit):
                    self.sell(data=data, price=take_profit, exectype=bt.Order.Limit)

    def _place_buy(self, code: str, data: bt.AbstractDataBase, price: int) -> None:
        if self.pending_qty(code, buys=True) or not self.in_next_band(data, price):
            return
        left = self.capital_left(code) or 0
        qty = int(math.floor(min(left / price, self.affordable(data, price, bt.Order.Limit))))
        if qty >= 1:
            self.buy(data=data, size=qty, price=price, exectype=bt.Order.Limit)

"""Strategy for the crash test: on its first live bar, one market buy and one resting limit buy.

It decides from the account, not from memory: after a restart it sees the shares KIS holds and the
open orders rebuilt from KIS and the journal, and must not buy again.
"""

from __future__ import annotations

import backtrader as bt

from strategies.base import TargetStrategy


class BuyOnce(TargetStrategy):
    params = (("code", "990001"), ("qty", 2_000), ("resting_qty", 5))

    def on_bar(self) -> None:
        data = self.data_by_code[self.p.code]
        if self.getposition(data).size or self.open_orders or getattr(self, "_done", False):
            return
        self._done = True
        self.buy(data=data, size=self.p.qty)
        band = self.broker.session_band(data)
        self.buy(data=data, size=self.p.resting_qty, price=band.lower, exectype=bt.Order.Limit)

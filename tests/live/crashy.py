"""Strategies for the restart tests (tests/live/test_live_restarts.py), each deciding from the account
(positions and open orders rebuilt after a restart), never from memory, so a restart never repeats them."""

from __future__ import annotations

import backtrader as bt

from market.ticks import round_to_tick
from strategies.base import TargetStrategy


class ReviseOnce(TargetStrategy):
    """First live bar: a limit buy resting at the lower limit. Next bar: revise it to a price that fills."""

    params = (("code", "990001"), ("qty", 50))

    def on_bar(self) -> None:
        data = self.data_by_code[self.p.code]
        if self.getposition(data).size or getattr(self, "_revised", False):
            return
        mine = [o for o in self.open_orders.values() if o.data is data]
        if not mine and not getattr(self, "_placed", False):
            self._placed = True
            self.buy(data=data, size=self.p.qty, price=self.broker.session_band(data).lower, exectype=bt.Order.Limit)
        elif mine and mine[0].status == bt.Order.Accepted:
            self._revised = True
            price = round_to_tick(float(data.close[0]) * 1.02, data.datetime.date(0), self.broker.market_of(data), "up")
            self.revise(mine[0], price=min(price, self.broker.session_band(data).upper))


class Burst(TargetStrategy):
    """First live bar: ``n`` resting limit buys at different prices (none fills)."""

    params = (("code", "990001"), ("n", 10))

    def on_bar(self) -> None:
        if getattr(self, "_done", False):
            return
        self._done = True
        data = self.data_by_code[self.p.code]
        low = self.broker.session_band(data).lower
        day, market = data.datetime.date(0), self.broker.market_of(data)
        for i in range(self.p.n):
            price = round_to_tick(low * (1 + 0.002 * i), day, market, "down")
            self.buy(data=data, size=1, price=price, exectype=bt.Order.Limit)

"""Local stop triggers: Stop and StopLimit orders held by the broker until the market reaches them.

Why local: KIS's own stop-limit (``ORD_DVSN 22``) exists on real accounts only; holding the order
here works on paper and live alike. An ARMED order is not at KIS; once the last trade (from the
WebSocket, ``store.last_prices``) reaches its trigger it becomes QUEUED and the order pump sends it
as a market (Stop) or limit (StopLimit) order like any other — in its order window, never after
the trader stopped.
"""

from __future__ import annotations

from brokers.kis.lifecycle import Lifecycle, OrderState as S


class StopTriggers:
    def __init__(self, book, lifecycle: Lifecycle, store) -> None:
        self.book = book
        self.lifecycle = lifecycle
        self.store = store

    def check(self) -> None:
        for lo in self.book.orders.values():
            if lo.state is S.ARMED and self._reached(lo):
                self.store.journal.log("triggered", f"stop {lo.side} {lo.code} at {lo.trigger:,.0f}",
                                       intent_id=lo.intent_id)
                self.lifecycle.transition(lo, S.QUEUED, f"stop triggered at {lo.trigger:,.0f}")

    def _reached(self, lo) -> bool:
        last = self.store.last_prices.get(lo.code)
        if last is None:
            return False
        return last >= lo.trigger if lo.side == "buy" else last <= lo.trigger

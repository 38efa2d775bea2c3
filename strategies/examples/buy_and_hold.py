"""Equal weight, bought on the first bar, held to the end.

KIS reserves a market buy's cash at the day's upper limit (+30 %), so on the first bar only about
1/1.3 of each slot can be bought at market. With ``topup`` (default) the remaining cash is put to
work on the following bars, still at market and still within each code's equal slot (measured at
cost, so a rising price does not trigger more buying), until no further whole share fits — what a retail trader does on KIS by hand. ``topup=False`` keeps the
single first-bar purchase.
"""

from __future__ import annotations

import math

from strategies.base import TargetStrategy


class BuyAndHold(TargetStrategy):
    params = (("topup", True),)

    def __init__(self) -> None:
        super().__init__()
        self._slot_value: float | None = None

    def on_bar(self) -> None:
        if self._slot_value is None:
            self._slot_value = float(self.broker.getvalue()) / len(self.datas)
        elif not self.p.topup:
            return
        wanting = []
        for code, data in self.codes_with_bars():
            room = (self._slot_value - self.progress.capital_used(code)) / float(data.close[0])
            if room >= 1 and not self.pending_qty(code, buys=True):
                wanting.append((data, room))
        # free cash is shared evenly among the codes still below their slot, so the first codes in
        # the list cannot take cash that the others' upper-limit reservations need
        for i, (data, room) in enumerate(wanting):
            qty = int(math.floor(min(room, self.affordable(data) / (len(wanting) - i))))
            if qty >= 1:
                self.buy(data=data, size=qty)

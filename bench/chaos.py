"""The soak's chaos strategy: places, cancels and revises orders at random on every bar (bench/soak.py).

It is a plain ``TargetStrategy`` run by ``run.py paper``; everything it asks for goes through the
broker exactly as a real strategy's orders do. It also reports each broker turn on stdout as one
``SOAK {...}`` JSON line (turns, pings, idle, journal size), which is how the soak's driver knows,
without sleeping, that the trader has applied everything the emulator sent.

Quantities are multiples of 10 shares; the driver's orders "from another app" use 7 shares, so the
two can never have the same identity (telling such twins apart is ``test_live_windows``' job, not
the soak's).
"""

from __future__ import annotations

import json
import os
import random
import sys

import backtrader as bt

from market.ticks import round_to_tick
from strategies.base import TargetStrategy

QTYS = (10, 20, 30, 50, 80)


class Chaos(TargetStrategy):
    params = (("seed", 0), ("activity", 0.25), ("until", "15:15"))   # until: no new action after (HH:MM)

    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(f"{self.p.seed}:{os.getpid()}")
        self.actions = {"buy": 0, "sell": 0, "cancel": 0, "revise": 0}

    def on_start(self) -> None:
        store = getattr(self.broker, "store", None)
        if store is not None:
            store.on_loop.append(lambda: self._report(store))

    def _report(self, store) -> None:
        line = {"loops": store.loops, "pings": store.pings, "done_pings": store.done_pings, "idle": store.idle(),
                "now": store.now().isoformat(),
                "reconnects": store.reconnects, "journal_events": store.journal.event_count(),
                "posts": store._posts_out, "reads": store._reads_out, "input": store.has_input(),
                "settled": self.broker.settled()}
        sys.stdout.write("SOAK " + json.dumps(line) + "\n")
        sys.stdout.flush()

    def on_bar(self) -> None:
        if self.now().strftime("%H:%M") >= self.p.until:
            return
        for code, data in self.codes_with_bars():
            if self.rng.random() > self.p.activity:
                continue
            try:
                self._act(code, data)
            except (ValueError, KeyError) as exc:   # a revise outside the band, a vanished order
                self.event("chaos", f"action refused: {exc}", code)

    def _act(self, code: str, data) -> None:
        r = self.rng.random()
        mine = [o for o in self.open_orders.values() if o.data is data and o.alive()]
        day, market = data.datetime.date(0), self.broker.market_of(data)
        band = self.broker.session_band(data)
        last = float(data.close[0])
        if r < 0.3:
            self.actions["buy"] += 1
            if self.rng.random() < 0.5:
                self.buy(data=data, size=self.rng.choice(QTYS))
            else:
                price = round_to_tick(max(band.lower, last * (1 - self.rng.uniform(0, 0.015))), day, market, "down")
                self.buy(data=data, size=self.rng.choice(QTYS), price=price, exectype=bt.Order.Limit)
        elif r < 0.55:
            free = self.sellable(code)
            if free >= 10:
                self.actions["sell"] += 1
                qty = min(free // 10 * 10, self.rng.choice(QTYS))
                if self.rng.random() < 0.5:
                    self.sell(data=data, size=qty)
                else:
                    price = round_to_tick(min(band.upper, last * (1 + self.rng.uniform(0, 0.015))), day, market, "up")
                    self.sell(data=data, size=qty, price=price, exectype=bt.Order.Limit)
        elif r < 0.75 and mine:
            self.actions["cancel"] += 1
            self.cancel(self.rng.choice(mine))
        elif mine:
            order = self.rng.choice(mine)
            if order.exectype == bt.Order.Limit and order.status in (bt.Order.Accepted, bt.Order.Partial):
                self.actions["revise"] += 1
                step = last * self.rng.uniform(-0.01, 0.01)
                price = min(max(band.lower, float(order.created.price) + step), band.upper)
                self.revise(order, price=round_to_tick(price, day, market, "down" if order.isbuy() else "up"))

"""``DeclaredStrategy``: a ``TargetStrategy`` whose logic is a ``StrategySpec``.

A subclass declares its spec from its parameters (``declare``); this class executes it bar by bar
with the Trade Executor verbs, so the same declaration runs on the KRX simulator, on KIS and —
through ``research`` — on a whole panel at once. The per-bar steps below are the reference the
fast engine reproduces fill for fill; change one and the agreement tests in ``tests/research``
say where the engines part.

Order of work on each bar (after ``TargetStrategy`` has checked the daily-loss kill switch and
the stop-losses):

* ``ScreenEntry`` / ``HoldEntry``: exits first (codes held at the start of the bar, in feed
  order), then entries;
* ``TargetEntry``: exits first, then per target in the book's order: the limit buy, then the
  take-profit limit sell.
"""

from __future__ import annotations

import math
from typing import Any

import backtrader as bt

from strategies.base import TargetStrategy
from strategies.spec import HoldEntry, ScreenEntry, StrategySpec, TargetEntry
from strategies.targets import TargetStatus


class DeclaredStrategy(TargetStrategy):
    """Runs ``declare(params)``; subclasses set ``params`` and implement ``declare``."""

    @classmethod
    def declare(cls, params: dict[str, Any]) -> StrategySpec:
        """The spec for a full set of parameters (defaults merged in)."""
        raise NotImplementedError

    @classmethod
    def merged_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        merged = {name: value for name, value in cls.params._gettuple()}
        merged.update(params)
        return merged

    @classmethod
    def spec_for(cls, params: dict[str, Any]) -> StrategySpec:
        """The spec for config ``params`` (missing ones take the class defaults)."""
        return cls.declare(cls.merged_params(params))

    @classmethod
    def required_indicators(cls, params: dict[str, Any]) -> list[str]:
        return list(cls.spec_for(params).indicators)

    def __init__(self) -> None:
        super().__init__()
        self.spec: StrategySpec = self.declare({k: getattr(self.p, k) for k in self.p._getkeys()})
        self._slot_value: float | None = None

    def on_start(self) -> None:
        if isinstance(self.spec.entry, TargetEntry):
            missing = [t.code for t in self.targets if t.code not in self.data_by_code]
            if missing:
                self.event("config", f"targets without data (ignored): {', '.join(missing)}")
            if not len(self.targets):
                self.event("config", f"{self.__class__.__name__} has no targets: set strategy.targets in the config")

    def on_bar(self) -> None:
        held = self._run_exits()
        entry = self.spec.entry
        if isinstance(entry, ScreenEntry):
            self._run_screen(entry, held)
        elif isinstance(entry, TargetEntry):
            self._run_targets(entry)
        elif isinstance(entry, HoldEntry):
            self._run_hold(entry)

    # ------------------------------------------------------------------ exits
    def _run_exits(self) -> list[str]:
        """Sell at market what an exit rule says to sell; returns the codes held at the bar's start."""
        held = [code for code, data in self.data_by_code.items() if self.getposition(data).size > 0]
        if not self.spec.exits:
            return held
        for code in held:
            data = self.data_by_code[code]
            if not self.has_new_bar(data) or self.pending_qty(code, buys=False):
                continue
            for rule in self.spec.exits:
                if rule.screen(data):
                    self.event("exit", f"{rule.label}: {rule.screen.name} (close {data.close[0]:,.0f})", code)
                    self.sell(data=data)
                    break
        return held

    # ------------------------------------------------------------------ entries
    def _run_screen(self, entry: ScreenEntry, held: list[str]) -> None:
        if self.trading_stopped or len(self) % entry.rebalance_every:
            return
        busy = set(held) | {o.data._name for o in self.open_orders.values() if o.isbuy()}
        top_n = entry.screener.top_n
        slots = math.inf if top_n is None else top_n - len(busy)
        for code, _score in entry.screener.run(self.codes_with_bars()):
            if slots <= 0:
                break
            if code in busy:
                continue
            if self.buy(data=self.data_by_code[code]) is not None:
                slots -= 1

    def _run_hold(self, entry: HoldEntry) -> None:
        if self._slot_value is None:
            self._slot_value = float(self.broker.getvalue()) / len(self.datas)
        elif not entry.topup:
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

    def _run_targets(self, entry: TargetEntry) -> None:
        for target in self.targets:
            data = self.data_by_code.get(target.code)
            if data is None or not self.has_new_bar(data):
                continue
            code = target.code
            finished = self.progress.status(code) in (TargetStatus.DONE, TargetStatus.STOPPED)
            if not self.trading_stopped and (not finished or entry.repeat):
                self._place_target_buy(code, data, target.target_buy_price)
            if self.progress.shares(code) > 0 and not self.pending_qty(code, buys=False):
                avg = self.progress.row(code).avg_price
                take_profit = avg * (1 + target.target_return_pct / 100)
                if self.in_next_band(data, take_profit):
                    self.sell(data=data, price=take_profit, exectype=bt.Order.Limit)

    def _place_target_buy(self, code: str, data: bt.AbstractDataBase, price: int) -> None:
        if self.pending_qty(code, buys=True) or not self.in_next_band(data, price):
            return
        left = self.capital_left(code) or 0
        qty = int(math.floor(min(left / price, self.affordable(data, price, bt.Order.Limit))))
        if qty >= 1:
            self.buy(data=data, size=qty, price=price, exectype=bt.Order.Limit)

"""``TargetStrategy``: the Trade Executor verbs every mode shares, on backtrader's API only.

A strategy subclasses ``TargetStrategy`` and implements ``on_bar()`` (not ``next()``). The base
class keeps the books every run needs and that a strategy should never have to remember:

* **Trade Executor** verbs: ``buy``, ``sell`` (backtrader's own, wrapped), ``cancel_buy``,
  ``cancel_sell``, ``cancel_all``, ``stop_trading`` (the kill switch: cancel everything and refuse
  new entries; exits stay allowed), ``check`` (the checker) and ``update_progress`` (the updater).
* **Pre-trade risk**: every buy, including those made by backtrader helpers like ``order_target_*``
  or ``close``, passes the kill switch, the sizer's caps, the target's allocation and
  ``RiskLimits``; every refusal is logged with its reason and kept in ``events``.
* **Trade Target progress** ("Data2") updated on every fill and every bar; stop-losses and the
  daily loss limit evaluated every bar.
* **Checker**: each action leaves an expectation (an order accepted, a cancel confirmed, nothing
  left open after cancel-all, the strategy's share count equal to the broker's position). One bar
  later the checker verifies it; a miss becomes a ``check_failed`` event and a warning.

Because nothing here touches the simulator directly (broker extras such as ``available_cash`` are
used when the broker offers them), the same subclass runs on ``brokers.sim.KRXBroker`` and on the
KIS broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import backtrader as bt

from risk.limits import RiskLimits
from risk.sizing import affordable_shares
from strategies.params import Param
from strategies.targets import TargetBook, TargetProgress

log = logging.getLogger("krx.strategy")

_TERMINAL = (bt.Order.Completed, bt.Order.Canceled, bt.Order.Expired, bt.Order.Margin, bt.Order.Rejected)


@dataclass
class Expectation:
    """Something an action should have caused, checked ``deadline`` bars later."""

    kind: str                 # submit | cancel | flat | position
    code: str
    ref: int | None
    deadline: int             # strategy bar count by which it must hold
    detail: str
    done: bool = False


class TargetStrategy(bt.Strategy):
    """Base class of every krx-trader strategy. Subclasses implement ``on_bar``."""

    params = (
        ("targets", None),          # TargetBook (Data1); None = no targets
        ("limits", None),           # RiskLimits; None = defaults
        ("check_after_bars", 1),    # bars an action has to show its effect
    )
    #: what each parameter may hold (strategies.params); undeclared ones are typed by their default
    param_rules: dict[str, Param] = {"check_after_bars": Param(int, ge=1, le=100)}

    #: indicator specs (feeds.indicators) the strategy reads; the runner precomputes them
    indicators: tuple[str, ...] = ()

    @classmethod
    def required_indicators(cls, params: dict[str, Any]) -> list[str]:
        """Indicator specs needed for these params (override when they depend on params)."""
        return list(cls.indicators)

    # ------------------------------------------------------------------ life cycle
    def __init__(self) -> None:
        self.data_by_code: dict[str, bt.AbstractDataBase] = {d._name: d for d in self.datas}
        self.targets: TargetBook = self.p.targets if self.p.targets is not None else TargetBook([])
        self.progress = TargetProgress(self.targets)
        self.limits: RiskLimits = self.p.limits or RiskLimits()
        self.events: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []
        self.check_failures: list[dict[str, Any]] = []
        self.trading_stopped = False
        self.stop_reason: str | None = None
        self.open_orders: dict[int, bt.Order] = {}
        self._expectations: list[Expectation] = []
        self._held: set[str] = set()
        self._seen_len: dict[str, int] = {}
        self._day: date | None = None
        self._day_start_value: float | None = None
        self._last_value: float | None = None
        self._last_refusal: dict[str, str] = {}
        self._stop_ordered: dict[str, int] = {}   # code -> ref of its stop-loss sale
        self._live_feeds: set[str] = set()
        self._n_live: int | None = None
        self._stops_possible: bool | None = None
        self._feed_order: dict[str, int] = {code: i for i, code in enumerate(self.data_by_code)}
        self._bars_cycle: tuple[float, int, list] | None = None

    def start(self) -> None:
        """Sync with the broker before the first bar, then ``on_start``.

        On a live broker the account may already hold shares (and, after a restart, open orders
        rebuilt from KIS and the journal): Data2 starts from those positions and the rebuilt orders
        are adopted, so nothing is bought twice. In a backtest the book starts empty.
        """
        for code, data in self.data_by_code.items():
            pos = self.getposition(data)
            if pos.size:
                self.progress.seed(code, int(pos.size), float(pos.price))
                self._held.add(code)
        adopt = getattr(self.broker, "adopt_rebuilt_orders", None)
        if adopt is not None:
            for order in adopt(self):
                self.open_orders[order.ref] = order
                self.event("recovered", f"open order ref {order.ref} rebuilt after restart", order.data._name)
        self.on_start()

    def on_start(self) -> None:
        """Hook: called once before the first bar (after syncing with the broker)."""

    def notify_store(self, msg, *args, **kwargs) -> None:
        """Broker/store alerts (reconciliation mismatches, foreign orders...) go to the event log."""
        if msg == "alert":
            self.event("broker_alert", f"{kwargs.get('kind', '')}: {kwargs.get('message', '')}",
                       level=logging.ERROR)

    def prenext(self) -> None:
        # feeds that start later (listings) must not hold back the others
        self.next()

    def notify_data(self, data, status, *args, **kwargs) -> None:
        """Live feeds report DELAYED while they replay history and LIVE once bars are real."""
        if data.islive():
            if status == data.LIVE:
                self._live_feeds.add(data._name)
            elif status == data.DELAYED:
                self._live_feeds.discard(data._name)
            if status in (data.CONNBROKEN, data.DISCONNECTED, data.LIVE):
                self.event("feed", f"{data._getstatusname(status)}", data._name)

    @property
    def warming_up(self) -> bool:
        """True while a live feed still replays history: the strategy watches but does not trade.

        In a backtest every bar is tradable; on KIS the history bars before the first live bar only
        warm up indicators and Data2 — orders decided on them would be orders about the past.
        """
        if self._n_live is None:      # a feed is live or not for the whole run: count once, not per bar
            self._n_live = sum(1 for d in self.datas if d.islive())
        return bool(self._n_live) and len(self._live_feeds) < self._n_live

    def next(self) -> None:
        self._start_of_bar()
        if self.warming_up:
            return
        self.on_bar()
        self.check()

    # ------------------------------------------------------------------ hooks for subclasses
    def on_bar(self) -> None:
        """The strategy's logic for the current bar."""

    def on_order_update(self, order: bt.Order) -> None:
        """Every order notification, after the books are updated."""

    def on_fill(self, code: str, qty: int, price: float) -> None:
        """Every fill (``qty`` < 0 for sales), after Data2 is updated."""

    # ------------------------------------------------------------------ helpers
    def has_new_bar(self, data: bt.AbstractDataBase) -> bool:
        """True when ``data`` delivered a bar in this cycle (False while a code is halted)."""
        return len(data) > 0 and data.datetime[0] == self.datetime[0]

    def data_for(self, code_or_data: str | bt.AbstractDataBase | None) -> bt.AbstractDataBase:
        if code_or_data is None:
            return self.datas[0]
        if isinstance(code_or_data, str):
            try:
                return self.data_by_code[code_or_data]
            except KeyError:
                raise KeyError(f"no data feed for code {code_or_data!r}") from None
        return code_or_data

    def capital_left(self, code: str) -> int | None:
        """KRW the code's Trade Target still allows, net of pending buys (None: no target)."""
        left = self.progress.capital_left(code)
        if left is None:
            return None
        pending = sum(abs(o.executed.remsize) * (o.created.price or 0) for o in self.open_orders.values()
                      if o.isbuy() and o.data._name == code)
        return max(0, int(left - pending))

    def affordable(self, data: bt.AbstractDataBase, price: float | None = None,
                   exectype: int | None = None) -> int:
        """Whole shares of ``data`` the free cash can pay for (market buys: at the upper limit on KIS)."""
        return int(affordable_shares(self.broker, data, price, exectype) + 1e-9)

    def in_next_band(self, data: bt.AbstractDataBase, price: float) -> bool:
        """Whether a limit at ``price`` would be inside the next session's price band.

        Uses the broker's ``session_band`` when it has one (the simulator and the KIS broker do);
        otherwise it cannot tell and says yes, leaving the check to the broker.
        """
        band = getattr(self.broker, "session_band", None)
        if band is None:
            return True
        b = band(data)
        return b.lower <= price <= b.upper

    def pending_qty(self, code: str, buys: bool) -> int:
        return int(sum(abs(o.executed.remsize) for o in self.open_orders.values()
                       if o.data._name == code and o.isbuy() == buys))

    def sellable(self, code: str) -> int:
        data = self.data_for(code)
        return int(self.getposition(data).size) - self.pending_qty(code, buys=False)

    def event(self, kind: str, message: str, code: str = "", level: int = logging.INFO) -> None:
        when = self.datetime.datetime(0) if len(self) else None
        self.events.append({"datetime": when, "kind": kind, "code": code, "message": message})
        log.log(level, "%s %s %s", kind, code, message)

    def _refuse(self, code: str, side: str, qty: float, price: float | None, reason: str) -> None:
        when = self.datetime.datetime(0) if len(self) else None
        self.refusals.append({"datetime": when, "code": code, "side": side, "qty": qty,
                              "price": price, "reason": reason})
        if self._last_refusal.get(code) != reason:  # do not repeat the same refusal every bar
            self._last_refusal[code] = reason
            self.event("risk_refused", f"{side} {qty:g} refused: {reason}", code, logging.WARNING)

    def _expect(self, kind: str, code: str, ref: int | None, detail: str) -> None:
        self._expectations.append(Expectation(kind, code, ref, len(self) + self.p.check_after_bars, detail))

    # ------------------------------------------------------------------ Trade Executor: buy / sell
    def _expected_price(self, data: bt.AbstractDataBase, price: float | None) -> float:
        return float(price) if price else float(data.close[0])

    def buy(self, data=None, size=None, price=None, plimit=None, exectype=None, valid=None, tradeid=0,
            oco=None, trailamount=None, trailpercent=None, parent=None, transmit=True, **kwargs):
        """backtrader's ``buy`` behind the kill switch, the sizer, the allocation and the limits.

        Returns the order, or ``None`` when refused (the reason is in ``refusals``/``events``).
        """
        data = self.data_for(data)
        code = data._name
        if self.trading_stopped:
            self._refuse(code, "buy", size or 0, price, f"trading stopped: {self.stop_reason}")
            return None
        expected = self._expected_price(data, plimit if exectype == bt.Order.StopLimit else price)
        equity = float(self.broker.getvalue())
        # the position and exposure figures only feed limits that are on (RiskLimits ignores them
        # when its cap is None), so a run without those caps does not add them up for every order
        limits = self.limits
        code_value = (self.getposition(data).size * float(data.close[0]) + self.pending_qty(code, True) * expected
                      if limits.max_position_pct is not None else 0.0)
        invested = self._invested_value() if limits.max_exposure_pct is not None else 0.0
        left = self.capital_left(code)
        if size is None:
            # the sizer's answer is trimmed to what the limits and the allocation allow; an explicit
            # size that breaks them is refused instead (the caller asked for exactly that many)
            sizer = self.getsizer()
            size_for = getattr(sizer, "size_for", None)
            limit_price = plimit if exectype == bt.Order.StopLimit else price
            size = size_for(data, limit_price, exectype) if size_for else sizer.getsizing(data, isbuy=True)
            room = self.limits.max_buy_value(equity, code_value, invested)
            if left is not None:
                room = min(room, left)
            if room != float("inf"):
                size = min(size, int(room // expected)) if expected > 0 else 0
            if not size:
                self._refuse(code, "buy", 0, price, "no room: sizer, cash, allocation or risk limits allow 0 shares")
                return None
        if size != int(size) or size <= 0:
            self._refuse(code, "buy", size, price, f"size {size} is not a positive whole number of shares")
            return None
        value = size * expected
        if left is not None and value > left + 1e-6:
            self._refuse(code, "buy", size, price,
                         f"{size:g} sh x {expected:,.0f} = {value:,.0f} KRW exceeds the target's remaining "
                         f"allocation {left:,.0f} KRW")
            return None
        reason = self.limits.check_buy(code, value, equity, code_value, invested)
        if reason:
            self._refuse(code, "buy", size, price, reason)
            return None
        order = super().buy(data=data, size=size, price=price, plimit=plimit, exectype=exectype, valid=valid,
                            tradeid=tradeid, oco=oco, trailamount=trailamount, trailpercent=trailpercent,
                            parent=parent, transmit=transmit, **kwargs)
        self._track_new(order, code, "buy")
        return order

    def sell(self, data=None, size=None, price=None, plimit=None, exectype=None, valid=None, tradeid=0,
             oco=None, trailamount=None, trailpercent=None, parent=None, transmit=True, **kwargs):
        """backtrader's ``sell``, refused when it would sell shares not held (no short selling).

        ``size=None`` sells everything still sellable. Allowed while trading is stopped (exits).
        """
        data = self.data_for(data)
        code = data._name
        sellable = self.sellable(code)
        if size is None:
            size = sellable
        if size <= 0 or size != int(size):
            self._refuse(code, "sell", size, price, f"nothing to sell (sellable {sellable} sh)")
            return None
        if size > sellable:
            self._refuse(code, "sell", size, price, f"sell {size:g} sh exceeds sellable {sellable} sh")
            return None
        order = super().sell(data=data, size=size, price=price, plimit=plimit, exectype=exectype, valid=valid,
                             tradeid=tradeid, oco=oco, trailamount=trailamount, trailpercent=trailpercent,
                             parent=parent, transmit=transmit, **kwargs)
        self._track_new(order, code, "sell")
        return order

    def _track_new(self, order: bt.Order | None, code: str, side: str) -> None:
        if order is None:
            return
        if order.alive() or order.status in (bt.Order.Created, bt.Order.Submitted):
            self.open_orders[order.ref] = order
        self._expect("submit", code, order.ref, f"{side} {abs(order.created.size):g} sh (ref {order.ref})")

    def _invested_value(self) -> float:
        total = 0.0
        for code in self._held:
            d = self.data_by_code[code]
            total += self.getposition(d).size * float(d.close[0])
        for o in self.open_orders.values():
            if o.isbuy():
                total += abs(o.executed.remsize) * self._expected_price(o.data, o.created.price)
        return total

    # ------------------------------------------------------------------ Trade Executor: cancels, kill switch
    def _cancel_where(self, code: str | None, buys: bool | None) -> list[bt.Order]:
        chosen = [o for o in list(self.open_orders.values())
                  if (code is None or o.data._name == code) and (buys is None or o.isbuy() == buys)]
        for o in chosen:
            self.cancel(o)
            self._expect("cancel", o.data._name, o.ref, f"cancel of ref {o.ref}")
        return chosen

    def cancel_buy(self, code: str | None = None) -> list[bt.Order]:
        """Cancel open buy orders (of ``code``, or all). Only the unfilled rest can be cancelled."""
        return self._cancel_where(code, True)

    def cancel_sell(self, code: str | None = None) -> list[bt.Order]:
        """Cancel open sell orders (of ``code``, or all)."""
        return self._cancel_where(code, False)

    def cancel_all(self) -> list[bt.Order]:
        """Cancel every open order; the checker then expects none left open."""
        cancelled = self._cancel_where(None, None)
        self._expect("flat", "", None, "no open orders after cancel-all")
        return cancelled

    def revise(self, order: bt.Order, price: float | None = None, size: int | None = None) -> bt.Order | None:
        """Change a working order's price (and optionally lower its size).

        KIS does this as cancel + new order number; the simulator does the same, so in every mode
        the old order ends Canceled and the returned order carries on (``info.replaces``).
        """
        revise = getattr(self.broker, "revise", None)
        if revise is None:
            raise NotImplementedError("this broker cannot revise orders")
        new = revise(order, price=price, size=size)
        if new is not None:
            self.open_orders[new.ref] = new
            self._expect("submit", new.data._name, new.ref, f"revision of ref {order.ref} (new ref {new.ref})")
        return new

    def stop_trading(self, reason: str) -> None:
        """Kill switch: cancel everything and refuse new entries until ``resume_trading``."""
        if self.trading_stopped:
            return
        self.trading_stopped = True
        self.stop_reason = reason
        self.event("kill_switch", f"trading stopped: {reason}", level=logging.ERROR)
        self.cancel_all()

    def resume_trading(self) -> None:
        self.trading_stopped = False
        self.event("kill_switch", "trading resumed")
        self.stop_reason = None

    # ------------------------------------------------------------------ notifications and updater
    def notify_order(self, order: bt.Order) -> None:
        code = order.data._name
        if order.alive() or order.status in (bt.Order.Submitted, bt.Order.Accepted):
            self.open_orders[order.ref] = order
        else:
            self.open_orders.pop(order.ref, None)
        for bit in order.executed.iterpending():
            qty = int(bit.size)
            self.progress.on_fill(code, qty, bit.price, int(round(bit.comm)))
            if self.getposition(order.data).size > 0:
                self._held.add(code)
            else:
                self._held.discard(code)
                self._stop_ordered.pop(code, None)
            self._expect("position", code, None, "strategy shares equal broker position")
            self.on_fill(code, qty, bit.price)
        if order.status in (bt.Order.Rejected, bt.Order.Margin):
            reason = order.info.get("reason") or order.getstatusname()
            self.event("order_rejected", f"ref {order.ref} {order.ordtypename()} {abs(order.created.size):g} sh "
                                         f"{order.getstatusname()}: {reason}", code, logging.WARNING)
        elif order.status == bt.Order.Expired:
            self.event("order_expired", f"ref {order.ref}: {order.info.get('reason') or 'expired'}", code)
        self._resolve_expectations(order)
        self.on_order_update(order)

    def _resolve_expectations(self, order: bt.Order) -> None:
        for exp in self._expectations:
            if exp.done or exp.ref != order.ref:
                continue
            if exp.kind == "submit":
                if order.status in (bt.Order.Rejected, bt.Order.Margin):
                    exp.done = True
                    self._fail(exp, f"{exp.detail} was {order.getstatusname()}: "
                                    f"{order.info.get('reason') or 'no reason given'}")
                elif order.status != bt.Order.Submitted:
                    exp.done = True
            elif exp.kind == "cancel" and order.status in _TERMINAL:
                exp.done = True
                if order.status != bt.Order.Canceled:
                    self.event("check", f"{exp.detail}: order ended {order.getstatusname()} before the cancel "
                                        "took effect", exp.code)

    def _fail(self, exp: Expectation, message: str) -> None:
        when = self.datetime.datetime(0) if len(self) else None
        self.check_failures.append({"datetime": when, "kind": exp.kind, "code": exp.code, "message": message})
        self.event("check_failed", message, exp.code, logging.WARNING)

    def check(self) -> list[Expectation]:
        """The checker: verify expectations whose deadline has come; returns the ones that failed."""
        if not self._expectations:
            return []
        now = len(self)
        failed: list[Expectation] = []
        keep: list[Expectation] = []
        for exp in self._expectations:
            if exp.done:
                continue
            if exp.kind == "position":
                data = self.data_by_code[exp.code]
                broker_qty = int(self.getposition(data).size)
                mine = self.progress.shares(exp.code)
                if broker_qty != mine:
                    self._fail(exp, f"shares mismatch: strategy book {mine}, broker position {broker_qty}")
                    failed.append(exp)
                continue
            if now < exp.deadline:
                keep.append(exp)
                continue
            if exp.kind == "submit":
                order = self.open_orders.get(exp.ref)
                if order is not None and order.status in (bt.Order.Created, bt.Order.Submitted):
                    self._fail(exp, f"{exp.detail} not acknowledged by the broker after {self.p.check_after_bars} bar(s)")
                    failed.append(exp)
            elif exp.kind == "cancel":
                if exp.ref in self.open_orders:
                    self._fail(exp, f"{exp.detail} not confirmed after {self.p.check_after_bars} bar(s)")
                    failed.append(exp)
            elif exp.kind == "flat":
                if self.open_orders:
                    self._fail(exp, f"{len(self.open_orders)} order(s) still open after cancel-all: "
                                    f"{sorted(self.open_orders)}")
                    failed.append(exp)
        self._expectations = keep
        return failed

    def update_progress(self) -> "Any":
        """The updater: refresh Data2 with the latest prices and return it as a DataFrame."""
        for code, data in self.data_by_code.items():
            if len(data):
                self.progress.on_price(code, float(data.close[0]))
        return self.progress.frame()

    # ------------------------------------------------------------------ per-bar bookkeeping
    def _start_of_bar(self) -> None:
        if self.limits.daily_loss_limit_pct is not None:
            today = self.datetime.date(0)
            value = float(self.broker.getvalue())
            if today != self._day:
                self._day = today
                self._day_start_value = self._last_value if self._last_value is not None else value
            self._last_value = value
            if not self.trading_stopped and self._day_start_value:
                reason = self.limits.daily_loss_breached(self._day_start_value, value)
                if reason:
                    self.stop_trading(reason)
        if not self._held:
            return
        now = self.lines.datetime[0]
        stops = self._stops_possible
        if stops is None:   # a run without any stop-loss still keeps Data2's last prices fresh
            stops = self._stops_possible = self.limits.stop_loss_pct is not None or any(
                t.stop_loss_pct is not None for t in self.targets)
        # feed order, not set order: stop-loss sales get their order refs in the same order in every
        # process (a set of strings iterates in hash order, which changes with PYTHONHASHSEED)
        for code in sorted(self._held, key=self._feed_order.__getitem__):
            data = self.data_by_code[code]
            if data.lines.datetime[0] != now:
                continue
            close = float(data.lines.close[0])
            self.progress.on_price(code, close)
            if not stops:
                continue
            target = self.targets.get(code)
            stop = self.limits.stop_price(self.progress.row(code).avg_price,
                                          target.stop_loss_pct if target else None)
            if stop is not None and close <= stop:
                self._stop_out(code, data, close, stop)

    def _stop_out(self, code: str, data: bt.AbstractDataBase, close: float, stop: float) -> None:
        """Sell the whole position at market; other sells of the code are cancelled first.

        A pending sell (say a take-profit limit) holds the shares, so it is cancelled and the stop
        sale goes out on the next bar, once the cancel is confirmed — never two sells at once.
        """
        ref = self._stop_ordered.get(code)
        if ref is not None and ref in self.open_orders:
            return  # the stop sale is working
        if self.pending_qty(code, buys=False):
            if self._last_refusal.get(code) != "stop-cancel":
                self._last_refusal[code] = "stop-cancel"
                self.event("stop_loss", f"close {close:,.0f} <= stop {stop:,.0f}; cancelling other sells first", code)
            self.cancel_sell(code)
            return
        self.event("stop_loss", f"close {close:,.0f} <= stop {stop:,.0f}; selling at market", code)
        order = self.sell(data=data)
        if order is not None:
            self._stop_ordered[code] = order.ref

    # ------------------------------------------------------------------ utilities for subclasses
    def codes_with_bars(self) -> list[tuple[str, bt.AbstractDataBase]]:
        """(code, data) of every feed that has a bar in this cycle, in feed order.

        Built once per cycle (strategies and screens ask for it several times a bar).
        """
        dt = self.lines.datetime[0]
        cached = self._bars_cycle
        if cached is not None and cached[0] == dt and cached[1] == len(self):
            return cached[2]
        found = [(code, data) for code, data in self.data_by_code.items()
                 if len(data) and data.lines.datetime[0] == dt]
        self._bars_cycle = (dt, len(self), found)
        return found

    def now(self) -> datetime:
        return self.datetime.datetime(0)

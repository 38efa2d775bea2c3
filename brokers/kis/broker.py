"""``KISBroker``: backtrader's BrokerBase on the KIS Open API (paper and live alike) — the face only.

The strategy sees what it sees in a backtest: ``buy``/``sell``/``cancel`` (and ``revise``) return
backtrader orders that go Submitted → Accepted → Partial → Completed / Canceled / Expired / Rejected,
``getposition``/``getcash``/``getvalue`` answer from the local book, costs come from the same
``KRXCommInfo``. The work is done by small parts, each with one job:

* ``orders.OrderBook`` — entry checks, the order pump, POST outcomes, notices and the fill rule;
* ``lifecycle.Lifecycle`` — the one transition table: state, journal and notification together;
* ``reconcile.Reconciler`` — look-ups at KIS through one report routine, the close, the checker;
* ``recovery.Recovery`` — the start-up rebuild from KIS and the journal;
* ``stops.StopTriggers`` — stop orders held locally until the market reaches them.

The store (``store.py``) owns the connection and the threads; its results arrive as typed events
(``events.py``) that ``next()`` hands to the named method registered for their type. The broker
never calls the client itself.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

import backtrader as bt
from backtrader.position import Position

from brokers.kis.account import LocalBook
from brokers.kis.events import (BalanceRead, ConnectionChanged, NoticeReceived, OrdersRead, PostAmbiguous,
                                PostNotSent, PostPlaced, PostRefused, ReadFailed, Reconnected)
from brokers.kis.lifecycle import Lifecycle, LiveOrder
from brokers.kis.orders import BUY, Ledger, OrderBook, Refused, SessionBands
from brokers.kis.reconcile import Reconciler
from brokers.kis.recovery import Recovery
from brokers.kis.stops import StopTriggers
from brokers.kis.store import KISStore
from brokers.sim import ORDER_REASON, KRXCommInfo
from market.acceptance import order_session
from market.costs import CostModel
from market.limits import PriceBand
from market.sessions import Phase, phase_at
from market.ticks import Market

log = logging.getLogger(__name__)


class KISBroker(bt.BrokerBase):
    """Broker over ``KISStore``; create it with ``store.getbroker(...)``."""

    params = (
        ("store", None),
        ("cost_model", None),
        ("markets", None),                 # code -> Market (tick table, tax)
        ("price_rounding", "round"),       # round | reject
        ("order_window", "regular"),       # regular (09:00-15:30, what 모의투자 accepts) | extended (08:30-)
        ("reconcile_every_s", 60.0),
        ("reconcile_debounce_s", 5.0),
        ("stop_on_mismatch", False),
        ("unknown_order_timeout_s", 60.0),  # KIS must show nothing this long after an unclear answer: NOT_PLACED
        ("identity_skew_s", 10.0),         # ORD_TMD may precede our clock's POST time by this much
        ("hold_notice_s", 30.0),           # how long a notice for an unknown order number is kept
        ("close_grace_s", 30.0),           # after the close, wait this long before confirming DAY orders
    )

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.store: KISStore = self.p.store
        self.journal = self.store.journal
        self.cost_model: CostModel = self.p.cost_model or CostModel()
        self.markets: dict[str, Market] = dict(self.p.markets or {})
        self.notifs: collections.deque = collections.deque()
        self.ledger = Ledger()
        self.startingcash = 0.0
        self.bands = SessionBands(self.store, self.p)
        self._datas: dict[str, bt.AbstractDataBase] = {}
        self._comminfo: dict[str, KRXCommInfo] = {}
        self.alerts: list[dict[str, Any]] = []
        self.listeners: list[Any] = []   # callables(kind, data): the monitor and alert router listen here
        self.ws_state = "CONNECTING"
        self.lifecycle = Lifecycle(self.journal, self.notify, self, emit=self._emit)
        self.book = OrderBook(self.store, self.lifecycle, self.ledger, comminfo=self.comminfo_for, alert=self.alert,
                              emit=self._emit, settings=self.p, commission_rate=float(self.cost_model.commission_rate))
        self.reconciler = Reconciler(self.store, self.book, self.lifecycle, alert=self.alert, settings=self.p,
                                     on_mismatch=self._on_mismatch,
                                     local_book=lambda: LocalBook(self.ledger.shares(), self.ledger.cash))
        self.stops = StopTriggers(self.book, self.lifecycle, self.store)
        self._handlers = {
            PostPlaced: self.book.on_placed, PostRefused: self.book.on_refused,
            PostAmbiguous: self.book.on_ambiguous, PostNotSent: self.book.on_not_sent,
            NoticeReceived: self._on_notice, ConnectionChanged: self._on_connection, Reconnected: self._on_reconnected,
            OrdersRead: self.reconciler.on_orders_read, BalanceRead: self.reconciler.on_balance_read,
            ReadFailed: self.reconciler.on_read_failed,
        }

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        super().start()
        self.store.start()
        self.recovery = Recovery(self.store, self.book, self.lifecycle, self.reconciler, datas=self._datas,
                                 comminfo=self.comminfo_for, band=self.session_band, alert=self.alert)
        snapshot = self.recovery.run()
        self.ledger.load(snapshot)
        self.startingcash = self.ledger.cash
        self.journal.log("start", f"book loaded from KIS: {len(snapshot.shares())} position(s), "
                                  f"D+2 cash {snapshot.cash:,} KRW", payload={"positions": snapshot.shares()})

    def stop(self) -> None:
        """No POST leaves after this: queued orders end unsent; answers already on their way are
        waited for and journaled; the final book is journaled."""
        try:
            self.store.halt()
            self._drain()
            withdrawn = self.book.withdraw_queued("not sent: the trader stopped")
            self.store.stop()
            self._drain()
            self.journal.log("stop", f"stopped; {withdrawn} queued order(s) withdrawn unsent",
                             payload={"local": self.ledger.shares(), "cash": round(self.ledger.cash),
                                      "open": [lo.describe() for lo in self.book.open_orders()]})
        finally:
            super().stop()

    def add_data(self, data: bt.AbstractDataBase, market: Market | str | None = None) -> None:
        """Register a feed (called by the runner for every code)."""
        code = data._name
        self._datas[code] = data
        if market is not None:
            self.markets[code] = Market(market)
        self._comminfo.pop(code, None)
        self.comminfo_for(code).data = data

    def comminfo_for(self, code: str) -> KRXCommInfo:
        ci = self._comminfo.get(code)
        if ci is None:
            ci = self._comminfo[code] = KRXCommInfo(cost_model=self.cost_model,
                                                    market=self.markets.get(code, Market.KOSPI))
        return ci

    def getcommissioninfo(self, data) -> KRXCommInfo:
        if data._name not in self._datas:
            self.add_data(data)
        return self.comminfo_for(data._name)

    def _emit(self, kind: str, **data: Any) -> None:
        if kind == "fill":
            self.reconciler.check_due = True
        for listener in self.listeners:
            try:
                listener(kind, data)
            except Exception:  # a listener's bug must not break trading
                log.exception("broker listener failed on %s", kind)

    # ------------------------------------------------------------------ book
    @property
    def positions(self) -> dict[str, Position]:
        return self.ledger.positions

    @property
    def cash(self) -> float:
        return self.ledger.cash

    @property
    def recovered_fills(self) -> int:
        return self.book.recovered_fills

    def getcash(self) -> float:
        return self.ledger.cash

    get_cash = getcash

    def getvalue(self, datas=None) -> float:
        codes = [d._name for d in datas] if datas else list(self.positions)
        value = 0.0 if datas else self.ledger.cash
        for code in codes:
            pos = self.positions.get(code)
            if pos and pos.size:
                value += pos.size * self._price_of(code, pos.price)
        return value

    get_value = getvalue

    def _price_of(self, code: str, fallback: float) -> float:
        data = self._datas.get(code)
        if data is not None and len(data):
            return float(data.close[0])
        return self.ledger.last_price.get(code, fallback)

    def getposition(self, data, clone: bool = True) -> Position:
        pos = self.positions[data._name]
        return pos.clone() if clone else pos

    def local_shares(self) -> dict[str, int]:
        return self.ledger.shares()

    def orderstatus(self, order: bt.Order) -> int:
        return order.status

    def get_notification(self):
        try:
            return self.notifs.popleft()
        except IndexError:
            return None

    def notify(self, order: bt.Order) -> None:
        if order.data is not None:    # an order for a code without a feed is tracked, not announced
            self.notifs.append(order.clone())

    def open_live_orders(self) -> list[LiveOrder]:
        return self.book.open_orders()

    # ------------------------------------------------------------------ prices the strategy may use
    def market_of(self, data) -> Market:
        return self.markets.get(data._name, Market.KOSPI)

    def session_band(self, data) -> PriceBand:
        """The band of the session an order placed now would work in (see ``orders.SessionBands``)."""
        return self.bands.band(data, self.market_of(data))

    def reserve_price(self, data, exectype, price) -> float:
        if exectype in (None, bt.Order.Market, bt.Order.Close) or price is None:
            return float(self.session_band(data).upper)
        return float(price)

    def available_cash(self) -> float:
        return self.ledger.cash - self.book.reserved_cash()

    def pending_sell_qty(self, data) -> int:
        return self.book.offered_shares(data._name)

    # ------------------------------------------------------------------ orders
    def buy(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None, tradeid=0, oco=None,
            trailamount=None, trailpercent=None, parent=None, transmit=True, **kwargs):
        return self._order(bt.BuyOrder, owner, data, size, price, plimit, exectype, valid, tradeid, kwargs)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None, tradeid=0, oco=None,
             trailamount=None, trailpercent=None, parent=None, transmit=True, **kwargs):
        return self._order(bt.SellOrder, owner, data, size, price, plimit, exectype, valid, tradeid, kwargs)

    def _order(self, cls, owner, data, size, price, plimit, exectype, valid, tradeid, kwargs) -> bt.Order:
        order = cls(owner=owner, data=data, size=size, price=price, pricelimit=plimit, exectype=exectype, valid=valid,
                    tradeid=tradeid)
        order.addinfo(**kwargs)
        order.addcomminfo(self.getcommissioninfo(data))
        return self.submit(order)

    def submit(self, order: bt.Order) -> bt.Order:
        if order.exectype not in (bt.Order.Market, bt.Order.Limit, bt.Order.Stop, bt.Order.StopLimit, bt.Order.Close):
            return self._reject(order, f"{order.getordername()} orders are not supported on KIS "
                                       "(Market, Limit, Stop, StopLimit and Close are)")
        if order.exectype == bt.Order.Close and phase_at(self.store.now()) != Phase.CLOSING_AUCTION:
            return self._reject(order, "a Close (market-on-close) order can only be sent during the closing auction "
                                       "(15:20-15:30); KIS has no order type that waits for it")
        data = order.data
        market, day = self.market_of(data), order_session(self.store.now(), self.p.order_window)
        try:
            band = self.session_band(data)
        except Exception as exc:  # noqa: BLE001 - no quote, no order
            return self._reject(order, f"cannot get today's price band for {data._name}: {exc}")
        try:
            self.book.submit(order, band, day, market, price_rounding=self.p.price_rounding)
        except Refused as exc:
            return self._reject(order, str(exc))
        self.book.pump()   # a free worker sends it now, not at the next turn
        return order

    def _reject(self, order: bt.Order, reason: str) -> bt.Order:
        """Refused here, before any intent exists: nothing was sent."""
        order.addinfo(**{ORDER_REASON: reason})
        order.reject(self)
        self.notify(order)
        side = BUY if order.isbuy() else "sell"
        self._emit("rejection", code=order.data._name, side=side, qty=int(abs(order.created.size)), reason=reason,
                   ref=order.ref)
        self.journal.log("rejected", reason, payload={"ref": order.ref, "code": order.data._name})
        return order

    def cancel(self, order: bt.Order) -> None:
        lo = self.book.orders.get(order.ref)
        if lo is not None:
            self.book.cancel(lo)
            self.book.pump()

    def revise(self, order: bt.Order, price: float | None = None, size: int | None = None) -> bt.Order | None:
        """Change price (and optionally reduce size) of a working order: KIS answers with a new order
        number. Returns the backtrader order that carries on (the old one ends Canceled)."""
        lo = self.book.orders.get(order.ref)
        if lo is None:
            return None
        new = self.book.revise(lo, price, size, self.session_band(order.data), self.market_of(order.data))
        if new is not None:
            new.addcomminfo(self.getcommissioninfo(order.data))
            self.book.pump()
        return new

    # ------------------------------------------------------------------ the event loop (cerebro's thread)
    def next(self) -> None:
        self.store.begin_turn()
        self._drain()
        self.stops.check()
        self.book.pump()
        for key, n in self.book.expire_held(time.monotonic()):
            self.reconciler.foreign_notice(key, n)
        self.reconciler.tick()
        for hook in self.store.on_loop:
            try:
                hook()
            except Exception:  # the monitor must never stop the trader
                log.exception("loop hook failed")
        self.store.mark_loop()

    def _drain(self, budget: int = 10_000) -> None:
        for _ in range(budget):
            if self.store.inbox.empty():
                return
            event = self.store.inbox.get_nowait()
            try:
                self._handlers[type(event)](event)
            except Exception:  # keep trading; the journal and the checker will show what went wrong
                log.exception("failed to handle %s", type(event).__name__)
                self.journal.log("error", f"failed to handle {type(event).__name__}")

    def settled(self) -> bool:
        """No work due now (the store's ``idle`` asks; tests wait on it)."""
        return self.reconciler.settled()

    def _on_notice(self, ev: NoticeReceived) -> None:
        self.book.on_notice(ev.notice, ev.received)

    def _on_connection(self, ev: ConnectionChanged) -> None:
        self.ws_state = ev.state
        self.journal.log("ws", f"{ev.state} {ev.reason}".strip())
        self._emit("ws_state", state=ev.state, reason=ev.reason)

    def _on_reconnected(self, ev: Reconnected) -> None:
        self.journal.log("ws", "reconnected: recovering missed fills from inquire-daily-ccld")
        self.reconciler.read_day("reconnect")
        self.reconciler.check_due = True

    # ------------------------------------------------------------------ alerts
    def alert(self, kind: str, message: str, payload: dict[str, Any] | None = None, level: int = logging.ERROR) -> None:
        self.alerts.append({"time": self.store.now(), "kind": kind, "message": message})
        log.log(level, "ALERT %s: %s", kind, message)
        self.journal.log("alert", f"{kind}: {message}", payload=payload)
        self._emit("alert", alert_kind=kind, message=message)
        for strat in getattr(getattr(self, "cerebro", None), "runningstrats", []) or []:
            strat.notify_store("alert", kind=kind, message=message)

    def _on_mismatch(self, description: str) -> None:
        if self.p.stop_on_mismatch:
            for strat in getattr(self.cerebro, "runningstrats", []) or []:
                stop = getattr(strat, "stop_trading", None)
                if stop:
                    stop("reconciliation mismatch: " + description)

    # ------------------------------------------------------------------ restart
    def adopt_rebuilt_orders(self, owner) -> list[bt.Order]:
        """Hand the orders rebuilt at start to the strategy (called once it exists)."""
        return self.recovery.hand_over(owner)


KISStore.BrokerCls = KISBroker

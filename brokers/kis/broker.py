"""``KISBroker``: backtrader's BrokerBase on the KIS Open API (paper and live alike).

The strategy sees exactly what it sees in a backtest: ``buy``/``sell``/``cancel`` return backtrader
orders that go Submitted → Accepted → Partial → Completed / Canceled / Expired / Rejected,
``getposition``/``getcash``/``getvalue`` answer from a local book, and costs come from the same
``KRXCommInfo``. Underneath (DESIGN.md "Live order flow"):

1. ``submit``: tick rounding (buys down, sells up) or rejection, band check and buying-power
   check from the day's quote (a market buy is covered at the upper limit), no short sales, a
   journal intent, then the store's worker sends ``order-cash``. Orders placed outside the order
   window (a daily strategy deciding after the close) wait for the next session, like a DAY order
   in the backtest.
2. Replies and execution notices arrive on queues and are applied in ``next()`` on cerebro's
   thread. A notice for an order number the REST reply has not told us yet is held until the
   reply lands (the race PROTOCOL.md §7.1 describes); order numbers are compared as numbers.
3. Each fill notice is recorded in the journal under a key, so a duplicate notice is never
   counted twice (even across restarts); acknowledgements, which reuse the fill fields for the
   order quantity and price, never count as fills. A fill that shows up after the cancel ack is
   still applied to the book.
4. A POST that times out is looked up (by the worker) before anything else happens: one intent
   is never two orders. If KIS shows nothing, the order waits for a notice that claims it and is
   rejected after ``unknown_order_timeout_s``; it is never re-sent.
5. A revise is cancel + new order number (KIS): the old backtrader order ends Canceled with
   ``info.replaced_by``, a new one carries on with ``info.replaces``; the journal keeps the chain.
6. At the close, open DAY orders are confirmed with KIS (missing fills recovered) and Expired.
   After a WebSocket reconnect, missed fills are recovered from ``inquire-daily-ccld``.
7. The Account Manager's checker compares the local book with ``inquire-balance`` after trade
   actions (debounced) and on a timer; a mismatch is an alert with both sides shown, sent to the
   strategy as a store notification, and stops trading when configured.
8. On start the book is loaded from KIS, and today's open orders are rebuilt from KIS plus the
   journal before the strategy's first bar (crash recovery).
"""

from __future__ import annotations

import collections
import logging
import queue
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import backtrader as bt
from backtrader.position import Position

from brokers.kis.journal import Intent
from brokers.kis.store import KISStore, OrderRequest
from brokers.sim import ORDER_REASON, KRXCommInfo
from market.calendar import KST, krx_calendar
from market.costs import CostModel
from market.limits import PriceBand, price_band
from market.sessions import schedule
from market.ticks import Market, is_on_tick, round_to_tick

log = logging.getLogger("krx.kis.broker")

BUY, SELL = "buy", "sell"
MARKET_DVSN, LIMIT_DVSN = "01", "00"


@dataclass
class LiveOrder:
    """Broker-side state of one backtrader order at KIS."""

    order: bt.Order
    intent_id: str
    code: str
    side: str
    qty: int
    price: int                       # 0 = market
    ord_dvsn: str
    odno: int | None = None
    branch: str = ""
    state: str = "new"               # queued | sending | sent | unknown | final
    filled: int = 0
    filled_value: float = 0.0
    cancel_requested: bool = False
    cancel_odno: int | None = None
    sent_at: float | None = None     # monotonic
    unknown_since: float | None = None
    submitted_at: datetime | None = None
    replacement: dict[str, Any] | None = None   # pending revise: {"price", "qty", "new_order"}
    reserve: float = 0.0             # KRW per share reserved while a buy works (market: the upper limit)
    confirmed_until: datetime | None = None   # fills up to here are counted from KIS's own total
    trigger: float | None = None     # stop orders: held ("armed") until the last trade reaches this

    @property
    def remaining(self) -> int:
        return self.qty - self.filled


@dataclass
class DayQuote:
    band: PriceBand
    tick: int


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
        ("unknown_order_timeout_s", 60.0),
        ("hold_notice_s", 30.0),           # how long a notice for an unknown order number is kept
        ("close_grace_s", 30.0),           # after the close, wait this long before expiring orders
    )

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.store: KISStore = self.p.store
        self.cost_model: CostModel = self.p.cost_model or CostModel()
        self.markets: dict[str, Market] = dict(self.p.markets or {})
        self.notifs: collections.deque = collections.deque()
        self.positions: dict[str, Position] = collections.defaultdict(Position)
        self.last_price: dict[str, float] = {}
        self.cash = 0.0
        self.startingcash = 0.0
        self._orders: dict[int, LiveOrder] = {}          # bt ref -> LiveOrder
        self._by_odno: dict[int, LiveOrder] = {}         # KIS order number (as int) -> LiveOrder
        self._held: dict[int, list[tuple[float, Any]]] = collections.defaultdict(list)
        self._quotes: dict[tuple[str, date], DayQuote] = {}
        self._next_bands: dict[tuple[str, date, str], PriceBand] = {}
        self._datas: dict[str, bt.AbstractDataBase] = {}
        self._comminfo: dict[str, KRXCommInfo] = {}
        self._rebuilt: list[dict[str, Any]] = []
        self._last_check = 0.0
        self._check_due = False
        self._confirm_pending: set[int] = set()   # order refs to confirm with inquire-daily-ccld
        self._expired_day: date | None = None
        self.alerts: list[dict[str, Any]] = []
        self.listeners: list[Any] = []   # callables(kind, data): the monitor and alert router listen here
        self.recovered_fills = 0
        self.ws_state = "CONNECTING"
        self._mono = time.monotonic

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        super().start()
        self.store.start()
        snap = self.store.account.load()
        for code, row in snap.positions.iterrows():
            if int(row["shares"]):
                self.positions[code] = Position(size=int(row["shares"]), price=float(row["avg_price"]))
                self.last_price[code] = float(row["price"])
        self.cash = self.startingcash = float(snap.cash)
        self.store.journal.log("start", f"book loaded from KIS: {len(snap.shares())} position(s), "
                                        f"D+2 cash {snap.cash:,} KRW", payload={"positions": snap.shares()})
        self._recover_orders()
        self._last_check = self._mono()

    def stop(self) -> None:
        # apply what already arrived, so the book and the journal end complete, then close connections
        try:
            self._drain()
        finally:
            self.store.stop()
            super().stop()

    def add_data(self, data: bt.AbstractDataBase, market: Market | str | None = None) -> None:
        """Register a feed (called by the runner for every code)."""
        code = data._name
        self._datas[code] = data
        if market is not None:
            self.markets[code] = Market(market)
        ci = KRXCommInfo(cost_model=self.cost_model, market=self.markets.get(code, Market.KOSPI))
        ci.data = data
        self._comminfo[code] = ci

    def getcommissioninfo(self, data) -> KRXCommInfo:
        code = data._name
        if code not in self._comminfo:
            self.add_data(data)
        return self._comminfo[code]

    def _emit(self, kind: str, **data: Any) -> None:
        for listener in self.listeners:
            try:
                listener(kind, data)
            except Exception:  # a listener's bug must not break trading
                log.exception("broker listener failed on %s", kind)

    # ------------------------------------------------------------------ book
    def getcash(self) -> float:
        return self.cash

    get_cash = getcash

    def getvalue(self, datas=None) -> float:
        codes = [d._name for d in datas] if datas else list(self.positions)
        value = 0.0 if datas else self.cash
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
        return self.last_price.get(code, fallback)

    def getposition(self, data, clone: bool = True) -> Position:
        pos = self.positions[data._name]
        return pos.clone() if clone else pos

    def local_shares(self) -> dict[str, int]:
        return {c: int(p.size) for c, p in self.positions.items() if p.size}

    def orderstatus(self, order: bt.Order) -> int:
        return order.status

    def get_notification(self):
        try:
            return self.notifs.popleft()
        except IndexError:
            return None

    def notify(self, order: bt.Order) -> None:
        self.notifs.append(order.clone())

    # ------------------------------------------------------------------ helpers shared with the simulator API
    def market_of(self, data) -> Market:
        return self.markets.get(data._name, Market.KOSPI)

    def _quote(self, code: str) -> DayQuote:
        """The day's band and tick from ``inquire-price`` (one call per code per day: REST is scarce)."""
        day = self.store.today()
        key = (code, day)
        q = self._quotes.get(key)
        if q is None:
            raw = self.store.client.quote(code)
            q = DayQuote(PriceBand(base=int(raw.base_price), lower=int(raw.lower_limit), upper=int(raw.upper_limit)),
                         int(raw.tick))
            self._quotes[key] = q
        return q

    def session_band(self, data) -> PriceBand:
        """The band of the session an order placed now would work in.

        During the day that is today's band as KIS reports it (``stck_mxpr``/``stck_llam``). After the
        close (a daily strategy deciding on the day's bar) the order waits for the next session, whose
        base price is today's close: the band is computed with KRX's rule from it.
        """
        now = self.store.now().astimezone(KST)
        day = now.date()
        cal = krx_calendar()
        if cal.is_trading_day(day) and now < schedule(day).close:
            return self._quote(data._name).band
        key = (data._name, day, "next")
        band = self._next_bands.get(key)
        if band is None:
            base = float(data.close[0]) if len(data) else float(self.store.client.quote(data._name).price)
            band = price_band(int(round(base)), cal.next_trading_day(day), self.market_of(data))
            self._next_bands[key] = band
        return band

    def reserve_price(self, data, exectype, price) -> float:
        if exectype in (None, bt.Order.Market, bt.Order.Close) or price is None:
            return float(self.session_band(data).upper)
        return float(price)

    def available_cash(self) -> float:
        rate = float(self.cost_model.commission_rate)
        reserved = sum(lo.remaining * lo.reserve * (1 + rate)
                       for lo in self._orders.values() if lo.side == BUY and lo.state != "final")
        return self.cash - reserved

    def pending_sell_qty(self, data) -> int:
        code = data._name
        return sum(lo.remaining for lo in self._orders.values()
                   if lo.code == code and lo.side == SELL and lo.state != "final")

    # ------------------------------------------------------------------ order entry
    def _order(self, cls, owner, data, size, price, plimit, exectype, valid, tradeid, oco, trailamount,
               trailpercent, parent, transmit, kwargs) -> bt.Order:
        order = cls(owner=owner, data=data, size=size, price=price, pricelimit=plimit, exectype=exectype, valid=valid,
                    tradeid=tradeid, oco=oco, trailamount=trailamount, trailpercent=trailpercent, parent=parent,
                    transmit=transmit)
        order.addinfo(**kwargs)
        order.addcomminfo(self.getcommissioninfo(data))
        return self.submit(order)

    def buy(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None, tradeid=0, oco=None,
            trailamount=None, trailpercent=None, parent=None, transmit=True, **kwargs):
        return self._order(bt.BuyOrder, owner, data, size, price, plimit, exectype, valid, tradeid, oco, trailamount,
                           trailpercent, parent, transmit, kwargs)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None, tradeid=0, oco=None,
             trailamount=None, trailpercent=None, parent=None, transmit=True, **kwargs):
        return self._order(bt.SellOrder, owner, data, size, price, plimit, exectype, valid, tradeid, oco, trailamount,
                           trailpercent, parent, transmit, kwargs)

    def _reject(self, order: bt.Order, reason: str) -> bt.Order:
        order.addinfo(**{ORDER_REASON: reason})
        order.reject(self)
        self.notify(order)
        self._emit("rejection", code=order.data._name, side=BUY if order.isbuy() else SELL,
                   qty=int(abs(order.created.size)), reason=reason, ref=order.ref)
        self.store.journal.log("rejected", reason, payload={"ref": order.ref, "code": order.data._name})
        return order

    def submit(self, order: bt.Order) -> bt.Order:
        data, code = order.data, order.data._name
        side = BUY if order.isbuy() else SELL
        qty = abs(order.created.size)
        if qty != int(qty) or qty <= 0:
            return self._reject(order, f"quantity {order.created.size} must be a positive whole number of shares")
        qty = int(qty)
        if order.exectype not in (bt.Order.Market, bt.Order.Limit, bt.Order.Stop, bt.Order.StopLimit, bt.Order.Close):
            return self._reject(order, f"{order.getordername()} orders are not supported on KIS "
                                       "(Market, Limit, Stop, StopLimit and Close are)")
        if order.exectype == bt.Order.Close and not self._in_closing_auction():
            return self._reject(order, "a Close (market-on-close) order can only be sent during the closing auction "
                                       "(15:20-15:30); KIS has no order type that waits for it")
        day = self.store.today()
        market = self.market_of(data)
        price = 0
        ord_dvsn = MARKET_DVSN
        try:
            band = self.session_band(data)
        except Exception as exc:  # noqa: BLE001 - no quote, no order
            return self._reject(order, f"cannot get today's price band for {code}: {exc}")
        trigger = None
        if order.exectype in (bt.Order.Stop, bt.Order.StopLimit):
            # held here and sent as market/limit when the live price reaches the trigger (KIS's own
            # stop-limit, ORD_DVSN 22, exists on real accounts only; this works on both)
            trigger = float(round_to_tick(float(order.created.price), day, market, "up" if side == BUY else "down"))
            order.created.price = order.price = trigger
        if order.exectype in (bt.Order.Limit, bt.Order.StopLimit):
            ord_dvsn = LIMIT_DVSN
            p = float(order.created.pricelimit if order.exectype == bt.Order.StopLimit else order.created.price)
            if not is_on_tick(p, day, market):
                if self.p.price_rounding == "reject":
                    return self._reject(order, f"price {p:,.2f} is not on the tick grid ({market.value}, {day})")
                p = float(round_to_tick(p, day, market, "down" if side == BUY else "up"))
                if order.exectype == bt.Order.StopLimit:
                    order.created.pricelimit = order.pricelimit = p
                else:
                    order.created.price = order.price = p
            if not band.contains(p):
                where = "above the upper" if p > band.upper else "below the lower"
                return self._reject(order, f"limit price {p:,.0f} is {where} limit of {day} "
                                           f"(band {band.lower:,}–{band.upper:,}, base {band.base:,})")
            price = int(p)
        if side == BUY:
            per_share = price or band.upper
            need = qty * per_share * (1 + float(self.cost_model.commission_rate))
            free = self.available_cash()
            if need > free + 1e-6:
                return self._reject(order, f"insufficient buying power: {qty:,} sh x {per_share:,} + commission = "
                                           f"{need:,.0f} KRW, available {free:,.0f} KRW")
        else:
            held = int(self.positions[code].size)
            sellable = held - self.pending_sell_qty(data)
            if qty > sellable:
                return self._reject(order, f"sell {qty:,} sh exceeds sellable {sellable:,} sh (held {held:,}); "
                                           "short selling is not allowed")
        intent = self.store.journal.new_intent(code=code, side=side, qty=qty, price=price, ord_dvsn=ord_dvsn,
                                               bt_ref=order.ref, session_day=day,
                                               replaces=order.info.get("replaces_intent"))
        lo = LiveOrder(order, intent.id, code, side, qty, price, ord_dvsn, submitted_at=self.store.now(),
                       reserve=float(price or band.upper) if side == BUY else 0.0, trigger=trigger)
        self._orders[order.ref] = lo
        order.submit(self)
        self.notify(order)
        if trigger is not None:
            lo.state = "armed"
            order.accept(self)
            self.notify(order)
            self.store.journal.update_intent(intent.id, reason=f"stop held by the broker, trigger {trigger:,.0f}")
            self.store.journal.log("armed", f"{side} stop {qty} {code} at {trigger:,.0f}", intent_id=intent.id)
        elif self._window_open():
            self._send_new(lo)
        else:
            lo.state = "queued"
            self.store.journal.update_intent(intent.id, state="SUBMITTING", reason="queued for the next session")
            self.store.journal.log("queued", f"{side} {qty} {code} waits for the order window",
                                   intent_id=intent.id)
        return order

    def _window_open(self, now: datetime | None = None) -> bool:
        now = (now or self.store.now()).astimezone(KST)
        if not krx_calendar().is_trading_day(now.date()):
            return False
        day = schedule(now.date())
        start = day.order_entry if self.p.order_window == "extended" else day.open
        return start <= now < day.close

    def _send_new(self, lo: LiveOrder) -> None:
        lo.state = "sending"
        lo.sent_at = self._mono()
        lo.submitted_at = self.store.now()
        self.store.journal.update_intent(lo.intent_id, state="SENT")
        self.store.journal.log("request", f"order-cash {lo.side} {lo.qty} {lo.code} @ {lo.price or 'market'}",
                               intent_id=lo.intent_id)
        self.store.send(OrderRequest("new", lo.intent_id, lo.code, lo.side, lo.qty, lo.price, lo.ord_dvsn,
                                     submitted_at=lo.submitted_at, known_odnos=lambda: set(self._by_odno)))

    def cancel(self, order: bt.Order) -> None:
        lo = self._orders.get(order.ref)
        if lo is None or lo.state == "final" or lo.cancel_requested:
            return
        if lo.state in ("queued", "armed"):
            self._finish(lo, bt.Order.Canceled, "cancelled before it was sent")
            return
        lo.cancel_requested = True
        if lo.odno is None:
            return  # sent but no reply yet: the cancel goes out when the order number arrives
        self._send_cancel(lo)

    def _send_cancel(self, lo: LiveOrder) -> None:
        self.store.journal.log("request", f"cancel of {lo.odno}", intent_id=lo.intent_id, odno=str(lo.odno))
        self.store.send(OrderRequest("cancel", lo.intent_id, lo.code, lo.side, None, 0, lo.ord_dvsn,
                                     branch=lo.branch, orig_odno=str(lo.odno)))

    def revise(self, order: bt.Order, price: float | None = None, size: int | None = None) -> bt.Order | None:
        """Change price (and optionally reduce size) of a working order: KIS answers with a new
        order number. Returns the backtrader order that carries on (the old one ends Canceled)."""
        lo = self._orders.get(order.ref)
        if lo is None or lo.state == "final" or lo.odno is None or lo.cancel_requested:
            return None
        new_qty = int(size) if size is not None else lo.remaining
        if not 0 < new_qty <= lo.remaining:
            raise ValueError(f"revised size must be 1..{lo.remaining} (the unfilled rest), got {size}")
        market, day = self.market_of(order.data), self.store.today()
        p = int(round_to_tick(price, day, market, "down" if lo.side == BUY else "up")) if price else lo.price
        band = self.session_band(order.data)
        if p and not band.contains(p):
            raise ValueError(f"revised price {p:,} is outside the band {band.lower:,}–{band.upper:,}")
        cls = bt.BuyOrder if lo.side == BUY else bt.SellOrder
        new = cls(owner=order.owner, data=order.data, size=new_qty, price=p or None,
                  exectype=bt.Order.Limit if p else bt.Order.Market)
        new.addcomminfo(self.getcommissioninfo(order.data))
        new.addinfo(replaces=order.ref)
        lo.replacement = {"price": p, "qty": new_qty, "new_order": new}
        lo.cancel_requested = True
        self.store.journal.log("request", f"revise of {lo.odno} to {new_qty} @ {p or 'market'}",
                               intent_id=lo.intent_id, odno=str(lo.odno))
        self.store.send(OrderRequest("revise", lo.intent_id, lo.code, lo.side, new_qty if size is not None else None,
                                     p, LIMIT_DVSN if p else MARKET_DVSN, branch=lo.branch, orig_odno=str(lo.odno)))
        return new

    # ------------------------------------------------------------------ the event loop (cerebro's thread)
    def next(self) -> None:
        self._drain()
        now = self._mono()
        for lo in list(self._orders.values()):
            if lo.state == "queued" and self._window_open():
                self._send_new(lo)
            elif lo.state == "armed" and self._triggered(lo):
                self.store.journal.log("triggered", f"stop {lo.side} {lo.code} at {lo.trigger:,.0f}",
                                       intent_id=lo.intent_id)
                if self._window_open():
                    self._send_new(lo)
                else:
                    lo.state = "queued"
            elif lo.state == "unknown" and lo.unknown_since and now - lo.unknown_since > self.p.unknown_order_timeout_s:
                self._finish(lo, bt.Order.Rejected, "order POST timed out and KIS shows no such order; "
                                                    "it was not re-sent")
        self._expire_held_notices(now)
        if self._confirm_pending:
            los = [self._orders[r] for r in self._confirm_pending if r in self._orders]
            self._confirm_pending.clear()
            self._confirm_with_kis(los, reason="duplicate fill notice", finalize=False)
        self._session_close_expiry()
        if (self._check_due and now - self._last_check >= self.p.reconcile_debounce_s and not self._in_flight()) \
                or now - self._last_check >= self.p.reconcile_every_s:
            self.reconcile()
        for hook in self.store.on_loop:
            try:
                hook()
            except Exception:  # the monitor must never stop the trader
                log.exception("loop hook failed")
        self.store.mark_loop()

    def _triggered(self, lo: LiveOrder) -> bool:
        last = self.store.last_prices.get(lo.code)
        if last is None:
            return False
        return last >= lo.trigger if lo.side == BUY else last <= lo.trigger

    def _in_closing_auction(self) -> bool:
        from market.sessions import Phase, phase_at

        return phase_at(self.store.now()) == Phase.CLOSING_AUCTION

    def _in_flight(self) -> bool:
        return any(lo.state in ("sending", "unknown") for lo in self._orders.values())

    def _drain(self, budget: int = 10_000) -> None:
        for _ in range(budget):
            try:
                kind, payload = self.store.events.get_nowait()
            except queue.Empty:
                return
            try:
                getattr(self, f"_on_{kind}")(payload)
            except Exception:  # keep trading; the journal and the checker will show what went wrong
                log.exception("failed to handle %s event", kind)
                self.store.journal.log("error", f"failed to handle {kind} event")

    def settle(self) -> None:
        """Before the checker's re-check: apply everything already received, then bring today's
        orders in line with KIS's own totals (a fill whose notice is still on its way is booked now)."""
        self._drain()
        los = [lo for lo in self._orders.values() if lo.odno is not None]
        if los:
            self._confirm_with_kis(los, reason="reconciliation re-check", finalize=False)

    # ---- replies from the worker
    def _lo_for_intent(self, intent_id: str) -> LiveOrder | None:
        for lo in self._orders.values():
            if lo.intent_id == intent_id:
                return lo
        return None

    def _on_reply(self, payload) -> None:
        req, reply, latency = payload
        lo = self._lo_for_intent(req.intent_id)
        self.store.journal.log("reply", f"{req.kind}: {reply.msg_cd} {reply.msg1} odno={reply.odno}",
                               intent_id=req.intent_id, odno=reply.odno, payload={"latency_s": round(latency, 4)})
        if lo is None:
            return
        if req.kind == "new":
            self._adopt(lo, reply.odno, reply.branch)
        elif req.kind == "cancel":
            lo.cancel_odno = int(reply.odno)
            self._by_odno[int(reply.odno)] = lo
            self._replay_held(int(reply.odno))
        elif req.kind == "revise":
            self._revised(lo, reply.odno, reply.branch or lo.branch)

    def _adopt(self, lo: LiveOrder, odno: str, branch: str) -> None:
        key = int(odno)
        lo.odno, lo.branch = key, branch or lo.branch
        self._by_odno[key] = lo
        if lo.state != "final":
            lo.state = "sent"
        self.store.journal.update_intent(lo.intent_id, odno=str(odno), branch=lo.branch, state="ACCEPTED")
        if lo.order.status in (bt.Order.Created, bt.Order.Submitted):
            lo.order.accept(self)
            self.notify(lo.order)
        self._replay_held(key)
        if lo.cancel_requested and lo.state != "final" and lo.replacement is None:
            self._send_cancel(lo)

    def _revised(self, lo: LiveOrder, new_odno: str, branch: str) -> None:
        """KIS accepted a revise: the unfilled rest now lives under ``new_odno`` as a new order."""
        rep = lo.replacement or {}
        new: bt.Order = rep.get("new_order")
        if new is None:
            return
        intent = self.store.journal.new_intent(code=lo.code, side=lo.side, qty=rep["qty"], price=rep["price"],
                                               ord_dvsn=LIMIT_DVSN if rep["price"] else MARKET_DVSN,
                                               bt_ref=new.ref, session_day=self.store.today(), replaces=lo.intent_id)
        nlo = LiveOrder(new, intent.id, lo.code, lo.side, rep["qty"], rep["price"], intent.ord_dvsn,
                        submitted_at=self.store.now(),
                        reserve=float(rep["price"] or self.session_band(new.data).upper) if lo.side == BUY else 0.0)
        self._orders[new.ref] = nlo
        new.submit(self)
        self.notify(new)
        lo.order.addinfo(replaced_by=new.ref)
        lo.replacement = None
        self._finish(lo, bt.Order.Canceled, f"replaced by a revision (new order number {int(new_odno)})",
                     journal_state="REPLACED")
        self._adopt(nlo, new_odno, branch)

    def _on_rejected(self, payload) -> None:
        req, exc = payload
        lo = self._lo_for_intent(req.intent_id)
        msg = f"{getattr(exc, 'msg_cd', '')} {getattr(exc, 'msg1', str(exc))}".strip()
        self.store.journal.log("reply", f"{req.kind} rejected by KIS: {msg}", intent_id=req.intent_id)
        if lo is None:
            return
        if req.kind == "new":
            self._finish(lo, bt.Order.Rejected, f"KIS rejected the order: {msg}")
        elif req.kind in ("cancel", "revise"):
            lo.cancel_requested = False
            lo.replacement = None
            self._confirm_with_kis([lo], reason=f"{req.kind} refused by KIS ({msg})")

    def _on_failed(self, payload) -> None:
        req, exc = payload
        lo = self._lo_for_intent(req.intent_id)
        self.store.journal.log("error", f"{req.kind} failed: {exc}", intent_id=req.intent_id)
        if lo is None:
            return
        if req.kind == "new":
            self._finish(lo, bt.Order.Rejected, f"order could not be sent: {exc}")
        else:
            lo.cancel_requested = False
            lo.replacement = None

    def _on_timeout(self, payload) -> None:
        req, found = payload
        lo = self._lo_for_intent(req.intent_id)
        if lo is None:
            return
        if req.kind != "new":
            lo.cancel_requested = False
            self._confirm_with_kis([lo], reason=f"{req.kind} POST timed out")
            return
        if found is not None:
            found, asked_at = found
            self.store.journal.log("recovered", f"timed-out POST found at KIS as {found.odno}",
                                   intent_id=lo.intent_id, odno=str(found.odno))
            self._adopt(lo, str(found.odno), found.branch)
            if int(found.filled_qty) > lo.filled:
                self._recover_fill(lo, int(found.filled_qty), float(found.avg_fill_price))
            lo.confirmed_until = asked_at   # the lookup counted every fill up to then
            return
        lo.state = "unknown"
        lo.unknown_since = self._mono()
        self.store.journal.update_intent(lo.intent_id, state="UNKNOWN",
                                         reason="POST timed out; not found at KIS yet; not re-sent")

    # ---- WebSocket events
    def _on_ws_state(self, payload) -> None:
        name, reason = payload
        self.ws_state = name
        self.store.journal.log("ws", f"{name} {reason}".strip())
        self._emit("ws_state", state=name, reason=reason)

    def _on_reconnected(self, _payload) -> None:
        self.store.journal.log("ws", "reconnected: recovering missed fills from inquire-daily-ccld")
        open_los = [lo for lo in self._orders.values() if lo.odno is not None and lo.state != "final"]
        if open_los:
            self._confirm_with_kis(open_los, reason="after reconnect", finalize=False)
        self._check_due = True

    def _on_notice(self, n) -> None:
        self.store.journal.log("notice", self._describe_notice(n), odno=str(n.odno),
                               payload={"kind": n.kind, "fill": n.is_fill, "refused": n.refused, "qty": n.qty,
                                        "price": n.price, "acpt": n.acpt, "orig": n.orig_odno})
        key = int(n.odno)
        lo = self._by_odno.get(key)
        if lo is None and n.kind in ("revise", "cancel") and n.orig_odno:
            lo = self._by_odno.get(int(n.orig_odno))
        if lo is None:
            lo = self._claim_unknown(n)
        if lo is None:
            self._held[key].append((self._mono(), n))
            return
        self._apply_notice(lo, n)

    @staticmethod
    def _describe_notice(n) -> str:
        what = "fill" if n.is_fill else ("refusal" if n.refused else "ack")
        return f"{what} {n.kind} {n.side} {n.code} odno={int(n.odno)} qty={n.qty} price={n.price}"

    def _claim_unknown(self, n):
        """A notice may reveal an order whose POST timed out: same code, side, quantity and price."""
        if n.kind != "new":
            return None
        for lo in self._orders.values():
            if (lo.state == "unknown" and lo.code == n.code and lo.side == n.side
                    and lo.qty == int(n.order_qty or n.qty) and lo.price == int(n.effective_order_price or 0)):
                self._adopt(lo, n.odno, n.branch)
                return lo
        return None

    def _replay_held(self, key: int) -> None:
        for _, n in self._held.pop(key, []):
            lo = self._by_odno.get(key)
            if lo is not None:
                self._apply_notice(lo, n)

    def _expire_held_notices(self, now: float) -> None:
        for key in list(self._held):
            items = self._held[key]
            if items and now - items[0][0] > self.p.hold_notice_s:
                n = items[0][1]
                del self._held[key]
                self.alert("foreign_order", f"notice for order {key} ({n.side} {n.code}) that this process did not "
                                            "send: an order from another app (HTS/MTS)?", payload={"odno": key})
                self._check_due = True
                self._last_check = 0.0  # check right away: the book is about to disagree

    def _apply_notice(self, lo: LiveOrder, n) -> None:
        if n.refused:
            if n.kind == "new":
                self._finish(lo, bt.Order.Rejected, f"KIS refused the order (notice, code {n.code})")
            else:
                lo.cancel_requested = False
                lo.replacement = None
                self.store.journal.log("notice", f"{n.kind} refused for {lo.odno}", intent_id=lo.intent_id)
            return
        if not n.is_fill:
            # acknowledgements reuse CNTG_QTY/CNTG_UNPR for the order's quantity and price: never a fill
            if n.kind == "new":
                if lo.order.status in (bt.Order.Created, bt.Order.Submitted):
                    lo.order.accept(self)
                    self.notify(lo.order)
            elif n.kind == "cancel" and lo.state != "final":
                lo.cancel_odno = int(n.odno)
                self._by_odno[int(n.odno)] = lo
                self._finish(lo, bt.Order.Canceled, "cancelled at KIS (only the unfilled rest)",
                             journal_state="CANCELLED")
            return
        # a fill: the notice's own quantity and price (no cumulative quantity on the wire)
        key = f"n|{int(n.odno)}|{n.time:%Y%m%d%H%M%S}|{int(n.qty)}|{int(n.price)}"
        qty = int(n.qty)
        if lo.confirmed_until is not None and n.time <= lo.confirmed_until:
            # KIS's own total for this order, read at confirmed_until, already covers every fill up to
            # then (booked as recovered if we had missed it): a notice from before that moment arriving
            # now is late, reordered or repeated, and is not booked again. Notices carry whole seconds,
            # so a fill in the same second as the check is taken as covered; if KIS had not counted it,
            # the next check recovers it (an undercount heals, an overcount would not).
            self.store.journal.log("notice", f"fill notice covered by KIS's count at {lo.confirmed_until:%H:%M:%S}",
                                   odno=str(lo.odno), intent_id=lo.intent_id, payload={"key": key})
            return
        self._apply_fill(lo, qty, float(n.price), n.time, key=key)

    # ------------------------------------------------------------------ fills and the book
    def _apply_fill(self, lo: LiveOrder, qty: int, price: float, when: datetime, key: str, source: str = "notice",
                    book: bool = True) -> None:
        if qty <= 0:
            return
        comminfo = self.getcommissioninfo(lo.order.data)
        size = qty if lo.side == BUY else -qty
        commission, tax = comminfo.breakdown(size, price, when.astimezone(KST).date())
        if not self.store.journal.record_fill(fill_key=key, intent_id=lo.intent_id, odno=str(lo.odno), ts=when,
                                              code=lo.code, side=lo.side, qty=qty, price=price,
                                              commission=commission, tax=tax, source=source):
            # KIS notices carry no fill id: an identical notice is a resend, but two real fills of the same
            # size and price in the same second look the same. Ignore it, and let KIS settle which it was.
            self.store.journal.log("duplicate", f"duplicate fill notice ignored: {key}", intent_id=lo.intent_id)
            if source == "notice":
                self._confirm_pending.add(lo.order.ref)
            return
        if qty > lo.remaining:
            self.alert("overfill", f"order {lo.odno} filled {lo.filled + qty} of {lo.qty} sh", payload={"odno": lo.odno})
        position = self.positions[lo.code]
        pprice_orig = position.price
        if book:
            psize, pprice, opened, closed = position.update(size, price)
            self.cash += (-1 if lo.side == BUY else 1) * qty * price - commission - tax
        else:  # already in the book KIS gave us at start: record the execution only
            psize, pprice = position.size, position.price
            opened, closed = (size, 0) if lo.side == BUY else (0, size)
        self.last_price[lo.code] = price
        log.info("fill %s %s %d @ %s (order %s, %s)", lo.side, lo.code, qty, f"{price:,.0f}", lo.odno, source)
        lo.filled += qty
        lo.filled_value += qty * price
        pnl = comminfo.profitandloss(-closed, pprice_orig, price) if closed else 0.0
        dt = bt.date2num(when.astimezone(KST).replace(tzinfo=None))
        was_final = lo.state == "final"
        status_before = lo.order.status
        comm = float(commission + tax)
        lo.order.execute(dt, size, price, closed, comminfo.getoperationcost(closed, pprice_orig),
                         comm if closed else 0.0, opened, comminfo.getoperationcost(opened, price),
                         comm if opened else 0.0, price, pnl, psize, pprice)
        lo.order.addcomminfo(comminfo)
        if was_final:
            lo.order.status = status_before  # a late fill after the cancel ack: keep Canceled, book the shares
        elif lo.remaining <= 0:
            lo.order.completed()
            self._finish(lo, bt.Order.Completed, "", notify=False)
        else:
            lo.order.partial()
        self.notify(lo.order)
        state = "FILLED" if lo.remaining <= 0 else ("PARTIAL" if not was_final else None)
        changes = {"filled_qty": lo.filled, "filled_value": int(round(lo.filled_value))}
        if state:
            changes["state"] = state
        self.store.journal.update_intent(lo.intent_id, **changes)
        self._check_due = True
        self._emit("fill", code=lo.code, side=lo.side, qty=qty, price=price, odno=lo.odno, source=source,
                   commission=commission, tax=tax, time=when)

    def _recover_fill(self, lo: LiveOrder, kis_filled: int, kis_avg: float, book: bool = True) -> None:
        """KIS counts more filled shares than we do (a missed notice): book the difference."""
        missing = kis_filled - lo.filled
        if missing <= 0:
            return
        price = (kis_avg * kis_filled - lo.filled_value) / missing if kis_avg else lo.order.created.price
        self.recovered_fills += 1
        self._apply_fill(lo, missing, round(price, 4), self.store.now(), key=f"r|{lo.odno}|{kis_filled}",
                         source="recovered", book=book)

    def _todays_orders(self, what: str) -> dict[int, Any] | None:
        """Today's orders at KIS by number (``inquire-daily-ccld``), or None after an alert."""
        day = self.store.today()
        try:
            rows = self.store.client.daily_orders(day, day)
        except Exception as exc:  # noqa: BLE001 - a failed inquiry is itself worth an alert
            self.alert("check_failed", f"could not read today's orders at KIS ({what}): {exc}")
            return None
        return {int(r.odno): r for r in rows}

    def _confirm_with_kis(self, los: list[LiveOrder], reason: str, finalize: bool = True) -> None:
        """Bring orders in line with ``inquire-daily-ccld``: recover fills; finish what KIS finished."""
        asked_at = self.store.now()   # KIS's totals include at least every fill up to this moment
        by_odno = self._todays_orders(reason)
        if by_odno is None:
            return
        for lo in los:
            row = by_odno.get(lo.odno) if lo.odno is not None else None
            if row is None:
                continue
            self._recover_fill(lo, int(row.filled_qty), float(row.avg_fill_price))
            lo.confirmed_until = max(filter(None, (lo.confirmed_until, asked_at)))
            if finalize and lo.state != "final":
                if lo.remaining <= 0:
                    continue
                if row.cancelled or int(row.remaining_qty) == 0:
                    self._finish(lo, bt.Order.Canceled, f"cancelled at KIS ({reason})", journal_state="CANCELLED")

    def _finish(self, lo: LiveOrder, status: int, reason: str, notify: bool = True,
                journal_state: str | None = None) -> None:
        if lo.state == "final":
            return
        lo.state = "final"
        if reason:
            lo.order.addinfo(**{ORDER_REASON: reason})
        if status == bt.Order.Canceled:
            lo.order.cancel()
        elif status == bt.Order.Rejected:
            lo.order.reject(self)
        elif status == bt.Order.Expired:
            lo.order.status = bt.Order.Expired
        elif status == bt.Order.Completed:
            lo.order.completed()
        if notify:
            self.notify(lo.order)
        if status == bt.Order.Rejected:
            self._emit("rejection", code=lo.code, side=lo.side, qty=lo.qty, reason=reason, ref=lo.order.ref)
        state = journal_state or {bt.Order.Canceled: "CANCELLED", bt.Order.Rejected: "REJECTED",
                                  bt.Order.Expired: "EXPIRED", bt.Order.Completed: "FILLED"}[status]
        self.store.journal.update_intent(lo.intent_id, state=state, reason=reason)
        self._check_due = True

    # ------------------------------------------------------------------ end of session
    def _session_close_expiry(self) -> None:
        now = self.store.now().astimezone(KST)
        day = now.date()
        if self._expired_day == day or not krx_calendar().is_trading_day(day):
            return
        if now < schedule(day).close + timedelta(seconds=self.p.close_grace_s):
            return
        self._expired_day = day
        open_los = [lo for lo in self._orders.values() if lo.state not in ("final", "queued")]
        if not open_los:
            return
        self._drain()
        self._confirm_with_kis([lo for lo in open_los if lo.odno is not None], reason="at the close",
                               finalize=False)
        for lo in open_los:
            if lo.state != "final":
                self._finish(lo, bt.Order.Expired, f"DAY order unfilled at the close of {day}; KIS cancels it "
                                                   "overnight", journal_state="EXPIRED")

    # ------------------------------------------------------------------ reconciliation
    def reconcile(self):
        """The Account Manager's checker; a mismatch becomes an alert (and may stop trading)."""
        from brokers.kis.account import LocalBook

        self._last_check = self._mono()
        self._check_due = False
        try:
            result = self.store.account.check(lambda: LocalBook(self.local_shares(), self.cash), settle=self.settle)
        except Exception as exc:  # noqa: BLE001 - a failed check is itself worth an alert
            self.alert("check_failed", f"reconciliation could not run: {exc}")
            return None
        self.store.journal.log("reconcile", result.describe(),
                               payload={"ok": result.ok, "local": self.local_shares(), "cash": round(self.cash),
                                        "kis": result.kis.shares() if result.kis else {},
                                        "kis_cash": result.kis.cash if result.kis else None})
        if not result.ok:
            self.alert("reconcile_mismatch", "local book differs from KIS: " + result.describe(),
                       payload={"differences": result.differences})
            if self.p.stop_on_mismatch:
                for strat in getattr(self.cerebro, "runningstrats", []) or []:
                    stop = getattr(strat, "stop_trading", None)
                    if stop:
                        stop("reconciliation mismatch: " + result.describe())
        return result

    def alert(self, kind: str, message: str, payload: dict[str, Any] | None = None) -> None:
        entry = {"time": self.store.now(), "kind": kind, "message": message}
        self.alerts.append(entry)
        log.error("ALERT %s: %s", kind, message)
        self.store.journal.log("alert", f"{kind}: {message}", payload=payload)
        self._emit("alert", alert_kind=kind, message=message)
        for strat in getattr(getattr(self, "cerebro", None), "runningstrats", []) or []:
            strat.notify_store("alert", kind=kind, message=message)

    # ------------------------------------------------------------------ crash recovery
    def _recover_orders(self) -> None:
        """Rebuild today's open orders from KIS and the journal (before the strategy's first bar)."""
        journal = self.store.journal
        day = self.store.today()
        by_odno = self._todays_orders("at start")
        if by_odno is None:
            return
        rows = list(by_odno.values())
        mine: dict[int, Intent] = {}
        for intent in journal.intents_for_day(day):
            if intent.odno:
                mine[int(intent.odno)] = intent
        for intent in journal.open_intents():
            if intent.odno:
                row = by_odno.get(int(intent.odno))
                if row is None:
                    journal.update_intent(intent.id, state="EXPIRED" if intent.session_day < day.isoformat()
                                          else "REJECTED", reason="not at KIS on restart")
                    continue
            else:
                row = self._match_orphan(intent, rows, set(mine))
                if row is None:
                    journal.update_intent(intent.id, state="REJECTED",
                                          reason="process stopped before KIS answered; KIS has no such order")
                    continue
                journal.update_intent(intent.id, odno=str(row.odno), branch=row.branch)
                mine[int(row.odno)] = intent
            self._record_recovered_fills(intent, row)
            if int(row.remaining_qty) > 0 and not row.cancelled:
                journal.update_intent(intent.id, state="ACCEPTED" if int(row.filled_qty) == 0 else "PARTIAL",
                                      filled_qty=int(row.filled_qty))
                self._rebuilt.append({"intent": intent, "row": row})
            else:
                state = "FILLED" if int(row.filled_qty) >= int(row.qty) else "CANCELLED"
                journal.update_intent(intent.id, state=state, filled_qty=int(row.filled_qty))
        for odno, row in by_odno.items():
            if odno not in mine and int(row.remaining_qty) > 0 and not row.cancelled:
                self.alert("foreign_order", f"open order {odno} ({row.side} {row.qty} {row.code}) at KIS was not "
                                            "placed by this trader", payload={"odno": odno})
        if self._rebuilt:
            journal.log("recovered", f"{len(self._rebuilt)} open order(s) rebuilt from KIS and the journal")

    @staticmethod
    def _match_orphan(intent: Intent, rows, taken: set[int]):
        for row in rows:
            if (int(row.odno) not in taken and row.code == intent.code and row.side == intent.side
                    and int(row.qty) == intent.qty and int(row.price) == intent.price):
                return row
        return None

    def _record_recovered_fills(self, intent: Intent, row) -> None:
        have = sum(f["qty"] for f in self.store.journal.fills_for(intent_id=intent.id))
        missing = int(row.filled_qty) - have
        if missing > 0:
            self.store.journal.record_fill(fill_key=f"r|{int(row.odno)}|{int(row.filled_qty)}", intent_id=intent.id,
                                           odno=str(row.odno), ts=self.store.now(), code=intent.code, side=intent.side,
                                           qty=missing, price=float(row.avg_fill_price), commission=0, tax=0,
                                           source="recovered")

    def adopt_rebuilt_orders(self, owner) -> list[bt.Order]:
        """Hand the rebuilt open orders to the strategy (called once it exists)."""
        out = []
        for item in self._rebuilt:
            intent, row = item["intent"], item["row"]
            data = self._datas.get(intent.code)
            if data is None:
                self.alert("orphan_order", f"open order {row.odno} for {intent.code}: no data feed for that code")
                continue
            cls = bt.BuyOrder if intent.side == BUY else bt.SellOrder
            # simulated=True: the feed has no bar yet before the first one, and backtrader would read it
            order = cls(owner=owner, data=data, size=int(row.remaining_qty),
                        price=intent.price or None, simulated=True,
                        exectype=bt.Order.Limit if intent.price else bt.Order.Market)
            order.addcomminfo(self.getcommissioninfo(data))
            order.addinfo(recovered=True, odno=int(row.odno))
            lo = LiveOrder(order, intent.id, intent.code, intent.side, int(row.remaining_qty), intent.price,
                           intent.ord_dvsn, odno=int(row.odno), branch=row.branch or "", state="sent",
                           reserve=float(intent.price or self.session_band(data).upper) if intent.side == BUY else 0.0)
            self._orders[order.ref] = lo
            self._by_odno[int(row.odno)] = lo
            order.submit(self)
            order.accept(self)
            self.notify(order)
            self.store.journal.update_intent(intent.id, bt_ref=order.ref)
            out.append(order)
        self._rebuilt.clear()
        return out

    # ------------------------------------------------------------------ introspection
    def open_live_orders(self) -> list[LiveOrder]:
        return [lo for lo in self._orders.values() if lo.state != "final"]

"""The order book: orders from the strategy to KIS and fills back into the book.

Read this file with ``broker.py`` (the strategy's side), ``store.py`` (the threads that send),
``client.py`` (the wire) and ``lifecycle.py`` (states and the journal): that is the whole round trip.

* **Entry** (``submit``): KRX acceptance checks (``market/acceptance.py``, the same the simulator
  and the emulator apply), then an intent in the journal (``Lifecycle.open``). Nothing is sent
  from here: the order is QUEUED.
* **The pump** (``pump``, every broker turn) hands QUEUED orders to the store's order workers while
  one is free, the order's window is open and the trader has not stopped, moving each to SENDING
  (journaled, with ``sent_at``, *before* the POST leaves). A queued order is an intent with a
  state: cancelling it before it leaves costs nothing, and it is never sent after its window closed
  or after the trader stopped. At most one un-numbered POST per identity (code, side, quantity,
  price) is in flight, so an answer-less order can always be told apart from its twin.
* **Outcomes** (``on_placed``/``on_refused``/``on_ambiguous``/``on_not_sent``): only a clear answer
  from KIS makes an order REJECTED; an unclear one makes it UNKNOWN (``reconcile.py`` resolves it at
  KIS) and blocks new orders on that code and side until then.
* **Notices and fills** (``on_notice``, ``book_fills``): one rule, idempotent by construction. Per
  order, the booked quantity follows KIS's cumulative filled quantity, seen two ways: the running
  total of the order's *distinct* fill notices, and the largest total a look-up read. The book
  takes the larger of the two, never their sum, so a notice for a fill a look-up already counted
  (or the reverse, or a repeat) books nothing, whatever the order in which they arrive.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

import backtrader as bt
from backtrader.position import Position

from brokers.kis.events import PostAmbiguous, PostNotSent, PostPlaced, PostRefused, PostRequest
from brokers.kis.journal import FillRow, NoticeRow
from brokers.kis.lifecycle import Lifecycle, LiveOrder, OrderState as S
from market.acceptance import (band_refusal, buying_power_refusal, order_session, quantity_refusal,
                               reserve_price, sellable_refusal, tick_refusal, window_bounds)
from market.calendar import KST, krx_calendar
from market.limits import PriceBand, price_band
from market.ticks import round_to_tick

log = logging.getLogger(__name__)

BUY, SELL = "buy", "sell"
CANCEL_CONFIRM_S = 5
"""Exchange seconds after a cancel's reply before the order is looked up, if no notice ended it."""
MARKET_DVSN, LIMIT_DVSN = "01", "00"


@dataclass
class Ledger:
    """Positions and cash as the trader books them (KIS's D+2 cash definition, see account.py)."""

    cash: float = 0.0
    positions: dict[str, Position] = field(default_factory=lambda: collections.defaultdict(Position))
    last_price: dict[str, float] = field(default_factory=dict)

    def shares(self) -> dict[str, int]:
        return {c: int(p.size) for c, p in self.positions.items() if p.size}

    def load(self, snapshot) -> None:
        """Start from what KIS holds (``account.AccountSnapshot``)."""
        for code, row in snapshot.positions.iterrows():
            if int(row["shares"]):
                self.positions[code] = Position(size=int(row["shares"]), price=float(row["avg_price"]))
                self.last_price[code] = float(row["price"])
        self.cash = float(snapshot.cash)


class SessionBands:
    """The price band of the session an order placed now would work in.

    During the day: today's band as KIS reports it (``inquire-price``: ``stck_mxpr``/``stck_llam``),
    read once per code and day (REST is scarce). After the close (a daily strategy deciding on the
    day's bar) the order waits for the next session, whose base price is today's close: that band
    is computed with KRX's rule (``market.limits``)."""

    def __init__(self, store, settings: Any) -> None:
        self.store = store
        self.settings = settings
        self._today: dict[tuple[str, Any], PriceBand] = {}
        self._next: dict[tuple[str, Any], PriceBand] = {}

    def band(self, data, market) -> PriceBand:
        now = self.store.now().astimezone(KST)
        code, day = data._name, now.date()
        if order_session(now, self.settings.order_window) == day:
            if (code, day) not in self._today:
                q = self.store.quote(code)
                self._today[(code, day)] = PriceBand(base=int(q.base_price), lower=int(q.lower_limit),
                                                     upper=int(q.upper_limit))
            return self._today[(code, day)]
        if (code, day) not in self._next:
            base = float(data.close[0]) if len(data) else float(self.store.quote(code).price)
            self._next[(code, day)] = price_band(int(round(base)), krx_calendar().next_trading_day(day), market)
        return self._next[(code, day)]


class Refused(Exception):
    """An order the broker refuses before it reaches KIS (reason shown to the strategy)."""


class OrderBook:
    """Orders of this trader at KIS, keyed by backtrader ref, intent and order number."""

    def __init__(self, store, lifecycle: Lifecycle, ledger: Ledger, *, comminfo: Callable[[Any], Any],
                 alert: Callable[..., None], emit: Callable[..., None], settings: Any, commission_rate: float) -> None:
        self.store = store
        self.journal = store.journal
        self.lifecycle = lifecycle
        self.ledger = ledger
        self.comminfo = comminfo
        self.alert = alert
        self.emit = emit
        self.settings = settings        # the broker's params, read when used (order_window, hold_notice_s)
        self.commission_rate = commission_rate
        self.orders: dict[int, LiveOrder] = {}          # bt ref -> order (insertion order = submit order)
        self.by_intent: dict[str, LiveOrder] = {}
        self.by_odno: dict[int, LiveOrder] = {}         # KIS order number (and cancel numbers) -> order
        self.held: dict[int, list[tuple[float, Any]]] = collections.defaultdict(list)
        self.look_up: Callable[[LiveOrder, str], None] = lambda lo, why: None   # set by the reconciler
        self.recovered_fills = 0

    # ------------------------------------------------------------------ queries
    def open_orders(self) -> list[LiveOrder]:
        return [lo for lo in self.orders.values() if not lo.final]

    def add(self, lo: LiveOrder) -> None:
        self.orders[lo.order.ref] = lo
        self.by_intent[lo.intent_id] = lo
        if lo.odno is not None:
            self.by_odno[lo.odno] = lo

    def reserved_cash(self) -> float:
        return sum(lo.remaining * lo.reserve * (1 + self.commission_rate)
                   for lo in self.orders.values() if lo.side == BUY and not lo.final)

    def offered_shares(self, code: str) -> int:
        return sum(lo.remaining for lo in self.orders.values() if lo.code == code and lo.side == SELL and not lo.final)

    def unknown_on(self, code: str, side: str) -> LiveOrder | None:
        for lo in self.orders.values():
            if lo.code == code and lo.side == side and lo.state is S.UNKNOWN:
                return lo
        return None

    # ------------------------------------------------------------------ entry
    def submit(self, order: bt.Order, band, day, market, *, price_rounding: str) -> LiveOrder:
        """Checks, then an intent: QUEUED (or ARMED for a stop held here). Raises ``Refused``."""
        code, side = order.data._name, (BUY if order.isbuy() else SELL)
        trigger = None
        if order.exectype in (bt.Order.Stop, bt.Order.StopLimit):   # stops are held here (see stops.py)
            trigger = float(round_to_tick(float(order.created.price), day, market, "up" if side == BUY else "down"))
            order.created.price = order.price = trigger
        qty = abs(order.created.size)
        refusal = quantity_refusal(qty)
        if refusal:
            raise Refused(str(refusal))
        qty = int(qty)
        blocked = self.unknown_on(code, side)
        if blocked is not None:
            raise Refused(f"{side} orders on {code} are blocked: order ref {blocked.order.ref} ({blocked.describe()}) "
                          "has an outcome KIS has not confirmed yet; it is being looked up, never re-sent")
        price, ord_dvsn = 0, MARKET_DVSN
        if order.exectype in (bt.Order.Limit, bt.Order.StopLimit):
            ord_dvsn = LIMIT_DVSN
            p = float(order.created.pricelimit if order.exectype == bt.Order.StopLimit else order.created.price)
            refusal = tick_refusal(p, day, market)
            if refusal and price_rounding == "reject":
                raise Refused(str(refusal))
            if refusal:
                p = float(round_to_tick(p, day, market, "down" if side == BUY else "up"))
                if order.exectype == bt.Order.StopLimit:
                    order.created.pricelimit = order.pricelimit = p
                else:
                    order.created.price = order.price = p
            refusal = band_refusal(p, band, day)
            if refusal:
                raise Refused(str(refusal))
            price = int(p)
        per_share = reserve_price(price, band)
        if side == BUY:
            rate = self.commission_rate
            refusal = buying_power_refusal(qty, per_share, self.ledger.cash - self.reserved_cash(), lambda v: v * rate)
        else:
            refusal = sellable_refusal(qty, int(self.ledger.positions[code].size), self.offered_shares(code))
        if refusal:
            raise Refused(str(refusal))
        lo = LiveOrder(order, "", "new", code, side, qty, price, ord_dvsn, order_session(self.store.now(), self.settings.order_window),
                       reserve=per_share if side == BUY else 0.0, trigger=trigger)
        if trigger is not None:
            self.lifecycle.open(lo, S.ARMED, f"stop held by the broker, trigger {trigger:,.0f}")
            self.journal.log("armed", f"{side} stop {qty} {code} at {trigger:,.0f}", intent_id=lo.intent_id)
        else:
            self.lifecycle.open(lo, S.QUEUED)
        self.add(lo)
        return lo

    def revise(self, old: LiveOrder, price: float | None, size: int | None, band, market) -> bt.Order | None:
        """A revision of ``old``'s unfilled rest: its own intent (journaled before any POST), QUEUED;
        ``old`` becomes REVISING. Returns the backtrader order that carries on, or None when ``old``
        cannot be revised now (not working at KIS, a cancel or revise already under way)."""
        if old.state not in (S.ACCEPTED, S.PARTIAL) or old.cancel_wanted:
            return None
        qty = int(size) if size is not None else old.remaining
        if not 0 < qty <= old.remaining:
            raise ValueError(f"revised size must be 1..{old.remaining} (the unfilled rest), got {size}")
        p = int(round_to_tick(price, old.session_day, market, "down" if old.side == BUY else "up")) if price else old.price
        if p and not band.contains(p):
            raise ValueError(f"revised price {p:,} is outside the band {band.lower:,}–{band.upper:,}")
        cls = bt.BuyOrder if old.side == BUY else bt.SellOrder
        new_order = cls(owner=old.order.owner, data=old.order.data, size=qty, price=p or None,
                        exectype=bt.Order.Limit if p else bt.Order.Market)
        new_order.addinfo(replaces=old.order.ref)
        lo = LiveOrder(new_order, "", "revise", old.code, old.side, qty, p, LIMIT_DVSN if p else MARKET_DVSN,
                       old.session_day, reserve=float(p or old.reserve) if old.side == BUY else 0.0, replaces=old)
        self.lifecycle.open(lo, S.QUEUED)
        self.add(lo)
        old.revision = lo
        self.lifecycle.transition(old, S.REVISING, f"revise to {qty} @ {p or 'market'} queued")
        return new_order

    def cancel(self, lo: LiveOrder) -> None:
        if lo.final or lo.cancel_wanted:
            return
        if lo.state in (S.QUEUED, S.ARMED):
            self.lifecycle.transition(lo, S.CANCELLED, "cancelled before it was sent")
            self._end_revision(lo)
            return
        lo.cancel_wanted = True   # sent by the pump once the order has its number and no request is pending
        self.journal.log("cancel", f"cancel wanted for {lo.describe()}", intent_id=lo.intent_id)

    # ------------------------------------------------------------------ the pump
    def pump(self) -> None:
        """Hand work to free order workers: cancels first, then queued orders in submit order."""
        if self.store.halted:
            return
        free = self.store.free_post_slots()
        now = self.store.now()
        for lo in list(self.orders.values()):
            if free <= 0:
                return
            if lo.cancel_wanted and lo.state in (S.ACCEPTED, S.PARTIAL) and lo.odno is not None:
                self.lifecycle.transition(lo, S.CANCELLING, "cancel sent")
                self.store.post(PostRequest("cancel", lo.intent_id, lo.code, lo.side, None, 0, lo.ord_dvsn,
                                            branch=lo.branch, orig_odno=str(lo.odno)))
                free -= 1
        for lo in list(self.orders.values()):
            if free <= 0:
                return
            if lo.state is not S.QUEUED:
                continue
            first, end = window_bounds(lo.session_day, self.settings.order_window)
            if now >= end:
                self.lifecycle.transition(lo, S.EXPIRED, f"not sent: its order window closed at {end:%H:%M}")
                self._end_revision(lo)
                continue
            if now < first or self._identity_busy(lo):
                continue
            request = self._request(lo, end)
            if request is None:
                continue
            sized = {"qty": request.qty} if request.qty != lo.qty else {}
            self.lifecycle.transition(lo, S.SENDING, sent_at=now, event=("request", f"{lo.kind} {lo.describe()}"),
                                      **sized)
            self.store.post(request)
            free -= 1

    def _request(self, lo: LiveOrder, window_end: datetime) -> PostRequest | None:
        if lo.kind == "new":
            return PostRequest("new", lo.intent_id, lo.code, lo.side, lo.qty, lo.price, lo.ord_dvsn,
                               window_end=window_end)
        old = lo.replaces
        if old is None or old.state is not S.REVISING or old.odno is None:
            return None
        if old.remaining <= 0:
            self.lifecycle.transition(lo, S.CANCELLED, "not sent: the order it revises filled meanwhile")
            self._end_revision(lo)
            return None
        qty = min(lo.qty, old.remaining)
        return PostRequest("revise", lo.intent_id, lo.code, lo.side, qty, lo.price, lo.ord_dvsn,
                           branch=old.branch, orig_odno=str(old.odno), window_end=window_end)

    def _identity_busy(self, lo: LiveOrder) -> bool:
        """An un-numbered POST of the same identity is in flight or unresolved: wait for its number."""
        return any(o is not lo and o.odno is None and o.state in (S.SENDING, S.UNKNOWN) and o.identity == lo.identity
                   for o in self.orders.values())

    def _end_revision(self, lo: LiveOrder) -> None:
        """A revision that will not happen: the order it was to replace works on as before."""
        old = lo.replaces
        if lo.kind == "revise" and old is not None and old.revision is lo:
            old.revision = None
            if old.state is S.REVISING:
                self.lifecycle.transition(old, old.working_state(), f"revision not placed: {lo.order.info.get('reason', '')}")
                self.look_up(old, "a revision did not go through")

    # ------------------------------------------------------------------ POST outcomes
    def on_placed(self, ev: PostPlaced) -> None:
        req, reply = ev.request, ev.reply
        lo = self.by_intent.get(req.intent_id)
        self.journal.log("reply", f"{req.kind}: {reply.msg_cd} {reply.msg1} odno={reply.odno}", intent_id=req.intent_id,
                         odno=reply.odno, payload={"latency_s": round(ev.latency_s, 4)})
        if lo is None:
            return
        if req.kind == "cancel":
            lo.cancel_odno = int(reply.odno)
            self.by_odno[lo.cancel_odno] = lo
            # its acknowledgement notice normally ends it; if none comes, KIS's row will
            lo.next_lookup = self.store.now() + timedelta(seconds=CANCEL_CONFIRM_S)
            self.replay_held(lo.cancel_odno)
            return
        self.adopt(lo, reply.odno, reply.branch, reply.ord_time, "the POST's reply")

    def adopt(self, lo: LiveOrder, odno: str, branch: str, ord_time: str | None, how: str) -> None:
        """``lo`` is order ``odno`` at KIS: give it its number (and a revision its predecessor's end)."""
        key = int(odno)
        other = self.by_odno.get(key)
        if other is not None and other is not lo:
            self.alert("claimed_twice", f"order {key} is already {other.describe()}; not given to {lo.describe()}",
                       payload={"odno": key})
            return
        if lo.state is S.NOT_PLACED:
            self.alert("late_acceptance", f"KIS shows order {key} for {lo.describe()}, which the trader had given up "
                                          "on: adopted, its fills are booked", payload={"odno": key})
        self.lifecycle.transition(lo, S.ACCEPTED, f"order {key} ({how})", odno=odno, branch=branch or lo.branch,
                                  ord_time=ord_time or lo.ord_time)
        lo.pending = None
        self.by_odno[key] = lo
        old = lo.replaces
        if lo.kind == "revise" and old is not None and old.revision is lo:
            old.revision = None
            old.order.addinfo(replaced_by=lo.order.ref)
            if old.state in (S.REVISING, S.UNKNOWN):
                self.lifecycle.transition(old, S.REPLACED, f"replaced by a revision (new order number {key})")
            else:
                log.info("revision %s of %s placed after that order ended (%s)", key, old.describe(), old.state.value)
        self.replay_held(key)

    def on_refused(self, ev: PostRefused) -> None:
        req = ev.request
        lo = self.by_intent.get(req.intent_id)
        msg = f"{ev.msg_cd} {ev.message}".strip()
        self.journal.log("reply", f"{req.kind} refused by KIS: {msg}", intent_id=req.intent_id)
        if lo is None:
            return
        if req.kind == "cancel":
            lo.cancel_wanted = False
            if lo.state is S.CANCELLING:
                self.lifecycle.transition(lo, lo.working_state(), f"cancel refused by KIS: {msg}")
            self.look_up(lo, "a cancel was refused")
            return
        self.lifecycle.transition(lo, S.REJECTED, f"KIS rejected the order: {msg}")
        self._end_revision(lo)

    def on_ambiguous(self, ev: PostAmbiguous) -> None:
        req = ev.request
        lo = self.by_intent.get(req.intent_id)
        self.journal.log("ambiguous", f"{req.kind} POST: {ev.error}; outcome unknown, not re-sent",
                         intent_id=req.intent_id)
        if lo is None:
            return
        if lo.final:
            # KIS has already ended this order (the cancel's notice, a fill or a read came before the POST
            # gave up): its outcome is known, nothing is blocked and there is nothing to look up
            log.info("%s POST unclear for %s, which KIS already ended: nothing to resolve", req.kind, lo.describe())
            return
        lo.pending = "cancel" if req.kind == "cancel" else "new"
        lo.unknown_since = self.store.now()
        self.lifecycle.transition(lo, S.UNKNOWN, f"{req.kind} POST without a clear answer ({ev.error}); "
                                                 "looking it up at KIS, never re-sent")
        self.alert("order_unknown", f"{lo.describe()}: KIS did not answer the {req.kind} clearly; {lo.side} orders "
                                    f"on {lo.code} are blocked until KIS shows what happened", level=logging.WARNING)
        self.look_up(lo, f"{req.kind} outcome unknown")

    def on_not_sent(self, ev: PostNotSent) -> None:
        req = ev.request
        lo = self.by_intent.get(req.intent_id)
        self.journal.log("not_sent", f"{req.kind}: {ev.reason}", intent_id=req.intent_id)
        if lo is None:
            return
        if req.kind == "cancel":
            if lo.state is S.CANCELLING:
                self.lifecycle.transition(lo, lo.working_state(), f"cancel not sent: {ev.reason}")
            return
        if ev.stopping:
            self.lifecycle.transition(lo, S.CANCELLED, "not sent: the trader stopped")
        elif "window" in ev.reason:
            self.lifecycle.transition(lo, S.EXPIRED, f"not sent: {ev.reason}")
        else:
            self.lifecycle.transition(lo, S.REJECTED, f"not sent: {ev.reason}")
        self._end_revision(lo)

    def withdraw_queued(self, reason: str) -> int:
        """The trader stops: every order not yet handed to a worker ends here, unsent."""
        n = 0
        for lo in list(self.orders.values()):
            if lo.state in (S.QUEUED, S.ARMED):
                self.lifecycle.transition(lo, S.CANCELLED, reason)
                self._end_revision(lo)
                n += 1
        return n

    # ------------------------------------------------------------------ notices
    def on_notice(self, n, received: float | None = None) -> None:
        key = int(n.odno)
        if not (n.is_fill and key in self.by_odno):   # a fill of a known order is journaled with its booking
            self.journal.log("notice", _describe_notice(n), odno=str(n.odno),
                             payload={"kind": n.kind, "fill": n.is_fill, "refused": n.refused, "qty": n.qty,
                                      "price": n.price, "acpt": n.acpt, "orig": n.orig_odno})
        lo = self.by_odno.get(key)
        if lo is None and n.kind == "cancel" and n.orig_odno:
            lo = self.by_odno.get(int(n.orig_odno))
        if lo is None:
            self.held[key].append((time.monotonic(), n))
            self._look_up_unnumbered(n)
            return
        self.apply_notice(lo, n)

    def _look_up_unnumbered(self, n) -> None:
        """A notice for a number we do not know may be an answer-less POST of ours: look those up at KIS
        (the look-up sees every candidate; a notice alone cannot tell ours from an identical foreign one)."""
        for lo in self.orders.values():
            if lo.odno is None and lo.state in (S.UNKNOWN, S.NOT_PLACED) and lo.code == n.code and lo.side == n.side:
                self.look_up(lo, f"a notice for unknown order {int(n.odno)}")

    def replay_held(self, key: int) -> None:
        lo = self.by_odno.get(key)
        for _, n in self.held.pop(key, []):
            if lo is not None:
                self.apply_notice(lo, n)

    def expire_held(self, now: float) -> list[tuple[int, Any]]:
        """Notices held longer than ``hold_notice_s`` for a number no order of ours claimed: foreign
        (another app's) unless an answer-less POST of ours could still be it."""
        out = []
        for key in list(self.held):
            items = self.held[key]
            if not items or now - items[0][0] <= self.settings.hold_notice_s:
                continue
            n = items[0][1]
            if any(lo.odno is None and lo.state in (S.SENDING, S.UNKNOWN) and lo.code == n.code and lo.side == n.side
                   for lo in self.orders.values()):
                continue   # the look-up of that POST decides
            del self.held[key]
            out.append((key, n))
        return out

    def apply_notice(self, lo: LiveOrder, n) -> None:
        if n.refused:
            if n.kind == "new" and int(n.odno) == lo.odno and lo.state in (S.ACCEPTED, S.UNKNOWN, S.CANCELLING,
                                                                          S.REVISING):
                self.lifecycle.transition(lo, S.REJECTED, f"the exchange refused the order (notice for {lo.odno})")
            elif lo.state is S.CANCELLING and n.kind == "cancel":
                lo.cancel_wanted = False
                self.lifecycle.transition(lo, lo.working_state(), "cancel refused (notice)")
            return
        if not n.is_fill:
            # acknowledgements reuse CNTG_QTY/CNTG_UNPR for the order's quantity and price: never a fill
            if n.kind == "cancel" and not lo.final:
                lo.cancel_odno = int(n.odno)
                self.by_odno[lo.cancel_odno] = lo
                self.lifecycle.transition(lo, S.CANCELLED, "cancelled at KIS (only the unfilled rest)")
            elif n.killed and int(n.odno) == lo.odno and not lo.final:
                after_close = n.time >= window_bounds(lo.session_day, "regular")[1]
                self.lifecycle.transition(lo, S.EXPIRED if after_close else S.CANCELLED,
                                          "unfilled at the close" if after_close
                                          else "the exchange cancelled the unfilled rest (IOC/FOK)")
            return
        if int(n.odno) != lo.odno:
            return   # a fill notice is always about the order it fills
        key = f"{n.time:%Y%m%d%H%M%S}|{int(n.odno)}|{int(n.qty)}|{int(n.price)}"
        if key in lo.notice_keys:
            # no fill id on the wire: an identical notice is a resend, or two real fills of the same size and
            # price in the same second. Count it once and let KIS's own total settle which it was.
            self.journal.log("duplicate", f"fill notice seen before: {key}", intent_id=lo.intent_id, odno=str(lo.odno))
            self.look_up(lo, "duplicate fill notice")
            return
        lo.notice_keys.add(key)
        lo.noticed_qty += int(n.qty)
        lo.noticed_value += int(n.qty) * float(n.price)
        notice = NoticeRow(key, str(n.odno), n.time, int(n.qty), float(n.price))
        if not self.book_fills(lo, n.time, "notice", notice=notice, event=("notice", _describe_notice(n))) \
                and lo.noticed_qty < lo.read_qty:
            self.look_up(lo, "a fill notice KIS's last read may not cover")

    # ------------------------------------------------------------------ fills: the one rule
    def book_fills(self, lo: LiveOrder, when: datetime, source: str, *, notice: NoticeRow | None = None,
                   event: tuple[str, str] | None = None, in_balance: bool = False) -> bool:
        """Book up to the larger of the notices' running total and KIS's read total. Returns whether
        anything was booked. ``in_balance``: the account snapshot the book started from already holds
        these shares (restart): journal them, do not move positions or cash again."""
        if lo.noticed_qty > lo.read_qty:
            target_qty, target_value = lo.noticed_qty, lo.noticed_value
        else:
            target_qty, target_value = lo.read_qty, lo.read_value
        qty = target_qty - lo.booked_qty
        if qty <= 0:
            if notice is not None:
                self.journal.record(lo.intent_id, {}, notice=notice, event=event)
            return False
        if target_qty > lo.qty:
            self.alert("overfill", f"{lo.describe()}: KIS counts {target_qty} sh filled", payload={"odno": lo.odno})
        value = target_value - lo.booked_value
        price = value / qty if value > 0 else float(lo.price or self.ledger.last_price.get(lo.code, 0.0))
        ci = self.comminfo(lo.code)
        size = qty if lo.side == BUY else -qty
        day = when.astimezone(KST).date()
        commission, tax = ci.breakdown(size, price, day)
        position = self.ledger.positions[lo.code]
        pprice_orig = position.price
        if in_balance:
            psize, pprice = position.size, position.price
            opened, closed = (size, 0) if lo.side == BUY else (0, size)
        else:
            psize, pprice, opened, closed = position.update(size, price)
            self.ledger.cash += (-1 if lo.side == BUY else 1) * qty * price - commission - tax
        self.ledger.last_price[lo.code] = price
        lo.booked_qty = target_qty
        lo.booked_value += qty * price
        if not in_balance:   # (a restart's recovered fills are in the book already, and not news to the strategy)
            pnl = ci.profitandloss(-closed, pprice_orig, price) if closed else 0.0
            comm = float(commission + tax)
            lo.order.execute(bt.date2num(when.astimezone(KST).replace(tzinfo=None)), size, price, closed,
                             ci.getoperationcost(closed, pprice_orig), comm if closed else 0.0, opened,
                             ci.getoperationcost(opened, price), comm if opened else 0.0, price, pnl, psize, pprice)
            lo.order.addcomminfo(ci)
        fill = FillRow(f"{lo.session_day:%Y%m%d}|{lo.odno}|{lo.booked_qty}", str(lo.odno), when, lo.code, lo.side, qty,
                       round(price, 4), commission, tax, source)
        if lo.booked_qty >= lo.qty and lo.state not in (S.CANCELLED, S.REPLACED, S.EXPIRED):
            to = S.FILLED
        elif lo.state is S.ACCEPTED:
            to = S.PARTIAL
        else:
            to = lo.state      # PARTIAL, CANCELLING, REVISING, UNKNOWN (a cancel's), or a late fill after the end
        self.lifecycle.transition(lo, to, fill=fill, notice=notice, event=event, quiet=in_balance)
        if source != "notice":
            self.recovered_fills += 1
        log.info("fill %s %s %d @ %s (order %s, %s)", lo.side, lo.code, qty, f"{price:,.0f}", lo.odno, source)
        self.emit("fill", code=lo.code, side=lo.side, qty=qty, price=price, odno=lo.odno, source=source,
                  commission=commission, tax=tax, time=when)
        return True



def _describe_notice(n) -> str:
    what = "fill" if n.is_fill else ("refusal" if n.refused else ("kill" if n.killed else "ack"))
    return f"{what} {n.kind} {n.side} {n.code} odno={int(n.odno)} qty={n.qty} price={n.price}"

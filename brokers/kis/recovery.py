"""Start-up recovery: rebuild the book and this trader's open orders from KIS and the journal.

Why this is careful: the process may have been killed at any point — with orders queued, a POST
on the wire, a revise in flight, notices unread — yesterday afternoon or a second ago. Before the
strategy's first bar (on cerebro's thread, synchronously):

1. Every open intent of this environment and account is restored from the journal with what it
   had booked and the notices it had seen (``Lifecycle.restore``). Never-sent ones (QUEUED,
   ARMED) end CANCELLED: the strategy that wanted them is gone, and a restart must not send old
   orders. Those with a POST in flight (SENDING) become UNKNOWN: only KIS can say what happened.
2. KIS is read over every day an open intent belongs to (``inquire-daily-ccld``, so yesterday's
   orders and fills are recovered too) and the balance is read — as a *consistent pair*: the
   balance's bought/sold-today counts must equal the totals of today's order rows, otherwise
   a fill landed between the two reads and both are read again. The book starts from that
   balance; each order's booked total starts from that read. Notices arriving meanwhile (the
   WebSocket subscribes first) are applied afterwards by the one fill rule, so none is lost or
   counted twice.
3. The reads go through the one reconciliation routine (``reconcile.py``): un-numbered intents
   are found by their identity (never by a number another intent claims; two candidates → alert),
   numbered ones take their report (fills journaled with their commission and tax). Orders KIS
   shows open that no intent claims are flagged as foreign.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

import backtrader as bt

from brokers.kis.account import AccountSnapshot, today_totals
from brokers.kis.events import OrdersRead, ReadRequest
from brokers.kis.journal import Intent
from brokers.kis.lifecycle import LiveOrder, OrderState as S

log = logging.getLogger(__name__)

CONSISTENT_READ_ATTEMPTS = 5


class Recovery:
    def __init__(self, store, book, lifecycle, reconciler, *, datas: dict[str, Any], comminfo: Callable[[str], Any],
                 band: Callable[[Any], Any], alert: Callable[..., None]) -> None:
        self.store = store
        self.journal = store.journal
        self.book = book
        self.lifecycle = lifecycle
        self.reconciler = reconciler
        self.datas = datas
        self.comminfo = comminfo
        self.band = band
        self.alert = alert
        self.rebuilt: list[LiveOrder] = []

    def run(self) -> AccountSnapshot:
        """The balance the book starts from; the open orders wait in ``rebuilt`` for ``hand_over``."""
        today = self.store.today()
        with self.lifecycle.muted():
            # open intents of any day, and today's given-up ones (KIS may still show them: adopted, with an alert)
            given_up = [i for i in self.journal.intents_in_states(["NOT_PLACED"]) if i.day == today]
            los = self._restore(self.journal.open_intents() + given_up)
            start = min([lo.session_day for lo in los if not lo.final] + [today])
            older = self._read(start, today - timedelta(days=1)) if start < today else None
            snapshot, current = self._consistent_pair(today)
            for read in (older, current):
                if read is None:
                    continue
                self.reconciler._resolve_unnumbered(read)
                for row in read.rows:
                    if row.cancelled or not row.odno.strip().isdigit():
                        continue
                    lo = self.book.by_odno.get(int(row.odno))
                    if lo is not None and lo.odno == int(row.odno):
                        self.reconciler.apply_report(lo, row, read, in_balance=True)
            self.reconciler._flag_foreign(current)
            self._missing(older, current)
        rebuilt = [lo for lo in los if not lo.final]
        for lo in rebuilt:
            if lo.state is S.UNKNOWN and lo.next_lookup is None:
                lo.next_lookup = self.store.now()
        if los:
            self.journal.log("recovered", f"{len(los)} open intent(s) from the journal: {len(rebuilt)} still open "
                                          f"({', '.join(lo.describe() for lo in rebuilt) or 'none'})")
        self.rebuilt = rebuilt
        return snapshot

    def make_order(self, intent: Intent, size: int) -> bt.Order:
        """A backtrader order standing for a rebuilt intent: its unfilled rest, no owner until handed over."""
        cls = bt.BuyOrder if intent.side == "buy" else bt.SellOrder
        # simulated=True: the feed has no bar yet before the first one, and backtrader would read it
        order = cls(owner=None, data=self.datas.get(intent.code), size=size, price=intent.price or None,
                    simulated=True, exectype=bt.Order.Limit if intent.price else bt.Order.Market)
        order.addcomminfo(self.comminfo(intent.code))
        order.addinfo(recovered=True, odno=int(intent.odno) if intent.odno else None)
        return order

    def hand_over(self, owner) -> list[bt.Order]:
        """Give the strategy the orders still open after the restart (once, when it exists)."""
        out = []
        for lo in self.rebuilt:
            if lo.final:
                continue
            if lo.order.data is None:
                self.alert("orphan_order", f"open order {lo.describe()}: no data feed for {lo.code}; tracked, "
                                           "not handed to the strategy")
                continue
            if lo.side == "buy" and not lo.price:
                lo.reserve = float(self.band(lo.order.data).upper)
            lo.order.owner = owner
            self.lifecycle.announce(lo)
            self.journal.log("adopted", f"{lo.describe()} handed to the strategy as ref {lo.order.ref}",
                             intent_id=lo.intent_id)
            out.append(lo.order)
        self.rebuilt = []
        return out

    def _restore(self, intents: list[Intent]) -> list[LiveOrder]:
        los: dict[str, LiveOrder] = {}
        for intent in intents:
            booked_qty, booked_value, noticed_qty, noticed_value = self.journal.totals(intent.id)
            lo = self.lifecycle.restore(intent, self.make_order(intent, max(intent.qty - booked_qty, 1)))
            lo.booked_qty, lo.booked_value = booked_qty, booked_value
            lo.noticed_qty, lo.noticed_value = noticed_qty, noticed_value
            lo.notice_keys = self.journal.notice_keys(intent.id)
            if lo.side == "buy":
                lo.reserve = float(lo.price)
            los[intent.id] = lo
        for intent in intents:
            lo = los[intent.id]
            old = los.get(intent.replaces or "")
            if lo.kind == "revise" and old is not None:
                lo.replaces = old
                if not lo.final and old.state is S.REVISING:
                    old.revision = lo
        for lo in los.values():
            self.book.add(lo)
            if lo.state is S.REVISING and lo.revision is None:   # its revision ended before the crash
                self.lifecycle.transition(lo, lo.working_state(), "its revision ended before the restart")
            elif lo.state is S.REVISING and lo.revision.odno is not None:   # KIS had numbered the revision
                self.lifecycle.transition(lo, S.REPLACED, f"replaced by revision {lo.revision.odno}")
                lo.revision = None
        for lo in los.values():
            if lo.state in (S.QUEUED, S.ARMED):
                self.lifecycle.transition(lo, S.CANCELLED, "not sent: the trader restarted before sending it")
            elif lo.state is S.SENDING:
                lo.pending, lo.unknown_since = "new", lo.sent_at or self.store.now()
                self.lifecycle.transition(lo, S.UNKNOWN, "the process stopped before KIS answered its POST")
            elif lo.state is S.UNKNOWN:
                lo.pending = "cancel" if lo.odno is not None else "new"
                lo.unknown_since = lo.sent_at or self.store.now()
        for lo in los.values():
            if lo.kind == "revise" and lo.replaces is None and lo.odno is None and not lo.final:
                lo.replaces = self._replaced_stub(lo)
        return list(los.values())

    def _replaced_stub(self, lo: LiveOrder) -> LiveOrder | None:
        """A revision whose predecessor is no longer open still needs that number to be found by."""
        intent = self.journal.intent(self.journal.intent(lo.intent_id).replaces or "")
        if intent is None or not intent.odno:
            return None
        return self.lifecycle.restore(intent, self.make_order(intent, 1))

    def _read(self, start, end) -> OrdersRead:
        return self.store.read_orders(ReadRequest("recovery", start, end))

    def _consistent_pair(self, today) -> tuple[AccountSnapshot, OrdersRead]:
        for attempt in range(1, CONSISTENT_READ_ATTEMPTS + 1):
            snapshot = self.store.read_balance()
            read = self._read(today, today)
            theirs = today_totals(r for r in read.rows if r.date in (None, today))
            if theirs == {c: t for c, t in snapshot.today.items() if any(t)}:
                return snapshot, read
            log.info("fills landed between the balance and the orders read (attempt %d): reading both again", attempt)
        self.alert("recovery_inexact", "the balance and today's orders kept changing between reads; the book starts "
                                       "from the last balance and the checker will verify it")
        return snapshot, read

    def _missing(self, *reads: OrdersRead | None) -> None:
        seen = {int(r.odno) for read in reads if read for r in read.rows if r.odno.strip().isdigit()}
        for lo in self.book.orders.values():
            if lo.odno is not None and not lo.final and lo.odno not in seen:
                self.alert("missing_at_kis", f"{lo.describe()} is in the journal with an order number KIS does not "
                                             "show; left open for the checks to resolve")

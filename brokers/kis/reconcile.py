"""Reconciliation: what KIS reports about our orders, applied to the book by one routine.

Every look-up of orders — the resolution of an UNKNOWN outcome, the check after a duplicate
notice, the periodic check, the recovery after a WebSocket reconnect, the confirmation at the
close, the Account Manager's re-check and the start-up recovery (``recovery.py``) — ends in
``Reconciler.on_orders_read``, which does two things, as NautilusTrader's execution reports feed
one reconciliation routine:

1. **Identity.** An order KIS never numbered for us (an ambiguous POST, a crash before the reply)
   is found by its own identity: a new order by code, side, quantity and price *placed at or after
   its POST* (ORD_TMD ≥ ``sent_at`` − ``identity_skew_s``), a revision by the number it revises;
   never by a number another intent already claims. Exactly one candidate → adopted. Two → an
   alert, never a guess. None, in reads made ``unknown_order_timeout_s`` after the outcome became
   unknown (or after the close) → NOT_PLACED; should KIS show it after all, it is adopted and an
   alert raised.
2. **Reports** (``apply_report``). A row's cumulative filled quantity raises the order's *read*
   total; ``OrderBook.book_fills`` books up to the larger of that and the notices' running total
   (never their sum: a fill landing while a paged read is under way is counted once, whichever way
   it arrives). Then the order's state follows the row: cancelled or revised away, expired after
   the close, refused, or — for a cancel whose answer was lost — still working after all.

Look-ups run on the store's reader thread; results come back as ``OrdersRead`` events, so a slow,
paged, rate-limited read never stalls the strategy.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable

from brokers.kis.account import LocalBook
from brokers.kis.events import BalanceRead, OrdersRead, ReadFailed, ReadRequest
from brokers.kis.lifecycle import LiveOrder, OrderState as S
from brokers.kis.models import DailyOrder, parse_time_hhmmss, to_int
from market.acceptance import window_bounds
from market.calendar import KST, krx_calendar

log = logging.getLogger(__name__)

UNKNOWN_LOOKUP_DELAYS_S = (1, 2, 5, 10, 20, 30, 60)
"""Exchange seconds between look-ups of an order whose outcome is unknown (then every 60 s)."""


def row_time(row: DailyOrder, day: date) -> datetime | None:
    return parse_time_hhmmss(row.date or day, row.ord_time, KST)


def match_rows(rows: Iterable[DailyOrder], *, kind: str, code: str, side: str, qty: int, price: int,
               orig_odno: str | None, sent_at: datetime | None, day: date, claimed: set[int],
               skew_s: float) -> list[DailyOrder]:
    """Rows that could be the order an intent describes (see the module docstring, point 1)."""
    out = []
    for r in rows:
        if r.cancelled or not r.odno.strip().isdigit() or int(r.odno) in claimed:
            continue
        if r.date is not None and r.date != day:
            continue
        if kind == "revise":
            if not orig_odno or to_int(r.orig_odno) != to_int(orig_odno):
                continue
        else:
            if to_int(r.orig_odno) != 0 or (r.code, r.side, int(r.qty), int(r.price)) != (code, side, qty, price):
                continue
            t = row_time(r, day)
            if sent_at is not None and t is not None and t < sent_at - timedelta(seconds=skew_s):
                continue
        out.append(r)
    return out


def session_close(day: date) -> datetime:
    return window_bounds(day, "regular")[1]


class Reconciler:
    """Look-ups, the one report routine, the close, and the Account Manager's check, on cerebro's thread."""

    def __init__(self, store, book, lifecycle, *, alert: Callable[..., None], local_book: Callable[[], LocalBook],
                 on_mismatch: Callable[[str], None], settings: Any) -> None:
        self.store = store
        self.journal = store.journal
        self.book = book
        self.lifecycle = lifecycle
        self.alert = alert
        self.local_book = local_book
        self.on_mismatch = on_mismatch
        self.p = settings   # the broker's params, read when used (tests and the monitor may change them)
        self.check_due = False
        self._serials = itertools.count(1)
        self._outstanding: dict[tuple, int] = {}
        self._stage: str | None = None          # account check: balance -> settle -> recheck
        self._first_diffs: list[str] = []
        self._last_check = time.monotonic()
        self._closed: set[date] = set()
        self._last_close_read = float("-inf")
        self._alerted: set[Any] = set()
        book.look_up = self.look_up

    # ------------------------------------------------------------------ scheduling
    def settled(self) -> bool:
        """No look-up running or due now, no check under way."""
        now = self.store.now()
        return not self._outstanding and self._stage is None and not any(
            not lo.final and lo.next_lookup is not None and lo.next_lookup <= now for lo in self.book.orders.values())

    def look_up(self, lo: LiveOrder, why: str) -> None:
        """Ask KIS about one order: by its number, or (un-numbered) by its code that day."""
        day = lo.session_day
        if lo.odno is not None:
            self._request(("odno", day, lo.odno), ReadRequest("order", day, day, odno=str(lo.odno)), why)
        else:
            self._request(("code", day, lo.code), ReadRequest("identity", day, day, code=lo.code), why)

    def read_day(self, purpose: str, day: date | None = None) -> None:
        day = day or self.store.today()
        self._request(("day", day, purpose), ReadRequest(purpose, day, day), purpose)

    def _request(self, key: tuple, req: ReadRequest, why: str) -> None:
        if key in self._outstanding:
            return
        serial = next(self._serials)
        self._outstanding[key] = serial
        log.debug("look-up %s (%s)", key, why)
        self.store.request_read(dataclasses.replace(req, serial=serial))

    def _done(self, serial: int) -> None:
        for key, s in list(self._outstanding.items()):
            if s == serial:
                del self._outstanding[key]

    def tick(self) -> None:
        """Every broker turn: due look-ups of unknown outcomes, the close, the periodic checks."""
        now = self.store.now()
        for lo in list(self.book.orders.values()):
            if not lo.final and lo.next_lookup is not None and now >= lo.next_lookup:
                lo.next_lookup = None
                self.look_up(lo, f"{lo.state.value}: time to ask KIS again")
        self._close(now)
        mono = time.monotonic()
        if self._stage is None:
            in_flight = any(lo.state in (S.SENDING, S.UNKNOWN) for lo in self.book.orders.values())
            if (self.check_due and mono - self._last_check >= self.p.reconcile_debounce_s and not in_flight) \
                    or mono - self._last_check >= self.p.reconcile_every_s:
                self.start_check()

    def _schedule_again(self, lo: LiveOrder) -> None:
        delay = UNKNOWN_LOOKUP_DELAYS_S[min(lo.lookups, len(UNKNOWN_LOOKUP_DELAYS_S) - 1)]
        lo.lookups += 1
        lo.next_lookup = self.store.now() + timedelta(seconds=delay)

    # ------------------------------------------------------------------ results
    def on_read_failed(self, ev: ReadFailed) -> None:
        self._done(ev.serial)
        req = ev.request
        purpose = req.purpose if isinstance(req, ReadRequest) else req
        if purpose in ("check", "recheck", "settle", "balance"):
            self._stage = None
            self._last_check = time.monotonic()
            self.alert("check_failed", f"reconciliation could not read KIS ({purpose}): {ev.error}")
        for lo in self.book.orders.values():
            if lo.state is S.UNKNOWN and lo.next_lookup is None:
                self._schedule_again(lo)

    def on_orders_read(self, ev: OrdersRead) -> None:
        self._done(ev.request.serial)
        req = ev.request
        try:
            self._resolve_unnumbered(ev)
            for row in ev.rows:
                if row.cancelled or not row.odno.strip().isdigit():
                    continue
                lo = self.book.by_odno.get(int(row.odno))
                if lo is not None and lo.odno == int(row.odno):
                    self.apply_report(lo, row, ev)
            if not req.code and not req.odno:
                self._flag_foreign(ev)
            if req.purpose == "close":
                self._close_confirmed(req.start, ev)
        finally:
            if req.purpose == "settle" and self._stage == "settle":
                self._stage = "recheck"
                self.store.request_balance("recheck")
            for lo in self.book.orders.values():   # what is still unknown is asked again later
                if lo.state is S.UNKNOWN and lo.next_lookup is None and not self._covers_pending(lo):
                    self._schedule_again(lo)

    def _covers_pending(self, lo: LiveOrder) -> bool:
        key = ("odno", lo.session_day, lo.odno) if lo.odno is not None else ("code", lo.session_day, lo.code)
        return key in self._outstanding

    def _resolve_unnumbered(self, ev: OrdersRead) -> None:
        req = ev.request
        if req.odno:
            return
        claimed: set[int] | None = None
        for lo in list(self.book.orders.values()):
            if lo.odno is not None or lo.state not in (S.UNKNOWN, S.NOT_PLACED):
                continue
            if not (req.start <= lo.session_day <= req.end) or (req.code and req.code != lo.code):
                continue
            if lo.state is S.NOT_PLACED and self.book._identity_busy(lo):
                continue   # a twin is in flight: its own answer comes first
            if claimed is None:
                claimed = set(self.book.by_odno) | set(self.journal.claimed_odnos(lo.session_day))
            orig = str(lo.replaces.odno) if lo.kind == "revise" and lo.replaces and lo.replaces.odno else None
            found = match_rows(ev.rows, kind=lo.kind, code=lo.code, side=lo.side, qty=lo.qty, price=lo.price,
                               orig_odno=orig, sent_at=lo.sent_at, day=lo.session_day, claimed=claimed,
                               skew_s=self.p.identity_skew_s)
            if len(found) == 1:
                row = found[0]
                claimed.add(int(row.odno))
                self.book.adopt(lo, row.odno, row.branch, row.ord_time, "found at KIS by its identity")
                self.journal.log("recovered", f"{lo.describe()} found at KIS by its identity", intent_id=lo.intent_id,
                                 odno=row.odno)
            elif len(found) > 1:
                key = ("ambiguous", lo.intent_id)
                if key not in self._alerted:
                    self._alerted.add(key)
                    self.alert("ambiguous_match", f"{lo.describe()}: {len(found)} orders at KIS fit it "
                                                  f"({', '.join(r.odno for r in found)}); not guessing — resolve by hand",
                               payload={"candidates": [r.odno for r in found]})
            elif lo.state is S.UNKNOWN and self._gave_time(lo, ev.asked_at):
                since = lo.unknown_since or lo.sent_at or ev.asked_at
                self.lifecycle.transition(lo, S.NOT_PLACED, f"KIS shows no such order in a read made "
                                                            f"{(ev.asked_at - since).total_seconds():.0f} s after its "
                                                            "outcome became unknown")
                self.book._end_revision(lo)

    def _gave_time(self, lo: LiveOrder, asked_at: datetime) -> bool:
        """Has KIS had time to show ``lo``? (``unknown_order_timeout_s`` of exchange time, or the close.)"""
        since = lo.unknown_since or lo.sent_at
        if since is None:
            return True
        return (asked_at >= since + timedelta(seconds=self.p.unknown_order_timeout_s)
                or asked_at >= session_close(lo.session_day))

    def apply_report(self, lo: LiveOrder, row: DailyOrder, ev: OrdersRead, *, in_balance: bool = False) -> None:
        """The one routine: bring ``lo`` in line with what KIS's row says about it."""
        if row.filled_qty > lo.read_qty:
            lo.read_qty, lo.read_value = int(row.filled_qty), float(row.filled_value)
        self.book.book_fills(lo, ev.answered_at, "recovery" if in_balance else "check", in_balance=in_balance)
        if lo.final:
            return
        after_close = ev.asked_at >= session_close(lo.session_day)
        if row.rejected_qty and row.filled_qty == 0 and row.rejected_qty >= row.qty:
            self.lifecycle.transition(lo, S.REJECTED, "KIS shows the order rejected", quiet=in_balance)
        elif row.remaining_qty <= 0:
            if lo.state is S.REVISING and lo.revision is not None and not lo.revision.final:
                return   # its revision's own answer (or look-up) ends it as REPLACED
            self.lifecycle.transition(lo, S.CANCELLED, "cancelled at KIS (only the unfilled rest)", quiet=in_balance)
            lo.cancel_wanted = False
        elif after_close:
            self.lifecycle.transition(lo, S.EXPIRED, f"DAY order unfilled at the close of {lo.session_day}; "
                                                     "KIS cancels it overnight", quiet=in_balance)
        elif lo.state is S.UNKNOWN and lo.pending == "cancel" and self._gave_time(lo, ev.asked_at):
            self.lifecycle.transition(lo, lo.working_state(), "KIS still shows it working: the cancel did not "
                                                              "take effect", quiet=in_balance)

    def _flag_foreign(self, ev: OrdersRead) -> None:
        today = self.store.today()
        claimed = set(self.book.by_odno) | set(self.journal.claimed_odnos(today))
        for row in ev.rows:
            if row.cancelled or not row.odno.strip().isdigit() or (row.date and row.date != today):
                continue
            key = ("foreign", int(row.odno))
            if int(row.odno) in claimed or key in self._alerted:
                continue
            if any(lo.odno is None and lo.state in (S.SENDING, S.UNKNOWN) and lo.code == row.code and lo.side == row.side
                   for lo in self.book.orders.values()):
                continue   # may be ours, still being resolved
            self._alerted.add(key)
            self.check_due = True
            self.alert("foreign_order", f"order {int(row.odno)} ({row.side} {row.qty} {row.code}, {row.filled_qty} filled, "
                                        f"{row.remaining_qty} open) at KIS was not placed by this trader: an order "
                                        "from another app (HTS/MTS)?",
                       payload={"odno": int(row.odno)})

    def foreign_notice(self, odno: int, n) -> None:
        """A notice no order of ours claimed in time: another app's order (HTS/MTS)."""
        key = ("foreign", odno)
        if key not in self._alerted:
            self._alerted.add(key)
            self.alert("foreign_order", f"notice for order {odno} ({n.side} {n.code}) that this trader did not send: "
                                        "an order from another app (HTS/MTS)?", payload={"odno": odno})
        self.check_soon()   # the book is about to disagree with KIS: show it at once

    # ------------------------------------------------------------------ the close
    def _close(self, now: datetime) -> None:
        """After the close (and the closing auction's grace): DAY orders end EXPIRED at once — nothing can
        fill after the closing auction, and the strategy deciding on the day's bar must see them gone —
        then one read of the day at KIS books any fill whose notice was missed (a late fill on an
        EXPIRED order) and settles outcomes still unknown."""
        local = now.astimezone(KST)
        day = local.date()
        if day in self._closed or not krx_calendar().is_trading_day(day):
            return
        if local < session_close(day) + timedelta(seconds=self.p.close_grace_s):
            return
        for lo in list(self.book.orders.values()):
            if lo.session_day > day or lo.final:
                continue
            if lo.state in (S.ARMED, S.QUEUED):
                self.lifecycle.transition(lo, S.EXPIRED, "never sent: the session closed first")
                self.book._end_revision(lo)
            elif lo.state in (S.ACCEPTED, S.PARTIAL, S.CANCELLING, S.REVISING) or \
                    (lo.state is S.UNKNOWN and lo.odno is not None):
                self.lifecycle.transition(lo, S.EXPIRED, f"DAY order unfilled at the close of {lo.session_day}; "
                                                         "KIS cancels it overnight")
        mono = time.monotonic()
        if ("day", day, "close") not in self._outstanding and mono - self._last_close_read >= self.p.reconcile_debounce_s:
            self._last_close_read = mono    # (again while something is still open, but not in a tight loop)
            self.read_day("close", day)

    def _close_confirmed(self, day: date, ev: OrdersRead) -> None:
        if ev.asked_at >= session_close(day) and not any(
                lo.session_day <= day and not lo.final for lo in self.book.orders.values()):
            self._closed.add(day)

    # ------------------------------------------------------------------ the Account Manager's check
    def check_soon(self) -> None:
        """Run the Account Manager's check at the next turn, without the debounce."""
        self.check_due = True
        self._last_check = float("-inf")

    def start_check(self) -> None:
        self._last_check = time.monotonic()
        self.check_due = False
        self._stage = "balance"
        self.store.request_balance("check")

    def on_balance_read(self, ev: BalanceRead) -> None:
        snap = ev.snapshot
        local = self.local_book()
        diffs = self.store.account.compare(local, snap)
        if self._stage == "balance" and diffs:
            self._first_diffs = diffs        # a notice may still be on its way: settle with KIS's totals, re-check
            self._stage = "settle"
            self.read_day("settle")
            return
        self._stage = None
        self._last_check = time.monotonic()
        result = self.store.account.record(local, snap, diffs)
        if not diffs and self._first_diffs:
            log.info("transient difference resolved on re-check: %s", "; ".join(self._first_diffs))
        self._first_diffs = []
        self.journal.log("reconcile", result.describe(),
                         payload={"ok": result.ok, "local": dict(local.shares), "cash": round(local.cash),
                                  "kis": snap.shares(), "kis_cash": snap.cash})
        if diffs:
            self.alert("reconcile_mismatch", "local book differs from KIS: " + result.describe(),
                       payload={"differences": diffs})
            self.on_mismatch(result.describe())

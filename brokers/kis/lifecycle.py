"""The order lifecycle on KIS: one vocabulary of states, one transition table, one ``transition()``.

Why: an order's state used to live in three vocabularies (backtrader's status, the broker's own
field and the journal's column) set in many places, and the gaps between them were where orders
got lost or doubled. Here an order's state is an ``OrderState``; the journal stores exactly that
word; backtrader's status is *derived* from it (``bt_status``). ``Lifecycle.transition`` is the only
code that changes a state (grep ``_state =``): it checks the move against ``TRANSITIONS``, writes
the journal in the same step (one transaction, with the fill or notice that caused it) and hands
the strategy its backtrader notification. The table follows NautilusTrader's order FSM idea: a
move that is not in the table is a bug and raises, instead of silently corrupting the book.

States, and what they mean for the user:

=========== ====================================================================================
NEW         built by the broker, not journaled yet (never seen outside ``submit``)
ARMED       a stop order the broker holds until the last trade reaches its trigger (not at KIS)
QUEUED      journaled, waiting for the order window or a free order worker; cancellable; not at KIS
SENDING     handed to an order worker: the POST may be on the wire (``sent_at`` journaled first)
UNKNOWN     KIS did not answer clearly (timeout, 5xx, connection reset, unreadable reply) to this
            order's POST, or to its cancel. It may exist at KIS. It is never re-sent and never
            called rejected; KIS resolves it (look-ups by its own identity, notices, the periodic
            check). While it lasts, new orders on the same code and side are refused.
ACCEPTED    KIS gave it an order number; nothing filled yet
PARTIAL     some shares filled, the rest works
CANCELLING  a cancel of the unfilled rest was sent
REVISING    a revise was sent (KIS answers a revise with a *new* order: the revision's own intent)
FILLED      every share filled (final)
CANCELLED   the rest was cancelled — by us, before sending, or at KIS (final; a late fill is booked)
REPLACED    a revise moved the rest to a new order number (final for this number)
EXPIRED     a DAY order unfilled at the close, or queued and never sent before its window closed
REJECTED    KIS refused it with a clear answer, or it certainly never left (final)
NOT_PLACED  was UNKNOWN; KIS shows no such order in reads made ``unknown_order_timeout_s`` after
            the POST. Should KIS show it later after all, it is adopted and an alert is raised.
=========== ====================================================================================
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, Callable

import backtrader as bt

from brokers.kis.journal import FillRow, Intent, Journal, NoticeRow

log = logging.getLogger(__name__)


class OrderState(str, Enum):
    NEW = "NEW"
    ARMED = "ARMED"
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    UNKNOWN = "UNKNOWN"
    ACCEPTED = "ACCEPTED"
    PARTIAL = "PARTIAL"
    CANCELLING = "CANCELLING"
    REVISING = "REVISING"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REPLACED = "REPLACED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    NOT_PLACED = "NOT_PLACED"


S = OrderState

TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.NEW: frozenset({S.QUEUED, S.ARMED}),
    S.ARMED: frozenset({S.QUEUED, S.CANCELLED, S.EXPIRED}),
    S.QUEUED: frozenset({S.SENDING, S.CANCELLED, S.EXPIRED}),
    # a worker that finds the trader stopping or the window closed does not send: CANCELLED / EXPIRED
    S.SENDING: frozenset({S.ACCEPTED, S.UNKNOWN, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.UNKNOWN: frozenset({S.UNKNOWN, S.ACCEPTED, S.PARTIAL, S.FILLED, S.CANCELLED, S.REPLACED, S.EXPIRED,
                          S.REJECTED, S.NOT_PLACED}),
    S.ACCEPTED: frozenset({S.PARTIAL, S.FILLED, S.CANCELLING, S.REVISING, S.CANCELLED, S.EXPIRED, S.REJECTED,
                           S.UNKNOWN}),
    S.PARTIAL: frozenset({S.PARTIAL, S.FILLED, S.CANCELLING, S.REVISING, S.CANCELLED, S.EXPIRED, S.UNKNOWN}),
    S.CANCELLING: frozenset({S.CANCELLING, S.CANCELLED, S.FILLED, S.ACCEPTED, S.PARTIAL, S.UNKNOWN, S.EXPIRED,
                             S.REJECTED}),
    S.REVISING: frozenset({S.REVISING, S.REPLACED, S.FILLED, S.ACCEPTED, S.PARTIAL, S.CANCELLED, S.EXPIRED,
                           S.REJECTED}),
    # final states: only a late fill (a fill that happened before the end and is reported after it)
    S.FILLED: frozenset({S.FILLED}),     # (an overfill KIS reports: booked, with an alert)
    S.CANCELLED: frozenset({S.CANCELLED}),
    S.REPLACED: frozenset({S.REPLACED}),
    S.EXPIRED: frozenset({S.EXPIRED}),
    S.REJECTED: frozenset(),
    # ...or KIS showing, after all, an order the trader gave up on (an alert is raised by the caller)
    S.NOT_PLACED: frozenset({S.ACCEPTED, S.PARTIAL, S.FILLED, S.CANCELLED, S.EXPIRED}),
}

FINAL_STATES = frozenset({S.FILLED, S.CANCELLED, S.REPLACED, S.EXPIRED, S.REJECTED, S.NOT_PLACED})
OPEN_STATES = frozenset(TRANSITIONS) - FINAL_STATES - {S.NEW}

def _submitted(order: bt.Order, broker: Any) -> None:
    # (bt's Order.submit also reads len(data), which a rebuilt order of a code without a feed lacks)
    order.status, order.broker = bt.Order.Submitted, broker


_BT_SET: dict[int, Callable[[bt.Order, Any], None]] = {
    bt.Order.Submitted: _submitted,
    bt.Order.Accepted: lambda o, b: o.accept(b),
    bt.Order.Partial: lambda o, b: o.partial(),
    bt.Order.Completed: lambda o, b: o.completed(),
    bt.Order.Canceled: lambda o, b: o.cancel(),
    bt.Order.Rejected: lambda o, b: o.reject(b),
    bt.Order.Expired: lambda o, b: setattr(o, "status", bt.Order.Expired),
}


class InvalidTransition(RuntimeError):
    """A move the table does not allow: a bug in the caller, never a market event."""


@dataclass(eq=False)
class LiveOrder:
    """One order (or revision) the trader placed at KIS, and what the book knows of it.

    Fill accounting (one rule, see ``orders.OrderBook.book_fills``): ``booked`` follows the larger
    of two views of KIS's cumulative filled quantity — the running total of this order's distinct
    fill notices (``noticed``) and the largest total a look-up read (``read``) — never their sum.
    """

    order: bt.Order
    intent_id: str
    kind: str                        # new | revise
    code: str
    side: str                        # buy | sell
    qty: int
    price: int                       # 0 = market
    ord_dvsn: str
    session_day: date
    reserve: float = 0.0             # KRW per share held back while a buy works (market: the upper limit)
    trigger: float | None = None     # stop orders: armed until the last trade reaches it
    odno: int | None = None
    branch: str = ""
    ord_time: str | None = None
    sent_at: datetime | None = None
    replaces: "LiveOrder | None" = None     # revisions: the order whose rest this one takes over
    revision: "LiveOrder | None" = None     # while REVISING: the revision in flight
    cancel_wanted: bool = False
    cancel_odno: int | None = None
    pending: str | None = None       # what KIS has not answered clearly: "new" | "cancel"
    booked_qty: int = 0
    booked_value: float = 0.0
    noticed_qty: int = 0
    noticed_value: float = 0.0
    read_qty: int = 0
    read_value: float = 0.0
    notice_keys: set[str] = field(default_factory=set)
    unknown_since: datetime | None = None  # exchange time the outcome became unknown
    next_lookup: datetime | None = None    # exchange time of its next look-up (an unknown outcome, a cancel)
    lookups: int = 0
    _state: OrderState = OrderState.NEW

    @property
    def state(self) -> OrderState:
        return self._state

    @property
    def filled(self) -> int:
        return self.booked_qty

    @property
    def remaining(self) -> int:
        return self.qty - self.booked_qty

    @property
    def final(self) -> bool:
        return self._state in FINAL_STATES

    @property
    def identity(self) -> tuple[str, str, str, int, int, str]:
        """What KIS knows an un-numbered order by: kind, code, side, quantity, price, revised number."""
        orig = str(self.replaces.odno) if self.kind == "revise" and self.replaces else ""
        return self.kind, self.code, self.side, self.qty, self.price, orig

    def working_state(self) -> OrderState:
        """ACCEPTED or PARTIAL, by what is booked (where a refused cancel/revise returns to)."""
        return OrderState.PARTIAL if self.booked_qty else OrderState.ACCEPTED

    def describe(self) -> str:
        num = f" #{self.odno}" if self.odno is not None else ""
        return f"{self.side} {self.qty} {self.code} @ {self.price or 'market'}{num} ({self._state.value})"


def bt_status(lo: LiveOrder) -> int:
    """The backtrader status the strategy sees for a lifecycle state (the one mapping)."""
    s = lo.state
    if s in (S.NEW, S.QUEUED, S.SENDING) or (s is S.UNKNOWN and lo.odno is None):
        # a triggered stop was already Accepted (held by the broker) and stays so while it is sent
        return bt.Order.Accepted if lo.trigger is not None and s is not S.NEW else bt.Order.Submitted
    if s is S.ARMED:
        return bt.Order.Accepted
    if s in (S.ACCEPTED, S.PARTIAL, S.CANCELLING, S.REVISING, S.UNKNOWN):
        return bt.Order.Partial if lo.booked_qty else bt.Order.Accepted
    return {S.FILLED: bt.Order.Completed, S.CANCELLED: bt.Order.Canceled, S.REPLACED: bt.Order.Canceled,
            S.EXPIRED: bt.Order.Expired, S.NOT_PLACED: bt.Order.Expired, S.REJECTED: bt.Order.Rejected}[s]


class Lifecycle:
    """Applies transitions: table check, journal write, backtrader notification — in that order."""

    def __init__(self, journal: Journal, notify: Callable[[bt.Order], None], owner: Any,
                 emit: Callable[..., None] = lambda kind, **data: None) -> None:
        self.journal = journal
        self._notify = notify
        self._owner = owner          # the backtrader broker, set on the order by submit/accept/reject
        self._emit = emit
        self._muted = False

    @contextlib.contextmanager
    def muted(self):
        """No notifications (a restart rebuilds orders the strategy is handed only afterwards)."""
        self._muted = True
        try:
            yield
        finally:
            self._muted = False

    def restore(self, intent: Intent, order: bt.Order) -> LiveOrder:
        """A ``LiveOrder`` in the state the journal last recorded (a restart; nothing is written)."""
        lo = LiveOrder(order, intent.id, intent.kind, intent.code, intent.side, intent.qty, intent.price,
                       intent.ord_dvsn, intent.day, odno=int(intent.odno) if intent.odno else None,
                       branch=intent.branch or "", ord_time=intent.ord_time, sent_at=intent.sent_at)
        lo._state = OrderState(intent.state)
        return lo

    def announce(self, lo: LiveOrder) -> None:
        """Hand a rebuilt order to the strategy: its backtrader status follows its state, one notification."""
        status = bt_status(lo)
        if status != lo.order.status:
            _BT_SET[status](lo.order, self._owner)
        self._notify(lo.order)

    def open(self, lo: LiveOrder, to: OrderState, reason: str = "") -> None:
        """NEW → QUEUED/ARMED: the intent row is written here, with its first state."""
        self._check(lo, to)
        replaces = lo.replaces.intent_id if lo.replaces else None
        orig = str(lo.replaces.odno) if lo.replaces and lo.replaces.odno is not None else None
        intent = self.journal.new_intent(kind=lo.kind, code=lo.code, side=lo.side, qty=lo.qty, price=lo.price,
                                         ord_dvsn=lo.ord_dvsn, bt_ref=lo.order.ref, session_day=lo.session_day,
                                         state=to.value, replaces=replaces, orig_odno=orig, reason=reason)
        lo.intent_id = intent.id
        self._apply(lo, to, reason, executed=False)

    def transition(self, lo: LiveOrder, to: OrderState, reason: str = "", *, fill: FillRow | None = None,
                   notice: NoticeRow | None = None, event: tuple[str, str] | None = None, quiet: bool = False,
                   **fields: Any) -> None:
        """Move ``lo`` to ``to``: journal it (with ``fill``/``notice`` in the same transaction) and
        notify the strategy when its backtrader status changes or shares were executed (``quiet``:
        a restart rebuilding what the strategy will be handed afterwards)."""
        self._check(lo, to)
        changes: dict[str, Any] = {"state": to.value}
        if reason:
            changes["reason"] = reason
        if fill is not None or notice is not None:
            changes.update(filled_qty=lo.booked_qty, filled_value=int(round(lo.booked_value)))
        for key, value in fields.items():
            if key == "odno":
                lo.odno = int(value)
                changes["odno"] = str(value)
            elif key == "qty":   # a revision sent for less: the rest shrank while it waited to be sent
                lo.qty = int(value)
                signed = lo.qty if lo.side == "buy" else -lo.qty
                lo.order.size = lo.order.created.size = lo.order.executed.remsize = signed
                changes["qty"] = lo.qty
            elif key in ("branch", "ord_time", "sent_at"):
                setattr(lo, key, value)
                changes[key] = value
            else:
                raise ValueError(f"transition() does not journal {key!r}")
        if not self.journal.record(lo.intent_id, changes, fill=fill, notice=notice, event=event):
            log.warning("journal already had this fill/notice for %s: %s", lo.describe(), fill or notice)
        self._apply(lo, to, reason, executed=fill is not None, quiet=quiet)

    def _check(self, lo: LiveOrder, to: OrderState) -> None:
        if to not in TRANSITIONS[lo.state]:
            raise InvalidTransition(f"{lo.describe()}: {lo.state.value} -> {to.value} is not a valid move")

    def _apply(self, lo: LiveOrder, to: OrderState, reason: str, executed: bool, quiet: bool = False) -> None:
        before = lo.state
        lo._state = to
        if to is not S.UNKNOWN:
            lo.pending = None
        if reason and to in FINAL_STATES | {S.UNKNOWN}:
            lo.order.addinfo(reason=reason)
        status = bt_status(lo)
        changed = status != lo.order.status
        if changed:
            _BT_SET[status](lo.order, self._owner)
        if (changed or executed) and not (quiet or self._muted):
            self._notify(lo.order)
        if to is S.REJECTED and before is not S.REJECTED and not self._muted:
            self._emit("rejection", code=lo.code, side=lo.side, qty=lo.qty, reason=reason, ref=lo.order.ref)
        if before is not to:
            log.info("order %s: %s -> %s %s", lo.order.ref, before.value, to.value, reason)

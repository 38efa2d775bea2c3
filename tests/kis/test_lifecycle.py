"""The order lifecycle table and the one fill rule, without a network: states, journal and
backtrader status move together, and fills are booked once whatever the order of their reports."""

from __future__ import annotations

import itertools
import random
from datetime import date, datetime, timedelta

import backtrader as bt
import pytest

from brokers.kis.journal import Journal, JournalScope
from brokers.kis.lifecycle import (FINAL_STATES, OPEN_STATES, TRANSITIONS, InvalidTransition, Lifecycle, LiveOrder,
                                   OrderState as S, bt_status)
from brokers.kis.orders import Ledger, OrderBook
from brokers.sim import KRXCommInfo
from market.calendar import KST

DAY = date(2025, 3, 5)
NOW = datetime(2025, 3, 5, 10, 0, tzinfo=KST)
SCOPE = JournalScope.of("paper", "50000001", "01", "an-app-key")


class _Store:
    """What the order book needs from a store, without threads."""

    halted = False

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def now(self) -> datetime:
        return NOW


class _Settings:
    order_window = "regular"
    hold_notice_s = 30.0


@pytest.fixture
def journal(tmp_path) -> Journal:
    return Journal(f"sqlite:///{tmp_path / 'j.sqlite'}", now=lambda: NOW, scope=SCOPE)


def make_book(journal: Journal):
    notes: list[int] = []   # the status each notification carried
    lifecycle = Lifecycle(journal, lambda order: notes.append(order.status), owner=None)
    ci = KRXCommInfo()
    book = OrderBook(_Store(journal), lifecycle, Ledger(cash=1e9), comminfo=lambda code: ci,
                     alert=lambda *a, **k: None, emit=lambda *a, **k: None, settings=_Settings(), commission_rate=0.0)
    return book, lifecycle, notes


def new_order(lifecycle: Lifecycle, book: OrderBook, qty: int = 100, odno: int = 42) -> LiveOrder:
    order = bt.BuyOrder(owner=None, data=None, size=qty, price=70_000, simulated=True, exectype=bt.Order.Limit)
    lo = LiveOrder(order, "", "new", "005930", "buy", qty, 70_000, "00", DAY)
    lifecycle.open(lo, S.QUEUED)
    book.add(lo)
    lifecycle.transition(lo, S.SENDING, sent_at=NOW)
    lifecycle.transition(lo, S.ACCEPTED, odno=str(odno).zfill(10), branch="00950", ord_time="100000")
    book.by_odno[odno] = lo
    return lo


# ---------------------------------------------------------------- the table
def test_every_state_is_reachable_and_finals_only_take_late_fills():
    seen, todo = {S.NEW}, [S.NEW]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(S)
    for final in FINAL_STATES - {S.NOT_PLACED}:
        assert TRANSITIONS[final] <= {final}, f"{final} may only stay itself (a late fill)"
    assert S.NOT_PLACED in TRANSITIONS[S.UNKNOWN] and S.QUEUED not in TRANSITIONS[S.UNKNOWN], "never re-sent"
    assert not OPEN_STATES & FINAL_STATES


def test_an_unknown_outcome_is_never_sent_again():
    """No path leads from UNKNOWN back to SENDING: an ambiguous order is resolved, not retried."""
    reach, todo = set(), [S.UNKNOWN]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    assert S.SENDING not in reach and S.QUEUED not in reach


def test_transition_journals_and_notifies_in_one_step(journal):
    book, lifecycle, notes = make_book(journal)
    lo = new_order(lifecycle, book)
    intent = journal.intent(lo.intent_id)
    assert intent.state == "ACCEPTED" and intent.odno == "0000000042" and intent.sent_at == NOW
    assert notes == [bt.Order.Submitted, bt.Order.Accepted]
    assert lo.order.status == bt_status(lo) == bt.Order.Accepted
    with pytest.raises(InvalidTransition):
        lifecycle.transition(lo, S.QUEUED)
    assert journal.intent(lo.intent_id).state == "ACCEPTED", "a refused move writes nothing"


# ---------------------------------------------------------------- the fill rule
def _notice(qty: int, price: int, second: int, odno: int = 42):
    class N:
        pass

    n = N()
    n.odno, n.orig_odno, n.kind, n.side, n.code = str(odno).zfill(10), "", "new", "buy", "005930"
    n.qty, n.price, n.time = qty, price, NOW + timedelta(seconds=second)
    n.is_fill, n.refused, n.acpt, n.killed = True, False, "2", False
    return n


def _read(lo: LiveOrder, book: OrderBook, total: int, value: float) -> None:
    if total > lo.read_qty:
        lo.read_qty, lo.read_value = total, value
    book.book_fills(lo, NOW, "check")


@pytest.mark.parametrize("seed", range(40))
def test_booked_follows_the_larger_view_never_the_sum(journal, seed):
    """Fills reported as notices (some repeated, in any order) and as KIS totals read at any moment,
    in any interleaving: the book never holds more than KIS's true total and ends equal to it."""
    rng = random.Random(seed)
    book, lifecycle, _ = make_book(journal)
    lo = new_order(lifecycle, book)
    fills = [(rng.choice((1, 5, 10)), 70_000 - 100 * rng.randint(0, 3), i) for i in range(rng.randint(3, 9))]
    truth = list(itertools.accumulate(q for q, _, _ in fills))
    values = list(itertools.accumulate(q * p for q, p, _ in fills))
    noticed = [f for f in fills if rng.random() < 0.8]            # some notices are lost (a WebSocket gap)
    events = [("notice", f) for f in noticed] + [("notice", rng.choice(fills)) for _ in range(2)]   # resends
    events += [("read", rng.randrange(len(fills))) for _ in range(rng.randint(1, 4))]
    rng.shuffle(events)
    events.append(("read", len(fills) - 1))   # the checker's final read
    for kind, what in events:
        if kind == "notice":
            book.apply_notice(lo, _notice(what[0], what[1], what[2]))
        else:
            _read(lo, book, truth[what], values[what])
        assert lo.booked_qty <= truth[-1], "more booked than KIS ever filled"
    assert lo.booked_qty == truth[-1]
    assert abs(lo.booked_value - values[-1]) < 1e-6
    rows = journal.fills_for(intent_id=lo.intent_id)
    assert sum(r["qty"] for r in rows) == truth[-1], "the journal holds each share once"
    assert len({r["fill_key"] for r in rows}) == len(rows)


def test_a_rebuilt_order_starts_from_its_journaled_total(journal, tmp_path):
    book, lifecycle, _ = make_book(journal)
    lo = new_order(lifecycle, book)
    book.apply_notice(lo, _notice(10, 70_000, 1))
    book.apply_notice(lo, _notice(20, 70_000, 2))
    booked, value, noticed, nvalue = journal.totals(lo.intent_id)
    assert (booked, noticed) == (30, 30)
    # a restart: the same intent restored from the journal, then KIS's total and a repeated notice
    book2, lifecycle2, _ = make_book(journal)
    [intent] = journal.open_intents()
    lo2 = lifecycle2.restore(intent, lo.order)
    lo2.booked_qty, lo2.booked_value, lo2.noticed_qty, lo2.noticed_value = booked, value, noticed, nvalue
    lo2.notice_keys = journal.notice_keys(intent.id)
    book2.add(lo2)
    _read(lo2, book2, 30, 30 * 70_000)
    book2.apply_notice(lo2, _notice(20, 70_000, 2))
    assert lo2.booked_qty == 30 and journal.totals(intent.id)[0] == 30



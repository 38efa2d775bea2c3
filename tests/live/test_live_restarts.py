"""The restart windows of issue 11: a paper trader killed (-9) or interrupted (Ctrl-C) at the worst
moments, then restarted — the same day or the next morning — against the in-process emulator.

After each, KIS's truth (the emulator's account) is compared with the journal and the book: every
order at KIS claimed by exactly one intent, every fill journaled once (with its commission and
tax), the same position everywhere, and no order of ours taken for another app's.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta

import pytest

from brokers.kis.journal import Journal
from configs.schema import DemoDataConfig
from feeds.demo import generate_demo_market
from harness import at, make_emulator, trading_days
from processes import TraderProc, trader_spec

DAY = date(2025, 3, 5)
NEXT = trading_days(DAY + timedelta(days=1), 1)[0]
CODE = "990001"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


@pytest.fixture(scope="module")
def demo():
    return generate_demo_market(DemoDataConfig(codes=2, start=date(2024, 9, 2), end=NEXT, seed=11))


@pytest.fixture
def run(demo, tmp_path, journal_url):
    """(emulator, start(strategy, until) -> TraderProc); everything is stopped afterwards."""
    emu = make_emulator(demo.bars, demo.markets, at(DAY, 8, 50), matching={"participation": 0.002})
    procs: list[TraderProc] = []
    spec: dict = {}

    def start(strategy=None, until=None) -> TraderProc:
        if strategy is not None:
            spec["path"] = trader_spec(emu, tmp_path, strategy, [CODE], until or at(DAY, 15, 40), journal_url)
        p = TraderProc(spec["path"])
        procs.append(p)
        p.read(lambda s: "loops" in s, "the trader's first turn")
        return p

    try:
        yield emu, start
    finally:
        for p in procs:
            p.stop()
        emu.stop()


def step(emu, proc: TraderProc, minutes: int = 1) -> dict:
    emu.advance(timedelta(minutes=minutes))
    return proc.settle(emu)


def kis_account(emu) -> dict:
    return emu.account_summary("paper")


def journal_of(tmp_path) -> Journal:
    """The journal the trader of this test wrote (the URL its spec names: SQLite or PostgreSQL)."""
    return Journal(json.loads((tmp_path / "spec.json").read_text())["journal_url"])


def check_books(emu, tmp_path, status: dict | None = None, days=(DAY,)) -> Journal:
    """One intent per order of ours at KIS; its fills journaled exactly once; positions agree."""
    journal = journal_of(tmp_path)
    acct = kis_account(emu)
    intents = [i for d in days for i in journal.intents_for_day(d)]
    fills = journal.all_fills()
    for o in acct["orders"]:
        if o["kind"] == "cancel" or o["source"] != "api":
            continue
        claims = [i for i in intents if i.odno and int(i.odno) == int(o["odno"])]
        assert len(claims) == 1, f"order {o['odno']} ({o['kind']}) at KIS is claimed by {len(claims)} intents"
        booked = sum(f["qty"] for f in fills if f["intent_id"] == claims[0].id)
        assert booked == o["filled"], f"order {o['odno']}: KIS filled {o['filled']}, the journal booked {booked}"
    held = acct["positions"].get(CODE, {"qty": 0})["qty"]
    assert sum(f["qty"] for f in fills if f["code"] == CODE) == held, "journal fills = KIS position"
    if status is not None:
        assert status["position"].get(CODE, 0) == held, "the book = KIS position"
    assert not [e for e in journal.events(kinds=["alert"]) if "foreign" in e["message"]], "an order of ours taken for foreign"
    return journal


def wait_for_orders(emu, proc: TraderProc, n: int) -> None:
    proc.read(lambda s: len([o for o in kis_account(emu)["orders"] if o["kind"] != "cancel"]) >= n,
              f"{n} orders at KIS")


# ---------------------------------------------------------------- 4. kill -9 between the POST and its answer
@pytest.mark.parametrize("journal_url", ["sqlite", "postgresql"], indirect=True)
def test_kill9_before_the_order_number_is_journaled(run, tmp_path):
    emu, start = run
    emu.advance_to(at(DAY, 9, 1))
    a = start({"name": "once:BuyOnce", "params": {"code": CODE, "qty": 3_000}})
    a.settle(emu)
    emu.faults.delay(30.0, path="order-cash", count=1)     # KIS takes the market buy; its answer is slow
    emu.advance(timedelta(minutes=1))                      # the first live bar: the strategy buys
    wait_for_orders(emu, a, 2)
    a.kill()
    emu.advance(timedelta(minutes=2))                      # fills go on while nobody listens
    b = start()
    for _ in range(3):
        st = step(emu, b)
    assert len([o for o in kis_account(emu)["orders"] if o["kind"] == "new"]) == 2, "nothing re-sent"
    journal = check_books(emu, tmp_path, st)
    recovered = [f for f in journal.all_fills() if f["source"] != "notice"]
    assert recovered and all(f["commission"] > 0 for f in recovered), "recovered fills carry their commission"


# ---------------------------------------------------------------- 7. a rebuilt order and a later check
def test_restart_with_partly_filled_orders_then_a_check_books_nothing_twice(run, tmp_path):
    emu, start = run
    emu.advance_to(at(DAY, 9, 1))
    a = start({"name": "once:BuyOnce", "params": {"code": CODE, "qty": 3_000}})
    a.settle(emu)
    for _ in range(3):
        st = step(emu, a)
    assert 0 < st["position"].get(CODE, 0) < 3_000
    a.kill()
    emu.advance(timedelta(minutes=1))
    b = start()
    st = step(emu, b)
    emu.drop_websockets()                                  # the reconnect reads KIS's totals of every open order
    b.read(lambda s: s["reconnects"] > st["reconnects"], "the reconnect")
    for _ in range(3):
        st = step(emu, b)
    check_books(emu, tmp_path, st)


# ---------------------------------------------------------------- 8. notices during the restart
def test_notices_arriving_during_a_restart_are_booked_once(run, tmp_path):
    emu, start = run
    emu.advance_to(at(DAY, 9, 1))
    a = start({"name": "once:BuyOnce", "params": {"code": CODE, "qty": 3_000}})
    a.settle(emu)
    for _ in range(2):
        st = step(emu, a)
    a.kill()
    # the restart's first read of KIS moves the market a minute: fills, and their notices to the
    # WebSocket the trader subscribed before reading
    emu.faults.advance_clock(60, path="inquire-daily-ccld", count=1)
    b = start()
    for _ in range(2):
        st = step(emu, b)
    assert emu.faults.describe()["fired"].get("advance_clock") == 1
    check_books(emu, tmp_path, st)


# ---------------------------------------------------------------- 9. a crash in the afternoon, a restart next morning
def test_crash_in_the_afternoon_restart_next_morning(run, tmp_path):
    emu, start = run
    emu.advance_to(at(DAY, 9, 1))
    a = start({"name": "once:BuyOnce", "params": {"code": CODE, "qty": 3_000}}, until=at(NEXT, 15, 40))
    a.settle(emu)
    emu.faults.delay(60.0, path="order-cash", count=1)     # the market buy: taken by KIS, no answer before the crash
    emu.advance(timedelta(minutes=1))
    wait_for_orders(emu, a, 2)
    emu.advance_to(at(DAY, 14, 0))
    a.kill()
    emu.advance_to(at(NEXT, 9, 0, ) + timedelta(seconds=30))   # yesterday's orders fill on and expire
    b = start()
    st = b.settle(emu)
    st = step(emu, b)
    journal = check_books(emu, tmp_path, st, days=(DAY, NEXT))
    states = {i.state for i in journal.intents_for_day(DAY)}
    assert "REJECTED" not in states and "UNKNOWN" not in states, states


# ---------------------------------------------------------------- 10. a revise in flight at the crash
def test_revise_in_flight_at_a_crash(run, tmp_path):
    emu, start = run
    emu.advance_to(at(DAY, 9, 1))
    a = start({"name": "crashy:ReviseOnce", "params": {"code": CODE, "qty": 50}})
    a.settle(emu)
    step(emu, a)                                           # the limit buy rests
    emu.faults.delay(30.0, path="order-rvsecncl", count=1)
    emu.advance(timedelta(minutes=1))                      # the revise: KIS takes it, the answer is slow
    a.read(lambda s: any(o["kind"] == "revise" for o in kis_account(emu)["orders"]), "the revise at KIS")
    a.kill()
    emu.advance(timedelta(minutes=2))                      # the revised order fills
    b = start()
    for _ in range(2):
        st = step(emu, b)
    assert [o["kind"] for o in kis_account(emu)["orders"]] == ["new", "revise"], "nothing re-sent"
    journal = check_books(emu, tmp_path, st)
    [revision] = [i for i in journal.intents_for_day(DAY) if i.kind == "revise"]
    assert revision.odno is not None and revision.state in ("FILLED", "PARTIAL", "ACCEPTED")


# ---------------------------------------------------------------- 11. Ctrl-C with a backlog of queued POSTs
def test_ctrl_c_sends_no_queued_post(run, tmp_path):
    emu, start = run
    emu.advance_to(at(DAY, 9, 1))
    a = start({"name": "crashy:Burst", "params": {"code": CODE, "n": 10}})
    a.settle(emu)
    emu.faults.delay(2.0, path="order-cash", count=10)     # slow answers: a backlog builds behind them
    emu.advance(timedelta(minutes=1))
    wait_for_orders(emu, a, 1)
    assert a.interrupt() == 0
    sent = [o for o in kis_account(emu)["orders"] if o["kind"] == "new"]
    assert len(sent) <= 2, f"{len(sent)} orders reached KIS after Ctrl-C; only those already on the wire may"
    journal = journal_of(tmp_path)
    intents = journal.intents_for_day(DAY)
    assert len(intents) == 10
    for o in sent:   # the answers of the POSTs on the wire were waited for and journaled
        assert len([i for i in intents if i.odno and int(i.odno) == int(o["odno"])]) == 1
    unsent = [i for i in intents if i.state == "CANCELLED" and "not sent" in i.reason]
    assert len(unsent) == 10 - len(sent)

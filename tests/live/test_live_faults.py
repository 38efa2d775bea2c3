"""KISBroker against the emulator's fault switches, over real sockets, on a stepped clock.

Each test runs a paper trader (``scripted.Commands`` on 1-minute bars) against a fresh emulator,
places orders through the strategy exactly as a strategy would, flips a fault, and then checks
the three books agree: the broker's position, the emulator's account (KIS's truth) and the sum of
fills in the journal — nothing lost, nothing doubled.
"""

from __future__ import annotations

from datetime import date

import backtrader as bt
import pytest

from harness import at, start_scripted

DAY = date(2025, 3, 5)
CODE = "990001"


def books(s, code=CODE):
    """(broker shares, KIS shares, journal fill sum) for ``code``; prints the story when they differ."""
    broker = int(s.trader.broker.positions[code].size)
    kis = s.trader.emu.account_summary("paper")["positions"].get(code, {"qty": 0})["qty"]
    journal = 0
    for f in s.trader.journal.all_fills():
        if f["code"] == code:
            journal += f["qty"] if f["side"] == "buy" else -f["qty"]
    if not broker == kis == journal:
        for e in s.trader.journal.events():
            if e["kind"] in ("notice", "duplicate", "recovered", "reply", "request", "ws"):
                print(e["ts"].time(), e["kind"], e["message"], e["payload"])
        print([(f["ts"].time(), f["qty"], f["price"], f["source"], f["fill_key"]) for f in s.trader.journal.all_fills()])
    return broker, kis, journal


def kis_orders(s, code=CODE, kind="new"):
    return [o for o in s.trader.emu.account_summary("paper")["orders"] if o["code"] == code and o["kind"] == kind]


def test_partial_fills_then_cancel_only_cancels_the_rest(emu_factory, tmp_path):
    emu = emu_factory(matching={"participation": 0.002})
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    order = s.do(lambda st: st.buy(data=CODE, size=3_000))
    for _ in range(3):
        s.tick()
    assert 0 < order.executed.size < 3_000, "participation should give partial fills"
    s.do(lambda st: st.cancel_buy(CODE))
    s.tick()
    assert order.status == bt.Order.Canceled
    filled = int(order.executed.size)
    assert books(s) == (filled, filled, filled)
    [kis] = kis_orders(s)
    assert kis["filled"] == filled and kis["open"] == 0
    assert not s.strategy.check_failures


def test_websocket_dropped_during_partial_fills_loses_and_doubles_nothing(emu_factory, tmp_path):
    emu = emu_factory(matching={"participation": 0.002})
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    order = s.do(lambda st: st.buy(data=CODE, size=3_000))
    s.tick()
    before = int(order.executed.size)
    store = s.trader.store
    reconnects = store.reconnects
    emu.drop_websockets()
    s.skip(3)                                          # fills happen while the trader is deaf
    assert store.wait_for(lambda: store.reconnects > reconnects, 30), "the WebSocket never came back"
    s.trader.settle()
    s.tick()
    after = int(order.executed.size)
    assert after > before
    [kis] = kis_orders(s)
    assert books(s) == (after, after, after) and kis["filled"] == after
    assert s.trader.broker.recovered_fills >= 1, "fills during the gap come from inquire-daily-ccld"
    feed_states = [e["message"] for e in s.strategy.events if e["kind"] == "feed" and e["code"] == CODE]
    assert "CONNBROKEN" in feed_states and feed_states[-1] == "LIVE", feed_states


def test_timeout_after_acceptance_is_exactly_one_order(emu_factory, tmp_path):
    emu = emu_factory(rest={"hold_timeout_s": 5.0})
    s = start_scripted(emu, tmp_path, [CODE], DAY, order_timeout=0.5)
    emu.faults.timeout(path="order-cash", after_accept=True)
    order = s.do(lambda st: st.buy(data=CODE, size=10))
    s.tick()
    assert len(kis_orders(s)) == 1, "one intent, one order at KIS"
    assert order.status == bt.Order.Completed
    assert books(s) == (10, 10, 10)
    assert any(e["kind"] == "recovered" for e in s.trader.journal.events())


def test_rate_limit_storm_is_absorbed_by_backoff(emu_factory, tmp_path):
    emu = emu_factory()
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    emu.faults.rate_storm(count=3)
    order = s.do(lambda st: st.buy(data=CODE, size=5))
    s.tick()
    assert order.status == bt.Order.Completed
    assert not [e for e in s.trader.journal.events(kinds=["error", "alert"]) if "EGW00201" in e["message"]]
    stats = s.trader.session.store.client.stats
    assert stats.retries >= 3
    assert books(s) == (5, 5, 5)


def test_token_expiry_mid_session(emu_factory, tmp_path):
    emu = emu_factory()
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    s.skip(2)                                          # past the one-issuance-a-minute window
    emu.expire_tokens()
    order = s.do(lambda st: st.buy(data=CODE, size=5))
    s.tick()
    assert order.status == bt.Order.Completed and books(s) == (5, 5, 5)


def test_notice_before_reply(emu_factory, tmp_path):
    emu = emu_factory()
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    emu.faults.notice_first(count=1)
    order = s.do(lambda st: st.buy(data=CODE, size=7, price=int(st.data_by_code[CODE].close[0] * 1.05) // 100 * 100,
                                   exectype=bt.Order.Limit))
    s.tick()
    assert order.status == bt.Order.Completed
    assert books(s) == (7, 7, 7)


@pytest.mark.parametrize("journal_url", ["sqlite", "postgresql"], indirect=True)
def test_duplicate_and_out_of_order_notices(emu_factory, tmp_path, journal_url):
    emu = emu_factory(matching={"participation": 0.002})
    s = start_scripted(emu, tmp_path, [CODE], DAY, journal_url=journal_url)
    emu.faults.duplicate_notices(count=5)
    emu.faults.reorder_notices(count=5)
    order = s.do(lambda st: st.buy(data=CODE, size=2_000))
    for _ in range(3):
        s.tick()
    filled = int(order.executed.size)
    assert filled > 0
    assert books(s) == (filled, filled, filled)
    dupes = [e for e in s.trader.journal.events(kinds=["duplicate"])]
    assert dupes, "the duplicate fault should have been seen and ignored"


def test_order_from_another_app_raises_a_reconciliation_alert(emu_factory, tmp_path):
    emu = emu_factory()
    s = start_scripted(emu, tmp_path, [CODE], DAY, kis={"stop_on_mismatch": True})
    s.trader.broker.p.hold_notice_s = 0.0
    s.trader.broker.p.reconcile_debounce_s = 0.0
    emu.hts_order(CODE, "buy", 3)
    s.tick()
    s.tick()
    kinds = {a["kind"] for a in s.trader.broker.alerts}
    assert {"foreign_order", "reconcile_mismatch"} <= kinds
    mismatch = [a for a in s.trader.broker.alerts if a["kind"] == "reconcile_mismatch"][0]
    assert f"{CODE}: local 0 sh vs KIS 3 sh" in mismatch["message"]
    assert s.strategy.trading_stopped, "stop_on_mismatch stops trading"


def test_revise_chain_keeps_new_order_numbers(emu_factory, tmp_path):
    emu = emu_factory()
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    band = s.do(lambda st: st.broker.session_band(st.data_by_code[CODE]))
    low = band.lower + 1_000                        # far below the market: it rests
    first = s.do(lambda st: st.buy(data=CODE, size=4, price=low, exectype=bt.Order.Limit))
    second = s.do(lambda st: st.revise(first, price=low + 100))
    third = s.do(lambda st: st.revise(second, price=low + 200))
    assert first.status == second.status == bt.Order.Canceled
    assert first.info.replaced_by == second.ref and second.info.replaced_by == third.ref
    numbers = [o["odno"] for o in s.trader.emu.account_summary("paper")["orders"]]
    assert len(set(numbers)) == len(numbers) == 3      # the order and its two revisions: three numbers
    revised = kis_orders(s, kind="revise")
    assert len(revised) == 2 and revised[-1]["price"] == low + 200
    intents = {i.id: i for i in s.trader.journal.intents_for_day(DAY)}
    chain = [i for i in intents.values() if i.replaces]
    assert len(chain) == 2 and all(intents[i.replaces].state == "REPLACED" for i in chain)


def test_day_end_expiry(emu_factory, tmp_path):
    emu = emu_factory()
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    band = s.do(lambda st: st.broker.session_band(st.data_by_code[CODE]))
    low = band.lower
    order = s.do(lambda st: st.buy(data=CODE, size=4, price=low, exectype=bt.Order.Limit))
    s.trader.step_to(at(DAY, 15, 31))
    assert order.status == bt.Order.Expired
    assert "unfilled at the close" in order.info.reason
    assert [i.state for i in s.trader.journal.intents_for_day(DAY)] == ["EXPIRED"]


def test_stop_orders_are_held_by_the_broker_until_triggered(emu_factory, tmp_path):
    emu = emu_factory()
    s = start_scripted(emu, tmp_path, [CODE], DAY)
    band = s.do(lambda st: st.broker.session_band(st.data_by_code[CODE]))
    # a buy stop whose trigger the market is already above: sent at market with the next trade
    fired = s.do(lambda st: st.buy(data=CODE, size=5, price=band.lower + 100, exectype=bt.Order.Stop))
    s.tick()
    assert fired.status == bt.Order.Completed and books(s) == (5, 5, 5)
    # a sell stop far below the market: held locally, never seen by KIS, then cancelled locally
    armed = s.do(lambda st: st.sell(data=CODE, size=5, price=band.lower + 100, exectype=bt.Order.Stop))
    s.tick()
    assert armed.status == bt.Order.Accepted
    assert [o["side"] for o in kis_orders(s)] == ["02"], "only the triggered buy reached KIS"
    s.do(lambda st: st.cancel(armed))
    assert armed.status == bt.Order.Canceled
    assert len(kis_orders(s)) == 1
    journal = [e["kind"] for e in s.trader.journal.events(kinds=["armed", "triggered"])]
    assert journal == ["armed", "triggered", "armed"]

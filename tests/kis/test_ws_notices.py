"""Execution notices over the WebSocket: encrypted, both layouts (23 paper / 26 real), full order life."""

from __future__ import annotations

from datetime import timedelta

import pytest

from brokers.kis import protocol as P
from brokers.kis.models import to_int
from brokers.kis.ws_events import ExecutionNotice, parse_notice


@pytest.mark.parametrize("env,fields", [("paper", 23), ("real", 26)])
def test_ack_partial_fills_then_cancel(kit, emu, vt, ws_factory, collector, env: str, fields: int) -> None:
    client = kit.make_client(emu, env, vt)
    account = kit.creds_of(emu, env).account
    ws = ws_factory(env, client=client, account_filter=account)
    ws.subscribe_notices()
    ack = collector.wait("ack", lambda a: a.tr_id == P.notice_tr_for(env) and a.ok)
    assert ack.msg_cd == P.WS_SUBSCRIBED.code

    r = client.order_cash("buy", kit.MAIN, 200, 0, ord_dvsn="01")  # market: fills over several prints
    n0: ExecutionNotice = collector.wait("notice")
    assert P.same_order_number(n0.odno, r.odno) and n0.branch == r.branch and n0.account == account
    assert (n0.is_fill, n0.refused, n0.kind, n0.acpt, n0.side, n0.code) == (False, False, "new", P.ACPT_RECEIVED,
                                                                           "buy", kit.MAIN)
    assert n0.qty == n0.order_qty == 200 and n0.ord_dvsn == "01" and n0.orig_odno == ""
    assert n0.effective_order_price == 0  # market order
    assert len([k for k in n0.raw if not k.startswith("_extra")]) == fields
    assert n0.time.date() == emu.now().date() and n0.time.tzinfo is not None

    emu.advance(timedelta(seconds=60))  # three prints: partial fills (participation 5 %)
    fills = collector.take("notice", 2, lambda n: n.is_fill)
    assert all(P.same_order_number(f.odno, r.odno) and f.qty > 0 and f.price > 0 for f in fills)
    assert all(f.ord_dvsn == "00" and f.order_qty == 200 for f in fills)  # KIS shows 00 on fills
    assert all(f.order_price == 0 for f in fills)  # a market order has no order price

    cx = client.cancel(r.branch, r.odno)
    c1 = collector.wait("notice", lambda n: n.kind == "cancel" and n.acpt == P.ACPT_RECEIVED)
    c2 = collector.wait("notice", lambda n: n.kind == "cancel" and n.acpt == P.ACPT_CONFIRMED)
    fills += [n for n in collector.drain("notice") if n.is_fill]  # any print before the cancel landed
    filled = sum(f.qty for f in fills)
    assert 0 < filled < 200
    assert P.same_order_number(c1.odno, cx.odno) and P.same_order_number(c1.orig_odno, r.odno)
    assert c1.qty == c2.qty == 200 - filled and not c1.is_fill
    assert ws.stats.decrypt_errors == 0 and ws.stats.parse_errors == 0

    today = emu.now().date()
    row = [o for o in client.daily_orders(today, today) if P.same_order_number(o.odno, r.odno)][0]
    assert row.filled_qty == filled and row.remaining_qty == 0 and row.cancelled_qty == 200 - filled


def test_notices_of_other_accounts_are_dropped(kit, emu, vt, ws_factory, collector) -> None:
    """Notices go to every account of the HTS ID (§4.7): a session filtering another account sees none."""
    other = emu.add_app("paper")  # a second app key (own session allowed) on the same account
    from brokers.kis.client import Credentials

    c2 = kit.make_client(emu, "paper", vt, index=len(emu.all_credentials("paper")) - 1)
    assert Credentials.from_mapping(other.as_dict()).app_key == c2.creds.app_key
    mine = kit.Collector()
    ws_mine = ws_factory("paper", sink=mine, account_filter=kit.creds_of(emu, "paper").account)
    ws_other = ws_factory("paper", client=c2, account_filter="99999999-01")
    ws_mine.subscribe_notices()
    ws_other.subscribe_notices()
    mine.wait("ack", lambda a: a.ok)
    collector.wait("ack", lambda a: a.ok)
    q = c2.quote(kit.MAIN)
    c2.order_cash("buy", kit.MAIN, 1, q.lower_limit + q.tick)
    n = mine.wait("notice")
    assert n.account == kit.creds_of(emu, "paper").account
    ws_other.subscribe_trades(kit.MAIN)  # a later ack proves the notice frame was already handled
    collector.wait("ack", lambda a: a.tr_id == P.WS_TR_TRADE)
    assert ws_other.stats.dropped_other_account == 1 and not collector.drain("notice")


def test_notice_parser_layouts_and_guard() -> None:
    today = __import__("datetime").date(2025, 6, 2)
    head = ["hts", "5000000101", "0000010001", "", P.BUY, P.RCTF_NORMAL, "00", "0", "005930", "0000000010",
            "000070000", "093000", P.RFUS_ACCEPTED, P.CNTG_FILL, P.ACPT_CONFIRMED, "00950", "000000010", "홍길동"]
    paper = parse_notice(head + ["1Y", "10", "", "삼성전자", "000070000"], today)
    real = parse_notice(head + ["", "1", "Y", "", "10", "", "삼성전자", "000070000"], today)
    longer = parse_notice(head + ["", "1", "Y", "", "10", "", "삼성전자", "000070000", "future"], today)
    for n in (paper, real, longer):
        assert (n.is_fill, n.qty, n.price, n.order_price, to_int(n.odno)) == (True, 10, 70_000, 70_000, 10001)
    assert longer.raw["_extra_0"] == "future"
    with pytest.raises(ValueError):
        parse_notice(head + ["x"], today)


def test_unpadded_paper_order_numbers_match_padded_notices(kit, make_emulator, collector) -> None:
    """Paper REST replies were seen with unpadded ODNO (``47589``); notices are always padded."""
    emu = make_emulator(paper={"odno_padded": False})
    vt = kit.VirtualTime(emu)
    client = kit.make_client(emu, "paper", vt)
    c = emu.credentials("paper")
    from brokers.kis.ws import KISWebSocket

    ws = KISWebSocket(c.ws_url, client.approval_key, "paper", c.hts_id, on_notice=collector.cb("notice"),
                      on_ack=collector.cb("ack"), wallclock=vt.wallclock)
    try:
        ws.start()
        ws.subscribe_notices()
        collector.wait("ack", lambda a: a.ok)
        q = client.quote(kit.MAIN)
        r = client.order_cash("buy", kit.MAIN, 1, q.lower_limit + q.tick)
        n = collector.wait("notice")
        assert not n.is_fill and n.effective_order_price == q.lower_limit + q.tick  # ack: price in CNTG_UNPR
        assert r.odno == str(int(r.odno)) and len(n.odno) == P.NOTICE_FIELD_WIDTHS["ODER_NO"]
        assert n.odno != r.odno and P.same_order_number(n.odno, r.odno)
        today = emu.now().date()
        assert P.same_order_number(client.open_orders()[0].odno, n.odno)
        assert client.daily_orders(today, today)[0].odno == r.odno
    finally:
        ws.stop()

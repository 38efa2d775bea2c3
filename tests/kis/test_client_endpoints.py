"""Every endpoint method against the emulator, in both environments (paper and real credentials)."""

from __future__ import annotations

from datetime import date, datetime, time as dtime, timedelta

import pandas as pd
import pytest

from brokers.kis import protocol as P
from brokers.kis.errors import KISRejected
from brokers.kis.models import to_int
from brokers.kis.protocol import Api

ENVS = ["paper", "real"]
BRANCH = {"paper": "00950", "real": "06010"}  # the emulator's defaults (KRX_FWDG_ORD_ORGNO)


@pytest.mark.parametrize("env", ENVS)
def test_quote_and_buying_power(kit, client_factory, env: str) -> None:
    c = client_factory(env)
    q = c.quote(kit.MAIN)
    assert q.code == kit.MAIN and q.price > 0 and q.tick == 100
    assert q.lower_limit < q.low <= q.price <= q.high < q.upper_limit
    assert q.base_price > 0 and q.volume > 0
    bp = c.buying_power(kit.MAIN, q.price)
    assert bp.cash == 100_000_000
    assert 0 < bp.max_qty <= bp.cash // q.price and bp.max_amount == bp.max_qty * q.price
    market = c.buying_power(kit.MAIN, 0, ord_dvsn="01")  # market buys reserve at the upper limit
    assert market.max_qty <= bp.cash // q.upper_limit
    with pytest.raises(KISRejected):
        c.quote("123456")


@pytest.mark.parametrize("env", ENVS)
def test_order_revise_cancel_and_inquiries(kit, client_factory, emu, env: str) -> None:
    c = client_factory(env)
    q = c.quote(kit.MAIN)
    low = q.lower_limit + 10 * q.tick  # rests: the tape never trades that low today
    r = c.order_cash("buy", kit.MAIN, 3, low)
    assert r.odno.isdigit() and r.branch == BRANCH[env] and len(r.ord_time) == 6
    assert r.msg_cd == P.message("order_buy_ok").code(env) and r.msg1 == P.message("order_buy_ok").text(env)

    opened = c.open_orders()
    assert [P.same_order_number(o.odno, r.odno) for o in opened] == [True]
    o = opened[0]
    assert (o.side, o.code, o.qty, o.price, o.remaining_qty, o.branch) == ("buy", kit.MAIN, 3, low, 3, r.branch)

    rv = c.revise(r.branch, r.odno, None, low + q.tick)
    assert rv.msg_cd == P.message("revise_ok").code(env) and not P.same_order_number(rv.odno, r.odno)
    cx = c.cancel(rv.branch, rv.odno)
    assert cx.msg_cd == P.message("cancel_ok").code(env)
    assert c.open_orders() == []

    sell = c.order_cash("sell", kit.MAIN, 10, q.upper_limit - q.tick)
    assert sell.msg_cd == P.message("order_sell_ok").code(env)

    today = emu.now().date()
    rows = c.daily_orders(today, today)
    assert [to_int(x.odno) for x in rows] == sorted(to_int(x) for x in (r.odno, rv.odno, cx.odno, sell.odno))
    by = {to_int(x.odno): x for x in rows}
    new, rev, can = by[to_int(r.odno)], by[to_int(rv.odno)], by[to_int(cx.odno)]
    assert new.date == today and new.side == "buy" and new.qty == 3 and new.price == low and new.ord_dvsn == "00"
    assert P.same_order_number(rev.orig_odno, r.odno) and rev.price == low + q.tick
    assert can.cancelled and P.same_order_number(can.orig_odno, rv.odno) and can.cancelled_qty == 3
    assert not new.cancelled and new.remaining_qty == 0 and new.filled_qty == 0
    assert by[to_int(sell.odno)].side == "sell"
    # filters
    assert [x.side for x in c.daily_orders(today, today, side="sell")] == ["sell"]
    assert all(P.same_order_number(x.odno, r.odno) for x in c.daily_orders(today, today, odno=r.odno))
    assert c.daily_orders(today, today, code=kit.SECOND) == []


@pytest.mark.parametrize("env", ENVS)
def test_balance(kit, client_factory, env: str) -> None:
    c = client_factory(env)
    b = c.balance()
    held = {h.code: h for h in b.holdings}
    if env == "paper":
        assert len(held) == len(kit.HOLDING_CODES) + 1 and b.raw["pages"] == 2  # 20 rows a page
        assert held[kit.HOLDING_CODES[0]].qty == 10
    else:
        assert set(held) == {kit.MAIN, kit.SECOND} and b.raw["pages"] == 1
    h = held[kit.MAIN]
    assert h.qty == 50 and h.sellable_qty == 50 and h.avg_price == pytest.approx(65_000.0)
    assert h.purchase_amount == 50 * 65_000 and h.eval_amount == 50 * h.price and h.pnl == h.eval_amount - h.purchase_amount
    assert b.cash.d0 == b.cash.d2 == 100_000_000 and b.cash.fees_today == 0
    assert b.cash.securities_eval == sum(x.eval_amount for x in b.holdings)
    assert b.cash.total_eval == b.cash.securities_eval + b.cash.d2


def test_balance_after_a_fill(kit, client_factory, emu) -> None:
    c = client_factory("real")
    r = c.order_cash("buy", kit.SECOND, 2, 0, ord_dvsn="01")
    emu.advance(timedelta(minutes=2))
    b = c.balance()
    h = {x.code: x for x in b.holdings}[kit.SECOND]
    assert h.qty == 7
    assert b.cash.d2 < 100_000_000 and b.cash.d0 == 100_000_000 and b.cash.fees_today > 0
    row = [o for o in c.daily_orders(emu.now().date(), emu.now().date()) if P.same_order_number(o.odno, r.odno)][0]
    assert row.filled_qty == 2 and row.avg_fill_price > 0 and row.remaining_qty == 0


def test_daily_orders_paginates_on_paper(kit, client_factory, emu) -> None:
    c = client_factory("paper")
    q = c.quote(kit.MAIN)
    odnos = [emu.hts_order(kit.MAIN, "buy", 1, q.lower_limit + k * q.tick, env="paper") for k in range(17)]
    today = emu.now().date()
    rows = c.daily_orders(today, today)
    assert len(rows) == 17  # 15 + 2 on paper
    assert [to_int(x.odno) for x in rows] == sorted(to_int(o) for o in odnos)
    assert len({x.odno for x in rows}) == 17
    assert len(c.open_orders()) == 17


def test_daily_orders_older_than_three_months_use_the_other_tr(kit, client_factory, emu, emu_log) -> None:
    c = client_factory("paper")
    today = emu.now().date()
    c.daily_orders(date(2025, 1, 2), today)
    old, new = P.tr_id_for(Api.INQUIRE_DAILY_CCLD_OLD, "paper"), P.tr_id_for(Api.INQUIRE_DAILY_CCLD, "paper")
    assert len(emu_log.settled(emu, f"tr_id={old}")) == 1 and len(emu_log.settled(emu, f"tr_id={new}")) == 1
    c.daily_orders(today - timedelta(days=5), today)
    assert len(emu_log.settled(emu, f"tr_id={old}")) == 1 and len(emu_log.settled(emu, f"tr_id={new}")) == 2


@pytest.mark.parametrize("env", ENVS)
def test_daily_bars_page_backwards(kit, client_factory, market_bars, env: str) -> None:
    c = client_factory(env)
    src = market_bars[kit.MAIN]
    start, end = date(2024, 9, 2), date(2025, 5, 30)
    df = c.daily_bars(kit.MAIN, start, end)
    expected = src[(src.index.date >= start) & (src.index.date <= end)]
    assert len(df) == len(expected) > P.DAILY_CHART_MAX_ROWS  # needed more than one call
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert all(str(t) == "int64" for t in df.dtypes)
    assert df.index.is_monotonic_increasing and df.index.is_unique and df.index.tz is None
    assert (df.index.date == expected.index.date).all()
    assert df["close"].iloc[-1] == expected["close"].iloc[-1] and df["volume"].iloc[0] == expected["volume"].iloc[0]
    short = c.daily_bars(kit.MAIN, date(2025, 5, 26), date(2025, 5, 30), adjusted=False)
    assert len(short) == 5


@pytest.mark.parametrize("env", ENVS)
def test_minute_bars_page_back(kit, client_factory, emu, env: str) -> None:
    c = client_factory(env)
    now = emu.now()
    df = c.minute_bars(kit.MAIN)
    assert df.index.is_monotonic_increasing and df.index.is_unique and df.index.tz is None
    assert df.index[0] == pd.Timestamp(datetime(2025, 6, 2, 9, 0))
    assert len(df) >= 60 > P.TIME_CHART_MAX_ROWS  # 09:00 .. 10:00: several calls
    assert df.index[-1] <= pd.Timestamp(now.replace(tzinfo=None))
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all() and (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert df["volume"].sum() > 0
    early = c.minute_bars(kit.MAIN, until=dtime(9, 30, 0))
    assert early.index[-1] <= pd.Timestamp(datetime(2025, 6, 2, 9, 30))
    assert early.equals(df.loc[early.index]) or len(early) == len(df.loc[: early.index[-1]])


def test_old_tr_ids_are_selectable(kit, client_factory, emu, emu_log) -> None:
    c = client_factory("paper", use_old_tr_ids=True)
    assert c.tr_id(Api.ORDER_CASH_BUY) == P.tr_id_for(Api.ORDER_CASH_BUY, "paper", "old")
    assert c.tr_id(Api.INQUIRE_BALANCE) == P.tr_id_for(Api.INQUIRE_BALANCE, "paper")  # no old id: the new one
    q = c.quote(kit.MAIN)
    r = c.order_cash("buy", kit.MAIN, 1, q.lower_limit + q.tick)
    c.cancel(r.branch, r.odno)
    today = emu.now().date()
    assert len(c.daily_orders(today, today)) == 2
    for api in (Api.ORDER_CASH_BUY, Api.ORDER_RVSECNCL, Api.INQUIRE_DAILY_CCLD):
        assert emu_log.settled(emu, "tr_id=" + P.tr_id_for(api, "paper", "old")), api
    assert not emu_log.settled(emu, "tr_id=" + P.tr_id_for(Api.ORDER_CASH_BUY, "paper", "new"))
    new_client = client_factory("paper")
    assert new_client.tr_id(Api.ORDER_CASH_BUY) == P.tr_id_for(Api.ORDER_CASH_BUY, "paper", "new")


def test_server_now_via_the_emulator_admin(kit, emu, vt) -> None:
    with_admin = kit.make_client(emu, "paper", vt, admin_url=emu.admin_url)
    assert with_admin.server_now() == emu.now()
    emu.advance(timedelta(minutes=3))
    assert with_admin.server_now() == emu.now()
    assert kit.make_client(emu, "paper", vt).server_now() is None  # real KIS has no such thing

"""Matching, expiry and T+2 cash, driven over REST with the stepped clock.

Prices come from hand-made one-minute bars (O=H=L=C, so each minute is exactly one print at a
known price and volume — the documented tick-path rule with ``tick_interval_s=60``). Cash
figures are computed here from RULES.md: commission 0.0140527 % per side (truncated), sell tax
0.15 % for trades settling in 2025.
"""

from __future__ import annotations

from datetime import date, datetime, time

import pandas as pd

from kis_emu_helpers import DAY, NEXT, T2, Client, KST, at, daily_bars, minute_bars, standard_bars

KAKAO = "035720"
PRINTS = [("09:00", 50000, 100), ("09:01", 50000, 100), ("09:02", 49900, 100), ("09:03", 49800, 100),
          ("09:04", 49900, 3), ("09:05", 50000, 2), ("09:06", 50100, 2), ("09:07", 50200, 100),
          ("09:08", 50300, 100), ("09:09", 50200, 100), ("09:10", 50100, 100), ("09:11", 49000, 100),
          ("15:25", 50500, 1000)]


def kakao_bars() -> dict[str, pd.DataFrame]:
    day1 = minute_bars(PRINTS, prev_close=50000)
    day2 = minute_bars([("09:00", 48000, 100), ("09:01", 47000, 100)], d=NEXT)
    bars = standard_bars()
    bars[KAKAO] = pd.concat([day1, day2]).sort_index()
    return bars


def rows_by_odno(cl: Client, **kw) -> dict[str, dict[str, str]]:
    return {r["odno"]: r for r in cl.ccld(**kw).json()["output1"]}


def test_limit_buy_fills_only_when_traded_through(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    odno = cl.order("buy", KAKAO, 5, 49900).json()["output"]["ODNO"]
    emu.advance_to(at("09:02:30"))       # 09:01 at 50,000 (no), 09:02 at 49,900 = the limit (not through)
    assert rows_by_odno(cl)[odno]["tot_ccld_qty"] == "0"
    emu.advance_to(at("09:03:30"))       # 09:03 at 49,800 trades through → filled at the limit
    row = rows_by_odno(cl)[odno]
    assert (row["tot_ccld_qty"], row["avg_prvs"], row["tot_ccld_amt"], row["rmn_qty"]) == ("5", "49900", "249500", "0")


def test_touch_rule_is_configurable(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars(), matching={"limit_fill": "touch"})
    cl = Client(emu.credentials())
    odno = cl.order("buy", KAKAO, 5, 49900).json()["output"]["ODNO"]
    emu.advance_to(at("09:02:30"))
    assert rows_by_odno(cl)[odno]["tot_ccld_qty"] == "5"


def test_marketable_limit_takes_the_next_print_price(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    odno = cl.order("buy", KAKAO, 5, 50200).json()["output"]["ODNO"]
    emu.advance_to(at("09:01:30"))
    row = rows_by_odno(cl)[odno]
    assert (row["tot_ccld_qty"], row["avg_prvs"]) == ("5", "50000")


def test_partial_fills_limited_by_print_volume(make_emu) -> None:
    emu = make_emu("paper", start=at("09:03:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    odno = cl.order("buy", KAKAO, 7, 0, "01").json()["output"]["ODNO"]
    filled = []
    for t in ("09:04:30", "09:05:30", "09:06:30"):
        emu.advance_to(at(t))
        filled.append(rows_by_odno(cl)[odno]["tot_ccld_qty"])
    assert filled == ["3", "5", "7"]                       # volumes 3, 2, 2 at 49,900 / 50,000 / 50,100
    row = rows_by_odno(cl)[odno]
    assert row["tot_ccld_amt"] == str(3 * 49900 + 2 * 50000 + 2 * 50100)
    assert row["avg_prvs"] == str((3 * 49900 + 2 * 50000 + 2 * 50100) // 7)


def test_cancel_of_the_unfilled_rest(make_emu) -> None:
    emu = make_emu("paper", start=at("09:03:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    odno = cl.order("buy", KAKAO, 7, 0, "01").json()["output"]["ODNO"]
    emu.advance_to(at("09:04:30"))
    r = cl.rvsecncl(odno, cancel=True)                      # whole remainder
    assert r.json()["rt_cd"] == "0"
    cancel_no = r.json()["output"]["ODNO"]
    emu.advance_to(at("09:10:00"))
    rows = rows_by_odno(cl)
    assert (rows[odno]["tot_ccld_qty"], rows[odno]["cncl_cfrm_qty"], rows[odno]["rmn_qty"]) == ("3", "4", "0")
    assert (rows[cancel_no]["ord_qty"], rows[cancel_no]["cncl_yn"], rows[cancel_no]["orgn_odno"]) == ("4", "Y", odno)
    bal = cl.balance().json()
    assert bal["output1"][0]["pdno"] == KAKAO or any(r["pdno"] == KAKAO and r["hldg_qty"] == "3"
                                                     for r in bal["output1"])


def test_revise_chain_fills_under_the_newest_number(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    a = cl.order("buy", KAKAO, 10, 48000).json()["output"]["ODNO"]
    b = cl.rvsecncl(a, cancel=False, price=49000).json()["output"]["ODNO"]
    c = cl.rvsecncl(b, cancel=False, price=49900).json()["output"]["ODNO"]
    assert len({a, b, c}) == 3
    emu.advance_to(at("09:03:30"))                          # 49,800 trades through 49,900
    rows = rows_by_odno(cl)
    assert rows[a]["tot_ccld_qty"] == "0" and rows[b]["tot_ccld_qty"] == "0"
    assert rows[c]["tot_ccld_qty"] == "10" and rows[c]["orgn_odno"] == b and rows[b]["orgn_odno"] == a


def test_day_end_expiry_releases_cash_and_never_fills_next_day(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars(), paper={"account": {"cash": 1_000_000}})
    cl = Client(emu.credentials())
    odno = cl.order("buy", KAKAO, 19, 49000).json()["output"]["ODNO"]   # 931,000 reserved
    assert cl.order("buy", KAKAO, 2, 49000).json()["msg_cd"] == "40250000"
    emu.advance_to(at("09:10:30"))
    assert rows_by_odno(cl)[odno]["tot_ccld_qty"] == "0"
    emu.advance_to(at("15:31"))
    assert cl.rvsecncl(odno, cancel=True).json()["msg_cd"] == "40330000"     # expired: nothing to cancel
    emu.advance_to(datetime.combine(NEXT, time(9, 5), KST))                  # 48,000 / 47,000 would fill it
    row = rows_by_odno(cl, start=DAY, end=DAY)[odno]
    assert (row["tot_ccld_qty"], row["rmn_qty"]) == ("0", "19")               # unfilled, expired, not cancelled
    assert cl.psbl_order(KAKAO, 48000, "00").json()["output"]["nrcvb_buy_qty"] == "20"


def test_opening_and_closing_auctions(make_emu) -> None:
    emu = make_emu("real", start=at("08:50"), bars=kakao_bars())
    cl = Client(emu.credentials())
    pre = cl.order("buy", KAKAO, 5, 50000).json()["output"]["ODNO"]          # real accepts from 08:30
    emu.advance_to(at("09:00:30"))
    assert rows_by_odno(cl)[pre]["tot_ccld_qty"] == "5"                      # crosses the 09:00 auction print
    cond = cl.order("buy", KAKAO, 3, 48000, "02").json()["output"]["ODNO"]   # 조건부지정가
    emu.advance_to(at("15:29"))
    assert rows_by_odno(cl)[cond]["tot_ccld_qty"] == "0"
    emu.advance_to(at("15:30"))
    row = rows_by_odno(cl)[cond]
    assert (row["tot_ccld_qty"], row["avg_prvs"]) == ("3", "50500")          # market at the closing auction


def test_ioc_and_fok_real_only(make_emu) -> None:
    emu = make_emu("real", start=at("09:03:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    ioc = cl.order("buy", KAKAO, 10, 50000, "11").json()["output"]["ODNO"]
    fok = cl.order("buy", KAKAO, 10, 50000, "12").json()["output"]["ODNO"]
    emu.advance_to(at("09:06:30"))
    rows = rows_by_odno(cl)
    assert (rows[ioc]["tot_ccld_qty"], rows[ioc]["rmn_qty"]) == ("3", "0")   # 3 at 09:04, rest killed
    assert (rows[fok]["tot_ccld_qty"], rows[fok]["rmn_qty"]) == ("0", "0")   # killed whole


def test_t_plus_2_cash_in_output2(make_emu) -> None:
    """Buy 10 × 70,000 on Mon 06-02, sell 10 × 70,500 on Wed 06-04 (06-03 and 06-06 are holidays)."""
    emu = make_emu("paper", start=at("09:00:30"))
    cl = Client(emu.credentials())
    cl.order("buy", "005930", 10, 0, "01")
    emu.advance_to(at("09:05"))
    bal = cl.balance().json()
    o2 = bal["output2"]
    assert isinstance(o2, list) and len(o2) == 1                             # one-element array (§3.6)
    s = o2[0]
    buy_fee = 98                                                             # 700,000 × 0.0140527 %
    assert (s["dnca_tot_amt"], s["nxdy_excc_amt"], s["prvs_rcdl_excc_amt"]) == (
        "10000000", "10000000", str(10_000_000 - 700_000 - buy_fee))
    assert (s["thdt_buy_amt"], s["thdt_tlex_amt"], s["scts_evlu_amt"]) == ("700000", "98", "700000")
    assert s["tot_evlu_amt"] == str(700_000 + 10_000_000 - 700_098)
    row = bal["output1"][0]
    assert (row["pdno"], row["hldg_qty"], row["pchs_amt"], row["thdt_buyqty"]) == ("005930", "10", "700000", "10")
    assert float(row["pchs_avg_pric"]) == 70000.0
    emu.advance_to(datetime.combine(NEXT, time(9, 1, 30), KST))             # the token lives on the wall clock
    cl.order("sell", "005930", 10, 0, "01")
    emu.advance_to(datetime.combine(NEXT, time(9, 5), KST))
    sell_net = 705_000 - 99 - 1057                                           # fee 0.0140527 %, tax 0.15 % (2025)
    s = cl.balance().json()["output2"][0]
    assert (s["dnca_tot_amt"], s["nxdy_excc_amt"], s["prvs_rcdl_excc_amt"]) == (
        "10000000", str(10_000_000 - 700_098), str(10_000_000 - 700_098 + sell_net))
    assert (s["bfdy_buy_amt"], s["thdt_sll_amt"], s["thdt_tlex_amt"]) == ("700000", "705000", str(99 + 1057))
    row = cl.balance().json()["output1"][0]
    assert (row["hldg_qty"], row["thdt_sll_qty"], row["bfdy_buy_qty"]) == ("0", "10", "10")   # listed until D+2
    emu.advance_to(datetime.combine(T2, time(9, 5), KST))
    s = cl.balance().json()["output2"][0]
    assert (s["dnca_tot_amt"], s["nxdy_excc_amt"]) == (str(10_000_000 - 700_098), str(10_000_000 - 700_098 + sell_net))
    emu.advance_to(datetime(2025, 6, 9, 8, 1, tzinfo=KST))
    bal = cl.balance().json()
    assert bal["output2"][0]["dnca_tot_amt"] == str(10_000_000 - 700_098 + sell_net)
    assert [r["hldg_qty"] for r in bal["output1"]] == ["0"]                  # D+2: last day it is listed
    emu.advance_to(datetime(2025, 6, 10, 8, 1, tzinfo=KST))
    assert cl.balance().json()["output1"] == []


def test_reusable_sale_proceeds(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), paper={"account": {
        "cash": 0, "holdings": [{"code": "005930", "qty": 10, "avg_price": 60000}]}})
    cl = Client(emu.credentials())
    assert cl.order("buy", "005930", 1, 70000).json()["msg_cd"] == "40250000"
    cl.order("sell", "005930", 10, 0, "01")
    emu.advance_to(at("09:02"))
    out = cl.psbl_order("005930", 70000, "00").json()["output"]
    assert int(out["ruse_psbl_amt"]) == 700_000 - 98 - 1050 and out["nrcvb_buy_qty"] == "9"
    assert cl.order("buy", "005930", 9, 70000).json()["rt_cd"] == "0"       # proceeds reusable at once


def test_hts_order_shows_up_in_inquiries(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    odno = emu.hts_order(KAKAO, "buy", 4, 50000)
    emu.advance_to(at("09:01:30"))
    row = rows_by_odno(cl)[odno]
    assert (row["tot_ccld_qty"], row["sll_buy_dvsn_cd"]) == ("4", "02")


def test_intraday_and_daily_bars_coexist() -> None:
    bars = kakao_bars()
    assert len(bars[KAKAO].loc[str(DAY)]) == len(PRINTS)
    assert daily_bars([(date(2025, 1, 2), 1, 1, 1, 1, 1)]).index[0] == pd.Timestamp("2025-01-02")

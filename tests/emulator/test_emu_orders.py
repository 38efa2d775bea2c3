"""order-cash / order-rvsecncl / inquire-psbl-* rules in both environments (PROTOCOL §3.2–§3.8, §5.3)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from kis_emu_helpers import DAY, ORDER_CASH, PSBL_RVSECNCL, TR, Client, KST, at

PSBL_RVSECNCL_FIELDS = {
    "ord_gno_brno", "odno", "orgn_odno", "ord_dvsn_name", "pdno", "prdt_name", "rvse_cncl_dvsn_name", "ord_qty",
    "ord_unpr", "ord_tmd", "tot_ccld_qty", "tot_ccld_amt", "psbl_qty", "sll_buy_dvsn_cd", "ord_dvsn_cd",
    "mgco_aptm_odno", "excg_dvsn_cd", "excg_id_dvsn_cd", "excg_id_dvsn_name", "stpm_cndt_pric", "stpm_efct_occr_yn"}
PSBL_ORDER_FIELDS = {
    "ord_psbl_cash", "ord_psbl_sbst", "ruse_psbl_amt", "fund_rpch_chgs", "psbl_qty_calc_unpr", "nrcvb_buy_amt",
    "nrcvb_buy_qty", "max_buy_amt", "max_buy_qty", "cma_evlu_amt", "ovrs_re_use_amt_wcrc", "ord_psbl_frcr_amt_wcrc"}


def test_paper_buy_response_shape(make_emu) -> None:
    emu = make_emu("paper", start=at("09:01"))
    cl = Client(emu.credentials())
    r = cl.order("buy", "005930", 10, 70000)
    assert r.status_code == 200
    body = r.json()
    assert body["rt_cd"] == "0" and body["msg_cd"] == "40600000"
    assert body["msg1"].strip() == "모의투자 매수주문이 완료 되었습니다."
    out = body["output"]
    assert set(out) == {"KRX_FWDG_ORD_ORGNO", "ODNO", "ORD_TMD"}          # uppercase on the wire
    assert out["KRX_FWDG_ORD_ORGNO"] == "00950" and out["ORD_TMD"] == "090100"
    assert len(out["ODNO"]) == 10 and out["ODNO"].isdigit()
    # every /uapi reply carries lower-case tr_id/tr_cont/gt_uid and a capitalised Content-Type (issue 10:
    # KIS's sample namedtuples the lower-case header names; "content-type" would not be an identifier)
    names = list(r.raw.headers.keys())                                      # as written on the wire
    assert r.headers["tr_cont"] == "" and "Content-Type" in names and "content-type" not in names
    r2 = cl.order("buy", "005930", 1, 70000)
    assert int(r2.json()["output"]["ODNO"]) > int(out["ODNO"])


def test_real_sell_with_old_tr_id(make_emu) -> None:
    emu = make_emu("real", start=at("09:01"),
                   real={"account": {"holdings": [{"code": "005930", "qty": 5, "avg_price": 65000}]}})
    cl = Client(emu.credentials())
    r = cl.order("sell", "005930", 5, 70000, tr_id="TTTC0801U")            # old sell id still accepted
    body = r.json()
    assert (body["rt_cd"], body["msg_cd"], body["msg1"]) == ("0", "APBK0013", "주문 전송 완료 되었습니다.")
    assert body["output"]["KRX_FWDG_ORD_ORGNO"] == "06010"
    r = cl.order("sell", "005930", 1, 70000, tr_id="TTTC0011U")
    assert r.json()["rt_cd"] == "1"                                         # all 5 already on order


@pytest.mark.parametrize("env,tr_buy,tr_rv,tr_ccld", [("paper", "VTTC0802U", "VTTC0803U", "VTTC8001R"),
                                                       ("real", "TTTC0802U", "TTTC0803U", "TTTC8001R")])
def test_old_order_tr_ids(make_emu, env: str, tr_buy: str, tr_rv: str, tr_ccld: str) -> None:
    emu = make_emu(env, start=at("09:01"))
    cl = Client(emu.credentials())
    odno = cl.order("buy", "005930", 2, 69000, tr_id=tr_buy).json()["output"]["ODNO"]
    r = cl.post("/uapi/domestic-stock/v1/trading/order-rvsecncl", tr_rv, {
        "CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "KRX_FWDG_ORD_ORGNO": "", "ORGN_ODNO": odno, "ORD_DVSN": "00",
        "RVSE_CNCL_DVSN_CD": "02", "ORD_QTY": "0", "ORD_UNPR": "0", "QTY_ALL_ORD_YN": "Y"})
    assert r.json()["rt_cd"] == "0"
    rows = cl.ccld(tr_id=tr_ccld).json()["output1"]
    assert {row["odno"] for row in rows} == {odno, r.json()["output"]["ODNO"]}


@pytest.mark.parametrize("env,source,code,text", [
    ("paper", "real_host", "40030000", "모의투자 주문처리가 안되었습니다(호가단위 오류)"),
    ("real", "real_host", "APBK0506", "주식주문호가단위 오류입니다."),          # real-host logs (default)
    ("real", "third_party", "40030000", "주식주문호가단위 오류입니다.")])       # the older third-party choice
def test_tick_size_error(make_emu, env: str, source: str, code: str, text: str) -> None:
    emu = make_emu(env, start=at("09:01"), rest={"business_codes": source})
    r = Client(emu.credentials()).order("buy", "005930", 1, 70050)           # tick is 100 at 70,000
    assert r.status_code == 200
    assert (r.json()["rt_cd"], r.json()["msg_cd"], r.json()["msg1"].strip()) == ("1", code, text)


def test_price_band_error(make_emu) -> None:
    emu = make_emu("paper", start=at("09:01"))
    cl = Client(emu.credentials())
    # base 70,000 → band 49,000 .. 91,000 (±30 %)
    assert cl.order("buy", "005930", 1, 91000).json()["rt_cd"] == "0"
    for price in (91100, 48900):
        r = cl.order("buy", "005930", 1, price)
        assert r.status_code == 200
        assert (r.json()["msg_cd"], r.json()["msg1"].strip()) == ("40270000", "모의투자 상/하한가 오류")


def test_market_buy_reserves_at_upper_limit(make_emu) -> None:
    emu = make_emu("paper", start=at("09:01"), paper={"account": {"cash": 1_000_000}})
    cl = Client(emu.credentials())
    r = cl.psbl_order("005930", 0, "01")
    out = r.json()["output"]
    assert set(out) == PSBL_ORDER_FIELDS
    assert out["psbl_qty_calc_unpr"] == "91000"                              # the upper limit
    assert out["nrcvb_buy_qty"] == "10" and out["max_buy_qty"] == "10"       # 10 × 91,000 + fee ≤ 1,000,000
    out00 = cl.psbl_order("005930", 70000, "00").json()["output"]
    assert out00["nrcvb_buy_qty"] == "14"
    r = cl.order("buy", "005930", 12, 0, "01")                                # 12 × 91,000 > cash
    assert (r.json()["rt_cd"], r.json()["msg_cd"]) == ("1", "40250000")
    assert r.json()["msg1"].strip() == "모의투자 주문가능금액이 부족합니다."
    assert cl.order("buy", "005930", 12, 70000).json()["rt_cd"] == "0"       # 12 × 70,000 fits


def test_market_hours(make_emu) -> None:
    emu = make_emu("paper", serve_both=True, start=at("08:45"))
    paper = Client(emu.credentials("paper"))
    real = Client(emu.credentials("real"))
    r = paper.order("buy", "005930", 1, 70000)
    assert (r.json()["rt_cd"], r.json()["msg_cd"], r.json()["msg1"].strip()) == ("1", "40570000", "모의투자 장시작전 입니다.")
    assert real.order("buy", "005930", 1, 70000).json()["rt_cd"] == "0"     # real takes orders from 08:30
    emu.advance_to(at("15:30"))
    r = paper.order("buy", "005930", 1, 70000)
    assert (r.json()["msg_cd"], r.json()["msg1"].strip()) == ("40580000", "모의투자 장종료 입니다.")
    emu.advance_to(datetime(2025, 6, 3, 8, 40, tzinfo=KST))                    # a holiday (token still valid)
    assert paper.order("buy", "005930", 1, 70000).json()["msg_cd"] == "40580000"
    assert real.order("buy", "005930", 1, 70000).json()["rt_cd"] == "1"


def test_paper_order_types_and_exchange(make_emu) -> None:
    emu = make_emu("paper", serve_both=True, start=at("09:01"))
    paper = Client(emu.credentials("paper"))
    for dvsn in ("00", "01", "03", "04"):
        price = 70000 if dvsn == "00" else 0
        assert paper.order("buy", "005930", 1, price, dvsn).json()["rt_cd"] == "0", dvsn
    assert paper.order("buy", "005930", 1, 70000, "02").json()["rt_cd"] == "0"
    for dvsn in ("05", "06", "07", "11", "12", "13", "14", "15", "16"):
        r = paper.order("buy", "005930", 1, 70000, dvsn)
        assert (r.json()["msg_cd"], r.json()["msg1"].strip()) == ("90000000", "모의투자에서는 해당업무가 제공되지 않습니다."), dvsn
    r = paper.order("buy", "005930", 1, 70000, EXCG_ID_DVSN_CD="NXT")
    assert r.json()["msg_cd"] == "90000000"
    real = Client(emu.credentials("real"))
    assert real.order("buy", "005930", 1, 70000, "11").json()["rt_cd"] == "0"   # IOC is real-only


def test_body_conventions(make_emu) -> None:
    emu = make_emu("paper", start=at("09:01"))
    cl = Client(emu.credentials())
    c = cl.c
    good = {"CANO": c.cano, "ACNT_PRDT_CD": "01", "PDNO": "005930", "ORD_DVSN": "00", "ORD_QTY": "1",
            "ORD_UNPR": "70000"}
    r = cl.post(ORDER_CASH, "VTTC0012U", {**good, "ORD_QTY": 1})                # number instead of string
    assert r.status_code == 200 and r.json() == {"rt_cd": "2", "msg_cd": "OPSQ2001",
                                                 "msg1": "ERROR : INPUT INVALID_CHECK_ORD_QTY"}
    r = cl.post(ORDER_CASH, "VTTC0012U", {k.lower(): v for k, v in good.items()})  # lowercase keys
    assert r.json()["rt_cd"] == "2" and r.json()["msg_cd"] == "OPSQ2001"
    r = cl.post(ORDER_CASH, "VTTC0012U", {**good, "CANO": "99999999"})
    assert r.json()["msg1"] == "ERROR : INPUT INVALID_CHECK_ACNO"
    r = cl.post(ORDER_CASH, "VTTC0012U", {**good, "ORD_QTY": "0"})
    assert r.json()["rt_cd"] == "1"
    assert cl.post(ORDER_CASH, "VTTC0012U", good).json()["rt_cd"] == "0"       # no EXCG_ID_DVSN_CD = KRX


def test_revise_and_cancel_new_numbers(make_emu) -> None:
    emu = make_emu("paper", start=at("09:01"))
    cl = Client(emu.credentials())
    odno = cl.order("buy", "005930", 10, 69000).json()["output"]["ODNO"]
    # partial cancel of 3 → a new number, the rest keeps working under the original
    r = cl.rvsecncl(odno, cancel=True, qty=3, all_qty=False)
    body = r.json()
    assert (body["rt_cd"], body["msg_cd"], body["msg1"].strip()) == ("0", "40630000", "모의투자 취소주문이 완료 되었습니다.")
    assert set(body["output"]) == {"KRX_FWDG_ORD_ORGNO", "ODNO", "ORD_TMD"}
    cancel_no = body["output"]["ODNO"]
    assert cancel_no != odno
    # revise the whole remainder (7) to 69,500 → another new number
    r = cl.rvsecncl(odno, cancel=False, qty=0, price=69500, all_qty=True)
    assert (r.json()["rt_cd"], r.json()["msg_cd"]) == ("0", "40620000")
    revised = r.json()["output"]["ODNO"]
    assert revised not in (odno, cancel_no)
    # nothing is left under the original: 40330000
    r = cl.rvsecncl(odno, cancel=True)
    assert (r.json()["rt_cd"], r.json()["msg_cd"], r.json()["msg1"].strip()) == (
        "1", "40330000", "모의투자 정정/취소할 수량이 없습니다.")
    # a revise above the remaining quantity is refused; the revised order can be cancelled
    assert cl.rvsecncl(revised, cancel=True, qty=8, all_qty=False).json()["rt_cd"] == "1"
    assert cl.rvsecncl(revised, cancel=True).json()["rt_cd"] == "0"
    assert cl.rvsecncl(revised, cancel=True).json()["msg_cd"] == "40330000"
    rows = {row["odno"]: row for row in cl.ccld().json()["output1"]}
    assert rows[odno]["ord_qty"] == "10" and rows[odno]["cncl_cfrm_qty"] == "10" and rows[odno]["rmn_qty"] == "0"
    assert rows[cancel_no]["orgn_odno"] == odno and rows[cancel_no]["cncl_yn"] == "Y"
    assert rows[cancel_no]["ord_qty"] == "3"
    assert rows[revised]["orgn_odno"] == odno and rows[revised]["ord_unpr"] == "69500"
    assert rows[revised]["ord_qty"] == "7"


def test_revise_price_rules(make_emu) -> None:
    emu = make_emu("real", start=at("09:01"))
    cl = Client(emu.credentials())
    odno = cl.order("buy", "005930", 2, 69000).json()["output"]["ODNO"]
    assert cl.rvsecncl(odno, cancel=False, price=69050).json()["msg_cd"] == "APBK0506"     # off the grid
    assert cl.rvsecncl(odno, cancel=False, price=95000).json()["msg_cd"] == "40270000"     # above the band
    r = cl.rvsecncl(odno, cancel=False, price=69100)
    assert (r.json()["rt_cd"], r.json()["msg_cd"]) == ("0", "APBK0013")


def test_psbl_rvsecncl_real(make_emu) -> None:
    emu = make_emu("real", start=at("09:01"))
    cl = Client(emu.credentials())
    a = cl.order("buy", "005930", 10, 69000).json()["output"]["ODNO"]
    b = cl.order("buy", "005930", 4, 68000).json()["output"]["ODNO"]
    cl.rvsecncl(a, cancel=True, qty=3, all_qty=False)
    for tr in ("TTTC0084R", "TTTC8036R"):
        r = cl.get(PSBL_RVSECNCL, tr, {"CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "CTX_AREA_FK100": "",
                                       "CTX_AREA_NK100": "", "INQR_DVSN_1": "0", "INQR_DVSN_2": "0"})
        assert r.status_code == 200 and r.json()["rt_cd"] == "0"
        rows = r.json()["output"]
        assert all(set(row) == PSBL_RVSECNCL_FIELDS for row in rows)
        psbl = {row["odno"]: row["psbl_qty"] for row in rows}
        assert psbl == {a: "7", b: "4"}
        assert r.headers["tr_cont"] in ("D", "E") and len(r.json()["ctx_area_nk100"]) == 100


def test_sell_needs_holdings(make_emu) -> None:
    emu = make_emu("paper", start=at("09:01"))
    cl = Client(emu.credentials())
    r = cl.order("sell", "005930", 1, 70000)
    assert r.status_code == 200 and r.json()["rt_cd"] == "1"
    assert cl.order("buy", "999999", 1, 70000).json()["rt_cd"] == "1"       # unknown stock
    assert TR["paper"]["sell"] == "VTTC0011U" and DAY.isoweekday() == 1
    assert emu.now() == at("09:01") and isinstance(emu.now() - at("09:00"), timedelta)

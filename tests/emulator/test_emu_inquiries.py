"""Quotation TRs and paged ledger TRs: field sets, row caps, paging with tr_cont and CTX_AREA keys."""

from __future__ import annotations

import csv
import re
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from kis_emu_helpers import (BALANCE, DAILY_CCLD, DAILY_CHART, DAY, DOMESTIC, PRICE, TIME_CHART, Client, at, daily_bars,
                             standard_bars)
from market.calendar import trading_days

SPEC_CSV = Path(__file__).resolve().parents[3] / "shared" / "kis" / "spec" / "kis_code_assistant_api_catalog.csv"

BALANCE_OUTPUT1 = {
    "pdno", "prdt_name", "trad_dvsn_name", "bfdy_buy_qty", "bfdy_sll_qty", "thdt_buyqty", "thdt_sll_qty",
    "hldg_qty", "ord_psbl_qty", "pchs_avg_pric", "pchs_amt", "prpr", "evlu_amt", "evlu_pfls_amt", "evlu_pfls_rt",
    "evlu_erng_rt", "loan_dt", "loan_amt", "stln_slng_chgs", "expd_dt", "fltt_rt", "bfdy_cprs_icdc",
    "item_mgna_rt_name", "grta_rt_name", "sbst_pric", "stck_loan_unpr"}
BALANCE_OUTPUT2 = {
    "dnca_tot_amt", "nxdy_excc_amt", "prvs_rcdl_excc_amt", "cma_evlu_amt", "bfdy_buy_amt", "thdt_buy_amt",
    "nxdy_auto_rdpt_amt", "bfdy_sll_amt", "thdt_sll_amt", "d2_auto_rdpt_amt", "bfdy_tlex_amt", "thdt_tlex_amt",
    "tot_loan_amt", "scts_evlu_amt", "tot_evlu_amt", "nass_amt", "fncg_gld_auto_rdpt_yn", "pchs_amt_smtl_amt",
    "evlu_amt_smtl_amt", "evlu_pfls_smtl_amt", "tot_stln_slng_chgs", "bfdy_tot_asst_evlu_amt", "asst_icdc_amt",
    "asst_icdc_erng_rt"}
CCLD_OUTPUT1 = {
    "ord_dt", "ord_gno_brno", "odno", "orgn_odno", "ord_dvsn_name", "sll_buy_dvsn_cd", "sll_buy_dvsn_cd_name",
    "pdno", "prdt_name", "ord_qty", "ord_unpr", "ord_tmd", "tot_ccld_qty", "avg_prvs", "cncl_yn", "tot_ccld_amt",
    "loan_dt", "ordr_empno", "ord_dvsn_cd", "cncl_cfrm_qty", "rmn_qty", "rjct_qty", "ccld_cndt_name",
    "inqr_ip_addr", "cpbc_ordp_ord_rcit_dvsn_cd", "cpbc_ordp_infm_mthd_dvsn_cd", "infm_tmd", "ctac_tlno",
    "prdt_type_cd", "excg_dvsn_cd", "cpbc_ordp_mtrl_dvsn_cd", "ord_orgno", "rsvn_ord_end_dt", "excg_id_dvsn_Cd",
    "stpm_cndt_pric", "stpm_efct_occr_dtmd"}
CCLD_OUTPUT2 = {"tot_ord_qty", "tot_ccld_qty", "tot_ccld_amt", "prsm_tlex_smtl", "pchs_avg_pric"}
DAILY_CHART_ROW = {"stck_bsop_date", "stck_clpr", "stck_oprc", "stck_hgpr", "stck_lwpr", "acml_vol",
                   "acml_tr_pbmn", "flng_cls_code", "prtt_rate", "mod_yn", "prdy_vrss_sign", "prdy_vrss",
                   "revl_issu_reas"}
TIME_CHART_ROW = {"stck_bsop_date", "stck_cntg_hour", "stck_prpr", "stck_oprc", "stck_hgpr", "stck_lwpr",
                  "cntg_vol", "acml_tr_pbmn"}


def catalog_fields(function_name: str) -> list[str]:
    """Response field names of one API from KIS's own catalogue (spec CSV, column_mapping)."""
    with open(SPEC_CSV, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["category"] == "domestic_stock" and row["function_name"] == function_name:
                return re.findall(r"['\"]([A-Za-z0-9_]+)['\"]\s*:", row["column_mapping"])
    raise KeyError(function_name)


def test_inquire_price_full_field_set(make_emu) -> None:
    emu = make_emu(start=at("09:10"))
    r = Client(emu.credentials()).get(PRICE, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J",
                                                              "FID_INPUT_ISCD": "005930"})
    body = r.json()
    assert (body["rt_cd"], body["msg_cd"], body["msg1"]) == ("0", "MCA00000", "정상처리 되었습니다!")
    out = body["output"]
    if SPEC_CSV.exists():
        assert set(catalog_fields("inquire_price")) <= set(out)
    assert all(isinstance(v, str) for v in out.values())
    assert (out["stck_sdpr"], out["stck_mxpr"], out["stck_llam"], out["aspr_unit"]) == ("70000", "91000", "49000", "100")
    assert out["stck_oprc"] == "70000" and out["hts_deal_qty_unit_val"] == "1"
    price = int(out["stck_prpr"])
    assert int(out["prdy_vrss"]) == price - 70000
    assert out["prdy_vrss_sign"] == ("2" if price > 70000 else "5" if price < 70000 else "3")
    assert int(out["acml_vol"]) > 0


def test_daily_chart_caps_at_100_newest_first_without_lookahead(make_emu) -> None:
    days = trading_days(date(2024, 12, 2), date(2025, 6, 13))
    rows = [(d, 10000, 10100, 9900, 10000 + (i % 5) * 10, 1000) for i, d in enumerate(days)]
    b = standard_bars()
    b["005380"] = daily_bars(rows)
    emu = make_emu(start=at("09:30"), bars=b)
    cl = Client(emu.credentials())
    r = cl.get(DAILY_CHART, "FHKST03010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005380",
                                              "FID_INPUT_DATE_1": "20240101", "FID_INPUT_DATE_2": "20251231",
                                              "FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0"})
    body = r.json()
    assert body["rt_cd"] == "0"
    out2 = body["output2"]
    assert len(out2) == 100
    assert all(set(row) == DAILY_CHART_ROW for row in out2)
    dates = [row["stck_bsop_date"] for row in out2]
    assert dates == sorted(dates, reverse=True)
    assert dates[0] == "20250602"                                   # today so far; nothing from 06-04 on
    assert dates[1] == "20250530"
    assert out2[0]["stck_clpr"] == body["output1"]["stck_prpr"]
    assert body["output1"]["hts_kor_isnm"] == "005380" and body["output1"]["stck_shrn_iscd"] == "005380"
    # page back as python-kis does: end date = oldest returned − 1 day
    oldest = pd.Timestamp(dates[-1]) - timedelta(days=1)
    r = cl.get(DAILY_CHART, "FHKST03010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005380",
                                              "FID_INPUT_DATE_1": "20240101",
                                              "FID_INPUT_DATE_2": oldest.strftime("%Y%m%d"),
                                              "FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0"})
    older = r.json()["output2"]
    assert len(older) == len(days[:days.index(DAY)]) - 99
    assert older[0]["stck_bsop_date"] < dates[-1]
    weekly = cl.get(DAILY_CHART, "FHKST03010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005380",
                                                   "FID_INPUT_DATE_1": "20250501", "FID_INPUT_DATE_2": "20250602",
                                                   "FID_PERIOD_DIV_CODE": "W", "FID_ORG_ADJ_PRC": "0"}).json()
    assert 4 <= len(weekly["output2"]) <= 6
    unknown = cl.get(DAILY_CHART, "FHKST03010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "123456",
                                                    "FID_INPUT_DATE_1": "20250101", "FID_INPUT_DATE_2": "20250602",
                                                    "FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0"}).json()
    assert unknown["output1"]["stck_prpr"] == "0"                    # python-kis's "unknown ticker" signal


def test_time_chart_30_rows_today_only(make_emu) -> None:
    emu = make_emu(start=at("09:29:30"))
    cl = Client(emu.credentials())
    q = {"FID_ETC_CLS_CODE": "", "FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "000660",
         "FID_INPUT_HOUR_1": "091500", "FID_PW_DATA_INCU_YN": "Y"}
    body = cl.get(TIME_CHART, "FHKST03010200", q).json()
    rows = body["output2"]
    assert [r["stck_cntg_hour"] for r in rows] == [f"09{m:02d}00" for m in range(15, -1, -1)]
    assert all(set(r) == TIME_CHART_ROW for r in rows)
    assert rows[0]["cntg_vol"] == "100" and rows[0]["stck_bsop_date"] == "20250602"
    body = cl.get(TIME_CHART, "FHKST03010200", {**q, "FID_INPUT_HOUR_1": "153000"}).json()   # future = now
    assert len(body["output2"]) == 30 and body["output2"][0]["stck_cntg_hour"] == "092900"
    assert body["output2"][-1]["stck_cntg_hour"] == "090000"
    assert body["output1"]["stck_prpr"] == "200000" and body["output1"]["acml_vol"] == "3000"


@pytest.mark.parametrize("env,page", [("paper", 20), ("real", 50)])
def test_balance_paging(make_emu, env: str, page: int) -> None:
    holdings = [{"code": f"{200000 + i}", "qty": 1, "avg_price": 1000} for i in range(page + 5)]
    emu = make_emu(env, start=at("09:10"), **{env: {"account": {"holdings": holdings}}})
    cl = Client(emu.credentials())
    r = cl.balance()
    body = r.json()
    assert r.headers["tr_cont"] in ("F", "M")
    assert len(body["output1"]) == page and all(set(row) == BALANCE_OUTPUT1 for row in body["output1"])
    assert isinstance(body["output2"], list) and set(body["output2"][0]) == BALANCE_OUTPUT2
    fk, nk = body["ctx_area_fk100"], body["ctx_area_nk100"]
    assert len(fk) == 100 and len(nk) == 100 and fk.startswith(cl.c.cano + "^01^")
    r2 = cl.balance(tr_cont="N", fk=fk, nk=nk)                     # keys sent back verbatim
    assert r2.headers["tr_cont"] in ("D", "E") and len(r2.json()["output1"]) == 5
    assert r2.json()["ctx_area_nk100"].strip() == ""
    codes = [row["pdno"] for row in body["output1"] + r2.json()["output1"]]
    assert len(set(codes)) == page + 5
    r = cl.get(BALANCE, "VTTC8434R" if env == "paper" else "TTTC8434R", {
        "CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "INQR_DVSN": "02"})
    assert r.json() == {"rt_cd": "2", "msg_cd": "OPSQ2001", "msg1": "ERROR : INPUT INVALID_CHECK_INQR_DVSN"}


@pytest.mark.parametrize("env,page", [("paper", 15), ("real", 100)])
def test_daily_ccld_paging_and_fields(make_emu, env: str, page: int) -> None:
    emu = make_emu(env, start=at("09:10"))
    cl = Client(emu.credentials())
    odnos = [cl.order("buy", "005930", 1, 60000).json()["output"]["ODNO"] for _ in range(page + 3)]
    r = cl.ccld()
    body = r.json()
    assert r.headers["tr_cont"] in ("F", "M") and len(body["output1"]) == page
    assert all(set(row) == CCLD_OUTPUT1 for row in body["output1"])
    assert isinstance(body["output2"], dict) and set(body["output2"]) == CCLD_OUTPUT2
    assert body["output1"][0]["odno"] == odnos[-1]                  # INQR_DVSN 00: newest first
    r2 = cl.ccld(tr_cont="N", fk=body["ctx_area_fk100"], nk=body["ctx_area_nk100"])
    assert r2.headers["tr_cont"] in ("D", "E") and len(r2.json()["output1"]) == 3
    seen = [row["odno"] for row in body["output1"] + r2.json()["output1"]]
    assert sorted(seen) == sorted(odnos)
    assert r2.json()["msg_cd"] == "KIOK0460"
    fwd = cl.ccld(inqr_dvsn="01").json()["output1"]
    assert fwd[0]["odno"] == odnos[0]                               # 01: oldest first
    one = cl.ccld(odno=str(int(odnos[2]))).json()["output1"]       # ODNO matched numerically
    assert [row["odno"] for row in one] == [odnos[2]]
    assert cl.ccld(ccld_dvsn="01").json()["output1"] == []          # nothing filled at 60,000


def test_unknown_path_and_method(make_emu) -> None:
    emu = make_emu()
    cl = Client(emu.credentials())
    r = cl.get(DAILY_CCLD.replace("inquire-daily-ccld", "no-such-api"), "TTTC0081R", {})
    assert r.status_code >= 400 and r.json()["rt_cd"] != "0"


def test_other_quotation_trs(make_emu) -> None:
    emu = make_emu("real", start=at("09:10:30"))
    cl = Client(emu.credentials())
    q = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "000660"}
    book = cl.get(DOMESTIC + "/quotations/inquire-asking-price-exp-ccn", "FHKST01010200", q).json()
    if SPEC_CSV.exists():
        assert set(catalog_fields("inquire_asking_price_exp_ccn")) <= set(book["output1"]) | set(book["output2"])
    assert int(book["output1"]["askp1"]) > int(book["output1"]["bidp1"]) > 0
    ticks = cl.get(DOMESTIC + "/quotations/inquire-ccnl", "FHKST01010300", q).json()["output"]
    assert [t["stck_cntg_hour"] for t in ticks[:3]] == ["091000", "090900", "090800"]
    assert len(ticks) == 11 and ticks[0]["cntg_vol"] == "100" and ticks[0]["stck_prpr"] == "200000"
    past = cl.get(DOMESTIC + "/quotations/inquire-time-dailychartprice", "FHKST03010230", {
        **q, "FID_INPUT_HOUR_1": "153000", "FID_INPUT_DATE_1": "20250530", "FID_PW_DATA_INCU_YN": "Y",
        "FID_FAKE_TICK_INCU_YN": ""}).json()["output2"]
    assert [r["stck_cntg_hour"] for r in past] == ["151900", "151800"]       # the previous day's bars
    hol = cl.get(DOMESTIC + "/quotations/chk-holiday", "CTCA0903R", {"BASS_DT": "20250602", "CTX_AREA_NK": "",
                                                                     "CTX_AREA_FK": ""}).json()["output"]
    flags = {r["bass_dt"]: r["opnd_yn"] for r in hol}
    assert flags["20250602"] == "Y" and flags["20250603"] == "N" and flags["20250606"] == "N"
    assert flags["20250607"] == "N" and flags["20250609"] == "Y"


def test_old_period_ccld_tr_and_partial_revise(make_emu) -> None:
    emu = make_emu("paper", start=at("09:10"))
    cl = Client(emu.credentials())
    odno = cl.order("buy", "005930", 10, 69000).json()["output"]["ODNO"]
    r = cl.rvsecncl(odno, cancel=False, qty=4, price=69500, all_qty=False)   # 4 of 10 to a new price
    assert r.json()["rt_cd"] == "0"
    new = r.json()["output"]["ODNO"]
    for tr in ("VTSC9215R", "VTSC9115R"):                                   # >3 months TRs, same rows
        rows = {row["odno"]: row for row in cl.ccld(tr_id=tr).json()["output1"]}
        assert rows[odno]["rmn_qty"] == "6" and rows[new]["ord_qty"] == "4" and rows[new]["ord_unpr"] == "69500"
    psbl = cl.psbl_order("005930", 69000, "00").json()["output"]
    reserved = 6 * 69000 + 4 * 69500
    assert int(psbl["ord_psbl_cash"]) == 10_000_000 - reserved - (6 * 69000 * 140527 // 10 ** 9) - (
        4 * 69500 * 140527 // 10 ** 9)

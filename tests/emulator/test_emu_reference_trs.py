"""The reference, finance, ranking and calendar TRs and ``H0STMKO0``, checked against KIS's own field
tables (``shared/kis/spec`` catalogue ``column_mapping``) — never against the project's client.

Paths and TR ids are literal strings from the spec ([OTA] sample functions); the expected values are
computed here from the reference file the test writes, independently of the emulator's code.
"""

from __future__ import annotations

import ast
import csv
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from brokers.kis.emulator.clock import ManualWallClock, SteppedClock
from brokers.kis.emulator.reference import load_reference
from brokers.kis.emulator.server import Emulator
from kis_emu_helpers import (DAY, KST, NEXT, PREV, WALL_START, Client, Ws, at, base_config, daily_bars,
                             minute_bars, run, standard_bars)

CATALOG = Path(__file__).resolve().parents[2].parent / "shared" / "kis" / "spec" / "kis_code_assistant_api_catalog.csv"
pytestmark = pytest.mark.skipif(not CATALOG.is_file(), reason="../shared/kis/spec not present")

Q = "/uapi/domestic-stock/v1/quotations/"
SEARCH_INFO, SEARCH_STOCK_INFO = Q + "search-info", Q + "search-stock-info"
VOLUME_RANK, CHK_HOLIDAY = Q + "volume-rank", Q + "chk-holiday"
ASKING, CCNL = Q + "inquire-asking-price-exp-ccn", Q + "inquire-ccnl"
F = "/uapi/domestic-stock/v1/finance/"
BALANCE_SHEET, INCOME, RATIO = F + "balance-sheet", F + "income-statement", F + "financial-ratio"
MARKET_CAP, FLUCTUATION = "/uapi/domestic-stock/v1/ranking/market-cap", "/uapi/domestic-stock/v1/ranking/fluctuation"

SAMSUNG, PREF, ETF, HALTED, VI_CODE = "005930", "005935", "069500", "123450", "777770"


def spec_fields(function_name: str) -> set[str]:
    """The response fields KIS's catalogue lists for one sample function (domestic stock)."""
    with CATALOG.open(encoding="utf-8") as f:
        csv.field_size_limit(10 ** 9)
        for row in csv.DictReader(f):
            if row["category"] == "domestic_stock" and row["function_name"] == function_name:
                return set(ast.literal_eval(row["column_mapping"]))
    raise AssertionError(f"{function_name} not in the catalogue")


def reference_doc() -> dict[str, Any]:
    q1 = {"period": "quarter", "period_end": "2025-03-31", "published": NEXT.isoformat(), "revenue": 79_140_000_000_000,
          "operating_income": 6_685_000_000_000, "net_income": 8_223_000_000_000, "total_assets": 514_000_000_000_000,
          "total_liabilities": 105_000_000_000_000, "total_equity": 409_000_000_000_000,
          "capital_stock": 897_514_000_000, "capital_surplus": 4_404_000_000_000,
          "retained_earnings": 360_000_000_000_000}
    y24 = {"period": "annual", "period_end": "2024-12-31", "published": "2025-03-11", "revenue": 300_870_000_000_000,
           "operating_income": 32_730_000_000_000, "net_income": 34_450_000_000_000,
           "current_assets": 227_000_000_000_000, "non_current_assets": 287_000_000_000_000,
           "total_assets": 514_530_000_000_000, "total_liabilities": 112_340_000_000_000,
           "total_equity": 402_190_000_000_000, "capital_stock": 897_514_000_000,
           "capital_surplus": 4_403_893_000_000, "retained_earnings": 370_513_000_000_000}
    y23 = {"period": "annual", "period_end": "2023-12-31", "published": "2024-03-12", "revenue": 258_940_000_000_000,
           "operating_income": 6_567_000_000_000, "net_income": 15_487_000_000_000, "total_equity": 363_678_000_000_000,
           "total_liabilities": 92_228_000_000_000, "capital_stock": 897_514_000_000}
    return {"format": "krx-trader/reference", "version": 1, "securities": [
        {"code": SAMSUNG, "isin": "KR7005930003", "name": "삼성전자", "name_en": "SamsungElec", "market": "KOSPI",
         "sector": {"code": "0013", "name": "전기·전자"}, "kospi200": True,
         "shares_listed": [{"from": "1975-06-11", "value": 119_596_000}, {"from": "2018-05-04", "value": 5_969_782_550}],
         "par_value": [{"from": "1975-06-11", "value": 5000}, {"from": "2018-05-04", "value": 100}],
         "listing_date": "1975-06-11", "financials": [y23, y24, q1]},
        {"code": PREF, "isin": "KR7005931001", "name": "삼성전자우", "market": "KOSPI", "kind": "preferred",
         "shares_listed": 815_974_664, "par_value": 100, "listing_date": "1989-09-15"},
        {"code": ETF, "name": "KODEX 200", "market": "KOSPI", "kind": "etf", "shares_listed": 200_000_000,
         "listing_date": "2002-10-14"},
        {"code": HALTED, "name": "정지종목", "market": "KOSDAQ", "shares_listed": 10_000_000, "par_value": 500,
         "listing_date": "2010-01-04", "designations": [
             {"kind": "halted", "from": DAY.isoformat(), "to": DAY.isoformat(), "reason": "불성실공시법인 지정"},
             {"kind": "admin_issue", "from": "2025-01-02", "to": None}]},
    ]}


def bars() -> dict[str, pd.DataFrame]:
    out = standard_bars()
    days = [date(2025, 5, 27), date(2025, 5, 28), date(2025, 5, 29), PREV, DAY, NEXT]
    out[PREF] = daily_bars([(d, 57000, 57500, 56500, 57000, 300_000) for d in days])
    out[ETF] = daily_bars([(d, 34000, 34200, 33900, 34100, 5_000_000) for d in days])
    out[HALTED] = daily_bars([(d, 2000, 2050, 1990, 2010, 50_000) for d in days if d != DAY])
    # 09:00 open 100,000; 09:05 110,000 = +10 % → static VI until 09:07; prints every minute
    out[VI_CODE] = minute_bars([("09:00", 100_000, 10), ("09:01", 101_000, 10), ("09:02", 102_000, 10),
                                ("09:03", 104_000, 10), ("09:04", 106_000, 10), ("09:05", 110_000, 10),
                                ("09:06", 111_000, 10), ("09:07", 111_000, 10), ("09:08", 111_000, 10)],
                               prev_close=100_000)
    return out


@pytest.fixture
def ref_emu(tmp_path: Path):
    made: list[Emulator] = []

    def make(env: str = "real", start: datetime | None = None, **overrides: Any) -> Emulator:
        path = tmp_path / "reference.json"
        path.write_text(json.dumps(reference_doc(), ensure_ascii=False), encoding="utf-8")
        cfg = base_config(env, serve_both=True, **overrides)
        emu = Emulator(cfg, bars=bars(), names={SAMSUNG: "삼성전자"}, clock=SteppedClock(start or at("10:00")),
                       wall_clock=ManualWallClock(WALL_START), reference=load_reference(path))
        made.append(emu)
        return emu.start()

    yield make
    for emu in made:
        emu.stop()


def ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rt_cd"] == "0", body
    return body


def get(cl: Client, path: str, tr: str, **params: str) -> Any:
    return cl.get(path, tr, params)


def test_search_info_fields_and_unknown_code(ref_emu) -> None:
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    out = ok(get(cl, SEARCH_INFO, "CTPF1604R", PDNO=SAMSUNG, PRDT_TYPE_CD="300"))["output"]
    assert spec_fields("search_info") <= set(out)
    assert (out["shtn_pdno"], out["std_pdno"], out["prdt_type_cd"]) == (SAMSUNG, "KR7005930003", "300")
    assert out["prdt_abrv_name"] == "삼성전자" and out["prdt_eng_abrv_name"] == "SamsungElec"
    assert out["frst_erlm_dt"] == "19750611"
    body = get(cl, SEARCH_INFO, "CTPF1604R", PDNO="999999", PRDT_TYPE_CD="300").json()
    assert body["rt_cd"] == "7"                                         # "no data", as python-kis expects
    r = Client(emu.credentials("paper")).get(SEARCH_INFO, "CTPF1604R", {"PDNO": SAMSUNG, "PRDT_TYPE_CD": "300"})
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW02006"    # not served on paper


def test_search_stock_info_is_point_in_time(ref_emu) -> None:
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    out = ok(get(cl, SEARCH_STOCK_INFO, "CTPF1002R", PRDT_TYPE_CD="300", PDNO=SAMSUNG))["output"]
    assert spec_fields("search_stock_info") <= set(out)
    assert (out["lstg_stqt"], out["papr"], out["cpta"]) == ("5969782550", "100", str(5_969_782_550 * 100))
    assert (out["mket_id_cd"], out["scty_grp_id_cd"], out["kospi200_item_yn"]) == ("STK", "ST", "Y")
    assert (out["scts_mket_lstg_dt"], out["kosdaq_mket_lstg_dt"]) == ("19750611", "")
    assert (out["idx_bztp_lcls_cd"], out["idx_bztp_lcls_cd_name"]) == ("0013", "전기·전자")
    halted = ok(get(cl, SEARCH_STOCK_INFO, "CTPF1002R", PRDT_TYPE_CD="300", PDNO=HALTED))["output"]
    assert (halted["tr_stop_yn"], halted["admn_item_yn"], halted["mket_id_cd"]) == ("Y", "Y", "KSQ")
    emu.advance_to(datetime.combine(NEXT, time(9, 0), KST))             # the halt was one day
    halted = ok(get(cl, SEARCH_STOCK_INFO, "CTPF1002R", PRDT_TYPE_CD="300", PDNO=HALTED))["output"]
    assert (halted["tr_stop_yn"], halted["admn_item_yn"]) == ("N", "Y")
    etf = ok(get(cl, SEARCH_STOCK_INFO, "CTPF1002R", PRDT_TYPE_CD="300", PDNO=ETF))["output"]
    assert etf["scty_grp_id_cd"] == "EF"


def _eok(krw: int) -> str:
    return f"{krw / 100_000_000:.2f}"


def test_balance_sheet_and_income_statement_publish_on_their_day(ref_emu) -> None:
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": SAMSUNG}
    annual = ok(cl.get(BALANCE_SHEET, "FHKST66430100", {"FID_DIV_CLS_CODE": "0", **params}))["output"]
    assert all(spec_fields("finance_balance_sheet") <= set(row) for row in annual)
    assert [row["stac_yymm"] for row in annual] == ["202412", "202312"]           # newest first
    assert annual[0]["total_aset"] == _eok(514_530_000_000_000) and annual[0]["cpfn"] == _eok(897_514_000_000)
    inc = ok(cl.get(INCOME, "FHKST66430200", {"FID_DIV_CLS_CODE": "0", **params}))["output"]
    assert all(spec_fields("finance_income_statement") <= set(row) for row in inc)
    assert inc[0]["sale_account"] == _eok(300_870_000_000_000) and inc[0]["thtr_ntin"] == _eok(34_450_000_000_000)
    quarter = {"FID_DIV_CLS_CODE": "1", **params}
    assert ok(cl.get(INCOME, "FHKST66430200", quarter))["output"] == []             # Q1 is published on NEXT
    emu.advance_to(datetime.combine(NEXT, time(8, 30), KST))
    q = ok(cl.get(INCOME, "FHKST66430200", quarter))["output"]
    assert [row["stac_yymm"] for row in q] == ["202503"] and q[0]["sale_account"] == _eok(79_140_000_000_000)
    bad = cl.get(INCOME, "FHKST66430200", {"FID_DIV_CLS_CODE": "7", **params}).json()
    assert (bad["rt_cd"], bad["msg_cd"]) == ("2", "OPSQ2001")


def test_financial_ratio_from_the_published_statements(ref_emu) -> None:
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    rows = ok(cl.get(RATIO, "FHKST66430300", {"FID_DIV_CLS_CODE": "0", "FID_COND_MRKT_DIV_CODE": "J",
                                              "FID_INPUT_ISCD": SAMSUNG}))["output"]
    assert all(spec_fields("finance_financial_ratio") <= set(row) for row in rows)
    r = rows[0]
    shares = 5_969_782_550
    assert r["stac_yymm"] == "202412"
    assert r["grs"] == f"{(300_870 - 258_940) / 258_940 * 100:.2f}"
    assert r["eps"] == f"{34_450_000_000_000 / shares:.2f}" and r["bps"] == f"{402_190_000_000_000 / shares:.2f}"
    assert r["roe_val"] == f"{34_450 / 402_190 * 100:.2f}" and r["lblt_rate"] == f"{112_340 / 402_190 * 100:.2f}"
    assert r["rsrv_rate"] == f"{(4_403_893 + 370_513_000) / 897_514 * 100:.2f}"


def test_inquire_price_carries_the_reference_facts(ref_emu) -> None:
    """per/pbr/eps/bps/hts_avls/lstn_stcn were zeros with a success code before issue 10."""
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    out = ok(cl.get(Q + "inquire-price", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J",
                                                          "FID_INPUT_ISCD": SAMSUNG}))["output"]
    assert spec_fields("inquire_price") <= set(out)
    price, shares = int(out["stck_prpr"]), 5_969_782_550
    eps = 34_450_000_000_000 / shares
    assert out["lstn_stcn"] == str(shares) and out["hts_avls"] == str(price * shares // 100_000_000)
    assert out["eps"] == f"{eps:.2f}" and out["per"] == f"{price / eps:.2f}"
    assert out["bps"] == f"{402_190_000_000_000 / shares:.2f}"
    for f in ("w52_hgpr_date", "w52_lwpr_date", "d250_hgpr_date", "dryy_lwpr_date"):
        assert len(out[f]) == 8 and out[f].isdigit(), f                            # python-kis parses them
    high_today = int(out["stck_hgpr"])                                             # highs before DAY: 70,500 from 05-28
    assert (out["w52_hgpr"], out["w52_hgpr_date"]) == (
        (str(high_today), "20250602") if high_today > 70_500 else ("70500", "20250528"))
    halted = ok(cl.get(Q + "inquire-price", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J",
                                                             "FID_INPUT_ISCD": HALTED}))["output"]
    assert (halted["iscd_stat_cls_code"], halted["temp_stop_yn"], halted["mang_issu_cls_code"]) == ("58", "Y", "Y")


def test_rankings(ref_emu) -> None:
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    common = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "0000", "FID_DIV_CLS_CODE": "0",
              "FID_TRGT_CLS_CODE": "111111111", "FID_TRGT_EXLS_CLS_CODE": "0000000000", "FID_INPUT_PRICE_1": "",
              "FID_INPUT_PRICE_2": "", "FID_VOL_CNT": ""}
    vol = ok(cl.get(VOLUME_RANK, "FHPST01710000", {**common, "FID_COND_SCR_DIV_CODE": "20171",
                                                   "FID_BLNG_CLS_CODE": "0", "FID_INPUT_DATE_1": ""}))["output"]
    assert vol and all(spec_fields("volume_rank") <= set(row) for row in vol)
    volumes = [int(row["acml_vol"]) for row in vol]
    assert volumes == sorted(volumes, reverse=True) and [row["data_rank"] for row in vol][:2] == ["1", "2"]
    no_pref = ok(cl.get(VOLUME_RANK, "FHPST01710000", {**common, "FID_COND_SCR_DIV_CODE": "20171",
                                                       "FID_BLNG_CLS_CODE": "0",
                                                       "FID_TRGT_EXLS_CLS_CODE": "0000100000"}))["output"]
    assert PREF in {r["mksc_shrn_iscd"] for r in vol} and PREF not in {r["mksc_shrn_iscd"] for r in no_pref}
    wrong = cl.get(VOLUME_RANK, "FHPST01710000", {**common, "FID_COND_SCR_DIV_CODE": "20174"}).json()
    assert (wrong["rt_cd"], wrong["msg_cd"]) == ("2", "OPSQ2001")

    cap = ok(cl.get(MARKET_CAP, "FHPST01740000", {**common, "FID_COND_SCR_DIV_CODE": "20174",
                                                  "FID_INPUT_ISCD": "0001"}))["output"]
    assert all(spec_fields("market_cap") <= set(row) for row in cap)
    assert cap[0]["mksc_shrn_iscd"] == SAMSUNG
    assert cap[0]["stck_avls"] == str(int(cap[0]["stck_prpr"]) * 5_969_782_550 // 100_000_000)
    assert HALTED not in {row["mksc_shrn_iscd"] for row in cap}                    # KOSDAQ, filtered by 0001
    assert abs(sum(float(row["mrkt_whol_avls_rlim"]) for row in cap) - 100.0) < 0.1

    flu = {**common, "FID_COND_SCR_DIV_CODE": "20170", "FID_RANK_SORT_CLS_CODE": "0000", "FID_INPUT_CNT_1": "0",
           "FID_PRC_CLS_CODE": "0", "FID_RSFL_RATE1": "", "FID_RSFL_RATE2": ""}
    up = ok(cl.get(FLUCTUATION, "FHPST01700000", flu))["output"]
    assert all(spec_fields("fluctuation") <= set(row) for row in up)
    rates = [float(row["prdy_ctrt"]) for row in up]
    assert rates == sorted(rates, reverse=True) and up[0]["stck_shrn_iscd"] == VI_CODE     # +11 % at 10:00
    down = ok(cl.get(FLUCTUATION, "FHPST01700000", {**flu, "FID_RANK_SORT_CLS_CODE": "0001"}))["output"]
    assert [float(row["prdy_ctrt"]) for row in down] == sorted(rates)
    r = cl.get(MARKET_CAP, "FHPST01740000", {**common, "FID_COND_SCR_DIV_CODE": "20174"})
    paper = Client(emu.credentials("paper")).get(MARKET_CAP, "FHPST01740000", common)
    assert r.status_code == 200 and paper.status_code == 500 and paper.json()["msg_cd"] == "EGW02006"


def test_chk_holiday_fields_and_election_day(ref_emu) -> None:
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    body = ok(cl.get(CHK_HOLIDAY, "CTCA0903R", {"BASS_DT": "20250601", "CTX_AREA_FK": "", "CTX_AREA_NK": ""}))
    rows = {row["bass_dt"]: row for row in body["output"]}
    assert all(spec_fields("chk_holiday") <= set(row) for row in rows.values())
    assert rows["20250602"]["opnd_yn"] == "Y" and rows["20250603"]["opnd_yn"] == "N"    # presidential election
    assert rows["20250601"]["opnd_yn"] == "N" and rows["20250601"]["bzdy_yn"] == "N"    # a Sunday
    bad = cl.get(CHK_HOLIDAY, "CTCA0903R", {"BASS_DT": "99991231"}).json()
    assert (bad["rt_cd"], bad["msg_cd"]) == ("2", "OPSQ2001")                          # outside the calendar


def test_book_and_ticks_fields(ref_emu) -> None:
    emu = ref_emu()
    cl = Client(emu.credentials("real"))
    p = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": SAMSUNG}
    body = ok(cl.get(ASKING, "FHKST01010200", p))
    assert spec_fields("inquire_asking_price_exp_ccn") <= set(body["output1"]) | set(body["output2"])
    ticks = ok(cl.get(CCNL, "FHKST01010300", p))["output"]
    assert ticks and all(spec_fields("inquire_ccnl") <= set(row) for row in ticks)


def test_market_status_frames_for_vi_and_halts(ref_emu) -> None:
    emu = ref_emu(start=at("09:00:30"))
    cl = Client(emu.credentials("real"))
    fields = ["MKSC_SHRN_ISCD", "TRHT_YN", "TR_SUSP_REAS_CNTT", "MKOP_CLS_CODE", "ANTC_MKOP_CLS_CODE",
              "MRKT_TRTM_CLS_CODE", "DIVI_APP_CLS_CODE", "ISCD_STAT_CLS_CODE", "VI_CLS_CODE", "OVTM_VI_CLS_CODE",
              "EXCH_CLS_CODE"]
    assert {f.lower() for f in fields} == {f.lower() for f in spec_fields("market_status_krx")}

    def record(raw: str) -> dict[str, str]:
        enc, tr, count, payload = raw.split("|", 3)
        assert (enc, tr, count) == ("0", "H0STMKO0", "001")
        values = payload.split("^")
        assert len(values) == 11
        return dict(zip(fields, values))

    async def go() -> None:
        async with Ws(emu.ws_url("real"), cl.approval()) as ws:
            assert (await ws.request("H0STMKO0", HALTED))["body"]["msg_cd"] == "OPSP0000"
            halt = record(await ws.frame("H0STMKO0"))                     # right after the ack
            assert (halt["MKSC_SHRN_ISCD"], halt["TRHT_YN"], halt["ISCD_STAT_CLS_CODE"]) == (HALTED, "Y", "58")
            assert halt["TR_SUSP_REAS_CNTT"] == "불성실공시법인 지정"
            assert (await ws.request("H0STMKO0", VI_CODE))["body"]["msg_cd"] == "OPSP0000"
            emu.advance_to(at("09:05:30"))                                # 110,000 at 09:05: +10 % from the open
            start = record(await ws.frame("H0STMKO0"))
            assert (start["MKSC_SHRN_ISCD"], start["VI_CLS_CODE"], start["TRHT_YN"]) == (VI_CODE, "1", "N")
            emu.advance_to(at("09:06:30"))
            assert await ws.no_message(0.2)                               # still inside the 2 minutes
            emu.advance_to(at("09:07:30"))                                # first print at/after 09:07
            end = record(await ws.frame("H0STMKO0"))
            assert (end["MKSC_SHRN_ISCD"], end["VI_CLS_CODE"]) == (VI_CODE, "N")
            emu.advance_to(datetime.combine(NEXT, time(9, 0, 30), KST))  # the halt is over
            resumed = record(await ws.frame("H0STMKO0"))
            assert (resumed["MKSC_SHRN_ISCD"], resumed["TRHT_YN"]) == (HALTED, "N")

    run(go())
    price = ok(cl.get(Q + "inquire-price", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J",
                                                            "FID_INPUT_ISCD": VI_CODE}))["output"]
    assert price["vi_cls_code"] == "N"

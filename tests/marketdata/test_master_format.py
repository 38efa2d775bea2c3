"""KIS's master-file layout: the parser checked against KIS's own field table, not against our writer.

``HEADER_TABLES`` below is typed from KIS's header files (open-trading-api ``stocks_info/종목마스터정보
(코스피).h``, ``(코스닥).h``, ``(코넥스).h``: ``char name[width]`` in file order, the tail after the name)
independently of ``brokers/kis/master.py``. Records are assembled *by hand* from that table with a
distinct value in every field, then parsed; and the KONEX positions are checked once more against the
negative offsets KIS's sample parser (``kis_konex_code_mst.py``) slices with.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date

import pandas as pd
import pytest

from brokers.kis import master as M

# (wire name, width) as typed from the header files, tail only (after 단축코드 9, 표준코드 12, 한글명).
_KOSPI_H = """scrt_grp_cls_code 2 avls_scal_cls_code 1 bstp_larg_div_code 4 bstp_medm_div_code 4 bstp_smal_div_code 4
mnin_cls_code_yn 1 low_current_yn 1 sprn_strr_nmix_issu_yn 1 kospi200_apnt_cls_code 1 kospi100_issu_yn 1
kospi50_issu_yn 1 krx_issu_yn 1 etp_prod_cls_code 1 elw_pblc_yn 1 krx100_issu_yn 1 krx_car_yn 1 krx_smcn_yn 1
krx_bio_yn 1 krx_bank_yn 1 etpr_undt_objt_co_yn 1 krx_enrg_chms_yn 1 krx_stel_yn 1 short_over_cls_code 1
krx_medi_cmnc_yn 1 krx_cnst_yn 1 krx_fnnc_svc_yn 1 krx_scrt_yn 1 krx_ship_yn 1 krx_insu_yn 1 krx_trnp_yn 1
sri_nmix_yn 1 stck_sdpr 9 frml_mrkt_deal_qty_unit 5 ovtm_mrkt_deal_qty_unit 5 trht_yn 1 sltr_yn 1 mang_issu_yn 1
mrkt_alrm_cls_code 2 mrkt_alrm_risk_adnt_yn 1 insn_pbnt_yn 1 byps_lstn_yn 1 flng_cls_code 2 fcam_mod_cls_code 2
icic_cls_code 2 marg_rate 3 crdt_able 1 crdt_days 3 prdy_vol 12 stck_fcam 12 stck_lstn_date 8 lstn_stcn 15
cpfn 21 stac_month 2 po_prc 7 prst_cls_code 1 ssts_hot_yn 1 stange_runup_yn 1 krx300_issu_yn 1 kospi_issu_yn 1
sale_account 9 bsop_prfi 9 op_prfi 9 thtr_ntin 5 roe 9 base_date 8 prdy_avls_scal 9 grp_code 3
co_crdt_limt_over_yn 1 secu_lend_able_yn 1 stln_able_yn 1"""
_KOSDAQ_H = """scrt_grp_cls_code 2 avls_scal_cls_code 1 bstp_larg_div_code 4 bstp_medm_div_code 4 bstp_smal_div_code 4
vntr_issu_yn 1 low_current_yn 1 krx_issu_yn 1 etp_prod_cls_code 1 krx100_issu_yn 1 krx_car_yn 1 krx_smcn_yn 1
krx_bio_yn 1 krx_bank_yn 1 etpr_undt_objt_co_yn 1 krx_enrg_chms_yn 1 krx_stel_yn 1 short_over_cls_code 1
krx_medi_cmnc_yn 1 krx_cnst_yn 1 invt_alrm_yn 1 krx_scrt_yn 1 krx_ship_yn 1 krx_insu_yn 1 krx_trnp_yn 1
ksq150_nmix_yn 1 stck_sdpr 9 frml_mrkt_deal_qty_unit 5 ovtm_mrkt_deal_qty_unit 5 trht_yn 1 sltr_yn 1
mang_issu_yn 1 mrkt_alrm_cls_code 2 mrkt_alrm_risk_adnt_yn 1 insn_pbnt_yn 1 byps_lstn_yn 1 flng_cls_code 2
fcam_mod_cls_code 2 icic_cls_code 2 marg_rate 3 crdt_able 1 crdt_days 3 prdy_vol 12 stck_fcam 12
stck_lstn_date 8 lstn_stcn 15 cpfn 21 stac_month 2 po_prc 7 prst_cls_code 1 ssts_hot_yn 1 stange_runup_yn 1
krx300_issu_yn 1 sale_account 9 bsop_prfi 9 op_prfi 9 thtr_ntin 5 roe 9 base_date 8 prdy_avls_scal 9
grp_code 3 co_crdt_limt_over_yn 1 secu_lend_able_yn 1 stln_able_yn 1"""
_KONEX_H = """scrt_grp_cls_code 2 stck_sdpr 9 frml_mrkt_deal_qty_unit 5 ovtm_mrkt_deal_qty_unit 5 trht_yn 1 sltr_yn 1
mang_issu_yn 1 mrkt_alrm_cls_code 2 mrkt_alrm_risk_adnt_yn 1 insn_pbnt_yn 1 byps_lstn_yn 1 flng_cls_code 2
fcam_mod_cls_code 2 icic_cls_code 2 marg_rate 3 crdt_able 1 crdt_days 3 prdy_vol 12 stck_fcam 12
stck_lstn_date 8 lstn_stcn 15 cpfn 21 stac_month 2 po_prc 7 prst_cls_code 1 ssts_hot_yn 1 stange_runup_yn 1
krx300_issu_yn 1 sale_account 9 bsop_prfi 9 op_prfi 9 thtr_ntin 5 roe 9 base_date 8 prdy_avls_scal 9
co_crdt_limt_over_yn 1 secu_lend_able_yn 1 stln_able_yn 1"""


def _table(text: str) -> list[tuple[str, int]]:
    words = text.split()
    return [(words[i], int(words[i + 1])) for i in range(0, len(words), 2)]


HEADER_TABLES = {"KOSPI": _table(_KOSPI_H), "KOSDAQ": _table(_KOSDAQ_H), "KONEX": _table(_KONEX_H)}
SAMPLE_TAIL_LENGTHS = {"KOSPI": 228 - 1, "KOSDAQ": 222 - 1, "KONEX": 184}
"""KIS's sample parsers cut ``row[-228:]`` / ``row[-222:]`` off lines that still end in a newline, and
``row[-184:]`` off a stripped KONEX line."""

VALUES = {
    "scrt_grp_cls_code": "ST", "bstp_larg_div_code": "0013", "bstp_medm_div_code": "0027", "bstp_smal_div_code": "0044",
    "kospi200_apnt_cls_code": "5", "etp_prod_cls_code": "0", "etpr_undt_objt_co_yn": "Y", "short_over_cls_code": "2",
    "stck_sdpr": "000071500", "trht_yn": "Y", "sltr_yn": "N", "mang_issu_yn": "Y", "mrkt_alrm_cls_code": "02",
    "mrkt_alrm_risk_adnt_yn": "Y", "insn_pbnt_yn": "Y", "prdy_vol": "000012345678", "stck_fcam": "000000000100",
    "stck_lstn_date": "19750611", "lstn_stcn": "000000005969782", "cpfn": "000000000897514000000",
    "stac_month": "12", "po_prc": "0001234", "prst_cls_code": "0", "prdy_avls_scal": "004268394",
}


def _by_hand(market: str, code: str, isin: str, name: str, name_width: int) -> bytes:
    """A record assembled from the header table alone: every field gets VALUES' text or a filler."""
    tail = ""
    for fld, width in HEADER_TABLES[market]:
        v = VALUES.get(fld, "N" * width if fld.endswith("_yn") else "0" * width)
        assert len(v) == width, fld
        tail += v
    raw_name = name.encode("cp949")
    return (code.ljust(9) + isin.ljust(12)).encode() + raw_name + b" " * (name_width - len(raw_name)) + tail.encode()


def test_module_layout_is_the_header_files_table():
    for market, table in HEADER_TABLES.items():
        assert list(M.LAYOUTS[market]) == table, market
        assert M.TAIL_WIDTH[market] == sum(w for _, w in table) == SAMPLE_TAIL_LENGTHS[market]


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ", "KONEX"])
@pytest.mark.parametrize("name_width", [40, 24])          # the name's width is not part of the tail's layout
def test_parser_reads_a_record_built_from_the_header_table(market, name_width):
    line = _by_hand(market, "005930", "KR7005930003", "삼성전자", name_width)
    r = M.parse_record(line, market)
    assert (r.code, r.isin, r.name, r.market) == ("005930", "KR7005930003", "삼성전자", market)
    assert r.base_price == 71_500 and r.prev_volume == 12_345_678 and r.par_value == 100
    assert r.listing_date == date(1975, 6, 11)
    assert r.shares_listed == 5_969_782_000                  # 상장 주수(천)
    assert r.capital == 897_514_000_000 and r.fiscal_month == 12 and r.ipo_price == 1234
    assert r.market_cap == 4_268_394 * 100_000_000           # 전일기준 시가총액 (억)
    assert r.halted and r.admin_issue and not r.liquidation and r.unfaithful_disclosure and r.warning_notice
    assert r.market_warning == "02" and r.group_code == "ST" and not r.preferred
    if market != "KONEX":
        assert (r.sector_large, r.sector_medium, r.sector_small) == ("0013", "0027", "0044")
        assert r.spac and r.kind == "spac" and r.overheated == "2"
    if market == "KOSPI":
        assert r.kospi200_sector == "5"


def test_konex_positions_match_the_kis_samples_offsets():
    """kis_konex_code_mst.py slices a stripped row: [-184:-182] group, [-182:-173] 기준가, [-163:-162] 거래정지,
    [-161:-160] 관리종목, [-118:-110] 상장일자, [-110:-95] 상장주수, [-12:-3] 시가총액."""
    line = _by_hand("KONEX", "278990", "KR7278990002", "코넥스회사", 40)
    text = line.decode("cp949")
    fields = M.split_record(line, "KONEX")
    assert text[-184:-182] == fields["scrt_grp_cls_code"] == "ST"
    assert text[-182:-173] == fields["stck_sdpr"] == "000071500"
    assert text[-163:-162] == fields["trht_yn"] == "Y"
    assert text[-161:-160] == fields["mang_issu_yn"] == "Y"
    assert text[-118:-110] == fields["stck_lstn_date"] == "19750611"
    assert text[-110:-95] == fields["lstn_stcn"]
    assert text[-12:-3] == fields["prdy_avls_scal"] == "004268394"
    assert text[21:-184].strip() == "코넥스회사"


def test_writer_output_read_the_way_kis_sample_reads_it():
    """The emulator's writer, read back with fixed widths taken from the header table (pandas.read_fwf, as
    KIS's sample does) — not with the module's own parser."""
    rec = {"mksc_shrn_iscd": "000660", "stnd_iscd": "KR7000660001", "hts_kor_isnm": "SK하이닉스",
           "scrt_grp_cls_code": "ST", "stck_sdpr": 180_500, "trht_yn": True, "lstn_stcn": 728_002,
           "stck_lstn_date": date(1996, 12, 26), "prdy_avls_scal": 1_314_044, "stac_month": "12", "thtr_ntin": -123}
    data = M.write_file([rec], "KOSDAQ")
    assert data.endswith(b"\r\n")
    row = data.decode("cp949").rstrip("\r\n")
    widths = [w for _, w in HEADER_TABLES["KOSDAQ"]]
    names = [n for n, _ in HEADER_TABLES["KOSDAQ"]]
    tail = pd.read_fwf(io.StringIO(row[-sum(widths):]), widths=widths, names=names, header=None, dtype=str).iloc[0]
    assert tail["scrt_grp_cls_code"] == "ST" and int(tail["stck_sdpr"]) == 180_500 and tail["trht_yn"] == "Y"
    assert int(tail["lstn_stcn"]) == 728_002 and tail["stck_lstn_date"] == "19961226"
    assert int(tail["prdy_avls_scal"]) == 1_314_044 and int(tail["thtr_ntin"]) == -123
    assert row[:9].rstrip() == "000660" and row[9:21] == "KR7000660001" and row[21:-sum(widths)].strip() == "SK하이닉스"


def test_zip_download_and_errors():
    line = _by_hand("KOSPI", "005930", "KR7005930003", "삼성전자", 40)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("kospi_code.mst", line + b"\r\n" + line.replace(b"005930", b"005935") + b"\r\n")
    recs = M.parse_download(buf.getvalue(), "kospi_code.mst.zip")
    assert [r.code for r in recs] == ["005930", "005935"]
    with pytest.raises(M.MasterFormatError, match="line 1: .* shorter than a KOSDAQ record"):
        M.parse_bytes(b"005930   KR7005930003short\n", "KOSDAQ", "kosdaq_code.mst")
    with pytest.raises(M.MasterFormatError, match="not a KIS master file name"):
        M.market_of_name("stocks.mst")
    with pytest.raises(M.MasterFormatError, match="not a zip file"):
        M.parse_download(b"PK not really", "kospi_code.mst.zip")
    bad = line[:-5] + "한".encode("cp949") + line[-3:]
    with pytest.raises(M.MasterFormatError, match="non-ASCII"):
        M.parse_record(bad, "KOSPI")

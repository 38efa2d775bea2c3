"""``brokers/kis/protocol.py`` against the tables of shared/kis/PROTOCOL.md (values hard-coded here)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from brokers.kis import protocol as P
from kis_emu_helpers import aes_cbc_decrypt

# PROTOCOL.md §3.0: (api, real new, paper new, real old, paper old)
TR_TABLE = [
    ("order_cash_buy", "TTTC0012U", "VTTC0012U", "TTTC0802U", "VTTC0802U"),
    ("order_cash_sell", "TTTC0011U", "VTTC0011U", "TTTC0801U", "VTTC0801U"),
    ("order_rvsecncl", "TTTC0013U", "VTTC0013U", "TTTC0803U", "VTTC0803U"),
    ("inquire_psbl_rvsecncl", "TTTC0084R", None, "TTTC8036R", None),
    ("inquire_balance", "TTTC8434R", "VTTC8434R", None, None),
    ("inquire_daily_ccld", "TTTC0081R", "VTTC0081R", "TTTC8001R", "VTTC8001R"),
    ("inquire_daily_ccld_before_3m", "CTSC9215R", "VTSC9215R", "CTSC9115R", "VTSC9115R"),
    ("inquire_psbl_order", "TTTC8908R", "VTTC8908R", None, None),
    ("inquire_psbl_sell", "TTTC8408R", None, None, None),
    ("inquire_price", "FHKST01010100", "FHKST01010100", None, None),
    ("inquire_daily_itemchartprice", "FHKST03010100", "FHKST03010100", None, None),
    ("inquire_time_itemchartprice", "FHKST03010200", "FHKST03010200", None, None),
    ("chk_holiday", "CTCA0903R", None, None, None),
]


@pytest.mark.parametrize("api,real,paper,real_old,paper_old", TR_TABLE)
def test_tr_ids_both_ways(api: str, real: str, paper: str | None, real_old: str | None, paper_old: str | None) -> None:
    assert P.tr_id_for(api, "real") == real
    if paper:
        assert P.tr_id_for(api, "paper") == paper
    else:
        with pytest.raises(ValueError):
            P.tr_id_for(api, "paper")
    for tr, env, gen in ((real, "real", "new"), (paper, "paper", "new"), (real_old, "real", "old"),
                         (paper_old, "paper", "old")):
        if tr is None:
            continue
        info = P.lookup_tr(tr)
        assert info is not None and info.api.value == api and info.generation.value == gen
        if tr.startswith("FHK"):
            assert info.env is None  # quotation TRs are the same in both environments
        else:
            assert info.env.value == env
    if real_old:
        assert P.tr_id_for(api, "real", "old") == real_old


def test_paths_and_hosts() -> None:
    assert P.REST_BASE_URL[P.Env.REAL] == "https://openapi.koreainvestment.com:9443"
    assert P.REST_BASE_URL[P.Env.PAPER] == "https://openapivts.koreainvestment.com:29443"
    assert P.WS_BASE_URL[P.Env.REAL] == "ws://ops.koreainvestment.com:21000"
    assert P.WS_BASE_URL[P.Env.PAPER] == "ws://ops.koreainvestment.com:31000"
    assert P.PATH_TOKEN == "/oauth2/tokenP" and P.PATH_REVOKE == "/oauth2/revokeP"
    assert P.PATH_APPROVAL == "/oauth2/Approval" and P.PATH_HASHKEY == "/uapi/hashkey"
    assert [s.api.value for s in P.specs_for_path("/uapi/domestic-stock/v1/trading/order-cash")] == [
        "order_cash_buy", "order_cash_sell"]
    assert P.APPKEY_LENGTH == 36 and P.APPSECRET_LENGTH == 180
    assert P.paper_tr_from_real("TTTC0012U") == "VTTC0012U" and P.paper_tr_from_real("CTSC9215R") == "VTSC9215R"
    assert P.paper_tr_from_real("FHKST01010100") == "FHKST01010100"


def test_limits_and_page_sizes() -> None:
    assert P.PAGE_SIZE[P.Api.INQUIRE_BALANCE] == {P.Env.REAL: 50, P.Env.PAPER: 20}
    assert P.PAGE_SIZE[P.Api.INQUIRE_DAILY_CCLD] == {P.Env.REAL: 100, P.Env.PAPER: 15}
    assert P.PAGE_SIZE[P.Api.INQUIRE_PSBL_RVSECNCL][P.Env.REAL] == 50
    assert P.DAILY_CHART_MAX_ROWS == 100 and P.TIME_CHART_MAX_ROWS == 30
    assert P.REST_RATE_LIMIT_PER_SEC == {P.Env.REAL: 18.0, P.Env.PAPER: 1.0}          # 2026-04-20 notice
    assert P.REST_RATE_LIMIT_HISTORICAL_PER_SEC == {P.Env.REAL: 20.0, P.Env.PAPER: 2.0}
    assert P.TOKEN_LIFETIME_S == 86400 and P.TOKEN_REUSE_WINDOW_S == 6 * 3600 and P.TOKEN_ISSUE_INTERVAL_S == 60
    assert P.WS_MAX_REGISTRATIONS == 41 and P.WS_CLIENT_REGISTRATION_BUDGET == 40
    assert P.CTX_AREA_LENGTH == 100


def test_ord_dvsn_table() -> None:
    assert P.PAPER_ORD_DVSN == {"00", "01", "02", "03", "04"}
    assert P.ORD_DVSN["01"].krx and not P.ORD_DVSN["01"].nxt and P.ORD_DVSN["01"].sor
    assert P.ORD_DVSN["02"].krx and not P.ORD_DVSN["02"].nxt and not P.ORD_DVSN["02"].sor
    for code in ("05", "06", "07", "11", "12", "13", "14", "15", "16"):
        assert P.ORD_DVSN[code].paper is False
    for code in ("21", "22", "23", "24"):
        assert P.ORD_DVSN[code].paper is None  # unconfirmed
    assert P.ORD_DVSN["11"].condition == "1" and P.ORD_DVSN["12"].condition == "2"
    assert P.PAPER_EXCHANGES == {"KRX"} and set(P.EXCHANGES) == {"KRX", "NXT", "SOR"}


@pytest.mark.parametrize("key,real_code,paper_code,paper_text,http", [
    ("order_buy_ok", "APBK0013", "40600000", "모의투자 매수주문이 완료 되었습니다.", 200),
    ("order_sell_ok", "APBK0013", "40590000", "모의투자 매도주문이 완료 되었습니다.", 200),
    ("revise_ok", "APBK0013", "40620000", "모의투자 정정주문이 완료 되었습니다.", 200),
    ("cancel_ok", "APBK0013", "40630000", "모의투자 취소주문이 완료 되었습니다.", 200),
    ("insufficient_cash", "APBK0952", "40250000", "모의투자 주문가능금액이 부족합니다.", 200),
    ("band_error", "40270000", "40270000", "모의투자 상/하한가 오류", 200),
    ("tick_error", "APBK0506", "40030000", "모의투자 주문처리가 안되었습니다(호가단위 오류)", 200),
    ("nothing_to_revise", "40330000", "40330000", "모의투자 정정/취소할 수량이 없습니다.", 200),
    ("market_closed", "APBK0918", "40580000", "모의투자 장종료 입니다.", 200),       # real-host evidence
    ("market_not_open", "APBK0918", "40570000", "모의투자 장시작전 입니다.", 200),
    ("sell_qty_exceeded", "APBK0400", "EMU00002", "모의투자 주문가능수량을 초과 했습니다.", 200),
    ("paper_unsupported", "90000000", "90000000", "모의투자에서는 해당업무가 제공되지 않습니다.", 200),
    ("rate_limited", "EGW00201", "EGW00201", "초당 거래건수를 초과하였습니다.", 500),
    ("token_expired", "EGW00123", "EGW00123", "기간이 만료된 token 입니다.", 500),
    ("paper_key_on_real", "EGW02004", "EGW02004", "실전투자 도메인은 모의투자 앱키로 호출하실 수 없습니다.", 500),
    ("not_paper_tr", "EGW02006", "EGW02006", "모의투자 TR 이 아닙니다.", 500),
])
def test_messages(key: str, real_code: str, paper_code: str, paper_text: str, http: int) -> None:
    m = P.message(key)
    assert m.code("real") == real_code and m.code("paper") == paper_code
    assert m.text("paper") == paper_text and m.http == http
    env = m.envelope("paper", output={})
    assert set(env) == {"rt_cd", "msg_cd", "msg1", "output"}
    assert (env["rt_cd"] == "0") == key.endswith("_ok")


def test_real_texts_and_success_codes() -> None:
    assert P.message("order_buy_ok").text("real") == "주문 전송 완료 되었습니다."
    assert P.message("tick_error").text("real") == "주식주문호가단위 오류입니다."
    assert P.message("nothing_to_revise").text("real") == "정정/취소할 수량이 없습니다."
    assert P.message("inquiry_done").code("real") == "KIOK0510"
    assert P.message("inquiry_more").text("real") == "조회가 계속됩니다..다음버튼을 Click 하십시오."
    assert P.message("inquiry_last").code("real") == "KIOK0460"
    assert P.message("quote_ok").envelope("real")["msg1"] == "정상처리 되었습니다!"
    assert P.input_invalid("inqr_dvsn") == {"rt_cd": "2", "msg_cd": "OPSQ2001",
                                            "msg1": "ERROR : INPUT INVALID_CHECK_INQR_DVSN"}
    assert P.OAUTH_TOKEN_THROTTLED == ("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
    assert P.REVOKE_OK == {"code": 200, "message": "접근토큰 폐기에 성공하였습니다"}


def test_ws_control_codes() -> None:
    expected = {"OPSP0000": ("0", "SUBSCRIBE SUCCESS"), "OPSP0001": ("0", "UNSUBSCRIBE SUCCESS"),
                "OPSP0002": ("1", "ALREADY IN SUBSCRIBE"), "OPSP0008": ("1", "MAX SUBSCRIBE OVER"),
                "OPSP0011": ("1", "invalid approval : NOT FOUND"), "OPSP8996": ("9", "ALREADY IN USE appkey")}
    for code, (rt, text) in expected.items():
        c = P.WS_CODES[code]
        assert (c.rt_cd, c.msg1) == (rt, text)
    assert P.WS_CODES["OPSP0003"].rt_cd != "0" and P.WS_CODES["OPSP0007"].rt_cd != "0"
    ack = P.control_answer("H0STCNI0", "HTSID", P.WS_SUBSCRIBED, encrypt=True, key="k" * 32, iv="i" * 16)
    assert ack == {"header": {"tr_id": "H0STCNI0", "tr_key": "HTSID", "encrypt": "Y"},
                   "body": {"rt_cd": "0", "msg_cd": "OPSP0000", "msg1": "SUBSCRIBE SUCCESS",
                            "output": {"iv": "i" * 16, "key": "k" * 32}}}
    req = P.subscribe_request("AK", "H0STCNT0", "005930")
    assert req == {"header": {"approval_key": "AK", "custtype": "P", "tr_type": "1", "content-type": "utf-8"},
                   "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}}
    assert P.subscribe_request("AK", "H0STCNT0", "005930", subscribe=False)["header"]["tr_type"] == "2"


def test_field_lists() -> None:
    f = P.H0STCNT0_FIELDS
    assert len(f) == 46
    assert (f[0], f[1], f[2], f[12], f[13], f[21], f[33], f[34], f[43], f[44], f[45]) == (
        "MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR", "CNTG_VOL", "ACML_VOL", "CCLD_DVSN", "BSOP_DATE",
        "NEW_MKOP_CLS_CODE", "HOUR_CLS_CODE", "MRKT_TRTM_CLS_CODE", "VI_STND_PRC")
    b = P.H0STASP0_FIELDS
    assert len(b) == 59 and len(b + P.H0STASP0_EXTRA_FIELDS) == 62
    assert (b[3], b[12], b[13], b[22], b[23], b[33], b[43], b[47], b[53], b[58]) == (
        "ASKP1", "ASKP10", "BIDP1", "BIDP10", "ASKP_RSQN1", "BIDP_RSQN1", "TOTAL_ASKP_RSQN", "ANTC_CNPR",
        "ACML_VOL", "STCK_DEAL_CLS_CODE")
    n = P.H0STCNI0_FIELDS
    assert len(n) == 26 and len(P.H0STCNI9_FIELDS) == 23
    assert n[:18] == P.H0STCNI9_FIELDS[:18]
    assert (n[2], n[3], n[9], n[10], n[12], n[13], n[14], n[15], n[16], n[25]) == (
        "ODER_NO", "OODER_NO", "CNTG_QTY", "CNTG_UNPR", "RFUS_YN", "CNTG_YN", "ACPT_YN", "BRNC_NO", "ODER_QTY",
        "ODER_PRC")
    assert P.H0STCNI9_FIELDS[18:] == ("CNTG_ISNM", "CRDT_CLS", "CRDT_LOAN_DATE", "CNTG_ISNM40", "ODER_PRC")
    assert P.WS_TR_NOTICE == {P.Env.REAL: "H0STCNI0", P.Env.PAPER: "H0STCNI9"}


def test_frame_encoding_byte_for_byte() -> None:
    assert P.encode_frame("H0STCNT0", [["a", "b"], ["c", "d"], ["e", "f"]]) == "0|H0STCNT0|003|a^b^c^d^e^f"
    assert P.encode_frame("H0STASP0", [[1, 2]]) == "0|H0STASP0|001|1^2"
    rec = [str(i) for i in range(46)] * 2
    frame = P.parse_frame("0|H0STCNT0|002|" + "^".join(rec))
    assert (frame.encrypted, frame.tr_id, frame.count) == (False, "H0STCNT0", 2)
    recs = P.split_records(frame.payload, frame.count, 46)
    assert len(recs) == 2 and all(len(r) == 46 for r in recs)
    # a 62-field book still splits into one record; a 26-field notice likewise
    assert len(P.split_records("^".join(["x"] * 62), 1, 59)[0]) == 62
    with pytest.raises(ValueError):
        P.parse_frame('{"header":{"tr_id":"PINGPONG"}}')
    assert P.zero_pad(1, 10) == "0000000001" and P.zero_pad("00950", 5) == "00950"
    assert P.same_order_number("0000013903", "13903") and not P.same_order_number("1", "2")


def test_aes_round_trip_against_cryptography() -> None:
    key, iv = "tesnaipyhhcpfrnupdybjhvuabognuch", "4060f9fcb7b4e2ef"  # shapes of a captured ack (§4.3)
    text = "HTSID^1234567801^0000002891^^02^0^01^0^136480^0000000001^000000000^094941^0^1^1^06010^000000001^이름^하림"
    b64 = P.aes_encrypt(text, key, iv)
    assert aes_cbc_decrypt(b64, key, iv) == text            # our encryption, standard decryption
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).encryptor()
    independent = base64.b64encode(enc.update(data) + enc.finalize()).decode()
    assert P.aes_decrypt(independent, key, iv) == text        # standard encryption, our decryption
    assert P.encode_encrypted_frame("H0STCNI0", text.split("^"), key, iv) == f"1|H0STCNI0|001|{independent}"
    with pytest.raises(ValueError):
        P.aes_encrypt("x", "short", iv)


def test_pingpong_text() -> None:
    import json

    assert json.loads(P.pingpong_message("20250602090000")) == {
        "header": {"tr_id": "PINGPONG", "datetime": "20250602090000"}}

"""OAuth, headers, cross-environment keys, TR routing and the rate limit (PROTOCOL §1, §2, §5)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import requests

from kis_emu_helpers import BALANCE, DAY, PRICE, PSBL_RVSECNCL, Client, at


def _token(creds, **extra):
    return requests.post(creds.rest_url + "/oauth2/tokenP", json={
        "grant_type": "client_credentials", "appkey": creds.appkey, "appsecret": creds.appsecret, **extra})


def test_token_shape_lifetime_and_reuse(make_emu) -> None:
    emu = make_emu()
    c = emu.credentials()
    assert len(c.appkey) == 36 and len(c.appsecret) == 180
    r = _token(c)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "access_token_token_expired"}
    assert "rt_cd" not in body                          # flat, no envelope (§2.1)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400 and isinstance(body["expires_in"], int)
    # KST, issuance + 24 h on the WALL clock (a gateway fact), not the replayed market's 2025-06-02
    assert body["access_token_token_expired"] == "2026-03-03 07:30:00"
    assert body["access_token"].count(".") == 2                          # JWT
    # within a minute: HTTP 403 with the OAuth error shape
    emu.wall_clock.advance(timedelta(seconds=59))
    r2 = _token(c)
    assert r2.status_code == 403
    assert r2.json() == {"error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
                         "error_code": "EGW00133"}
    # after a minute and within 6 h: the same token again
    emu.wall_clock.advance(timedelta(minutes=10))
    r3 = _token(c)
    assert r3.status_code == 200 and r3.json()["access_token"] == body["access_token"]
    assert r3.json()["access_token_token_expired"] == "2026-03-03 07:30:00"
    # past the 6 h window: a new token, the old one still valid until it expires
    emu.wall_clock.advance(timedelta(hours=6))
    r4 = _token(c)
    assert r4.status_code == 200 and r4.json()["access_token"] != body["access_token"]
    old = Client(c)
    old._token = body["access_token"]
    assert old.get(PRICE, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}).status_code == 200


def test_expired_token_and_invalid_token(make_emu) -> None:
    emu = make_emu()
    cl = Client(emu.credentials())
    cl.auto_refresh = False
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
    assert cl.get(PRICE, "FHKST01010100", params).status_code == 200
    emu.advance(timedelta(hours=24))                 # the market clock does not age tokens …
    assert cl.get(PRICE, "FHKST01010100", params).status_code == 200
    emu.wall_clock.advance(timedelta(hours=24))      # … the gateway's wall clock does
    r = cl.get(PRICE, "FHKST01010100", params)
    assert r.status_code == 500
    assert r.json() == {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."}
    cl._token = "not-a-token"
    r = cl.get(PRICE, "FHKST01010100", params)
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00121"


def test_revoke(make_emu) -> None:
    emu = make_emu()
    c = emu.credentials()
    cl = Client(c)
    tok = cl.token()
    r = requests.post(c.rest_url + "/oauth2/revokeP", json={"appkey": c.appkey, "appsecret": c.appsecret, "token": tok})
    assert r.status_code == 200 and r.json() == {"code": 200, "message": "접근토큰 폐기에 성공하였습니다"}
    r = requests.post(c.rest_url + "/oauth2/revokeP", json={"appkey": c.appkey, "appsecret": c.appsecret, "token": tok})
    assert r.json() == {"error_description": "유효하지 않은 token 입니다.", "error_code": "EGW00121"}
    r = cl.get(PRICE, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00121"
    emu.wall_clock.advance(timedelta(minutes=2))
    r = _token(c)  # a revoked token is never re-served
    assert r.status_code == 200 and r.json()["access_token"] != tok


def test_approval_uses_secretkey(make_emu) -> None:
    emu = make_emu()
    c = emu.credentials()
    r = requests.post(c.rest_url + "/oauth2/Approval", json={
        "grant_type": "client_credentials", "appkey": c.appkey, "secretkey": c.appsecret})
    assert r.status_code == 200 and set(r.json()) == {"approval_key"} and len(r.json()["approval_key"]) == 36
    r = requests.post(c.rest_url + "/oauth2/Approval", json={
        "grant_type": "client_credentials", "appkey": c.appkey, "appsecret": c.appsecret})  # wrong field name
    assert r.status_code == 403 and "error_code" in r.json()


def test_unknown_appkey_oauth_shape(make_emu) -> None:
    emu = make_emu()
    c = emu.credentials()
    r = requests.post(c.rest_url + "/oauth2/tokenP", json={
        "grant_type": "client_credentials", "appkey": "X" * 36, "appsecret": c.appsecret})
    assert r.status_code == 403
    assert r.json() == {"error_description": "유효하지 않은 AppKey입니다.", "error_code": "EGW00103"}


def test_hashkey_optional(make_emu) -> None:
    emu = make_emu()
    c = emu.credentials()
    body = json.dumps({"CANO": c.cano, "ACNT_PRDT_CD": "01", "PDNO": "005930"}).encode()
    r = requests.post(c.rest_url + "/uapi/hashkey", data=body, headers={
        "content-type": "application/json", "appKey": c.appkey, "appSecret": c.appsecret})
    assert r.status_code == 200
    assert r.json()["BODY"] == json.loads(body) and r.json()["HASH"] == hashlib.sha256(body).hexdigest()
    assert len(r.json()["HASH"]) == 64


def test_headers_any_case_and_required(make_emu) -> None:
    emu = make_emu()
    c = emu.credentials()
    cl = Client(c)
    tok = cl.token()
    params = {"fid_cond_mrkt_div_code": "J", "fid_input_iscd": "005930"}   # lowercase query names (§1.3)
    r = requests.get(c.rest_url + PRICE, params=params, headers={
        "Authorization": f"Bearer {tok}", "appKey": c.appkey, "appSecret": c.appsecret, "TR_ID": "FHKST01010100"})
    assert r.status_code == 200 and r.json()["rt_cd"] == "0" and r.json()["output"]["stck_shrn_iscd"] == "005930"
    assert r.headers["tr_id"] == "FHKST01010100" and len(r.headers["gt_uid"]) == 32
    r = requests.get(c.rest_url + PRICE, params=params, headers={
        "appkey": c.appkey, "appsecret": c.appsecret, "tr_id": "FHKST01010100"})     # no authorization
    assert r.status_code == 500 and r.json()["rt_cd"] != "0"
    r = requests.get(c.rest_url + PRICE, params=params, headers={
        "authorization": f"Bearer {tok}", "appkey": c.appkey, "appsecret": "wrong", "tr_id": "FHKST01010100"})
    assert r.status_code == 500 and r.json()["rt_cd"] != "0"
    r = requests.get(c.rest_url + PRICE, params=params, headers={
        "authorization": f"Bearer {tok}", "appkey": c.appkey, "appsecret": c.appsecret, "tr_id": "TTTC0012U"})
    assert r.status_code == 500 and r.json()["rt_cd"] != "0"                            # TR of another path


def test_cross_environment_keys(make_emu) -> None:
    emu = make_emu("paper", serve_both=True)
    paper, real = emu.credentials("paper"), emu.credentials("real")
    assert paper.appkey != real.appkey and paper.cano != real.cano
    # a paper key on the real host → EGW02004 (§5.2)
    tok = Client(paper).token()
    r = requests.get(real.rest_url + PRICE, params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
                     headers={"authorization": f"Bearer {tok}", "appkey": paper.appkey, "appsecret": paper.appsecret,
                              "tr_id": "FHKST01010100"})
    assert r.status_code == 500
    assert r.json() == {"rt_cd": "1", "msg_cd": "EGW02004", "msg1": "실전투자 도메인은 모의투자 앱키로 호출하실 수 없습니다."}
    # a real key on the paper host → EGW02007
    rtok = Client(real).token()
    r = requests.get(paper.rest_url + PRICE, params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
                     headers={"authorization": f"Bearer {rtok}", "appkey": real.appkey, "appsecret": real.appsecret,
                              "tr_id": "FHKST01010100"})
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW02007"


def test_real_only_and_real_tr_on_paper(make_emu) -> None:
    emu = make_emu("paper")
    cl = Client(emu.credentials())
    acct = {"CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "CTX_AREA_FK100": "", "CTX_AREA_NK100": "",
            "INQR_DVSN_1": "0", "INQR_DVSN_2": "0"}
    for tr in ("TTTC0084R", "TTTC8036R"):                       # real-only TR (§3.5)
        r = cl.get(PSBL_RVSECNCL, tr, acct)
        assert r.status_code == 500
        assert r.json() == {"rt_cd": "1", "msg_cd": "EGW02006", "msg1": "모의투자 TR 이 아닙니다."}
    r = cl.get(BALANCE, "TTTC8434R", {"CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "INQR_DVSN": "01"})
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW02006"   # real TR id sent to paper (kis-agent #44)


def test_rate_limit_token_bucket_on_the_stepped_clock(make_emu) -> None:
    emu = make_emu("paper", paper={"rate_limit_per_sec": 2})        # auto: stepped clock → emulated seconds
    cl = Client(emu.credentials())
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
    codes = [cl.get(PRICE, "FHKST01010100", params) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 500]                # bucket of 2 (1 s worth)
    assert codes[2].json() == {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}
    emu.advance(timedelta(seconds=0.5))                                     # refills one token
    assert cl.get(PRICE, "FHKST01010100", params).status_code == 200
    assert cl.get(PRICE, "FHKST01010100", params).status_code == 500
    # a second app key on the same account has its own bucket
    other = Client(emu.add_app())
    assert other.get(PRICE, "FHKST01010100", params).status_code == 200


def test_default_rate_limits_per_env(make_emu) -> None:
    """Spec defaults (2026-04-20 notice): real 18/s, paper 1/s, shared by every TR of a key."""
    emu = make_emu("paper", serve_both=True, paper={"rate_limit_per_sec": None},
                   real={"rate_limit_per_sec": None})
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
    paper = Client(emu.credentials("paper"))
    got = [paper.get(PRICE, "FHKST01010100", params).status_code for _ in range(2)]
    assert got == [200, 500]
    real = Client(emu.credentials("real"))
    got = [real.get(PRICE, "FHKST01010100", params).status_code for _ in range(19)]
    assert got.count(200) == 18 and got[-1] == 500
    assert DAY == at("09:00").date()


def test_wall_time_base_refills_while_the_stepped_clock_stands_still(make_emu) -> None:
    """time_base wall: a client pacing itself on the wall clock is never stuck on a stepped clock."""
    from freezegun import freeze_time

    emu = make_emu("paper", paper={"rate_limit_per_sec": None}, rate_limit={"time_base": "wall"})
    cl = Client(emu.credentials())
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
    cl.token()
    with freeze_time("2026-01-01 00:00:00", tick=False, ignore=["asyncio", "websockets", "selectors"]) as frozen:
        assert [cl.get(PRICE, "FHKST01010100", params).status_code for _ in range(2)] == [200, 500]
        frozen.tick(1.0)                                # one wall second, emulated time unchanged
        assert cl.get(PRICE, "FHKST01010100", params).status_code == 200
    assert emu.now() == at("08:55")

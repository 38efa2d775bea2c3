"""Fault injection through the Python API and the admin endpoint, observed over real sockets."""

from __future__ import annotations

import asyncio
import time

import pandas as pd
import pytest
import requests
import websockets

from kis_emu_helpers import PRICE, Client, Ws, at, minute_bars, run, standard_bars

KAKAO = "035720"
PRICE_Q = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}


def bars() -> dict[str, pd.DataFrame]:
    b = standard_bars()
    b[KAKAO] = minute_bars([(f"09:{m:02d}", 50000, 100) for m in range(0, 20)], prev_close=50000)
    return b


def test_http500_burst_and_rate_storm(make_emu) -> None:
    emu = make_emu(start=at("09:01"))
    cl = Client(emu.credentials())
    cl.token()
    emu.faults.http500(count=3)
    got = [cl.get(PRICE, "FHKST01010100", PRICE_Q) for _ in range(4)]
    assert [r.status_code for r in got] == [500, 500, 500, 200]
    assert got[0].json()["rt_cd"] == "1" and got[0].json()["msg_cd"].startswith("EGW")
    emu.faults.rate_storm(count=2, path="inquire-price")
    got = [cl.get(PRICE, "FHKST01010100", PRICE_Q) for _ in range(3)]
    assert [r.status_code for r in got] == [500, 500, 200]
    assert got[0].json() == {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}


def test_expire_token_now(make_emu) -> None:
    emu = make_emu(start=at("09:01"))
    cl = Client(emu.credentials())
    cl.auto_refresh = False
    cl.token()
    assert emu.expire_tokens() == 1
    r = cl.get(PRICE, "FHKST01010100", PRICE_Q)
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00123"
    c = cl.c
    body = {"grant_type": "client_credentials", "appkey": c.appkey, "appsecret": c.appsecret}
    assert requests.post(c.rest_url + "/oauth2/tokenP", json=body).status_code == 403   # still 1/min
    emu.wall_clock.advance(61)
    r = requests.post(c.rest_url + "/oauth2/tokenP", json=body)
    assert r.status_code == 200 and r.json()["access_token"] != cl._token


def test_timeout_after_the_order_was_accepted(make_emu) -> None:
    emu = make_emu(start=at("09:01"), bars=bars())
    cl = Client(emu.credentials())
    cl.token()
    emu.faults.timeout(path="order-cash", after_accept=True, hold_s=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        cl.http.post(cl.base + "/uapi/domestic-stock/v1/trading/order-cash", headers=cl.headers("VTTC0012U"),
                     json={"CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "PDNO": KAKAO, "ORD_DVSN": "00",
                           "ORD_QTY": "3", "ORD_UNPR": "49000"}, timeout=0.5)
    rows = cl.ccld().json()["output1"]
    assert [(r["pdno"], r["ord_qty"]) for r in rows] == [(KAKAO, "3")]      # placed although no reply came


def test_timeout_before_accept_places_nothing(make_emu) -> None:
    emu = make_emu(start=at("09:01"), bars=bars())
    cl = Client(emu.credentials())
    cl.token()
    emu.faults.timeout(path="order-cash", after_accept=False, hold_s=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        cl.http.post(cl.base + "/uapi/domestic-stock/v1/trading/order-cash", headers=cl.headers("VTTC0012U"),
                     json={"CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "PDNO": KAKAO, "ORD_DVSN": "00",
                           "ORD_QTY": "3", "ORD_UNPR": "49000"}, timeout=0.5)
    assert cl.ccld().json()["output1"] == []


def test_delayed_reply_notice_arrives_first(make_emu) -> None:
    emu = make_emu(start=at("09:01"), bars=bars())
    cl = Client(emu.credentials())
    cl.token()
    emu.faults.delay(1.0, path="order-cash")

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNI9", cl.c.hts_id)
            loop = asyncio.get_running_loop()
            t0 = time.monotonic()
            fut = loop.run_in_executor(None, lambda: cl.order("buy", KAKAO, 2, 49000))
            n = await ws.notice(timeout=5)
            assert not fut.done()                                  # the reply is still being delayed
            r = await asyncio.wait_for(fut, 10)
            assert time.monotonic() - t0 >= 1.0
            assert r.json()["output"]["ODNO"] == n[2]

    run(go())


def test_notice_before_reply_vs_default_order(make_emu) -> None:
    emu = make_emu(start=at("09:01"), bars=bars())
    cl = Client(emu.credentials())
    cl.token()

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNI9", cl.c.hts_id)
            default = cl.order("buy", KAKAO, 1, 49000).json()["output"]["ODNO"]
            await ws.notice()
            emu.faults.notice_first()
            first = cl.order("buy", KAKAO, 1, 49000).json()["output"]["ODNO"]
            await ws.notice()
            order = [(kind, odno) for kind, odno, _ in emu.trace if odno in (default, first)]
            assert order == [("reply", default), ("notice", default), ("notice", first), ("reply", first)]

    run(go())


def test_duplicate_and_out_of_order_notices(make_emu) -> None:
    emu = make_emu(start=at("09:01:30"), bars=bars())
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNI9", cl.c.hts_id)
            emu.faults.duplicate_notices(1)
            odno = cl.order("buy", KAKAO, 1, 49000).json()["output"]["ODNO"]
            a, b = await ws.notice(), await ws.notice()
            assert a == b and a[2] == odno
            emu.faults.reorder_notices(1)
            odno = cl.order("buy", KAKAO, 2, 0, "01").json()["output"]["ODNO"]
            emu.advance_to(at("09:02:30"))
            first, second = await ws.notice(), await ws.notice()
            assert (first[2], first[13]) == (odno, "2")            # the fill ...
            assert (second[2], second[13]) == (odno, "1")          # ... before its acknowledgement

    run(go())


def test_drop_websocket_and_reconnect(make_emu) -> None:
    emu = make_emu()
    cl = Client(emu.credentials())
    key = cl.approval()

    async def go() -> None:
        async with Ws(emu.ws_url(), key) as ws:
            await ws.request("H0STCNT0", "005930")
            assert emu.drop_websockets() == 1
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.ws.recv(), 5)
        async with Ws(emu.ws_url(), key) as ws:                   # the slot is free again
            assert (await ws.request("H0STCNT0", "005930"))["body"]["msg_cd"] == "OPSP0000"

    run(go())


def test_order_from_another_app(make_emu) -> None:
    emu = make_emu(start=at("09:01"), bars=bars())
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNI9", cl.c.hts_id)
            r = requests.post(emu.admin_url + "/admin/faults/hts_order", headers=emu.admin_headers,
                              json={"code": KAKAO, "side": "buy", "qty": 2, "price": 49000})
            assert r.status_code == 200
            odno = r.json()["result"]
            n = await ws.notice()
            assert (n[2], n[4], n[9], n[13]) == (odno, "02", "0000000002", "1")

    run(go())


def test_admin_endpoint(make_emu) -> None:
    emu = make_emu(start=at("09:01"))
    base = emu.admin_url
    adm = requests.Session()
    adm.headers["X-Admin-Token"] = emu.admin_token        # the token printed in the banner
    r = adm.get(base + "/admin/clock")
    assert r.json() == {"now": "2025-06-02T09:01:00+09:00", "mode": "stepped", "steppable": True}
    r = adm.post(base + "/admin/clock", json={"advance_s": 90})
    assert r.json()["now"] == "2025-06-02T09:02:30+09:00" and emu.now() == at("09:02:30")
    r = adm.post(base + "/admin/clock", json={"to": "2025-06-02T09:10:00"})
    assert r.json()["now"] == "2025-06-02T09:10:00+09:00"
    status = adm.get(base + "/admin/status").json()
    assert status["processed_until"] == status["now"] == "2025-06-02T09:10:00+09:00"
    assert status["lag_s"] == 0.0
    adm.post(base + "/admin/faults/http500", json={"count": 2, "path": "inquire-price"})
    adm.post(base + "/admin/faults/duplicate_notices", json={"count": 1})
    faults = adm.get(base + "/admin/faults").json()
    assert faults["rest"][0]["kind"] == "http500" and faults["rest"][0]["count"] == 2
    assert faults["duplicate_notices"] == 1
    assert adm.delete(base + "/admin/faults").json()["rest"] == []
    assert adm.post(base + "/admin/faults/nonsense", json={}).status_code == 400
    accts = adm.get(base + "/admin/accounts").json()["accounts"]
    assert accts[0]["account"] == "50000001-01" and accts[0]["cash_d0"] == 10_000_000
    assert adm.post(base + "/admin/clock", json={"to": "2025-06-01T09:00:00+09:00"}).status_code == 400

"""WebSocket: control codes, session rules, PINGPONG, frames byte for byte, encrypted notices (PROTOCOL §4)."""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest
import websockets

from kis_emu_helpers import Client, Ws, at, minute_bars, run, standard_bars

KAKAO = "035720"


def kakao_bars() -> dict[str, pd.DataFrame]:
    bars = standard_bars()
    bars[KAKAO] = minute_bars([("09:00", 50000, 100), ("09:01", 50000, 100), ("09:02", 49900, 100),
                               ("09:03", 49800, 100), ("09:04", 49900, 3), ("09:05", 50000, 2),
                               ("09:06", 50100, 2), ("09:07", 50200, 100)], prev_close=50000)
    return bars


def test_approval_key_checked(make_emu) -> None:
    emu = make_emu()

    async def go() -> None:
        async with Ws(emu.ws_url(), "not-a-key") as ws:
            msg = await ws.request("H0STCNT0", "005930")
            assert msg["body"]["msg_cd"] == "OPSP0011" and msg["body"]["rt_cd"] != "0"
            assert msg["body"]["msg1"] == "invalid approval : NOT FOUND"

    run(go())


def test_subscribe_unsubscribe_acks(make_emu) -> None:
    emu = make_emu()
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            ack = await ws.request("H0STCNT0", "005930")
            assert ack["header"] == {"tr_id": "H0STCNT0", "tr_key": "005930", "encrypt": "N"}
            body = ack["body"]
            assert (body["rt_cd"], body["msg_cd"], body["msg1"]) == ("0", "OPSP0000", "SUBSCRIBE SUCCESS")
            assert len(body["output"]["iv"]) == 16 and len(body["output"]["key"]) == 32   # on quote acks too
            ack = await ws.request("H0STCNI9", cl.c.hts_id)
            assert ack["header"]["encrypt"] == "Y" and ack["body"]["msg_cd"] == "OPSP0000"
            dup = await ws.request("H0STCNT0", "005930")
            assert (dup["body"]["msg_cd"], dup["body"]["msg1"]) == ("OPSP0002", "ALREADY IN SUBSCRIBE")
            assert dup["body"]["rt_cd"] != "0"
            un = await ws.request("H0STCNT0", "005930", tr_type="2")
            assert un["body"]["rt_cd"] == "0" and un["body"]["msg_cd"] == "OPSP0001"
            assert un["body"]["msg1"].startswith("UNSUB")
            un = await ws.request("H0STCNT0", "005930", tr_type="2")
            assert un["body"]["msg_cd"] == "OPSP0003" and un["body"]["rt_cd"] != "0"
            wrong_env = await ws.request("H0STCNI0", cl.c.hts_id)               # real notices on paper
            assert wrong_env["body"]["rt_cd"] != "0"

    run(go())


def test_registration_cap_41(make_emu) -> None:
    emu = make_emu()
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            ack = await ws.request("H0STCNI9", cl.c.hts_id)
            assert ack["body"]["msg_cd"] == "OPSP0000"
            for i in range(40):                                                  # 41 with the notice
                ack = await ws.request("H0STCNT0", f"{100000 + i}")
                assert ack["body"]["msg_cd"] == "OPSP0000", i
            over = await ws.request("H0STASP0", "005930")
            assert (over["body"]["msg_cd"], over["body"]["msg1"]) == ("OPSP0008", "MAX SUBSCRIBE OVER")
            await ws.request("H0STCNT0", "100000", tr_type="2")                  # frees one slot
            assert (await ws.request("H0STASP0", "005930"))["body"]["msg_cd"] == "OPSP0000"

    run(go())


def test_one_session_per_app_key(make_emu) -> None:
    emu = make_emu()
    cl = Client(emu.credentials())
    key = cl.approval()
    other = Client(emu.add_app())

    async def go() -> None:
        async with Ws(emu.ws_url(), key) as first, Ws(emu.ws_url(), key) as second:
            assert (await first.request("H0STCNT0", "005930"))["body"]["msg_cd"] == "OPSP0000"
            refused = await second.request("H0STCNT0", "000660")
            assert refused["body"]["rt_cd"] == "9"
            assert (refused["body"]["msg_cd"], refused["body"]["msg1"]) == ("OPSP8996", "ALREADY IN USE appkey")
            await asyncio.wait_for(second.ws.wait_closed(), 5)
            assert (await first.request("H0STCNT0", "000660"))["body"]["msg_cd"] == "OPSP0000"  # first unharmed
            async with Ws(emu.ws_url(), other.approval()) as third:                # other keys are fine
                assert (await third.request("H0STCNT0", "005930"))["body"]["msg_cd"] == "OPSP0000"

    run(go())


def test_pingpong_echo_keeps_silent_client_dropped(make_emu) -> None:
    emu = make_emu()
    a = Client(emu.credentials())
    b = Client(emu.add_app())

    async def go() -> None:
        async with Ws(emu.ws_url(), a.approval()) as wa, Ws(emu.ws_url(), b.approval(), echo_ping=False) as wb:
            await wa.request("H0STCNT0", "005930")
            await wb.request("H0STCNT0", "005930")
            assert emu.ping_websockets() == 0
            for ws in (wa, wb):
                raw = await asyncio.wait_for(ws.ws.recv(), 5)
                # stamped by the gateway's wall clock (WALL_START), not the replayed market
                assert json.loads(raw) == {"header": {"tr_id": "PINGPONG", "datetime": "20260302073000"}}
            await wa.ws.send(raw)                                   # echo the identical text (§4.6)
            await wa.request("H0STASP0", "005930")                  # ack ⇒ the echo was processed
            assert emu.ping_websockets() == 1                       # b never echoed: dropped
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(wb.ws.recv(), 5)
            raw = await asyncio.wait_for(wa.ws.recv(), 5)           # a gets the next ping
            assert json.loads(raw)["header"]["tr_id"] == "PINGPONG"

    run(go())


def test_periodic_pingpong_drops_silent_client(make_emu) -> None:
    emu = make_emu(ws={"ping_interval_s": 0.2})
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval(), echo_ping=False) as ws:
            await ws.request("H0STCNT0", "005930")
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.ws.recv(), 5)

    run(go())


def test_trade_frames_bunch_records_byte_for_byte(make_emu) -> None:
    emu = make_emu()
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNT0", "000660")
            emu.advance_to(at("09:03"))                            # prints at 09:00, :01, :02, :03
            frame = await ws.frame("H0STCNT0")
            enc, tr, count, payload = frame.split("|")
            assert (enc, tr, count) == ("0", "H0STCNT0", "004")
            fields = payload.split("^")
            assert len(fields) == 46 * 4
            recs = [fields[i * 46:(i + 1) * 46] for i in range(4)]
            assert [r[1] for r in recs] == ["090000", "090100", "090200", "090300"]
            r0 = recs[0]
            assert (r0[0], r0[2], r0[3], r0[4], r0[5]) == ("000660", "200000", "3", "0", "0.00")
            assert (r0[12], r0[13], r0[14]) == ("100", "100", "20000000")
            assert [r[13] for r in recs] == ["100", "200", "300", "400"]        # ACML_VOL
            assert (r0[33], r0[34], r0[35]) == ("20250602", "20", "N")
            assert int(r0[10]) > int(r0[11])                                     # ASKP1 > BIDP1
            emu.advance_to(at("09:28"))                            # 25 more prints, ≤ 10 per frame
            counts = []
            while sum(counts) < 25:
                enc, tr, count, payload = (await ws.frame("H0STCNT0")).split("|")
                assert len(count) == 3 and len(payload.split("^")) == 46 * int(count)
                counts.append(int(count))
            assert counts == [10, 10, 5]
            await ws.request("H0STCNT0", "000660", tr_type="2")
            emu.advance_to(at("09:30"))
            assert await ws.no_message(0.3)                        # unsubscribed: nothing more

    run(go())


@pytest.mark.parametrize("fields", [59, 62])
def test_book_frames(make_emu, fields: int) -> None:
    emu = make_emu(ws={"book_fields": fields})
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STASP0", "000660")
            emu.advance_to(at("09:02"))
            enc, tr, count, payload = (await ws.frame("H0STASP0")).split("|")
            assert (enc, tr, count) == ("0", "H0STASP0", "001")
            f = payload.split("^")
            assert len(f) == fields
            asks = [int(x) for x in f[3:13]]
            bids = [int(x) for x in f[13:23]]
            assert f[0] == "000660" and f[1] == "090200"
            assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and asks[0] > bids[0]
            assert all(p % (500 if p >= 200_000 else 100) == 0 for p in asks + bids)   # KRX grid
            assert bids[0] == 199_900 and asks[:2] in ([200_000, 200_500], [200_500, 201_000])
            assert int(f[43]) == sum(int(x) for x in f[23:33])                 # TOTAL_ASKP_RSQN
            assert f[53] == "300"                                              # ACML_VOL

    run(go())


def test_paper_notices_ack_and_each_partial_fill(make_emu) -> None:
    emu = make_emu("paper", start=at("09:03:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    c = cl.c

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            ack = await ws.request("H0STCNI9", c.hts_id)
            assert ack["body"]["msg_cd"] == "OPSP0000"
            odno = cl.order("buy", KAKAO, 7, 0, "01").json()["output"]["ODNO"]
            n = await ws.notice()
            assert len(n) == 23                                                # paper layout
            assert (n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8]) == (
                c.hts_id, c.cano + "01", odno, "", "02", "0", "01", "0", KAKAO)
            assert (n[9], n[10], n[12], n[13], n[14], n[15], n[16]) == (
                "0000000007", "000000000", "0", "1", "1", "00950", "000000007")
            assert n[11] == "090330"
            emu.advance_to(at("09:06:30"))
            fills = [await ws.notice() for _ in range(3)]
            assert [(f[9], f[10], f[11]) for f in fills] == [
                ("0000000003", "000049900", "090400"), ("0000000002", "000050000", "090500"),
                ("0000000002", "000050100", "090600")]
            assert all((f[2], f[6], f[12], f[13], f[14]) == (odno, "00", "0", "2", "2") for f in fills)

    run(go())


def test_real_notices_26_fields_revise_cancel_and_reject(make_emu) -> None:
    emu = make_emu("real", start=at("09:00:30"), bars=kakao_bars())
    cl = Client(emu.credentials())
    c = cl.c

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNI0", c.hts_id)
            odno = cl.order("buy", KAKAO, 10, 48000).json()["output"]["ODNO"]
            n = await ws.notice()
            assert len(n) == 26 and (n[2], n[13], n[15], n[16]) == (odno, "1", "06010", "000000010")
            assert (n[9], n[10]) == ("0000000010", "000048000")                # order qty/price on the ack
            rv = cl.rvsecncl(odno, cancel=False, price=49000).json()["output"]["ODNO"]
            acks = [await ws.notice(), await ws.notice()]
            assert [(a[2], a[3], a[5], a[12], a[13], a[14]) for a in acks] == [
                (rv, odno, "1", "0", "1", "1"), (rv, odno, "1", "0", "1", "2")]
            cn = cl.rvsecncl(rv, cancel=True, qty=4, all_qty=False).json()["output"]["ODNO"]
            acks = [await ws.notice(), await ws.notice()]
            assert [(a[2], a[3], a[5], a[9], a[14]) for a in acks] == [
                (cn, rv, "2", "0000000004", "1"), (cn, rv, "2", "0000000004", "2")]
            emu.faults.reject_next_orders(1)
            rj = cl.order("buy", KAKAO, 1, 48000)
            assert rj.json()["rt_cd"] == "0"                                   # KIS accepted and forwarded it
            n = await ws.notice()
            assert (n[2], n[12], n[13]) == (rj.json()["output"]["ODNO"], "1", "1")   # refused by the exchange
            row = {r["odno"]: r for r in cl.ccld().json()["output1"]}[rj.json()["output"]["ODNO"]]
            assert row["rjct_qty"] == "1"

    run(go())


def test_notice_subscription_only_for_own_hts_id(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars())
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNI9", "someoneelse")
            cl.order("buy", KAKAO, 1, 48000)
            assert await ws.no_message(0.3)

    run(go())


def test_expiry_notice_option(make_emu) -> None:
    emu = make_emu("paper", start=at("09:00:30"), bars=kakao_bars(), matching={"expiry_notice": True})
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval()) as ws:
            await ws.request("H0STCNI9", cl.c.hts_id)
            odno = cl.order("buy", KAKAO, 3, 48000).json()["output"]["ODNO"]
            await ws.notice()
            emu.advance_to(at("15:31"))
            n = await ws.notice()
            assert (n[2], n[9], n[12], n[13], n[14]) == (odno, "0000000003", "0", "1", "3")

    run(go())


def test_any_path_and_legacy_appkey_header(make_emu) -> None:
    """Old mojito sends appKey/appSecret instead of an approval key, on the bare host (§1.1)."""
    emu = make_emu()
    c = emu.credentials()

    async def go() -> None:
        async with websockets.connect(emu.ws_url(), ping_interval=None) as ws:
            await ws.send(json.dumps({"header": {"appKey": c.appkey, "appSecret": c.appsecret, "custtype": "P",
                                                 "tr_type": "1", "content": "utf-8"},
                                      "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack["body"]["msg_cd"] == "OPSP0000"
        async with websockets.connect(emu.ws_url() + "/tryitout/H0STCNT0", ping_interval=None) as ws:
            await ws.send(json.dumps({"header": {"appKey": c.appkey, "appSecret": "wrong", "tr_type": "1"},
                                      "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack["body"]["msg_cd"] == "OPSP0011"

    run(go())

"""What KIS's own sample code (koreainvestment/open-trading-api ``examples_user/kis_auth.py``) needs from
the server, reproduced with our own code from issue 10's description — the sample itself is not copied.

* every REST reply is wrapped as ``namedtuple("header", <lower-case header names>)``: a lower-case
  ``content-type`` is not a valid identifier and turned every successful call into a ValueError;
  ``tr_cont`` must be present on every inquiry (``inquire_psbl_sell`` reads it);
* the token is cached in ``~/KIS/config/KIS<yyyymmdd>`` with the ``access_token_token_expired`` stamp and
  read back only while that stamp is later than the *wall* clock;
* PINGPONG is answered with a WebSocket pong frame, not a text echo.
"""

from __future__ import annotations

import asyncio
import json
from collections import namedtuple
from datetime import datetime
from pathlib import Path

import requests
import yaml

from brokers.kis.emulator.clock import SteppedClock
from brokers.kis.emulator.server import Emulator
from kis_emu_helpers import BALANCE, NAMES, PRICE, Client, Ws, at, base_config, run, standard_bars

PSBL_SELL = "/uapi/domestic-stock/v1/trading/inquire-psbl-sell"


def sample_style_header(resp: requests.Response) -> tuple:
    """The sample's header object: a namedtuple of every all-lower-case header name as sent."""
    fields = {name: value for name, value in resp.raw.headers.items() if name.islower()}
    return namedtuple("header", fields.keys())(**fields)


def sample_style_body(resp: requests.Response) -> tuple:
    body = resp.json()
    return namedtuple("body", body.keys())(**body)


def test_every_uapi_reply_builds_the_samples_namedtuples(make_emu) -> None:
    emu = make_emu("real", start=at("09:01"))
    cl = Client(emu.credentials())
    replies = {
        "quote": cl.get(PRICE, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}),
        "balance": cl.balance(),
        "order": cl.order("buy", "005930", 1, 0, "01"),
        "psbl_sell": cl.get(PSBL_SELL, "TTTC8408R", {"CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "PDNO": "005930"}),
        "business error": cl.order("buy", "005930", 1, 70050),                 # off the tick grid
        "input error": cl.get(BALANCE, "TTTC8434R", {"CANO": cl.c.cano, "ACNT_PRDT_CD": "01", "INQR_DVSN": "02"}),
        "gateway error": cl.get(PRICE, "TTTC0000R", {}),                        # unknown TR: MCA00124, HTTP 500
    }
    for what, r in replies.items():
        header = sample_style_header(r)                     # raised ValueError on 'content-type' before
        assert {"tr_id", "tr_cont", "gt_uid"} <= set(header._fields), what
        assert len(header.gt_uid) == 32, what
        body = sample_style_body(r)
        assert body.rt_cd in ("0", "1", "2"), what
    assert sample_style_header(replies["psbl_sell"]).tr_cont == ""              # present, not "more"
    assert sample_style_header(replies["quote"]).tr_id == "FHKST01010100"
    assert "Content-Type" in replies["quote"].raw.headers.keys()


def test_oauth_replies_carry_no_lower_case_content_type(make_emu) -> None:
    emu = make_emu("real")
    c = emu.credentials()
    r = requests.post(c.rest_url + "/oauth2/tokenP", data=json.dumps({
        "grant_type": "client_credentials", "appkey": c.appkey, "appsecret": c.appsecret}),
        headers={"Content-Type": "application/json", "Accept": "text/plain", "charset": "UTF-8"})
    assert r.status_code == 200
    sample_style_header(r)                                  # the sample wraps tokenP replies the same way
    sample_style_body(r)


def test_token_file_round_trip_on_the_wall_clock(tmp_path: Path, monkeypatch) -> None:
    """Issue a token from an emulator replaying 2025 and cache it the way the sample does: under HOME,
    named after today's wall date, with the server's expiry stamp — it must read back as valid."""
    monkeypatch.setenv("HOME", str(tmp_path))
    emu = Emulator(base_config("real"), bars=standard_bars(), names=NAMES, clock=SteppedClock(at("09:00")))
    with emu:                                               # default wall clock: the machine's
        c = emu.credentials()
        r = requests.post(c.rest_url + "/oauth2/tokenP", json={
            "grant_type": "client_credentials", "appkey": c.appkey, "appsecret": c.appsecret})
        body = r.json()
    config = Path.home() / "KIS" / "config"
    config.mkdir(parents=True)
    token_file = config / f"KIS{datetime.today().strftime('%Y%m%d')}"
    valid = datetime.strptime(body["access_token_token_expired"], "%Y-%m-%d %H:%M:%S")
    token_file.write_text(f"token: {body['access_token']}\nvalid-date: {valid}\n", encoding="utf-8")

    saved = yaml.safe_load(token_file.read_text(encoding="utf-8"))
    stamp = saved["valid-date"].strftime("%Y-%m-%d %H:%M:%S")          # compared as text, like the sample
    assert stamp > datetime.today().strftime("%Y-%m-%d %H:%M:%S")       # still valid: the sample reuses it
    assert saved["token"] == body["access_token"]
    assert not stamp.startswith("2025-06-0")                           # not the replayed market's date


def test_pong_frames_answer_pingpong_for_many_rounds(make_emu) -> None:
    emu = make_emu("real")
    cl = Client(emu.credentials())

    async def go() -> None:
        async with Ws(emu.ws_url(), cl.approval(), pong_frame=True) as ws:
            await ws.request("H0STCNI0", cl.c.hts_id)
            for _ in range(6):
                # a round drops sessions that did not answer the previous one, then returns once this
                # round's pong frame is in (wait_echo); meanwhile this client reads and answers
                ping = asyncio.ensure_future(asyncio.to_thread(emu.ping_websockets, wait_echo=5.0))
                while not ping.done():
                    await ws.no_message(0.02)
                assert ping.result() == 0
            await ws.request("H0STCNT0", "005930")                   # still the same, healthy session
            status = emu.status()["ws"]["real"]
            assert status["sessions_opened"] == 1 and status["ping_rounds"] == 6
            assert (status["pong_frames"], status["text_echoes"]) == (6, 0)

    run(go())

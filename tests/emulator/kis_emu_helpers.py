"""Helpers for the emulator suite: hand-made bars, spec-driven REST/WebSocket clients.

The clients below are written from ``shared/kis/PROTOCOL.md`` only — paths, TR ids, header and
field names are literal strings here, never imported from ``brokers/kis/protocol.py`` — so a wrong
fact in protocol.py (or in the emulator) fails the tests instead of being mirrored by them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable
import base64
import json
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pandas as pd
import requests
import websockets
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from configs.emulator_schema import EmulatorConfig

KST = ZoneInfo("Asia/Seoul")
DAY = date(2025, 6, 2)
"""A Monday. 2025-06-03 is a KRX holiday (presidential election), so T+1 = 06-04 and T+2 = 06-05."""
PREV = date(2025, 5, 30)
NEXT = date(2025, 6, 4)
T2 = date(2025, 6, 5)
WALL_START = datetime(2026, 3, 2, 7, 30, tzinfo=KST)
"""The gateway's wall clock in the emulator tests: token lifetimes run on it, not on the market clock."""

DOMESTIC = "/uapi/domestic-stock/v1"
ORDER_CASH = DOMESTIC + "/trading/order-cash"
ORDER_RVSECNCL = DOMESTIC + "/trading/order-rvsecncl"
PSBL_RVSECNCL = DOMESTIC + "/trading/inquire-psbl-rvsecncl"
BALANCE = DOMESTIC + "/trading/inquire-balance"
DAILY_CCLD = DOMESTIC + "/trading/inquire-daily-ccld"
PSBL_ORDER = DOMESTIC + "/trading/inquire-psbl-order"
PRICE = DOMESTIC + "/quotations/inquire-price"
DAILY_CHART = DOMESTIC + "/quotations/inquire-daily-itemchartprice"
TIME_CHART = DOMESTIC + "/quotations/inquire-time-itemchartprice"

# TR ids per PROTOCOL.md §3.0 (new ids; old ids in the tests that need them)
TR = {
    "real": {"buy": "TTTC0012U", "sell": "TTTC0011U", "rvsecncl": "TTTC0013U", "balance": "TTTC8434R",
             "ccld": "TTTC0081R", "psbl_order": "TTTC8908R", "psbl_rvsecncl": "TTTC0084R", "notice": "H0STCNI0"},
    "paper": {"buy": "VTTC0012U", "sell": "VTTC0011U", "rvsecncl": "VTTC0013U", "balance": "VTTC8434R",
              "ccld": "VTTC0081R", "psbl_order": "VTTC8908R", "notice": "H0STCNI9"},
}


def at(hhmm: str, d: date = DAY) -> datetime:
    h, m = hhmm.split(":")[:2]
    s = hhmm.split(":")[2] if hhmm.count(":") == 2 else "0"
    return datetime.combine(d, time(int(h), int(m), int(s)), KST)


def minute_bars(prints: list[tuple[str, int, int]], d: date = DAY, prev_close: int | None = None) -> pd.DataFrame:
    """One-minute bars with O=H=L=C: with ``tick_interval_s=60`` each becomes exactly one print.

    ``prints``: (HH:MM, price, volume). ``prev_close`` adds a bar on the previous trading day so
    the base price (기준가) is known.
    """
    rows = []
    if prev_close is not None:
        rows.append((pd.Timestamp(datetime.combine(PREV, time(15, 19))), prev_close, 1))
        rows.append((pd.Timestamp(datetime.combine(PREV, time(15, 18))), prev_close, 1))
    for hhmm, price, vol in prints:
        h, m = map(int, hhmm.split(":"))
        rows.append((pd.Timestamp(datetime.combine(d, time(h, m))), price, vol))
    rows.sort()
    idx = pd.DatetimeIndex([r[0] for r in rows])
    p = [r[1] for r in rows]
    return pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": [r[2] for r in rows]}, index=idx)


def daily_bars(rows: list[tuple[date, int, int, int, int, int]]) -> pd.DataFrame:
    idx = pd.DatetimeIndex([pd.Timestamp(r[0]) for r in rows])
    return pd.DataFrame({"open": [r[1] for r in rows], "high": [r[2] for r in rows], "low": [r[3] for r in rows],
                         "close": [r[4] for r in rows], "volume": [r[5] for r in rows]}, index=idx)


def standard_bars() -> dict[str, pd.DataFrame]:
    """``005930`` daily around DAY; ``000660`` one print a minute 09:00–09:30 at 200,000 (tick 500)."""
    samsung = daily_bars([
        (date(2025, 5, 27), 69000, 70000, 68500, 69500, 1_000_000),
        (date(2025, 5, 28), 69500, 70500, 69000, 70000, 1_000_000),
        (date(2025, 5, 29), 70000, 70500, 69500, 70000, 1_000_000),
        (PREV, 70000, 70500, 69500, 70000, 1_000_000),
        (DAY, 70000, 71000, 69500, 70500, 1_142_000),
        (NEXT, 70500, 71500, 70000, 71000, 1_142_000),
        (T2, 71000, 72000, 70500, 71500, 1_142_000),
        (date(2025, 6, 9), 71500, 72000, 71000, 71500, 1_142_000),
    ])
    hynix = minute_bars([(f"09:{m:02d}", 200_000, 100) for m in range(0, 31)], prev_close=200_000)
    return {"005930": samsung, "000660": hynix}


NAMES = {"005930": "삼성전자", "000660": "SK하이닉스"}


def base_config(env: str = "paper", **overrides: Any) -> EmulatorConfig:
    raw: dict[str, Any] = {"env": env, "real": {"account": {"cano": "63000001"}, "rate_limit_per_sec": 1000},
                           "paper": {"account": {"cano": "50000001"}, "rate_limit_per_sec": 1000},
                           "ws": {"ping_interval_s": None}, "matching": {"tick_interval_s": 60}}
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            merged = dict(raw[k])
            for kk, vv in v.items():
                if isinstance(vv, dict) and isinstance(merged.get(kk), dict):
                    merged[kk] = {**merged[kk], **vv}
                else:
                    merged[kk] = vv
            raw[k] = merged
        else:
            raw[k] = v
    return EmulatorConfig.model_validate(raw)


class Client:
    """A minimal KIS REST client written from PROTOCOL.md (header names, body conventions)."""

    def __init__(self, creds: Any) -> None:
        self.c = creds
        self.base = creds.rest_url
        self.http = requests.Session()
        self._token: str | None = None
        self.auto_refresh = True

    def token(self) -> str:
        if self._token is None:
            r = self.http.post(self.base + "/oauth2/tokenP", json={
                "grant_type": "client_credentials", "appkey": self.c.appkey, "appsecret": self.c.appsecret})
            assert r.status_code == 200, r.text
            self._token = r.json()["access_token"]
        return self._token

    def headers(self, tr_id: str, tr_cont: str = "") -> dict[str, str]:
        return {"content-type": "application/json; charset=utf-8", "authorization": f"Bearer {self.token()}",
                "appkey": self.c.appkey, "appsecret": self.c.appsecret, "tr_id": tr_id, "tr_cont": tr_cont,
                "custtype": "P"}

    def get(self, path: str, tr_id: str, params: dict[str, str], tr_cont: str = "") -> requests.Response:
        return self._retry_expired(lambda: self.http.get(self.base + path, headers=self.headers(tr_id, tr_cont),
                                                         params=params, timeout=10))

    def post(self, path: str, tr_id: str, body: dict[str, Any]) -> requests.Response:
        return self._retry_expired(lambda: self.http.post(self.base + path, headers=self.headers(tr_id),
                                                          data=json.dumps(body), timeout=10))

    def _retry_expired(self, call: Callable[[], requests.Response]) -> requests.Response:
        """EGW00123 (expired token): issue a new token and retry once, as the spec advises (§5.2)."""
        r = call()
        if r.status_code == 500 and self.auto_refresh and r.json().get("msg_cd") == "EGW00123":
            self._token = None
            r = call()
        return r

    # conveniences
    def order(self, side: str, code: str, qty: int, price: int = 0, dvsn: str | None = None,
              tr_id: str | None = None, **extra: str) -> requests.Response:
        dvsn = dvsn or ("01" if price == 0 else "00")
        body = {"CANO": self.c.cano, "ACNT_PRDT_CD": self.c.acnt_prdt_cd, "PDNO": code, "ORD_DVSN": dvsn,
                "ORD_QTY": str(qty), "ORD_UNPR": str(price), "EXCG_ID_DVSN_CD": "KRX"}
        if side == "sell":
            body["SLL_TYPE"] = "01"
        body.update(extra)
        return self.post(ORDER_CASH, tr_id or TR[self.c.env][side], body)

    def rvsecncl(self, orig: str, cancel: bool, qty: int = 0, price: int = 0, all_qty: bool = True,
                 dvsn: str = "00", branch: str = "") -> requests.Response:
        return self.post(ORDER_RVSECNCL, TR[self.c.env]["rvsecncl"], {
            "CANO": self.c.cano, "ACNT_PRDT_CD": self.c.acnt_prdt_cd, "KRX_FWDG_ORD_ORGNO": branch,
            "ORGN_ODNO": orig, "ORD_DVSN": dvsn, "RVSE_CNCL_DVSN_CD": "02" if cancel else "01",
            "ORD_QTY": str(qty), "ORD_UNPR": str(price), "QTY_ALL_ORD_YN": "Y" if all_qty else "N",
            "EXCG_ID_DVSN_CD": "KRX"})

    def balance(self, tr_cont: str = "", fk: str = "", nk: str = "") -> requests.Response:
        return self.get(BALANCE, TR[self.c.env]["balance"], {
            "CANO": self.c.cano, "ACNT_PRDT_CD": self.c.acnt_prdt_cd, "AFHR_FLPR_YN": "N", "OFL_YN": "",
            "INQR_DVSN": "01", "UNPR_DVSN": "01", "FUND_STTL_ICLD_YN": "N", "FNCG_AMT_AUTO_RDPT_YN": "N",
            "PRCS_DVSN": "00", "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk}, tr_cont)

    def ccld(self, start: date = DAY, end: date = DAY, ccld_dvsn: str = "00", inqr_dvsn: str = "00",
             tr_cont: str = "", fk: str = "", nk: str = "", odno: str = "", tr_id: str | None = None
             ) -> requests.Response:
        return self.get(DAILY_CCLD, tr_id or TR[self.c.env]["ccld"], {
            "CANO": self.c.cano, "ACNT_PRDT_CD": self.c.acnt_prdt_cd, "INQR_STRT_DT": start.strftime("%Y%m%d"),
            "INQR_END_DT": end.strftime("%Y%m%d"), "SLL_BUY_DVSN_CD": "00", "INQR_DVSN": inqr_dvsn, "PDNO": "",
            "CCLD_DVSN": ccld_dvsn, "ORD_GNO_BRNO": "", "ODNO": odno, "INQR_DVSN_3": "00", "INQR_DVSN_1": "",
            "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk}, tr_cont)

    def psbl_order(self, code: str, price: int = 0, dvsn: str = "01") -> requests.Response:
        return self.get(PSBL_ORDER, TR[self.c.env]["psbl_order"], {
            "CANO": self.c.cano, "ACNT_PRDT_CD": self.c.acnt_prdt_cd, "PDNO": code, "ORD_UNPR": str(price),
            "ORD_DVSN": dvsn, "CMA_EVLU_AMT_ICLD_YN": "N", "OVRS_ICLD_YN": "N"})

    def approval(self) -> str:
        r = self.http.post(self.base + "/oauth2/Approval", json={
            "grant_type": "client_credentials", "appkey": self.c.appkey, "secretkey": self.c.appsecret})
        assert r.status_code == 200, r.text
        return r.json()["approval_key"]


def aes_cbc_decrypt(b64: str, key: str, iv: str) -> str:
    """PROTOCOL §4.5 with the ``cryptography`` library directly (independent of protocol.py)."""
    dec = Cipher(algorithms.AES(key.encode("utf-8")), modes.CBC(iv.encode("utf-8"))).decryptor()
    raw = dec.update(base64.b64decode(b64)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(raw) + unpadder.finalize()).decode("utf-8")


class Ws:
    """A spec-driven WebSocket client: subscribe, keep key/iv per TR, echo PINGPONG, decrypt notices."""

    def __init__(self, url: str, approval_key: str, echo_ping: bool = True, pong_frame: bool = False) -> None:
        self.url = url
        self.approval_key = approval_key
        self.echo_ping = echo_ping
        self.pong_frame = pong_frame     # answer PINGPONG with a pong frame carrying the text (KIS's sample)
        self.keys: dict[str, tuple[str, str]] = {}
        self.ws: Any = None
        self.pings = 0

    async def __aenter__(self) -> "Ws":
        self.ws = await websockets.connect(self.url + "/tryitout", ping_interval=None)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()

    async def send_json(self, obj: Any) -> None:
        await self.ws.send(json.dumps(obj))

    async def request(self, tr_id: str, tr_key: str, tr_type: str = "1") -> dict[str, Any]:
        await self.send_json({"header": {"approval_key": self.approval_key, "custtype": "P", "tr_type": tr_type,
                                         "content-type": "utf-8"},
                              "body": {"input": {"tr_id": tr_id, "tr_key": tr_key}}})
        return await self.control(tr_id)

    async def control(self, tr_id: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            raw = await self.recv(timeout)
            if raw.startswith("{"):
                msg = json.loads(raw)
                if tr_id is None or msg["header"].get("tr_id") == tr_id:
                    out = msg["body"].get("output") or {}
                    if "key" in out:
                        self.keys[msg["header"]["tr_id"]] = (out["key"], out["iv"])
                    return msg

    async def recv(self, timeout: float = 5.0) -> str:
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            if raw.startswith("{") and '"PINGPONG"' in raw:
                self.pings += 1
                if self.pong_frame:
                    await self.ws.pong(raw)
                elif self.echo_ping:
                    await self.ws.send(raw)
                continue
            return raw

    async def frame(self, tr_id: str, timeout: float = 5.0) -> str:
        while True:
            raw = await self.recv(timeout)
            if not raw.startswith("{") and raw.split("|")[1] == tr_id:
                return raw

    async def notice(self, timeout: float = 5.0) -> list[str]:
        """Next execution notice, decrypted and split on ``^``."""
        while True:
            raw = await self.recv(timeout)
            parts = raw.split("|")
            if parts[0] == "1" and parts[1] in ("H0STCNI0", "H0STCNI9"):
                key, iv = self.keys[parts[1]]
                return aes_cbc_decrypt(parts[3], key, iv).split("^")

    async def no_message(self, within: float = 0.3) -> bool:
        """True when nothing arrives within ``within`` seconds (a negative check, not a sync)."""
        try:
            await self.recv(within)
        except asyncio.TimeoutError:
            return True
        return False


def run(coro: Any) -> Any:
    return asyncio.run(coro)

"""Day one with the KIS (한국투자증권) Open API: token, balance, buy, fill notice, cancel, inquire.

Written only from shared/kis/PROTOCOL.md with plain ``requests`` + ``websockets`` + ``cryptography``
(no project code), so it runs the same against real KIS, 모의투자 (paper) or the local emulator —
only the URLs and keys differ::

    # against the emulator: its first stdout line is a JSON banner with everything needed
    python run.py emulator --config configs/emulator.yaml | head -1 > banner.json   # (in another shell: keep it running)
    python examples/day_one.py --banner banner.json

    # or explicitly / from the environment (KIS_REST_URL, KIS_WS_URL, KIS_APP_KEY, KIS_APP_SECRET,
    # KIS_ACCOUNT "CANO-PRDT", KIS_HTS_ID, KIS_ENV real|paper)
    python examples/day_one.py --env paper --appkey ... --appsecret ... --account 50000001-01 --hts-id myid

Steps: access token → balance → current price → WebSocket approval key and execution-notice
subscription (AES-256-CBC, key/iv from the ack) → market buy and its fill notice → a limit buy at
the lower limit (it will not fill) → cancel it → today's orders → balance again. It prints a JSON
summary as its last line. Requests are paced below the per-key limit (real 18/s, paper 1/s) and an
``EGW00201`` answer is retried, as the spec advises.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from typing import Any

import requests
import websockets
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

HOSTS = {"real": ("https://openapi.koreainvestment.com:9443", "ws://ops.koreainvestment.com:21000"),
         "paper": ("https://openapivts.koreainvestment.com:29443", "ws://ops.koreainvestment.com:31000")}
TR = {"real": {"buy": "TTTC0012U", "rvsecncl": "TTTC0013U", "balance": "TTTC8434R", "ccld": "TTTC0081R",
               "notice": "H0STCNI0"},
      "paper": {"buy": "VTTC0012U", "rvsecncl": "VTTC0013U", "balance": "VTTC8434R", "ccld": "VTTC0081R",
                "notice": "H0STCNI9"}}
RATE = {"real": 18.0, "paper": 1.0}
V1 = "/uapi/domestic-stock/v1"


class Kis:
    """The smallest REST client that follows the spec: headers, string values, pacing, retries."""

    def __init__(self, env: str, rest_url: str, appkey: str, appsecret: str, cano: str, prdt: str,
                 max_rps: float) -> None:
        self.env, self.base, self.appkey, self.appsecret = env, rest_url.rstrip("/"), appkey, appsecret
        self.cano, self.prdt = cano, prdt
        self.http = requests.Session()
        self.min_gap = 1.0 / max_rps
        self.last = 0.0
        self.token = ""

    def _pace(self) -> None:
        wait = self.last + self.min_gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last = time.monotonic()

    def issue_token(self) -> dict[str, Any]:
        r = self.http.post(self.base + "/oauth2/tokenP", json={
            "grant_type": "client_credentials", "appkey": self.appkey, "appsecret": self.appsecret}, timeout=10)
        body = r.json()
        if r.status_code != 200:
            raise SystemExit(f"tokenP refused: {body.get('error_code')} {body.get('error_description')}")
        self.token = body["access_token"]
        return body

    def approval_key(self) -> str:
        r = self.http.post(self.base + "/oauth2/Approval", json={
            "grant_type": "client_credentials", "appkey": self.appkey, "secretkey": self.appsecret}, timeout=10)
        return r.json()["approval_key"]

    def call(self, method: str, path: str, tr_id: str, params: dict[str, str] | None = None,
             body: dict[str, str] | None = None, tr_cont: str = "") -> requests.Response:
        headers = {"content-type": "application/json; charset=utf-8", "authorization": f"Bearer {self.token}",
                   "appkey": self.appkey, "appsecret": self.appsecret, "tr_id": tr_id, "tr_cont": tr_cont,
                   "custtype": "P"}
        for _ in range(20):
            self._pace()
            r = self.http.request(method, self.base + path, headers=headers, params=params,
                                  data=json.dumps(body) if body is not None else None, timeout=10)
            if r.status_code == 500 and r.json().get("msg_cd") == "EGW00201":   # rate limited: retry
                time.sleep(self.min_gap)
                continue
            return r
        return r

    def ok(self, r: requests.Response) -> dict[str, Any]:
        body = r.json()
        if body.get("rt_cd") != "0":
            raise SystemExit(f"KIS refused: HTTP {r.status_code} {body.get('msg_cd')} {str(body.get('msg1')).strip()}")
        return body

    def account_params(self) -> dict[str, str]:
        return {"CANO": self.cano, "ACNT_PRDT_CD": self.prdt}

    def balance(self) -> dict[str, Any]:
        rows: list[dict[str, str]] = []
        fk = nk = ""
        cont = ""
        while True:
            r = self.call("GET", V1 + "/trading/inquire-balance", TR[self.env]["balance"], {
                **self.account_params(), "AFHR_FLPR_YN": "N", "OFL_YN": "", "INQR_DVSN": "01", "UNPR_DVSN": "01",
                "FUND_STTL_ICLD_YN": "N", "FNCG_AMT_AUTO_RDPT_YN": "N", "PRCS_DVSN": "00",
                "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk}, tr_cont=cont)
            body = self.ok(r)
            rows += body["output1"]
            if r.headers.get("tr_cont") not in ("F", "M"):
                return {"holdings": rows, "summary": body["output2"][0]}
            fk, nk, cont = body["ctx_area_fk100"], body["ctx_area_nk100"], "N"

    def price(self, code: str) -> dict[str, str]:
        return self.ok(self.call("GET", V1 + "/quotations/inquire-price", "FHKST01010100",
                                 {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code}))["output"]

    def business_date(self, code: str) -> str:
        """Today's trading date = the newest daily bar (works against a replaying emulator as well)."""
        body = self.ok(self.call("GET", V1 + "/quotations/inquire-daily-itemchartprice", "FHKST03010100", {
            "FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code, "FID_INPUT_DATE_1": "19000101",
            "FID_INPUT_DATE_2": "29991231", "FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0"}))
        return body["output2"][0]["stck_bsop_date"] if body["output2"] else time.strftime("%Y%m%d")

    def buy(self, code: str, qty: int, price: int, dvsn: str) -> dict[str, str]:
        return self.ok(self.call("POST", V1 + "/trading/order-cash", TR[self.env]["buy"], body={
            **self.account_params(), "PDNO": code, "ORD_DVSN": dvsn, "ORD_QTY": str(qty), "ORD_UNPR": str(price),
            "EXCG_ID_DVSN_CD": "KRX"}))["output"]

    def cancel(self, branch: str, odno: str) -> dict[str, str]:
        return self.ok(self.call("POST", V1 + "/trading/order-rvsecncl", TR[self.env]["rvsecncl"], body={
            **self.account_params(), "KRX_FWDG_ORD_ORGNO": branch, "ORGN_ODNO": odno, "ORD_DVSN": "00",
            "RVSE_CNCL_DVSN_CD": "02", "ORD_QTY": "0", "ORD_UNPR": "0", "QTY_ALL_ORD_YN": "Y",
            "EXCG_ID_DVSN_CD": "KRX"}))["output"]

    def orders_on(self, day: str) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        fk = nk = cont = ""
        while True:
            r = self.call("GET", V1 + "/trading/inquire-daily-ccld", TR[self.env]["ccld"], {
                **self.account_params(), "INQR_STRT_DT": day, "INQR_END_DT": day, "SLL_BUY_DVSN_CD": "00",
                "INQR_DVSN": "01", "PDNO": "", "CCLD_DVSN": "00", "ORD_GNO_BRNO": "", "ODNO": "", "INQR_DVSN_3": "00",
                "INQR_DVSN_1": "", "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk}, tr_cont=cont)
            body = self.ok(r)
            rows += body["output1"]
            if r.headers.get("tr_cont") not in ("F", "M"):
                return rows
            fk, nk, cont = body["ctx_area_fk100"], body["ctx_area_nk100"], "N"


def aes_decrypt(b64: str, key: str, iv: str) -> str:
    dec = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).decryptor()
    raw = dec.update(base64.b64decode(b64)) + dec.finalize()
    unpad = padding.PKCS7(128).unpadder()
    return (unpad.update(raw) + unpad.finalize()).decode("utf-8")


class Notices:
    """Execution notices: subscribe with the HTS ID, echo PINGPONG, decrypt, buffer by order number."""

    def __init__(self, ws_url: str, approval: str, tr_id: str, hts_id: str) -> None:
        self.url, self.approval, self.tr_id, self.hts_id = ws_url.rstrip("/") + "/tryitout", approval, tr_id, hts_id
        self.key = self.iv = ""
        self.seen: list[list[str]] = []
        self.ws: Any = None

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url, ping_interval=None)
        await self.ws.send(json.dumps({"header": {"approval_key": self.approval, "custtype": "P", "tr_type": "1",
                                                  "content-type": "utf-8"},
                                       "body": {"input": {"tr_id": self.tr_id, "tr_key": self.hts_id}}}))
        while not self.key:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if msg["header"].get("tr_id") == "PINGPONG":
                await self.ws.send(json.dumps(msg))
                continue
            if msg["body"]["rt_cd"] != "0":
                raise SystemExit(f"subscribe refused: {msg['body']['msg_cd']} {msg['body']['msg1']}")
            self.key, self.iv = msg["body"]["output"]["key"], msg["body"]["output"]["iv"]

    async def wait_for(self, odno: str, cntg_yn: str, timeout: float = 60.0) -> list[str]:
        """The first notice for ``odno`` (compared numerically) with CNTG_YN 1 (ack) or 2 (fill)."""
        def match(n: list[str]) -> bool:
            return n[2].strip().lstrip("0") == odno.strip().lstrip("0") and n[13] == cntg_yn

        for n in self.seen:
            if match(n):
                self.seen.remove(n)
                return n
        deadline = time.monotonic() + timeout
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic()))
            if raw.startswith("{"):
                if '"PINGPONG"' in raw:
                    await self.ws.send(raw)
                continue
            enc, tr, _count, payload = raw.split("|", 3)
            if enc == "1" and tr == self.tr_id:
                n = aes_decrypt(payload, self.key, self.iv).split("^")
                if match(n):
                    return n
                self.seen.append(n)       # a notice may arrive before the REST reply: keep it

    async def close(self) -> None:
        await self.ws.close()


async def day_one(args: argparse.Namespace) -> dict[str, Any]:
    env = args.env
    cano, prdt = args.account.split("-")
    kis = Kis(env, args.rest_url, args.appkey, args.appsecret, cano, prdt, args.max_rps or RATE[env])
    log = (lambda *a: print(*a, file=sys.stderr)) if not args.quiet else (lambda *a: None)
    tok = kis.issue_token()
    log(f"token valid until {tok['access_token_token_expired']} (KST)")
    before = kis.balance()
    log(f"cash D+0 {before['summary']['dnca_tot_amt']}, D+2 {before['summary']['prvs_rcdl_excc_amt']}, "
        f"{len(before['holdings'])} holding(s)")
    quote = kis.price(args.code)
    log(f"{args.code}: last {quote['stck_prpr']}, limits {quote['stck_llam']}..{quote['stck_mxpr']}")
    notices = Notices(args.ws_url, kis.approval_key(), TR[env]["notice"], args.hts_id)
    await notices.open()
    try:
        bought = kis.buy(args.code, args.qty, 0, "01")                            # market buy
        log(f"market buy accepted: ODNO {bought['ODNO']} at {bought['ORD_TMD']}")
        await notices.wait_for(bought["ODNO"], "1", args.timeout)
        filled = 0
        fills: list[tuple[int, int]] = []
        while filled < args.qty:
            n = await notices.wait_for(bought["ODNO"], "2", args.timeout)
            fills.append((int(n[9]), int(n[10])))
            filled += int(n[9])
            log(f"fill: {int(n[9])} @ {int(n[10])}")
        resting = kis.buy(args.code, 1, int(quote["stck_llam"]), "00")             # at the lower limit
        await notices.wait_for(resting["ODNO"], "1", args.timeout)
        cancelled = kis.cancel(resting["KRX_FWDG_ORD_ORGNO"], resting["ODNO"])
        await notices.wait_for(cancelled["ODNO"], "1", args.timeout)
        log(f"cancelled {resting['ODNO']} with {cancelled['ODNO']}")
    finally:
        await notices.close()
    day = kis.business_date(args.code)
    orders = kis.orders_on(day)
    after = kis.balance()
    held = sum(int(h["hldg_qty"]) for h in after["holdings"] if h["pdno"] == args.code)
    return {"business_date": day, "bought_odno": bought["ODNO"], "filled_qty": filled,
            "fills": fills, "resting_odno": resting["ODNO"], "cancel_odno": cancelled["ODNO"],
            "orders_today": len(orders), "holding_qty": held,
            "cash_d2_before": int(before["summary"]["prvs_rcdl_excc_amt"]),
            "cash_d2_after": int(after["summary"]["prvs_rcdl_excc_amt"])}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--banner", help="file holding the emulator's first stdout line (JSON)")
    p.add_argument("--env", default=os.environ.get("KIS_ENV", "paper"), choices=("real", "paper"))
    p.add_argument("--rest-url", default=os.environ.get("KIS_REST_URL"))
    p.add_argument("--ws-url", default=os.environ.get("KIS_WS_URL"))
    p.add_argument("--appkey", default=os.environ.get("KIS_APP_KEY"))
    p.add_argument("--appsecret", default=os.environ.get("KIS_APP_SECRET"))
    p.add_argument("--account", default=os.environ.get("KIS_ACCOUNT"), help="CANO-ACNT_PRDT_CD, e.g. 50000001-01")
    p.add_argument("--hts-id", default=os.environ.get("KIS_HTS_ID"))
    p.add_argument("--code", default="005930")
    p.add_argument("--qty", type=int, default=1)
    p.add_argument("--max-rps", type=float, default=None, help="default: real 18, paper 1 (per-key limit)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each notice")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.banner:
        with open(args.banner, encoding="utf-8") as fh:
            b = json.loads(fh.readline())
        args.env, args.rest_url, args.ws_url = b["env"], b["rest_url"], b["ws_url"]
        args.appkey, args.appsecret, args.account, args.hts_id = b["appkey"], b["appsecret"], b["account"], b["hts_id"]
    args.rest_url = args.rest_url or HOSTS[args.env][0]
    args.ws_url = args.ws_url or HOSTS[args.env][1]
    missing = [n for n in ("appkey", "appsecret", "account", "hts_id") if not getattr(args, n)]
    if missing:
        p.error(f"missing: {', '.join(missing)} (flags, KIS_* environment variables or --banner)")
    return args


def main(argv: list[str] | None = None) -> int:
    summary = asyncio.run(day_one(parse_args(argv)))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Malformed requests against the emulator over real sockets (issue 14): every one gets a KIS-shaped
error or a 400 — never a dropped connection, never an internal error or a traceback in the log.

Explicit cases first (the ones a fuzzer found: Content-Length ``abc``/``1e20``, HTTP/0.9, deep JSON,
out-of-calendar chart dates, a 5,001-digit integer, deep WebSocket frames, a full-width "１" quantity,
the unauthenticated admin endpoint), then hypothesis-generated requests (pinned in the test extra;
derandomized, so CI runs the same examples every time).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time as _time
from typing import Any, Iterator

import pytest
import requests
import websockets
from hypothesis import HealthCheck, example, given, settings, strategies as st

from brokers.kis.emulator.clock import ManualWallClock, SteppedClock
from brokers.kis.emulator.server import Emulator
from kis_emu_helpers import NAMES, WALL_START, Client, at, base_config, standard_bars

DOMESTIC = "/uapi/domestic-stock/v1"
PATHS = [DOMESTIC + p for p in (
    "/trading/order-cash", "/trading/order-rvsecncl", "/trading/inquire-balance", "/trading/inquire-daily-ccld",
    "/trading/inquire-psbl-order", "/trading/inquire-psbl-sell", "/trading/inquire-psbl-rvsecncl",
    "/quotations/inquire-price", "/quotations/inquire-daily-itemchartprice", "/quotations/inquire-time-itemchartprice",
    "/quotations/inquire-time-dailychartprice", "/quotations/chk-holiday", "/quotations/search-info",
    "/quotations/search-stock-info", "/quotations/volume-rank", "/quotations/inquire-asking-price-exp-ccn",
    "/quotations/inquire-ccnl", "/finance/balance-sheet", "/finance/financial-ratio", "/ranking/market-cap",
    "/ranking/fluctuation")] + ["/oauth2/tokenP", "/oauth2/Approval", "/oauth2/revokeP", "/uapi/hashkey", "/", "/x"]
TR_IDS = ["TTTC0012U", "TTTC0011U", "TTTC0013U", "TTTC8434R", "TTTC0081R", "TTTC8908R", "TTTC8408R", "TTTC0084R",
          "FHKST01010100", "FHKST03010100", "FHKST03010200", "FHKST03010230", "CTCA0903R", "CTPF1604R", "CTPF1002R",
          "FHPST01710000", "FHKST01010200", "FHKST01010300", "FHKST66430100", "FHKST66430300", "FHPST01740000",
          "FHPST01700000", "VTTC0012U", "TTTC0802U", ""]
FIELDS = ["CANO", "ACNT_PRDT_CD", "PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR", "EXCG_ID_DVSN_CD", "ORGN_ODNO",
          "RVSE_CNCL_DVSN_CD", "QTY_ALL_ORD_YN", "KRX_FWDG_ORD_ORGNO", "FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD",
          "FID_INPUT_DATE_1", "FID_INPUT_DATE_2", "FID_PERIOD_DIV_CODE", "FID_INPUT_HOUR_1", "INQR_STRT_DT",
          "INQR_END_DT", "BASS_DT", "PRDT_TYPE_CD", "FID_DIV_CLS_CODE", "FID_COND_SCR_DIV_CODE",
          "FID_TRGT_EXLS_CLS_CODE", "FID_INPUT_PRICE_1", "FID_INPUT_CNT_1", "FID_RSFL_RATE1", "INQR_DVSN",
          "CTX_AREA_FK100", "CTX_AREA_NK100", "grant_type", "appkey", "appsecret", "secretkey", "token"]
MATCHED = [(DOMESTIC + p, tr) for p, tr in (
    ("/trading/order-cash", "TTTC0012U"), ("/trading/order-cash", "TTTC0011U"), ("/trading/order-rvsecncl", "TTTC0013U"),
    ("/trading/inquire-balance", "TTTC8434R"), ("/trading/inquire-daily-ccld", "TTTC0081R"),
    ("/trading/inquire-psbl-order", "TTTC8908R"), ("/trading/inquire-psbl-sell", "TTTC8408R"),
    ("/trading/inquire-psbl-rvsecncl", "TTTC0084R"), ("/quotations/inquire-price", "FHKST01010100"),
    ("/quotations/inquire-daily-itemchartprice", "FHKST03010100"),
    ("/quotations/inquire-time-itemchartprice", "FHKST03010200"),
    ("/quotations/inquire-time-dailychartprice", "FHKST03010230"), ("/quotations/chk-holiday", "CTCA0903R"),
    ("/quotations/search-info", "CTPF1604R"), ("/quotations/search-stock-info", "CTPF1002R"),
    ("/quotations/volume-rank", "FHPST01710000"), ("/quotations/inquire-asking-price-exp-ccn", "FHKST01010200"),
    ("/quotations/inquire-ccnl", "FHKST01010300"), ("/finance/balance-sheet", "FHKST66430100"),
    ("/finance/income-statement", "FHKST66430200"), ("/finance/financial-ratio", "FHKST66430300"),
    ("/ranking/market-cap", "FHPST01740000"), ("/ranking/fluctuation", "FHPST01700000"))]
"""Path and TR id that belong together, so generated requests reach the handlers, not only the router."""
NASTY = ["１", "１０", "٣", "0", "-1", "1e3", "1.5", "NaN", "Infinity", " 7 ", "9" * 5001, "9" * 20, "", "\x00",
         "00000101", "18000101", "99991231", "20250230", "20250602", "235960", "000000", "999999", "005930",
         "A" * 300, "\u202e", "😀", "'; DROP TABLE", "../../etc/passwd", "%00", "01", "02", "Y", "N", "J", "300"]


class ErrorLog(logging.Handler):
    """Every ERROR record any logger writes while the fuzzer runs (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Overrides the suite's per-test check: this module shares one emulator (``fuzz_emu`` checks at the end)."""
    yield


@pytest.fixture(scope="module")
def fuzz_emu() -> Iterator[Emulator]:
    cfg = base_config("real", serve_both=True, rate_limit={"enabled": False})
    emu = Emulator(cfg, bars=standard_bars(), names=NAMES, clock=SteppedClock(at("09:30")),
                   wall_clock=ManualWallClock(WALL_START)).start()
    yield emu
    emu.stop()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("kis-emu") and t.is_alive()]
    assert not alive, f"leaked emulator threads: {alive}"


@pytest.fixture
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    assert not handler.records, [f"{r.name}: {r.getMessage()}" for r in handler.records[:5]]


@pytest.fixture(scope="module")
def auth(fuzz_emu: Emulator) -> dict[str, str]:
    c = fuzz_emu.credentials("real")
    return {"appkey": c.appkey, "appsecret": c.appsecret, "authorization": f"Bearer {Client(c).token()}"}


def raw_exchange(host: str, port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = _time.monotonic() + timeout
        while _time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def parse_reply(raw: bytes) -> tuple[int, dict[str, str], Any]:
    assert raw.startswith(b"HTTP/1."), f"no HTTP reply: {raw[:80]!r}"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    length = int(headers.get("Content-Length", len(body)))
    return status, headers, json.loads(body[:length].decode("utf-8"))


def check_kis_shaped(status: int, body: Any, path: str) -> None:
    """A KIS envelope (rt_cd/msg_cd/msg1), an OAuth body, or the hashkey echo — never an internal error."""
    assert isinstance(body, dict), body
    assert status in (200, 400, 403, 404, 500, 501, 505), status
    if "rt_cd" in body:
        assert body["msg_cd"] != "EMU99999", body
        assert isinstance(body["msg1"], str) and body["msg_cd"]
    elif path.startswith("/oauth2"):
        assert set(body) & {"error_code", "access_token", "approval_key", "code"}, body
    else:
        assert path.startswith("/uapi/hashkey") and "HASH" in body, body


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes, *,
                  content_length: str | None = "auto") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if content_length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    return head + body


def rest(emu: Emulator) -> tuple[str, int]:
    return "127.0.0.1", int(emu.rest_url("real").rsplit(":", 1)[1])


# ---- the cases, one by one ---------------------------------------------------------------

@pytest.mark.parametrize("length", ["abc", "1e20", "-1", "99999999999999999999", " ", "12abc"])
def test_bad_content_length_gets_a_400(fuzz_emu, errors, auth, length: str) -> None:
    raw = raw_exchange(*rest(fuzz_emu), request_bytes("POST", DOMESTIC + "/trading/order-cash",
                                                      {**auth, "tr_id": "TTTC0012U"}, b"{}", content_length=length))
    status, headers, body = parse_reply(raw)
    assert status == 400 and body["rt_cd"] == "1" and body["msg_cd"] == "EMU00400"
    assert "Content-Type" in headers


@pytest.mark.parametrize("line", [b"GET /\r\n", b"GET /uapi/domestic-stock/v1/quotations/inquire-price\r\n\r\n",
                                  b"POST /x\r\n", b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                                  b"GET / FTP/1.0\r\n\r\n"])
def test_http09_and_garbage_request_lines(fuzz_emu, errors, line: bytes) -> None:
    status, _, body = parse_reply(raw_exchange(*rest(fuzz_emu), line))
    assert status in (400, 505) and body["msg_cd"] == "EMU00400"


def test_deeply_nested_and_huge_number_bodies(fuzz_emu, errors, auth) -> None:
    for payload in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                    b'{"ORD_QTY": ' + b"9" * 5001 + b"}",
                    b'{"ORD_QTY": NaN}', b"\xff\xfe\x00"):
        raw = raw_exchange(*rest(fuzz_emu), request_bytes("POST", DOMESTIC + "/trading/order-cash",
                                                          {**auth, "tr_id": "TTTC0012U"}, payload))
        status, _, body = parse_reply(raw)
        assert (status, body["rt_cd"], body["msg_cd"]) == (200, "2", "OPSQ2001"), body
    raw = raw_exchange(*rest(fuzz_emu), request_bytes("POST", "/oauth2/tokenP", {}, b"[" * 50_000))
    status, _, body = parse_reply(raw)
    assert status == 403 and body["error_code"] == "EGW00002"


def test_full_width_and_overlong_quantities_are_refused(fuzz_emu, errors, auth) -> None:
    c = fuzz_emu.credentials("real")
    before = len(fuzz_emu.account_summary("real")["orders"])
    for qty in ("１", "٣", "9" * 5001, "1e3", " 1 ".strip() + "\u00a0"):
        body = {"CANO": c.cano, "ACNT_PRDT_CD": "01", "PDNO": "005930", "ORD_DVSN": "01", "ORD_QTY": qty,
                "ORD_UNPR": "0"}
        r = requests.post(c.rest_url + DOMESTIC + "/trading/order-cash", json=body,
                          headers={**auth, "tr_id": "TTTC0012U"}, timeout=10)
        assert r.status_code == 200 and r.json()["rt_cd"] != "0", (qty[:8], r.json())
    price = {"CANO": c.cano, "ACNT_PRDT_CD": "01", "PDNO": "005930", "ORD_DVSN": "00", "ORD_QTY": "1",
             "ORD_UNPR": "７００００"}
    r = requests.post(c.rest_url + DOMESTIC + "/trading/order-cash", json=price,
                      headers={**auth, "tr_id": "TTTC0012U"}, timeout=10)
    assert r.json()["rt_cd"] == "2"
    assert len(fuzz_emu.account_summary("real")["orders"]) == before            # nothing was booked


@pytest.mark.parametrize("path,params", [
    ("/quotations/inquire-daily-itemchartprice", {"FID_INPUT_ISCD": "005930", "FID_INPUT_DATE_1": "18000101",
                                                  "FID_INPUT_DATE_2": "99991231"}),
    ("/quotations/inquire-daily-itemchartprice", {"FID_INPUT_ISCD": "005930", "FID_INPUT_DATE_1": "20250230"}),
    ("/quotations/inquire-time-dailychartprice", {"FID_INPUT_ISCD": "005930", "FID_INPUT_DATE_1": "21000101"}),
    ("/quotations/inquire-time-dailychartprice", {"FID_INPUT_ISCD": "005930", "FID_INPUT_DATE_1": "19000101"}),
    ("/quotations/chk-holiday", {"BASS_DT": "20351225"}),
    ("/quotations/chk-holiday", {"BASS_DT": "00000000"}),
    ("/trading/inquire-daily-ccld", {"INQR_STRT_DT": "00010101", "INQR_END_DT": "99991231"}),
    ("/quotations/inquire-time-itemchartprice", {"FID_INPUT_ISCD": "005930", "FID_INPUT_HOUR_1": "9" * 5001}),
])
def test_out_of_calendar_dates_and_huge_query_values(fuzz_emu, errors, auth, path: str, params: dict) -> None:
    tr = {"inquire-daily-itemchartprice": "FHKST03010100", "inquire-time-dailychartprice": "FHKST03010230",
          "chk-holiday": "CTCA0903R", "inquire-daily-ccld": "TTTC0081R",
          "inquire-time-itemchartprice": "FHKST03010200"}[path.rsplit("/", 1)[1]]
    c = fuzz_emu.credentials("real")
    r = requests.get(c.rest_url + DOMESTIC + path, params={"FID_COND_MRKT_DIV_CODE": "J", "CANO": c.cano,
                                                           "ACNT_PRDT_CD": "01", **params},
                     headers={**auth, "tr_id": tr}, timeout=10)
    check_kis_shaped(r.status_code, r.json(), path)
    assert r.status_code == 200 and r.json()["rt_cd"] in ("0", "2")


def test_deeply_nested_websocket_frames_keep_the_session(fuzz_emu, errors) -> None:
    c = fuzz_emu.credentials("real")
    approval = Client(c).approval()

    async def go() -> None:
        async with websockets.connect(c.ws_url + "/tryitout", ping_interval=None, max_size=None) as ws:
            for frame in ("[" * 100_000, '{"header":' * 3000 + "1" + "}" * 3000, "not json", "[]",
                          '{"header": ' + "9" * 5001 + "}", b"\xff\xfe".decode("latin-1")):
                await ws.send(frame)
                answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert answer["body"]["msg_cd"] == "EMU00007", answer
            await ws.send(json.dumps({"header": {"approval_key": approval, "custtype": "P", "tr_type": "1",
                                                 "content-type": "utf-8"},
                                      "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack["body"]["msg_cd"] == "OPSP0000"                   # the same session still works

    asyncio.run(go())


def test_admin_needs_the_token_and_refuses_cross_site_requests(fuzz_emu, errors) -> None:
    base = fuzz_emu.admin_url
    before = len(fuzz_emu.account_summary("real")["orders"])
    order = {"code": "005930", "side": "buy", "qty": 1, "price": 0, "env": "real"}
    # the browser attack of issue 14: a cross-site "simple" text/plain POST that placed an order
    r = requests.post(base + "/admin/faults/hts_order", data=json.dumps(order),
                      headers={"Content-Type": "text/plain", "Origin": "http://evil.example"}, timeout=10)
    assert r.status_code == 403
    r = requests.post(base + "/admin/faults/hts_order", data=json.dumps(order), headers={"Content-Type": "text/plain"})
    assert r.status_code == 401                                             # no token
    token = {"X-Admin-Token": fuzz_emu.admin_token}
    r = requests.post(base + "/admin/faults/hts_order", data=json.dumps(order),
                      headers={**token, "Content-Type": "text/plain"})
    assert r.status_code == 415                                             # token, but not JSON: still refused
    r = requests.post(base + "/admin/faults/hts_order", json=order,
                      headers={**token, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    r = requests.post(base + "/admin/faults/hts_order?token=wrong", json=order)
    assert r.status_code == 401
    assert len(fuzz_emu.account_summary("real")["orders"]) == before        # nothing was placed
    assert requests.get(base + "/admin/status").status_code == 401
    assert requests.get(base + "/admin/clock").status_code == 200           # the exchange clock stays open
    assert requests.get(base + "/admin/status", headers=token).status_code == 200
    assert requests.post(base + "/admin/clock", data=b"[" * 50_000, headers={**token, "Content-Type":
                                                                              "application/json"}).status_code == 400
    raw = raw_exchange("127.0.0.1", int(base.rsplit(":", 1)[1]), b"GET /admin/status\r\n")
    assert parse_reply(raw)[0] == 400
    for bad in ({"advance_s": "nan"}, {"advance_s": 1e300}, {"advance_s": -5}, {"to": "9999-12-31T00:00:00"},
                {"to": "yesterday"}):
        assert requests.post(base + "/admin/clock", json=bad, headers=token).status_code == 400, bad
    for bad in ({"code": "005930", "side": "buy", "qty": "１"}, {"code": "005930", "side": "buy", "qty": True},
                {"code": "005930", "side": "buy", "qty": "9" * 5001}, {"code": "005930", "side": "sideways",
                                                                         "qty": 1}):
        assert requests.post(base + "/admin/faults/hts_order", json=bad, headers=token).status_code == 400, bad
    assert len(fuzz_emu.account_summary("real")["orders"]) == before


# ---- generated requests -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30) | st.floats()
    | st.sampled_from(NASTY) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4),
    max_leaves=12)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10).map(
        lambda d: json.dumps(d, allow_nan=True).encode()),
    st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(NASTY), max_size=12).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
    st.integers(1, 200).map(lambda n: b"[" * n * 100))
queries = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), st.sampled_from(NASTY) | st.text(max_size=12),
                          max_size=8)


@settings(max_examples=2500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "PATCH"]),
       route=st.sampled_from(MATCHED) | st.tuples(
           st.sampled_from(PATHS), st.sampled_from(TR_IDS) | st.text(
               alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=14)),
       authed=st.booleans() | st.just(True), query=queries, body=bodies,
       length=st.sampled_from(["auto", "auto", "auto", None, "abc", "1e20", "-5", "9" * 30]))
@example(method="POST", route=(DOMESTIC + "/trading/order-cash", "TTTC0012U"), authed=True, query={},
         body=json.dumps({"ORD_QTY": "１", "ORD_DVSN": "01", "PDNO": "005930"}).encode(), length="auto")
@example(method="GET", route=(DOMESTIC + "/quotations/inquire-daily-itemchartprice", "FHKST03010100"),
         authed=True, query={"FID_INPUT_DATE_1": "00000101", "FID_INPUT_ISCD": "005930"}, body=b"", length="auto")
@example(method="POST", route=(DOMESTIC + "/trading/order-cash", "TTTC0012U"), authed=True, query={},
         body=b'{"ORD_QTY": ' + b"9" * 5001 + b"}", length="1e20")
def test_generated_requests_always_get_a_kis_shaped_answer(fuzz_emu, errors, auth, method: str,
                                                           route: tuple[str, str], authed: bool,
                                                           query: dict[str, str], body: bytes,
                                                           length: str | None) -> None:
    from urllib.parse import urlencode

    path, tr_id = route
    headers = dict(auth) if authed else {}
    if tr_id:
        headers["tr_id"] = tr_id
    headers["Content-Type"] = "application/json"
    target = path + ("?" + urlencode(query) if query else "")
    if length is None and body:
        body = b""                                    # no Content-Length: the body would be read as a request
    raw = raw_exchange(*rest(fuzz_emu), request_bytes(method, target, headers, body, content_length=length))
    status, _, reply = parse_reply(raw)
    if status in (400, 501, 505):
        assert reply["msg_cd"] == "EMU00400"
        return
    check_kis_shaped(status, reply, path)
    if reply.get("rt_cd") == "0" and path.endswith("order-cash"):
        qty = json.loads(body.decode()).get("ORD_QTY") if body.startswith(b"{") else None
        assert isinstance(qty, str) and qty.isascii() and qty.isdigit(), qty   # accepted only on ASCII digits


ws_frames = st.one_of(st.text(max_size=300), st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
                      st.recursive(st.none() | st.integers() | st.text(max_size=10),
                                   lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                       st.sampled_from(["header", "body", "input", "tr_id", "tr_key", "tr_type",
                                                        "approval_key"]), inner, max_size=3),
                                   max_leaves=20).map(json.dumps))


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frames=st.lists(ws_frames, min_size=1, max_size=8))
def test_generated_websocket_frames_never_close_the_session(fuzz_emu, errors, frames: list[str]) -> None:
    c = fuzz_emu.credentials("paper")

    async def go() -> None:
        async with websockets.connect(c.ws_url + "/tryitout", ping_interval=None, max_size=None) as ws:
            for frame in frames:
                await ws.send(frame)
            await ws.send('{"header": {"tr_id": "PINGPONG"}}')           # a no-op the server reads in order
            await ws.send(json.dumps({"header": {"approval_key": "nope", "tr_type": "1"},
                                      "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}}))
            while True:                                                   # answers to the frames, then ours
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg["header"].get("tr_key") == "005930" and msg["body"]["msg_cd"] == "OPSP0011":
                    break
                assert msg["body"]["msg_cd"] in ("EMU00007", "OPSP0011", "OPSP0007", "OPSP0000", "OPSP0002",
                                                 "OPSP0003", "OPSP0001", "OPSP8996"), msg

    asyncio.run(go())

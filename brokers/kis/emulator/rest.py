"""The KIS REST surface: routing, header/auth checks and one handler per TR.

Independent of the HTTP server (``server.py`` turns sockets into ``RestRequest`` and writes the
``RestResponse`` back), so every rule here is plain Python. Conventions implemented (PROTOCOL §1):

* headers are case-insensitive; ``authorization: Bearer <token>``, ``appkey``, ``appsecret``,
  ``tr_id`` are checked on every ``/uapi`` call (``custtype`` and ``content-type`` are not required);
* POST bodies: JSON object with UPPERCASE keys and string values (``strict_string_values``);
  GET query names in any case; missing optional parameters are fine;
* business rejections are HTTP 200 with ``rt_cd != "0"``; gateway errors are HTTP 500 with the same
  JSON envelope; OAuth endpoints answer flat bodies (``error_code``/``error_description``, 403);
* paging TRs answer header ``tr_cont`` ``M`` (more) or ``D`` (last) and 100-character
  ``ctx_area_fk100``/``ctx_area_nk100``; the next call sends ``tr_cont: N`` and the keys back.
"""

from __future__ import annotations

import hashlib
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from brokers.kis import protocol as P
from brokers.kis.protocol import Api, Env
from brokers.kis.emulator.auth import App, AuthError, AuthRegistry, gateway_error
from brokers.kis.emulator.clock import Clock
from brokers.kis.emulator.frames import book, pct, price_sign
from brokers.kis.emulator.inputs import InputError, is_ascii_number, parse_json
from brokers.kis.emulator.matching import Engine, Order, OrderError
from brokers.kis.emulator.reference import ReferenceData, generate_reference
from brokers.kis.emulator.rest_info import InfoHandlers
from brokers.kis.protocol import BUY, SELL
from market.calendar import CALENDAR_END, CALENDAR_START, KST, krx_calendar
from market.ticks import tick_size


@dataclass
class RestRequest:
    env: Env
    method: str
    path: str
    query: dict[str, str]           # names upper-cased
    headers: Mapping[str, str]      # case-insensitive mapping
    body: bytes = b""

    def header(self, name: str) -> str | None:
        v = self.headers.get(name)
        return v if v is None else str(v)


@dataclass
class RestResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    app: App | None = None
    held: Any = None                # account whose notices were held during the call
    kind: str = ""                  # short label for logs
    msg_cd: str = ""


@dataclass
class EnvRestSettings:
    branch: str
    odno_padded: bool = True


@dataclass
class RestSettings:
    strict_string_values: bool = True
    pad_msg1: bool = False
    balance_by_stock: bool = False
    messages: Mapping[str, P.Message] = field(default_factory=P.business_messages)
    """reason → (msg_cd, msg1) per env: ``protocol.business_messages`` of the configured source."""
    envs: dict[Env, EnvRestSettings] = field(default_factory=lambda: {
        Env.REAL: EnvRestSettings("06010"), Env.PAPER: EnvRestSettings("00950")})


def _s(v: Any) -> str:
    return str(v)


def _f2(v: float) -> str:
    return f"{v:.2f}"


ORD_DVSN_NAMES = {code: o.name for code, o in P.ORD_DVSN.items()}
ASCII_SPACE = " \t\r\n"

class RestService(InfoHandlers):
    """Answers KIS REST calls for every environment the emulator serves."""

    def __init__(self, engine: Engine, auth: AuthRegistry, clock: Clock, gate: Any, faults: Any,
                 settings: RestSettings | None = None, reference: ReferenceData | None = None) -> None:
        self.engine = engine
        self.reference = reference or generate_reference(engine.store.daily, engine.store.markets,
                                                         engine.store.names)
        self.auth = auth
        self.clock = clock
        self.gate = gate
        self.faults = faults
        self.settings = settings or RestSettings()
        self._handlers: dict[Api, Callable[[RestRequest, App, Api], RestResponse]] = {
            Api.ORDER_CASH_BUY: self._order_cash, Api.ORDER_CASH_SELL: self._order_cash,
            Api.ORDER_RVSECNCL: self._order_rvsecncl,
            Api.INQUIRE_PSBL_RVSECNCL: self._inquire_psbl_rvsecncl,
            Api.INQUIRE_BALANCE: self._inquire_balance,
            Api.INQUIRE_DAILY_CCLD: self._inquire_daily_ccld, Api.INQUIRE_DAILY_CCLD_OLD: self._inquire_daily_ccld,
            Api.INQUIRE_PSBL_ORDER: self._inquire_psbl_order,
            Api.INQUIRE_PSBL_SELL: self._inquire_psbl_sell,
            Api.INQUIRE_PRICE: self._inquire_price,
            Api.INQUIRE_ASKING_PRICE: self._inquire_asking_price,
            Api.INQUIRE_CCNL: self._inquire_ccnl,
            Api.INQUIRE_DAILY_ITEMCHARTPRICE: self._daily_chart,
            Api.INQUIRE_TIME_ITEMCHARTPRICE: self._time_chart,
            Api.INQUIRE_TIME_DAILYCHARTPRICE: self._time_daily_chart,
            Api.CHK_HOLIDAY: self._chk_holiday,
            **self.info_handlers(),
        }

    # ---- envelope helpers --------------------------------------------------------------------

    def _msg(self, key: str, env: Env, **extra: Any) -> dict[str, Any]:
        body = self.settings.messages[key].envelope(env, **extra)
        if self.settings.pad_msg1:
            body["msg1"] = str(body["msg1"]).ljust(80)
        return body

    def _gt_uid(self) -> str:
        return uuid.uuid4().hex

    def _inquiry_headers(self, tr_id: str, tr_cont: str = "") -> dict[str, str]:
        """Lower-case ``tr_id``, ``tr_cont``, ``gt_uid`` as KIS writes them on every ``/uapi`` reply.

        Evidence: KIS's sample ``APIResp._setHeader`` builds a namedtuple of the reply's lower-case
        header names and its ``inquire_psbl_sell`` reads ``getHeader().tr_cont`` on every inquiry
        (AttributeError without it); ``content-type`` must therefore NOT be lower case (server.py
        writes ``Content-Type``). ``tr_cont`` is ``M`` (more) / ``D`` (last) on paged TRs, empty
        elsewhere."""
        return {"tr_id": tr_id, "tr_cont": tr_cont, "gt_uid": self._gt_uid()}

    def odno(self, env: Env, no: int) -> str:
        return P.zero_pad(no, 10) if self.settings.envs[env].odno_padded else str(no)

    # ---- entry point -------------------------------------------------------------------------

    def handle(self, req: RestRequest) -> RestResponse:
        path = req.path.rstrip("/") or "/"
        try:
            if path == P.PATH_TOKEN and req.method == "POST":
                st, body = self.auth.issue_token(req.env, self._json_body(req, oauth=True))
                return RestResponse(st, body, kind="tokenP", msg_cd=str(body.get("error_code", "")))
            if path == P.PATH_REVOKE and req.method == "POST":
                st, body = self.auth.revoke(req.env, self._json_body(req, oauth=True))
                return RestResponse(st, body, kind="revokeP", msg_cd=str(body.get("error_code", "")))
            if path == P.PATH_APPROVAL and req.method == "POST":
                st, body = self.auth.approval(req.env, self._json_body(req, oauth=True))
                return RestResponse(st, body, kind="Approval", msg_cd=str(body.get("error_code", "")))
            if path == P.PATH_HASHKEY and req.method == "POST":
                return self._hashkey(req)
            resp = self._uapi(req, path)
        except AuthError as exc:
            resp = RestResponse(exc.status, exc.body, kind="auth",
                                msg_cd=str(exc.body.get("msg_cd") or exc.body.get("error_code") or ""))
        if path.startswith("/uapi"):
            resp.headers = {**self._inquiry_headers(self._tr_id(req)), **resp.headers}
        return resp

    @staticmethod
    def _tr_id(req: RestRequest) -> str:
        """The request's TR id as echoed back (printable ASCII only, at most 13 characters)."""
        tr = (req.header("tr_id") or "").strip().upper()
        return tr if tr.isascii() and tr.isprintable() and len(tr) <= 13 else ""

    def _json_body(self, req: RestRequest, oauth: bool = False) -> dict[str, Any]:
        data = parse_json(req.body)
        if not isinstance(data, dict):
            if oauth:
                raise AuthError(403, P.oauth_error("EGW00002", "요청 본문(JSON)을 확인하세요."))
            raise InputError("BODY")
        return data

    def _hashkey(self, req: RestRequest) -> RestResponse:
        app = self.auth.check_hashkey(req.env, req.header("appkey"), req.header("appsecret"))
        if not self.auth.take_rate(app):
            raise gateway_error("rate_limited", req.env)
        echo = parse_json(req.body)
        if echo is None:
            echo = {}
        return RestResponse(200, {"BODY": echo, "HASH": hashlib.sha256(req.body).hexdigest()}, app=app,
                            kind="hashkey")

    def _uapi(self, req: RestRequest, path: str) -> RestResponse:
        specs = [s for s in P.specs_for_path(path) if s.method == req.method]
        if not specs:
            raise gateway_error("service_not_found", req.env)
        app = self.auth.check_rest(req.env, req.header("appkey"), req.header("appsecret"),
                                   req.header("authorization"))
        tr_id = (req.header("tr_id") or "").strip().upper()
        info = P.lookup_tr(tr_id)
        spec = next((s for s in specs if info is not None and s.api is info.api), None)
        if info is None or spec is None:
            raise gateway_error("service_not_found", req.env)
        if req.env is Env.PAPER and (info.env is Env.REAL or spec.paper_supported is False):
            raise gateway_error("not_paper_tr", req.env)
        if req.env is Env.REAL and info.env is Env.PAPER:
            raise gateway_error("service_not_found", req.env)
        if not self.auth.take_rate(app):
            raise gateway_error("rate_limited", req.env)
        handler = self._handlers.get(info.api)
        if handler is None:
            return RestResponse(200, self._msg("emulator_unsupported", req.env), app=app, kind=tr_id,
                                msg_cd="EMU00006")
        with self.engine.lock:
            self.engine.advance_to(self.clock.now())
            held = app.account
            self.gate.hold(held)
            try:
                resp = handler(req, app, info.api)
            except InputError as exc:
                body = P.input_invalid(exc.field)
                resp = RestResponse(200, body, msg_cd=body["msg_cd"])
            except OrderError as exc:
                if exc.key.startswith("input:"):
                    body = P.input_invalid(exc.key[6:])
                else:
                    body = self._msg(exc.key, req.env)
                resp = RestResponse(200, body, msg_cd=str(body["msg_cd"]))
            except BaseException:
                self.gate.release(held)
                raise
        resp.app = app
        resp.held = held
        resp.kind = resp.kind or tr_id
        if not resp.msg_cd and isinstance(resp.body, dict):
            resp.msg_cd = str(resp.body.get("msg_cd", ""))
        return resp

    # ---- input helpers -----------------------------------------------------------------------

    def _post_fields(self, req: RestRequest, required: tuple[str, ...], optional: tuple[str, ...] = ()
                     ) -> dict[str, str]:
        data = self._json_body(req)
        out: dict[str, str] = {}
        for name in required + optional:
            if name not in data:
                if name in required:
                    raise InputError(name)
                out[name] = ""
                continue
            v = data[name]
            if not isinstance(v, str):
                if self.settings.strict_string_values or not isinstance(v, (int, float)):
                    raise InputError(name)
                v = str(v)
            out[name] = v.strip(ASCII_SPACE)  # str.strip() would also eat NBSP & co: KIS sees them
        return out

    @staticmethod
    def _q(req: RestRequest, name: str, default: str = "") -> str:
        return req.query.get(name.upper(), default)

    def _check_account(self, app: App, cano: str, prdt: str) -> None:
        if cano != app.account.cano or prdt != app.account.prdt:
            raise InputError("ACNO")

    @staticmethod
    def _int(value: str, field_name: str) -> int:
        v = value.strip(ASCII_SPACE)
        if not is_ascii_number(v):
            raise InputError(field_name)
        return int(v)

    # ---- orders ------------------------------------------------------------------------------

    def _order_cash(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        f = self._post_fields(req, ("CANO", "ACNT_PRDT_CD", "PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR"),
                              ("EXCG_ID_DVSN_CD", "SLL_TYPE", "CNDT_PRIC"))
        self._check_account(app, f["CANO"], f["ACNT_PRDT_CD"])
        side = BUY if api is Api.ORDER_CASH_BUY else SELL
        qty_txt = f["ORD_QTY"]
        if not is_ascii_number(qty_txt):
            raise OrderError("bad_quantity")
        price = self._int(f["ORD_UNPR"] or "0", "ORD_UNPR")
        reject = self.faults.take_counter("reject_orders")
        order, events = self.engine.place_order(app.account, f["PDNO"], side, f["ORD_DVSN"], int(qty_txt), price,
                                                exchange=f["EXCG_ID_DVSN_CD"] or "KRX", reject=reject)
        self.engine.emit(events)
        key = "order_buy_ok" if side == BUY else "order_sell_ok"
        return RestResponse(200, self._msg(key, req.env, output=self._order_output(order)))

    def _order_output(self, order: Order) -> dict[str, str]:
        return {"KRX_FWDG_ORD_ORGNO": order.account.branch, "ODNO": self.odno(order.env, order.no),
                "ORD_TMD": order.placed_at.astimezone(KST).strftime("%H%M%S")}

    def _order_rvsecncl(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        f = self._post_fields(req, ("CANO", "ACNT_PRDT_CD", "KRX_FWDG_ORD_ORGNO", "ORGN_ODNO", "ORD_DVSN",
                                    "RVSE_CNCL_DVSN_CD", "ORD_QTY", "ORD_UNPR", "QTY_ALL_ORD_YN"),
                              ("EXCG_ID_DVSN_CD", "CNDT_PRIC"))
        self._check_account(app, f["CANO"], f["ACNT_PRDT_CD"])
        kind = f["RVSE_CNCL_DVSN_CD"]
        if kind not in (P.RVSE, P.CNCL):
            raise InputError("RVSE_CNCL_DVSN_CD")
        if f["QTY_ALL_ORD_YN"] not in ("Y", "N"):
            raise InputError("QTY_ALL_ORD_YN")
        orig = self._int(f["ORGN_ODNO"], "ORGN_ODNO")
        if not is_ascii_number(f["ORD_QTY"]):
            raise OrderError("bad_quantity")
        price = self._int(f["ORD_UNPR"] or "0", "ORD_UNPR")
        row, events = self.engine.revise_cancel(app.account, orig, kind == P.CNCL, f["ORD_DVSN"] or "00",
                                                int(f["ORD_QTY"]), price, f["QTY_ALL_ORD_YN"] == "Y",
                                                exchange=f["EXCG_ID_DVSN_CD"] or "KRX")
        self.engine.emit(events)
        key = "cancel_ok" if kind == P.CNCL else "revise_ok"
        return RestResponse(200, self._msg(key, req.env, output=self._order_output(row)))

    # ---- paging ------------------------------------------------------------------------------

    def _page(self, req: RestRequest, rows: list[Any], size: int, fk_core: str
              ) -> tuple[list[Any], str, str, str, str]:
        """(page rows, tr_cont header, fk100, nk100, message key) for a tr_cont-paged TR."""
        offset = 0
        if (req.header("tr_cont") or "").strip().upper() == P.TR_CONT_NEXT_REQUEST:
            nk = self._q(req, "CTX_AREA_NK100").strip()
            try:
                offset = int(nk.split("^")[1]) if "^" in nk else 0
            except (ValueError, IndexError):
                offset = 0
        page = rows[offset:offset + size]
        more = offset + size < len(rows)
        fk = fk_core.ljust(P.CTX_AREA_LENGTH)
        nk = (f"{fk_core.split('^')[0]}^{offset + size}^".ljust(P.CTX_AREA_LENGTH) if more
              else " " * P.CTX_AREA_LENGTH)
        if more:
            msg = "inquiry_more"
        elif offset > 0:
            msg = "inquiry_last"
        else:
            msg = "inquiry_done"
        return page, "M" if more else "D", fk, nk, msg

    # ---- balance -----------------------------------------------------------------------------

    def _inquire_balance(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        acct = app.account
        self._check_account(app, self._q(req, "CANO"), self._q(req, "ACNT_PRDT_CD"))
        # INQR_DVSN 02 (종목별) is refused since KIS's notice of 2026-02-10 (python-kis #81/#82, PROTOCOL §3.6);
        # ``rest.balance_by_stock`` restores the earlier gateway, where 02 answered like 01 here.
        allowed = ("01", "02") if self.settings.balance_by_stock else ("01",)
        if self._q(req, "INQR_DVSN", "01") not in allowed:
            raise InputError("INQR_DVSN")
        eng = self.engine
        rows = []
        today = eng.now.date()
        pchs_sum = evlu_sum = 0
        for code in sorted(acct.positions):
            pos = acct.positions[code]
            q = eng.quote(code) if eng.store.knows(code) else None
            prpr = q.last if q else (int(pos.avg_price) or 0)
            base = q.base if q else prpr
            evlu = pos.qty * prpr
            pfls = evlu - pos.cost
            pchs_sum += pos.cost
            evlu_sum += evlu
            rows.append({
                "pdno": code, "prdt_name": eng.store.names.get(code, code), "trad_dvsn_name": "현금",
                "bfdy_buy_qty": _s(pos.bfdy_buy_qty), "bfdy_sll_qty": _s(pos.bfdy_sll_qty),
                "thdt_buyqty": _s(pos.thdt_buy_qty), "thdt_sll_qty": _s(pos.thdt_sll_qty),
                "hldg_qty": _s(pos.qty), "ord_psbl_qty": _s(max(eng.sellable_qty(acct, code), 0)),
                "pchs_avg_pric": f"{pos.avg_price:.4f}", "pchs_amt": _s(pos.cost), "prpr": _s(prpr),
                "evlu_amt": _s(evlu), "evlu_pfls_amt": _s(pfls),
                "evlu_pfls_rt": _f2(pfls / pos.cost * 100 if pos.cost else 0.0), "evlu_erng_rt": "0.00000000",
                "loan_dt": "", "loan_amt": "0", "stln_slng_chgs": "0", "expd_dt": "",
                "fltt_rt": pct(prpr - base, base) if base else "0.00", "bfdy_cprs_icdc": _s(prpr - base),
                "item_mgna_rt_name": "", "grta_rt_name": "", "sbst_pric": "0", "stck_loan_unpr": "0.0000",
            })
        cal = krx_calendar()
        d0 = today if cal.is_trading_day(today) else cal.previous_trading_day(today)
        d1 = cal.next_trading_day(d0)
        dnca = acct.cash_due_by(d0)
        nxdy = acct.cash_due_by(d1)
        d2 = acct.cash_all()
        total = evlu_sum + d2
        bfdy_total = acct.bfdy_total if acct.bfdy_total is not None else total
        summary = {
            "dnca_tot_amt": _s(dnca), "nxdy_excc_amt": _s(nxdy), "prvs_rcdl_excc_amt": _s(d2), "cma_evlu_amt": "0",
            "bfdy_buy_amt": _s(acct.bfdy_buy_amt), "thdt_buy_amt": _s(acct.thdt_buy_amt), "nxdy_auto_rdpt_amt": "0",
            "bfdy_sll_amt": _s(acct.bfdy_sll_amt), "thdt_sll_amt": _s(acct.thdt_sll_amt), "d2_auto_rdpt_amt": "0",
            "bfdy_tlex_amt": _s(acct.bfdy_tlex_amt), "thdt_tlex_amt": _s(acct.thdt_tlex_amt), "tot_loan_amt": "0",
            "scts_evlu_amt": _s(evlu_sum), "tot_evlu_amt": _s(total), "nass_amt": _s(total),
            "fncg_gld_auto_rdpt_yn": "", "pchs_amt_smtl_amt": _s(pchs_sum), "evlu_amt_smtl_amt": _s(evlu_sum),
            "evlu_pfls_smtl_amt": _s(evlu_sum - pchs_sum), "tot_stln_slng_chgs": "0",
            "bfdy_tot_asst_evlu_amt": _s(bfdy_total), "asst_icdc_amt": _s(total - bfdy_total),
            "asst_icdc_erng_rt": "0.00000000",
        }
        size = P.PAGE_SIZE[Api.INQUIRE_BALANCE][req.env]
        fk_core = f"{acct.cano}^{acct.prdt}^N^N^01^01^N^"
        page, cont, fk, nk, msg = self._page(req, rows, size, fk_core)
        body = self._msg(msg, req.env, ctx_area_fk100=fk, ctx_area_nk100=nk, output1=page, output2=[summary])
        return RestResponse(200, body, self._inquiry_headers(self._tr_id(req), cont))

    # ---- daily orders ------------------------------------------------------------------------

    def _date(self, value: str, field_name: str, default: date, *, clamp: bool = False) -> date:
        """``YYYYMMDD`` → date; ``InputError`` for anything else. KRX dates live in the calendar's range:
        with ``clamp`` (chart windows) a date outside it is moved to its edge — ``00000101`` is how
        python-kis asks for "from the beginning" — otherwise it is an input error."""
        v = value.strip()
        if not v:
            return default
        if len(v) != 8 or not is_ascii_number(v):
            raise InputError(field_name)
        if clamp and v[:4] == "0000":
            return CALENDAR_START
        try:
            d = date(int(v[:4]), int(v[4:6]), int(v[6:]))
        except ValueError:
            raise InputError(field_name) from None
        if not CALENDAR_START <= d <= CALENDAR_END:
            if not clamp:
                raise InputError(field_name)
            d = min(max(d, CALENDAR_START), CALENDAR_END)
        return d

    def _order_row(self, o: Order) -> dict[str, str]:
        side_name = {"new": "현금매수" if o.is_buy else "현금매도",
                     "revise": "매수정정" if o.is_buy else "매도정정",
                     "cancel": "매수취소" if o.is_buy else "매도취소"}[o.kind]
        if o.rejected_qty:
            side_name = "매수거부" if o.is_buy else "매도거부"
        tmd = o.placed_at.astimezone(KST).strftime("%H%M%S")
        cond = {"1": "IOC", "2": "FOK"}.get(o.condition, "없음")
        return {
            "ord_dt": o.trade_date.strftime("%Y%m%d"), "ord_gno_brno": o.account.branch,
            "odno": self.odno(o.env, o.no), "orgn_odno": self.odno(o.env, o.orig_no) if o.orig_no else "",
            "ord_dvsn_name": ORD_DVSN_NAMES.get(o.ord_dvsn, ""), "sll_buy_dvsn_cd": o.side,
            "sll_buy_dvsn_cd_name": side_name, "pdno": o.code, "prdt_name": o.name, "ord_qty": _s(o.qty),
            "ord_unpr": _s(o.price), "ord_tmd": tmd, "tot_ccld_qty": _s(o.filled_qty), "avg_prvs": _s(o.avg_price),
            "cncl_yn": "Y" if o.kind == "cancel" else "N", "tot_ccld_amt": _s(o.filled_value), "loan_dt": "",
            "ordr_empno": "OpenAPI" if o.source == "api" else "", "ord_dvsn_cd": o.ord_dvsn,
            "cncl_cfrm_qty": _s(o.cancelled_qty), "rmn_qty": _s(o.unfilled_qty), "rjct_qty": _s(o.rejected_qty),
            "ccld_cndt_name": cond, "inqr_ip_addr": "", "cpbc_ordp_ord_rcit_dvsn_cd": "",
            "cpbc_ordp_infm_mthd_dvsn_cd": "", "infm_tmd": tmd, "ctac_tlno": "", "prdt_type_cd": "300",
            "excg_dvsn_cd": "01", "cpbc_ordp_mtrl_dvsn_cd": "", "ord_orgno": o.account.branch,
            "rsvn_ord_end_dt": "", "excg_id_dvsn_Cd": o.exchange, "stpm_cndt_pric": "0",
            "stpm_efct_occr_dtmd": "",
        }

    def _inquire_daily_ccld(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        acct = app.account
        self._check_account(app, self._q(req, "CANO"), self._q(req, "ACNT_PRDT_CD"))
        today = self.engine.now.date()
        start = self._date(self._q(req, "INQR_STRT_DT"), "INQR_STRT_DT", today)
        end = self._date(self._q(req, "INQR_END_DT"), "INQR_END_DT", today)
        side = self._q(req, "SLL_BUY_DVSN_CD", "00") or "00"
        if side not in ("00", "01", "02"):
            raise InputError("SLL_BUY_DVSN_CD")
        ccld = self._q(req, "CCLD_DVSN", "00") or "00"
        if ccld not in ("00", "01", "02"):
            raise InputError("CCLD_DVSN")
        pdno = self._q(req, "PDNO").strip()
        odno = self._q(req, "ODNO").strip()
        orders = self.engine.orders_between(acct, start, end)
        out: list[Order] = []
        for o in orders:
            if side != "00" and o.side != side:
                continue
            if pdno and o.code != pdno:
                continue
            if odno and not P.same_order_number(odno, o.no):
                continue
            if ccld == "01" and o.filled_qty == 0:
                continue
            if ccld == "02" and o.unfilled_qty == 0:
                continue
            out.append(o)
        if self._q(req, "INQR_DVSN", "00") != "01":
            out.reverse()  # 00: newest first
        rows = [self._order_row(o) for o in out]
        real_orders = [o for o in out if o.kind != "cancel"]
        tot_qty = sum(o.filled_qty for o in real_orders)
        tot_amt = sum(o.filled_value for o in real_orders)
        summary = {"tot_ord_qty": _s(sum(o.qty for o in real_orders)), "tot_ccld_qty": _s(tot_qty),
                   "tot_ccld_amt": _s(tot_amt), "prsm_tlex_smtl": _s(sum(o.fees for o in real_orders)),
                   "pchs_avg_pric": f"{tot_amt / tot_qty if tot_qty else 0:.4f}"}
        size = P.PAGE_SIZE[api][req.env]
        fk_core = f"{acct.cano}^{acct.prdt}^{start:%Y%m%d}^{end:%Y%m%d}^{side}^{ccld}^"
        page, cont, fk, nk, msg = self._page(req, rows, size, fk_core)
        body = self._msg(msg, req.env, ctx_area_fk100=fk, ctx_area_nk100=nk, output1=page, output2=summary)
        return RestResponse(200, body, self._inquiry_headers(self._tr_id(req), cont))

    def _inquire_psbl_rvsecncl(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        acct = app.account
        self._check_account(app, self._q(req, "CANO"), self._q(req, "ACNT_PRDT_CD"))
        side = self._q(req, "INQR_DVSN_2", "0") or "0"
        rows = []
        orders = sorted(acct.working_orders(), key=lambda o: o.no)
        if self._q(req, "INQR_DVSN_1", "0") == "1":
            orders.sort(key=lambda o: (o.code, o.no))
        for o in orders:
            if (side == "1" and o.is_buy) or (side == "2" and not o.is_buy):
                continue
            rows.append({
                "ord_gno_brno": acct.branch, "odno": self.odno(o.env, o.no),
                "orgn_odno": self.odno(o.env, o.orig_no) if o.orig_no else "",
                "ord_dvsn_name": ORD_DVSN_NAMES.get(o.ord_dvsn, ""), "pdno": o.code, "prdt_name": o.name,
                "rvse_cncl_dvsn_name": "정정" if o.kind == "revise" else "", "ord_qty": _s(o.qty),
                "ord_unpr": _s(o.price), "ord_tmd": o.placed_at.astimezone(KST).strftime("%H%M%S"),
                "tot_ccld_qty": _s(o.filled_qty), "tot_ccld_amt": _s(o.filled_value), "psbl_qty": _s(o.open_qty),
                "sll_buy_dvsn_cd": o.side, "ord_dvsn_cd": o.ord_dvsn, "mgco_aptm_odno": "", "excg_dvsn_cd": "01",
                "excg_id_dvsn_cd": o.exchange, "excg_id_dvsn_name": "한국거래소", "stpm_cndt_pric": "0",
                "stpm_efct_occr_yn": "N",
            })
        size = P.PAGE_SIZE[Api.INQUIRE_PSBL_RVSECNCL][req.env]
        page, cont, fk, nk, msg = self._page(req, rows, size, f"{acct.cano}^{acct.prdt}^{side}^")
        body = self._msg(msg, req.env, ctx_area_fk100=fk, ctx_area_nk100=nk, output=page)
        return RestResponse(200, body, self._inquiry_headers(self._tr_id(req), cont))

    def _inquire_psbl_order(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        acct = app.account
        self._check_account(app, self._q(req, "CANO"), self._q(req, "ACNT_PRDT_CD"))
        eng = self.engine
        code = self._q(req, "PDNO").strip()
        dvsn = self._q(req, "ORD_DVSN", "00") or "00"
        price_txt = self._q(req, "ORD_UNPR").strip() or "0"
        if not is_ascii_number(price_txt):
            raise InputError("ORD_UNPR")
        px = int(price_txt)
        if code:
            if not eng.store.knows(code):
                raise OrderError("stock_not_found")
            q = eng.quote(code)
            if px == 0 or (dvsn in P.ORD_DVSN and P.ORD_DVSN[dvsn].market_price):
                px = q.band.upper  # market-type buys reserve at the upper limit (§3.2)
        bp = max(eng.buying_power(acct), 0)
        amt, qty = eng.max_buy_qty(acct, px) if code else (bp, 0)
        out = {"ord_psbl_cash": _s(bp), "ord_psbl_sbst": "0", "ruse_psbl_amt": _s(acct.reusable_proceeds()),
               "fund_rpch_chgs": "0", "psbl_qty_calc_unpr": _s(px), "nrcvb_buy_amt": _s(amt),
               "nrcvb_buy_qty": _s(qty), "max_buy_amt": _s(amt), "max_buy_qty": _s(qty), "cma_evlu_amt": "0",
               "ovrs_re_use_amt_wcrc": "0", "ord_psbl_frcr_amt_wcrc": "0"}
        return RestResponse(200, self._msg("inquiry_done", req.env, output=out),
                            self._inquiry_headers(self._tr_id(req)))

    def _inquire_psbl_sell(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        acct = app.account
        self._check_account(app, self._q(req, "CANO"), self._q(req, "ACNT_PRDT_CD"))
        code = self._q(req, "PDNO").strip()
        pos = acct.positions.get(code)
        qty = pos.qty if pos else 0
        cost = pos.cost if pos else 0
        now = self.engine.quote(code).last if self.engine.store.knows(code) else 0
        evlu = qty * now
        out = {"pdno": code, "prdt_name": self.engine.store.names.get(code, code),
               "buy_qty": _s(pos.thdt_buy_qty if pos else 0), "sll_qty": _s(pos.thdt_sll_qty if pos else 0),
               "cblc_qty": _s(qty), "nsvg_qty": "0", "ord_psbl_qty": _s(max(self.engine.sellable_qty(acct, code), 0)),
               "pchs_avg_pric": f"{pos.avg_price if pos else 0:.4f}", "pchs_amt": _s(cost), "now_pric": _s(now),
               "evlu_amt": _s(evlu), "evlu_pfls_amt": _s(evlu - cost),
               "evlu_pfls_rt": _f2((evlu - cost) / cost * 100 if cost else 0.0)}
        return RestResponse(200, self._msg("inquiry_done", req.env, output=out),
                            self._inquiry_headers(self._tr_id(req)))

    # ---- quotations --------------------------------------------------------------------------

    def _code(self, req: RestRequest) -> str:
        return self._q(req, "FID_INPUT_ISCD").strip()

    def _quote_ok(self, req: RestRequest, **outputs: Any) -> RestResponse:
        return RestResponse(200, self._msg("quote_ok", req.env, **outputs),
                            self._inquiry_headers(self._tr_id(req)))

    def _inquire_price(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        code = self._code(req)
        eng = self.engine
        if not eng.store.knows(code):
            return self._quote_ok(req, output=_price_output(code, None, eng))
        q = eng.quote(code)
        out = _price_output(code, q, eng)
        if q.listed:
            out.update(self.valuation(code, q.last))
            out["vi_cls_code"] = self.vi_code(code)
            out["vol_tnrt"] = pct(q.volume, int(out.get("lstn_stcn") or 0)) if out.get("lstn_stcn") else "0.00"
        return self._quote_ok(req, output=out)

    def _inquire_asking_price(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        code = self._code(req)
        eng = self.engine
        o1: dict[str, str] = {"aspr_acpt_hour": eng.now.strftime("%H%M%S")}
        o2: dict[str, str] = {}
        if eng.store.knows(code):
            q = eng.quote(code)
            tape = eng.store.tape(code, q.day)
            n = tape.index_at(eng.now) if q.day == eng.now.date() else len(tape)
            if n:
                asks, bids, aq, bq = book(tape, n - 1)
            else:
                asks, bids = tuple([0] * 10), tuple([0] * 10)
                aq, bq = [0] * 10, [0] * 10
            for k in range(10):
                o1[f"askp{k + 1}"] = _s(asks[k])
            for k in range(10):
                o1[f"bidp{k + 1}"] = _s(bids[k])
            for k in range(10):
                o1[f"askp_rsqn{k + 1}"] = _s(aq[k])
            for k in range(10):
                o1[f"bidp_rsqn{k + 1}"] = _s(bq[k])
            for k in range(10):
                o1[f"askp_rsqn_icdc{k + 1}"] = "0"
            for k in range(10):
                o1[f"bidp_rsqn_icdc{k + 1}"] = "0"
            o1.update({"total_askp_rsqn": _s(sum(aq)), "total_bidp_rsqn": _s(sum(bq)),
                       "total_askp_rsqn_icdc": "0", "total_bidp_rsqn_icdc": "0", "ovtm_total_askp_icdc": "0",
                       "ovtm_total_bidp_icdc": "0", "ovtm_total_askp_rsqn": "0", "ovtm_total_bidp_rsqn": "0",
                       "ntby_aspr_rsqn": _s(sum(bq) - sum(aq)), "new_mkop_cls_code": "20"})
            o2 = {"antc_mkop_cls_code": "112", "stck_prpr": _s(q.last), "stck_oprc": _s(q.open),
                  "stck_hgpr": _s(q.high), "stck_lwpr": _s(q.low), "stck_sdpr": _s(q.base), "antc_cnpr": "0",
                  "antc_cntg_vrss_sign": P.PRICE_SIGN_FLAT, "antc_cntg_vrss": "0", "antc_cntg_prdy_ctrt": "0.00",
                  "antc_vol": "0", "stck_shrn_iscd": code, "vi_cls_code": "N"}
        return self._quote_ok(req, output1=o1, output2=o2)

    def _inquire_ccnl(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        code = self._code(req)
        eng = self.engine
        rows = []
        if eng.store.knows(code):
            q = eng.quote(code)
            tape = eng.store.tape(code, q.day)
            n = tape.index_at(eng.now) if q.day == eng.now.date() else len(tape)
            for i in range(n - 1, max(n - 31, -1), -1):
                p = int(tape.prices[i])
                bv, sv = int(tape.cum_buy_vol[i]), int(tape.cum_sell_vol[i])
                rows.append({"stck_cntg_hour": tape.time_of(i).strftime("%H%M%S"), "stck_prpr": _s(p),
                             "prdy_vrss": _s(p - tape.base),
                             "prdy_vrss_sign": price_sign(p, tape.base, tape.band.lower, tape.band.upper),
                             "cntg_vol": _s(int(tape.volumes[i])), "tday_rltv": pct(bv, sv) if sv else "0.00",
                             "prdy_ctrt": pct(p - tape.base, tape.base)})
        return self._quote_ok(req, output=rows)

    def _daily_chart(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        code = self._code(req)
        eng = self.engine
        today = eng.now.date()
        d1 = self._date(self._q(req, "FID_INPUT_DATE_1"), "FID_INPUT_DATE_1", CALENDAR_START, clamp=True)
        d2 = min(self._date(self._q(req, "FID_INPUT_DATE_2"), "FID_INPUT_DATE_2", today, clamp=True), today)
        period = (self._q(req, "FID_PERIOD_DIV_CODE", "D") or "D").upper()
        if period not in ("D", "W", "M", "Y"):
            raise InputError("FID_PERIOD_DIV_CODE")
        if not eng.store.knows(code):
            return self._quote_ok(req, output1=_chart_summary(code, None, eng), output2=[])
        q = eng.quote(code)
        bars = _daily_bars_until_now(eng, code)
        if period != "D":
            bars = _resample(bars, period)
        bars = bars[(bars.index.date >= d1) & (bars.index.date <= d2)]
        rows = []
        dates = list(bars.index)
        prev_close_all = _prev_closes(eng, code, bars)
        for k in range(len(bars) - 1, max(len(bars) - 1 - P.DAILY_CHART_MAX_ROWS, -1), -1):
            o, h, l, c, v = (int(bars.iloc[k][x]) for x in ("open", "high", "low", "close", "volume"))
            prev = prev_close_all[k]
            rows.append({"stck_bsop_date": dates[k].strftime("%Y%m%d"), "stck_clpr": _s(c), "stck_oprc": _s(o),
                         "stck_hgpr": _s(h), "stck_lwpr": _s(l), "acml_vol": _s(v),
                         "acml_tr_pbmn": _s(int(bars.iloc[k].get("value", v * (o + h + l + c) // 4))),
                         "flng_cls_code": "00", "prtt_rate": "0.00", "mod_yn": "N",
                         "prdy_vrss_sign": price_sign(c, prev, 0, 0) if prev else P.PRICE_SIGN_FLAT,
                         "prdy_vrss": _s(c - prev if prev else 0), "revl_issu_reas": ""})
        return self._quote_ok(req, output1=_chart_summary(code, q, eng), output2=rows)

    def _minute_rows(self, code: str, d: date, cutoff: datetime, limit: int) -> list[dict[str, str]]:
        eng = self.engine
        tape = eng.store.tape(code, d)
        n = tape.index_at(cutoff)
        if n == 0:
            return []
        minutes = (tape.times[:n] // 60).astype("int64")
        rows: list[dict[str, str]] = []
        end = n
        while end > 0 and len(rows) < limit:
            m = minutes[end - 1]
            start = end
            while start > 0 and minutes[start - 1] == m:
                start -= 1
            seg = tape.prices[start:end]
            bar_time = datetime.fromtimestamp(int(m) * 60, KST)
            rows.append({"stck_bsop_date": d.strftime("%Y%m%d"), "stck_cntg_hour": bar_time.strftime("%H%M%S"),
                         "stck_prpr": _s(int(seg[-1])), "stck_oprc": _s(int(seg[0])), "stck_hgpr": _s(int(seg.max())),
                         "stck_lwpr": _s(int(seg.min())), "cntg_vol": _s(int(tape.volumes[start:end].sum())),
                         "acml_tr_pbmn": _s(int(tape.cum_value[end - 1]))})
            end = start
        return rows

    def _hour(self, req: RestRequest, d: date) -> datetime:
        """``FID_INPUT_HOUR_1`` as a moment of day ``d``; empty or ``000000`` means "latest" (python-kis's
        first intraday call sends ``000000`` and pages back from there, so real KIS must answer it
        with the newest rows)."""
        h = self._q(req, "FID_INPUT_HOUR_1").strip()
        if h in ("", P.HOUR_INPUT_LATEST):
            h = "235959"
        if len(h) > 6 or not is_ascii_number(h):
            raise InputError("FID_INPUT_HOUR_1")
        h = h.zfill(6)
        try:
            t = dtime(int(h[:2]), int(h[2:4]), int(h[4:]))
        except ValueError:
            raise InputError("FID_INPUT_HOUR_1") from None
        return datetime.combine(d, t, KST)

    def _time_chart(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        code = self._code(req)
        eng = self.engine
        if not eng.store.knows(code):
            return self._quote_ok(req, output1=_time_summary(code, None, eng), output2=[])
        q = eng.quote(code)
        cutoff = self._hour(req, q.day)
        if q.day == eng.now.date():
            cutoff = min(cutoff, eng.now)  # a future time is treated as now (§3.11)
        rows = self._minute_rows(code, q.day, cutoff, P.TIME_CHART_MAX_ROWS)
        return self._quote_ok(req, output1=_time_summary(code, q, eng), output2=rows)

    def _time_daily_chart(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        code = self._code(req)
        eng = self.engine
        d = self._date(self._q(req, "FID_INPUT_DATE_1"), "FID_INPUT_DATE_1", eng.now.date())
        if not eng.store.knows(code) or not krx_calendar().is_trading_day(d) or d > eng.now.date():
            return self._quote_ok(req, output1=_time_summary(code, None, eng), output2=[])
        cutoff = self._hour(req, d)
        if d == eng.now.date():
            cutoff = min(cutoff, eng.now)
        rows = self._minute_rows(code, d, cutoff, 120)
        return self._quote_ok(req, output1=_time_summary(code, eng.quote(code), eng), output2=rows)

    def _chk_holiday(self, req: RestRequest, app: App, api: Api) -> RestResponse:
        d0 = self._date(self._q(req, "BASS_DT"), "BASS_DT", self.engine.now.date())
        cal = krx_calendar()
        rows = []
        for k in range(20):
            d = d0 + timedelta(days=k)
            if d > CALENDAR_END:
                break
            trading = cal.is_trading_day(d)
            rows.append({"bass_dt": d.strftime("%Y%m%d"), "wday_dvsn_cd": f"{(d.isoweekday() % 7) + 1:02d}",
                         "bzdy_yn": "Y" if d.weekday() < 5 else "N", "tr_day_yn": "Y" if trading else "N",
                         "opnd_yn": "Y" if trading else "N", "sttl_day_yn": "Y" if trading else "N"})
        body = self._msg("inquiry_done", req.env, ctx_area_fk="".ljust(20), ctx_area_nk="".ljust(20), output=rows)
        return RestResponse(200, body, self._inquiry_headers(self._tr_id(req), "D"))


# ---- quotation payload builders (module level: pure functions of the engine state) ----------

PRICE_FIELDS = (
    "iscd_stat_cls_code", "marg_rate", "rprs_mrkt_kor_name", "new_hgpr_lwpr_cls_code", "bstp_kor_isnm",
    "temp_stop_yn", "oprc_rang_cont_yn", "clpr_rang_cont_yn", "crdt_able_yn", "grmn_rate_cls_code",
    "elw_pblc_yn", "stck_prpr", "prdy_vrss", "prdy_vrss_sign", "prdy_ctrt", "acml_tr_pbmn", "acml_vol",
    "prdy_vrss_vol_rate", "stck_oprc", "stck_hgpr", "stck_lwpr", "stck_mxpr", "stck_llam", "stck_sdpr",
    "wghn_avrg_stck_prc", "hts_frgn_ehrt", "frgn_ntby_qty", "pgtr_ntby_qty", "pvt_scnd_dmrs_prc",
    "pvt_frst_dmrs_prc", "pvt_pont_val", "pvt_frst_dmsp_prc", "pvt_scnd_dmsp_prc", "dmrs_val", "dmsp_val",
    "cpfn", "rstc_wdth_prc", "stck_fcam", "stck_sspr", "aspr_unit", "hts_deal_qty_unit_val", "lstn_stcn",
    "hts_avls", "per", "pbr", "stac_month", "vol_tnrt", "eps", "bps", "d250_hgpr", "d250_hgpr_date",
    "d250_hgpr_vrss_prpr_rate", "d250_lwpr", "d250_lwpr_date", "d250_lwpr_vrss_prpr_rate", "stck_dryy_hgpr",
    "dryy_hgpr_vrss_prpr_rate", "dryy_hgpr_date", "stck_dryy_lwpr", "dryy_lwpr_vrss_prpr_rate", "dryy_lwpr_date",
    "w52_hgpr", "w52_hgpr_vrss_prpr_ctrt", "w52_hgpr_date", "w52_lwpr", "w52_lwpr_vrss_prpr_ctrt",
    "w52_lwpr_date", "whol_loan_rmnd_rate", "ssts_yn", "stck_shrn_iscd", "fcam_cnnm", "cpfn_cnnm",
    "apprch_rate", "frgn_hldn_qty", "vi_cls_code", "ovtm_vi_cls_code", "last_ssts_cntg_qty", "invt_caful_yn",
    "mrkt_warn_cls_code", "short_over_yn", "sltr_yn", "mang_issu_cls_code",
)
"""``inquire-price`` output fields, in the order of the KIS catalogue (spec CSV column_mapping)."""

MARKET_NAMES = {"KOSPI": "KOSPI", "KOSDAQ": "KOSDAQ", "KONEX": "KONEX", "ETF": "KOSPI"}


def _price_output(code: str, q: Any, eng: Engine) -> dict[str, str]:
    out = {f: "0" for f in PRICE_FIELDS}
    for f in ("new_hgpr_lwpr_cls_code", "bstp_kor_isnm", "d250_hgpr_date", "d250_lwpr_date", "dryy_hgpr_date",
              "dryy_lwpr_date", "w52_hgpr_date", "w52_lwpr_date", "fcam_cnnm", "cpfn_cnnm", "stac_month"):
        out[f] = ""
    out["stck_shrn_iscd"] = code
    if q is None or not q.listed:
        return out
    market = eng.store.markets.get(code)
    hist = eng.store.daily_until(code, q.day)
    out.update(_extremes(eng.store, code, hist, q))
    out.update({
        "iscd_stat_cls_code": "55", "marg_rate": "20.00",
        "rprs_mrkt_kor_name": MARKET_NAMES.get(market.value if market else "KOSPI", "KOSPI"),
        "temp_stop_yn": "N", "oprc_rang_cont_yn": "N", "clpr_rang_cont_yn": "N", "crdt_able_yn": "Y",
        "grmn_rate_cls_code": "40", "elw_pblc_yn": "N",
        "stck_prpr": _s(q.last), "prdy_vrss": _s(q.last - q.base),
        "prdy_vrss_sign": price_sign(q.last, q.base, q.band.lower, q.band.upper),
        "prdy_ctrt": pct(q.last - q.base, q.base), "acml_tr_pbmn": _s(q.value), "acml_vol": _s(q.volume),
        "prdy_vrss_vol_rate": pct(q.volume, q.prev_volume), "stck_oprc": _s(q.open), "stck_hgpr": _s(q.high),
        "stck_lwpr": _s(q.low), "stck_mxpr": _s(q.band.upper), "stck_llam": _s(q.band.lower),
        "stck_sdpr": _s(q.base), "wghn_avrg_stck_prc": _f2(q.value / q.volume if q.volume else q.last),
        "rstc_wdth_prc": _s(q.band.upper - q.base), "stck_fcam": "100", "stck_sspr": _s(int(q.base * 0.7)),
        "aspr_unit": _s(tick_size(q.last, q.day, market) if q.last else 1), "hts_deal_qty_unit_val": "1",
        "per": "0.00", "pbr": "0.00", "eps": "0.00", "bps": "0.00", "vol_tnrt": "0.00",
        "ssts_yn": "Y", "fcam_cnnm": "원", "cpfn_cnnm": "억",
        "vi_cls_code": "N", "ovtm_vi_cls_code": "N", "invt_caful_yn": "N", "mrkt_warn_cls_code": "00",
        "short_over_yn": "N", "sltr_yn": "N", "mang_issu_cls_code": "N", "hts_frgn_ehrt": "0.00",
    })
    return out


_EXTREME_NAMES = {
    "w52": ("w52_hgpr", "w52_hgpr_date", "w52_hgpr_vrss_prpr_ctrt", "w52_lwpr", "w52_lwpr_date",
            "w52_lwpr_vrss_prpr_ctrt"),
    "d250": ("d250_hgpr", "d250_hgpr_date", "d250_hgpr_vrss_prpr_rate", "d250_lwpr", "d250_lwpr_date",
             "d250_lwpr_vrss_prpr_rate"),
    "dryy": ("stck_dryy_hgpr", "dryy_hgpr_date", "dryy_hgpr_vrss_prpr_rate", "stck_dryy_lwpr", "dryy_lwpr_date",
             "dryy_lwpr_vrss_prpr_rate"),
}
_HISTORY_EXTREMES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
"""Per bar store (one emulator's data): (code, day) → the extremes of the days before."""


def _history_extremes(store: Any, code: str, day: date, hist: pd.DataFrame
                      ) -> dict[str, tuple[int, date | None, int, date | None]]:
    """Highest high and lowest low (with their first dates) of the complete days before ``day`` over 52
    weeks, 250 sessions and the calendar year — fixed for a trading day, so computed once (the engine
    lock serialises callers)."""
    cache = _HISTORY_EXTREMES.setdefault(store, {})
    key = (code, day)
    got = cache.get(key)
    if got is not None:
        return got
    days = hist.index
    masks = {"w52": np.asarray(days > pd.Timestamp(day) - pd.Timedelta(days=364)),
             "d250": np.arange(len(days)) >= len(days) - 249, "dryy": np.asarray(days.year == day.year)}
    highs, lows = hist["high"].to_numpy(), hist["low"].to_numpy()
    out: dict[str, tuple[int, date | None, int, date | None]] = {}
    for name, mask in masks.items():
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            out[name] = (0, None, 0, None)
            continue
        i_hi = idx[int(np.argmax(highs[idx]))]
        pos = [i for i in idx if lows[i] > 0]
        i_lo = pos[int(np.argmin(lows[pos]))] if pos else None
        out[name] = (int(highs[i_hi]), days[i_hi].date(),
                     int(lows[i_lo]) if i_lo is not None else 0, days[i_lo].date() if i_lo is not None else None)
    if len(cache) > 8192:
        cache.clear()
    cache[key] = out
    return out


def _extremes(store: Any, code: str, hist: pd.DataFrame, q: Any) -> dict[str, str]:
    """52-week, 250-session and this-year highs/lows with their dates and the distance of the last
    price from them (python-kis's quote parser reads the dates: they must never be empty)."""
    out: dict[str, str] = {}
    today_hi, today_lo = q.high or q.last, q.low or q.last
    for key, (h_hi, h_hi_day, h_lo, h_lo_day) in _history_extremes(store, code, q.day, hist).items():
        hi, hi_day = (h_hi, h_hi_day) if h_hi_day is not None and h_hi > today_hi else (today_hi, q.day)
        lo, lo_day = (h_lo, h_lo_day) if h_lo_day is not None and 0 < h_lo < today_lo else (today_lo, q.day)
        h, hd, hr, l, ld, lr = _EXTREME_NAMES[key]
        out.update({h: _s(hi), hd: hi_day.strftime("%Y%m%d"), hr: pct(q.last - hi, hi), l: _s(lo),
                    ld: lo_day.strftime("%Y%m%d"), lr: pct(q.last - lo, lo)})
    return out


def _chart_summary(code: str, q: Any, eng: Engine) -> dict[str, str]:
    keys = ("prdy_vrss", "prdy_vrss_sign", "prdy_ctrt", "stck_prdy_clpr", "acml_vol", "acml_tr_pbmn",
            "hts_kor_isnm", "stck_prpr", "stck_shrn_iscd", "prdy_vol", "stck_mxpr", "stck_llam", "stck_oprc",
            "stck_hgpr", "stck_lwpr", "stck_prdy_oprc", "stck_prdy_hgpr", "stck_prdy_lwpr", "askp", "bidp",
            "prdy_vrss_vol", "vol_tnrt", "stck_fcam", "lstn_stcn", "cpfn", "hts_avls", "per", "eps", "pbr",
            "itewhol_loan_rmnd_ratem")
    out = {k: "0" for k in keys}
    out["hts_kor_isnm"] = ""
    out["stck_shrn_iscd"] = code
    if q is None or not q.listed:
        return out
    hist = eng.store.daily_until(code, q.day)
    prev = hist.iloc[-1] if len(hist) else None
    out.update({"prdy_vrss": _s(q.last - q.base), "prdy_vrss_sign": price_sign(q.last, q.base, q.band.lower,
                                                                               q.band.upper),
                "prdy_ctrt": pct(q.last - q.base, q.base), "stck_prdy_clpr": _s(q.base), "acml_vol": _s(q.volume),
                "acml_tr_pbmn": _s(q.value), "hts_kor_isnm": eng.store.names.get(code, code),
                "stck_prpr": _s(q.last), "prdy_vol": _s(q.prev_volume), "stck_mxpr": _s(q.band.upper),
                "stck_llam": _s(q.band.lower), "stck_oprc": _s(q.open), "stck_hgpr": _s(q.high),
                "stck_lwpr": _s(q.low), "prdy_vrss_vol": _s(q.volume - q.prev_volume), "stck_fcam": "100"})
    if prev is not None:
        out.update({"stck_prdy_oprc": _s(int(prev["open"])), "stck_prdy_hgpr": _s(int(prev["high"])),
                    "stck_prdy_lwpr": _s(int(prev["low"]))})
    return out


def _time_summary(code: str, q: Any, eng: Engine) -> dict[str, str]:
    out = {"prdy_vrss": "0", "prdy_vrss_sign": P.PRICE_SIGN_FLAT, "prdy_ctrt": "0.00", "stck_prdy_clpr": "0",
           "acml_vol": "0", "acml_tr_pbmn": "0", "hts_kor_isnm": "", "stck_prpr": "0"}
    if q is None or not q.listed:
        return out
    out.update({"prdy_vrss": _s(q.last - q.base),
                "prdy_vrss_sign": price_sign(q.last, q.base, q.band.lower, q.band.upper),
                "prdy_ctrt": pct(q.last - q.base, q.base), "stck_prdy_clpr": _s(q.base), "acml_vol": _s(q.volume),
                "acml_tr_pbmn": _s(q.value), "hts_kor_isnm": eng.store.names.get(code, code),
                "stck_prpr": _s(q.last)})
    return out


def _daily_bars_until_now(eng: Engine, code: str) -> pd.DataFrame:
    """Complete days before today plus today's bar so far (nothing from the future)."""
    q = eng.quote(code)
    hist = eng.store.daily_until(code, q.day).copy()
    hist["value"] = hist["volume"] * (hist["open"] + hist["high"] + hist["low"] + hist["close"]) // 4
    if q.prints:
        today = pd.DataFrame({"open": [q.open], "high": [q.high], "low": [q.low], "close": [q.last],
                              "volume": [q.volume], "value": [q.value]},
                             index=pd.DatetimeIndex([pd.Timestamp(q.day)]))
        hist = pd.concat([hist, today])
    return hist.astype("int64")


def _resample(bars: pd.DataFrame, period: str) -> pd.DataFrame:
    if bars.empty:
        return bars
    idx = bars.index
    key = {"W": idx.to_period("W"), "M": idx.to_period("M"), "Y": idx.to_period("Y")}[period]
    g = bars.groupby(key)
    out = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                        "close": g["close"].last(), "volume": g["volume"].sum(), "value": g["value"].sum()})
    out.index = pd.DatetimeIndex(g.apply(lambda df: df.index[-1]).values)
    return out


def _prev_closes(eng: Engine, code: str, bars: pd.DataFrame) -> list[int]:
    """Close of the period before each row (the base of its ``prdy_vrss``)."""
    out: list[int] = []
    for k in range(len(bars)):
        if k:
            out.append(int(bars.iloc[k - 1]["close"]))
        else:
            d = bars.index[0].date()
            prev = eng.store.previous_close(code, d)
            out.append(prev[0] if prev else 0)
    return out

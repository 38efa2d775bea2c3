"""KIS TRs about what a code *is* and how its company did: ``search-info``, ``search-stock-info``,
the ``finance/*`` statements and ratios, and the ranking TRs (volume, market cap, fluctuation).

A mixin of ``RestService`` (``rest.py`` owns routing, auth and the envelope); everything here reads the
engine (prices up to the emulated moment) and the ``ReferenceData`` (``reference.py``) and never
mutates either. Point in time: a statement is served only from its ``published`` day, shares listed,
names and designations as of the emulated day.

Field sets follow the KIS catalogue (``shared/kis/spec`` ``column_mapping`` of each TR) plus, for
``search-info``, the name fields python-kis reads (``prdt_abrv_name``, ``prdt_name120``,
``prdt_eng_abrv_name``…; [PK] ``api/stock/info.py``). Values the sources do not show (market id
codes, stock-kind codes, amount units of ``finance/*``) are marked unconfirmed in the emulator README.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from brokers.kis import protocol as P
from brokers.kis.protocol import Api
from brokers.kis.emulator.frames import pct, price_sign
from brokers.kis.emulator.inputs import InputError, is_ascii_number
from brokers.kis.emulator.reference import GROUP_CODE, ReferenceData, Snapshot, Statement
from market.volatility import vi_events

if TYPE_CHECKING:  # pragma: no cover
    from brokers.kis.emulator.matching import Engine
    from brokers.kis.emulator.rest import RestRequest, RestResponse

MARKET_ID = {"KOSPI": "STK", "KOSDAQ": "KSQ", "KONEX": "KNX"}
"""``mket_id_cd`` (KRX market ids, as in KRX data files; unconfirmed for KIS)."""
EXCHANGE_DIV = {"KOSPI": "02", "KOSDAQ": "03", "KONEX": "04"}
"""``excg_dvsn_cd`` (unconfirmed)."""
STOCK_KIND = {"preferred": "201"}
"""``stck_kind_cd``: 101 common (보통주), 201 preferred (우선주) — unconfirmed value set."""
WARNING_CODE = {"caution": "01", "warning": "02", "risk": "03"}
"""``mrkt_warn_cls_code``: 00 none, 01 투자주의, 02 투자경고, 03 투자위험 (KIS inquire-price docs)."""
HISTORY_DAYS = 20
"""Window of the ranking TRs' "average"/"N-day" fields (unconfirmed; KIS does not document it)."""
EXCLUDE_FLAGS = ("warned", "admin_issue", "liquidation", "unfaithful_disclosure", "preferred", "halted", "etf",
                 "etn", "no_credit", "spac")
"""``FID_TRGT_EXLS_CLS_CODE`` positions, in the order of the catalogue's description."""


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _eok(v: int | None) -> str:
    """KRW → 억원 with two decimals (``protocol.FINANCE_AMOUNT_UNIT``)."""
    return _f2((v or 0) / P.FINANCE_AMOUNT_UNIT)


def _growth(cur: int | None, prev: int | None) -> str:
    if cur is None or not prev:
        return "0.00"
    return _f2((cur - prev) / abs(prev) * 100)


@dataclass
class _Row:
    """One code's state for the ranking TRs (computed once per request)."""

    code: str
    snap: Snapshot
    q: Any
    hist: Any          # daily bars strictly before today

    @property
    def cap(self) -> int:
        return self.q.last * self.snap.shares_listed


class InfoHandlers:
    """Handlers registered by ``RestService`` for the reference, finance and ranking TRs."""

    engine: "Engine"
    reference: ReferenceData
    _q: Callable[..., str]
    _code: Callable[..., str]
    _msg: Callable[..., dict[str, Any]]
    _quote_ok: Callable[..., "RestResponse"]
    _tr_id: Callable[..., str]

    def info_handlers(self) -> dict[Api, Callable[..., "RestResponse"]]:
        return {Api.SEARCH_INFO: self._search_info, Api.SEARCH_STOCK_INFO: self._search_stock_info,
                Api.FINANCE_BALANCE_SHEET: self._balance_sheet,
                Api.FINANCE_INCOME_STATEMENT: self._income_statement,
                Api.FINANCE_FINANCIAL_RATIO: self._financial_ratio,
                Api.VOLUME_RANK: self._volume_rank, Api.MARKET_CAP_RANK: self._market_cap_rank,
                Api.FLUCTUATION_RANK: self._fluctuation_rank}

    # ---- helpers -----------------------------------------------------------------------------

    @property
    def _today(self) -> date:
        return self.engine.now.date()

    def _snapshot(self, code: str) -> Snapshot | None:
        snap = self.reference.snapshot(code, self._today)
        return snap if snap is not None and snap.listed else None

    def _no_data(self, req: "RestRequest") -> "RestResponse":
        from brokers.kis.emulator.rest import RestResponse

        return RestResponse(200, self._msg("no_data", req.env))

    def _inquiry(self, req: "RestRequest", **outputs: Any) -> "RestResponse":
        from brokers.kis.emulator.rest import RestResponse

        return RestResponse(200, self._msg("inquiry_done", req.env, **outputs))

    def _input(self, name: str, allowed: tuple[str, ...], default: str, req: "RestRequest") -> str:
        v = (self._q(req, name, default) or default).strip()
        if v not in allowed:
            raise InputError(name)
        return v

    # ---- search-info / search-stock-info -----------------------------------------------------

    def _names(self, snap: Snapshot) -> dict[str, str]:
        return {"prdt_name": snap.name, "prdt_name120": snap.name, "prdt_abrv_name": snap.name,
                "prdt_eng_name": snap.name_en, "prdt_eng_name120": snap.name_en, "prdt_eng_abrv_name": snap.name_en}

    def _product(self, req: "RestRequest") -> tuple[str, Snapshot | None]:
        code = self._q(req, "PDNO").strip()
        ptype = self._q(req, "PRDT_TYPE_CD").strip()
        if not code:
            raise InputError("PDNO")
        if not ptype:
            raise InputError("PRDT_TYPE_CD")
        if ptype != P.PRDT_TYPE_STOCK:
            return code, None
        return code, self._snapshot(code)

    def _search_info(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """상품기본조회 CTPF1604R: rt_cd 7 "no data" for an unknown code (python-kis then tries the next
        product type, [PK] ``api/stock/info.py``)."""
        code, snap = self._product(req)
        if snap is None:
            return self._no_data(req)
        sec = self.reference.get(code)
        assert sec is not None
        listed = sec.listing_date.strftime("%Y%m%d")
        out = {"pdno": code, "prdt_type_cd": P.PRDT_TYPE_STOCK, **self._names(snap), "std_pdno": sec.isin,
               "shtn_pdno": code, "prdt_sale_stat_cd": "", "prdt_risk_grad_cd": "", "prdt_clsf_cd": "",
               "prdt_clsf_name": "", "sale_strt_dt": listed,
               "sale_end_dt": sec.delisting_date.strftime("%Y%m%d") if sec.delisting_date else "",
               "wrap_asst_type_cd": "", "ivst_prdt_type_cd": "", "ivst_prdt_type_cd_name": "", "frst_erlm_dt": listed}
        return self._inquiry(req, output=out)

    def _search_stock_info(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """주식기본조회 CTPF1002R: the stock-master facts of one code as of the emulated day."""
        code, snap = self._product(req)
        if snap is None:
            return self._no_data(req)
        sec = self.reference.get(code)
        assert sec is not None
        eng = self.engine
        q = eng.quote(code) if eng.store.knows(code) else None
        listed = sec.listing_date.strftime("%Y%m%d")
        gone = sec.delisting_date.strftime("%Y%m%d") if sec.delisting_date else ""
        sector = snap.sector
        prev_close = q.base if q else 0
        out = {
            "pdno": code, "prdt_type_cd": P.PRDT_TYPE_STOCK, **self._names(snap),
            "mket_id_cd": MARKET_ID.get(snap.market, ""), "scty_grp_id_cd": GROUP_CODE.get(snap.kind, "ST"),
            "excg_dvsn_cd": EXCHANGE_DIV.get(snap.market, ""), "setl_mmdd": f"{sec.fiscal_month:02d}{_month_end(sec.fiscal_month):02d}",
            "lstg_stqt": str(snap.shares_listed), "lstg_cptl_amt": str(snap.capital), "cpta": str(snap.capital),
            "papr": str(snap.par_value), "issu_pric": str(sec.ipo_price or snap.par_value),
            "kospi200_item_yn": "Y" if sec.kospi200 else "N",
            "scts_mket_lstg_dt": listed if snap.market == "KOSPI" else "",
            "scts_mket_lstg_abol_dt": gone if snap.market == "KOSPI" else "",
            "kosdaq_mket_lstg_dt": listed if snap.market == "KOSDAQ" else "",
            "kosdaq_mket_lstg_abol_dt": gone if snap.market == "KOSDAQ" else "",
            "frbd_mket_lstg_dt": "", "frbd_mket_lstg_abol_dt": "", "reits_kind_cd": "",
            "etf_dvsn_cd": "1" if snap.kind == "etf" else "0", "oilf_fund_yn": "N",
            "idx_bztp_lcls_cd": sector.code if sector else "", "idx_bztp_mcls_cd": sector.medium_code if sector else "",
            "idx_bztp_scls_cd": sector.small_code if sector else "",
            "idx_bztp_lcls_cd_name": sector.name if sector else "",
            "idx_bztp_mcls_cd_name": sector.medium_name if sector else "",
            "idx_bztp_scls_cd_name": sector.small_name if sector else "",
            "stck_kind_cd": STOCK_KIND.get(snap.kind, "101"), "mfnd_opng_dt": "", "mfnd_end_dt": "",
            "dpsi_erlm_cncl_dt": "", "etf_cu_qty": "0", "std_pdno": sec.isin, "dpsi_aptm_erlm_yn": "Y",
            "etf_txtn_type_cd": "", "etf_type_cd": "", "lstg_abol_dt": gone, "nwst_odst_dvsn_cd": "",
            "sbst_pric": str(int(prev_close * 0.7)), "thco_sbst_pric": str(int(prev_close * 0.7)),
            "thco_sbst_pric_chng_dt": q.day.strftime("%Y%m%d") if q else "",
            "tr_stop_yn": "Y" if snap.halted else "N", "admn_item_yn": "Y" if snap.admin_issue else "N",
            "thdt_clpr": str(q.last if q else 0), "bfdy_clpr": str(prev_close),
            "clpr_chng_dt": q.day.strftime("%Y%m%d") if q else "",
            "std_idst_clsf_cd": sector.industry_code if sector else "",
            "std_idst_clsf_cd_name": sector.industry_name if sector else "", "ocr_no": "", "crfd_item_yn": "N",
            "elec_scty_yn": "Y", "issu_istt_cd": "", "etf_chas_erng_rt_dbnb": "0", "etf_etn_ivst_heed_item_yn": "N",
            "stln_int_rt_dvsn_cd": "", "frnr_psnl_lmt_rt": "0.00", "lstg_rqsr_issu_istt_cd": "",
            "lstg_rqsr_item_cd": "", "trst_istt_issu_istt_cd": "", "cptt_trad_tr_psbl_yn": "N", "nxt_tr_stop_yn": "N",
        }
        return self._inquiry(req, output=out)

    # ---- finance -----------------------------------------------------------------------------

    def _statements(self, req: "RestRequest") -> tuple[str, list[Statement], str]:
        code = self._code(req)
        period = self._input("FID_DIV_CLS_CODE", (P.FINANCE_PERIOD_YEAR, P.FINANCE_PERIOD_QUARTER),
                             P.FINANCE_PERIOD_YEAR, req)
        kind = "annual" if period == P.FINANCE_PERIOD_YEAR else "quarter"
        if self._snapshot(code) is None:
            return code, [], kind
        return code, self.reference.statements(code, kind, self._today), kind

    def _balance_sheet(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """대차대조표 FHKST66430100: newest period first, amounts in 억원."""
        _, rows, _ = self._statements(req)
        out = [{"stac_yymm": st.period_end.strftime("%Y%m"), "cras": _eok(st.current_assets),
                "fxas": _eok(st.non_current_assets), "total_aset": _eok(st.total_assets),
                "flow_lblt": _eok(st.current_liabilities), "fix_lblt": _eok(st.non_current_liabilities),
                "total_lblt": _eok(st.total_liabilities), "cpfn": _eok(st.capital_stock),
                "cfp_surp": _eok(st.capital_surplus), "prfi_surp": _eok(st.retained_earnings),
                "total_cptl": _eok(st.total_equity)} for st in reversed(rows)]
        return self._quote_ok(req, output=out)

    def _income_statement(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """손익계산서 FHKST66430200: newest period first, amounts in 억원 (quarter rows: the quarter alone)."""
        _, rows, _ = self._statements(req)
        out = [{"stac_yymm": st.period_end.strftime("%Y%m"), "sale_account": _eok(st.revenue),
                "sale_cost": _eok(st.cost_of_sales), "sale_totl_prfi": _eok(st.gross_profit),
                "depr_cost": _eok(st.depreciation), "sell_mang": _eok(st.sga), "bsop_prti": _eok(st.operating_income),
                "bsop_non_ernn": _eok(st.non_operating_income), "bsop_non_expn": _eok(st.non_operating_expense),
                "op_prfi": _eok(st.ordinary_income), "spec_prfi": _eok(st.extraordinary_gain),
                "spec_loss": _eok(st.extraordinary_loss), "thtr_ntin": _eok(st.net_income)} for st in reversed(rows)]
        return self._quote_ok(req, output=out)

    def _financial_ratio(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """재무비율 FHKST66430300, computed from the published statements: growth against the same period
        a year earlier, ROE (quarters annualised), per-share values on the shares listed at period end."""
        code, rows, kind = self._statements(req)
        by_end = {st.period_end: st for st in rows}
        out = []
        for st in reversed(rows):
            prev = by_end.get(st.period_end.replace(year=st.period_end.year - 1))
            shares = self.reference.shares_on(code, st.period_end) or 1
            scale = 4 if kind == "quarter" else 1
            eq = st.total_equity or 0
            cap_stock = st.capital_stock or 0
            reserves = (st.capital_surplus or 0) + (st.retained_earnings or 0)
            out.append({
                "stac_yymm": st.period_end.strftime("%Y%m"),
                "grs": _growth(st.revenue, prev.revenue if prev else None),
                "bsop_prfi_inrt": _growth(st.operating_income, prev.operating_income if prev else None),
                "ntin_inrt": _growth(st.net_income, prev.net_income if prev else None),
                "roe_val": _f2((st.net_income or 0) * scale / eq * 100 if eq else 0.0),
                "eps": _f2((st.net_income or 0) / shares), "sps": _f2((st.revenue or 0) / shares),
                "bps": _f2(eq / shares), "rsrv_rate": _f2(reserves / cap_stock * 100 if cap_stock else 0.0),
                "lblt_rate": _f2((st.total_liabilities or 0) / eq * 100 if eq else 0.0)})
        return self._quote_ok(req, output=out)

    # ---- per-share facts for inquire-price ---------------------------------------------------

    def valuation(self, code: str, price: int) -> dict[str, str]:
        """``inquire-price`` reference fields: shares, market cap, EPS/BPS/PER/PBR, status codes."""
        snap = self.reference.snapshot(code, self._today)
        if snap is None:
            return {}
        annual = self.reference.statements(code, "annual", self._today)
        every = annual + self.reference.statements(code, "quarter", self._today)
        latest = max(every, key=lambda st: st.period_end) if every else None
        eps = bps = 0.0
        if annual and annual[-1].net_income is not None:
            eps = annual[-1].net_income / (self.reference.shares_on(code, annual[-1].period_end) or 1)
        if latest is not None and latest.total_equity is not None:
            bps = latest.total_equity / (self.reference.shares_on(code, latest.period_end) or 1)
        status = (P.ISCD_STAT_HALTED if snap.halted else P.ISCD_STAT_ADMIN if snap.admin_issue
                  else P.ISCD_STAT_NORMAL)
        warn = next((WARNING_CODE[k] for k in ("risk", "warning", "caution") if k in snap.designations), "00")
        sec = self.reference.get(code)
        return {
            "lstn_stcn": str(snap.shares_listed), "hts_avls": str(price * snap.shares_listed // P.FINANCE_AMOUNT_UNIT),
            "eps": _f2(eps), "bps": _f2(bps), "per": _f2(price / eps if eps else 0.0),
            "pbr": _f2(price / bps if bps else 0.0), "stac_month": f"{sec.fiscal_month:02d}" if sec else "12",
            "cpfn": str(snap.capital // P.FINANCE_AMOUNT_UNIT), "stck_fcam": str(snap.par_value),
            "bstp_kor_isnm": snap.sector.name if snap.sector else "", "iscd_stat_cls_code": status,
            "temp_stop_yn": "Y" if snap.halted else "N", "mang_issu_cls_code": "Y" if snap.admin_issue else "N",
            "mrkt_warn_cls_code": warn, "invt_caful_yn": "Y" if "caution" in snap.designations else "N",
            "sltr_yn": "Y" if "liquidation" in snap.designations else "N",
            "short_over_yn": "Y" if "overheated" in snap.designations else "N",
            "vol_tnrt": "0.00",
        }

    def vi_code(self, code: str) -> str:
        """``vi_cls_code`` now: a VI in force on today's tape (``market.volatility``) or ``N``."""
        eng = self.engine
        q = eng.quote(code)
        if q.day != eng.now.date():
            return P.VI_NONE
        tape = eng.store.tape(code, q.day)
        now = eng.now.timestamp()
        cache: dict[tuple[str, date], list[Any]] = self.__dict__.setdefault("_vi_cache", {})
        events = cache.get((code, q.day))
        if events is None:                       # a day's tape never changes: compute its VIs once
            if len(cache) > 4096:
                cache.clear()
            events = cache[(code, q.day)] = vi_events(tape.times, tape.prices, tape.auction, tape.base,
                                                      self._kospi200(code))
        for ev in events:
            if ev.start <= now < ev.end:
                return P.VI_STATIC if ev.kind == "static" else P.VI_DYNAMIC
        return P.VI_NONE

    def _kospi200(self, code: str) -> bool:
        sec = self.reference.get(code)
        return bool(sec and sec.kospi200)

    # ---- rankings ----------------------------------------------------------------------------

    def _universe(self, req: "RestRequest", api: Api) -> list[_Row]:
        """Codes passing the ranking TRs' common filters (market, kind, exclusions, price, volume)."""
        screen = self._q(req, "FID_COND_SCR_DIV_CODE").strip()
        if screen and screen != P.RANK_SCREEN_CODE[api]:
            raise InputError("FID_COND_SCR_DIV_CODE")
        market = (self._q(req, "FID_INPUT_ISCD", "0000") or "0000").strip()
        if market not in ("0000", "0001", "1001", "2001"):
            raise InputError("FID_INPUT_ISCD")
        div = self._input("FID_DIV_CLS_CODE", ("0", "1", "2"), "0", req)
        excl = (self._q(req, "FID_TRGT_EXLS_CLS_CODE") or "").strip()
        if excl and (len(excl) > len(EXCLUDE_FLAGS) or set(excl) - {"0", "1"}):
            raise InputError("FID_TRGT_EXLS_CLS_CODE")
        bounds = []
        for name in ("FID_INPUT_PRICE_1", "FID_INPUT_PRICE_2", "FID_VOL_CNT"):
            v = (self._q(req, name) or "").strip()
            if v and not is_ascii_number(v):
                raise InputError(name)
            bounds.append(int(v) if v else None)
        lo, hi, min_vol = bounds
        excluded = {EXCLUDE_FLAGS[i] for i, ch in enumerate(excl) if ch == "1"}
        eng = self.engine
        out: list[_Row] = []
        for code in eng.store.codes:
            snap = self._snapshot(code)
            if snap is None:
                continue
            if market == "0001" and snap.market != "KOSPI" or market == "1001" and snap.market != "KOSDAQ":
                continue
            if market == "2001" and not self._kospi200(code):
                continue
            if div == "1" and snap.preferred or div == "2" and not snap.preferred:
                continue
            flags = set(snap.designations)
            if flags & {"caution", "warning", "risk"}:
                flags.add("warned")
            flags.update({snap.kind} if snap.kind in ("preferred", "etf", "etn", "spac") else set())
            if flags & excluded:
                continue
            q = eng.quote(code)
            if not q.listed or q.last <= 0:
                continue
            if (lo is not None and q.last < lo) or (hi is not None and hi > 0 and q.last > hi):
                continue
            if min_vol is not None and q.volume < min_vol:
                continue
            out.append(_Row(code, snap, q, eng.store.daily_until(code, q.day)))
        return out

    def _base(self, r: _Row, code_key: str = "mksc_shrn_iscd") -> dict[str, str]:
        q = r.q
        return {code_key: r.code, "hts_kor_isnm": r.snap.name, "stck_prpr": str(q.last),
                "prdy_vrss": str(q.last - q.base), "prdy_vrss_sign": price_sign(q.last, q.base, q.band.lower,
                                                                               q.band.upper),
                "prdy_ctrt": pct(q.last - q.base, q.base), "acml_vol": str(q.volume)}

    def _ranked(self, req: "RestRequest", rows: list[tuple[float, dict[str, str]]]) -> "RestResponse":
        rows.sort(key=lambda t: -t[0])
        out = []
        for rank, (_, row) in enumerate(rows[:P.RANK_MAX_ROWS], 1):
            row["data_rank"] = str(rank)
            out.append(row)
        return self._quote_ok(req, output=out)

    def _volume_rank(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """거래량순위 FHPST01710000 (sort by FID_BLNG_CLS_CODE: 0 volume, 1 volume growth, 2 turnover,
        3 trading value, 4 value turnover)."""
        sort = self._input("FID_BLNG_CLS_CODE", ("0", "1", "2", "3", "4"), "0", req)
        rows = []
        for r in self._universe(req, api):
            q = r.q
            hist = r.hist.iloc[-HISTORY_DAYS:]
            vols = hist["volume"].to_numpy(dtype=float)
            values = (hist["volume"] * (hist["open"] + hist["high"] + hist["low"] + hist["close"]) / 4).to_numpy(float)
            shares = r.snap.shares_listed or 1
            cap = r.cap or 1
            avg_vol = float(vols.mean()) if len(vols) else 0.0
            old_close = int(hist["close"].iloc[0]) if len(hist) else q.base
            row = {**self._base(r), "prdy_vol": str(q.prev_volume), "lstn_stcn": str(r.snap.shares_listed),
                   "avrg_vol": str(int(avg_vol)), "n_befr_clpr_vrss_prpr_rate": pct(q.last - old_close, old_close),
                   "vol_inrt": pct(q.volume - q.prev_volume, q.prev_volume),
                   "vol_tnrt": pct(q.volume, shares), "nday_vol_tnrt": pct(float(vols.sum()), shares),
                   "avrg_tr_pbmn": str(int(values.mean()) if len(values) else 0),
                   "tr_pbmn_tnrt": pct(q.value, cap), "nday_tr_pbmn_tnrt": pct(float(values.sum()), cap),
                   "acml_tr_pbmn": str(q.value)}
            key = {"0": q.volume, "1": float(row["vol_inrt"]), "2": q.volume / shares, "3": q.value,
                   "4": q.value / cap}[sort]
            rows.append((float(key), row))
        return self._ranked(req, rows)

    def _market_cap_rank(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """시가총액 상위 FHPST01740000: caps in 억원 and each code's share of the selection's total."""
        universe = self._universe(req, api)
        total = sum(r.cap for r in universe) or 1
        rows = [(float(r.cap), {**self._base(r), "lstn_stcn": str(r.snap.shares_listed),
                                "stck_avls": str(r.cap // P.FINANCE_AMOUNT_UNIT),
                                "mrkt_whol_avls_rlim": pct(r.cap, total)}) for r in universe]
        return self._ranked(req, rows)

    def _fluctuation_rank(self, req: "RestRequest", app: Any, api: Api) -> "RestResponse":
        """등락률 순위 FHPST01700000 (FID_RANK_SORT_CLS_CODE 0000 rise, 0001 fall, 0002 rise from the open,
        0003 fall from the open, 0004 day range; FID_INPUT_CNT_1 = N days for the period fields)."""
        sort = self._input("FID_RANK_SORT_CLS_CODE", ("0000", "0001", "0002", "0003", "0004"), "0000", req)
        n_txt = (self._q(req, "FID_INPUT_CNT_1") or "0").strip() or "0"
        if not is_ascii_number(n_txt) or int(n_txt) > 250:
            raise InputError("FID_INPUT_CNT_1")
        n_days = int(n_txt)
        rate_bounds = []
        for name in ("FID_RSFL_RATE1", "FID_RSFL_RATE2"):
            v = (self._q(req, name) or "").strip()
            try:
                rate_bounds.append(float(v) if v else None)
            except ValueError:
                raise InputError(name) from None
            if rate_bounds[-1] is not None and not np.isfinite(rate_bounds[-1]):
                raise InputError(name)
        r_lo, r_hi = rate_bounds
        eng = self.engine
        rows = []
        for r in self._universe(req, api):
            q = r.q
            rate = (q.last - q.base) / q.base * 100 if q.base else 0.0
            if (r_lo is not None and rate < -abs(r_lo)) or (r_hi is not None and rate > abs(r_hi)):
                continue
            tape = eng.store.tape(r.code, q.day)
            n = tape.index_at(eng.now) if q.day == eng.now.date() else len(tape)
            hi_t = tape.time_of(int(tape.high_idx[n - 1])).strftime("%H%M%S") if n else ""
            lo_t = tape.time_of(int(tape.low_idx[n - 1])).strftime("%H%M%S") if n else ""
            closes = [int(c) for c in r.hist["close"].to_numpy()] + [q.last]
            ref = closes[-1 - n_days] if n_days and len(closes) > n_days else q.base
            up = down = 0
            for a, b in zip(reversed(closes[:-1]), reversed(closes[1:])):
                if b > a and not down:
                    up += 1
                elif b < a and not up:
                    down += 1
                else:
                    break
            open_px = q.open or q.last
            day = q.day.strftime("%Y%m%d")
            row = {**self._base(r, "stck_shrn_iscd"), "stck_hgpr": str(q.high), "hgpr_hour": hi_t,
                   "acml_hgpr_date": day, "stck_lwpr": str(q.low), "lwpr_hour": lo_t, "acml_lwpr_date": day,
                   "lwpr_vrss_prpr_rate": pct(q.last - q.low, q.low), "dsgt_date_clpr_vrss_prpr_rate": pct(q.last - ref, ref),
                   "cnnt_ascn_dynu": str(up), "hgpr_vrss_prpr_rate": pct(q.last - q.high, q.high),
                   "cnnt_down_dynu": str(down),
                   "oprc_vrss_prpr_sign": price_sign(q.last, open_px, 0, 0), "oprc_vrss_prpr": str(q.last - open_px),
                   "oprc_vrss_prpr_rate": pct(q.last - open_px, open_px), "prd_rsfl": str(q.last - ref),
                   "prd_rsfl_rate": pct(q.last - ref, ref)}
            from_open = (q.last - open_px) / open_px * 100 if open_px else 0.0
            key = {"0000": rate, "0001": -rate, "0002": from_open, "0003": -from_open,
                   "0004": (q.high - q.low) / q.low * 100 if q.low else 0.0}[sort]
            rows.append((key, row))
        return self._ranked(req, rows)


def _month_end(month: int) -> int:
    return {2: 28, 4: 30, 6: 30, 9: 30, 11: 30}.get(month, 31)


__all__ = ["InfoHandlers"]

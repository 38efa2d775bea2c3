"""Quotation and reference TRs of ``KISClient``: quotes, daily and minute charts, product and stock
information, the order book, recent prints, the holiday calendar, financial statements and rankings.

Why a module of its own: these are read-only inquiries with their own parsing (``info.py``,
``models.py``) and no safety rule beyond the transport's — a retry can never double anything — while
``client.py`` keeps what must be exact about money: tokens, pacing, orders and the account. The
methods live on ``KISClient`` through this mixin (one object per app key, one rate budget), and use
only its transport: ``_call`` (retries, pacing, errors) and the injected wall clock.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time as dtime, timedelta
from typing import Any, Mapping

import pandas as pd

from brokers.kis import protocol as P
from brokers.kis.errors import KISRejected
from brokers.kis.info import (
    BALANCE_SHEET_COLUMNS, INCOME_STATEMENT_COLUMNS, RATIO_COLUMNS, CalendarMismatch, HolidayRow, OrderBook,
    ProductInfo, StockInfo, parse_holidays, parse_order_book, parse_product_info, parse_ranking, parse_statements,
    parse_stock_info, parse_ticks,
)
from brokers.kis.models import Quote, parse_quote, parse_time_hhmmss, to_int
from brokers.kis.protocol import Api, Env
from market.calendar import KST

log = logging.getLogger(__name__)

MAX_PAGES = 500
"""Guard against a server that keeps answering "more" (500 × 100 rows is far beyond any account)."""
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
MARKET_DIV_KRX = P.MARKET_DIV_KRX


class Quotations:
    """시세·정보 inquiries, mixed into ``KISClient`` (which provides ``_call``, ``_wallclock``, ``env``
    and the calendar caches ``_calendar_checks``/``_kis_open``)."""

    env: Env
    _calendar_checks: dict[date, list[CalendarMismatch]]
    _kis_open: dict[date, bool]

    def quote(self, code: str) -> Quote:
        """주식현재가 시세 (KRX). ``KISRejected`` for a code KIS does not know (all-zero answer)."""
        reply = self._call(Api.INQUIRE_PRICE, params={"FID_COND_MRKT_DIV_CODE": MARKET_DIV_KRX, "FID_INPUT_ISCD": code})
        out = (reply.body or {}).get("output") or {}
        q = parse_quote(code, out if isinstance(out, dict) else {})
        if q.price <= 0 and q.upper_limit <= 0:
            raise KISRejected(f"no quote for code {code} (unknown or not listed)", tr_id=reply.tr_id,
                              http_status=reply.status)
        return q

    def daily_bars(self, code: str, start: date, end: date, adjusted: bool = True) -> pd.DataFrame:
        """Daily OHLCV (기간별시세) between ``start`` and ``end``: pages backwards 100 rows a call (§3.10).

        Returns a frame indexed by naive dates (KST trading days, name ``date``), int64 columns
        open/high/low/close/volume, ascending, no duplicates. ``adjusted`` = 수정주가.
        """
        bars: dict[date, tuple[int, ...]] = {}
        cur = end
        for _ in range(MAX_PAGES):
            if cur < start:
                break
            params = {"FID_COND_MRKT_DIV_CODE": MARKET_DIV_KRX, "FID_INPUT_ISCD": code,
                      "FID_INPUT_DATE_1": start.strftime("%Y%m%d"), "FID_INPUT_DATE_2": cur.strftime("%Y%m%d"),
                      "FID_PERIOD_DIV_CODE": "D", "FID_ORG_ADJ_PRC": "0" if adjusted else "1"}
            reply = self._call(Api.INQUIRE_DAILY_ITEMCHARTPRICE, params=params)
            rows = [r for r in ((reply.body or {}).get("output2") or []) if isinstance(r, dict) and r.get("stck_bsop_date")]
            days = []
            for r in rows:
                t = str(r["stck_bsop_date"]).strip()
                try:
                    d = datetime.strptime(t, "%Y%m%d").date()
                except ValueError:
                    continue
                days.append(d)
                if start <= d <= end and d not in bars:
                    bars[d] = (to_int(r.get("stck_oprc")), to_int(r.get("stck_hgpr")), to_int(r.get("stck_lwpr")),
                               to_int(r.get("stck_clpr")), to_int(r.get("acml_vol")))
            if len(rows) < P.DAILY_CHART_MAX_ROWS or not days:
                break
            oldest = min(days)
            if oldest <= start:
                break
            cur = oldest - timedelta(days=1)
        idx = pd.DatetimeIndex([pd.Timestamp(d) for d in sorted(bars)], name="date")
        return pd.DataFrame([bars[d] for d in sorted(bars)], index=idx, columns=list(BAR_COLUMNS)).astype("int64")

    def minute_bars(self, code: str, until: dtime | None = None) -> pd.DataFrame:
        """Today's one-minute bars (당일분봉) up to ``until`` (default: now on the client's wall clock),
        paging back 30 bars a call (§3.11). Index: naive KST datetimes of the minute start (name
        ``datetime``); int64 open/high/low/close/volume, ascending, no duplicates."""
        now = self._wallclock().astimezone(KST)
        cutoff = until or now.time().replace(microsecond=0)
        hour = cutoff.strftime("%H%M%S")
        bars: dict[datetime, tuple[int, ...]] = {}
        for _ in range(MAX_PAGES):
            params = {"FID_ETC_CLS_CODE": "", "FID_COND_MRKT_DIV_CODE": MARKET_DIV_KRX, "FID_INPUT_ISCD": code,
                      "FID_INPUT_HOUR_1": hour, "FID_PW_DATA_INCU_YN": "N"}
            reply = self._call(Api.INQUIRE_TIME_ITEMCHARTPRICE, params=params)
            rows = [r for r in ((reply.body or {}).get("output2") or []) if isinstance(r, dict) and r.get("stck_cntg_hour")]
            stamps = []
            for r in rows:
                d_txt = str(r.get("stck_bsop_date") or now.strftime("%Y%m%d")).strip()
                try:
                    d = datetime.strptime(d_txt, "%Y%m%d").date()
                except ValueError:
                    d = now.date()
                ts = parse_time_hhmmss(d, str(r["stck_cntg_hour"]), None)
                if ts is None:
                    continue
                stamps.append(ts)
                if ts not in bars:
                    bars[ts] = (to_int(r.get("stck_oprc")), to_int(r.get("stck_hgpr")), to_int(r.get("stck_lwpr")),
                                to_int(r.get("stck_prpr")), to_int(r.get("cntg_vol")))
            if len(rows) < P.TIME_CHART_MAX_ROWS or not stamps:
                break
            oldest = min(stamps)
            nxt = oldest - timedelta(seconds=1)  # the whole previous minute, never a truncated one
            if nxt.date() != oldest.date():
                break
            nxt_hour = nxt.strftime("%H%M%S")
            if nxt_hour >= hour:
                break
            hour = nxt_hour
        idx = pd.DatetimeIndex(sorted(bars), name="datetime")
        return pd.DataFrame([bars[t] for t in sorted(bars)], index=idx, columns=list(BAR_COLUMNS)).astype("int64")

    # ---- reference data, book, ticks, calendar, finance, rankings -----------------------------

    def _output(self, api: Api, params: Mapping[str, str], key: str = "output") -> Any:
        reply = self._call(api, params=params)
        return (reply.body or {}).get(key)

    def product_info(self, code: str) -> ProductInfo:
        """상품기본조회 (``search-info`` CTPF1604R, real only). ``KISRejected`` when KIS has no such product."""
        out = self._output(Api.SEARCH_INFO, {"PDNO": code, "PRDT_TYPE_CD": P.PRDT_TYPE_STOCK})
        out = out[0] if isinstance(out, list) and out else out
        if not isinstance(out, dict) or not out:
            raise KISRejected(f"no product information for {code}", tr_id=self.tr_id(Api.SEARCH_INFO))
        return parse_product_info(out)

    def stock_info(self, code: str) -> StockInfo:
        """주식기본조회 (``search-stock-info`` CTPF1002R, real only): name, market, shares, par value,
        listing, sector, halt/관리종목 flags as KIS knows them today."""
        out = self._output(Api.SEARCH_STOCK_INFO, {"PRDT_TYPE_CD": P.PRDT_TYPE_STOCK, "PDNO": code})
        out = out[0] if isinstance(out, list) and out else out
        if not isinstance(out, dict) or not out:
            raise KISRejected(f"no stock information for {code}", tr_id=self.tr_id(Api.SEARCH_STOCK_INFO))
        return parse_stock_info(out)

    def order_book(self, code: str) -> OrderBook:
        """주식현재가 호가/예상체결 (``inquire-asking-price-exp-ccn``): 10 levels and the expected price."""
        reply = self._call(Api.INQUIRE_ASKING_PRICE, params={"FID_COND_MRKT_DIV_CODE": P.MARKET_DIV_KRX,
                                                             "FID_INPUT_ISCD": code})
        body = reply.body or {}
        o1 = body.get("output1") if isinstance(body.get("output1"), dict) else {}
        o2 = body.get("output2") if isinstance(body.get("output2"), dict) else {}
        return parse_order_book(code, o1, o2)

    def recent_trades(self, code: str) -> pd.DataFrame:
        """주식현재가 체결 (``inquire-ccnl``): the latest prints of today (KIS sends up to 30), oldest first;
        columns time (naive KST), price, change, volume, strength (체결강도)."""
        rows = self._output(Api.INQUIRE_CCNL, {"FID_COND_MRKT_DIV_CODE": P.MARKET_DIV_KRX, "FID_INPUT_ISCD": code})
        today = self._wallclock().astimezone(KST).date()
        return parse_ticks(today, [r for r in (rows or []) if isinstance(r, dict)])

    def holidays(self, base: date) -> list[HolidayRow]:
        """국내휴장일조회 (``chk-holiday`` CTCA0903R, real only) from ``base`` on (KIS answers ~20 days;
        KIS asks for one call a day — ``confirm_calendar`` caches)."""
        out = self._output(Api.CHK_HOLIDAY, {"BASS_DT": base.strftime("%Y%m%d"), "CTX_AREA_FK": "", "CTX_AREA_NK": ""})
        return parse_holidays([r for r in (out or []) if isinstance(r, dict)])

    def confirm_calendar(self, start: date | None = None) -> list[CalendarMismatch]:
        """Check the local KRX calendar (``market.calendar``) against KIS's ``chk-holiday`` from ``start``
        (default: today) — real environment only; paper has no such TR (``EGW02006``) and keeps the
        local calendar. Every disagreement is logged as a warning and returned (ad-hoc closures such
        as election days are what this catches); one KIS call per start day and client."""
        if self.env is not Env.REAL:
            log.debug("confirm_calendar: paper has no chk-holiday; the local calendar rules")
            return []
        from market.calendar import krx_calendar

        start = start or self._wallclock().astimezone(KST).date()
        cached = self._calendar_checks.get(start)
        if cached is not None:
            return cached
        cal = krx_calendar()
        out = []
        rows = self.holidays(start)
        for row in rows:
            try:
                local = cal.is_trading_day(row.day)
            except ValueError:
                continue
            if local != row.open_day:
                out.append(CalendarMismatch(row.day, row.open_day, local))
                log.warning("KRX calendar disagrees with KIS on %s: KIS says %s, local calendar %s", row.day,
                            "open" if row.open_day else "closed", "open" if local else "closed")
        self._calendar_checks[start] = out
        self._kis_open.update({row.day: row.open_day for row in rows})
        return out

    def is_trading_day(self, d: date) -> bool:
        """Does KRX trade on ``d``? Real environment: KIS's ``chk-holiday`` answer (fetched and checked
        against the local calendar by ``confirm_calendar``, one call per 20-odd days); paper, or a day
        KIS did not answer: the local calendar (``market.calendar``)."""
        from market.calendar import krx_calendar

        if self.env is Env.REAL:
            if d not in self._kis_open:
                self.confirm_calendar(d)
            if d in self._kis_open:
                return self._kis_open[d]
        return krx_calendar().is_trading_day(d)

    def _finance(self, api: Api, code: str, quarterly: bool) -> list[dict[str, Any]]:
        params = {"FID_DIV_CLS_CODE": P.FINANCE_PERIOD_QUARTER if quarterly else P.FINANCE_PERIOD_YEAR,
                  "FID_COND_MRKT_DIV_CODE": P.MARKET_DIV_KRX, "FID_INPUT_ISCD": code}
        rows = self._output(api, params)
        return [r for r in (rows or []) if isinstance(r, dict)]

    def balance_sheet(self, code: str, quarterly: bool = False) -> pd.DataFrame:
        """대차대조표 (``finance/balance-sheet`` FHKST66430100, real only): one row per period end, KRW."""
        return parse_statements(self._finance(Api.FINANCE_BALANCE_SHEET, code, quarterly), BALANCE_SHEET_COLUMNS, True)

    def income_statement(self, code: str, quarterly: bool = False) -> pd.DataFrame:
        """손익계산서 (``finance/income-statement`` FHKST66430200, real only): one row per period, KRW."""
        return parse_statements(self._finance(Api.FINANCE_INCOME_STATEMENT, code, quarterly),
                                INCOME_STATEMENT_COLUMNS, True)

    def financial_ratios(self, code: str, quarterly: bool = False) -> pd.DataFrame:
        """재무비율 (``finance/financial-ratio`` FHKST66430300, real only): growth %, ROE %, EPS/SPS/BPS,
        reserve and debt ratios per period."""
        return parse_statements(self._finance(Api.FINANCE_FINANCIAL_RATIO, code, quarterly), RATIO_COLUMNS, False)

    _RANK_MARKETS = {"all": "0000", "kospi": "0001", "kosdaq": "1001", "kospi200": "2001"}

    def _rank_params(self, api: Api, market: str, exclude: str) -> dict[str, str]:
        try:
            iscd = self._RANK_MARKETS[market.lower()]
        except KeyError:
            raise ValueError(f"market must be one of {sorted(self._RANK_MARKETS)}, got {market!r}") from None
        if len(exclude) != 10 or set(exclude) - {"0", "1"}:
            raise ValueError("exclude is 10 flags of 0/1 (투자위험·경고·주의, 관리종목, 정리매매, 불성실공시, 우선주, "
                             f"거래정지, ETF, ETN, 신용주문불가, SPAC), got {exclude!r}")
        return {"FID_COND_MRKT_DIV_CODE": P.MARKET_DIV_KRX, "FID_COND_SCR_DIV_CODE": P.RANK_SCREEN_CODE[api],
                "FID_INPUT_ISCD": iscd, "FID_DIV_CLS_CODE": "0", "FID_TRGT_CLS_CODE": "0",
                "FID_TRGT_EXLS_CLS_CODE": exclude, "FID_INPUT_PRICE_1": "", "FID_INPUT_PRICE_2": "",
                "FID_VOL_CNT": ""}

    def volume_rank(self, market: str = "all", sort: str = "volume", exclude: str = "0000000000") -> pd.DataFrame:
        """거래량순위 (``quotations/volume-rank`` FHPST01710000, real only), top 30. ``sort``: volume,
        volume_growth, turnover, value, value_turnover."""
        sorts = {"volume": "0", "volume_growth": "1", "turnover": "2", "value": "3", "value_turnover": "4"}
        if sort not in sorts:
            raise ValueError(f"sort must be one of {sorted(sorts)}, got {sort!r}")
        params = {**self._rank_params(Api.VOLUME_RANK, market, exclude), "FID_BLNG_CLS_CODE": sorts[sort],
                  "FID_TRGT_CLS_CODE": "111111111", "FID_INPUT_DATE_1": ""}
        rows = self._output(Api.VOLUME_RANK, params)
        return parse_ranking([r for r in (rows or []) if isinstance(r, dict)],
                             {"prdy_vol": "prev_volume", "lstn_stcn": "shares_listed", "acml_tr_pbmn": "value",
                              "vol_inrt": "volume_growth_pct", "vol_tnrt": "turnover_pct"})

    def market_cap_rank(self, market: str = "all", exclude: str = "0000000000") -> pd.DataFrame:
        """시가총액 상위 (``ranking/market-cap`` FHPST01740000, real only), top 30; ``market_cap`` in KRW."""
        rows = self._output(Api.MARKET_CAP_RANK, self._rank_params(Api.MARKET_CAP_RANK, market, exclude))
        return parse_ranking([r for r in (rows or []) if isinstance(r, dict)],
                             {"lstn_stcn": "shares_listed", "stck_avls": "market_cap",
                              "mrkt_whol_avls_rlim": "market_share_pct"})

    def fluctuation_rank(self, direction: str = "rise", market: str = "all", days: int = 0,
                         exclude: str = "0000000000") -> pd.DataFrame:
        """등락률 순위 (``ranking/fluctuation`` FHPST01700000, real only), top 30. ``direction``: rise or
        fall; ``days`` > 0 adds the change over that many sessions (``period_change_pct``)."""
        sorts = {"rise": "0000", "fall": "0001"}
        if direction not in sorts:
            raise ValueError(f"direction must be rise or fall, got {direction!r}")
        if not 0 <= int(days) <= 250:
            raise ValueError("days must be 0..250")
        params = {**self._rank_params(Api.FLUCTUATION_RANK, market, exclude),
                  "FID_RANK_SORT_CLS_CODE": sorts[direction], "FID_INPUT_CNT_1": str(int(days)),
                  "FID_PRC_CLS_CODE": "0", "FID_RSFL_RATE1": "", "FID_RSFL_RATE2": ""}
        rows = self._output(Api.FLUCTUATION_RANK, params)
        return parse_ranking([r for r in (rows or []) if isinstance(r, dict)],
                             {"stck_hgpr": "high", "stck_lwpr": "low", "prd_rsfl_rate": "period_change_pct"})

"""Parsed answers of KIS's reference, book, tick, calendar, finance and ranking TRs.

Pure functions from a reply's ``output`` to frozen dataclasses or DataFrames, so the client stays a
transport and callers get typed values: integers for KRW and shares, ``date`` for dates, floats for
rates. Field names are the wire's (``shared/kis/spec`` catalogue); units are converted here once:

* ``finance/balance-sheet`` and ``income-statement`` amounts arrive in 억원 with decimals
  (``protocol.FINANCE_AMOUNT_UNIT``, unconfirmed) and leave as integer KRW;
* ranking caps (``stck_avls``) arrive in 억원 and leave as integer KRW.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Mapping

import pandas as pd

from brokers.kis import protocol as P
from brokers.kis.models import to_float, to_int

KRX_MARKET_IDS = {"STK": "KOSPI", "KSQ": "KOSDAQ", "KNX": "KONEX"}


def _ymd(text: Any) -> date | None:
    t = str(text or "").strip()
    if len(t) == 8 and t.isascii() and t.isdigit():
        try:
            return date(int(t[:4]), int(t[4:6]), int(t[6:]))
        except ValueError:
            return None
    return None


def _yn(text: Any) -> bool:
    return str(text or "").strip().upper() == "Y"


@dataclass(frozen=True)
class ProductInfo:
    """상품기본조회 (``search-info`` CTPF1604R)."""

    code: str
    isin: str
    name: str
    short_name: str
    name_en: str
    product_type: str
    listed_on: date | None
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_product_info(out: Mapping[str, Any]) -> ProductInfo:
    return ProductInfo(code=str(out.get("shtn_pdno") or out.get("pdno") or "").strip(),
                       isin=str(out.get("std_pdno") or "").strip(), name=str(out.get("prdt_name") or "").strip(),
                       short_name=str(out.get("prdt_abrv_name") or "").strip(),
                       name_en=str(out.get("prdt_eng_name") or "").strip(),
                       product_type=str(out.get("prdt_type_cd") or "").strip(),
                       listed_on=_ymd(out.get("frst_erlm_dt") or out.get("sale_strt_dt")), raw=dict(out))


@dataclass(frozen=True)
class StockInfo:
    """주식기본조회 (``search-stock-info`` CTPF1002R): what a stock is, as of the query day."""

    code: str
    isin: str
    name: str
    name_en: str
    market: str              # KOSPI / KOSDAQ / KONEX (from mket_id_cd; "" if unknown)
    group: str               # scty_grp_id_cd: ST stock, EF ETF, EN ETN, RT REIT…
    preferred: bool
    shares_listed: int
    par_value: int
    capital: int
    listed_on: date | None
    delisted_on: date | None
    sector_code: str
    sector_name: str
    halted: bool
    admin_issue: bool
    kospi200: bool
    prev_close: int
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_stock_info(out: Mapping[str, Any]) -> StockInfo:
    market = KRX_MARKET_IDS.get(str(out.get("mket_id_cd") or "").strip(), "")
    listed = _ymd(out.get("scts_mket_lstg_dt")) or _ymd(out.get("kosdaq_mket_lstg_dt"))
    gone = _ymd(out.get("lstg_abol_dt")) or _ymd(out.get("scts_mket_lstg_abol_dt")) or _ymd(
        out.get("kosdaq_mket_lstg_abol_dt"))
    return StockInfo(
        code=str(out.get("pdno") or "").strip()[-6:], isin=str(out.get("std_pdno") or "").strip(),
        name=str(out.get("prdt_abrv_name") or out.get("prdt_name") or "").strip(),
        name_en=str(out.get("prdt_eng_abrv_name") or out.get("prdt_eng_name") or "").strip(), market=market,
        group=str(out.get("scty_grp_id_cd") or "").strip(),
        preferred=str(out.get("stck_kind_cd") or "").strip().startswith("2"),
        shares_listed=to_int(out.get("lstg_stqt")), par_value=to_int(out.get("papr")), capital=to_int(out.get("cpta")),
        listed_on=listed, delisted_on=gone, sector_code=str(out.get("idx_bztp_lcls_cd") or "").strip(),
        sector_name=str(out.get("idx_bztp_lcls_cd_name") or "").strip(), halted=_yn(out.get("tr_stop_yn")),
        admin_issue=_yn(out.get("admn_item_yn")), kospi200=_yn(out.get("kospi200_item_yn")),
        prev_close=to_int(out.get("bfdy_clpr")), raw=dict(out))


@dataclass(frozen=True)
class OrderBook:
    """주식현재가 호가/예상체결 (``inquire-asking-price-exp-ccn``): 10 levels, level 1 first."""

    code: str
    time: str                          # aspr_acpt_hour HHMMSS
    asks: list[tuple[int, int]]        # (price, quantity)
    bids: list[tuple[int, int]]
    total_ask_qty: int
    total_bid_qty: int
    expected_price: int                # antc_cnpr (0 outside auctions)
    expected_volume: int
    vi: str
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_order_book(code: str, out1: Mapping[str, Any], out2: Mapping[str, Any]) -> OrderBook:
    asks = [(to_int(out1.get(f"askp{i}")), to_int(out1.get(f"askp_rsqn{i}"))) for i in range(1, 11)]
    bids = [(to_int(out1.get(f"bidp{i}")), to_int(out1.get(f"bidp_rsqn{i}"))) for i in range(1, 11)]
    return OrderBook(code=code, time=str(out1.get("aspr_acpt_hour") or ""), asks=asks, bids=bids,
                     total_ask_qty=to_int(out1.get("total_askp_rsqn")), total_bid_qty=to_int(out1.get("total_bidp_rsqn")),
                     expected_price=to_int(out2.get("antc_cnpr")), expected_volume=to_int(out2.get("antc_vol")),
                     vi=str(out2.get("vi_cls_code") or "").strip(), raw={"output1": dict(out1), "output2": dict(out2)})


TICK_COLUMNS = ("time", "price", "change", "volume", "strength")


def parse_ticks(day: date, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """주식현재가 체결 (``inquire-ccnl``): the latest prints, oldest first, ``time`` naive KST."""
    recs = []
    for r in rows:
        t = str(r.get("stck_cntg_hour") or "").strip()
        if len(t) != 6 or not t.isdigit():
            continue
        try:
            when = datetime(day.year, day.month, day.day, int(t[:2]), int(t[2:4]), int(t[4:]))
        except ValueError:
            continue
        recs.append((when, to_int(r.get("stck_prpr")), to_int(r.get("prdy_vrss")), to_int(r.get("cntg_vol")),
                     to_float(r.get("tday_rltv"))))
    recs.sort(key=lambda x: x[0])
    return pd.DataFrame(recs, columns=list(TICK_COLUMNS))


@dataclass(frozen=True)
class HolidayRow:
    """국내휴장일조회 (``chk-holiday`` CTCA0903R) for one calendar day."""

    day: date
    business_day: bool       # bzdy_yn 영업일
    trading_day: bool        # tr_day_yn 거래일
    open_day: bool           # opnd_yn 개장일: the market trades
    settlement_day: bool     # sttl_day_yn 결제일


def parse_holidays(rows: Iterable[Mapping[str, Any]]) -> list[HolidayRow]:
    out = []
    for r in rows:
        d = _ymd(r.get("bass_dt"))
        if d is not None:
            out.append(HolidayRow(d, _yn(r.get("bzdy_yn")), _yn(r.get("tr_day_yn")), _yn(r.get("opnd_yn")),
                                  _yn(r.get("sttl_day_yn"))))
    return sorted(out, key=lambda h: h.day)


@dataclass(frozen=True)
class CalendarMismatch:
    """A day where KIS's ``chk-holiday`` and the local KRX calendar (``market.calendar``) disagree."""

    day: date
    kis_open: bool
    local_open: bool


BALANCE_SHEET_COLUMNS = {"cras": "current_assets", "fxas": "non_current_assets", "total_aset": "total_assets",
                         "flow_lblt": "current_liabilities", "fix_lblt": "non_current_liabilities",
                         "total_lblt": "total_liabilities", "cpfn": "capital_stock", "cfp_surp": "capital_surplus",
                         "prfi_surp": "retained_earnings", "total_cptl": "total_equity"}
INCOME_STATEMENT_COLUMNS = {"sale_account": "revenue", "sale_cost": "cost_of_sales", "sale_totl_prfi": "gross_profit",
                            "depr_cost": "depreciation", "sell_mang": "sga", "bsop_prti": "operating_income",
                            "bsop_non_ernn": "non_operating_income", "bsop_non_expn": "non_operating_expense",
                            "op_prfi": "ordinary_income", "spec_prfi": "extraordinary_gain",
                            "spec_loss": "extraordinary_loss", "thtr_ntin": "net_income"}
RATIO_COLUMNS = {"grs": "revenue_growth_pct", "bsop_prfi_inrt": "operating_income_growth_pct",
                 "ntin_inrt": "net_income_growth_pct", "roe_val": "roe_pct", "eps": "eps", "sps": "sps",
                 "bps": "bps", "rsrv_rate": "reserve_ratio_pct", "lblt_rate": "debt_ratio_pct"}
"""Wire field → column name of the frames the client returns (the same names as the emulator's
reference file, so a point-in-time store can compare them directly)."""


def _period_end(yyyymm: Any) -> date | None:
    t = str(yyyymm or "").strip()
    if len(t) != 6 or not t.isdigit():
        return None
    y, m = int(t[:4]), int(t[4:])
    if not 1 <= m <= 12:
        return None
    nxt = date(y + (m == 12), m % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


def parse_statements(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str], amounts: bool) -> pd.DataFrame:
    """Rows of a ``finance/*`` TR → frame indexed by period end (oldest first). ``amounts``: 억원 → KRW."""
    recs: dict[date, dict[str, Any]] = {}
    for r in rows:
        end = _period_end(r.get("stac_yymm"))
        if end is None:
            continue
        rec: dict[str, Any] = {}
        for wire, name in columns.items():
            v = to_float(r.get(wire))
            rec[name] = int(round(v * P.FINANCE_AMOUNT_UNIT)) if amounts else v
        recs[end] = rec
    idx = pd.DatetimeIndex([pd.Timestamp(d) for d in sorted(recs)], name="period_end")
    return pd.DataFrame([recs[d] for d in sorted(recs)], index=idx, columns=list(columns.values()))


RANK_COLUMNS = ("rank", "code", "name", "price", "change", "change_pct", "volume")


def parse_ranking(rows: Iterable[Mapping[str, Any]], extra: Mapping[str, str]) -> pd.DataFrame:
    """Rows of a ranking TR → frame in rank order: the common columns plus ``extra`` (wire → name);
    ``stck_avls`` (market cap, 억원) becomes integer KRW."""
    recs = []
    for r in rows:
        code = str(r.get("mksc_shrn_iscd") or r.get("stck_shrn_iscd") or "").strip()
        rec: dict[str, Any] = {"rank": to_int(r.get("data_rank")), "code": code,
                               "name": str(r.get("hts_kor_isnm") or "").strip(), "price": to_int(r.get("stck_prpr")),
                               "change": to_int(r.get("prdy_vrss")), "change_pct": to_float(r.get("prdy_ctrt")),
                               "volume": to_int(r.get("acml_vol"))}
        for wire, name in extra.items():
            if wire == "stck_avls":
                rec[name] = to_int(r.get(wire)) * P.FINANCE_AMOUNT_UNIT
            elif wire.endswith(("_rate", "_rlim", "_tnrt", "_inrt")):
                rec[name] = to_float(r.get(wire))
            else:
                rec[name] = to_int(r.get(wire))
        recs.append(rec)
    recs.sort(key=lambda x: x["rank"])
    return pd.DataFrame(recs, columns=list(RANK_COLUMNS) + list(extra.values()))


__all__ = ["BALANCE_SHEET_COLUMNS", "CalendarMismatch", "HolidayRow", "INCOME_STATEMENT_COLUMNS", "OrderBook",
           "ProductInfo", "RATIO_COLUMNS", "StockInfo", "parse_holidays", "parse_order_book", "parse_product_info",
           "parse_ranking", "parse_statements", "parse_stock_info", "parse_ticks"]

"""Parsed KIS REST replies: small frozen dataclasses with integer KRW, plus the pure parsers.

Why parse here and not in the broker: KIS sends every value as a string (``"70000"``,
``"72023.83"``, ``"0.0000"``, ``""``), keys in lower case in inquiries but UPPER case in order
replies (PROTOCOL §3.2), and several spellings for the same field (``cncl_cfrm_qty`` vs the
official sample's ``cnc_cfrm_qty``). The broker should see one clean shape. Every object keeps
``raw`` (the reply rows as received) for journaling and for fields not lifted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from brokers.kis import protocol as P

__all__ = [
    "OrderReply", "Holding", "Cash", "Balance", "DailyOrder", "BuyingPower", "Quote", "to_int", "to_float",
    "get_ci", "parse_order_reply", "parse_holding", "parse_cash", "parse_daily_order", "parse_open_order",
    "parse_buying_power", "parse_quote", "side_name",
]


# ---- value helpers ---------------------------------------------------------------------------


def to_int(value: Any, default: int = 0) -> int:
    """KIS number text → int: ``""``/``None`` → default, ``"0.0000"`` → 0, ``"-100"`` → -100,
    ``"+5"`` → 5, ``"1,000"`` → 1000. Fractions are truncated toward zero."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value).strip().replace(",", "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return int(Decimal(text))
    except (InvalidOperation, ValueError):
        return default


def to_float(value: Any, default: float = 0.0) -> float:
    if value is None:
        return default
    text = str(value).strip().replace(",", "")
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        return default


def get_ci(row: Mapping[str, Any], *names: str, default: Any = "") -> Any:
    """First present key among ``names``, matched case-insensitively (order replies are UPPER case,
    inquiries lower case, and ``excg_id_dvsn_Cd`` is mixed case in the doc)."""
    for n in names:
        if n in row:
            return row[n]
    lower = {str(k).lower(): v for k, v in row.items()}
    for n in names:
        v = lower.get(n.lower())
        if v is not None:
            return v
    return default


def side_name(code: str) -> str:
    """``SLL_BUY_DVSN_CD``/``SELN_BYOV_CLS`` 01/02 → "sell"/"buy" (anything else is returned as is)."""
    c = str(code).strip()
    if c == P.BUY:
        return "buy"
    if c == P.SELL:
        return "sell"
    return c


def _date(text: Any) -> date | None:
    t = str(text or "").strip()
    if len(t) != 8 or not t.isdigit():
        return None
    return date(int(t[:4]), int(t[4:6]), int(t[6:]))


# ---- orders ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderReply:
    """Answer to ``order-cash`` / ``order-rvsecncl``: KIS accepted and forwarded the request.

    ``odno`` is kept exactly as sent (real ``0001569157``; paper padded or not) — compare with
    ``protocol.same_order_number``. ``branch`` (``KRX_FWDG_ORD_ORGNO``) is needed to revise/cancel.
    """

    odno: str
    branch: str
    ord_time: str
    msg_cd: str
    msg1: str
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_order_reply(body: Mapping[str, Any]) -> OrderReply:
    out = body.get("output") or body.get("OUTPUT") or {}
    if not isinstance(out, Mapping):
        out = {}
    return OrderReply(
        odno=str(get_ci(out, "ODNO")).strip(),
        branch=str(get_ci(out, "KRX_FWDG_ORD_ORGNO")).strip(),
        ord_time=str(get_ci(out, "ORD_TMD")).strip(),
        msg_cd=str(body.get("msg_cd", "")).strip(),
        msg1=str(body.get("msg1", "")).strip(),
        raw=dict(body),
    )


# ---- balance ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holding:
    """One ``inquire-balance`` ``output1`` row (a stock held)."""

    code: str
    name: str
    qty: int                 # hldg_qty
    sellable_qty: int        # ord_psbl_qty: drops while sell orders are open
    avg_price: float         # pchs_avg_pric (4 decimals on the wire)
    purchase_amount: int     # pchs_amt
    price: int               # prpr (last price)
    eval_amount: int         # evlu_amt
    pnl: int                 # evlu_pfls_amt
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_holding(row: Mapping[str, Any]) -> Holding:
    return Holding(
        code=str(row.get("pdno", "")).strip(), name=str(row.get("prdt_name", "")).strip(),
        qty=to_int(row.get("hldg_qty")), sellable_qty=to_int(row.get("ord_psbl_qty")),
        avg_price=to_float(row.get("pchs_avg_pric")), purchase_amount=to_int(row.get("pchs_amt")),
        price=to_int(row.get("prpr")), eval_amount=to_int(row.get("evlu_amt")),
        pnl=to_int(row.get("evlu_pfls_amt")), raw=dict(row))


@dataclass(frozen=True)
class Cash:
    """``inquire-balance`` ``output2``: 예수금 (cash) by settlement day and valuations, KRW."""

    d0: int                  # dnca_tot_amt: D+0 예수금
    d1: int                  # nxdy_excc_amt: D+1
    d2: int                  # prvs_rcdl_excc_amt: D+2 (what is really yours after settlement)
    total_eval: int          # tot_evlu_amt = securities + D+2 cash
    securities_eval: int     # scts_evlu_amt
    fees_today: int          # thdt_tlex_amt: today's fees + taxes
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_cash(row: Mapping[str, Any]) -> Cash:
    return Cash(d0=to_int(row.get("dnca_tot_amt")), d1=to_int(row.get("nxdy_excc_amt")),
                d2=to_int(row.get("prvs_rcdl_excc_amt")), total_eval=to_int(row.get("tot_evlu_amt")),
                securities_eval=to_int(row.get("scts_evlu_amt")), fees_today=to_int(row.get("thdt_tlex_amt")),
                raw=dict(row))


@dataclass(frozen=True)
class Balance:
    """All pages of ``inquire-balance``.

    ``holdings`` lists rows with ``qty > 0``; a stock sold out today stays in KIS's list with
    ``hldg_qty 0`` until D+2 (§6) — those rows are only in ``raw["output1"]``.
    """

    holdings: list[Holding]
    cash: Cash
    raw: dict[str, Any] = field(repr=False, compare=False)


# ---- daily orders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyOrder:
    """One order row (``inquire-daily-ccld``, or ``inquire-psbl-rvsecncl`` for ``open_orders`` on real).

    Revise and cancel requests are rows of their own with a new ``odno`` and ``orig_odno`` set;
    a cancel row has ``cancelled=True``. ``remaining_qty`` (``rmn_qty``) still counts an order that
    expired at the close.
    """

    date: date | None
    odno: str
    orig_odno: str
    branch: str
    side: str                # "buy" / "sell"
    code: str
    qty: int
    price: int
    ord_time: str            # HHMMSS (KST)
    filled_qty: int
    avg_fill_price: float
    cancelled: bool
    cancelled_qty: int
    remaining_qty: int
    rejected_qty: int
    ord_dvsn: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    filled_amount: int = 0       # tot_ccld_amt: KRW of every fill so far (exact, unlike the average)

    @property
    def filled_value(self) -> float:
        """KRW filled so far: ``tot_ccld_amt`` when KIS sends it, else average × quantity."""
        return float(self.filled_amount) if self.filled_amount else self.avg_fill_price * self.filled_qty


def parse_daily_order(row: Mapping[str, Any]) -> DailyOrder:
    return DailyOrder(
        date=_date(row.get("ord_dt")), odno=str(row.get("odno", "")).strip(),
        orig_odno=str(row.get("orgn_odno", "")).strip(), branch=str(get_ci(row, "ord_gno_brno", "ord_orgno")).strip(),
        side=side_name(str(row.get("sll_buy_dvsn_cd", ""))), code=str(row.get("pdno", "")).strip(),
        qty=to_int(row.get("ord_qty")), price=to_int(row.get("ord_unpr")), ord_time=str(row.get("ord_tmd", "")).strip(),
        filled_qty=to_int(row.get("tot_ccld_qty")), avg_fill_price=to_float(row.get("avg_prvs")),
        cancelled=str(row.get("cncl_yn", "")).strip().upper() == "Y",
        cancelled_qty=to_int(get_ci(row, "cncl_cfrm_qty", "cnc_cfrm_qty")),
        remaining_qty=to_int(row.get("rmn_qty")), rejected_qty=to_int(row.get("rjct_qty")),
        ord_dvsn=str(row.get("ord_dvsn_cd", "")).strip(), raw=dict(row), filled_amount=to_int(row.get("tot_ccld_amt")))


def parse_open_order(row: Mapping[str, Any], today: date) -> DailyOrder:
    """An ``inquire-psbl-rvsecncl`` row (real only) in the ``DailyOrder`` shape; ``remaining_qty`` =
    ``psbl_qty`` (what can still be revised or cancelled)."""
    filled = to_int(row.get("tot_ccld_qty"))
    amount = to_int(row.get("tot_ccld_amt"))
    return DailyOrder(
        date=today, odno=str(row.get("odno", "")).strip(), orig_odno=str(row.get("orgn_odno", "")).strip(),
        branch=str(row.get("ord_gno_brno", "")).strip(), side=side_name(str(row.get("sll_buy_dvsn_cd", ""))),
        code=str(row.get("pdno", "")).strip(), qty=to_int(row.get("ord_qty")), price=to_int(row.get("ord_unpr")),
        ord_time=str(row.get("ord_tmd", "")).strip(), filled_qty=filled,
        avg_fill_price=amount / filled if filled else 0.0, cancelled=False, cancelled_qty=0,
        remaining_qty=to_int(row.get("psbl_qty")), rejected_qty=0, ord_dvsn=str(row.get("ord_dvsn_cd", "")).strip(),
        raw=dict(row), filled_amount=amount)


# ---- buying power, quote ---------------------------------------------------------------------


@dataclass(frozen=True)
class BuyingPower:
    """``inquire-psbl-order``: ``cash`` = ord_psbl_cash; ``max_qty``/``max_amount`` = the no-margin
    (미수 없는) ``nrcvb_buy_qty``/``nrcvb_buy_amt`` — what a cash account can really buy (§3.8)."""

    cash: int
    max_qty: int
    max_amount: int
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_buying_power(out: Mapping[str, Any]) -> BuyingPower:
    return BuyingPower(cash=to_int(out.get("ord_psbl_cash")), max_qty=to_int(out.get("nrcvb_buy_qty")),
                       max_amount=to_int(out.get("nrcvb_buy_amt")), raw=dict(out))


@dataclass(frozen=True)
class Quote:
    """``inquire-price`` snapshot, KRW. ``upper_limit``/``lower_limit`` are KIS's exact band (§6)."""

    code: str
    price: int               # stck_prpr
    open: int
    high: int
    low: int
    upper_limit: int         # stck_mxpr 상한가
    lower_limit: int         # stck_llam 하한가
    base_price: int          # stck_sdpr 기준가
    tick: int                # aspr_unit 호가단위
    volume: int              # acml_vol
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_quote(code: str, out: Mapping[str, Any]) -> Quote:
    return Quote(code=str(out.get("stck_shrn_iscd") or code).strip(), price=to_int(out.get("stck_prpr")),
                 open=to_int(out.get("stck_oprc")), high=to_int(out.get("stck_hgpr")), low=to_int(out.get("stck_lwpr")),
                 upper_limit=to_int(out.get("stck_mxpr")), lower_limit=to_int(out.get("stck_llam")),
                 base_price=to_int(out.get("stck_sdpr")), tick=to_int(out.get("aspr_unit")),
                 volume=to_int(out.get("acml_vol")), raw=dict(out))


def parse_time_hhmmss(day: date, hhmmss: str, tz: Any) -> datetime | None:
    t = str(hhmmss or "").strip().zfill(6)
    if len(t) != 6 or not t.isdigit():
        return None
    h, m, s = int(t[:2]), int(t[2:4]), int(t[4:])
    if h > 23 or m > 59 or s > 59:
        return None
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=tz)

"""Parsed KIS WebSocket events — trades (H0STCNT0), books (H0STASP0), execution notices
(H0STCNI0 real / H0STCNI9 paper), market status (H0STMKO0: VI, halts) — and the pure functions that
build them from records.

Why separate from ``ws.py``: parsing is pure (records in, frozen dataclasses out) and is what the
broker's tests want to exercise without a socket; ``ws.py`` is only about the connection.

Field positions and names come from ``protocol.py``. Notices are parsed by **position** for fields
0–17 (identical in the 23-field paper and 26-field real layouts) and accept any length ≥ 23, as
PROTOCOL §4.10 demands; the tail is named by the layout that matches the length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from brokers.kis import protocol as P
from brokers.kis.models import parse_time_hhmmss, side_name, to_int

__all__ = ["Trade", "BookUpdate", "ExecutionNotice", "MarketStatusUpdate", "SubscriptionAck", "parse_trade",
           "parse_book", "parse_notice", "parse_market_status", "MIN_NOTICE_FIELDS", "KST"]

KST = ZoneInfo("Asia/Seoul")

MIN_NOTICE_FIELDS = len(P.H0STCNI9_FIELDS)
"""23: the shorter (paper) layout; anything shorter is malformed."""

_KIND = {P.RCTF_NORMAL: "new", P.RCTF_REVISE: "revise", P.RCTF_CANCEL: "cancel"}


def _when(day: date | None, hhmmss: str, today: date) -> datetime:
    d = day or today
    t = parse_time_hhmmss(d, hhmmss, KST)
    return t if t is not None else datetime(d.year, d.month, d.day, tzinfo=KST)


def _day(text: str) -> date | None:
    t = (text or "").strip()
    if len(t) == 8 and t.isdigit():
        return date(int(t[:4]), int(t[4:6]), int(t[6:]))
    return None


@dataclass(frozen=True)
class Trade:
    """One print (체결) from ``H0STCNT0``. ``time`` is aware (Asia/Seoul) from BSOP_DATE + STCK_CNTG_HOUR."""

    code: str
    time: datetime
    price: int
    volume: int          # CNTG_VOL: this print
    cum_volume: int      # ACML_VOL
    open: int
    high: int
    low: int
    ask1: int
    bid1: int
    raw: dict[str, str] = field(repr=False, compare=False)


def parse_trade(values: Sequence[str], today: date) -> Trade:
    r = P.record_dict(P.H0STCNT0_FIELDS, values)
    return Trade(code=r.get("MKSC_SHRN_ISCD", ""), time=_when(_day(r.get("BSOP_DATE", "")), r.get("STCK_CNTG_HOUR", ""), today),
                 price=to_int(r.get("STCK_PRPR")), volume=to_int(r.get("CNTG_VOL")), cum_volume=to_int(r.get("ACML_VOL")),
                 open=to_int(r.get("STCK_OPRC")), high=to_int(r.get("STCK_HGPR")), low=to_int(r.get("STCK_LWPR")),
                 ask1=to_int(r.get("ASKP1")), bid1=to_int(r.get("BIDP1")), raw=r)


@dataclass(frozen=True)
class BookUpdate:
    """10-level book (호가) from ``H0STASP0``: ``asks``/``bids`` are (price, qty), level 1 first.
    The frame carries only a time of day (BSOP_HOUR); the date is today's (KST)."""

    code: str
    time: datetime
    asks: list[tuple[int, int]]
    bids: list[tuple[int, int]]
    raw: dict[str, str] = field(repr=False, compare=False)


def parse_book(values: Sequence[str], today: date) -> BookUpdate:
    r = P.record_dict(P.H0STASP0_FIELDS + P.H0STASP0_EXTRA_FIELDS, values)
    asks = [(to_int(r.get(f"ASKP{i}")), to_int(r.get(f"ASKP_RSQN{i}"))) for i in range(1, 11)]
    bids = [(to_int(r.get(f"BIDP{i}")), to_int(r.get(f"BIDP_RSQN{i}"))) for i in range(1, 11)]
    return BookUpdate(code=r.get("MKSC_SHRN_ISCD", ""), time=_when(None, r.get("BSOP_HOUR", ""), today),
                      asks=asks, bids=bids, raw=r)


@dataclass(frozen=True)
class ExecutionNotice:
    """체결통보: an acknowledgement (``is_fill`` False) or a fill (``is_fill`` True) of one order.

    * ``odno``: the order number the event is about — for revise/cancel events the **new** number;
      ``orig_odno`` the original. Kept as received (zero-padded); compare with
      ``protocol.same_order_number``.
    * ``qty``/``price``: CNTG_QTY/CNTG_UNPR — this fill's on fills, but the **order's** on acks
      (never sum ``qty`` without checking ``is_fill``; PROTOCOL §7.5).
    * ``acpt``: ACPT_YN ``1`` received, ``2`` confirmed, ``3`` killed (IOC/FOK remainder).
    * ``time``: today's date (KST, from the client's clock) + STCK_CNTG_HOUR — notices carry no date.
    """

    account: str
    odno: str
    orig_odno: str
    side: str            # "buy" / "sell"
    kind: str            # "new" / "revise" / "cancel" (RCTF_CLS)
    ord_dvsn: str        # ODER_KIND ("00" on fills even for market orders)
    code: str
    qty: int
    price: int
    time: datetime
    refused: bool        # RFUS_YN == 1
    is_fill: bool        # CNTG_YN == 2
    acpt: str
    branch: str
    order_qty: int       # ODER_QTY
    order_price: int     # ODER_PRC (0 when empty)
    raw: dict[str, str] = field(repr=False, compare=False)

    @property
    def killed(self) -> bool:
        """IOC/FOK remainder cancelled by the exchange (ACPT_YN 3)."""
        return self.acpt == P.ACPT_KILLED

    @property
    def effective_order_price(self) -> int:
        """The order's own price whatever the notice kind: ``ODER_PRC`` when present, else — on an
        acknowledgement — ``CNTG_UNPR``, where KIS puts the order price (§4.10); 0 for market orders.
        Use this, not ``order_price``, to match an ack against a locally known order."""
        if self.order_price:
            return self.order_price
        return 0 if self.is_fill else self.price


def parse_notice(values: Sequence[str], today: date) -> ExecutionNotice:
    """Fields 0–17 by position; ≥ 23 fields required (23 paper, 26 real, extra tolerated)."""
    if len(values) < MIN_NOTICE_FIELDS:
        raise ValueError(f"execution notice with {len(values)} fields (need at least {MIN_NOTICE_FIELDS})")
    names = P.H0STCNI0_FIELDS if len(values) >= len(P.H0STCNI0_FIELDS) else P.H0STCNI9_FIELDS
    r = P.record_dict(names, values)
    c = P.H0STCNI0_FIELDS[:P.NOTICE_COMMON_FIELDS]  # positions 0–17, same in both layouts
    v = [str(x).strip() for x in values[:P.NOTICE_COMMON_FIELDS]]
    f = dict(zip(c, v))
    return ExecutionNotice(
        account=f["ACNT_NO"], odno=f["ODER_NO"], orig_odno=f["OODER_NO"], side=side_name(f["SELN_BYOV_CLS"]),
        kind=_KIND.get(f["RCTF_CLS"], f["RCTF_CLS"]), ord_dvsn=f["ODER_KIND"], code=f["STCK_SHRN_ISCD"],
        qty=to_int(f["CNTG_QTY"]), price=to_int(f["CNTG_UNPR"]), time=_when(None, f["STCK_CNTG_HOUR"], today),
        refused=f["RFUS_YN"] == P.RFUS_REFUSED, is_fill=f["CNTG_YN"] == P.CNTG_FILL, acpt=f["ACPT_YN"],
        branch=f["BRNC_NO"], order_qty=to_int(f["ODER_QTY"]), order_price=to_int(r.get("ODER_PRC")), raw=r)


@dataclass(frozen=True)
class MarketStatusUpdate:
    """장운영정보 (``H0STMKO0``) of one code: trading halt and volatility interruption (VI) state.

    ``vi`` is ``VI_CLS_CODE`` as sent; ``vi_active`` treats anything but ``N``/``0``/empty as a VI in
    force (the value set is unconfirmed, protocol.py). The frame carries no time: ``received`` is the
    client's clock when it arrived."""

    code: str
    halted: bool
    halt_reason: str
    vi: str
    status_code: str     # ISCD_STAT_CLS_CODE (58 halted, 51 admin issue, ...)
    received: datetime
    raw: dict[str, str] = field(repr=False, compare=False)

    @property
    def vi_active(self) -> bool:
        return self.vi.strip().upper() not in ("", "N", "0")


def parse_market_status(values: Sequence[str], now: datetime) -> MarketStatusUpdate:
    if len(values) < 9:
        raise ValueError(f"market status record with {len(values)} fields (need at least 9)")
    r = P.record_dict(P.H0STMKO0_FIELDS, values)
    return MarketStatusUpdate(code=r.get("MKSC_SHRN_ISCD", "").strip(), halted=r.get("TRHT_YN", "").strip() == "Y",
                              halt_reason=r.get("TR_SUSP_REAS_CNTT", "").strip(), vi=r.get("VI_CLS_CODE", "").strip(),
                              status_code=r.get("ISCD_STAT_CLS_CODE", "").strip(), received=now, raw=r)


@dataclass(frozen=True)
class SubscriptionAck:
    """A server answer to (un)subscribe: ``ok`` for OPSP0000/0001 and for OPSP0002 (already
    subscribed — normal after a reconnect)."""

    tr_id: str
    tr_key: str
    msg_cd: str
    msg1: str
    ok: bool
    subscribe: bool | None = None   # True/False when it answers our (un)subscribe, None if unknown
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

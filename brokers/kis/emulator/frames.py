"""Formatting of WebSocket records: trades (``H0STCNT0``), books (``H0STASP0``), notices (``H0STCNI0/9``).

Pure functions from the engine's immutable data (tape arrays, order snapshots) to lists of
strings in the field order of ``brokers/kis/protocol.py``; the protocol module joins and encrypts
them. Values follow the spec's captures: signed changes (``-100``), two-decimal rates
(``-0.14``), zero-padded notice numbers (``0000000001``).
"""

from __future__ import annotations

import zlib
from datetime import datetime

from brokers.kis import protocol as P
from brokers.kis.emulator.marketdata import DayTape, book_levels
from brokers.kis.emulator.matching import NoticeEvent
from market.calendar import KST
from market.sessions import schedule


def price_sign(price: int, base: int, lower: int, upper: int) -> str:
    """``PRDY_VRSS_SIGN``: 1 upper limit, 2 up, 3 flat, 4 lower limit, 5 down (§4.8)."""
    if upper and price >= upper:
        return P.PRICE_SIGN_UPPER_LIMIT
    if lower and price <= lower:
        return P.PRICE_SIGN_LOWER_LIMIT
    if price > base:
        return P.PRICE_SIGN_UP
    if price < base:
        return P.PRICE_SIGN_DOWN
    return P.PRICE_SIGN_FLAT


def diff_sign(diff: int) -> str:
    return P.PRICE_SIGN_UP if diff > 0 else P.PRICE_SIGN_DOWN if diff < 0 else P.PRICE_SIGN_FLAT


def pct(num: float, den: float) -> str:
    return f"{(num / den * 100) if den else 0.0:.2f}"


def hhmmss(ts: float) -> str:
    return datetime.fromtimestamp(ts, KST).strftime("%H%M%S")


def book_qty(code: str, level: int, side: int, i: int, scale: int) -> int:
    """Deterministic pseudo resting quantity of a synthetic book level (crc32, not ``hash``)."""
    h = zlib.crc32(f"{code}|{level}|{side}|{i}".encode()) & 0xFFFF
    return max(1, int(scale * (0.5 + h / 0xFFFF) * (1 + level / 3)))


def _scale(tape: DayTape) -> int:
    n = len(tape)
    return max(1, int(tape.cum_vol[-1] // n)) if n else 1


def book(tape: DayTape, i: int) -> tuple[tuple[int, ...], tuple[int, ...], list[int], list[int]]:
    """(asks, bids, ask quantities, bid quantities) after print ``i``."""
    last = int(tape.prices[i])
    asks, bids = book_levels(last, bool(tape.buy_init[i]), tape.day, tape.market, tape.band.lower,
                             tape.band.upper)
    scale = _scale(tape)
    aq = [book_qty(tape.code, k, 0, i, scale) if asks[k] else 0 for k in range(10)]
    bq = [book_qty(tape.code, k, 1, i, scale) if bids[k] else 0 for k in range(10)]
    return asks, bids, aq, bq


def trade_record(tape: DayTape, i: int) -> list[str]:
    """One ``H0STCNT0`` record (46 fields) for print ``i`` of ``tape``."""
    price = int(tape.prices[i])
    base = tape.base
    vol = int(tape.cum_vol[i])
    value = int(tape.cum_value[i])
    open_ = int(tape.prices[0])
    high = int(tape.run_high[i])
    low = int(tape.run_low[i])
    asks, bids, aq, bq = book(tape, i)
    buy_vol, sell_vol = int(tape.cum_buy_vol[i]), int(tape.cum_sell_vol[i])
    buy_cnt, sell_cnt = int(tape.cum_buy_cnt[i]), int(tape.cum_sell_cnt[i])
    sched = schedule(tape.day)
    session = (sched.close - sched.open).total_seconds()
    frac = min(max((float(tape.times[i]) - sched.open.timestamp()) / session, 0.0), 1.0) if session else 1.0
    prev_same_time = int(tape.prev_volume * frac)
    rec = [
        tape.code, hhmmss(float(tape.times[i])), str(price), price_sign(price, base, tape.band.lower, tape.band.upper),
        str(price - base), pct(price - base, base), f"{value / vol if vol else price:.2f}",
        str(open_), str(high), str(low), str(asks[0]), str(bids[0]), str(int(tape.volumes[i])), str(vol), str(value),
        str(sell_cnt), str(buy_cnt), str(buy_cnt - sell_cnt), pct(buy_vol, sell_vol) if sell_vol else "0.00",
        str(sell_vol), str(buy_vol), "1" if tape.buy_init[i] else "5", pct(buy_vol, buy_vol + sell_vol),
        pct(vol, tape.prev_volume),
        hhmmss(float(tape.times[0])), diff_sign(price - open_), str(price - open_),
        hhmmss(float(tape.times[int(tape.high_idx[i])])), diff_sign(price - high), str(price - high),
        hhmmss(float(tape.times[int(tape.low_idx[i])])), diff_sign(price - low), str(price - low),
        tape.day.strftime("%Y%m%d"), "20", "N", str(aq[0]), str(bq[0]), str(sum(aq)), str(sum(bq)), "0.00",
        str(prev_same_time), pct(vol, prev_same_time), "0", "", str(open_),
    ]
    return rec


def book_record(tape: DayTape, i: int, fields: int = 59) -> list[str]:
    """One ``H0STASP0`` record (59, or 62 with the mid-price tail) after print ``i``."""
    asks, bids, aq, bq = book(tape, i)
    rec = [tape.code, hhmmss(float(tape.times[i])), "0"]
    rec += [str(a) for a in asks] + [str(b) for b in bids] + [str(q) for q in aq] + [str(q) for q in bq]
    rec += [str(sum(aq)), str(sum(bq)), "0", "0",
            "0", "0", "0", "0", P.PRICE_SIGN_DOWN, "-100.00",  # ANTC_* block: ~0 outside auctions (§4.9)
            str(int(tape.cum_vol[i])), "0", "0", "0", "0", "0"]
    if fields == 62:
        mid = (asks[0] + bids[0]) // 2 if asks[0] and bids[0] else int(tape.prices[i])
        rec += [str(mid), "0", "0"]
    return rec


def notice_record(ev: NoticeEvent, fields: int) -> list[str]:
    """An execution notice in the 26-field (real) or 23-field (paper) layout (§4.10).

    Acknowledgements carry the order qty/price in ``CNTG_QTY``/``CNTG_UNPR`` and the order type in
    ``ODER_KIND``; fills carry this fill's qty/price and ``ODER_KIND 00`` (as KIS does even for
    market orders); kills (IOC/FOK remainder, expiry) are ``ACPT_YN 3`` with the killed qty.
    """
    o = ev.order
    acct = ev.account
    flags = {"ack": ("0", "1", "1"), "confirm": ("0", "1", "2"), "fill": ("0", "2", "2"),
             "reject": ("1", "1", "1"), "kill": ("0", "1", "3")}[ev.kind]
    is_fill = ev.kind == "fill"
    rec = [
        acct.hts_id,
        acct.number,
        P.zero_pad(o.no, 10),
        P.zero_pad(o.orig_no, 10) if o.orig_no else "",
        o.side,
        ev.rctf,
        "00" if is_fill else o.ord_dvsn,
        o.condition,
        o.code,
        P.zero_pad(ev.qty, 10),
        P.zero_pad(ev.price, 9),
        ev.at.astimezone(KST).strftime("%H%M%S"),
        flags[0], flags[1], flags[2],
        acct.branch,
        P.zero_pad(o.qty, 9),
        acct.holder,
    ]
    order_price = P.zero_pad(o.price, 9) if is_fill else ""
    if fields == 26:
        rec += ["", P.ORD_EXG_KRX, "Y", "", "10", "", o.name, order_price]
    else:
        rec += [P.ORD_EXG_KRX + "Y", "10", "", o.name, order_price]
    return rec

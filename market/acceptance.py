"""KRX order acceptance: the checks an order must pass before it can work, written once.

Why one module: the simulator (``brokers/sim.py``), the KIS broker (it refuses an order locally
rather than spend a scarce REST call on a certain rejection) and the KIS emulator (which plays
KIS's part) must refuse the *same* orders for the *same* reasons, or a strategy that runs in a
backtest would meet different refusals on paper. Each check is a pure function returning ``None``
(accepted) or a ``Refusal`` whose ``key`` is the reason's name everywhere: the emulator turns it
into KIS's ``msg_cd``/``msg1`` through ``brokers/kis/protocol.MESSAGES`` (one table), the brokers
show ``message`` to the strategy.

Rules (shared/krx/RULES.md §1–§3 and PROTOCOL §3.2/§3.8):

* quantity: a positive whole number of shares;
* tick: a limit price must sit on the tick grid of its session day (brokers may round it first);
* band: a limit price must be inside the session's price band (상한가/하한가);
* buying power: quantity × price per share + commission ≤ what is free — a market buy is covered
  at the upper limit (KIS reserves cash at 상한가 until it fills);
* sellable: a sale may not exceed the shares held minus shares already offered (no short sales);
* order window: orders are taken from the open (``regular``) or from the pre-open order entry at
  08:30 (``extended``) until the close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Literal

from market.calendar import KST, krx_calendar
from market.limits import PriceBand
from market.sessions import schedule
from market.ticks import Market, is_on_tick

OrderWindow = Literal["regular", "extended"]


@dataclass(frozen=True)
class Refusal:
    """Why an order cannot be accepted: ``key`` names the reason (a ``protocol.MESSAGES`` key),
    ``message`` says it to a person with the numbers involved."""

    key: str
    message: str

    def __str__(self) -> str:
        return self.message


def quantity_refusal(qty: float) -> Refusal | None:
    if qty != int(qty) or qty <= 0:
        return Refusal("bad_quantity", f"quantity {qty:g} must be a positive whole number of shares")
    return None


def tick_refusal(price: float, on: date, market: Market | str, label: str = "price") -> Refusal | None:
    if price <= 0 or not is_on_tick(price, on, market):
        return Refusal("tick_error", f"{label} {price:,.2f} is not on the tick grid ({Market(market).value}, {on})")
    return None


def band_refusal(price: float, band: PriceBand, on: date) -> Refusal | None:
    if band.contains(price):
        return None
    where = "above the upper" if price > band.upper else "below the lower"
    return Refusal("band_error", f"limit price {price:,.0f} is {where} limit of {on} "
                                 f"(band {band.lower:,}–{band.upper:,}, base {band.base:,})")


def reserve_price(limit: float | None, band: PriceBand) -> float:
    """Cash reserved per share while a buy works: its limit, or the upper limit for a market buy."""
    return float(limit) if limit else float(band.upper)


def buying_power_refusal(qty: float, per_share: float, available: float,
                         commission: Callable[[float], float]) -> Refusal | None:
    """``commission(value)`` is the caller's cost model (the simulator's rate, KIS's truncated KRW)."""
    value = qty * per_share
    need = value + commission(value)
    if need > available + 1e-6:
        return Refusal("insufficient_cash", f"insufficient buying power: {qty:,.0f} sh x {per_share:,.0f} "
                                            f"+ commission = {need:,.0f} KRW, available {available:,.0f} KRW")
    return None


def sellable_refusal(qty: float, held: float, offered: float) -> Refusal | None:
    sellable = held - offered
    if qty > sellable:
        return Refusal("sell_qty_exceeded", f"sell {qty:,.0f} sh exceeds sellable {sellable:,.0f} sh "
                                            f"(held {held:,.0f}); short selling is not allowed")
    return None


def window_bounds(day: date, window: OrderWindow) -> tuple[datetime, datetime]:
    """(first, end) moments orders are taken on a trading ``day``: [first, end)."""
    s = schedule(day)
    return (s.order_entry if window == "extended" else s.open), s.close


def window_refusal(now: datetime, window: OrderWindow) -> Refusal | None:
    """Is the order window open at ``now`` (aware)? Closed days and hours get the matching reason."""
    local = now.astimezone(KST)
    d = local.date()
    if not krx_calendar().is_trading_day(d):
        return Refusal("market_closed", f"{d} is not a KRX trading day")
    first, end = window_bounds(d, window)
    if local < first:
        return Refusal("market_not_open", f"orders are taken from {first:%H:%M} ({window} order window)")
    if local >= end:
        return Refusal("market_closed", f"the order window closed at {end:%H:%M}")
    return None


def order_session(now: datetime, window: OrderWindow) -> date:
    """The session an order placed at ``now`` works in: today while today's window has not closed,
    else the next trading day (a daily strategy deciding after the close)."""
    local = now.astimezone(KST)
    cal = krx_calendar()
    d = local.date()
    if cal.is_trading_day(d) and local < window_bounds(d, window)[1]:
        return d
    return cal.next_trading_day(d)

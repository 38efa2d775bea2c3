"""Account Manager: the loader (what KIS says we hold) and the checker (does our book agree?).

* ``load()`` reads ``inquire-balance`` (every page) into an ``AccountSnapshot``: a DataFrame of
  code, shares, sellable shares and average price, plus cash. Cash is KIS's D+2 예수금
  (``prvs_rcdl_excc_amt``): cash after every trade so far settles, which is what the local book
  tracks (a buy lowers it at once, a sale raises it at once), so the two compare directly.
* ``compare(local, snapshot)`` compares the broker's local book with a snapshot. Shares must agree
  exactly; cash within ``cash_tolerance_krw`` (fee rounding). The broker's reconciler
  (``reconcile.py``) runs the check without blocking the strategy: a difference is first re-checked
  after bringing the orders in line with KIS's own totals (a fill notice may still be on its way
  while the ledger already shows it); if it persists the result is a mismatch, and an alert shows
  both sides — it never passes silently.
* ``today_totals`` (per code: shares bought and sold today, ``thdt_buyqty``/``thdt_sll_qty``) lets
  a restart tell whether a balance and a read of today's orders describe the same moment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping

import pandas as pd

from brokers.kis.models import to_int
from market.calendar import KST

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountSnapshot:
    """What KIS reported at ``at``."""

    at: datetime
    positions: pd.DataFrame          # index code; columns shares, sellable, avg_price, price, name
    cash: int                        # D+2 예수금: cash once everything traded so far settles
    cash_d0: int
    cash_d1: int
    total_eval: int
    today: dict[str, tuple[int, int]] = field(default_factory=dict)   # code -> (bought today, sold today)

    def shares(self) -> dict[str, int]:
        return {code: int(q) for code, q in self.positions["shares"].items() if int(q) != 0}


@dataclass(frozen=True)
class LocalBook:
    """The broker's own view: shares per code and cash (same definition as the snapshot's)."""

    shares: Mapping[str, int]
    cash: float


@dataclass
class CheckResult:
    ok: bool
    at: datetime
    differences: list[str] = field(default_factory=list)
    local: LocalBook | None = None
    kis: AccountSnapshot | None = None

    def describe(self) -> str:
        if self.ok:
            return "local book matches KIS"
        return "; ".join(self.differences)


class AccountManager:
    """Loader and checker over a ``KISClient``."""

    def __init__(self, client, *, cash_tolerance_krw: int = 1_000,
                 now: Callable[[], datetime] = lambda: datetime.now(KST)) -> None:
        self.client = client
        self.cash_tolerance_krw = cash_tolerance_krw
        self.now = now
        self.last_snapshot: AccountSnapshot | None = None
        self.last_check: CheckResult | None = None

    def load(self) -> AccountSnapshot:
        """The loader: positions and cash as KIS reports them now."""
        bal = self.client.balance()
        rows = [{"code": h.code, "name": h.name, "shares": int(h.qty), "sellable": int(h.sellable_qty),
                 "avg_price": float(h.avg_price), "price": int(h.price)} for h in bal.holdings]
        frame = pd.DataFrame(rows, columns=["code", "name", "shares", "sellable", "avg_price", "price"])
        frame = frame.set_index("code")
        today = {}
        for row in bal.raw.get("output1", []):     # sold-out rows (hldg_qty 0) stay listed until D+2
            code = str(row.get("pdno", "")).strip()
            bought, sold = to_int(row.get("thdt_buyqty")), to_int(row.get("thdt_sll_qty"))
            if code and (bought or sold):
                today[code] = (bought, sold)
        snap = AccountSnapshot(at=self.now(), positions=frame, cash=int(bal.cash.d2), cash_d0=int(bal.cash.d0),
                               cash_d1=int(bal.cash.d1), total_eval=int(bal.cash.total_eval), today=today)
        self.last_snapshot = snap
        return snap

    def compare(self, local: LocalBook, snap: AccountSnapshot) -> list[str]:
        diffs = []
        theirs = snap.shares()
        mine = {c: int(q) for c, q in local.shares.items() if int(q) != 0}
        for code in sorted(set(theirs) | set(mine)):
            a, b = mine.get(code, 0), theirs.get(code, 0)
            if a != b:
                diffs.append(f"{code}: local {a} sh vs KIS {b} sh")
        if abs(local.cash - snap.cash) > self.cash_tolerance_krw:
            diffs.append(f"cash: local {local.cash:,.0f} KRW vs KIS D+2 {snap.cash:,} KRW "
                         f"(tolerance {self.cash_tolerance_krw:,})")
        return diffs

    def record(self, local: LocalBook, snap: AccountSnapshot, diffs: list[str]) -> CheckResult:
        """Keep the outcome of a check (the monitor shows the last one)."""
        result = CheckResult(ok=not diffs, at=snap.at, differences=diffs, local=local, kis=snap)
        self.last_check = result
        return result


def today_totals(rows) -> dict[str, tuple[int, int]]:
    """Per code, shares bought and sold today according to ``inquire-daily-ccld`` rows (every order of
    the account, ours or not), to compare with a snapshot's ``today``."""
    out: dict[str, list[int]] = {}
    for r in rows:
        if r.cancelled or not r.filled_qty:
            continue
        t = out.setdefault(r.code, [0, 0])
        t[0 if r.side == "buy" else 1] += int(r.filled_qty)
    return {c: (b, s) for c, (b, s) in out.items()}

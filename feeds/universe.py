"""Universes by rule: ``data.universe: {market: KOSPI, exclude: [etf, spac, preferred, 관리종목],
min_market_cap: 100000000000}`` resolved against the stock master, point in time where the data allows.

* **Who was listed**: every code the master knows whose listing overlaps the run's window (a code
  delisted during the window is kept: leaving it out would be survivorship bias).
* **Kinds** (ETF, ETN, SPAC, preferred, REIT, …) are what a code *is*; they come from the master.
* **Designations** (관리종목, 거래정지, 투자경고, …) are taken on the rule's day (``as_of``, default the
  run's first day) from the dated intervals the master has recorded (``stock_flags``); before the
  first master snapshot there is no history, so the snapshot's flags are used (documented limit).
* **Market cap** on the rule's day = that day's close (the last bar on or before it, original prices
  preferred) × the shares listed known on that day (``feeds.fundamentals.shares_on``); without a day,
  the master's own (previous-day) market cap.

The result is a fixed list of codes for the run, the same for both engines.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from configs.schema import UniverseRule
    from feeds.master import StockMaster

EXCLUDE_TAGS = {
    "etf": "etf", "etn": "etn", "spac": "spac", "스팩": "spac", "preferred": "preferred", "우선주": "preferred",
    "reit": "reit", "리츠": "reit", "fund": "fund", "infra": "infra", "dr": "dr", "foreign": "foreign",
    "admin_issue": "admin_issue", "관리종목": "admin_issue", "halted": "halted", "거래정지": "halted",
    "liquidation": "liquidation", "정리매매": "liquidation", "caution": "caution", "투자주의": "caution",
    "warning": "warning", "투자경고": "warning", "risk": "risk", "투자위험": "risk",
    "unfaithful_disclosure": "unfaithful_disclosure", "불성실공시": "unfaithful_disclosure",
    "overheated": "overheated", "단기과열": "overheated",
}
"""What ``exclude`` accepts (English or the Korean term) → a kind or a designation."""
KINDS = frozenset({"etf", "etn", "spac", "preferred", "reit", "fund", "infra", "dr", "foreign"})
_SNAPSHOT_FLAGS = {"halted": "halted", "admin_issue": "admin_issue", "liquidation": "liquidation",
                   "unfaithful_disclosure": "unfaithful_disclosure", "overheated": "overheated"}
_WARNING = {"01": "caution", "02": "warning", "03": "risk"}


def resolve_universe(rule: "UniverseRule", master: "StockMaster | None", cache_url: str | None,
                     start: date | None = None, end: date | None = None) -> list[str]:
    """The codes ``rule`` selects, sorted (see the module docstring)."""
    from configs.errors import InputError

    if master is None:
        raise InputError("data.universe is a rule, which needs the stock master: run 'run.py data master' "
                         "into the market-data database (data.cache_url) first")
    df = master.frame()
    if rule.market:
        df = df[df["market"].isin(rule.market)]
    first, last = start, end
    if last is not None:
        df = df[df["listing_date"].isna() | (df["listing_date"] <= last)]
    if first is not None:
        df = df[df["delisting_date"].isna() | (df["delisting_date"] >= first)]
    tags = {EXCLUDE_TAGS[t] for t in rule.exclude}
    kinds = tags & KINDS
    if kinds:
        df = df[~df["kind"].isin(kinds)]
    flags = tags - KINDS
    day = rule.as_of or start
    if flags:
        history = day is not None and master.first_snapshot() is not None and day >= master.first_snapshot()
        if history:
            on = master.flags_on(day)
            df = df[[not (on.get(c, set()) & flags) for c in df.index]]
        else:
            def current(row) -> set[str]:
                out = {f for col, f in _SNAPSHOT_FLAGS.items() if bool(row[col])}
                if row["market_warning"] in _WARNING:
                    out.add(_WARNING[row["market_warning"]])
                return out
            df = df[[not (current(row) & flags) for _, row in df.iterrows()]]
    if rule.min_market_cap is not None:
        if day is None or cache_url is None:
            caps = {c: float(v) for c, v in df["market_cap"].items()}
        else:
            from feeds.fundamentals import market_caps

            caps = market_caps(cache_url, list(df.index), day, master)
        df = df[[caps.get(c, float("nan")) >= rule.min_market_cap for c in df.index]]
    return sorted(df.index)


__all__ = ["EXCLUDE_TAGS", "KINDS", "resolve_universe"]

"""Screen the universe for established up-trends, enter the strongest N with risk sizing, exit when
the trend breaks — a declared strategy (runs on both engines).

* Screen (every ``rebalance_every`` bars): close > SMA(fast) > SMA(slow), positive momentum
  (``roc_<momentum>`` > 0), RSI not overbought, and enough liquidity (average traded value).
* Rank by momentum (rate of change over ``momentum`` bars); enter the top ``top_n`` codes not
  already held, at market, sized by the configured sizer (ATR sizing by default in the example
  config), within the risk limits.
* Exit at market when the close falls below SMA(``exit_ma``) (trend break); the stop-loss of the
  risk config applies on top.
* Optional fundamental screens (0 = off), point in time (``feeds/fundamentals.py``): ``max_per``,
  ``max_pbr``, ``min_roe`` (%), ``min_market_cap`` (KRW) — a value screen composed with the trend one.
"""

from __future__ import annotations

from typing import Any

from strategies.declared import DeclaredStrategy
from strategies.params import Param
from strategies.screens import (Screener, above, below, market_cap_above, min_turnover, pbr_below, per_below,
                                roe_above, rsi_above, trend_up)
from strategies.spec import ExitWhen, ScreenEntry, StrategySpec


class ScreenMomentum(DeclaredStrategy):
    params = (
        ("top_n", 5),
        ("fast", 20),
        ("slow", 60),
        ("momentum", 60),
        ("exit_ma", 20),
        ("rsi_max", 80.0),
        ("min_turnover_krw", 1_000_000_000.0),
        ("rebalance_every", 5),
        ("max_per", 0.0),
        ("max_pbr", 0.0),
        ("min_roe", 0.0),
        ("min_market_cap", 0.0),
    )
    param_rules = {
        "top_n": Param(int, ge=1, le=500, doc="codes held at most"),
        "fast": Param(int, ge=2, le=500, doc="trend: fast SMA length"),
        "slow": Param(int, ge=3, le=1000, doc="trend: slow SMA length"),
        "momentum": Param(int, ge=1, le=1000, doc="rate-of-change lookback (bars)"),
        "exit_ma": Param(int, ge=2, le=1000, doc="exit when the close falls below this SMA"),
        "rsi_max": Param(float, gt=0, le=100, doc="skip codes whose RSI(14) is above this"),
        "min_turnover_krw": Param(float, ge=0, doc="average traded value floor, KRW"),
        "rebalance_every": Param(int, ge=1, le=1000, doc="bars between screens"),
        "max_per": Param(float, ge=0, le=10_000, doc="PER below this (0 = no PER screen)"),
        "max_pbr": Param(float, ge=0, le=1_000, doc="PBR below this (0 = no PBR screen)"),
        "min_roe": Param(float, ge=0, le=1_000, doc="ROE % above this (0 = no ROE screen)"),
        "min_market_cap": Param(float, ge=0, le=1e16, doc="market cap KRW above this (0 = no size screen)"),
    }

    @classmethod
    def check_params(cls, p: dict[str, Any]) -> list[str]:
        if p["fast"] >= p["slow"]:
            return [f"fast = {p['fast']} must be shorter than slow = {p['slow']}"]
        return []

    @classmethod
    def declare(cls, p: dict[str, Any]) -> StrategySpec:
        screen = (trend_up(p["fast"], p["slow"]) & above(f"roc_{p['momentum']}", 0.0)
                  & ~rsi_above(p["rsi_max"]) & min_turnover(p["min_turnover_krw"]))
        for key, make in (("max_per", per_below), ("max_pbr", pbr_below), ("min_roe", roe_above),
                          ("min_market_cap", market_cap_above)):
            if p[key]:
                screen = screen & make(p[key])
        screener = Screener(screen, rank_by=f"roc_{p['momentum']}", top_n=p["top_n"])
        return StrategySpec(entry=ScreenEntry(screener, rebalance_every=p["rebalance_every"]),
                            exits=(ExitWhen(below("close", f"sma_{p['exit_ma']}"), "trend break"),))

    @classmethod
    def build_screener(cls, params: dict[str, Any]) -> Screener:
        """The entry screener for these params (kept for callers of the pre-declaration API)."""
        return cls.spec_for(params).entry.screener

"""The fast engine agrees with the event-driven simulator fill for fill.

For each example strategy (all four are declarations) and a spread of broker and risk settings —
DAY expiry, tick rounding and rejection, band checks, the upper-limit reservation of market buys
(and the margin calls of the last-close reservation), the volume cap with partial fills, slippage in
ticks, commission and the dated sell tax, stop-losses, the daily-loss kill switch, the sizers and
position/exposure limits — both engines run the same config and must give the same fills (date,
code, side, quantity, price, commission, tax), the same equity and cash on every session to the won,
and the same orders (status, filled quantity, reason) and risk refusals. Halts are in every demo
market (a tenth of the codes), listings and delistings in the real data.

The demo markets are sized down so the event runs take about a second each; the real-data cases run
when ``../shared/data/krx`` is present and skip cleanly otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import SHARED, assert_same_run, needs_shared
from configs.schema import parse_config
from engine.backtest import run_backtest
from research.engine import run_fast_backtest

ROOT = Path(__file__).resolve().parents[2]


def demo(codes: int = 12, start: str = "2022-01-03", end: str = "2023-12-28", seed: int = 20240101, **extra):
    return {"source": "demo", "demo": {"codes": codes, "start": start, "end": end, "seed": seed}, **extra}


DEMO_CASES = {
    "momentum-atr-cap-slip-killswitch": {
        "broker": {"cash": 100_000_000, "slippage_ticks": 1, "volume_cap_pct": 10},
        "data": demo(),
        "strategy": {"name": "screen_momentum", "params": {"top_n": 4, "fast": 10, "slow": 30, "momentum": 20}},
        "risk": {"sizer": {"kind": "atr"}, "limits": {"max_position_pct": 25, "max_exposure_pct": 95,
                                                      "daily_loss_limit_pct": 2, "stop_loss_pct": 8}}},
    "momentum-fraction-limits-commission": {
        "broker": {"cash": 50_000_000, "commission_pct": 0.015, "volume_cap_pct": 0.5},
        "data": demo(15, seed=11),
        "strategy": {"name": "screen_momentum", "params": {"top_n": 6, "fast": 5, "slow": 20, "momentum": 10,
                                                            "exit_ma": 10, "rebalance_every": 3, "rsi_max": 75,
                                                            "min_turnover_krw": 5e8}},
        "risk": {"sizer": {"kind": "fixed_fraction", "fraction": 0.2},
                 "limits": {"max_position_pct": 18, "max_exposure_pct": 80, "stop_loss_pct": 5}}},
    "momentum-lastclose-margin-flat-tax": {
        "broker": {"market_buy_reserve": "last_close", "sell_tax_pct": 0.2, "slippage_ticks": 2},
        "data": demo(10, seed=9, start="2022-11-01", end="2024-03-29"),
        "strategy": {"name": "screen_momentum", "params": {"top_n": 3, "rebalance_every": 1, "fast": 5,
                                                            "slow": 20, "momentum": 10}},
        "risk": {"sizer": {"kind": "fixed_size", "size": 300}, "limits": {"max_position_pct": None}}},
    "momentum-equal-weight-ascending": {
        "broker": {"cash": 30_000_000},
        "data": demo(12, seed=5, start="2019-01-02", end="2020-12-30"),
        "strategy": {"name": "screen_momentum", "params": {"top_n": 5, "fast": 10, "slow": 40, "momentum": 40}},
        "risk": {"sizer": {"kind": "equal_weight", "slots": 6}, "limits": {"max_exposure_pct": 70}}},
    "targets-repeat-reject-slip-killswitch": {
        "broker": {"cash": 30_000_000, "price_rounding": "reject", "slippage_ticks": 1},
        "data": demo(8, start="2021-01-04", end="2022-12-29"),
        "strategy": {"name": "target_buy", "targets": str(ROOT / "configs" / "targets-demo.yaml"),
                     "params": {"repeat": True}},
        "risk": {"limits": {"max_position_pct": 40, "stop_loss_pct": 5, "daily_loss_limit_pct": 2}}},
    "targets-round": {
        "broker": {"cash": 30_000_000, "volume_cap_pct": 2},
        "data": demo(8, start="2021-01-04", end="2022-12-29"),
        "strategy": {"name": "target_buy", "targets": str(ROOT / "configs" / "targets-demo.yaml")},
        "risk": {"limits": {"max_position_pct": 40, "stop_loss_pct": 10}}},
    "smacross-fixed-size-cap": {
        "broker": {"cash": 40_000_000, "volume_cap_pct": 5, "slippage_ticks": 1},
        "data": demo(15, seed=13),
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
        "risk": {"sizer": {"kind": "fixed_size", "size": 200}, "limits": {"max_position_pct": None,
                                                                         "max_exposure_pct": None}}},
    "smacross-max-positions-ascending-stop": {
        "broker": {"cash": 40_000_000},
        "data": demo(15, seed=14),
        "strategy": {"name": "sma_cross", "params": {"fast": 10, "slow": 30, "max_positions": 4}},
        "risk": {"sizer": {"kind": "equal_weight", "slots": 4}, "limits": {"stop_loss_pct": 6}}},
    "hold-topup": {
        "broker": {"cash": 20_000_000},
        "data": demo(12, seed=3, start="2023-01-02", end="2023-12-28"),
        "strategy": {"name": "buy_and_hold"},
        "risk": {"limits": {"max_position_pct": 10}}},
    "hold-once-cap-slip": {
        "broker": {"slippage_ticks": 2, "volume_cap_pct": 1},
        "data": demo(12, seed=3, start="2023-01-02", end="2023-12-28"),
        "strategy": {"name": "buy_and_hold", "params": {"topup": False}}},
}


def both(body: dict):
    cfg = parse_config({"name": "agree", "report": {"benchmark": "none"}, **body})
    return run_backtest(cfg).record, run_fast_backtest(cfg).record


@pytest.mark.parametrize("case", sorted(DEMO_CASES))
def test_demo_market_fill_for_fill(case):
    event, fast = both(DEMO_CASES[case])
    assert len(event.trades) > 0, "the case should trade"
    assert_same_run(event, fast)


def test_demo_quickstart_config_fill_for_fill_with_report_figures(tmp_path):
    """The Quickstart config (30 codes, five years, every risk rule on): also the same metrics."""
    import json

    from analysis.report import write_report
    from configs.schema import load_config

    cfg = load_config(ROOT / "configs" / "backtest-demo.yaml")
    event, fast = run_backtest(cfg).record, run_fast_backtest(cfg).record
    assert_same_run(event, fast)
    m_event = json.loads((write_report(event, tmp_path / "e").parent / "metrics.json").read_text())
    m_fast = json.loads((write_report(fast, tmp_path / "f").parent / "metrics.json").read_text())
    for key in ("total_return", "cagr", "sharpe", "max_drawdown", "fills", "round_trips", "commission", "tax",
                "turnover", "exposure", "benchmark"):
        assert m_event[key] == m_fast[key], key


# ------------------------------------------------------------------------------ real KRX bars

@pytest.fixture(scope="module")
def unadjusted_2024(tmp_path_factory) -> Path:
    """KRX's own unadjusted bars of the 2024-01/02 window, split into CODE.csv files (on the tick grid)."""
    raw = pd.read_csv(SHARED / "krx_raw" / "krx_raw_windows.csv", dtype={"code": str})
    raw = raw[(raw["date"] >= "2024-01-02") & (raw["date"] <= "2024-02-13")]
    folder = tmp_path_factory.mktemp("krx_raw_2024")
    for code, rows in raw.groupby("code"):
        rows[["date", "open", "high", "low", "close", "volume"]].to_csv(folder / f"{code}.csv", index=False)
    return folder


@needs_shared
def test_real_unadjusted_targets_fill_for_fill(unadjusted_2024, tmp_path):
    codes = ["005930", "000660", "035720", "247540", "086520", "004410", "001510", "007310"]
    first = {c: pd.read_csv(unadjusted_2024 / f"{c}.csv").iloc[0] for c in codes}
    targets = tmp_path / "targets.csv"
    lines = ["code,target_buy_price,target_return_pct,max_capital,stop_loss_pct"]
    for c in codes:
        lines.append(f"{c},{int(first[c]['close'] * 0.99)},3,3000000,4")
    targets.write_text("\n".join(lines) + "\n")
    event, fast = both({
        "broker": {"cash": 30_000_000, "slippage_ticks": 1},
        "data": {"source": "csv", "path": str(unadjusted_2024), "universe": codes, "adjusted": False,
                 "markets_file": str(SHARED / "tickers.csv")},
        "strategy": {"name": "target_buy", "targets": str(targets), "params": {"repeat": True}},
        "risk": {"limits": {"max_position_pct": 50}}})
    assert (event.trades["side"] == "SELL").any()
    assert_same_run(event, fast)


@needs_shared
def test_real_daily_momentum_fill_for_fill():
    """Back-adjusted daily bars 2015-2022 (halts, corporate-action breaks, KOSPI and KOSDAQ tables)."""
    event, fast = both({
        "broker": {"cash": 100_000_000, "volume_cap_pct": 5, "slippage_ticks": 1},
        "data": {"source": "csv", "path": str(SHARED / "daily"), "markets_file": str(SHARED / "tickers.csv"),
                 "start": "2019-01-02", "end": "2022-09-19", "clamp_adjusted_high": True},
        "strategy": {"name": "screen_momentum", "params": {"top_n": 5}},
        "risk": {"sizer": {"kind": "atr"}, "limits": {"stop_loss_pct": 12, "daily_loss_limit_pct": 6}}})
    assert len(event.trades) > 100
    assert_same_run(event, fast)


@needs_shared
def test_real_recent_bars_hold_and_momentum_fill_for_fill():
    """2023-12..2025-06: the unified tick table, sub-1,000 KRW stocks, a code halted to the end."""
    data = {"source": "csv", "path": str(SHARED / "daily_recent"), "markets_file": str(SHARED / "tickers.csv"),
            "clamp_adjusted_high": True}
    event, fast = both({"broker": {"cash": 100_000_000, "volume_cap_pct": 20}, "data": data,
                        "strategy": {"name": "buy_and_hold"}, "risk": {"limits": {"max_position_pct": 5}}})
    assert_same_run(event, fast)
    event, fast = both({"broker": {"cash": 50_000_000, "slippage_ticks": 1}, "data": data,
                        "strategy": {"name": "screen_momentum", "params": {"top_n": 4, "fast": 10, "slow": 30,
                                                                            "momentum": 20, "rebalance_every": 2}},
                        "risk": {"sizer": {"kind": "fixed_fraction", "fraction": 0.2},
                                 "limits": {"stop_loss_pct": 7}}})
    assert len(event.trades) > 20
    assert_same_run(event, fast)

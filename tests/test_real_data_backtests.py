"""target_buy and screen_momentum on the real KRX bars in ../shared/data/krx, checked by invariants.

Skipped cleanly when ../shared is absent (a fresh clone without the shared data).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from configs.schema import parse_config
from engine.backtest import run_backtest
from market.costs import CostModel
from market.ticks import is_on_tick

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "krx"
pytestmark = [pytest.mark.shared_data,
              pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/krx not present")]


def check_invariants(result, on_grid: bool) -> None:
    rec = result.record
    trades = rec.trades
    assert len(trades) > 0, "the strategy should have traded"
    cost = CostModel()
    for row in trades.itertuples():
        day = row.datetime.date()
        bar = rec.prices[row.code]
        bar = bar[bar.index.date == day].iloc[0]
        assert bar["low"] <= row.price <= bar["high"], f"fill outside the bar: {row}"
        market = rec.markets[row.code]
        assert row.commission == cost.commission(row.value), row
        expected_tax = cost.sell_tax(row.value, day, market) if row.side == "SELL" else 0
        assert row.tax == expected_tax, row
        if on_grid:
            assert is_on_tick(row.price, day, market), f"fill off the tick grid: {row}"
    assert (rec.equity["cash"] >= 0).all(), "cash went negative"
    assert set(rec.orders["status"]) <= {"Completed", "Canceled", "Expired", "Rejected", "Refused", "Accepted",
                                         "Partial", "Margin", "Submitted"}


@pytest.fixture(scope="module")
def unadjusted_2024(tmp_path_factory) -> Path:
    """KRX's own unadjusted bars of the 2024-01/02 window, split into CODE.csv files."""
    raw = pd.read_csv(SHARED / "krx_raw" / "krx_raw_windows.csv", dtype={"code": str})
    raw = raw[(raw["date"] >= "2024-01-02") & (raw["date"] <= "2024-02-13")]
    folder = tmp_path_factory.mktemp("krx_raw_2024")
    for code, rows in raw.groupby("code"):
        rows[["date", "open", "high", "low", "close", "volume"]].to_csv(folder / f"{code}.csv", index=False)
    return folder


def test_target_buy_on_unadjusted_bars_fills_on_the_tick_grid(unadjusted_2024, tmp_path):
    codes = ["005930", "000660", "035720", "247540", "086520", "004410", "001510", "007310"]
    first = {c: pd.read_csv(unadjusted_2024 / f"{c}.csv").iloc[0] for c in codes}
    targets = tmp_path / "targets.csv"
    lines = ["code,target_buy_price,target_return_pct,max_capital,stop_loss_pct"]
    for c in codes:
        lines.append(f"{c},{int(first[c]['close'] * 0.99)},3,3000000,4")
    targets.write_text("\n".join(lines) + "\n")
    cfg = parse_config({
        "name": "raw2024", "broker": {"cash": 30_000_000},
        "data": {"source": "csv", "path": str(unadjusted_2024), "universe": codes, "adjusted": False,
                 "markets_file": str(SHARED / "tickers.csv")},
        "strategy": {"name": "target_buy", "targets": str(targets)},
        "risk": {"limits": {"max_position_pct": 50}},
        "report": {"benchmark": "equal_weight"}})
    result = run_backtest(cfg)
    check_invariants(result, on_grid=True)
    assert (result.record.trades["side"] == "SELL").any()


def test_screen_momentum_on_adjusted_daily_bars(tmp_path):
    cfg = parse_config({
        "name": "mom-real", "broker": {"cash": 100_000_000, "volume_cap_pct": 5, "slippage_ticks": 1},
        "data": {"source": "csv", "path": str(SHARED / "daily"), "markets_file": str(SHARED / "tickers.csv"),
                 "start": "2016-01-04", "end": "2022-09-19", "clamp_adjusted_high": True},
        "strategy": {"name": "screen_momentum", "params": {"top_n": 5}},
        "risk": {"sizer": {"kind": "atr"}, "limits": {"stop_loss_pct": 12}}})
    result = run_backtest(cfg)
    check_invariants(result, on_grid=False)
    assert result.record.trades["code"].nunique() >= 5

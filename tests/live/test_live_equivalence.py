"""The same strategy on the simulator and on the emulator's 모의투자 (paper) agree.

The emulator replays the demo bars as intraday prints; the trader runs exactly as ``run.py paper``
does and builds its daily bars from those prints (repaired from ``inquire-price`` at the close).
A backtest of the same config on the same bars must give the same fills.

Tolerance, and why it is zero here: both sides take market orders at the open (the trader queues
orders decided after the close and sends them at 08:30, and the emulator fills them at the 09:00
opening auction), both fill a limit that the day's prices touch at the limit (``limit_fill:
touch``), both reserve market buys at the upper limit and charge costs with ``market.costs``.
What would make them differ — a print too small for the order, a WebSocket gap — is excluded by
design of this test (volumes far above order sizes, no faults), so quantities, prices, commission
and tax must match exactly and final equity to the won.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from configs.schema import DemoDataConfig, parse_config
from engine.backtest import run_backtest
from feeds.demo import generate_demo_market
from harness import app_config, at, make_emulator, start_trader, trading_days

FIRST_LIVE = date(2025, 3, 4)
LIVE_DAYS = trading_days(FIRST_LIVE, 6)
DEMO = DemoDataConfig(codes=5, start=date(2024, 6, 3), end=LIVE_DAYS[-1], seed=7)


@pytest.fixture(scope="module")
def demo():
    return generate_demo_market(DEMO)


def fills(frame: pd.DataFrame) -> list[tuple]:
    return sorted((r.datetime.date(), r.code, r.side, int(r.qty), float(r.price), int(r.commission), int(r.tax))
                  for r in frame.itertuples())


def backtest(strategy: dict, codes: list[str], **extra):
    cfg = parse_config({"name": "bt", "broker": {"cash": 50_000_000},
                        "data": {"source": "demo", "demo": DEMO.model_dump(), "universe": codes,
                                 "start": FIRST_LIVE.isoformat(), "end": LIVE_DAYS[-1].isoformat()},
                        "strategy": strategy, "report": {"benchmark": "none"}, **extra})
    return run_backtest(cfg).record


def liquid(frame: pd.DataFrame) -> pd.DataFrame:
    """The emulator's copy of the bars with 1,000x the volume: every print can fill our orders whole,
    so the comparison is about decisions and prices, not about queue luck (prices unchanged)."""
    out = frame.copy()
    out["volume"] = out["volume"] * 1_000
    return out


def paper(demo, strategy: dict, codes: list[str], tmp_path, **extra):
    emu = make_emulator({c: liquid(demo.bars[c]) for c in codes}, {c: demo.markets[c] for c in codes},
                        at(FIRST_LIVE, 8, 0))
    try:
        trader = start_trader(emu, app_config(strategy, codes, **extra), tmp_path,
                              until=at(LIVE_DAYS[-1], 15, 45))
        for day in LIVE_DAYS:
            trader.run_day(day)
        trader.emu.advance_to(at(LIVE_DAYS[-1], 15, 46))   # past --until: the feeds end, cerebro stops
        trader.finish()
        return trader.session.record(), trader
    finally:
        emu.stop()


def test_buy_and_hold_paper_matches_backtest(demo, tmp_path):
    codes = list(demo.bars)
    strategy = {"name": "buy_and_hold"}
    limits = {"risk": {"limits": {"max_position_pct": 40}}}
    bt_rec = backtest(strategy, codes, **limits)
    live_rec, trader = paper(demo, strategy, codes, tmp_path, **limits)
    assert fills(bt_rec.trades), "the backtest should trade"
    assert fills(live_rec.trades) == fills(bt_rec.trades)
    assert int(live_rec.equity["value"].iloc[-1]) == int(bt_rec.equity["value"].iloc[-1])
    assert not trader.broker.alerts, trader.broker.alerts


def test_target_buy_paper_matches_backtest(demo, tmp_path):
    """Limit buys at the target price (touched intraday), take-profit limit sells, the stop-loss."""
    codes = list(demo.bars)
    first_close = {c: float(demo.bars[c].loc[pd.Timestamp(FIRST_LIVE), "close"]) for c in codes}
    lines = ["code,target_buy_price,target_return_pct,max_capital,stop_loss_pct"]
    for i, c in enumerate(codes):
        lines.append(f"{c},{int(first_close[c] * (0.985 + 0.005 * i))},{1.5 + i},8000000,{3 + i}")
    targets = tmp_path / "targets.csv"
    targets.write_text("\n".join(lines) + "\n")
    strategy = {"name": "target_buy", "targets": str(targets)}
    limits = {"risk": {"limits": {"max_position_pct": 40}}}
    bt_rec = backtest(strategy, codes, **limits)
    live_rec, trader = paper(demo, strategy, codes, tmp_path, **limits)
    sides = {r.side for r in bt_rec.trades.itertuples()}
    assert sides == {"BUY", "SELL"}, "the scenario should both buy and sell"
    assert fills(live_rec.trades) == fills(bt_rec.trades)
    assert int(live_rec.equity["value"].iloc[-1]) == int(bt_rec.equity["value"].iloc[-1])
    expired = (bt_rec.orders["status"] == "Expired").sum()
    assert expired > 0 and (live_rec.orders["status"] == "Expired").sum() == expired
    assert not trader.broker.alerts, trader.broker.alerts


def test_screen_momentum_paper_matches_backtest(demo, tmp_path):
    """Screens over indicator lines computed live from history + live bars equal the backtest's."""
    codes = list(demo.bars)
    strategy = {"name": "screen_momentum", "params": {"top_n": 2, "fast": 5, "slow": 10, "momentum": 10,
                                                      "exit_ma": 5, "rebalance_every": 1,
                                                      "min_turnover_krw": 0}}
    extra = {"risk": {"sizer": {"kind": "fixed_fraction", "fraction": 0.3}, "limits": {"max_position_pct": 40}}}
    bt_rec = backtest(strategy, codes, **extra)
    live_rec, trader = paper(demo, strategy, codes, tmp_path, **extra)
    assert len(bt_rec.trades) >= 2
    assert fills(live_rec.trades) == fills(bt_rec.trades)
    assert int(live_rec.equity["value"].iloc[-1]) == int(bt_rec.equity["value"].iloc[-1])
    assert not trader.broker.alerts, trader.broker.alerts

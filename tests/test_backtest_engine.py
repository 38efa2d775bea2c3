"""The backtest composition root: configs in, RunRecord and report files out."""

import json
from pathlib import Path

import pytest
import yaml

from analysis.report import write_report
from configs.schema import ConfigError, load_config, parse_config
from engine.backtest import StrategyLoadError, run_backtest
from strategies.params import ParamError

A = """date,open,high,low,close,volume
2024-03-04,10000,10100,9900,10000,50000
2024-03-05,10000,10200,9950,10100,50000
2024-03-06,10100,10300,10050,10200,50000
2024-03-07,10200,10400,10150,10300,50000
"""
B = """date,open,high,low,close,volume
2024-03-04,20000,20100,19900,20000,50000
2024-03-05,20000,20050,19800,19900,50000
2024-03-06,19800,20100,19750,20000,50000
2024-03-07,20100,20300,20050,20200,50000
"""


def write_config(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture()
def csv_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bars"
    folder.mkdir()
    (folder / "000001.csv").write_text(A)
    (folder / "000002.csv").write_text(B)
    return folder


def test_buy_and_hold_ends_at_hand_computed_equity(tmp_path, csv_dir):
    """Two codes, 1,000,000 KRW, equal slots of 500,000, market buys reserved at the upper limit.

    Bar 1: A wants 50 sh; free cash for 2 codes at A's upper limit 13,000 -> 38 sh (reserves 494,069);
           B at 26,000 with the rest -> 19 sh.            Fills at bar-2 opens: 38 @ 10,000, 19 @ 20,000,
           commission 53 each -> cash 239,894.
    Bar 2: room A (500,000-380,000)/10,100 = 11.9, cash share at 13,130 -> 9 sh; B room 6.0, cash at 25,850 -> 4 sh.
           Fills at bar-3 opens: 9 @ 10,100 (comm 12), 4 @ 19,800 (comm 11) -> cash 69,771.
    Bar 3: A room 2.85, cash share at 13,260 -> 2 sh; B room 2.04, cash at 26,000 -> 1 sh.
           Fills at bar-4 opens: 2 @ 10,200 (comm 2), 1 @ 20,100 (comm 2) -> cash 29,267.
    End: 29,267 + 40 sh... A holds 49 x 10,300 + B holds 24 x 20,200 = 1,018,767.
    """
    cfg = load_config(write_config(tmp_path, {
        "name": "bh", "broker": {"cash": 1_000_000},
        "data": {"source": "csv", "path": str(csv_dir), "adjusted": False},
        "strategy": {"name": "buy_and_hold"},
        "risk": {"limits": {"max_position_pct": 60}},
        "report": {"benchmark": "none"},
    }))
    result = run_backtest(cfg)
    eq = result.record.equity
    assert int(eq["value"].iloc[-1]) == 1_018_767
    assert int(eq["cash"].iloc[-1]) == 29_267
    trades = result.record.trades
    assert list(trades["qty"]) == [38, 19, 9, 4, 2, 1]
    assert list(trades["commission"]) == [53, 53, 12, 11, 2, 2]
    assert (trades["tax"] == 0).all()
    # market orders fill at the next bar's open
    assert list(trades["price"]) == [10_000, 20_000, 10_100, 19_800, 10_200, 20_100]


def test_same_config_same_metrics(tmp_path):
    body = {"name": "det", "data": {"source": "demo", "demo": {"codes": 8, "start": "2023-01-02", "end": "2024-06-28"}},
            "strategy": {"name": "screen_momentum", "params": {"top_n": 3}},
            "risk": {"sizer": {"kind": "atr"}}}
    cfg = load_config(write_config(tmp_path, body))
    out1 = write_report(run_backtest(cfg).record, tmp_path / "r1")
    out2 = write_report(run_backtest(cfg).record, tmp_path / "r2")
    m1 = json.loads((out1.parent / "metrics.json").read_text())
    m2 = json.loads((out2.parent / "metrics.json").read_text())
    assert m1 == m2 and m1["fills"] > 0
    assert (out1.parent / "trades.csv").read_text() == (out2.parent / "trades.csv").read_text()


def test_report_files_written(tmp_path):
    cfg = load_config(write_config(tmp_path, {
        "name": "rep", "data": {"source": "demo", "demo": {"codes": 5, "start": "2024-01-02", "end": "2024-12-30"}},
        "strategy": {"name": "buy_and_hold"}}))
    record = run_backtest(cfg).record
    html = write_report(record, tmp_path / "out")
    out = html.parent
    for name in ("metrics.json", "trades.csv", "orders.csv", "equity.csv", "report.html"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["synthetic"] is True and metrics["fills"] == len(record.trades)
    assert "SYNTHETIC" in html.read_text(encoding="utf-8")
    first_fill = (out / "trades.csv").read_text().splitlines()[1]
    assert "+09:00" in first_fill


@pytest.mark.parametrize("body,needle", [
    ({"strategy": {"name": "buy_and_hold"}, "brokr": {}}, "brokr: unknown key"),
    ({"strategy": {"name": "buy_and_hold"}, "broker": {"mode": "papr"}}, "broker.mode: 'papr' is not valid"),
    ({"strategy": {"name": "buy_and_hold"}, "broker": {"cash": -5}}, "broker.cash: -5 is not valid"),
    ({"strategy": {"name": "buy_and_hold"}, "data": {"source": "csv"}}, "source 'csv' needs 'path'"),
    ({"strategy": {"name": "buy_and_hold"}, "data": {"universe": [660]}}, "quote every code"),
    ({"strategy": {"name": "buy_and_hold"}, "data": {"universe": ["5930"]}}, "6 characters"),
    ({"strategy": {"name": "buy_and_hold"}, "data": {"start": "2024-13-01"}}, "data.start: '2024-13-01' is not valid"),
    ({"broker": {}}, "strategy: required key is missing"),
    ({"strategy": {"name": "x"}, "risk": {"sizer": {"kind": "kelly"}}}, "risk.sizer.kind: 'kelly' is not valid"),
])
def test_config_errors_name_key_value_and_allowed(tmp_path, body, needle):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, body))
    assert needle in str(err.value)
    assert "cfg.yaml" in str(err.value)


def test_mode_values_are_listed_when_wrong():
    with pytest.raises(ConfigError, match="backtest.*paper.*live"):
        parse_config({"strategy": {"name": "buy_and_hold"}, "broker": {"mode": "sim"}})


def test_bad_strategy_names_and_params(tmp_path):
    for name, needle in [("nope", "not a built-in example"), ("json:loads", "not a backtrader Strategy"),
                         ("no_such_module:X", "cannot import module")]:
        cfg = parse_config({"strategy": {"name": name}, "data": {"demo": {"codes": 2}}})
        with pytest.raises(StrategyLoadError, match=needle):
            run_backtest(cfg)
    cfg = parse_config({"strategy": {"name": "screen_momentum", "params": {"topn": 3}}})
    with pytest.raises(ParamError, match=r"'topn' is not a parameter of ScreenMomentum \(did you mean 'top_n'\?\)"):
        run_backtest(cfg)

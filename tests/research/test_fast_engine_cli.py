"""The fast engine from the command line and its limits: the same run folder, clear refusals.

``run.py backtest --engine fast`` writes the run folder ``run.py report`` re-renders; a strategy or
setting the fast engine cannot reproduce exactly is refused with a message naming it (exit 2),
never run differently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from configs.schema import parse_config
from research.engine import run_fast_backtest
from research.rules import FastEngineUnsupported

ROOT = Path(__file__).resolve().parents[2]
SMALL_DEMO = {"source": "demo", "demo": {"codes": 6, "start": "2023-01-02", "end": "2023-12-28"}}


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def write(tmp_path: Path, body: dict, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def test_backtest_engine_fast_writes_the_run_folder_and_report_rerenders(tmp_path):
    cfg = write(tmp_path, {"name": "fast-cli", "data": SMALL_DEMO,
                           "strategy": {"name": "screen_momentum", "params": {"top_n": 2, "fast": 5, "slow": 10,
                                                                               "momentum": 10}},
                           "risk": {"sizer": {"kind": "atr"}}})
    fast_out, event_out = tmp_path / "fast", tmp_path / "event"
    r = cli("backtest", "--config", str(cfg), "--engine", "fast", "--out", str(fast_out))
    assert r.returncode == 0, r.stderr
    assert "Report:" in r.stdout
    for name in ("report.html", "metrics.json", "trades.csv", "orders.csv", "equity.csv", "run.json", "prices.csv"):
        assert (fast_out / name).is_file(), name
    r = cli("backtest", "--config", str(cfg), "--engine", "event", "--out", str(event_out))
    assert r.returncode == 0, r.stderr
    assert (fast_out / "trades.csv").read_text() == (event_out / "trades.csv").read_text()
    assert (fast_out / "equity.csv").read_text() == (event_out / "equity.csv").read_text()
    m_fast = json.loads((fast_out / "metrics.json").read_text())
    m_event = json.loads((event_out / "metrics.json").read_text())
    assert {k: v for k, v in m_fast.items() if k != "events"} == {k: v for k, v in m_event.items() if k != "events"}
    assert json.loads((fast_out / "run.json").read_text())["config"]["research"]["engine"] == "fast"
    (fast_out / "report.html").unlink()
    r = cli("report", "--run", str(fast_out))
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in (fast_out / "report.html").read_text(encoding="utf-8")


def test_unsupported_settings_are_named_not_run(tmp_path):
    base = {"data": SMALL_DEMO, "strategy": {"name": "buy_and_hold"}, "report": {"benchmark": "none"}}
    with pytest.raises(FastEngineUnsupported, match="broker.order_validity 'gtc'"):
        run_fast_backtest(parse_config({**base, "broker": {"order_validity": "gtc"}}))
    with pytest.raises(FastEngineUnsupported, match="data.timeframe '5min'"):
        run_fast_backtest(parse_config({**base, "data": {**SMALL_DEMO, "timeframe": "5min"}}))


def test_bar_by_bar_strategies_and_python_rules_are_refused_by_name(tmp_path, monkeypatch):
    (tmp_path / "my_strats.py").write_text(textwrap.dedent('''
        from strategies.base import TargetStrategy
        from strategies.declared import DeclaredStrategy
        from strategies.screens import Screen, Screener, above
        from strategies.spec import ScreenEntry, StrategySpec

        class Handwritten(TargetStrategy):
            def on_bar(self):
                pass

        class OddScreen(DeclaredStrategy):
            @classmethod
            def declare(cls, p):
                return StrategySpec(ScreenEntry(Screener(Screen("odd_days", lambda d: len(d) % 2 == 1),
                                                         rank_by="close", top_n=2)))

        class Tweaked(DeclaredStrategy):
            @classmethod
            def declare(cls, p):
                return StrategySpec(ScreenEntry(Screener(above("close", 0.0), rank_by="close", top_n=2)))

            def on_fill(self, code, qty, price):
                pass

        class OddRank(DeclaredStrategy):
            @classmethod
            def declare(cls, p):
                return StrategySpec(ScreenEntry(Screener(above("close", 0.0), rank_by=lambda d: -d.close[0],
                                                         top_n=2)))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    base = {"data": SMALL_DEMO, "report": {"benchmark": "none"}}
    for name, needle in [("my_strats:Handwritten", "written bar by bar, not declared"),
                         ("my_strats:OddScreen", "screen 'odd_days' is a per-bar Python test"),
                         ("my_strats:OddRank", "rank_by .* is a Python function"),
                         ("my_strats:Tweaked", "Tweaked overrides on_fill")]:
        with pytest.raises(FastEngineUnsupported, match=needle):
            run_fast_backtest(parse_config({**base, "strategy": {"name": name}}))
    cfg = write(tmp_path, {**base, "strategy": {"name": "my_strats:Handwritten"}})
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "backtest", "--config", str(cfg), "--engine", "fast"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert r.returncode == 2 and "written bar by bar" in r.stderr and "Traceback" not in r.stderr

"""Parameter sweeps: the grid, the results folder, walk-forward, restart after an interruption, Ray.

The points run in this process (``executor="inline"``) except in the last test, which starts a local
Ray through ``run.py sweep`` exactly as a user does (Ray's start-up costs seconds, so once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from configs.schema import ConfigError, parse_config
from research.engine import run_fast_backtest
from research.sweep import SweepError, grid_points, parse_grid_arg, point_config, run_sweep

ROOT = Path(__file__).resolve().parents[2]
BODY = {"name": "sw", "broker": {"cash": 50_000_000},
        "data": {"source": "demo", "demo": {"codes": 10, "start": "2022-01-03", "end": "2023-12-28", "seed": 5}},
        "strategy": {"name": "screen_momentum", "params": {"slow": 30, "momentum": 20}},
        "risk": {"sizer": {"kind": "fixed_fraction", "fraction": 0.2}, "limits": {"stop_loss_pct": 8}},
        "report": {"benchmark": "none"}}


def test_grid_arguments_and_points():
    assert parse_grid_arg("top_n=3,5,10") == ("top_n", [3, 5, 10])
    assert parse_grid_arg("risk.limits.stop_loss_pct=5, 7.5") == ("risk.limits.stop_loss_pct", [5, 7.5])
    assert parse_grid_arg("research.engine=fast,event")[1] == ["fast", "event"]
    for bad in ("top_n", "top_n=", "=3", "top_n=3,,5"):
        with pytest.raises(SweepError, match="--grid"):
            parse_grid_arg(bad)
    points = grid_points({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(points) == 6 and points[0] == {"a": 1, "b": "x"} and points[1] == {"a": 1, "b": "y"}


def test_every_point_is_validated_before_anything_runs():
    cfg = parse_config(BODY)
    assert point_config(cfg, {"top_n": 4, "risk.limits.stop_loss_pct": 5}).risk.limits.stop_loss_pct == 5
    with pytest.raises(ConfigError, match="broker.slippage_ticks"):
        point_config(cfg, {"broker.slippage_ticks": -1})
    with pytest.raises(ValueError, match="'topn' is not a parameter of ScreenMomentum"):
        point_config(cfg, {"topn": 3})
    with pytest.raises(ValueError, match="top_n"):
        point_config(cfg, {"top_n": 0})
    with pytest.raises(ValueError, match="fast = 60 must be shorter than slow = 30"):
        point_config(cfg, {"fast": 60})
    with pytest.raises(SweepError, match="metric 'alpha'"):
        run_sweep(cfg, {"top_n": [2]}, metric="alpha", executor="inline")


def test_walk_forward_sweep_matches_single_runs_and_resumes_after_an_interruption(tmp_path):
    cfg = parse_config(BODY)
    grid = {"top_n": [2, 4], "fast": [5, 10]}
    out = tmp_path / "sweep"
    seen = []

    def interrupt_after_two(stage, done, total):
        seen.append(done)
        if done == 2:
            raise KeyboardInterrupt          # what Ctrl-C does in the middle of a sweep

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, grid, out=out, walk_forward=0.6, executor="inline", progress=interrupt_after_two)
    assert len((out / "points.jsonl").read_text().splitlines()) == 2

    result = run_sweep(cfg, grid, out=out, walk_forward=0.6, executor="inline")
    assert (result.ran, result.skipped) == (2, 2)
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and list(table["rank"]) == [1, 2, 3, 4]
    assert table["is_sharpe"].is_monotonic_decreasing
    assert {"oos_sharpe", "oos_total_return", "is_fills"} <= set(table.columns)
    html = (out / "sweep.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 2 and "out-of-sample" in html and "SYNTHETIC" in html
    saved = json.loads((out / "results.json").read_text())
    assert saved["rank_key"] == "is_sharpe" and len(saved["points"]) == 4

    # a point of the sweep is the same as a fast backtest of that config on the in-sample window
    best = result.rows[0]
    windows = json.loads((out / "sweep.json").read_text())["signature"]["windows"]
    body = json.loads(json.dumps(BODY))
    body["strategy"]["params"].update(top_n=best["top_n"], fast=best["fast"])
    body["data"]["end"] = windows[0][2]
    single = run_fast_backtest(parse_config(body)).record
    assert int(single.equity["value"].iloc[-1]) == best["is_final_equity"]
    assert len(single.trades) == best["is_fills"]

    again = run_sweep(cfg, {**grid, "top_n": [2, 4, 6]}, out=out, walk_forward=0.6, executor="inline")
    assert (again.ran, again.skipped) == (2, 4)
    with pytest.raises(SweepError, match="another config"):
        run_sweep(parse_config({**BODY, "broker": {"cash": 10_000_000}}), grid, out=out, walk_forward=0.6,
                  executor="inline")


def test_run_py_sweep_on_a_local_ray(tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({**BODY, "research": {"sweep": {"metric": "total_return"}}}), encoding="utf-8")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "sweep", "--config", str(cfg),
                        "--grid", "top_n=2,4", "--grid", "fast=5,10", "--cpus", "2", "--out", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "4 point(s) run, 0 skipped" in r.stdout and "2 worker(s)" in r.stdout
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and table["total_return"].is_monotonic_decreasing
    inline = run_sweep(parse_config(BODY), {"top_n": [2, 4], "fast": [5, 10]}, out=tmp_path / "inline",
                       metric="total_return", executor="inline")
    by_id = {r["id"]: r for r in inline.rows}
    for row in table.to_dict("records"):
        assert row["final_equity"] == by_id[row["id"]]["final_equity"]   # Ray workers compute the same

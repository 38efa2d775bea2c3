"""run.py as a user runs it: data import, backtest, report re-render, data download from KIS (emulator)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import yaml

from feeds.cache import BarCache

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_import_backtest_from_cache_and_rerender(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = ["date,open,high,low,close,volume"]
    price = 10_000
    for d in ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]:
        rows.append(f"{d},{price},{price + 100},{price - 100},{price + 50},1000")
        price += 50
    (folder / "000001.csv").write_text("\n".join(rows) + "\n")
    url = f"sqlite:///{tmp_path / 'bars.sqlite'}"
    r = run("data", "import", "--csv", str(folder), "--cache", url, "--unadjusted")
    assert r.returncode == 0, r.stderr
    assert BarCache(url).codes("daily") == ["000001"]

    cfg = {"name": "from-cache", "broker": {"cash": 1_000_000},
           "data": {"source": "cache", "cache_url": url, "adjusted": False},
           "strategy": {"name": "buy_and_hold"}, "risk": {"limits": {"max_position_pct": 100}},
           "report": {"benchmark": "none"}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    r = run("backtest", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "Report:" in r.stdout and "Final equity" in r.stdout
    (out / "report.html").unlink()
    r = run("report", "--run", str(out))
    assert r.returncode == 0 and (out / "report.html").is_file()


def test_bad_inputs_exit_2_with_one_message(tmp_path):
    (tmp_path / "bad.yaml").write_text("strategy: {name: buy_and_hold}\nbroker: {cash: lots}\n")
    r = run("backtest", "--config", str(tmp_path / "bad.yaml"))
    assert r.returncode == 2 and "broker.cash: 'lots' is not valid" in r.stderr and "Traceback" not in r.stderr
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "000001.csv").write_text("date,open,high,low,close,volume\n2024-03-04,10,9,11,10,5\n")
    r = run("data", "import", "--csv", str(folder), "--cache", f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert r.returncode == 2 and "000001.csv" in r.stderr and "Traceback" not in r.stderr


def test_data_download_from_kis_fills_the_cache(tmp_path):
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "tests" / "live"))
    from configs.schema import DemoDataConfig
    from feeds.demo import generate_demo_market
    from harness import at, make_emulator

    day = date(2025, 3, 5)
    demo = generate_demo_market(DemoDataConfig(codes=2, start=date(2024, 9, 2), end=day, seed=3))
    emu = make_emulator(demo.bars, demo.markets, at(day, 16, 0))
    try:
        c = emu.credentials("paper")
        url = f"sqlite:///{tmp_path / 'cache.sqlite'}"
        cfg = {"broker": {"mode": "paper", "kis": {"rest_url": c.rest_url, "env_file": None,
                                                   "token_cache": str(tmp_path / "t.json")}},
               "data": {"universe": list(demo.bars), "start": "2024-10-01", "end": "2025-03-05", "cache_url": url},
               "strategy": {"name": "buy_and_hold"}}
        (tmp_path / "dl.yaml").write_text(yaml.safe_dump(cfg))
        r = run("data", "download", "--source", "kis", "--config", str(tmp_path / "dl.yaml"),
                env={"KIS_APP_KEY": c.appkey, "KIS_APP_SECRET": c.appsecret,
                     "KIS_ACCOUNT": f"{c.cano}-{c.acnt_prdt_cd}", "KIS_HTS_ID": c.hts_id})
        assert r.returncode == 0, r.stderr[-2000:]
        cache = BarCache(url)
        for code, frame in demo.bars.items():
            got = cache.read(code, "daily")
            want = frame.loc["2024-10-01":"2025-03-05"]
            assert list(got.index) == list(want.index), code          # every session, none invented
            assert (got[["open", "high", "low", "close"]] == want[["open", "high", "low", "close"]]).all().all()
        assert c.appsecret not in r.stdout + r.stderr
    finally:
        emu.stop()

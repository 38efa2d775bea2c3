"""``run.py emulator`` + ``run.py paper`` as a user runs them: two processes, a config pointing at the
emulator's URLs and nothing else changed. The test steps the emulator's clock through its admin
endpoint and follows both processes through their output pipes (no sleeps).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from childproc import Child

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0
DAY = "2025-03-05"


def test_paper_cli_against_emulator_cli(tmp_path):
    emu_cfg = {"env": "paper", "data": {"source": "demo", "demo": {"codes": 3, "start": "2024-09-02", "end": DAY}},
               "clock": {"mode": "stepped", "start": f"{DAY}T08:55:00+09:00"},
               "paper": {"account": {"cash": 30_000_000}, "order_window": "order_entry"},
               "rate_limit": {"enabled": False}, "ws": {"ping_interval_s": None}}
    (tmp_path / "emu.yaml").write_text(yaml.safe_dump(emu_cfg))
    emu = Child([sys.executable, "run.py", "emulator", "--config", str(tmp_path / "emu.yaml"),
                 "--env-file", str(tmp_path / "emu.env")], ROOT)
    trader = None
    try:
        banner = json.loads(emu.until(lambda l: l.startswith("{"), "the emulator's banner"))
        admin = banner["admin_url"]
        paper_cfg = {
            "name": "cli-paper",
            "broker": {"mode": "paper", "kis": {
                "rest_url": banner["rest_url"], "ws_url": banner["ws_url"], "clock": "emulator", "admin_url": admin,
                "env_file": str(tmp_path / "emu.env"), "token_cache": str(tmp_path / "token.json"),
                "journal_url": f"sqlite:///{tmp_path / 'journal.sqlite'}", "bar": "1min",
                "order_window": "extended", "requests_per_second": 50}},
            "data": {"universe": ["990001", "990002", "990003"]},
            "strategy": {"name": "buy_and_hold"},
            "risk": {"limits": {"max_position_pct": 40}},
        }
        (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper_cfg))

        def step(to: str) -> None:
            r = requests.post(admin + "/admin/clock", json={"to": f"{DAY}T{to}+09:00"}, timeout=10,
                              headers={"X-Admin-Token": banner["admin_token"]})
            assert r.status_code == 200, r.text

        step("09:00:30")
        trader = Child([sys.executable, "run.py", "-v", "paper", "--config", str(tmp_path / "paper.yaml"),
                        "--until", f"{DAY}T09:10:00", "--out", str(tmp_path / "out")], ROOT, follow="stderr")
        # the trader backfills its history and subscribes; its feeds then report LIVE
        for _ in range(3):
            trader.until(lambda l: " LIVE" in l, "the feeds going live")
        step("09:01:05")          # the first live 1-minute bar closes: buy_and_hold buys the three codes
        orders = 0
        while orders < 3:
            emu.until(lambda l: "order-cash" in l, "the trader's orders")
            orders += 1
        step("09:05:00")          # the market orders fill at the next prints
        fills = 0
        while fills < 3:
            trader.until(lambda l: "brokers.kis.orders: fill buy" in l, "the fills")
            fills += 1
        step("09:11:00")          # past --until: the feeds end and the report is written
        trader.until(lambda l: "Report:" in l or "stopped" in l, "the end of the session")
        assert trader.p.wait(WAIT) == 0
        out = tmp_path / "out"
        trades = (out / "trades.csv").read_text().splitlines()
        assert len(trades) >= 4 and all(",BUY," in t for t in trades[1:])
        secrets = {banner["appkey"], banner["appsecret"], banner["account"].split("-")[0]}
        texts = [p.read_text(errors="ignore") for p in out.iterdir() if p.is_file()]
        texts.append(trader.rest())
        for text in texts:
            for secret in secrets:
                assert secret not in text, "a secret leaked into the output"
    finally:
        if trader is not None:
            trader.stop()
        emu.stop()


def test_live_needs_explicit_confirmation(tmp_path):
    cfg = {"broker": {"mode": "live", "kis": {"env_file": None}}, "data": {"universe": ["005930"]},
           "strategy": {"name": "buy_and_hold"}}
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "run.py", "live", "--config", str(tmp_path / "live.yaml")], cwd=ROOT,
                       capture_output=True, text=True, timeout=WAIT,
                       env={"PATH": "/usr/bin:/bin", "KIS_APP_KEY": "x" * 36, "KIS_APP_SECRET": "y" * 180,
                            "KIS_ACCOUNT": "12345678-01", "KIS_HTS_ID": "someone"})
    assert r.returncode == 2
    assert "--confirm-live" in r.stderr
    assert "x" * 36 not in r.stderr + r.stdout and "12345678" not in r.stderr + r.stdout


def test_mode_mismatch_is_refused(tmp_path):
    cfg = {"broker": {"mode": "backtest"}, "strategy": {"name": "buy_and_hold"}}
    (tmp_path / "bt.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "run.py", "paper", "--config", str(tmp_path / "bt.yaml")], cwd=ROOT,
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 2 and "broker.mode is 'backtest'" in r.stderr

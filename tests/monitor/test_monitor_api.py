"""The Monitor's JSON API: token, controls, read-only journal mode — on a real paper run's journal."""

from __future__ import annotations

import selectors
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import requests

from analysis.monitor import MonitorServer
from brokers.kis.journal import Journal
from configs.schema import DemoDataConfig
from engine.monitoring import JournalSource, LiveSource
from feeds.demo import generate_demo_market
from harness import app_config, at, make_emulator, start_trader

DAY = date(2025, 3, 5)
ROOT = Path(__file__).resolve().parents[2]


def paper_run(tmp_path):
    demo = generate_demo_market(DemoDataConfig(codes=2, start=date(2024, 9, 2), end=DAY, seed=11))
    emu = make_emulator(demo.bars, demo.markets, at(DAY, 9, 0))
    cfg = app_config({"name": "buy_and_hold"}, list(demo.bars),
                     broker={"mode": "paper", "kis": {"bar": "1min", "order_window": "extended",
                                                      "reconcile_every_s": 3600}},
                     risk={"limits": {"max_position_pct": 60}})
    trader = start_trader(emu, cfg, tmp_path, until=at(DAY, 15, 40))
    return emu, trader


def test_token_controls_and_journal_replay(tmp_path):
    emu, trader = paper_run(tmp_path)
    try:
        source = LiveSource(trader.session, None, snapshot_every_s=0.0)
        server = MonitorServer(source, poll_ms=200).start()
        try:
            for minute in (1, 2, 3):
                trader.step_to(at(DAY, 9, minute).replace(second=5))
            base = server.base_url
            assert requests.get(base + "/api/state", timeout=5).status_code == 401
            assert requests.get(base + "/api/state", headers={"X-Monitor-Token": "wrong"}, timeout=5).status_code == 401
            assert requests.post(base + "/api/stop", json={}, timeout=5).status_code == 401
            page = requests.get(base + "/", timeout=5)
            assert page.status_code == 200 and "Stop trading" in page.text and server.token not in page.text
            state = requests.get(base + "/api/state", params={"token": server.token}, timeout=5).json()
            assert state["mode"] == "paper" and state["ws"] == "CONNECTED"
            assert {p["code"] for p in state["positions"]} == set(trader.session.codes)
            assert len(state["fills"]) >= 2 and state["fills"][0]["side"] == "buy"
            assert state["account"]["equity"] > 0 and state["feeds"] and not state["read_only"]
            png = requests.get(base + "/api/equity.png", params={"token": server.token}, timeout=20)
            assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
            bad = requests.post(base + "/api/cancel", json={"ref": 999}, headers={"X-Monitor-Token": server.token},
                                timeout=15)
            assert bad.status_code == 400 and "not open" in bad.json()["error"]
            ok = requests.post(base + "/api/stop", json={"reason": "api test"},
                               headers={"X-Monitor-Token": server.token}, timeout=15)
            assert ok.status_code == 200 and "trading stopped" in ok.json()["message"]
            assert trader.session.cerebro.runningstrats[0].stop_reason == "api test"
            trader.settle()
        finally:
            server.stop()
        # after the fact: the same page from the journal alone, read-only
        replay = MonitorServer(JournalSource(Journal(trader.journal.url)), poll_ms=500).start()
        try:
            st = requests.get(replay.base_url + "/api/state", params={"token": replay.token}, timeout=5).json()
            assert st["read_only"] and "journal" in st["mode"]
            assert len(st["fills"]) == len(state["fills"]) and st["positions"]
            assert st["trading_stopped"] is True
            assert any(e["kind"] == "control" for e in st["events"])
            refused = requests.post(replay.base_url + "/api/stop", json={}, headers={"X-Monitor-Token": replay.token},
                                    timeout=5)
            assert refused.status_code == 409
        finally:
            replay.stop()
    finally:
        trader.close()
        emu.stop()


def test_run_py_monitor_serves_a_journal(db_url):
    """``run.py monitor --journal URL`` on a SQLite file and on a PostgreSQL database a trader wrote."""
    from brokers.kis.journal import FillRow, JournalScope
    from market.calendar import KST

    trader = Journal(db_url, scope=JournalScope.of("paper", "50000001", "01", "app-key"))
    intent = trader.new_intent(kind="new", code="990001", side="buy", qty=10, price=10_000, ord_dvsn="00", bt_ref=4,
                               session_day=DAY, state="QUEUED")
    fill_at = datetime(2025, 3, 5, 9, 59, 30, tzinfo=KST)
    trader.record(intent.id, {"state": "PARTIAL", "odno": "0000000042", "filled_qty": 3},
                  fill=FillRow("f1", "0000000042", fill_at, "990001", "buy", 3, 10_000.0, 4, 0, "notice"))
    trader.log("snapshot", "dashboard state", payload={"name": "old-run", "mode": "paper",
                                                       "clock": "2025-03-05T10:00:00+09:00",
                                                       "account": {"equity": 123, "cash": 100}, "positions": []})
    trader.close()
    p = subprocess.Popen([sys.executable, "run.py", "monitor", "--journal", db_url], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=30), "run.py monitor printed nothing"
        line = p.stdout.readline()
        assert line.startswith("monitor: http://127.0.0.1:")
        url = line.split(" ", 1)[1].strip()
        st = requests.get(url.replace("/?token=", "/api/state?token="), timeout=5).json()
        assert st["name"] == "old-run" and st["account"]["equity"] == 123 and st["read_only"]
        assert [(o["odno"], o["filled"], o["state"]) for o in st["orders"]] == [("0000000042", 3, "PARTIAL")]
        assert [(f["time"], f["qty"], f["odno"]) for f in st["fills"]] == [("09:59:30", 3, "0000000042")]
    finally:
        p.terminate()
        assert p.wait(30) == 0

"""The CLI (banner line, clean stop, SIGTERM) and examples/day_one.py against a running emulator."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from brokers.kis.emulator.cli import main
from brokers.kis.emulator.clock import AcceleratedClock
from brokers.kis.emulator.server import Emulator
from kis_emu_helpers import NAMES, at, base_config, standard_bars

ROOT = Path(__file__).resolve().parents[2]


class LineQueue(io.TextIOBase):
    """A stdout stand-in that hands complete lines to a queue (so the test waits on lines, not time)."""

    def __init__(self) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self._buf = ""

    def write(self, s: str) -> int:
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self.q.put(line)
        return len(s)

    def flush(self) -> None:
        pass


def test_cli_banner_then_clean_stop(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "emu.yaml"
    cfg.write_text("env: real\nclock: {mode: stepped, start: 2025-06-02T09:00:00+09:00}\n"
                   "real: {account: {cano: '63000001'}}\n", encoding="utf-8")
    out = LineQueue()
    monkeypatch.setattr(sys, "stdout", out)
    stop = threading.Event()
    rc: list[int] = []
    th = threading.Thread(target=lambda: rc.append(main(str(cfg), stop_event=stop,
                                                        loader=lambda data: (standard_bars(), {}, NAMES))))
    th.start()
    try:
        banner = json.loads(out.q.get(timeout=30))
        assert set(banner) >= {"env", "rest_url", "ws_url", "appkey", "appsecret", "account", "hts_id", "admin_url",
                               "admin_token"}
        assert banner["env"] == "real" and banner["account"] == "63000001-01"
        assert len(banner["appkey"]) == 36 and len(banner["appsecret"]) == 180
        assert banner["rest_url"].startswith("http://127.0.0.1:") and banner["ws_url"].startswith("ws://127.0.0.1:")
        r = requests.post(banner["rest_url"] + "/oauth2/tokenP", json={
            "grant_type": "client_credentials", "appkey": banner["appkey"], "appsecret": banner["appsecret"]})
        assert r.status_code == 200
        log_line = out.q.get(timeout=10)                           # request log: no secret, no token
        assert "/oauth2/tokenP" in log_line
        assert banner["appsecret"] not in log_line and banner["appkey"] not in log_line
        assert r.json()["access_token"] not in log_line
        assert requests.get(banner["admin_url"] + "/admin/clock").json()["now"] == "2025-06-02T09:00:00+09:00"
    finally:
        stop.set()
        th.join(timeout=30)
    assert rc == [0]


def test_cli_bad_config(tmp_path, capsys) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("env: live\n", encoding="utf-8")
    assert main(str(cfg)) == 2
    assert "env" in capsys.readouterr().err


def test_example_config_runs_as_a_process_and_stops_on_sigterm() -> None:
    pytest.importorskip("feeds.history")
    code = ("import sys; sys.path.insert(0, %r); from brokers.kis.emulator.cli import main; "
            "raise SystemExit(main(%r))" % (str(ROOT), str(ROOT / "configs" / "emulator.yaml")))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    killer = threading.Timer(90, proc.kill)                          # failure guard only
    killer.start()
    try:
        first = proc.stdout.readline()
        banner = json.loads(first)
        assert banner["env"] == "paper" and banner["account"] == "50000001-01" and banner["clock"] == "accelerated"
        assert requests.get(banner["admin_url"] + "/admin/status", timeout=10).status_code == 401   # token needed
        status = requests.get(banner["admin_url"] + "/admin/status", timeout=10,
                              headers={"X-Admin-Token": banner["admin_token"]}).json()
        assert status["envs"] == ["paper"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def _load_day_one():
    spec = importlib.util.spec_from_file_location("day_one_example", ROOT / "examples" / "day_one.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("env", ["paper", "real"])
def test_day_one_example_against_the_emulator(env: str, tmp_path, capsys) -> None:
    day_one = _load_day_one()
    cfg = base_config(env, matching={"tick_interval_s": 20})
    emu = Emulator(cfg, bars=standard_bars(), names=NAMES, clock=AcceleratedClock(at("09:05"), day_seconds=600))
    with emu:
        banner = tmp_path / "banner.json"
        banner.write_text(json.dumps({**emu.credentials().as_dict(), "admin_url": emu.admin_url}) + "\n")
        rc = day_one.main(["--banner", str(banner), "--max-rps", "50", "--quiet", "--timeout", "30"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["business_date"] == "20250602"
    assert summary["filled_qty"] == 1 and summary["holding_qty"] == 1
    assert summary["orders_today"] == 3                              # buy, resting buy, its cancel
    assert len({summary["bought_odno"], summary["resting_odno"], summary["cancel_odno"]}) == 3
    assert summary["cash_d2_after"] < summary["cash_d2_before"]

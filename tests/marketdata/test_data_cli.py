"""``run.py data …`` as a user runs it, against the emulator over real sockets: the stock master, then the
whole market downloaded in a subprocess that is interrupted with Ctrl-C (SIGINT) in the middle and
resumed by running the same command again; the quality report of what was cached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from feeds.cache import BarCache

from market_helpers import MARKET_START, env_file

ROOT = Path(__file__).resolve().parents[2]
END = date(2024, 12, 26)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "run.py", *args]


def _config(tmp_path: Path, emu, url: str, rate: float) -> Path:
    cfg = {"broker": {"mode": "live", "kis": {"rest_url": emu.rest_url(), "env_file": str(env_file(emu, tmp_path / "kis.env")),
                                              "token_cache": str(tmp_path / "token.json"), "requests_per_second": rate}},
           "data": {"source": "cache", "cache_url": url, "start": MARKET_START.isoformat(), "end": END.isoformat()},
           "strategy": {"name": "buy_and_hold"}}
    path = tmp_path / "download.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def test_master_download_interrupted_by_ctrl_c_then_resumed(market_emulator, small_market, tmp_path):
    rate = 10.0
    emu = market_emulator(rate=rate)
    url = f"sqlite:///{tmp_path / 'market.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIS_")}
    r = subprocess.run(_cmd("data", "master", "--from", emu.master_url(), "--cache", url), cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    listed = sorted(c for c in small_market.codes if c != "990008")        # 990008 was delisted before this day
    cfg = _config(tmp_path, emu, url, rate)
    download = _cmd("-v", "data", "download", "--source", "kis", "--config", str(cfg), "--universe", "master",
                    "--workers", "2")
    proc = subprocess.Popen(download, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    try:
        for line in proc.stderr:                       # blocks on the pipe: the child's own log is the event
            if "written " in line:
                seen.append(line)
                if len(seen) == 2:
                    proc.send_signal(signal.SIGINT)
                    break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "INTERRUPTED" in out and "Traceback" not in err
    with BarCache(url) as cache:
        partial = cache.codes()
    assert 2 <= len(partial) < len(listed)
    resumed = subprocess.run(download, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(partial)} already cached" in resumed.stdout and "0 failed" in resumed.stdout
    assert "req/s" in resumed.stderr and "ETA" in resumed.stderr           # the progress line
    with BarCache(url) as cache:
        assert cache.codes() == listed
        for code in listed:
            want = small_market.bars[code].loc[pd.Timestamp(MARKET_START):pd.Timestamp(END)]
            assert list(cache.read(code).index) == list(want.index), code
    quality = subprocess.run(_cmd("data", "quality", "--cache", url), cwd=ROOT, capture_output=True, text=True,
                             timeout=120, env=env)
    assert quality.returncode == 0, quality.stderr
    # the master recorded no halt for 990007 on this day, so its gap is reported as missing data
    assert "990007" in quality.stdout and "gap" in quality.stdout
    strict = subprocess.run(_cmd("data", "quality", "--cache", url, "--strict"), cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=env)
    assert strict.returncode == 1 and "REFUSED" in strict.stdout
    secret = emu.credentials().appsecret
    assert all(secret not in s for s in (out, err, resumed.stdout, resumed.stderr))


def test_example_configs_load():
    from configs.schema import load_config

    dl = load_config(ROOT / "configs" / "download.yaml")
    assert dl.broker.mode == "live" and dl.data.cache_url.endswith("data/cache/market.sqlite")
    value = load_config(ROOT / "configs" / "backtest-value.yaml")
    assert value.data.universe is None and value.data.universe_rule.exclude[:2] == ["etf", "etn"]
    assert value.strategy.params["max_per"] == 15.0


def test_data_fundamentals_command(market_emulator, small_market, tmp_path, capsys, monkeypatch):
    import run
    from brokers.kis.emulator.reference import dump_reference
    from feeds.fundamentals import FundamentalsStore

    emu = market_emulator(date(2024, 8, 16))
    url = f"sqlite:///{tmp_path / 'f.sqlite'}"
    cfg = _config(tmp_path, emu, url, 50.0)
    for k in [k for k in os.environ if k.startswith("KIS_")]:
        monkeypatch.delenv(k)
    code = run.main(["data", "fundamentals", "--config", str(cfg), "--universe", "990001,990002",
                     "--as-of", "2024-08-16"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "fundamentals: 2 code(s)" in out.out and "0 failed" in out.out
    ref = tmp_path / "reference.json"
    import json

    ref.write_text(json.dumps(dump_reference(small_market.reference.securities.values(), synthetic=True),
                              ensure_ascii=False))
    url2 = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert run.main(["data", "fundamentals", "--reference", str(ref), "--cache", url2]) == 0
    with FundamentalsStore(url2) as store:
        assert store.codes() == small_market.codes
    paper = tmp_path / "paper.yaml"
    paper.write_text(cfg.read_text().replace("mode: live", "mode: paper"))
    assert run.main(["data", "fundamentals", "--config", str(paper), "--universe", "990001"]) == 2
    assert "real environment only" in capsys.readouterr().err

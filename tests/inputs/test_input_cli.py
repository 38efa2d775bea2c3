"""``run.py``'s one error boundary: input problems exit 2 with one message, bugs exit 1 with one line and
the traceback in the run's log — never a traceback on the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run
from analysis import report
from configs.errors import InputError

DEMO = """\
name: cli
data:
  source: demo
  demo: {codes: 2, start: 2024-01-02, end: 2024-02-29}
strategy:
  name: buy_and_hold
"""


def call(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = run.main(list(argv))
    except SystemExit as exc:           # argparse's own usage errors
        code = int(exc.code)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bars"
    folder.mkdir()
    (folder / "005930.csv").write_text("date,open,high,low,close,volume\n2024-01-02,100,110,90,100,5\n"
                                       "2024-01-03,101,111,91,101,6\n", encoding="utf-8")
    return folder


def test_out_naming_an_existing_file(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(DEMO)
    (tmp_path / "taken").write_text("x")
    code, _out, err = call(capsys, "backtest", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "taken"))
    assert code == 2 and "is a file, expected a folder" in one_error_line(err)


@pytest.mark.parametrize("url, needle", [
    ("nope://x", "not a usable database URL"),
    ("not a url", "not a usable database URL"),
    ("mysql://user:pw@127.0.0.1/db", "is not installed"),
    ("sqlite:///{file}/x.sqlite", "cannot create its folder"),
])
def test_bad_cache_urls(tmp_path, capsys, csv_folder, url, needle):
    (tmp_path / "file").write_text("x")
    url = url.format(file=tmp_path / "file")
    code, _out, err = call(capsys, "data", "import", "--csv", str(csv_folder), "--cache", url)
    line = one_error_line(err)
    assert code == 2 and needle in line and "pw@" not in line, err


def test_deeply_nested_yaml(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    code, _out, err = call(capsys, "backtest", "--config", str(tmp_path / "c.yaml"))
    assert code == 2 and "nested more than" in one_error_line(err)


def test_a_400_digit_target_price(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("code,target_buy_price,target_return_pct,max_capital\n"
                                    f"005930,{'9' * 400},10,1000000\n")
    (tmp_path / "c.yaml").write_text(DEMO.replace("name: buy_and_hold", "name: target_buy\n  targets: t.csv"))
    code, _out, err = call(capsys, "backtest", "--config", str(tmp_path / "c.yaml"))
    line = one_error_line(err)
    assert code == 2 and "t.csv row 2" in line and "target_buy_price" in line


def test_over_long_file_names(tmp_path, capsys):
    code, _out, err = call(capsys, "backtest", "--config", str(tmp_path / ("x" * 4000 + ".yaml")))
    line = one_error_line(err)
    assert code == 2 and "too long" in line and len(line) < 300
    (tmp_path / "c.yaml").write_text(DEMO)
    code, _out, err = call(capsys, "backtest", "--config", str(tmp_path / "c.yaml"), "--out",
                           str(tmp_path / ("y" * 300) / "z"))
    assert code == 2 and "cannot create the report folder" in one_error_line(err)


@pytest.mark.parametrize("data, needle", [(b"\x89PNG\r\n\x1a\n\x00\x00", "binary file"),
                                          ("name: 시험\n".encode("euc-kr"), "CP949")])
def test_binary_and_non_utf8_configs(tmp_path, capsys, data, needle):
    (tmp_path / "c.yaml").write_bytes(data)
    code, _out, err = call(capsys, "backtest", "--config", str(tmp_path / "c.yaml"))
    line = one_error_line(err)
    assert code == 2 and needle in line and "c.yaml" in line


def test_bad_arguments_are_argparse_usage_errors(capsys):
    code, _out, err = call(capsys, "monitor", "--journal", "sqlite:///x.sqlite", "--port", "１")
    assert code == 2 and "--port" in err
    code, _out, err = call(capsys, "monitor", "--journal", "sqlite:///x.sqlite", "--host", "")
    assert code == 2 and "binds every network interface" in one_error_line(err)
    code, _out, err = call(capsys, "monitor", "--journal", "postgresql://u:secret@h/db?x=%zz", "--port", "70000")
    assert code == 2 and "secret" not in err


def test_until_must_be_a_time(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(DEMO.replace("name: cli", "name: cli\nbroker: {mode: paper}"))
    code, _out, err = call(capsys, "paper", "--config", str(tmp_path / "c.yaml"), "--until", "tomorrow")
    assert code == 2 and "--until 'tomorrow': not a time" in one_error_line(err)


def test_an_unexpected_error_is_one_line_and_the_traceback_goes_to_the_run_log(tmp_path, capsys, monkeypatch):
    import engine.backtest

    def boom(*_a, **_k):
        raise ZeroDivisionError("division by zero in a strategy")

    monkeypatch.setattr(engine.backtest, "run_backtest", boom)
    (tmp_path / "c.yaml").write_text(DEMO)
    code, _out, err = call(capsys, "backtest", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"))
    line = one_error_line(err)
    assert code == 1 and "unexpected ZeroDivisionError" in line and "run.log" in line
    log = (tmp_path / "out" / "run.log").read_text()
    assert "Traceback" in log and "division by zero in a strategy" in log


def test_an_unexpected_error_outside_a_run_goes_to_a_private_crash_log(capsys, monkeypatch):
    def boom(_args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(run, "cmd_report", boom)
    code, _out, err = call(capsys, "report", "--run", "x")
    line = one_error_line(err)
    assert code == 1 and "kaboom" in line
    path = Path(line.split("the traceback is in ")[1].rstrip(")"))
    assert "RuntimeError: kaboom" in path.read_text() and (path.stat().st_mode & 0o077) == 0
    path.unlink()


def test_report_of_a_missing_run_folder(tmp_path, capsys):
    code, _out, err = call(capsys, "report", "--run", str(tmp_path / "nothing"))
    assert code == 2 and "not a run folder" in one_error_line(err)


def test_input_errors_keep_valueerror_compatibility():
    assert issubclass(InputError, ValueError)


def test_a_short_paper_session_writes_its_report(tmp_path):
    """A few minutes of paper trading with a profit: CAGR is n/a, not an OverflowError."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_analysis_report import make_record

    rec = make_record()
    idx = pd.date_range("2026-11-24 09:01", periods=3, freq="min", tz="Asia/Seoul", name="datetime")
    values = np.array([10_000_000, 9_000_000, 12_000_000], dtype="int64")
    rec.mode = "paper"
    rec.equity = pd.DataFrame({"value": values, "cash": values}, index=idx)
    rec.benchmark = pd.Series(values.astype(float), index=idx)
    rec.prices = {c: df.iloc[:3].set_axis(idx) for c, df in rec.prices.items()}
    rec.trades, rec.orders, rec.events = rec.trades.iloc[:0], rec.orders.iloc[:0], rec.events.iloc[:0]
    report.write_report(rec, tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["cagr"] is None and abs(metrics["total_return"] - 0.2) < 1e-12


def test_monitor_on_every_interface_is_warned_about(tmp_path, capsys, monkeypatch):
    for name in ("KIS_APP_KEY", "KIS_APP_SECRET", "KIS_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "c.yaml").write_text(DEMO.replace("name: cli", "name: cli\nbroker: {mode: paper}\n"
                                                  "monitor: {host: 0.0.0.0}").replace("source: demo", "universe: ['005930']"))
    code, _out, err = call(capsys, "paper", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o"))
    assert "warning: monitor.host 0.0.0.0 binds every network interface" in err
    assert code == 2 and "KIS: missing KIS_APP_KEY" in one_error_line(err)


def _unusable_journals(tmp_path: Path) -> list[tuple[str, str]]:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a journal\n")
    return [(f"sqlite:///{notes}", "cannot open it (file is not a database)"),
            ("postgresql+psycopg://trader:s3cret-pw@127.0.0.1:1/krx", "cannot open it (connection failed"),
            (f"sqlite:///{notes}/j.sqlite", "cannot create the journal file")]


def test_an_unusable_journal_is_one_line_naming_the_setting(tmp_path, capsys, monkeypatch):
    missing = (f"sqlite:///{tmp_path / 'never-written.sqlite'}", "no such journal file")
    for url, says in _unusable_journals(tmp_path)[:2] + [missing]:
        code, _out, err = call(capsys, "monitor", "--journal", url)
        line = one_error_line(err)
        assert code == 2 and line.startswith("error: --journal '") and says in line, line
        assert "s3cret-pw" not in err
    assert not (tmp_path / "never-written.sqlite").exists()    # the read-only monitor created nothing
    monkeypatch.setenv("KIS_APP_KEY", "k" * 36)
    monkeypatch.setenv("KIS_APP_SECRET", "s" * 180)
    monkeypatch.setenv("KIS_ACCOUNT", "12345678-01")
    for url, says in _unusable_journals(tmp_path):
        (tmp_path / "c.yaml").write_text(json.dumps({
            "name": "cli", "broker": {"mode": "paper", "kis": {"env_file": None, "journal_url": url,
                                                               "token_cache": str(tmp_path / "token.json")}},
            "data": {"universe": ["005930"]}, "strategy": {"name": "buy_and_hold"}}))
        code, _out, err = call(capsys, "paper", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o"))
        line = one_error_line(err)
        assert code == 2 and line.startswith("error: broker.kis.journal_url '") and says in line, line
        assert "s3cret-pw" not in err and "k" * 36 not in err

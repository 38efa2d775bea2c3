"""The per-code reference file (``reference.json``): format, point-in-time lookups, clear errors, the
generated default and how the emulator finds the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from brokers.kis.emulator.marketdata import BarStore
from brokers.kis.emulator.reference import (ReferenceError, dump_reference, generate_reference, isin_for,
                                            load_reference, parse_reference)
from brokers.kis.emulator.server import resolve_reference
from configs.emulator_schema import parse_emulator_config
from kis_emu_helpers import DAY, standard_bars

ROOT = Path(__file__).resolve().parents[2]


def doc(**security: object) -> dict:
    base = {"code": "005930", "name": "삼성전자", "market": "KOSPI", "shares_listed": 100, "listing_date": "1975-06-11"}
    base.update(security)
    return {"format": "krx-trader/reference", "version": 1, "securities": [base]}


def test_dated_history_and_designations_are_point_in_time() -> None:
    ref = parse_reference(doc(
        name=[{"from": "1975-06-11", "value": "삼성전자공업"}, {"from": "1984-02-27", "value": "삼성전자"}],
        market=[{"from": "1975-06-11", "value": "KOSPI"}],
        shares_listed=[{"from": "1975-06-11", "value": 119_596_000}, {"from": "2018-05-04", "value": 5_969_782_550}],
        par_value=[{"from": "1975-06-11", "value": 5000}, {"from": "2018-05-04", "value": 100}],
        designations=[{"kind": "halted", "from": "2018-04-16", "to": "2018-05-03", "reason": "액면분할"},
                      {"kind": "caution", "from": "2021-01-11", "to": None}]))
    before, after = ref.snapshot("005930", date(2018, 4, 20)), ref.snapshot("005930", date(2018, 5, 4))
    assert (before.name, before.shares_listed, before.par_value, before.halted) == ("삼성전자", 119_596_000, 5000, True)
    assert (after.shares_listed, after.par_value, after.halted, after.capital) == (5_969_782_550, 100, False,
                                                                                   596_978_255_000)
    assert ref.snapshot("005930", date(1980, 1, 2)).name == "삼성전자공업"
    assert "caution" in ref.snapshot("005930", DAY).designations
    assert ref.snapshot("005930", date(1975, 6, 10)).listed is False


def test_statements_are_served_from_their_publication_day() -> None:
    st = [{"period": "annual", "period_end": "2024-12-31", "published": "2025-03-11", "net_income": 1},
          {"period": "annual", "period_end": "2024-12-31", "published": "2025-03-11", "consolidated": False,
           "net_income": 2},
          {"period": "quarter", "period_end": "2025-03-31", "published": "2025-05-15", "net_income": 3}]
    ref = parse_reference(doc(financials=st))
    assert ref.statements("005930", "annual", date(2025, 3, 10)) == []
    assert [s.net_income for s in ref.statements("005930", "annual", date(2025, 3, 11))] == [1]   # consolidated first
    assert [s.net_income for s in ref.statements("005930", "annual", date(2025, 3, 11), consolidated=False)] == [2]
    assert ref.statements("005930", "quarter", date(2025, 5, 14)) == []


@pytest.mark.parametrize("change,needle", [
    ({"shares_listed": "many"}, "securities[0] (005930).shares_listed"),
    ({"shares_listed": True}, "securities[0] (005930).shares_listed"),               # no bool-as-int
    ({"shares_listed": 0}, "must be at least 1, got 0"),
    ({"par_value": [{"from": "2020-01-02", "value": -100}]}, "must be at least 0, got -100"),
    ({"market": "NASDAQ"}, "securities[0] (005930).market"),
    ({"code": "5930"}, "securities[0] (5930).code"),
    ({"listing_date": "2025-02-30"}, "securities[0] (005930).listing_date"),
    ({"financials": [{"period": "annual", "period_end": "2024-12-31", "published": "2024-06-30"}]},
     "published 2024-06-30 is before period_end 2024-12-31"),
    ({"shares_listed": [{"from": "2020-01-02", "value": 1}, {"from": "2019-01-02", "value": 2}]},
     "strictly increasing"),
    ({"designations": [{"kind": "suspended", "from": "2020-01-02"}]}, "designations.0.kind"),
    ({"colour": "blue"}, "securities[0] (005930).colour"),
])
def test_errors_name_the_security_field_and_value(change: dict, needle: str) -> None:
    with pytest.raises(ReferenceError) as ei:
        parse_reference(doc(**change), "data/reference.json")
    text = str(ei.value)
    assert text.startswith("data/reference.json:") and needle in text, text


def test_file_level_errors(tmp_path: Path) -> None:
    p = tmp_path / "reference.json"
    p.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ReferenceError, match="not UTF-8"):
        load_reference(p)
    p.write_text('{"format": "krx-trader/reference", "version": 1, "securities": [', encoding="utf-8")
    with pytest.raises(ReferenceError, match=r"not valid JSON \(line 1"):
        load_reference(p)
    p.write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(ReferenceError, match=str(p)):
        load_reference(p)
    twice = doc()
    twice["securities"] *= 2
    with pytest.raises(ReferenceError, match="codes listed twice"):
        parse_reference(twice)
    with pytest.raises(ReferenceError, match="no such reference file"):
        load_reference(tmp_path / "missing.json")


def test_generated_default_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    store = BarStore(standard_bars())
    a = generate_reference(store.daily, store.markets, {"005930": "삼성전자"})
    b = generate_reference(store.daily, store.markets, {"005930": "삼성전자"})
    da = dump_reference(a.securities.values(), synthetic=True)
    assert da == dump_reference(b.securities.values(), synthetic=True) and a.synthetic
    assert set(a.securities) == {"005930", "000660"}
    p = tmp_path / "reference.json"
    p.write_text(json.dumps(da, ensure_ascii=False), encoding="utf-8")
    again = load_reference(p)
    assert dump_reference(again.securities.values(), synthetic=True) == da
    s = a.snapshot("005930", DAY)
    assert s.name == "삼성전자" and s.shares_listed > 0 and s.listed
    annual = a.statements("005930", "annual", date(2026, 12, 31))
    assert annual and all(st.published > st.period_end for st in annual)


def test_isin_check_digit() -> None:
    assert isin_for("005930") == "KR7005930003"          # Samsung Electronics
    assert isin_for("000660") == "KR7000660001"          # SK hynix


def test_emulator_finds_the_file_beside_csv_bars(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    (folder / "reference.json").write_text(json.dumps(doc(name="파일에서 온 이름")), encoding="utf-8")
    cfg = parse_emulator_config({"data": {"source": "csv", "path": str(folder)}})
    ref = resolve_reference(cfg, BarStore(standard_bars()))
    assert ref.snapshot("005930", DAY).name == "파일에서 온 이름"
    assert ref.snapshot("000660", DAY) is not None             # not in the file: the generated default


def test_cli_reports_a_bad_reference_file_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "reference.json").write_text(json.dumps(doc(shares_listed=-5)), encoding="utf-8")
    (tmp_path / "emu.yaml").write_text("data: {source: demo, demo: {codes: 3}}\nreference_file: reference.json\n",
                                       encoding="utf-8")
    code = ("import sys; sys.path.insert(0, %r); from brokers.kis.emulator.cli import main; "
            "raise SystemExit(main(%r))" % (str(ROOT), str(tmp_path / "emu.yaml")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=str(ROOT))
    assert out.returncode == 2, out.stderr
    assert "reference.json" in out.stderr and "shares_listed" in out.stderr and "-5" in out.stderr
    assert "Traceback" not in out.stderr

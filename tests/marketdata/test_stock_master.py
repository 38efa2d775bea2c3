"""The stock master from the emulator's KIS-format files, over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

from email.utils import parsedate_to_datetime

import pytest
import requests

import run
from brokers.kis.master import MasterRecord, parse_download
from feeds.master import StockMaster, read_master_source
from market.calendar import KST
from market.ticks import Market

from market_helpers import HALT, MARKET_END


def test_emulator_serves_master_files_of_its_reference_data(market_emulator, small_market):
    emu = market_emulator(date(2024, 6, 4))
    resp = requests.get(emu.master_url() + "/kospi_code.mst.zip", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/zip"
    # the emulated day, in KST
    assert parsedate_to_datetime(resp.headers["Last-Modified"]).astimezone(KST).date() == date(2024, 6, 4)
    kospi = {r.code: r for r in parse_download(resp.content, "kospi_code.mst.zip")}
    kosdaq = {r.code: r for r in parse_download(
        requests.get(emu.master_url() + "/kosdaq_code.mst.zip", timeout=10).content, "kosdaq_code.mst.zip")}
    konex = {r.code: r for r in parse_download(
        requests.get(emu.master_url() + "/konex_code.mst.zip", timeout=10).content, "konex_code.mst.zip")}
    assert set(konex) == {"990006"}
    ref = small_market.reference
    for code, r in {**kospi, **kosdaq, **konex}.items():
        snap = ref.snapshot(code, date(2024, 6, 4))
        assert r.market == snap.market and r.name == snap.name and r.isin == ref.get(code).isin
        assert r.shares_listed == snap.shares_listed // 1000 * 1000 and r.par_value == snap.par_value
        assert r.listing_date == ref.get(code).listing_date
        assert r.base_price == emu.store.base_price(code, date(2024, 6, 4))
    assert kospi["990003"].kind == "etf" and kospi["990003"].group_code == "EF"
    assert kosdaq["990004"].kind == "spac" and kospi["990005"].kind == "preferred"
    seven = {**kospi, **kosdaq}["990007"]
    assert seven.halted and seven.admin_issue and seven.name == "관리데모"
    assert requests.get(emu.master_url() + "/nothing.zip", timeout=10).status_code == 404


def test_master_import_from_the_emulator(market_emulator, db_url):
    emu = market_emulator(date(2024, 6, 4))
    with StockMaster(db_url) as master:
        result = master.import_from(emu.master_url())
        assert result.as_of == date(2024, 6, 4) and sum(result.per_market.values()) == 8
        assert "8 code(s)" in result.describe()
        df = master.frame()
        assert list(df.index) == [f"99000{i}" for i in range(1, 9)]
        assert df.loc["990006", "market"] == "KONEX" and df.loc["990003", "kind"] == "etf"
        assert bool(df.loc["990004", "spac"]) and bool(df.loc["990005", "preferred"])
        assert bool(df.loc["990007", "halted"]) and bool(df.loc["990007", "admin_issue"])
        assert master.markets()["990003"] is Market.ETF and master.markets()["990006"] is Market.KONEX
        assert master.names()["990007"] == "관리데모"
        assert master.halts() == {"990007": [(date(2024, 6, 4), None)]}
        assert master.flags_on(date(2024, 6, 4))["990007"] == {"halted", "admin_issue"}


def test_a_later_snapshot_closes_flags_and_records_delistings(market_emulator, db_url):
    first, later = market_emulator(date(2024, 6, 4)), market_emulator(MARKET_END)
    with StockMaster(db_url) as master:
        master.import_from(first.master_url())
        result = master.import_from(later.master_url())
        assert result.delisted == ["990008"] and result.flags_closed == 1
        df = master.frame()
        assert df.loc["990008", "delisting_date"] == MARKET_END      # the first snapshot without it
        assert df.loc["990008", "first_seen"] == date(2024, 6, 4)
        assert len(master.frame(include_delisted=False)) == 7
        assert master.halts()["990007"] == [(date(2024, 6, 4), MARKET_END - timedelta(days=1))]
        assert "admin_issue" in master.flags_on(MARKET_END)["990007"]
        with pytest.raises(ValueError, match="newer than this one"):
            master.import_from(first.master_url())


def test_exact_flag_intervals_from_known_dates(db_url):
    with StockMaster(db_url) as master:
        rec = MasterRecord(code="005930", isin="KR7005930003", name="삼성전자", market="KOSPI", group_code="ST")
        master.import_records([rec], date(2024, 7, 1), "test")
        master.add_flag_intervals([("005930", "halted", HALT[0], HALT[1])], "reference")
        assert master.halts() == {"005930": [HALT]}


def test_data_master_command(market_emulator, tmp_path, capsys):
    emu = market_emulator(date(2024, 6, 4))
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    assert run.main(["data", "master", "--from", emu.master_url(), "--cache", url]) == 0
    assert "stock master as of 2024-06-04: 8 code(s)" in capsys.readouterr().out
    # a local copy of the files works the same (KIS's zips saved by hand)
    files, _ = read_master_source(emu.master_url())
    folder = tmp_path / "files"
    folder.mkdir()
    for name, data in files:
        (folder / name).write_bytes(data)
    assert run.main(["data", "master", "--from", str(folder), "--cache", url, "--as-of", "2024-06-05"]) == 0
    assert "as of 2024-06-05" in capsys.readouterr().out
    assert run.main(["data", "master", "--from", str(tmp_path / "none"), "--cache", url]) == 2
    assert "no such file or folder" in capsys.readouterr().err

"""feeds.cache: round trip, atomic import, re-import replaces, windows, real data import speed."""

import time
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from configs.schema import DemoDataConfig
from feeds.cache import BarCache, import_csv_folder
from feeds.csv_folder import CSVDataError, write_csv_folder
from feeds.demo import generate_demo_market

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "krx"


@pytest.fixture(scope="module")
def demo_bars():
    return generate_demo_market(DemoDataConfig(codes=4, start=date(2024, 1, 2), end=date(2024, 12, 30))).bars


@pytest.fixture
def folder(tmp_path, demo_bars):
    path = tmp_path / "csv"
    write_csv_folder(demo_bars, path)
    return path


@pytest.fixture
def cache(tmp_path):
    c = BarCache(f"sqlite:///{tmp_path / 'deep' / 'er' / 'bars.sqlite'}")
    yield c
    c.close()


def snapshot(cache: BarCache) -> dict[str, pd.DataFrame]:
    return {code: cache.read(code) for code in cache.codes()}


def test_creates_parent_folder_and_round_trips(tmp_path, cache, folder, demo_bars):
    assert (tmp_path / "deep" / "er" / "bars.sqlite").is_file()
    summary = cache.import_csv_folder(folder, source="demo-test", adjusted=False)
    assert summary.codes == list(demo_bars) and summary.timeframe == "daily"
    assert summary.rows == sum(len(df) for df in demo_bars.values()) == cache.row_count()
    assert summary.replaced_rows == 0 and "imported" in summary.describe()
    assert cache.codes() == sorted(demo_bars) and cache.codes("5min") == []
    for code, df in demo_bars.items():
        pd.testing.assert_frame_equal(cache.read(code), df)
        first, last = cache.date_range(code)
        assert first == df.index[0].to_pydatetime() and last == df.index[-1].to_pydatetime()
    assert cache.sources()["990001"] == ("demo-test", False)
    assert cache.date_range("000000") is None
    assert cache.read("000000").empty and list(cache.read("000000").columns) == [
        "open", "high", "low", "close", "volume"]


def test_read_window_inclusive(cache, folder, demo_bars):
    cache.import_csv_folder(folder)
    df = cache.read("990002", start=date(2024, 3, 4), end=date(2024, 3, 8))
    expected = demo_bars["990002"].loc["2024-03-04":"2024-03-08"]
    pd.testing.assert_frame_equal(df, expected)
    assert cache.read("990002", start="2024-03-05", end=datetime(2024, 3, 5)).index.tolist() == [
        pd.Timestamp("2024-03-05")]


def test_reimport_replaces_never_duplicates(cache, folder, demo_bars):
    cache.import_csv_folder(folder)
    rows = cache.row_count()
    # change one code's file: fewer rows and a different close
    changed = demo_bars["990001"].iloc[:50].copy()
    changed.loc[changed.index[-1], ["close", "high"]] = changed[["close", "high"]].iloc[-1].max() + 1000
    write_csv_folder({"990001": changed}, folder)
    summary = cache.import_csv_folder(folder)
    assert summary.replaced_rows == rows
    assert cache.row_count() == rows - len(demo_bars["990001"]) + 50
    pd.testing.assert_frame_equal(cache.read("990001"), changed)
    pd.testing.assert_frame_equal(cache.read("990003"), demo_bars["990003"])
    # importing only one code leaves the others untouched
    cache.import_csv_folder(folder, universe=["990004"])
    assert cache.row_count() == rows - len(demo_bars["990001"]) + 50


def test_invalid_file_leaves_cache_unchanged(cache, folder):
    cache.import_csv_folder(folder)
    before = snapshot(cache)
    text = (folder / "990003.csv").read_text().splitlines()
    text[10] = text[10].replace(",", ",-", 1)          # negative open on line 11
    (folder / "990003.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(CSVDataError, match="990003.csv, line 11, field 'open'"):
        cache.import_csv_folder(folder)
    after = snapshot(cache)
    assert after.keys() == before.keys()
    for code in before:
        pd.testing.assert_frame_equal(after[code], before[code])


def test_failure_during_write_rolls_back_everything(cache, folder, demo_bars, monkeypatch):
    cache.import_csv_folder(folder, source="first")
    before = snapshot(cache)
    calls = []
    original = BarCache._rows

    def failing_rows(self, code, *args, **kwargs):
        calls.append(code)
        if len(calls) == 3:                          # after two codes were deleted and rewritten
            raise RuntimeError("disk full (simulated)")
        return original(self, code, *args, **kwargs)

    monkeypatch.setattr(BarCache, "_rows", failing_rows)
    with pytest.raises(RuntimeError, match="simulated"):
        cache.import_csv_folder(folder, source="second")
    monkeypatch.undo()
    after = snapshot(cache)
    for code in before:
        pd.testing.assert_frame_equal(after[code], before[code])
    assert set(src for src, _ in cache.sources().values()) == {"first"}


def test_timeframe_mismatch_and_intraday_import(tmp_path, cache):
    intraday = tmp_path / "5m"
    intraday.mkdir()
    (intraday / "123456.csv").write_text(
        "datetime,open,high,low,close,volume\n"
        "2020-02-18 09:00:00,100,100,100,100,0\n2020-02-18 09:05:00,100,101,99,100,10\n")
    with pytest.raises(ValueError, match="5min bars but timeframe 'daily'"):
        cache.import_csv_folder(intraday, timeframe="daily")
    assert cache.row_count() == 0
    summary = cache.import_csv_folder(intraday)
    assert summary.timeframe == "5min"
    assert cache.codes("5min") == ["123456"] and cache.codes("daily") == []
    df = cache.read("123456", "5min", end=date(2020, 2, 18))
    assert df.index.tolist() == [pd.Timestamp("2020-02-18 09:00"), pd.Timestamp("2020-02-18 09:05")]


def test_module_level_import_function(tmp_path, folder, demo_bars):
    url = f"sqlite:///{tmp_path / 'x' / 'c.sqlite'}"
    summary = import_csv_folder(folder, url=url, universe=["990002"])
    assert str(summary) == summary.describe() and "1 code(s)" in str(summary)
    assert summary.codes == ["990002"]
    with BarCache(url) as c:
        pd.testing.assert_frame_equal(c.read("990002"), demo_bars["990002"])


@pytest.mark.shared_data
def test_import_shared_daily_is_fast(tmp_path):
    folder = SHARED / "daily"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    with BarCache(f"sqlite:///{tmp_path / 'bars.sqlite'}") as cache:
        t0 = time.perf_counter()
        summary = cache.import_csv_folder(folder, clamp_adjusted_high=True)
        elapsed = time.perf_counter() - t0
        assert len(summary.codes) == 41 and summary.rows == cache.row_count() > 70_000
        assert summary.clamps["145270"] == 87
        assert elapsed < 5.0
        sam = cache.read("005930", start=date(2021, 1, 4), end=date(2021, 1, 4))
        assert sam["close"].tolist() == [83000]

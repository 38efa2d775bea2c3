"""feeds.cache: round trip, atomic import, re-import replaces, windows, adjusted and original series kept
apart, ranges and coverage, real data import speed — on SQLite and on a real PostgreSQL server (every
test taking ``cache`` runs on both: ``db_url`` in tests/conftest.py)."""

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
def cache(db_url):
    c = BarCache(db_url)
    yield c
    c.close()


def snapshot(cache: BarCache) -> dict[str, pd.DataFrame]:
    return {code: cache.read(code) for code in cache.codes()}


def test_sqlite_cache_creates_its_folder(tmp_path):
    with BarCache(f"sqlite:///{tmp_path / 'deep' / 'er' / 'bars.sqlite'}") as c:
        assert c.row_count() == 0
    assert (tmp_path / "deep" / "er" / "bars.sqlite").is_file()


def test_round_trips(cache, folder, demo_bars):
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


def test_adjusted_and_original_series_live_side_by_side(cache, folder, demo_bars):
    cache.import_csv_folder(folder, source="adj", adjusted=True)
    original = {c: (df * 2).astype("int64") for c, df in demo_bars.items()}
    cache.write(original, source="orig", adjusted=False)
    code = "990001"
    pd.testing.assert_frame_equal(cache.read(code, adjusted=True), demo_bars[code])
    pd.testing.assert_frame_equal(cache.read(code, adjusted=False), original[code])
    pd.testing.assert_frame_equal(cache.read(code), demo_bars[code])                  # adjusted preferred
    pd.testing.assert_frame_equal(cache.read(code, prefer=False), original[code])
    assert cache.row_count(adjusted=True) == cache.row_count(adjusted=False) == cache.row_count() // 2
    # grouped by the boolean, never max(boolean): PostgreSQL runs this too
    assert cache.sources()[code] == ("adj", True)
    assert cache.sources(prefer=False)[code] == ("orig", False)
    assert cache.series_kinds()[code] == {True, False}
    # re-importing the adjusted series leaves the original one alone
    cache.import_csv_folder(folder, source="adj2", adjusted=True)
    pd.testing.assert_frame_equal(cache.read(code, adjusted=False), original[code])
    many = cache.read_many(["990002", "990003", "000000"], adjusted=False)
    pd.testing.assert_frame_equal(many["990002"], original["990002"])
    assert many["000000"].empty


def test_write_range_replaces_only_the_range_and_records_coverage(cache, demo_bars):
    df = demo_bars["990001"]
    jan = df.loc["2024-01-01":"2024-01-31"]
    mar = df.loc["2024-03-01":"2024-03-31"]
    cache.write_range("990001", jan, date(2024, 1, 1), date(2024, 1, 31), source="kis")
    cache.write_range("990001", mar, date(2024, 3, 1), date(2024, 3, 31), source="kis")
    assert cache.coverage("990001") == {"990001": [(date(2024, 1, 1), date(2024, 1, 31)),
                                                   (date(2024, 3, 1), date(2024, 3, 31))]}
    pd.testing.assert_frame_equal(cache.read("990001"), pd.concat([jan, mar]))
    # filling the gap joins the ranges; a range without bars (a halt) is covered all the same
    feb = df.loc["2024-02-01":"2024-02-29"]
    assert cache.write_range("990001", feb, date(2024, 2, 1), date(2024, 2, 29)) == len(feb)
    assert cache.write_range("990001", df.iloc[:0], date(2023, 12, 1), date(2023, 12, 31)) == 0
    assert cache.coverage("990001")["990001"] == [(date(2023, 12, 1), date(2024, 3, 31))]
    # rewriting a range with other values replaces it, never duplicates
    changed = jan.copy()
    changed["volume"] += 1
    cache.write_range("990001", changed, date(2024, 1, 1), date(2024, 1, 31))
    got = cache.read("990001", end=date(2024, 1, 31))
    pd.testing.assert_frame_equal(got, changed)
    assert cache.row_count() == len(jan) + len(feb) + len(mar)
    assert cache.coverage(adjusted=False) == {}


def test_quality_report_of_cached_series(cache, folder, demo_bars):
    cache.import_csv_folder(folder)
    report = cache.check_quality()
    assert sorted(report.findings) == sorted(demo_bars)
    assert report.refused() == {}

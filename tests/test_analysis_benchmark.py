"""Benchmarks: equal-weight buy-and-hold with a late starter, index CSV alignment and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.benchmark import equal_weight_buy_and_hold, index_benchmark
from configs.errors import InputError

KST = "Asia/Seoul"


def bars(closes, index):
    return pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes,
                         "volume": 1000}, index=index)


def test_equal_weight_late_starter_enters_with_its_share():
    idx = pd.date_range("2024-01-02", periods=4, freq="B", tz=KST)
    prices = {
        "000001": bars([100.0, 110.0, 120.0, 120.0], idx),
        "000002": bars([50.0, 100.0], idx[2:]),                  # lists on the third bar
        "000003": bars([10.0], pd.DatetimeIndex(["2023-06-01"]).tz_localize(KST)),   # not in window
    }
    values, label = equal_weight_buy_and_hold(prices, 1000, idx)
    # 500 each for the two codes in the window; 000002's share waits as cash until 01-04
    assert list(values.round(6)) == [1000.0, 1050.0, 1100.0, 1600.0]
    assert values.index.equals(idx)
    assert "2 codes" in label and "no costs" in label


def test_equal_weight_forward_fills_missing_bars_and_mixed_resolutions():
    idx = pd.date_range("2024-01-02", periods=4, freq="B", tz=KST).as_unit("s")
    halted = pd.DatetimeIndex(["2024-01-02", "2024-01-05"]).tz_localize(KST).as_unit("ns")
    prices = {"000001": bars([100.0, 200.0], halted), "000002": bars([10.0] * 4, idx)}
    values, _ = equal_weight_buy_and_hold(prices, 1000, idx)
    assert list(values) == [1000.0, 1000.0, 1000.0, 1500.0]   # halted code held at its last close


def test_equal_weight_without_data_in_window_is_an_error():
    idx = pd.date_range("2024-01-02", periods=3, freq="B", tz=KST)
    with pytest.raises(ValueError, match="no code"):
        equal_weight_buy_and_hold({"000001": bars([1.0], pd.DatetimeIndex(["2020-01-02"]).tz_localize(KST))},
                                  1000, idx)


@pytest.fixture
def index_csv(tmp_path):
    path = tmp_path / "kospi_test_ohlc.csv"
    path.write_text("date,open,high,low,close\n"
                    "2024-01-02,1,1,1,2000\n"
                    "2024-01-03,1,1,1,2100\n"
                    # 2024-01-04 missing in the file
                    "2024-01-05,1,1,1,1900\n"
                    "2024-01-08,1,1,1,2200\n")
    return path


def test_index_benchmark_scales_aligns_and_forward_fills(index_csv):
    idx = pd.date_range("2024-01-03", periods=4, freq="B", tz=KST)     # 01-03 .. 01-08
    values, label = index_benchmark(index_csv, 1_000_000, idx)
    expected = np.array([2100, 2100, 1900, 2200]) / 2100 * 1_000_000
    assert values.to_numpy() == pytest.approx(expected)
    assert values.index.equals(idx)
    assert "kospi_test_ohlc" in label and "no dividends" in label


def test_index_benchmark_reads_date_close_files_and_bars_at_the_close(tmp_path):
    path = tmp_path / "close_only.csv"
    path.write_text("date,close\n2024-01-02,100\n2024-01-03,110\n")
    idx = pd.date_range("2024-01-02 15:30", periods=2, freq="B", tz=KST)
    values, _ = index_benchmark(path, 1000, idx)
    assert values.to_numpy() == pytest.approx([1000, 1100])


def test_index_benchmark_intraday_uses_only_published_closes(tmp_path):
    path = tmp_path / "idx.csv"
    path.write_text("date,close\n2024-01-01,90\n2024-01-02,100\n2024-01-03,110\n")
    idx = pd.DatetimeIndex(["2024-01-02 09:00", "2024-01-02 15:00", "2024-01-03 09:00", "2024-01-03 15:30"]
                           ).tz_localize(KST)
    values, _ = index_benchmark(path, 900, idx)
    # 01-02 intraday bars see 01-01's close (90); 01-03 09:00 sees 01-02's (100); 15:30 sees 110
    assert values.to_numpy() == pytest.approx([900, 900, 1000, 1100])


def test_index_benchmark_that_starts_late_is_flat_until_it_starts(index_csv):
    idx = pd.date_range("2023-12-28", periods=4, freq="B", tz=KST)     # 12-28, 12-29, 01-01, 01-02
    values, label = index_benchmark(index_csv, 1000, idx)
    assert values.to_numpy() == pytest.approx([1000, 1000, 1000, 1000])
    assert "from 2024-01-02" in label


def test_index_benchmark_without_overlap_names_the_file(index_csv):
    idx = pd.date_range("2020-01-02", periods=3, freq="B", tz=KST)
    with pytest.raises(ValueError, match="kospi_test_ohlc.csv.*does not overlap"):
        index_benchmark(index_csv, 1000, idx)


def test_index_benchmark_file_problems_name_the_file(tmp_path):
    idx = pd.date_range("2024-01-02", periods=3, freq="B", tz=KST)
    with pytest.raises(InputError, match="nope.csv"):
        index_benchmark(tmp_path / "nope.csv", 1000, idx)
    bad = tmp_path / "bad.csv"
    bad.write_text("day,value\n2024-01-02,1\n")
    with pytest.raises(ValueError, match="bad.csv.*'close'"):
        index_benchmark(bad, 1000, idx)


@pytest.mark.shared_data
def test_index_benchmark_on_the_shared_kospi_file():
    path = "/work/shared/data/krx/index/kospi_2023_2026_ohlc.csv"
    if not Path(path).is_file():
        pytest.skip("shared data not present")
    idx = pd.date_range("2023-01-02", "2023-01-05", freq="B", tz=KST)
    values, _ = index_benchmark(path, 10_000_000, idx)
    assert values.iloc[0] == pytest.approx(10_000_000)
    assert values.iloc[-1] == pytest.approx(10_000_000 * 2264.65 / 2225.67)

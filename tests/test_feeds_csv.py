"""feeds.csv_folder: every validation error names file, line, field and value; clamp; slicing."""

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.schema import DemoDataConfig
from feeds.csv_folder import (CSVDataError, load_csv_folder, read_csv_file, read_csv_folder,
                              write_csv_folder)
from feeds.demo import generate_demo_market

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "krx"

HEADER = "date,open,high,low,close,volume\n"
GOOD_ROWS = ["2024-01-02,1000,1100,990,1050,500",
             "2024-01-03,1050,1080,1000,1010,600",
             "2024-01-04,1010,1020,950,1000,700"]


def write(folder: Path, code: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{code}.csv"
    path.write_text(text, encoding="utf-8")
    return path


def rows_with(line: int, row: str) -> str:
    """The good file with data line ``line`` (header = 1) replaced by ``row``."""
    rows = list(GOOD_ROWS)
    rows[line - 2] = row
    return HEADER + "\n".join(rows) + "\n"


def error_for(tmp_path: Path, text: str, **kwargs) -> CSVDataError:
    write(tmp_path, "123456", text)
    with pytest.raises(CSVDataError) as info:
        load_csv_folder(tmp_path, **kwargs)
    return info.value


def assert_names(err: CSVDataError, line: int | None, field: str | None, value: str | None) -> None:
    msg = str(err)
    assert "123456.csv" in msg
    if line is not None:
        assert f"line {line}" in msg and err.line == line
    if field is not None:
        assert f"'{field}'" in msg and err.field == field
    if value is not None:
        assert repr(value) in msg
    assert "allowed:" in msg


def test_good_file_loads_as_int64_frame(tmp_path):
    write(tmp_path, "123456", HEADER + "\n".join(GOOD_ROWS) + "\n")
    bars = load_csv_folder(tmp_path)
    df = bars["123456"]
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert all(df.dtypes == np.int64)
    assert df.index.name == "datetime" and str(df.index.dtype) == "datetime64[ns]"
    assert df.index[0] == pd.Timestamp("2024-01-02")
    assert df["close"].tolist() == [1050, 1010, 1000]


def test_extra_columns_ignored_case_insensitive_header_and_float_integers(tmp_path):
    text = ("Date,Open,High,Low,Close,Volume,change\n"
            "2024-01-02,1000.0,1100,990,1050,500,0.01\n")
    write(tmp_path, "123456", text)
    df = load_csv_folder(tmp_path)["123456"]
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert df["open"].iloc[0] == 1000 and df["open"].dtype == np.int64


def test_trailing_blank_line_is_fine_but_inner_blank_line_is_not(tmp_path):
    write(tmp_path / "a", "123456", HEADER + "\n".join(GOOD_ROWS) + "\n\n")
    assert len(load_csv_folder(tmp_path / "a")["123456"]) == 3
    err = error_for(tmp_path / "b", HEADER + GOOD_ROWS[0] + "\n\n" + GOOD_ROWS[1] + "\n")
    assert_names(err, 3, None, None)
    assert "empty line" in str(err)


def test_missing_folder(tmp_path):
    with pytest.raises(CSVDataError, match="bar folder not found") as info:
        load_csv_folder(tmp_path / "nope")
    assert "nope" in str(info.value)


def test_folder_without_code_files(tmp_path):
    write(tmp_path, "README", "x")
    with pytest.raises(CSVDataError, match="no CODE.csv files"):
        load_csv_folder(tmp_path)


def test_missing_file_for_requested_code(tmp_path):
    write(tmp_path, "123456", HEADER + GOOD_ROWS[0] + "\n")
    with pytest.raises(CSVDataError) as info:
        load_csv_folder(tmp_path, universe=["123456", "654321", "111111"])
    msg = str(info.value)
    assert "654321, 111111" in msg and "654321.csv" in msg and "available: 123456" in msg


def test_empty_file(tmp_path):
    err = error_for(tmp_path, "")
    assert_names(err, None, None, None)
    assert "empty" in str(err)


def test_header_only(tmp_path):
    err = error_for(tmp_path, HEADER)
    assert "no data rows" in str(err) and "123456.csv" in str(err)


def test_missing_column(tmp_path):
    err = error_for(tmp_path, "date,open,high,low,close\n2024-01-02,1,1,1,1\n")
    assert_names(err, 1, "volume", None)
    assert "lacks required column(s) volume" in str(err)


def test_missing_time_column(tmp_path):
    err = error_for(tmp_path, "day,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n")
    assert_names(err, 1, "date", None)
    assert "no time column" in str(err)


def test_duplicate_required_column(tmp_path):
    err = error_for(tmp_path, "date,open,high,low,close,close,volume\n2024-01-02,1,1,1,1,1,1\n")
    assert_names(err, 1, "close", "close")


@pytest.mark.parametrize("line,row,field,value,problem", [
    (3, "2024-13-03,1050,1080,1000,1010,600", "date", "2024-13-03", "not a valid time"),
    (2, "02/01/2024,1000,1100,990,1050,500", "date", "02/01/2024", "not a valid time"),
    (4, "2024-01-04,1010,1020,950,abc,700", "close", "abc", "not a number"),
    (3, "2024-01-03,1050,1080,1000,1010,", "volume", "", "not a number"),
    (2, "2024-01-02,1000.5,1100,990,1050,500", "open", "1000.5", "not a whole number"),
    (3, "2024-01-03,1050,1080,0,1010,600", "low", "0", "not a positive price"),
    (2, "2024-01-02,-1000,1100,990,1050,500", "open", "-1000", "not a positive price"),
    (4, "2024-01-04,1010,1020,950,1000,-7", "volume", "-7", "negative"),
    (3, "2024-01-02,1050,1080,1000,1010,600", "date", "2024-01-02", "repeats the previous row"),
    (4, "2024-01-01,1010,1020,950,1000,700", "date", "2024-01-01", "earlier than the previous row"),
    (3, "2024-01-03,1050,990,1000,995,600", "high", "990", "below low"),
    (2, "2024-01-02,1000,1040,990,1050,500", "high", "1040", "below max(open, close) = 1050"),
    (4, "2024-01-04,1010,1020,1005,1000,700", "low", "1005", "above min(open, close) = 1000"),
])
def test_bad_values_name_file_line_field_value(tmp_path, line, row, field, value, problem):
    err = error_for(tmp_path, rows_with(line, row))
    assert_names(err, line, field, value)
    assert problem in str(err)


def test_ohlc_error_without_clamp_suggests_clamp(tmp_path):
    err = error_for(tmp_path, rows_with(2, "2024-01-02,1000,1048,990,1050,500"))
    assert "clamp_adjusted_high" in str(err)


def test_malformed_row_names_line(tmp_path):
    err = error_for(tmp_path, HEADER + GOOD_ROWS[0] + "\n2024-01-03,1,2,3,4,5,6,7\n")
    assert "123456.csv, line 3" in str(err) and err.line == 3


def test_clamp_small_gaps_and_report_them(tmp_path):
    text = (HEADER + "2024-01-02,1000,1047,990,1050,500\n"   # high 3 under close
            "2024-01-03,1050,1080,1000,1010,600\n"
            "2024-01-04,1010,1020,1001,996,700\n")           # low 5 over close
    write(tmp_path, "123456", text)
    result = read_csv_folder(tmp_path, clamp_adjusted_high=True)
    df = result.bars["123456"]
    assert df["high"].iloc[0] == 1050 and df["low"].iloc[2] == 996
    assert result.clamp_counts == {"123456": 2}
    assert [(c.line, c.field, c.before, c.after) for c in result.clamps] == [
        (2, "high", 1047, 1050), (4, "low", 1001, 996)]
    # the plain loader applies the same clamps
    assert load_csv_folder(tmp_path, clamp_adjusted_high=True)["123456"].equals(df)


def test_clamp_refuses_gaps_over_5_krw(tmp_path):
    err = error_for(tmp_path, rows_with(3, "2024-01-03,1050,1080,1000,1086,600"),
                    clamp_adjusted_high=True)
    assert_names(err, 3, "high", "1080")
    assert "1-5 KRW only, this one is 6 KRW" in str(err)


def test_nothing_half_loaded(tmp_path):
    write(tmp_path, "111111", HEADER + "\n".join(GOOD_ROWS) + "\n")
    write(tmp_path, "222222", rows_with(3, "2024-01-03,x,1080,1000,1010,600"))
    with pytest.raises(CSVDataError, match="222222.csv, line 3, field 'open'"):
        load_csv_folder(tmp_path)
    assert set(load_csv_folder(tmp_path, universe=["111111"])) == {"111111"}


def test_intraday_file_and_end_date_keeps_whole_day(tmp_path):
    text = ("datetime,open,high,low,close,volume\n"
            "2020-02-18 09:00:00,100,100,100,100,0\n"
            "2020-02-18 09:05:00,100,101,99,100,10\n"
            "2020-02-19 09:00:00,100,102,100,101,0\n"
            "2020-02-19 09:05,101,102,100,102,5\n")
    path = write(tmp_path, "123456", text)
    frame, clamps, timeframe = read_csv_file(path)
    assert timeframe == "5min" and not clamps
    assert frame.index[3] == pd.Timestamp("2020-02-19 09:05")
    sliced = load_csv_folder(tmp_path, start=date(2020, 2, 18), end=date(2020, 2, 18))["123456"]
    assert len(sliced) == 2
    upto = load_csv_folder(tmp_path, end=datetime(2020, 2, 19, 9, 0))["123456"]
    assert len(upto) == 3


def test_bad_intraday_time(tmp_path):
    text = "datetime,open,high,low,close,volume\n2020-02-18T09:00:00+09:00,1,1,1,1,0\n"
    err = error_for(tmp_path, text)
    assert_names(err, 2, "datetime", "2020-02-18T09:00:00+09:00")


def test_mixed_timeframes_refused(tmp_path):
    write(tmp_path, "111111", HEADER + GOOD_ROWS[0] + "\n")
    write(tmp_path, "222222", "datetime,open,high,low,close,volume\n"
                              "2020-02-18 09:00:00,1,1,1,1,0\n2020-02-18 09:05:00,1,1,1,1,0\n")
    with pytest.raises(CSVDataError, match="mix timeframes"):
        load_csv_folder(tmp_path)


def test_start_end_slice_daily(tmp_path):
    write(tmp_path, "123456", HEADER + "\n".join(GOOD_ROWS) + "\n")
    df = load_csv_folder(tmp_path, start=date(2024, 1, 3), end="2024-01-03")["123456"]
    assert list(df.index.date) == [date(2024, 1, 3)]


def test_demo_round_trip_through_csv(tmp_path):
    demo = generate_demo_market(DemoDataConfig(codes=3, start=date(2024, 1, 2), end=date(2024, 6, 28)))
    write_csv_folder(demo.bars, tmp_path)
    loaded = load_csv_folder(tmp_path)
    assert list(loaded) == list(demo.bars)
    for code, df in demo.bars.items():
        pd.testing.assert_frame_equal(loaded[code], df)


@pytest.mark.shared_data
def test_shared_daily_folder_needs_clamp_and_reports_readme_counts():
    folder = SHARED / "daily"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    with pytest.raises(CSVDataError, match="field 'high'"):
        load_csv_folder(folder)
    result = read_csv_folder(folder, clamp_adjusted_high=True)
    assert len(result.bars) == 41 and result.timeframe == "daily"
    counts = result.clamp_counts
    # shared/data/krx/README.md lists these counts of high < max(open, close) by 1-5 KRW
    assert counts["005930"] == 3 and counts["145270"] == 87 and counts["068760"] == 51
    assert "000660" not in counts
    sam = result.bars["005930"]
    assert sam.index[0] == pd.Timestamp("2015-01-02") and sam["open"].iloc[0] == 26799
    assert (sam["high"] >= sam[["open", "close"]].max(axis=1)).all()


@pytest.mark.shared_data
def test_shared_intraday_folder_is_5min():
    folder = SHARED / "intraday_5m"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    result = read_csv_folder(folder, universe=["005930"])
    df = result.bars["005930"]
    assert result.timeframe == "5min"
    assert df.index[0] == pd.Timestamp("2020-02-18 09:00")
    assert df.index[1] - df.index[0] == pd.Timedelta(minutes=5)

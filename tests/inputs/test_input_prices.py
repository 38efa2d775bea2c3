"""Plausibility of price files: what KRX cannot have printed is refused, what only looks odd is reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeds.csv_folder import CSVDataError, read_csv_file, read_csv_folder
from feeds.quality import MAX_PRICE_KRW, check_bars
from market.calendar import trading_days

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "krx"


def sessions(n: int, start: str = "2024-01-02") -> list:
    return trading_days(pd.Timestamp(start).date(), pd.Timestamp("2025-12-31").date())[:n]


def frame(closes, start: str = "2024-01-02") -> pd.DataFrame:
    days = sessions(len(closes), start)
    c = np.asarray(closes, dtype=np.int64)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": np.full(len(c), 1000, np.int64)},
                        index=pd.DatetimeIndex(pd.to_datetime(days), name="datetime"))


def write_csv(tmp_path: Path, rows: list[str], code: str = "005930") -> Path:
    p = tmp_path / f"{code}.csv"
    p.write_text("date,open,high,low,close,volume\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return p


def rows_of(df: pd.DataFrame) -> list[str]:
    return [f"{d:%Y-%m-%d},{o},{h},{lo},{c},{v}" for d, (o, h, lo, c, v) in
            zip(df.index, df[["open", "high", "low", "close", "volume"]].to_numpy())]


def test_a_one_day_spike_x1000_is_refused(tmp_path):
    df = frame([10_000, 10_100, 10_200, 10_150])
    df.iloc[2] = [10_200_000, 10_200_000, 10_200_000, 10_200_000, 1000]
    with pytest.raises(CSVDataError) as err:
        read_csv_file(write_csv(tmp_path, rows_of(df)))
    msg = str(err.value)
    assert "005930.csv, line 4" in msg and "band" in msg and "takes it back" in msg, msg


def test_a_spike_in_one_field_is_refused(tmp_path):
    df = frame([10_000, 10_100, 10_200, 10_150])
    df.iloc[2, df.columns.get_loc("high")] = 1_020_000
    with pytest.raises(CSVDataError, match="field 'high'.*outside the ±30 % band"):
        read_csv_file(write_csv(tmp_path, rows_of(df)))


def test_a_split_is_a_level_shift_warning_not_an_error(tmp_path):
    df = frame([50_000, 50_500, 10_100, 10_200, 10_150])       # 5:1, and it stays
    found = check_bars(df, "005930")
    assert [f.kind for f in found] == ["level_shift"] and not found[0].is_error
    loaded, _clamps, _tf = read_csv_file(write_csv(tmp_path, rows_of(df)))
    assert len(loaded) == 5


def test_moves_after_missing_sessions_may_compound_the_band():
    df = frame([10_000, 10_100, 10_200])
    df = df.drop(df.index[1])
    df.iloc[1] = [14_000, 14_000, 14_000, 14_000, 1000]       # +40 % over two sessions: within 1.3²
    kinds = [f.kind for f in check_bars(df, "x")]
    assert kinds == ["gap"]


def test_unquoted_thousands_separators_are_refused(tmp_path):
    p = write_csv(tmp_path, ["2024-01-02,100,110,90,100,5", "2024-01-03,100,110,90,100,16,971,946"])
    with pytest.raises(CSVDataError, match="line 3: 8 values for 6 columns .*thousands separators"):
        read_csv_file(p)


def test_holiday_and_weekend_dates_are_refused(tmp_path):
    with pytest.raises(CSVDataError, match="line 3, field 'date'.*2024-01-06 \\(Saturday\\) is not a KRX session"):
        read_csv_file(write_csv(tmp_path, ["2024-01-05,100,110,90,100,5", "2024-01-06,100,110,90,100,5"]))
    with pytest.raises(CSVDataError, match="2024-02-09 \\(Friday\\) is not a KRX session"):   # 설날 holiday
        read_csv_file(write_csv(tmp_path, ["2024-02-08,100,110,90,100,5", "2024-02-09,100,110,90,100,5"]))


def test_saturdays_of_the_1990s_were_sessions():
    df = frame([10_000, 10_000], start="1997-01-17")
    sat = pd.DatetimeIndex([pd.Timestamp("1997-01-17"), pd.Timestamp("1997-01-18")], name="datetime")
    assert not [f for f in check_bars(df.set_axis(sat), "x") if f.is_error]


@pytest.mark.parametrize("volume, needle", [("200000000000", "above 100,000,000,000 shares"),
                                            ("9000000000000000000", "implausibly large"),
                                            ("9e18", "implausibly large"),
                                            ("1e30", "implausibly large")])
def test_absurd_magnitudes_are_refused(tmp_path, volume, needle):
    with pytest.raises(CSVDataError, match=needle):
        read_csv_file(write_csv(tmp_path, [f"2024-01-02,100,110,90,100,{volume}"]))


def test_prices_above_any_krx_share_are_refused(tmp_path):
    p = MAX_PRICE_KRW + 1
    with pytest.raises(CSVDataError, match="more than any KRX share"):
        read_csv_file(write_csv(tmp_path, [f"2024-01-02,{p},{p},{p},{p},5"]))


@pytest.mark.parametrize("data, needle", [(b"\x00\x00\x00\x00", "binary file"),
                                          ("date,open,high,low,close,volume,종목\n".encode("cp949"), "CP949")])
def test_unreadable_files_name_the_file(tmp_path, data, needle):
    p = tmp_path / "005930.csv"
    p.write_bytes(data)
    with pytest.raises(CSVDataError, match=needle) as err:
        read_csv_file(p)
    assert "005930.csv" in str(err.value)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/krx not present")
@pytest.mark.parametrize("folder", ["daily", "daily_recent", "daily_long", "intraday_5m"])
def test_the_real_krx_bars_pass(folder):
    loaded = read_csv_folder(SHARED / folder, clamp_adjusted_high=True)
    errors = [f for code, df in loaded.bars.items() for f in check_bars(df, code) if f.is_error]
    assert errors == []

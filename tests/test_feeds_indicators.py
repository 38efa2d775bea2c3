"""feeds.indicators: spec parsing, column-name contract, equality with ta, warm-up NaNs."""

import numpy as np
import pandas as pd
import pytest
import ta

from feeds.indicators import (IndicatorSpec, add_indicators, indicator_columns, parse_indicator_spec,
                              wilder_atr)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 300
    close = np.round(10_000 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))).astype(np.int64)
    open_ = np.round(close * np.exp(rng.normal(0, 0.005, n))).astype(np.int64)
    high = np.maximum(open_, close) + rng.integers(0, 200, n)
    low = np.minimum(open_, close) - rng.integers(0, 200, n)
    volume = rng.integers(1_000, 100_000, n)
    idx = pd.DatetimeIndex(pd.bdate_range("2022-01-03", periods=n), name="datetime")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx)


@pytest.mark.parametrize("spec,columns", [
    ("sma_20", ["sma_20"]), ("ema_12", ["ema_12"]), ("rsi_14", ["rsi_14"]), ("atr_14", ["atr_14"]),
    ("roc_10", ["roc_10"]), ("volsma_20", ["volsma_20"]), ("high_252", ["high_252"]), ("low_20", ["low_20"]),
    ("macd_12_26_9", ["macd_12_26_9", "macd_signal_12_26_9", "macd_diff_12_26_9"]),
    ("bb_20_2", ["bb_high_20_2", "bb_mid_20_2", "bb_low_20_2", "bb_pband_20_2"]),
])
def test_column_name_contract(spec, columns):
    assert parse_indicator_spec(spec).columns == columns
    assert indicator_columns([spec]) == columns


def test_parse_normalises_and_dedupes():
    assert parse_indicator_spec(" SMA_20 ") == IndicatorSpec("sma", (20,))
    assert indicator_columns(["sma_20", "SMA_20", "rsi_14", " sma_20", "rsi_14"]) == ["sma_20", "rsi_14"]


@pytest.mark.parametrize("spec,why", [
    ("foo_3", "unknown indicator 'foo'"),
    ("sma", "not of the form"),
    ("sma_0", "outside 1.."),
    ("sma_20_2", "needs 1 number"),
    ("bb_20", "needs 2 number"),
    ("macd_26_12_9", "fast window F smaller"),
    ("rsi-14", "not of the form"),
    (14, "is not text"),
])
def test_bad_specs_are_named_with_allowed_forms(spec, why):
    with pytest.raises(ValueError) as info:
        parse_indicator_spec(spec)
    msg = str(info.value)
    assert repr(spec) in msg and why in msg
    assert "sma_N" in msg and "macd_F_S_G" in msg and "bb_N_D" in msg


def test_values_equal_ta_computed_directly(bars):
    specs = ["sma_20", "ema_12", "rsi_14", "roc_10", "macd_12_26_9", "bb_20_2", "volsma_5", "atr_14",
             "high_252", "low_20"]
    out = add_indicators(bars, specs)
    close = bars["close"].astype(float)
    expect = {
        "sma_20": ta.trend.SMAIndicator(close, 20).sma_indicator(),
        "ema_12": ta.trend.EMAIndicator(close, 12).ema_indicator(),
        "rsi_14": ta.momentum.RSIIndicator(close, 14).rsi(),
        "roc_10": ta.momentum.ROCIndicator(close, 10).roc(),
        "macd_12_26_9": ta.trend.MACD(close, 26, 12, 9).macd(),
        "macd_signal_12_26_9": ta.trend.MACD(close, 26, 12, 9).macd_signal(),
        "macd_diff_12_26_9": ta.trend.MACD(close, 26, 12, 9).macd_diff(),
        "bb_high_20_2": ta.volatility.BollingerBands(close, 20, 2).bollinger_hband(),
        "bb_mid_20_2": ta.volatility.BollingerBands(close, 20, 2).bollinger_mavg(),
        "bb_low_20_2": ta.volatility.BollingerBands(close, 20, 2).bollinger_lband(),
        "bb_pband_20_2": ta.volatility.BollingerBands(close, 20, 2).bollinger_pband(),
        "volsma_5": bars["volume"].astype(float).rolling(5).mean(),
        "high_252": bars["high"].rolling(252).max().astype(float),
        "low_20": bars["low"].rolling(20).min().astype(float),
    }
    for col, series in expect.items():
        np.testing.assert_allclose(out[col].to_numpy(), series.to_numpy(dtype=float), rtol=1e-12,
                                   equal_nan=True, err_msg=col)
    ta_atr = ta.volatility.AverageTrueRange(bars["high"].astype(float), bars["low"].astype(float),
                                            close, 14).average_true_range().to_numpy()
    np.testing.assert_allclose(out["atr_14"].to_numpy()[13:], ta_atr[13:], rtol=1e-10)
    assert (ta_atr[:13] == 0).all()          # ta writes zeros during warm-up ...
    assert out["atr_14"].iloc[:13].isna().all()  # ... we write NaN


def test_high_252_includes_today(bars):
    out = add_indicators(bars, ["high_3"])
    assert out["high_3"].iloc[2] == bars["high"].iloc[:3].max()
    assert out["high_3"].iloc[10] == bars["high"].iloc[8:11].max()


@pytest.mark.parametrize("spec,col,nan_rows", [
    ("sma_20", "sma_20", 19), ("ema_12", "ema_12", 11), ("rsi_14", "rsi_14", 13), ("atr_14", "atr_14", 13),
    ("roc_10", "roc_10", 10), ("volsma_5", "volsma_5", 4), ("high_252", "high_252", 251),
    ("low_20", "low_20", 19), ("bb_20_2", "bb_pband_20_2", 19),
    ("macd_12_26_9", "macd_12_26_9", 25), ("macd_12_26_9", "macd_signal_12_26_9", 33),
    ("macd_12_26_9", "macd_diff_12_26_9", 33),
])
def test_warmup_rows_are_nan_then_defined(bars, spec, col, nan_rows):
    values = add_indicators(bars, [spec])[col]
    assert values.iloc[:nan_rows].isna().all()
    assert values.iloc[nan_rows:].notna().all()
    assert values.dtype == np.float64


def test_new_frame_input_untouched_and_short_history(bars):
    original = bars.copy()
    out = add_indicators(bars, ["sma_5", "atr_14"])
    pd.testing.assert_frame_equal(bars, original)
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "sma_5", "atr_14"]
    short = add_indicators(bars.iloc[:5], ["atr_14", "sma_20", "macd_12_26_9", "bb_20_2", "rsi_14"])
    assert short.iloc[:, 5:].isna().all().all() and len(short) == 5
    assert add_indicators(bars, []).equals(bars)


def test_recomputing_replaces_existing_columns(bars):
    once = add_indicators(bars, ["sma_5"])
    tampered = once.assign(sma_5=0.0)
    again = add_indicators(tampered, ["sma_5"])
    assert list(again.columns).count("sma_5") == 1
    pd.testing.assert_series_equal(again["sma_5"], once["sma_5"])


def test_wilder_atr_short_input():
    s = pd.Series([1.0, 2.0])
    assert wilder_atr(s, s, s, 5).isna().all()

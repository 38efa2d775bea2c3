"""Panel indicators equal the ``ta`` values the backtrader path reads, bit for bit.

``feeds.indicators`` (ta/pandas, one code at a time) is the reference; the panel computes every code
at once in numba kernels. Compared column by column with exact equality (NaN where NaN), on the real
KRX bars (listings, halts, corporate-action gaps) and on a demo market with halts; the kernels are
also checked against pandas on random series with NaN inside (the guards for pandas' own quirks).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from conftest import SHARED, needs_shared
from configs.schema import DemoDataConfig
from feeds.csv_folder import csv_paths, read_csv_file
from feeds.demo import generate_demo_market
from feeds.indicators import add_indicators, indicator_columns
from research.indicators import add_panel_indicators, ewm, rolling_extreme, sma
from research.panel import Panel

SPECS = ["sma_20", "sma_1", "ema_12", "ema_3", "rsi_14", "rsi_2", "atr_14", "atr_1", "roc_60", "roc_1",
         "macd_12_26_9", "macd_2_3_3", "bb_20_2", "bb_5_1", "volsma_20", "high_252", "high_5", "low_20"]


def assert_panel_equals_ta(frames: dict[str, pd.DataFrame], panel: Panel) -> int:
    add_panel_indicators(panel, SPECS)
    checked = 0
    for code, frame in frames.items():
        ref = add_indicators(frame, SPECS)
        i = panel.codes.index(code)
        rows = panel.has_bar[:, i]
        for col in indicator_columns(SPECS):
            got = panel.fields[col][rows, i]
            want = ref[col].to_numpy()
            assert np.array_equal(got, want, equal_nan=True), (code, col)
            assert np.isnan(panel.fields[col][~rows, i]).all(), (code, col, "no bar must be NaN")
            checked += 1
    return checked


@needs_shared
def test_real_daily_bars_every_spec_equals_ta():
    frames = {c: read_csv_file(p, c, True)[0] for c, p in csv_paths(SHARED / "daily").items()}
    panel = Panel.from_frames(frames, {c: "KOSPI" for c in frames})
    assert panel.has_bar.sum() < panel.has_bar.size          # halts and gaps are in the data
    assert assert_panel_equals_ta(frames, panel) == len(frames) * len(indicator_columns(SPECS))


def test_demo_market_with_halts_every_spec_equals_ta():
    demo = generate_demo_market(DemoDataConfig(codes=20, start=date(2022, 1, 3), end=date(2023, 6, 30), seed=4))
    assert demo.halts
    panel = Panel.from_frames(demo.bars, demo.markets)
    assert_panel_equals_ta(demo.bars, panel)


def test_window_kernels_equal_pandas_on_series_with_nan_inside():
    rng = np.random.default_rng(1)
    x = rng.normal(100, 20, (30, 300))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, :3] = np.nan
    x[5] = 7.0                      # constant series: pandas keeps them exact
    x[6, ::2] = -3.5                # negative values: pandas' sign rule for means
    frame = pd.DataFrame(x.T)
    for n in (1, 2, 5, 20):
        for minp in {1, n}:
            assert np.array_equal(sma(x, n, minp), frame.rolling(n, min_periods=minp).mean().to_numpy().T,
                                  equal_nan=True), (n, minp)
            assert np.array_equal(rolling_extreme(x, n, minp, True),
                                  frame.rolling(n, min_periods=minp).max().to_numpy().T, equal_nan=True)
            assert np.array_equal(rolling_extreme(x, n, minp, False),
                                  frame.rolling(n, min_periods=minp).min().to_numpy().T, equal_nan=True)
        for alpha in (1 / (n + 1), 0.5):
            com = (1 - alpha) / alpha
            assert np.array_equal(ewm(x, com, n), frame.ewm(alpha=alpha, min_periods=n, adjust=False).mean()
                                  .to_numpy().T, equal_nan=True), (n, alpha)

"""feeds.demo: determinism, KRX rules on every bar (tick grid, band), halts, limit days, structure."""

import hashlib
import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from configs.schema import DemoDataConfig
from feeds.demo import SYNTHETIC_LABEL, DemoMarket, generate_demo_market
from market.calendar import krx_calendar, trading_days
from market.limits import price_band
from market.ticks import Market, is_on_tick, tick_size


@pytest.fixture(scope="module")
def demo() -> DemoMarket:
    return generate_demo_market(DemoDataConfig())


def _digest(m: DemoMarket) -> str:
    h = hashlib.sha256()
    for code, df in m.bars.items():
        h.update(code.encode())
        h.update(df.index.asi8.tobytes())
        h.update(df.to_numpy().tobytes())
    return h.hexdigest()


def test_same_config_gives_identical_bytes(demo):
    again = generate_demo_market(DemoDataConfig())
    assert list(again.bars) == list(demo.bars)
    for code in demo.bars:
        pd.testing.assert_frame_equal(again.bars[code], demo.bars[code])
    assert _digest(again) == _digest(demo)
    assert again.halts == demo.halts
    assert again.limit_up_days == demo.limit_up_days
    assert again.limit_down_days == demo.limit_down_days


def test_different_seed_gives_different_prices(demo):
    other = generate_demo_market(DemoDataConfig(seed=7))
    assert _digest(other) != _digest(demo)
    assert not other.bars["990001"]["close"].equals(demo.bars["990001"]["close"])


def test_codes_names_markets_and_label(demo):
    assert len(demo.bars) == 30
    assert list(demo.bars)[:3] == ["990001", "990002", "990003"]
    assert all(len(c) == 6 and c.startswith("99") for c in demo.bars)
    assert demo.names["990001"] == "DEMO01 (synthetic)"
    assert set(demo.markets.values()) == {Market.KOSPI, Market.KOSDAQ}
    assert SYNTHETIC_LABEL.split()[0] == "SYNTHETIC"
    assert demo.label.startswith("SYNTHETIC")
    big = generate_demo_market(DemoDataConfig(codes=120, start=date(2024, 1, 2), end=date(2024, 2, 1)))
    assert big.names["990120"] == "DEMO120 (synthetic)"


def test_frames_are_integer_ohlcv_on_trading_days(demo):
    sessions = set(trading_days(date(2021, 1, 4), date(2025, 12, 30)))
    for code, df in demo.bars.items():
        assert list(df.columns) == ["open", "high", "low", "close", "volume"]
        assert all(df.dtypes == np.int64), code
        assert df.index.name == "datetime" and df.index.tz is None
        assert df.index.is_monotonic_increasing and df.index.is_unique
        assert set(df.index.date) <= sessions
        assert (df["volume"] > 0).all()
        assert (df["high"] >= df[["open", "close"]].max(axis=1)).all(), code
        assert (df["low"] <= df[["open", "close"]].min(axis=1)).all(), code
        assert (df["low"] > 0).all()


def test_every_price_on_tick_grid_and_inside_band(demo):
    krx_calendar()
    checked = 0
    for code, df in demo.bars.items():
        market = demo.markets[code]
        days = df.index.date
        values = df[["open", "high", "low", "close"]].to_numpy()
        for k in range(len(df)):
            d = days[k]
            for price in values[k]:
                assert is_on_tick(int(price), d, market), (code, d, price)
            if k == 0:
                continue
            band = price_band(int(values[k - 1, 3]), d, market)
            assert band.lower <= values[k, 2] and values[k, 1] <= band.upper, (code, d, values[k], band)
            checked += 1
    assert checked > 30 * 1000


def test_every_tick_band_is_exercised(demo):
    unified_day = date(2023, 1, 25)
    ticks_seen = set()
    for code, df in demo.bars.items():
        recent = df.loc[df.index >= pd.Timestamp(unified_day), "close"]
        ticks_seen |= {tick_size(int(p), unified_day, demo.markets[code]) for p in recent}
    assert ticks_seen == {1, 5, 10, 50, 100, 500, 1_000}
    first_closes = sorted(int(df["close"].iloc[0]) for df in demo.bars.values())
    assert sum(p < 2_000 for p in first_closes) >= 2
    assert 1 <= sum(p >= 500_000 for p in first_closes) <= 3
    assert sum(5_000 <= p < 200_000 for p in first_closes) >= 15


def test_limit_days_are_present_spread_and_exact(demo):
    up = {c: ds for c, ds in demo.limit_up_days.items() if ds}
    down = {c: ds for c, ds in demo.limit_down_days.items() if ds}
    assert len(up) >= 2 and len(down) >= 2
    for table, side in ((demo.limit_up_days, "upper"), (demo.limit_down_days, "lower")):
        for code, days in table.items():
            df = demo.bars[code]
            closes = df["close"]
            for d in days:
                pos = df.index.get_loc(pd.Timestamp(d))
                band = price_band(int(closes.iloc[pos - 1]), d, demo.markets[code])
                assert closes.iloc[pos] == getattr(band, side), (code, d)
    # and every close at a limit is listed (metadata agrees with the bars)
    for code, df in demo.bars.items():
        closes = df["close"].to_numpy()
        days = df.index.date
        found_up, found_down = [], []
        for k in range(1, len(df)):
            band = price_band(int(closes[k - 1]), days[k], demo.markets[code])
            if closes[k] == band.upper:
                found_up.append(days[k])
            if closes[k] == band.lower:
                found_down.append(days[k])
        assert found_up == demo.limit_up_days[code]
        assert found_down == demo.limit_down_days[code]


def test_limit_days_have_heavier_volume(demo):
    ratios = []
    for code, days in demo.limit_up_days.items():
        vol = demo.bars[code]["volume"]
        for d in days:
            ratios.append(vol.loc[pd.Timestamp(d)] / vol.median())
    assert np.median(ratios) > 2


def test_halts_remove_sessions_and_price_resumes_inside_band(demo):
    assert demo.halts
    for halt in demo.halts:
        df = demo.bars[halt.code]
        missing = trading_days(halt.first_missing, halt.last_missing)
        assert len(missing) == halt.sessions >= 1
        present = set(df.index.date)
        assert not present & set(missing)
        before = krx_calendar().previous_trading_day(halt.first_missing)
        after = krx_calendar().next_trading_day(halt.last_missing)
        assert before in present and after in present
        last_close = int(df.loc[pd.Timestamp(before), "close"])
        row = df.loc[pd.Timestamp(after)]
        band = price_band(last_close, after, demo.markets[halt.code])
        assert band.lower <= row["low"] <= row["high"] <= band.upper
        # the bar after the halt follows directly on the bar before it
        pos = df.index.get_loc(pd.Timestamp(after))
        assert df.index[pos - 1] == pd.Timestamp(before)


def test_common_factor_correlates_returns(demo):
    closes = pd.DataFrame({c: df["close"] for c, df in demo.bars.items()})
    rets = np.log(closes).diff()
    corr = rets.corr().to_numpy()
    mean_pairwise = corr[np.triu_indices_from(corr, k=1)].mean()
    assert 0.1 < mean_pairwise < 0.8
    vol = rets.std() * np.sqrt(250)
    assert 0.15 < vol.median() < 0.7


def test_small_and_short_demos_work():
    one = generate_demo_market(DemoDataConfig(codes=1, start=date(2024, 1, 2), end=date(2024, 3, 29)))
    assert list(one.bars) == ["990001"]
    assert one.halts and one.halts[0].code == "990001"
    assert one.limit_up_days["990001"] and one.limit_down_days["990001"]
    with pytest.raises(ValueError, match="no KRX trading day"):
        generate_demo_market(DemoDataConfig(start=date(2024, 2, 10), end=date(2024, 2, 12)))


def test_generation_is_fast():
    krx_calendar()
    t0 = time.perf_counter()
    generate_demo_market(DemoDataConfig())
    assert time.perf_counter() - t0 < 1.0

"""feeds.history: load_market_data over demo / csv / cache, and make_feed inside backtrader."""

from datetime import date
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from configs.schema import DataConfig, DemoDataConfig
from feeds.cache import BarCache
from feeds.csv_folder import CSVDataError, write_csv_folder
from feeds.demo import generate_demo_market
from feeds.history import (MarketDataError, feed_class, load_market_data, make_feed, market_from_text,
                           read_markets_file)
from feeds.indicators import add_indicators
from market.ticks import Market

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "krx"
SMALL_DEMO = DemoDataConfig(codes=4, start=date(2023, 1, 2), end=date(2024, 6, 28))


@pytest.fixture(scope="module")
def demo():
    return generate_demo_market(SMALL_DEMO)


@pytest.fixture
def csv_folder(tmp_path, demo):
    folder = tmp_path / "csv"
    write_csv_folder(demo.bars, folder)
    return folder


# --- load_market_data ----------------------------------------------------------------------

def test_demo_source_indicators_before_slicing(demo):
    cfg = DataConfig(source="demo", demo=SMALL_DEMO, start=date(2024, 1, 2), end=date(2024, 3, 29),
                     indicators=["sma_20", "macd_12_26_9"])
    md = load_market_data(cfg, extra_indicators=["rsi_14", "sma_20"])
    assert md.synthetic and md.label.startswith("SYNTHETIC") and md.source == "demo"
    assert md.timeframe == "daily"
    assert md.indicators == ["sma_20", "macd_12_26_9", "macd_signal_12_26_9", "macd_diff_12_26_9", "rsi_14"]
    assert md.codes == list(demo.bars) and md.markets == demo.markets and md.names == demo.names
    for code, df in md.bars.items():
        assert df.index[0] >= pd.Timestamp("2024-01-02") and df.index[-1] <= pd.Timestamp("2024-03-29")
        assert df.index.name == "datetime" and df.index.tz is None
        assert all(df[c].dtype == np.int64 for c in ["open", "high", "low", "close", "volume"])
        # warm-up used earlier bars: defined on the first day of the window
        assert df[md.indicators].iloc[0].notna().all()
        full = add_indicators(demo.bars[code], ["sma_20", "macd_12_26_9", "rsi_14"])
        pd.testing.assert_frame_equal(df, full.loc[df.index[0]:df.index[-1]])


def test_universe_selects_and_unknown_codes_are_named():
    md = load_market_data(DataConfig(source="demo", demo=SMALL_DEMO, universe=["990003", "990001"]))
    assert md.codes == ["990003", "990001"]
    with pytest.raises(MarketDataError, match="unknown code.* 005930, 990099 in data.universe"):
        load_market_data(DataConfig(source="demo", demo=SMALL_DEMO, universe=["005930", "990001", "990099"]))


def test_demo_refuses_intraday():
    with pytest.raises(MarketDataError, match="daily bars only"):
        load_market_data(DataConfig(source="demo", demo=SMALL_DEMO, timeframe="5min"))


def test_progress_called_per_code():
    calls = []
    load_market_data(DataConfig(source="demo", demo=SMALL_DEMO), progress=lambda *a: calls.append(a))
    assert calls == [("990001", 1, 4), ("990002", 2, 4), ("990003", 3, 4), ("990004", 4, 4)]


def test_bad_indicator_spec_fails_before_loading():
    with pytest.raises(ValueError, match="indicator spec 'smaa_20'"):
        load_market_data(DataConfig(source="demo", demo=SMALL_DEMO, indicators=["smaa_20"]))


def test_csv_source_with_markets_file(tmp_path, csv_folder, demo):
    markets = tmp_path / "tickers.csv"
    markets.write_text("code,name,market\n990001,First,KOSDAQ GLOBAL\n990002,Second,KOSPI\n"
                       "990003,,KOSDAQ\n", encoding="utf-8")
    cfg = DataConfig(source="csv", path=csv_folder, markets_file=markets, default_market=Market.KONEX,
                     start=date(2024, 1, 2), indicators=["atr_14"])
    md = load_market_data(cfg)
    assert not md.synthetic and md.label.startswith("CSV folder") and "back-adjusted" in md.label
    assert md.markets == {"990001": Market.KOSDAQ, "990002": Market.KOSPI, "990003": Market.KOSDAQ,
                          "990004": Market.KONEX}
    assert md.names["990001"] == "First" and md.names["990003"] == "990003"
    for code, df in md.bars.items():
        expected = add_indicators(demo.bars[code], ["atr_14"]).loc["2024-01-02":]
        pd.testing.assert_frame_equal(df, expected)


def test_csv_source_errors(tmp_path, csv_folder):
    with pytest.raises(CSVDataError, match="no file for requested code.* 123456"):
        load_market_data(DataConfig(source="csv", path=csv_folder, universe=["123456"]))
    with pytest.raises(MarketDataError, match="holds daily bars but data.timeframe is '5min'"):
        load_market_data(DataConfig(source="csv", path=csv_folder, timeframe="5min"))
    bad = tmp_path / "bad.csv"
    bad.write_text("code,market\n990001,NYSE\n")
    with pytest.raises(MarketDataError, match=r"bad.csv, line 2, field 'market'.*'NYSE'.*allowed"):
        load_market_data(DataConfig(source="csv", path=csv_folder, markets_file=bad))


def test_read_markets_file_keeps_leading_zeros(tmp_path):
    path = tmp_path / "tickers.csv"
    path.write_text("\ufeffcode,name,market,extra\n005930,삼성전자,KOSPI,x\n035900,JYP Ent.,KOSDAQ GLOBAL,y\n",
                    encoding="utf-8")
    markets, names = read_markets_file(path)
    assert markets == {"005930": Market.KOSPI, "035900": Market.KOSDAQ}
    assert names == {"005930": "삼성전자", "035900": "JYP Ent."}
    (tmp_path / "nomarket.csv").write_text("code,name\n005930,x\n")
    with pytest.raises(MarketDataError, match="line 1: missing column.* market"):
        read_markets_file(tmp_path / "nomarket.csv")
    with pytest.raises(MarketDataError, match="markets file not found"):
        read_markets_file(tmp_path / "absent.csv")


def test_market_names_map():
    assert market_from_text("KOSDAQ GLOBAL") is Market.KOSDAQ
    assert market_from_text(" kospi ") is Market.KOSPI
    assert market_from_text("ETF") is Market.ETF
    with pytest.raises(ValueError, match="unknown market"):
        market_from_text("NASDAQ")


def test_empty_window_dropped_or_refused(csv_folder, tmp_path):
    # an extra code whose history ends before the window
    old = tmp_path / "csv" / "111111.csv"
    old.write_text("date,open,high,low,close,volume\n2020-01-02,100,110,90,100,5\n")
    md = load_market_data(DataConfig(source="csv", path=csv_folder, start=date(2024, 1, 2)))
    assert "111111" not in md.bars and "111111" in md.dropped and "2020-01-02" in md.dropped["111111"]
    with pytest.raises(MarketDataError, match="code 111111: no bars in 2024-01-02"):
        load_market_data(DataConfig(source="csv", path=csv_folder, start=date(2024, 1, 2),
                                    universe=["990001", "111111"]))
    with pytest.raises(MarketDataError, match="no code has bars"):
        load_market_data(DataConfig(source="csv", path=csv_folder, start=date(2030, 1, 2)))


def test_cache_source_equals_csv_source(tmp_path, csv_folder):
    url = f"sqlite:///{tmp_path / 'c' / 'bars.sqlite'}"
    with BarCache(url) as cache:
        cache.import_csv_folder(csv_folder, source="demo export")
    common = dict(start=date(2023, 6, 1), end=date(2024, 2, 29), indicators=["sma_5", "bb_20_2"])
    from_cache = load_market_data(DataConfig(source="cache", cache_url=url, **common))
    from_csv = load_market_data(DataConfig(source="csv", path=csv_folder, **common))
    assert from_cache.codes == from_csv.codes
    for code in from_csv.codes:
        pd.testing.assert_frame_equal(from_cache.bars[code], from_csv.bars[code])
    assert "bar cache" in from_cache.label and "demo export" in from_cache.label
    with pytest.raises(MarketDataError, match="unknown code.* 123456"):
        load_market_data(DataConfig(source="cache", cache_url=url, universe=["123456"]))
    with pytest.raises(MarketDataError, match="no 5min bars"):
        load_market_data(DataConfig(source="cache", cache_url=url, timeframe="5min"))


# --- make_feed -------------------------------------------------------------------------------

class Recorder(bt.Strategy):
    def __init__(self):
        self.seen = []

    def next(self):
        d = self.getdatabyname("990002")
        self.seen.append((d.datetime.datetime(0), d.close[0], d.sma_3[0], d.high_5[0]))


def test_make_feed_exposes_indicator_lines_in_backtrader(demo):
    df = add_indicators(demo.bars["990002"].iloc[:40], ["sma_3", "high_5"])
    cerebro = bt.Cerebro(stdstats=False)
    feed = make_feed("990002", df)
    assert feed._name == "990002"
    assert feed.p.timeframe == bt.TimeFrame.Days and feed.p.compression == 1
    cerebro.adddata(feed)
    cerebro.addstrategy(Recorder)
    strat = cerebro.run()[0]
    assert cerebro.datasbyname["990002"] is feed
    seen = pd.DataFrame(strat.seen, columns=["datetime", "close", "sma_3", "high_5"]).set_index("datetime")
    assert len(seen) == 40
    assert seen.index.tolist() == df.index.tolist()
    np.testing.assert_array_equal(seen["close"].to_numpy(), df["close"].to_numpy(dtype=float))
    np.testing.assert_allclose(seen["sma_3"].to_numpy(), df["sma_3"].to_numpy(), equal_nan=True)
    np.testing.assert_allclose(seen["high_5"].to_numpy(), df["high_5"].to_numpy(), equal_nan=True)
    assert np.isnan(seen["sma_3"].iloc[1]) and not np.isnan(seen["sma_3"].iloc[2])


class Plain(bt.Strategy):
    def __init__(self):
        self.rows = []

    def next(self):
        d = self.datas[0]
        self.rows.append((d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))


def test_fast_feed_matches_stock_pandasdata(demo):
    df = demo.bars["990001"].iloc[:60]
    results = []
    for feed in (make_feed("990001", df), bt.feeds.PandasData(dataname=df)):
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(feed)
        cerebro.addstrategy(Plain)
        results.append(cerebro.run()[0].rows)
    assert results[0] == results[1] and len(results[0]) == 60


def test_feed_classes_cached_and_names_checked(demo):
    a = add_indicators(demo.bars["990001"].iloc[:30], ["sma_3"])
    b = add_indicators(demo.bars["990002"].iloc[:30], ["sma_3"])
    c = add_indicators(demo.bars["990002"].iloc[:30], ["sma_3", "rsi_14"])
    assert type(make_feed("990001", a)) is type(make_feed("990002", b)) is feed_class(["sma_3"])
    assert type(make_feed("990002", c)) is not type(make_feed("990002", b))
    with pytest.raises(ValueError, match="cannot be a backtrader line"):
        make_feed("990001", a.assign(**{"bad name": 1.0}))
    with pytest.raises(ValueError, match="lacks column"):
        make_feed("990001", a.drop(columns=["volume"]))


def test_intraday_feed_timeframe():
    idx = pd.DatetimeIndex(pd.date_range("2020-02-18 09:00", periods=6, freq="5min"), name="datetime")
    df = pd.DataFrame({"open": 100, "high": 101, "low": 99, "close": 100, "volume": 5}, index=idx)
    feed = make_feed("123456", df)
    assert feed.p.timeframe == bt.TimeFrame.Minutes and feed.p.compression == 5


# --- real data ---------------------------------------------------------------------------------

@pytest.mark.shared_data
def test_shared_daily_through_load_market_data():
    if not (SHARED / "daily").is_dir():
        pytest.skip(f"{SHARED / 'daily'} not present")
    cfg = DataConfig(source="csv", path=SHARED / "daily", markets_file=SHARED / "tickers.csv",
                     clamp_adjusted_high=True, start=date(2021, 1, 4), end=date(2021, 12, 30),
                     indicators=["sma_200", "high_252"])
    md = load_market_data(cfg)
    assert len(md.bars) == 41 and not md.synthetic
    assert md.markets["247540"] is Market.KOSDAQ and md.markets["005930"] is Market.KOSPI
    assert md.names["005930"] == "삼성전자"
    assert md.clamps["145270"] == 87
    sam = md.bars["005930"]
    assert sam.index[0] == pd.Timestamp("2021-01-04") and sam["close"].iloc[0] == 83000
    assert sam[["sma_200", "high_252"]].iloc[0].notna().all()     # warm-up from 2020 bars


@pytest.mark.shared_data
def test_shared_intraday_through_load_market_data():
    if not (SHARED / "intraday_5m").is_dir():
        pytest.skip(f"{SHARED / 'intraday_5m'} not present")
    md = load_market_data(DataConfig(source="csv", path=SHARED / "intraday_5m", timeframe="5min",
                                     universe=["005930"], end=date(2020, 2, 19)))
    df = md.bars["005930"]
    assert len(df) == 144 and df.index[-1] == pd.Timestamp("2020-02-19 14:55")
    feed = md.feeds()[0]
    assert feed.p.compression == 5 and feed._name == "005930"

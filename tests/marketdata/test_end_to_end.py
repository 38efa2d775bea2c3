"""The issue's "done when", in one test per database: from a fresh database, build the stock master from the
emulator's files, download the emulator's whole market with an interruption and a resume, fetch the
fundamentals, then screen the market on fundamentals + technicals in a backtest — on SQLite and on a real
PostgreSQL server, with the same result."""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd

from configs.schema import parse_config
from engine.backtest import load_inputs, run_backtest
from feeds.cache import BarCache
from feeds.download import Downloader
from feeds.fundamentals import FundamentalsStore, fetch_fundamentals
from feeds.master import StockMaster

from market_helpers import MARKET_END, MARKET_START, client_for

END = date(2024, 12, 26)
_RESULTS: dict[str, pd.DataFrame] = {}


def _backtest_config(url: str, tmp_path) -> dict:
    return {
        "name": "value-trend",
        "broker": {"cash": 100_000_000},
        "data": {"source": "cache", "cache_url": url, "start": "2023-09-01", "end": END.isoformat(),
                 "universe": {"market": ["KOSPI", "KOSDAQ"], "exclude": ["etf", "spac", "우선주", "관리종목"]}},
        "strategy": {"name": "screen_momentum",
                     "params": {"top_n": 3, "fast": 5, "slow": 20, "momentum": 10, "exit_ma": 10, "rsi_max": 95.0,
                                "min_turnover_krw": 0.0, "rebalance_every": 2, "max_per": 500.0, "min_roe": 0.01}},
        "risk": {"sizer": {"kind": "equal_weight", "slots": 3}},
        "report": {"benchmark": "none"},
    }


def test_fresh_database_to_a_fundamental_and_technical_screen(market_emulator, small_market, new_db_url, tmp_path,
                                                              db_backend):
    emu = market_emulator(MARKET_END, rate=200.0)
    url = new_db_url("e2e")
    client = client_for(emu, tmp_path / "token.json")
    # 1. the stock master from the emulator's KIS-format files
    with StockMaster(url) as master:
        master.import_from(emu.master_url())
        listed = list(master.frame(include_delisted=False).index)
        listing = {c: (r.listing_date, r.delisting_date) for c, r in master.frame().iterrows()}
    # 2. the whole market, interrupted after two codes, then resumed
    stop = threading.Event()
    with BarCache(url) as cache:
        cut = Downloader(client, cache, workers=2, stop=stop, listing=listing,
                         on_code=lambda code, n: stop.set() if len(cache.codes()) >= 2 else None
                         ).run(listed, MARKET_START, END)
        assert cut.interrupted and len(cut.written) < len(listed)
        rest = Downloader(client, cache, workers=3, listing=listing).run(listed, MARKET_START, END)
        assert not rest.interrupted and not rest.failures
        assert sorted(cut.written + rest.written) == sorted(listed) == cache.codes()
    # 3. fundamentals, point in time
    with FundamentalsStore(url) as store:
        result = fetch_fundamentals(client, store, listed, MARKET_END, workers=3)
        assert not result.failures
    # 4. screen on fundamentals + technicals
    cfg = parse_config(_backtest_config(url, tmp_path), "e2e", base=tmp_path)
    _cls, _targets, market = load_inputs(cfg)
    assert market.codes == ["990001", "990002"]     # KOSPI/KOSDAQ common stocks without 관리종목 (not 990003-7)
    assert {"per", "roe", "sma_5", "roc_10"} <= set(market.bars["990001"].columns)
    per = market.bars["990002"]["per"]
    assert per.notna().any() and (per.dropna() > 0).all()
    result = run_backtest(cfg)
    trades = result.record.trades
    assert len(trades) > 0, "the screen should have bought something"
    _RESULTS[db_backend] = trades.reset_index(drop=True)
    if len(_RESULTS) == 2:                           # the same run on SQLite and PostgreSQL
        pd.testing.assert_frame_equal(_RESULTS["sqlite"], _RESULTS["postgresql"])

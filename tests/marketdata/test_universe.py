"""Universes by rule against the stock master, on SQLite and PostgreSQL: markets, kinds, designations on
the rule's day, point-in-time market cap, listing overlap (a delisted code stays when it traded in the window)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from brokers.kis.master import MasterRecord
from configs.errors import InputError
from configs.schema import UniverseRule, parse_config
from feeds.cache import BarCache
from feeds.fundamentals import Figure, FundamentalsStore, market_caps
from feeds.master import StockMaster
from feeds.universe import resolve_universe


def _rec(code: str, market: str = "KOSPI", group: str = "ST", **kw) -> MasterRecord:
    return MasterRecord(code=code, isin="KR7" + code + "000", name=code, market=market, group_code=group, **kw)


def _bars(closes: list[int], start: str = "2024-01-02") -> pd.DataFrame:
    idx = pd.DatetimeIndex(pd.bdate_range(start, periods=len(closes)), name="datetime")
    c = pd.Series(closes, index=idx, dtype="int64")
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": c * 0 + 100})


@pytest.fixture
def market(db_url):
    with StockMaster(db_url) as master:
        master.import_records([
            _rec("000001"), _rec("000002", market="KOSDAQ"), _rec("000003", group="EF"),
            _rec("000004", spac=True), _rec("000005", preferred_code="2"), _rec("000006", market="KONEX", group="KN"),
            _rec("000007", admin_issue=True), _rec("000008"), _rec("000009"),
        ], date(2024, 1, 2), "t")
        # a month later: 000007 is no longer 관리종목, 000008 is, 000009 is gone (delisted)
        master.import_records([
            _rec("000001"), _rec("000002", market="KOSDAQ"), _rec("000003", group="EF"),
            _rec("000004", spac=True), _rec("000005", preferred_code="2"), _rec("000006", market="KONEX", group="KN"),
            _rec("000007"), _rec("000008", admin_issue=True),
        ], date(2024, 2, 1), "t")
    with BarCache(db_url) as cache:
        cache.write({"000001": _bars([10_000] * 30), "000002": _bars([1_000] * 30), "000008": _bars([5_000] * 30)})
    with FundamentalsStore(db_url) as store:
        for code, shares in (("000001", 10_000_000), ("000002", 10_000_000), ("000008", 10_000_000)):
            store.record(code, [Figure(code, "snapshot", date(2024, 1, 2), "shares_listed", float(shares))],
                         fetched=date(2024, 1, 2), source="t")
    return db_url


def test_rule_on_the_master(market):
    with StockMaster(market) as master:
        rule = UniverseRule(market=["KOSPI", "KOSDAQ"], exclude=["etf", "spac", "우선주", "관리종목"])
        # on 2024-01-10 000007 is 관리종목; the delisted 000009 traded then: kept
        assert resolve_universe(rule.model_copy(update={"as_of": date(2024, 1, 10)}), master, market,
                                date(2024, 1, 2), date(2024, 3, 1)) == ["000001", "000002", "000008", "000009"]
        # on 2024-02-05 it is 000008
        assert resolve_universe(rule.model_copy(update={"as_of": date(2024, 2, 5)}), master, market,
                                date(2024, 1, 2), date(2024, 3, 1)) == ["000001", "000002", "000007", "000009"]
        # a window after the delisting leaves 000009 out
        assert "000009" not in resolve_universe(rule, master, market, date(2024, 3, 1), date(2024, 6, 1))
        assert resolve_universe(UniverseRule(market="KONEX"), master, market) == ["000006"]
        caps = market_caps(market, ["000001", "000002"], date(2024, 1, 31), master)
        assert caps == {"000001": 100_000_000_000.0, "000002": 10_000_000_000.0}
        big = UniverseRule(min_market_cap=60_000_000_000, as_of=date(2024, 1, 31))
        assert resolve_universe(big, master, market, date(2024, 1, 2), date(2024, 3, 1)) == ["000001"]
    with pytest.raises(InputError, match="needs the stock master"):
        resolve_universe(UniverseRule(), None, market)


def test_universe_rule_in_a_config(market, tmp_path):
    raw = {"data": {"source": "cache", "cache_url": market, "start": "2024-01-02",
                    "universe": {"market": "KOSPI", "exclude": ["관리종목"], "min_market_cap": 1}},
           "strategy": {"name": "buy_and_hold"}}
    cfg = parse_config(raw, "t", base=tmp_path)
    assert cfg.data.universe is None and cfg.data.universe_rule.market == ["KOSPI"]
    from feeds.history import load_market_data

    data = load_market_data(cfg.data)
    # 000002 is KOSDAQ, 000007 and 000009 have no bars; 000008 became 관리종목 only on 2024-02-01
    assert data.codes == ["000001", "000008"]
    with pytest.raises(InputError, match="unknown exclude tag"):
        parse_config({**raw, "data": {**raw["data"], "universe": {"exclude": ["penny"]}}}, "t", base=tmp_path)

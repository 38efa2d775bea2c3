"""The fast engine agrees with the event-driven simulator fill for fill on fundamentals + technicals.

One market-data database per backend (SQLite and a real PostgreSQL server) holds the demo market's stock
master, its bars (original prices, in the bar cache) and its point-in-time fundamentals from the emulator's
generated reference data (``fundamental_market.py``). On it:

* ``screen_momentum`` with every fundamental screen on (``max_per``, ``max_pbr``, ``min_roe``,
  ``min_market_cap``) over a universe *rule* (KOSPI + KOSDAQ, no ETF, no 관리종목, a market-cap floor):
  both engines give the same fills, equity, orders and refusals, and the same on both databases;
* a statement published after day D is invisible on D in both engines: the fundamental columns each engine
  reads on D are the older statement's, and the code the late statement opens is bought at the open after
  its publication day — one session later than an engine that had seen it on D would buy it.
"""

from __future__ import annotations

import pytest

from conftest import assert_same_run, fills
from configs.schema import parse_config
from engine.backtest import load_inputs, run_backtest
from fundamental_market import ADMIN_CODE, ETF_CODE, LATE_PARAMS, build, data_section
from research.engine import prepare, run_fast_backtest

_FILLS: dict[str, list[tuple]] = {}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def market(request, tmp_path_factory):
    """(database URL, the late statement), built once per backend for this module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fundamentals') / 'market.sqlite'}"
    else:
        url = request.getfixturevalue("pg_server").create_database("fund")
    return request.param, url, build(url)


def config(url: str, params: dict, **data) -> object:
    return parse_config({"name": "fundamentals", "report": {"benchmark": "none"}, "broker": {"cash": 100_000_000},
                         "data": data_section(url, **data), "risk": {"sizer": {"kind": "equal_weight", "slots": 20}},
                         "strategy": {"name": "screen_momentum", "params": params}})


VALUE_PARAMS = {"top_n": 4, "fast": 5, "slow": 20, "momentum": 10, "exit_ma": 10, "rebalance_every": 2,
                "min_turnover_krw": 0.0, "max_per": 25.0, "max_pbr": 4.0, "min_roe": 8.0, "min_market_cap": 2e11}
SMALL_CAPS = ("990005", "990011")
RULE = {"market": ["KOSPI", "KOSDAQ"], "exclude": ["etf", "관리종목"], "min_market_cap": 100_000_000_000}


def test_fundamental_screens_on_a_universe_rule_fill_for_fill(market):
    backend, url, _late = market
    cfg = config(url, VALUE_PARAMS, universe=RULE)
    event, fast_result = run_backtest(cfg).record, run_fast_backtest(cfg)
    fast = fast_result.record
    assert len(event.trades) > 10, "the case should trade"
    assert_same_run(event, fast)
    # the rule, resolved once for both engines: no ETF, no 관리종목, and the two codes under 100 bn KRW
    # on the rule's day (close x shares) are out
    assert fast_result.run.panel.codes == load_inputs(cfg)[2].codes
    assert not set(fast_result.run.panel.codes) & {ETF_CODE, ADMIN_CODE, *SMALL_CAPS}
    assert len(fast_result.run.panel.codes) == 12 - 4
    # the fundamental screens decide something: without them the same screen trades other codes or days
    plain = config(url, {k: v for k, v in VALUE_PARAMS.items() if not k.startswith(("max_p", "min_r", "min_m"))},
                   universe=RULE)
    assert fills(run_fast_backtest(plain).record.trades) != fills(fast.trades)
    _FILLS[backend] = fills(fast.trades)
    if len(_FILLS) == 2:                            # the same run on SQLite and PostgreSQL
        assert _FILLS["sqlite"] == _FILLS["postgresql"]


def test_a_statement_published_after_day_d_is_invisible_on_d_in_both_engines(market):
    _backend, url, late = market
    cfg = config(url, LATE_PARAMS)
    # the columns each engine reads: on D the 2021 statement's ROE (1 %), from the publication day the late one's
    _cls, _targets, data = load_inputs(cfg)
    roe_event = data.bars[late.code]["roe"]
    run = prepare(cfg)
    roe_fast = run.panel.field("roe")[:, run.panel.codes.index(late.code)]
    days = run.panel.py_dates()
    for day, expected in ((late.day_d, 1.0), (late.published, 60.0)):
        fast_value = roe_fast[days.index(day)]
        assert fast_value == pytest.approx(expected, abs=0.01), day
        assert roe_event.loc[str(day)].item() == fast_value, day
    # the run: the code is first bought at the open after the publication day, in both engines
    event, fast = run_backtest(cfg).record, run_fast_backtest(cfg).record
    assert_same_run(event, fast)
    for record in (event, fast):
        buys = record.trades[(record.trades["code"] == late.code) & (record.trades["side"] == "BUY")]
        assert len(buys) and buys["datetime"].min().date() == late.fill_day

"""A demo market with everything issue 13 adds, in one market-data database: the stock master, the bars in
the bar cache (original prices) and point-in-time fundamentals from the emulator's generated reference data
(``brokers/kis/emulator/reference.py``), imported with their publication days.

One code (``late.code``) is doctored so that a statement published after day D decides a screen: its ROE
is about 1 % on the annual statements of 2020 and 2021 and about 60 % on the one for 2022, which is
published late, on ``late.published`` — the session right after a day ``late.day_d`` on which the code
already passes every technical screen of ``LATE_PARAMS``. An engine that saw the statement before its
publication would buy the code one session early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from brokers.kis.emulator.reference import ReferenceData, ReferenceFile, generate_reference, isin_for
from brokers.kis.master import MasterRecord
from configs.schema import DataConfig, DemoDataConfig
from feeds.cache import BarCache
from feeds.demo import generate_demo_market
from feeds.fundamentals import FundamentalsStore, import_reference
from feeds.master import StockMaster

DEMO = {"codes": 12, "start": "2021-01-04", "end": "2023-12-28", "seed": 20240101}
ETF_CODE, ADMIN_CODE = "990003", "990009"
"""Listed as an ETF and as 관리종목 (admin issue) in the master: a rule excluding them must drop them."""
LATE_PARAMS = {"top_n": 12, "fast": 5, "slow": 10, "momentum": 5, "exit_ma": 10, "rsi_max": 100.0,
               "min_turnover_krw": 0.0, "rebalance_every": 1, "min_roe": 30.0}
"""A screen that, for the doctored code, only the late statement can open."""


@dataclass(frozen=True)
class LateStatement:
    code: str
    day_d: date           # passes the technical screen; the statement is not public yet
    published: date       # the next session: the statement becomes public, the screen passes
    fill_day: date        # the session after: the first buy fills at its open


def _technical_days(demo_cfg: DemoDataConfig, code: str) -> tuple[list[date], np.ndarray]:
    """``code``'s sessions and whether it passes LATE_PARAMS's screen without its ROE part on each (the
    project's own screen, on the panel)."""
    from research.indicators import add_panel_indicators
    from research.store import load_panel
    from strategies.examples.screen_momentum import ScreenMomentum

    spec = ScreenMomentum.spec_for({**LATE_PARAMS, "min_roe": 0.0})
    panel, _ = load_panel(DataConfig(source="demo", demo=demo_cfg), "none")
    panel = panel.select([code])
    add_panel_indicators(panel, list(spec.indicators))
    return panel.py_dates(), spec.entry.screener.screen.on_panel(panel.values())[:, 0]


def choose_late_statement(demo_cfg: DemoDataConfig, candidates: list[str]) -> LateStatement:
    for code in candidates:
        days, ok = _technical_days(demo_cfg, code)
        for i in range(len(days) - 2):
            # two passing sessions in a row after FY2022's on-time publication day (2023-03-16)
            if ok[i] and ok[i + 1] and date(2023, 4, 3) <= days[i] <= date(2023, 10, 31):
                return LateStatement(code, days[i], days[i + 1], days[i + 2])
    raise AssertionError("no code passes the technical screen on two sessions in a row")


def _doctored(reference: ReferenceData, late: LateStatement) -> ReferenceData:
    secs = dict(reference.securities)
    sec = secs[late.code]
    statements = []
    for st in sec.financials:
        if st.period == "annual" and st.period_end.year in (2020, 2021):
            st = st.model_copy(update={"net_income": st.total_equity // 100})             # ROE 1 %
        elif st.period == "annual" and st.period_end.year == 2022:
            st = st.model_copy(update={"net_income": st.total_equity * 6 // 10, "published": late.published})
        statements.append(st)
    secs[late.code] = sec.model_copy(update={"financials": statements})
    parsed = ReferenceFile(format="krx-trader/reference", version=1, synthetic=True, securities=list(secs.values()))
    return ReferenceData(parsed, "<doctored>")


def build(url: str) -> LateStatement:
    """The master, the bars (original prices) and the fundamentals of the demo market into ``url``."""
    demo_cfg = DemoDataConfig(**DEMO)
    demo = generate_demo_market(demo_cfg)
    candidates = [c for c in demo.codes if c not in (ETF_CODE, ADMIN_CODE)]
    late = choose_late_statement(demo_cfg, candidates)
    reference = _doctored(generate_reference(demo.bars, demo.markets, demo.names), late)
    with StockMaster(url) as master:
        master.import_records([
            MasterRecord(code=c, isin=isin_for(c), name=demo.names[c], market=demo.markets[c].value,
                         group_code="EF" if c == ETF_CODE else "ST", admin_issue=c == ADMIN_CODE,
                         listing_date=reference.get(c).listing_date,
                         shares_listed=int(np.asarray(reference.shares_on(c, demo.bars[c].index[0].date()))))
            for c in demo.codes], demo.bars[demo.codes[0]].index[-1].date(), "test master")
    with BarCache(url) as cache:
        cache.write(demo.bars, source="demo", adjusted=False)
    with FundamentalsStore(url) as store:
        import_reference(store, reference, "reference:demo")
    return late


def reference_database(url: str, demo: dict) -> str:
    """``url`` holding the point-in-time fundamentals of the demo market ``demo`` (generated reference data)."""
    market = generate_demo_market(DemoDataConfig(**demo))
    with FundamentalsStore(url) as store:
        import_reference(store, generate_reference(market.bars, market.markets, market.names), "reference:demo")
    return url


def data_section(url: str, **extra) -> dict:
    return {"source": "cache", "cache_url": url, "adjusted": False, "start": "2022-01-03", "end": DEMO["end"],
            **extra}

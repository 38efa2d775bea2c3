"""Fundamentals point in time, on SQLite and PostgreSQL: a statement published after day D is invisible on
D — with its real publication day (reference file) and with only its period known (KIS's finance TRs via
the emulator: the filing-deadline lag, raised by an earlier fetch that did not have it yet)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from feeds.fundamentals import (FundamentalsStore, fetch_fundamentals, filing_deadline, import_reference,
                                point_in_time)

from market_helpers import LATE_STATEMENT, client_for

Q2 = date(2024, 6, 30)
Q1 = date(2024, 3, 31)


def _statement(small_market, code: str, period: str, end: date):
    return next(st for st in small_market.reference.get(code).financials if st.period == period and st.period_end == end)


def _bps(small_market, code: str, end: date, period: str = "quarter") -> float:
    st = _statement(small_market, code, period, end)
    return st.total_equity / small_market.reference.shares_on(code, end)


def test_filing_deadlines():
    assert filing_deadline("quarter", Q2) == date(2024, 8, 14)
    assert filing_deadline("quarter", date(2024, 12, 31)) == date(2025, 3, 31)      # Q4: with the annual report
    assert filing_deadline("annual", date(2024, 12, 31)) == date(2025, 3, 31)
    assert filing_deadline("quarter", date(2024, 3, 31), fiscal_month=3) == date(2024, 6, 29)


def test_reference_statements_are_visible_from_their_publication_day(small_market, db_url):
    with FundamentalsStore(db_url) as store:
        import_reference(store, small_market.reference, "reference:test")
        rows = store.rows(["990002"])
        late = rows[(rows["period"] == "quarter") & (rows["period_end"] == Q2)]
        assert set(late["known_from"]) == {LATE_STATEMENT} and set(late["basis"]) == {"report"}
        before = store.as_of("990002", LATE_STATEMENT.replace(day=19))
        on = store.as_of("990002", LATE_STATEMENT)
        assert before["total_equity"] == _statement(small_market, "990002", "quarter", Q1).total_equity
        assert on["total_equity"] == _statement(small_market, "990002", "quarter", Q2).total_equity
    days = pd.DatetimeIndex([pd.Timestamp("2024-08-19"), pd.Timestamp("2024-08-20")])
    values = point_in_time(rows, days, np.array([10_000.0, 10_000.0]), ["bps", "pbr", "eps", "per"])
    assert values["bps"][0] == pytest.approx(_bps(small_market, "990002", Q1))
    assert values["bps"][1] == pytest.approx(_bps(small_market, "990002", Q2))
    assert values["pbr"][1] == pytest.approx(10_000.0 / values["bps"][1])
    annual = _statement(small_market, "990002", "annual", date(2023, 12, 31))
    eps = annual.net_income / small_market.reference.shares_on("990002", annual.period_end)
    assert values["eps"][0] == pytest.approx(eps) and values["per"][0] == pytest.approx(10_000.0 / eps)


def test_kis_figures_are_known_from_the_deadline_or_later(market_emulator, small_market, db_url, tmp_path):
    early = market_emulator(date(2024, 8, 16))          # after Q2's deadline (08-14), before its publication (08-20)
    with FundamentalsStore(db_url) as store:
        client = client_for(early, tmp_path / "t1.json")
        first = fetch_fundamentals(client, store, ["990001", "990002"], date(2024, 8, 16), workers=2)
        assert not first.failures and first.requests >= 2 * 7
        rows = store.rows(["990002"])
        assert rows[(rows["period"] == "quarter") & (rows["period_end"] == Q2)].empty     # not published yet
        one = rows[(rows["code"] == "990002") & (rows["period"] == "quarter") & (rows["period_end"] == Q1)]
        assert set(one["known_from"]) == {filing_deadline("quarter", Q1)} and set(one["basis"]) == {"lag"}
        # KIS's amounts (억원, two decimals) equal the statement's to the 100만원
        equity = one[one["item"] == "total_equity"]["value"].iloc[0]
        assert equity == pytest.approx(_statement(small_market, "990002", "quarter", Q1).total_equity, abs=1e6)
        snap = rows[rows["period"] == "snapshot"]
        assert set(snap["item"]) >= {"per", "pbr", "eps", "bps", "shares_listed", "market_cap"}
        assert set(snap["known_from"]) == {date(2024, 8, 16)}

        later = market_emulator(date(2024, 12, 27))
        client2 = client_for(later, tmp_path / "t2.json")
        fetch_fundamentals(client2, store, ["990001", "990002"], date(2024, 12, 27), workers=2)
        rows = store.rows()
        q2 = rows[(rows["code"] == "990002") & (rows["period"] == "quarter") & (rows["period_end"] == Q2)]
        # the deadline says 08-14, but the fetch of 08-16 did not have it: public from 08-17 at the earliest
        assert set(q2["known_from"]) == {date(2024, 8, 17)}
        q2_on_time = rows[(rows["code"] == "990001") & (rows["period"] == "quarter") & (rows["period_end"] == Q2)]
        assert set(q2_on_time["known_from"]) == {date(2024, 8, 14)}        # published 08-14 (45 days): the deadline
        assert store.as_of("990002", date(2024, 8, 16)).get("total_equity") == pytest.approx(
            _statement(small_market, "990002", "quarter", Q1).total_equity, abs=1e6)


def test_restatement_is_a_new_version(db_url):
    from feeds.fundamentals import Figure

    with FundamentalsStore(db_url) as store:
        store.record("005930", [Figure("005930", "annual", date(2023, 12, 31), "net_income", 100.0)],
                     fetched=date(2024, 5, 1), source="t")
        assert store.record("005930", [Figure("005930", "annual", date(2023, 12, 31), "net_income", 100.0)],
                            fetched=date(2024, 6, 1), source="t") == 0          # unchanged: nothing new
        assert store.record("005930", [Figure("005930", "annual", date(2023, 12, 31), "net_income", 90.0)],
                            fetched=date(2024, 7, 1), source="t") == 1
        assert store.as_of("005930", date(2024, 6, 30))["net_income"] == 100.0
        assert store.as_of("005930", date(2024, 7, 1))["net_income"] == 90.0
        assert store.as_of("005930", date(2024, 3, 29)) == {}           # before the deadline (2024-03-30: 90 days)
        assert store.as_of("005930", date(2024, 3, 30))["net_income"] == 100.0


def test_panel_fields_equal_the_event_engines_columns(small_market, db_url):
    """The fast engine's interface (``panel_provider`` for ``research.panel``'s field providers) gives the same
    day × code values as the feed columns the event engine reads."""
    from feeds.fundamentals import FIELDS, add_fundamentals, panel_provider

    with FundamentalsStore(db_url) as store:
        import_reference(store, small_market.reference, "reference:test")
    codes = ["990001", "990002", "990007"]
    frames = {c: small_market.bars[c].loc["2023-06-01":] for c in codes}
    columns = add_fundamentals(frames, db_url, FIELDS)
    dates = np.array(sorted(set().union(*(set(f.index) for f in frames.values()))), dtype="datetime64[D]")
    close = np.full((len(dates), len(codes)), np.nan)
    for j, c in enumerate(codes):
        close[np.searchsorted(dates, np.array(frames[c].index.values, dtype="datetime64[D]")), j] = frames[c]["close"]

    class Panel:                                   # what the provider reads of research.panel.Panel
        def __init__(self):
            self.dates, self.codes = dates, codes

        def field(self, name):
            assert name == "close"
            return close

    provide = panel_provider(db_url)
    assert provide(Panel(), "sma_20") is None
    for name in ("per", "pbr", "roe", "market_cap"):
        grid = provide(Panel(), name)[name]
        for j, c in enumerate(codes):
            rows = np.searchsorted(dates, np.array(frames[c].index.values, dtype="datetime64[D]"))
            np.testing.assert_array_equal(grid[rows, j], columns[c][name].to_numpy())
        assert np.isnan(grid[np.isnan(close)]).all()

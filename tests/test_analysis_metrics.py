"""Metrics against hand-computed numbers on tiny equity curves and fill lists."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis import metrics as M
from analysis.record import EVENT_COLUMNS, ORDER_COLUMNS, PROGRESS_COLUMNS, TRADE_COLUMNS, RunRecord

KST = "Asia/Seoul"


def series(values, start="2024-01-02", freq="B"):
    idx = pd.date_range(start, periods=len(values), freq=freq, tz=KST)
    return pd.Series([float(v) for v in values], index=idx)


def fills(rows):
    """rows: (date, code, side, qty, price, commission, tax)."""
    df = pd.DataFrame(rows, columns=["datetime", "code", "side", "qty", "price", "commission", "tax"])
    df["datetime"] = pd.to_datetime(df["datetime"]).dt.tz_localize(KST)
    df["value"] = df["qty"] * df["price"]
    df["order_ref"] = range(1, len(df) + 1)
    return df[TRADE_COLUMNS]


def record(values, cash=None, trades=None, initial=None, benchmark=None, rf=0.0):
    eq_values = series(values)
    equity = pd.DataFrame({"value": eq_values, "cash": cash if cash is not None else eq_values})
    return RunRecord(
        name="t", mode="backtest", strategy="s", data_label="hand-made", synthetic=False,
        initial_cash=int(initial if initial is not None else values[0]), equity=equity,
        trades=trades if trades is not None else pd.DataFrame(columns=TRADE_COLUMNS),
        orders=pd.DataFrame(columns=ORDER_COLUMNS), prices={},
        progress=pd.DataFrame(columns=PROGRESS_COLUMNS), events=pd.DataFrame(columns=EVENT_COLUMNS),
        benchmark=None if benchmark is None else pd.Series(benchmark, index=eq_values.index, dtype=float),
        benchmark_label="bench" if benchmark is not None else "", risk_free_pct=rf,
    )


TWO_TRIPS = [
    # A: buy 10 @ 100 (commission 1), sell 10 @ 120 (commission 1, tax 3) -> pnl 1200-1000-5 = +195
    ("2024-01-02", "000001", "BUY", 10, 100, 1, 0),
    ("2024-01-05", "000001", "SELL", 10, 120, 1, 3),
    # B: buy 5 @ 200 (commission 1), sell 5 @ 180 (commission 1, tax 2) -> pnl 900-1000-4 = -104
    ("2024-01-03", "000002", "BUY", 5, 200, 1, 0),
    ("2024-01-04", "000002", "SELL", 5, 180, 1, 2),
]


# --------------------------------------------------------------------------- drawdown

def test_max_drawdown_recovered_with_bar_and_calendar_durations():
    # Tue 01-02 .. Mon 01-08: peak 110 on Wed 01-03, trough 99 on Thu 01-04, back to >= 110 on Mon 01-08
    v = series([100, 110, 99, 104.5, 115])
    dd = M.max_drawdown(v)
    assert dd["max_drawdown"] == pytest.approx(-0.10)
    assert dd["peak"] == v.index[1] and dd["trough"] == v.index[2] and dd["recovery"] == v.index[4]
    assert dd["recovered"] is True
    assert dd["duration_bars"] == 3
    assert dd["duration_trading_days"] == 3
    assert dd["duration_calendar_days"] == 5          # the weekend counts in calendar days
    assert dd["longest_underwater_bars"] == 2


def test_max_drawdown_not_recovered_runs_to_the_last_bar():
    v = series([100, 120, 90, 100])
    dd = M.max_drawdown(v)
    assert dd["max_drawdown"] == pytest.approx(-0.25)
    assert dd["recovered"] is False and dd["recovery"] is None
    assert dd["duration_bars"] == 2


def test_max_drawdown_uses_the_last_peak_before_the_trough():
    # equal highs at bars 0 and 2; the drawdown to 80 starts at the later one
    v = series([100, 95, 100, 80, 101])
    dd = M.max_drawdown(v)
    assert dd["peak"] == v.index[2]
    assert dd["duration_bars"] == 2


def test_monotonic_curve_has_no_drawdown():
    dd = M.max_drawdown(series([100, 101, 102]))
    assert dd["max_drawdown"] == 0.0 and dd["duration_bars"] == 0 and dd["peak"] is None


def test_drawdown_duration_in_trading_days_for_intraday_bars():
    idx = pd.DatetimeIndex(["2024-01-02 09:00", "2024-01-02 12:00", "2024-01-03 09:00",
                            "2024-01-03 12:00", "2024-01-04 09:00"]).tz_localize(KST)
    v = pd.Series([100.0, 110.0, 100.0, 105.0, 111.0], index=idx)
    dd = M.max_drawdown(v)
    assert dd["duration_bars"] == 3
    assert dd["duration_trading_days"] == 2       # 01-02 -> 01-04
    assert dd["duration_calendar_days"] == 2


# --------------------------------------------------------------------------- returns

def test_total_return_and_cagr_over_exactly_two_years():
    idx = pd.DatetimeIndex(["2020-01-01 00:00", "2021-12-31 12:00"]).tz_localize(KST)  # 730.5 days
    v = pd.Series([100.0, 121.0], index=idx)
    assert M.total_return(v) == pytest.approx(0.21)
    assert M.cagr(v) == pytest.approx(0.10)
    # measured from an initial cash of 110 instead of the first value
    assert M.total_return(v, initial=110) == pytest.approx(0.10)


def test_cagr_of_a_wiped_out_account_is_minus_one():
    assert M.cagr(series([100, 50, 0])) == -1.0


def test_volatility_sharpe_sortino_by_hand():
    # returns +1 %, -2 %, +3 %
    v = series([100, 101, 98.98, 101.9494])
    r = M.bar_returns(v)
    assert list(r.round(10)) == [0.01, -0.02, 0.03]
    mean = 0.02 / 3
    sd = math.sqrt(((0.01 - mean) ** 2 + (-0.02 - mean) ** 2 + (0.03 - mean) ** 2) / 2)
    assert M.annual_volatility(r, 252) == pytest.approx(sd * math.sqrt(252))
    assert M.sharpe_ratio(r, 252) == pytest.approx(mean / sd * math.sqrt(252))
    downside = math.sqrt((0.02 ** 2) / 3)                     # only the -2 % bar is below 0
    assert M.sortino_ratio(r, 252) == pytest.approx(mean / downside * math.sqrt(252))
    # 3 % a year risk-free: per bar (1.03)^(1/252) - 1 comes off every return
    rf = 1.03 ** (1 / 252) - 1
    assert M.sharpe_ratio(r, 252, 3.0) == pytest.approx((mean - rf) / sd * math.sqrt(252))


def test_flat_curve_has_no_sharpe_or_sortino():
    r = M.bar_returns(series([100, 100, 100]))
    assert math.isnan(M.sharpe_ratio(r, 252)) and math.isnan(M.sortino_ratio(r, 252))


def test_calmar():
    assert M.calmar_ratio(0.10, -0.25) == pytest.approx(0.4)
    assert math.isnan(M.calmar_ratio(0.10, 0.0))


@pytest.mark.parametrize("index,expected", [
    (pd.date_range("2024-01-02", periods=30, freq="B", tz=KST), 252),
    (pd.date_range("2024-01-05", periods=30, freq="W-FRI", tz=KST), 52),
    (pd.date_range("2024-01-31", periods=12, freq="ME", tz=KST), 12),
])
def test_periods_per_year_from_bar_spacing(index, expected):
    assert M.infer_periods_per_year(index) == expected


def test_periods_per_year_for_five_minute_bars_is_sessions_times_bars():
    days = pd.bdate_range("2024-01-02", periods=5)
    idx = pd.DatetimeIndex([d + pd.Timedelta(hours=9, minutes=5 * k) for d in days for k in range(78)])
    assert M.infer_periods_per_year(idx.tz_localize(KST)) == 252 * 78


def test_monthly_returns_compound_from_the_initial_cash():
    idx = pd.DatetimeIndex(["2024-01-15", "2024-01-31", "2024-02-15", "2024-02-29", "2024-04-30"]
                           ).tz_localize(KST)
    v = pd.Series([100.0, 110.0, 100.0, 99.0, 108.9], index=idx)
    t = M.monthly_returns(v, initial=100.0)
    assert t.loc[2024, 1] == pytest.approx(0.10)
    assert t.loc[2024, 2] == pytest.approx(-0.10)
    assert math.isnan(t.loc[2024, 3])
    assert t.loc[2024, 4] == pytest.approx(0.10)
    assert t.loc[2024, "Year"] == pytest.approx(108.9 / 100 - 1)


# --------------------------------------------------------------------------- trades

def test_two_round_trips_win_rate_profit_factor_and_costs():
    t = fills(TWO_TRIPS)
    trips = M.round_trips(t)
    assert len(trips) == 2 and trips["is_closed"].all()
    by_code = trips.set_index("code")
    assert by_code.loc["000001", "pnl"] == pytest.approx(195)
    assert by_code.loc["000002", "pnl"] == pytest.approx(-104)
    assert by_code.loc["000001", "return"] == pytest.approx(195 / 1000)
    assert by_code.loc["000001", "holding_days"] == pytest.approx(3)
    s = M.trade_stats(trips)
    assert s["round_trips"] == 2 and s["open_round_trips"] == 0
    assert s["win_rate"] == pytest.approx(0.5)
    assert s["profit_factor"] == pytest.approx(195 / 104)
    assert s["avg_holding_days"] == pytest.approx((3 + 1) / 2)
    assert s["net_trade_pnl"] == pytest.approx(91)
    costs = M.cost_totals(t)
    assert costs["commission"] == 4 and costs["tax"] == 5
    assert costs["traded_value"] == 1000 + 1200 + 1000 + 900
    assert M.fill_counts(t) == {"fills": 4, "buy_fills": 2, "sell_fills": 2}


def test_scale_in_is_one_round_trip_and_open_positions_are_not_scored():
    t = fills([
        ("2024-01-02", "000001", "BUY", 10, 100, 0, 0),
        ("2024-01-03", "000001", "BUY", 10, 110, 0, 0),
        ("2024-01-04", "000001", "SELL", 5, 120, 0, 0),
        ("2024-01-05", "000001", "SELL", 15, 90, 0, 0),     # flat again: one trip of 4 fills
        ("2024-01-08", "000001", "BUY", 3, 100, 0, 0),      # still open at the end
    ])
    trips = M.round_trips(t)
    closed = trips[trips["is_closed"]]
    assert len(closed) == 1 and int(closed["fills"].iloc[0]) == 4
    assert closed["pnl"].iloc[0] == pytest.approx(600 + 1350 - 1000 - 1100)
    s = M.trade_stats(trips)
    assert s["round_trips"] == 1 and s["open_round_trips"] == 1
    assert s["win_rate"] == 0.0 and s["profit_factor"] == 0.0


def test_fill_through_zero_is_split_into_two_trips():
    t = fills([
        ("2024-01-02", "000001", "BUY", 10, 100, 10, 0),
        ("2024-01-03", "000001", "SELL", 15, 110, 15, 3),   # 10 close the long, 5 open a short
        ("2024-01-04", "000001", "BUY", 5, 100, 5, 0),
    ])
    trips = M.round_trips(t)
    assert list(trips["direction"]) == ["long", "short"]
    long_trip, short_trip = trips.iloc[0], trips.iloc[1]
    assert long_trip["pnl"] == pytest.approx(1100 - 1000 - 10 - 10 - 2)   # 2/3 of the sell's costs
    assert short_trip["pnl"] == pytest.approx(550 - 500 - 5 - 5 - 1)


def test_profit_factor_without_losses_is_infinite_and_null_in_json():
    t = fills(TWO_TRIPS[:2])
    s = M.trade_stats(M.round_trips(t))
    assert s["profit_factor"] == math.inf
    rec = record([1000, 1000, 1000, 1195], trades=t)
    m = M.compute_metrics(rec)
    assert m["profit_factor"] is None
    json.dumps(m, allow_nan=False)


# --------------------------------------------------------------------------- exposure, turnover

def test_exposure_and_average_invested_fraction():
    eq = pd.DataFrame({"value": [100, 100, 100, 100], "cash": [100, 40, 0, 100]},
                      index=series([0, 0, 0, 0]).index)
    e = M.exposure(eq)
    assert e["exposure"] == pytest.approx(0.5)
    assert e["avg_invested"] == pytest.approx((0 + 0.6 + 1 + 0) / 4)


def test_turnover_is_traded_value_over_average_equity():
    v = series([100, 200, 300])
    t = M.turnover(800.0, v, years=2.0)
    assert t["turnover"] == pytest.approx(4.0)
    assert t["turnover_annual"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- assembly

def test_compute_metrics_on_a_small_record():
    t = fills(TWO_TRIPS)
    values = [10_000, 10_100, 9_595, 9_800, 10_091]
    cash = [10_000, 9_000, 8_000, 8_900, 10_091]
    bench = [10_000, 10_050, 10_100, 10_150, 10_200]
    rec = record(values, cash=cash, trades=t, initial=10_000, benchmark=bench)
    m = M.compute_metrics(rec)
    json.dumps(m, allow_nan=False)                       # JSON-safe, no NaN
    assert m["initial_equity"] == 10_000 and isinstance(m["initial_equity"], int)
    assert m["final_equity"] == 10_091 and isinstance(m["final_equity"], int)
    assert m["total_return"] == pytest.approx(0.0091)
    assert m["max_drawdown"] == pytest.approx(9_595 / 10_100 - 1)
    assert m["round_trips"] == 2 and m["fills"] == 4
    assert m["win_rate"] == pytest.approx(0.5)
    assert m["commission"] == 4 and m["tax"] == 5
    assert m["exposure"] == pytest.approx(3 / 5)
    assert m["start"] == "2024-01-02T00:00:00+09:00"
    assert m["benchmark"]["total_return"] == pytest.approx(0.02)
    assert m["excess_return"] == pytest.approx(0.0091 - 0.02)
    assert m["periods_per_year"] == 252


def test_compute_metrics_without_benchmark_trades_or_bars():
    rec = record([100], initial=100)
    m = M.compute_metrics(rec)
    assert m["benchmark"] is None and m["excess_return"] is None
    assert m["round_trips"] == 0 and m["win_rate"] is None and m["sharpe"] is None
    json.dumps(m, allow_nan=False)
    empty = record([100], initial=100)
    empty.equity = empty.equity.iloc[:0]
    m2 = M.compute_metrics(empty)
    assert m2["bars"] == 0 and m2["final_equity"] is None and m2["total_return"] is None

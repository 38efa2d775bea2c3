"""Performance metrics of a run, as pure functions over pandas objects.

Every figure has its own small function so a unit test can feed it hand-computed numbers;
:func:`compute_metrics` assembles them into one JSON-safe ``dict`` (plain ``int``/``float``/``str``/
``bool``; NaN and infinities become ``None``, which ``json.dumps`` writes as ``null``).

Conventions (why they were chosen):

* **Fractions, not percent.** ``total_return = 0.1234`` means +12.34 %. The report formats them.
* **Total return and CAGR start from ``record.initial_cash``**, not from the first equity row, so
  costs paid on the first bar count against the strategy. The benchmark's base is its own first
  value (it is scaled to the initial cash anyway).
* **CAGR** uses calendar time between the first and last bar (days / 365.25): a run over a holiday
  heavy period is not flattered by counting bars.
* **Volatility, Sharpe, Sortino** use bar-to-bar simple returns of the equity curve, annualised
  with the number of bars per year inferred from the index (:func:`infer_periods_per_year`: 252 for
  daily bars, 252 × bars per session for intraday). The risk-free rate (annual percent) is turned
  into a per-bar rate geometrically. Sharpe = mean(excess) / std(excess, ddof=1) × √N; Sortino =
  mean(excess) / downside deviation × √N, the downside deviation being √(mean(min(excess, 0)²)) over
  *all* bars (the usual target-downside definition).
* **Max drawdown** is measured on the equity curve as recorded (value at each bar close). Its
  duration runs from the peak to the recovery (the first bar back at or above the peak), or to the
  last bar when it never recovered (``max_drawdown_recovered = false``); it is given in bars,
  trading days (distinct session dates after the peak date) and calendar days.
* **Round trip** (= a "trade" in the counts): per code, a position that is opened from flat and
  later returns to flat, however many fills it took. A fill that flips a position through zero is
  split proportionally. Round trips still open at the end are counted separately and excluded from
  win rate and profit factor. P&L includes commission and tax of every fill in the trip.
* **Turnover** = traded value of both sides (buys + sells) / average equity; annualised by
  dividing by the run's length in years.
* **Exposure** = share of bars where positions are worth anything (value − cash ≥ 1 KRW); the
  average invested fraction is the mean of 1 − cash / value.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analysis.record import TRADE_COLUMNS, RunRecord

KST = ZoneInfo("Asia/Seoul")
TRADING_DAYS_PER_YEAR = 252
DAYS_PER_YEAR = 365.25

ROUND_TRIP_COLUMNS = ["code", "direction", "opened", "closed", "qty", "buy_value", "sell_value",
                      "commission", "tax", "pnl", "return", "holding_days", "is_closed", "fills"]


# --------------------------------------------------------------------------- normalisation

def to_kst_index(index: pd.Index) -> pd.DatetimeIndex:
    """A DatetimeIndex in Asia/Seoul; naive timestamps are taken to be KST already (the contract)."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        return idx.tz_localize(KST)
    return idx.tz_convert(KST)


def equity_values(equity: pd.DataFrame) -> pd.Series:
    """The ``value`` column as float, on a sorted KST index, without missing rows."""
    if equity is None or len(equity) == 0 or "value" not in equity:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz=KST))
    s = pd.Series(pd.to_numeric(equity["value"], errors="coerce").to_numpy(dtype=float),
                  index=to_kst_index(equity.index))
    return s.sort_index().dropna()


def normalise_trades(trades: pd.DataFrame | None) -> pd.DataFrame:
    """Trades with the contract's columns, numeric money, upper-case side, sorted by time (stable).

    ``value`` is recomputed as ``qty × price`` where it is missing; quantities are taken as absolute
    numbers (the side carries the direction).
    """
    if trades is None or len(trades) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
    t = trades.copy()
    if "datetime" not in t.columns:
        t = t.reset_index().rename(columns={t.index.name or "index": "datetime"})
    for col in TRADE_COLUMNS:
        if col not in t.columns:
            t[col] = np.nan
    t["datetime"] = pd.to_datetime(t["datetime"])
    t["datetime"] = to_kst_index(pd.DatetimeIndex(t["datetime"]))
    t["code"] = t["code"].astype(str)
    t["side"] = t["side"].astype(str).str.upper()
    for col in ("qty", "price", "value", "commission", "tax"):
        t[col] = pd.to_numeric(t[col], errors="coerce")
    t["qty"] = t["qty"].abs()
    t["value"] = t["value"].abs().fillna(t["qty"] * t["price"])
    t["commission"] = t["commission"].fillna(0.0)
    t["tax"] = t["tax"].fillna(0.0)
    return t.sort_values("datetime", kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------- time and returns

def infer_periods_per_year(index: pd.Index) -> float:
    """Bars per year implied by the spacing of ``index``.

    Several bars on one date mean intraday bars: 252 sessions × the median number of bars per
    session date. One bar per date: 252 for daily spacing, 52 for weekly, 12 for monthly. Fewer than
    two bars cannot show a spacing; daily (252) is assumed.
    """
    idx = to_kst_index(index)
    if len(idx) < 2:
        return float(TRADING_DAYS_PER_YEAR)
    dates = idx.normalize()
    per_date = pd.Series(1, index=dates).groupby(level=0).size()
    bars_per_session = float(per_date.median())
    if bars_per_session > 1:
        return TRADING_DAYS_PER_YEAR * bars_per_session
    gaps = pd.Series(dates.unique()).diff().dt.total_seconds().dropna() / 86_400
    gap = float(gaps.median()) if len(gaps) else 1.0
    if gap <= 4:
        return float(TRADING_DAYS_PER_YEAR)
    if gap <= 10:
        return 52.0
    if gap <= 45:
        return 12.0
    return 1.0


def years_between(start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Calendar years between two timestamps (days / 365.25)."""
    return (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds() / 86_400 / DAYS_PER_YEAR


def bar_returns(values: pd.Series) -> pd.Series:
    """Simple bar-to-bar returns of a value series (first bar dropped)."""
    return values.astype(float).pct_change().iloc[1:]


def total_return(values: pd.Series, initial: float | None = None) -> float:
    """last / initial − 1; ``initial`` defaults to the first value."""
    if len(values) == 0:
        return math.nan
    base = float(values.iloc[0]) if initial is None else float(initial)
    if base <= 0:
        return math.nan
    return float(values.iloc[-1]) / base - 1.0


MIN_CAGR_YEARS = 7 / 365.25
"""Below a week, CAGR is reported as n/a: +1 % in ten minutes is not a +10^200 % year."""


def cagr(values: pd.Series, initial: float | None = None) -> float:
    """Compound annual growth over the calendar time from the first to the last bar."""
    if len(values) < 2:
        return math.nan
    years = years_between(values.index[0], values.index[-1])
    growth = 1.0 + total_return(values, initial)
    if years <= 0 or math.isnan(growth):
        return math.nan
    if growth <= 0:
        return -1.0   # everything lost: the annual rate is −100 %, not a complex number
    if years < MIN_CAGR_YEARS:
        return math.nan   # a session of minutes compounded to a year is noise (and overflows a float)
    try:
        return growth ** (1.0 / years) - 1.0
    except OverflowError:
        return math.nan


def per_bar_rate(annual_pct: float, periods_per_year: float) -> float:
    """An annual percentage rate as the equivalent compound rate per bar."""
    return (1.0 + annual_pct / 100.0) ** (1.0 / periods_per_year) - 1.0


def annual_volatility(returns: pd.Series, periods_per_year: float) -> float:
    """Sample standard deviation of bar returns × √(bars per year)."""
    if len(returns) < 2:
        return math.nan
    return float(returns.std(ddof=1)) * math.sqrt(periods_per_year)


def sharpe_ratio(returns: pd.Series, periods_per_year: float, risk_free_pct: float = 0.0) -> float:
    """Annualised Sharpe ratio of bar returns over the per-bar risk-free rate (NaN if flat)."""
    if len(returns) < 2:
        return math.nan
    excess = returns - per_bar_rate(risk_free_pct, periods_per_year)
    sd = float(excess.std(ddof=1))
    if not sd > 1e-15:
        return math.nan
    return float(excess.mean()) / sd * math.sqrt(periods_per_year)


def sortino_ratio(returns: pd.Series, periods_per_year: float, risk_free_pct: float = 0.0) -> float:
    """Annualised Sortino ratio: mean excess return over the downside deviation (NaN if no downside)."""
    if len(returns) < 2:
        return math.nan
    excess = returns - per_bar_rate(risk_free_pct, periods_per_year)
    downside = math.sqrt(float((np.minimum(excess.to_numpy(), 0.0) ** 2).mean()))
    if not downside > 1e-15:
        return math.nan
    return float(excess.mean()) / downside * math.sqrt(periods_per_year)


# --------------------------------------------------------------------------- drawdown

def drawdown_series(values: pd.Series) -> pd.Series:
    """value / running peak − 1 at every bar (0 at new highs, negative under water)."""
    v = values.astype(float)
    return v / v.cummax() - 1.0


def max_drawdown(values: pd.Series) -> dict[str, Any]:
    """The deepest peak-to-trough fall and how long it lasted.

    Returns ``max_drawdown`` (≤ 0, fraction), ``peak``/``trough``/``recovery`` timestamps
    (``recovery`` None when the curve never regained the peak), ``recovered``, and the duration from
    peak to recovery (or to the last bar): ``duration_bars``, ``duration_trading_days`` (distinct bar
    dates after the peak date up to the end date) and ``duration_calendar_days``. Also
    ``longest_underwater_bars``: the longest stretch of bars below a previous peak.
    """
    out: dict[str, Any] = {"max_drawdown": math.nan, "peak": None, "trough": None, "recovery": None,
                           "recovered": None, "duration_bars": None, "duration_trading_days": None,
                           "duration_calendar_days": None, "longest_underwater_bars": None}
    if len(values) == 0:
        return out
    v = values.astype(float).to_numpy()
    idx = values.index
    running_peak = np.maximum.accumulate(v)
    dd = v / running_peak - 1.0
    trough_i = int(np.argmin(dd))
    mdd = float(dd[trough_i])
    underwater = dd < 0
    out["longest_underwater_bars"] = _longest_run(underwater)
    out["max_drawdown"] = mdd
    if mdd >= 0:
        out.update(recovered=True, duration_bars=0, duration_trading_days=0, duration_calendar_days=0)
        return out
    peak_value = running_peak[trough_i]
    peak_i = int(np.flatnonzero(v[: trough_i + 1] >= peak_value)[-1])
    later = np.flatnonzero(v[trough_i + 1:] >= peak_value)
    recovered = len(later) > 0
    end_i = trough_i + 1 + int(later[0]) if recovered else len(v) - 1
    peak_ts, end_ts = idx[peak_i], idx[end_i]
    dates = pd.DatetimeIndex(idx[peak_i: end_i + 1]).normalize().unique()
    out.update(
        peak=peak_ts, trough=idx[trough_i], recovery=end_ts if recovered else None, recovered=recovered,
        duration_bars=end_i - peak_i,
        duration_trading_days=int(len(dates) - 1),
        duration_calendar_days=int((end_ts.normalize() - peak_ts.normalize()).days),
    )
    return out


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True values."""
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def calmar_ratio(cagr_value: float, max_drawdown_value: float) -> float:
    """CAGR / |max drawdown| (NaN without a drawdown)."""
    if not (max_drawdown_value < 0) or math.isnan(cagr_value):
        return math.nan
    return cagr_value / abs(max_drawdown_value)


def monthly_returns(values: pd.Series, initial: float | None = None) -> pd.DataFrame:
    """Returns per calendar month (KST) as a year × month table (columns 1..12 and ``"Year"``).

    Each month's return is its last value over the previous month's last value; the first month is
    measured from ``initial`` (default: the first value), so the months compound to the total return.
    ``"Year"`` compounds the months of that year. Months without bars are NaN.
    """
    cols: list[Any] = [*range(1, 13), "Year"]
    if len(values) == 0:
        return pd.DataFrame(columns=cols, dtype=float)
    v = values.astype(float)
    idx = to_kst_index(v.index)
    month_end = pd.Series(v.to_numpy(), index=idx).groupby([idx.year, idx.month]).last()
    base = float(v.iloc[0]) if initial is None else float(initial)
    prev = np.concatenate([[base], month_end.to_numpy()[:-1]])
    rets = pd.Series(month_end.to_numpy() / prev - 1.0, index=month_end.index)
    table = rets.unstack(level=1).reindex(columns=range(1, 13))
    table.index.name = "year"
    table.columns.name = "month"
    table["Year"] = (1.0 + table[list(range(1, 13))]).prod(axis=1, min_count=1) - 1.0
    return table


# --------------------------------------------------------------------------- trades

def round_trips(trades: pd.DataFrame | None) -> pd.DataFrame:
    """Per-code round trips (flat → position → flat) built from fills, costs included.

    Columns: ``code, direction ('long'|'short'), opened, closed (NaT while open), qty (shares
    opened), buy_value, sell_value, commission, tax, pnl (sell − buy − commission − tax), return
    (pnl / entry value), holding_days (calendar, fractional), is_closed, fills``.
    """
    t = normalise_trades(trades)
    rows: list[dict[str, Any]] = []
    if len(t) == 0:
        return pd.DataFrame(columns=ROUND_TRIP_COLUMNS)
    for code, g in t.groupby("code", sort=True):
        pos = 0.0
        trip: dict[str, Any] | None = None
        for dt, side, qty, value, comm, tax in zip(g["datetime"], g["side"], g["qty"], g["value"],
                                                   g["commission"], g["tax"]):
            if not qty or qty != qty:
                continue
            sign = 1.0 if side == "BUY" else -1.0
            remaining = float(qty)
            while remaining > 1e-12:
                if trip is None:
                    trip = {"code": code, "direction": "long" if sign > 0 else "short", "opened": dt,
                            "closed": pd.NaT, "qty": 0.0, "buy_value": 0.0, "sell_value": 0.0,
                            "commission": 0.0, "tax": 0.0, "fills": 0}
                increasing = pos == 0 or (pos > 0) == (sign > 0)
                take = remaining if increasing else min(remaining, abs(pos))
                frac = take / float(qty)
                trip["buy_value" if sign > 0 else "sell_value"] += float(value) * frac
                trip["commission"] += float(comm) * frac
                trip["tax"] += float(tax) * frac
                trip["fills"] += 1
                if increasing:
                    trip["qty"] += take
                pos += sign * take
                remaining -= take
                if abs(pos) < 1e-9:
                    pos = 0.0
                    trip["closed"] = dt
                    rows.append(_finish_trip(trip))
                    trip = None
        if trip is not None:
            rows.append(_finish_trip(trip))
    return pd.DataFrame(rows, columns=ROUND_TRIP_COLUMNS)


def _finish_trip(trip: dict[str, Any]) -> dict[str, Any]:
    pnl = trip["sell_value"] - trip["buy_value"] - trip["commission"] - trip["tax"]
    is_closed = trip["closed"] is not pd.NaT and not pd.isna(trip["closed"])
    entry = trip["buy_value"] if trip["direction"] == "long" else trip["sell_value"]
    out = dict(trip)
    out["is_closed"] = is_closed
    out["pnl"] = pnl if is_closed else math.nan
    out["return"] = pnl / entry if is_closed and entry > 0 else math.nan
    out["holding_days"] = ((trip["closed"] - trip["opened"]).total_seconds() / 86_400
                           if is_closed else math.nan)
    return out


def trade_stats(trips: pd.DataFrame) -> dict[str, Any]:
    """Win rate, profit factor and averages over the *closed* round trips.

    ``profit_factor`` = gross profit / |gross loss|: infinite with profits and no loss, NaN when
    there is neither. A round trip with P&L exactly 0 is neither a win nor a loss (but counts in
    the win-rate denominator).
    """
    closed = trips[trips["is_closed"].astype(bool)] if len(trips) else trips
    n = int(len(closed))
    out: dict[str, Any] = {"round_trips": n, "open_round_trips": int(len(trips) - n),
                           "wins": 0, "losses": 0, "win_rate": math.nan, "profit_factor": math.nan,
                           "gross_profit": 0.0, "gross_loss": 0.0, "net_trade_pnl": 0.0,
                           "avg_trade_pnl": math.nan, "avg_trade_return": math.nan,
                           "best_trade_pnl": math.nan, "worst_trade_pnl": math.nan,
                           "avg_holding_days": math.nan}
    if n == 0:
        return out
    pnl = closed["pnl"].astype(float)
    gp = float(pnl[pnl > 0].sum())
    gl = float(pnl[pnl < 0].sum())
    out.update(
        wins=int((pnl > 0).sum()), losses=int((pnl < 0).sum()),
        win_rate=float((pnl > 0).sum()) / n,
        profit_factor=gp / abs(gl) if gl < 0 else (math.inf if gp > 0 else math.nan),
        gross_profit=gp, gross_loss=gl, net_trade_pnl=float(pnl.sum()),
        avg_trade_pnl=float(pnl.mean()), avg_trade_return=float(closed["return"].astype(float).mean()),
        best_trade_pnl=float(pnl.max()), worst_trade_pnl=float(pnl.min()),
        avg_holding_days=float(closed["holding_days"].astype(float).mean()),
    )
    return out


def fill_counts(trades: pd.DataFrame | None) -> dict[str, int]:
    """Number of fills, buys and sells."""
    t = normalise_trades(trades)
    return {"fills": int(len(t)), "buy_fills": int((t["side"] == "BUY").sum()),
            "sell_fills": int((t["side"] == "SELL").sum())}


def cost_totals(trades: pd.DataFrame | None) -> dict[str, float]:
    """Commission and tax paid over all fills, and the traded value of both sides (KRW)."""
    t = normalise_trades(trades)
    return {"commission": float(t["commission"].sum()), "tax": float(t["tax"].sum()),
            "traded_value": float(t["value"].sum()),
            "buy_value": float(t.loc[t["side"] == "BUY", "value"].sum()),
            "sell_value": float(t.loc[t["side"] == "SELL", "value"].sum())}


def turnover(traded_value: float, values: pd.Series, years: float) -> dict[str, float]:
    """Traded value (both sides) / average equity, and that per year of the run."""
    if len(values) == 0:
        return {"turnover": math.nan, "turnover_annual": math.nan}
    avg = float(values.mean())
    t = traded_value / avg if avg > 0 else math.nan
    return {"turnover": t, "turnover_annual": t / years if years > 0 else math.nan}


def exposure(equity: pd.DataFrame) -> dict[str, float]:
    """Share of bars holding any position, and the average invested fraction 1 − cash / value."""
    if equity is None or len(equity) == 0 or "cash" not in equity or "value" not in equity:
        return {"exposure": math.nan, "avg_invested": math.nan}
    value = pd.to_numeric(equity["value"], errors="coerce").astype(float)
    cash = pd.to_numeric(equity["cash"], errors="coerce").astype(float)
    ok = value.notna() & cash.notna() & (value > 0)
    if not ok.any():
        return {"exposure": math.nan, "avg_invested": math.nan}
    invested = (value - cash)[ok]
    return {"exposure": float((invested.abs() >= 1.0).mean()),
            "avg_invested": float((1.0 - cash[ok] / value[ok]).mean())}


def order_status_counts(orders: pd.DataFrame | None) -> dict[str, int]:
    """Orders per final status (including pre-trade ``Refused``), sorted by status name."""
    if orders is None or len(orders) == 0 or "status" not in orders:
        return {}
    counts = orders["status"].fillna("").astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


# --------------------------------------------------------------------------- assembly

def return_metrics(values: pd.Series, periods_per_year: float, risk_free_pct: float = 0.0,
                   initial: float | None = None) -> dict[str, Any]:
    """The return figures shared by strategy and benchmark: total return, CAGR, vol, Sharpe,
    Sortino, max drawdown (with dates and durations) and Calmar."""
    rets = bar_returns(values)
    dd = max_drawdown(values)
    c = cagr(values, initial)
    return {
        "total_return": total_return(values, initial),
        "cagr": c,
        "annual_volatility": annual_volatility(rets, periods_per_year),
        "sharpe": sharpe_ratio(rets, periods_per_year, risk_free_pct),
        "sortino": sortino_ratio(rets, periods_per_year, risk_free_pct),
        "max_drawdown": dd["max_drawdown"],
        "max_drawdown_peak": dd["peak"],
        "max_drawdown_trough": dd["trough"],
        "max_drawdown_recovery": dd["recovery"],
        "max_drawdown_recovered": dd["recovered"],
        "max_drawdown_duration_bars": dd["duration_bars"],
        "max_drawdown_duration_trading_days": dd["duration_trading_days"],
        "max_drawdown_duration_calendar_days": dd["duration_calendar_days"],
        "longest_underwater_bars": dd["longest_underwater_bars"],
        "calmar": calmar_ratio(c, dd["max_drawdown"]),
    }


def compute_metrics(record: RunRecord) -> dict[str, Any]:
    """All metrics of a run as a JSON-safe dict (see the module docstring for the definitions).

    Top-level keys are the strategy's figures; ``benchmark`` holds the same return figures for
    ``record.benchmark`` (``None`` without one) and ``excess_return`` / ``excess_cagr`` compare them.
    """
    values = equity_values(record.equity)
    ppy = infer_periods_per_year(values.index)
    n = len(values)
    start, end = (values.index[0], values.index[-1]) if n else (None, None)
    years = years_between(start, end) if n >= 2 else math.nan
    initial = float(record.initial_cash) if record.initial_cash else None

    out: dict[str, Any] = {
        "name": record.name, "strategy": record.strategy, "mode": record.mode,
        "data_label": record.data_label, "synthetic": bool(record.synthetic),
        "start": start, "end": end, "bars": n, "years": years, "periods_per_year": ppy,
        "risk_free_pct": float(record.risk_free_pct),
        "initial_equity": int(record.initial_cash),
        "final_equity": int(round(float(values.iloc[-1]))) if n else None,
        "net_profit": float(values.iloc[-1]) - float(record.initial_cash) if n else math.nan,
    }
    out.update(return_metrics(values, ppy, record.risk_free_pct, initial))

    trades = normalise_trades(record.trades)
    trips = round_trips(trades)
    out.update(fill_counts(trades))
    out.update(trade_stats(trips))
    costs = cost_totals(trades)
    out.update(costs)
    out.update(turnover(costs["traded_value"], values, years))
    out.update(exposure(record.equity))
    out["orders"] = order_status_counts(record.orders)
    out["events"] = int(len(record.events)) if record.events is not None else 0

    bench = benchmark_values(record)
    if bench is not None and len(bench) >= 1:
        b = return_metrics(bench, ppy, record.risk_free_pct, None)
        out["benchmark"] = {"label": record.benchmark_label, "start_value": float(bench.iloc[0]),
                            "final_value": float(bench.iloc[-1]), **b}
        out["excess_return"] = out["total_return"] - b["total_return"]
        out["excess_cagr"] = out["cagr"] - b["cagr"]
    else:
        out["benchmark"] = None
        out["excess_return"] = None
        out["excess_cagr"] = None
    return json_safe(out)


def benchmark_values(record: RunRecord) -> pd.Series | None:
    """``record.benchmark`` as a float series on a sorted KST index (None when absent or empty)."""
    b = record.benchmark
    if b is None or len(b) == 0:
        return None
    s = pd.Series(pd.to_numeric(b, errors="coerce").to_numpy(dtype=float), index=to_kst_index(b.index))
    s = s.sort_index().dropna()
    return s if len(s) else None


def json_safe(obj: Any) -> Any:
    """Plain Python types only: numpy scalars unwrapped, timestamps as ISO-8601 (KST), NaN/inf → None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if obj is None or obj is pd.NaT:
        return None
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, pd.Timestamp):
        ts = obj.tz_localize(KST) if obj.tzinfo is None else obj.tz_convert(KST)
        return ts.isoformat()
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, str):
        return obj
    try:
        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return str(obj)

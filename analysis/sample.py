"""A synthetic ``RunRecord`` of realistic size, for report tests, timing and monitor development.

Why it exists: the report must be exercised (and timed) without running a backtest, and the live
monitor can be styled against it. The record is always marked ``synthetic=True`` and its data label
says so, because these numbers are random and must never be mistaken for a real run.

The record is internally consistent where the report relies on it: fills sit on bars of the
code's price series, every position is opened and later closed (except possibly at the end), cash
and value follow the fills, commission is charged on both sides and tax on sells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metrics import KST
from analysis.record import EVENT_COLUMNS, ORDER_COLUMNS, PROGRESS_COLUMNS, TRADE_COLUMNS, RunRecord

COMMISSION = 0.000140527
SELL_TAX = 0.0018


def make_sample_record(n_codes: int = 30, n_bars: int = 1250, trips_per_code: int = 6,
                       initial_cash: int = 100_000_000, seed: int = 7,
                       start: str = "2021-01-04") -> RunRecord:
    """A daily-bar run over ``n_codes`` random-walk stocks with about ``2 × trips_per_code`` fills each."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range(start, periods=n_bars, tz=KST, name="datetime") + pd.Timedelta(hours=15, minutes=30)
    codes = [f"{100000 + 1111 * i:06d}" for i in range(n_codes)]
    prices: dict[str, pd.DataFrame] = {}
    for code in codes:
        p0 = float(rng.choice([3_000, 12_000, 55_000, 180_000]))
        close = np.round(p0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n_bars))))
        open_ = np.round(close * (1 + rng.normal(0, 0.005, n_bars)))
        prices[code] = pd.DataFrame({
            "open": open_, "high": np.maximum(open_, close) * 1.01, "low": np.minimum(open_, close) * 0.99,
            "close": close, "volume": rng.integers(10_000, 2_000_000, n_bars)}, index=index)

    slot = initial_cash / max(n_codes, 1) * 0.9
    fills = []
    for code in codes:
        k_fills = min(2 * trips_per_code, (n_bars - 1) // 2 * 2)
        bars = np.sort(rng.choice(np.arange(1, n_bars), size=k_fills, replace=False))
        close = prices[code]["close"].to_numpy()
        for k in range(k_fills // 2):
            b, s = bars[2 * k], bars[2 * k + 1]
            qty = int(slot // close[b])
            if qty <= 0:
                continue
            fills.append((index[b], code, "BUY", qty, close[b]))
            fills.append((index[s], code, "SELL", qty, close[s]))
    trades = pd.DataFrame(fills, columns=["datetime", "code", "side", "qty", "price"])
    trades = trades.sort_values(["datetime", "code"], kind="mergesort").reset_index(drop=True)
    trades["value"] = (trades["qty"] * trades["price"]).round().astype("int64")
    trades["commission"] = np.floor(trades["value"] * COMMISSION).astype("int64")
    trades["tax"] = np.where(trades["side"] == "SELL", np.floor(trades["value"] * SELL_TAX), 0).astype("int64")
    trades["order_ref"] = np.arange(1, len(trades) + 1)
    trades = trades[TRADE_COLUMNS]

    # equity: cash after the bar's fills, positions at the close
    cash_flow = np.where(trades["side"] == "BUY", -trades["value"], trades["value"]) \
        - trades["commission"] - trades["tax"]
    cash = initial_cash + pd.Series(cash_flow.to_numpy(), index=trades["datetime"]).groupby(level=0).sum() \
        .reindex(index, fill_value=0).cumsum()
    pos_value = np.zeros(n_bars)
    for code, g in trades.groupby("code"):
        signed = np.where(g["side"] == "BUY", g["qty"], -g["qty"])
        held = pd.Series(signed, index=g["datetime"]).groupby(level=0).sum()
        held = held.reindex(index, fill_value=0).cumsum()
        pos_value += held.to_numpy() * prices[code]["close"].to_numpy()
    equity = pd.DataFrame({"value": np.round(cash.to_numpy() + pos_value).astype("int64"),
                           "cash": cash.to_numpy().astype("int64")}, index=index)

    orders = pd.DataFrame({
        "ref": trades["order_ref"], "created": trades["datetime"] - pd.Timedelta(days=1),
        "code": trades["code"], "side": trades["side"], "type": "Market", "qty": trades["qty"],
        "price": np.nan, "status": "Completed", "filled_qty": trades["qty"], "avg_price": trades["price"],
        "reason": "", "updated": trades["datetime"]})
    extra = pd.DataFrame({
        "ref": [len(trades) + 1, len(trades) + 2, None],
        "created": [index[min(k, n_bars - 1)] for k in (10, 20, 30)],
        "code": [codes[k % n_codes] for k in range(3)], "side": ["BUY", "BUY", "BUY"],
        "type": ["Limit", "Limit", "Market"], "qty": [10, 10, 10], "price": [1000.0, 2000.0, np.nan],
        "status": ["Expired", "Rejected", "Refused"], "filled_qty": [0, 0, 0],
        "avg_price": [np.nan, np.nan, np.nan],
        "reason": ["DAY order expired at the close", "limit price outside the ±30% band",
                   "max_position_pct 25% would be exceeded"],
        "updated": [index[min(k, n_bars - 1)] for k in (10, 20, 30)]})
    orders = pd.concat([orders, extra], ignore_index=True)[ORDER_COLUMNS]

    at = [min(30, n_bars - 1), min(400, n_bars - 1)]
    events = pd.DataFrame({"datetime": [index[at[0]], index[at[1]]], "kind": ["risk_refusal", "checker_alert"],
                           "code": [codes[2 % n_codes], None],
                           "message": ["max_position_pct 25% would be exceeded",
                                       "cash mismatch: local 1,000 vs broker 990"]})[EVENT_COLUMNS]
    last = {c: float(prices[c]["close"].iloc[-1]) for c in codes}
    progress = pd.DataFrame({
        "target_buy_price": [round(last[c] * 0.95) for c in codes],
        "target_return_pct": rng.choice([5.0, 10.0, 15.0], n_codes),
        "max_capital": [int(slot) for _ in codes],
        "shares": [0] * n_codes, "capital_used": rng.integers(0, int(slot), n_codes),
        "avg_price": [round(last[c] * 0.97) for c in codes], "last_price": [last[c] for c in codes],
        "current_return_pct": rng.normal(2, 8, n_codes).round(2),
        "absolute_return": rng.normal(100_000, 500_000, n_codes).round(),
    }, index=pd.Index(codes, name="code"))[PROGRESS_COLUMNS]

    return RunRecord(
        name="sample", mode="backtest", strategy="sample_random_trips",
        data_label=f"SYNTHETIC sample record (analysis.sample, seed {seed})", synthetic=True,
        initial_cash=initial_cash, equity=equity, trades=trades, orders=orders, prices=prices,
        progress=progress, events=events,
        markets={c: ("KOSPI" if i % 3 else "KOSDAQ") for i, c in enumerate(codes)},
        config={"name": "sample", "broker": {"kis": {"rest_url": "http://127.0.0.1:8080"}}},
    )

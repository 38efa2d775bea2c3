"""The fast engine's ``RunRecord``: the kernel's arrays as the tables ``RunRecorder`` writes.

Same columns, same statuses, same reason texts as the event path (``brokers.sim`` and
``strategies.base`` word them; the tests compare them), built column-wise so a whole-market run
with a quarter of a million orders becomes a record in about a second. Two things differ by
design: orders placed on the very last bar are left out (backtrader never notifies them, so
``RunRecorder`` never sees them either), and a run over more than ``MAX_PRICE_CODES`` codes keeps
the prices of the codes its report draws (plus Trade Target codes) — the equal-weight benchmark is
computed from every code's closes first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.record import ORDER_COLUMNS, TRADE_COLUMNS, RunRecord
from configs.schema import AppConfig
from research import kernel as K
from research.panel import Panel
from strategies.targets import TargetBook, TargetProgress

if TYPE_CHECKING:
    from research.engine import FastRun

KST = "Asia/Seoul"
MAX_PRICE_CODES = 100
"""Above this many codes the record keeps the prices of the codes the report draws."""

STATUS_NAMES = np.array(["Accepted", "Completed", "Expired", "Rejected", "Margin"], dtype=object)
assert [K.ST_ACCEPTED, K.ST_COMPLETED, K.ST_EXPIRED, K.ST_REJECTED, K.ST_MARGIN] == list(range(5))


def stamps(dates: np.ndarray) -> pd.DatetimeIndex:
    """Session dates as the record's timestamps: 00:00 KST, microsecond unit as ``RunRecorder`` makes them
    (it builds its index from Python datetimes)."""
    return pd.DatetimeIndex(dates.astype("datetime64[us]"), name="datetime").tz_localize(KST)


def equity_frame(panel: Panel, values: np.ndarray, cash: np.ndarray) -> pd.DataFrame:
    """As ``RunRecorder.equity_frame``: value and cash per session, rounded to the won."""
    frame = pd.DataFrame({"value": values, "cash": cash}, index=stamps(panel.dates))
    return frame.round().astype("int64")


def trades_frame(panel: Panel, fi: np.ndarray, ff: np.ndarray) -> pd.DataFrame:
    if not len(fi):
        return pd.DataFrame(columns=TRADE_COLUMNS)
    codes = np.array(panel.codes, dtype=object)
    qty, price = fi[:, 3], ff[:, 0]
    return pd.DataFrame({
        "datetime": stamps(panel.dates)[fi[:, 0]], "code": codes[fi[:, 1]],
        "side": np.where(fi[:, 2] > 0, "BUY", "SELL"), "qty": qty.astype(int), "price": price,
        "value": np.rint(qty * price).astype(np.int64), "commission": fi[:, 4].astype(int),
        "tax": fi[:, 5].astype(int), "order_ref": fi[:, 6].astype(int)}, columns=TRADE_COLUMNS)


# ------------------------------------------------------------------------------------ reasons

def _broker_reason(run: "FastRun", o: np.ndarray, f: np.ndarray) -> str:
    """``KRXBroker``'s reason text of a rejected order (rare: built one by one)."""
    panel = run.panel
    c, row, reason = int(o[K.OI_CODE]), int(o[K.OI_ROW]), int(o[K.OI_REASON])
    session = run.inputs.rules.sessions[row]
    market = panel.markets[c]
    if reason == K.RJ_MARGIN:
        return "not enough cash at execution"
    if reason == K.RJ_OFF_GRID:
        return f"price {f[K.OF_A]:,.2f} is not on the tick grid ({market.value}, {session})"
    if reason == K.RJ_BAND:
        limit, lower, upper = f[K.OF_A], int(f[K.OF_B]), int(f[K.OF_C])
        base = max(1, int(round(panel.close[row, c])))
        where = "above the upper" if limit > upper else "below the lower"
        return f"limit price {limit:,.0f} is {where} limit of {session} (band {lower:,}–{upper:,}, base {base:,})"
    if reason == K.RJ_BUYING_POWER:
        return (f"insufficient buying power: {f[K.OF_A]:,.0f} sh x {f[K.OF_B]:,.0f} "
                f"+ commission = {f[K.OF_C]:,.0f} KRW, available {f[K.OF_D]:,.0f} KRW")
    return ""


def _refusal_reason(reason: int, f: np.ndarray, code: str, cfg: AppConfig, stop_reason: str) -> str:
    """``TargetStrategy``'s and ``RiskLimits``' refusal texts."""
    lim = cfg.risk.limits
    qty, a, b, c = f[0], f[2], f[3], f[4]
    if reason == K.RF_STOPPED:
        return f"trading stopped: {stop_reason}"
    if reason == K.RF_NO_ROOM:
        return "no room: sizer, cash, allocation or risk limits allow 0 shares"
    if reason == K.RF_ALLOCATION:
        return f"{qty:g} sh x {a:,.0f} = {b:,.0f} KRW exceeds the target's remaining allocation {c:,.0f} KRW"
    if reason == K.RF_EQUITY:
        return f"equity is {a:,.0f} KRW; no new entries"
    if reason == K.RF_POSITION:
        return (f"{code}: position would be {a:,.0f} KRW = {a / b * 100:.1f}% of equity, "
                f"above max_position_pct {lim.max_position_pct:g}% ({c:,.0f} KRW)")
    if reason == K.RF_EXPOSURE:
        return (f"{code}: exposure would be {a:,.0f} KRW = {a / b * 100:.1f}% of equity, "
                f"above max_exposure_pct {lim.max_exposure_pct:g}%")
    if reason == K.RF_NOTHING_TO_SELL:
        return f"nothing to sell (sellable {int(a)} sh)"
    return ""


def _stop_reason(cfg: AppConfig, f: np.ndarray) -> str:
    start, value = f
    loss = (start - value) / start * 100
    return (f"daily loss {loss:.2f}% (from {start:,.0f} to {value:,.0f} KRW) "
            f"reached daily_loss_limit_pct {cfg.risk.limits.daily_loss_limit_pct:g}%")


# ------------------------------------------------------------------------------------ tables

def _strategy_events(run: "FastRun", ei: np.ndarray, ef: np.ndarray, when: list) -> tuple[list, str]:
    events, stop_reason = [], ""
    codes = run.panel.codes
    rule = run.spec.exits[0] if run.spec.exits else None
    label = f"{rule.label}: {rule.screen.name}" if rule else "exit"
    for (row, c, kind), f in zip(ei.tolist(), ef.tolist()):
        if kind == K.EV_KILL_SWITCH:
            stop_reason = _stop_reason(run.cfg, np.asarray(f))
            events.append({"datetime": when[row], "kind": "kill_switch", "code": "",
                           "message": f"trading stopped: {stop_reason}"})
        elif kind == K.EV_STOP_LOSS:
            events.append({"datetime": when[row], "kind": "stop_loss", "code": codes[c],
                           "message": f"close {f[0]:,.0f} <= stop {f[1]:,.0f}; selling at market"})
        elif kind == K.EV_EXIT:
            events.append({"datetime": when[row], "kind": "exit", "code": codes[c],
                           "message": f"{label} (close {f[0]:,.0f})"})
    return events, stop_reason


def orders_frame(run: "FastRun", oi: np.ndarray, of: np.ndarray, when: pd.DatetimeIndex
                 ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``when`` is the session index; events use its boxed timestamps (``list(when)``) one by one."""
    """Orders (as ``RunRecorder.orders_frame`` without refusals) and their rejection/expiry events."""
    panel = run.panel
    last = len(panel.dates) - 1
    keep = ~((oi[:, K.OI_STATUS] == K.ST_ACCEPTED) & (oi[:, K.OI_ROW] == last))
    oi, of = oi[keep], of[keep]
    if not len(oi):
        return pd.DataFrame(columns=ORDER_COLUMNS), []
    codes = np.array(panel.codes, dtype=object)
    market = oi[:, K.OI_TYPE] == 0
    filled = oi[:, K.OI_FILLED]
    reasons = np.full(len(oi), "", dtype=object)
    expired = oi[:, K.OI_REASON] == K.RJ_EXPIRED
    if expired.any():
        texts = np.array([f"DAY order unfilled at the close of {s}" for s in run.inputs.rules.sessions], dtype=object)
        reasons[expired] = texts[oi[expired, K.OI_ROW]]
    for i in np.flatnonzero((oi[:, K.OI_REASON] != K.RJ_NONE) & ~expired):
        reasons[i] = _broker_reason(run, oi[i], of[i])
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = of[:, K.OF_EXEC_VALUE] / filled
    frame = pd.DataFrame({
        "ref": oi[:, K.OI_REF], "created": when[oi[:, K.OI_ROW]], "code": codes[oi[:, K.OI_CODE]],
        "side": np.where(oi[:, K.OI_SIDE] > 0, "BUY", "SELL"), "type": np.where(market, "Market", "Limit"),
        "qty": oi[:, K.OI_QTY], "price": np.where(market, None, of[:, K.OF_LIMIT].astype(object)),
        "status": STATUS_NAMES[oi[:, K.OI_STATUS]], "filled_qty": filled,
        "avg_price": np.where(filled > 0, avg.astype(object), None), "reason": reasons,
        "updated": when[oi[:, K.OI_UPDATED]]}, columns=ORDER_COLUMNS)
    events = []
    boxed = list(when)
    for i in np.flatnonzero(oi[:, K.OI_STATUS] >= K.ST_EXPIRED):
        status = STATUS_NAMES[oi[i, K.OI_STATUS]]
        ref, code, at = int(oi[i, K.OI_REF]), codes[oi[i, K.OI_CODE]], boxed[oi[i, K.OI_UPDATED]]
        if status == "Expired":
            events.append({"datetime": at, "kind": "order_expired", "code": code, "message": f"ref {ref}: {reasons[i]}"})
        else:
            side = "Buy" if oi[i, K.OI_SIDE] > 0 else "Sell"
            events.append({"datetime": at, "kind": "order_rejected", "code": code,
                           "message": f"ref {ref} {side} {int(oi[i, K.OI_QTY])} sh {status}: {reasons[i] or status}"})
    return frame, events


def refusals(run: "FastRun", ri: np.ndarray, rf: np.ndarray, when: list, stop_reason: str
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``Refused`` order rows and the ``risk_refused`` events (logged once per change of reason and code)."""
    rows, events = [], []
    last: dict[str, str] = {}
    codes = run.panel.codes
    for r, f in zip(ri.tolist(), rf):
        code = codes[r[1]]
        reason = _refusal_reason(int(r[3]), f, code, run.cfg, stop_reason)
        side = "buy" if r[2] > 0 else "sell"
        qty = int(f[0]) if float(f[0]).is_integer() else float(f[0])
        rows.append({"ref": None, "created": when[r[0]], "code": code, "side": side.upper(), "type": "",
                     "qty": qty, "price": None if f[1] != f[1] else float(f[1]), "status": "Refused",
                     "filled_qty": 0, "avg_price": None, "reason": reason, "updated": when[r[0]]})
        if last.get(code) != reason:
            last[code] = reason
            events.append({"datetime": when[r[0]], "kind": "risk_refused", "code": code,
                           "message": f"{side} {float(f[0]):g} refused: {reason}"})
    return rows, events


def forward_filled(values: np.ndarray) -> np.ndarray:
    """Each column carried forward over its NaN (a halted code keeps its last close); NaN before the first."""
    valid = ~np.isnan(values)
    rows = np.where(valid, np.arange(values.shape[0])[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    return values[rows, np.arange(values.shape[1])]


def benchmark_for(cfg: AppConfig, panel: Panel, equity: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """``engine.backtest``'s benchmark; the equal-weight closes come straight from the panel."""
    from analysis.benchmark import equal_weight_from_closes
    from engine.backtest import _benchmark as event_benchmark

    if cfg.report.benchmark != "equal_weight" or equity.empty:
        return event_benchmark(cfg, {}, equity)
    order = np.argsort(np.array(panel.codes), kind="stable")
    closes = forward_filled(panel.field("close"))[:, order]
    return equal_weight_from_closes(closes, cfg.broker.cash, equity.index)


def progress_frame(run: "FastRun", trades: pd.DataFrame) -> pd.DataFrame:
    """Trade Target progress (Data2) replayed from the fills, priced at the last closes."""
    progress = TargetProgress(run.targets or TargetBook([]))
    if len(trades):
        signed = np.where(trades["side"].to_numpy() == "BUY", 1, -1) * trades["qty"].to_numpy()
        costs = (trades["commission"] + trades["tax"]).to_numpy()
        for code, qty, price, cost in zip(trades["code"].to_numpy(), signed, trades["price"].to_numpy(), costs):
            progress.on_fill(code, int(qty), float(price), int(cost))
    panel = run.panel
    if len(panel.dates):
        last_close = forward_filled(panel.field("close"))[-1]
        for code, close in zip(panel.codes, last_close):
            if close == close:
                progress.on_price(code, float(close))
    return progress.frame()


def build_record(run: "FastRun", out: tuple) -> RunRecord:
    """The ``RunRecord`` of a kernel run (see the module docstring)."""
    eq_v, eq_c, fi, ff, oi, of, ri, rf, ei, ef = out[:10]
    cfg, panel = run.cfg, run.panel
    when = stamps(panel.dates)
    equity = equity_frame(panel, eq_v, eq_c)
    trades = trades_frame(panel, fi, ff)
    boxed = list(when)                  # one Timestamp per session, boxed once
    events, stop_reason = _strategy_events(run, ei, ef, boxed)
    orders, order_events = orders_frame(run, oi, of, when)
    refused, refusal_events = refusals(run, ri, rf, boxed, stop_reason)
    if refused:
        # RunRecorder builds one frame from dicts, where a refusal's empty ref makes the column float
        orders = pd.concat([orders.astype({"ref": float}), pd.DataFrame(refused, columns=ORDER_COLUMNS)],
                           ignore_index=True)
    if len(orders):
        orders = orders.sort_values(["created", "ref"], kind="stable", na_position="last").reset_index(drop=True)
    events += order_events + refusal_events
    events_df = pd.DataFrame(sorted(events, key=lambda e: e["datetime"]), columns=["datetime", "kind", "code", "message"])

    benchmark, label = benchmark_for(cfg, panel, equity)
    keep = panel.codes
    if len(keep) > MAX_PRICE_CODES:
        from analysis.charts import select_price_codes

        drawn, _omitted = select_price_codes(trades)
        keep = list(dict.fromkeys([*drawn, *(run.targets.codes if run.targets else [])]))
    prices: dict[str, pd.DataFrame] = {}
    for code in keep:
        if code in panel.codes:
            frame = panel.frame(code)
            frame.index = frame.index.tz_localize(KST)
            prices[code] = frame

    config = cfg.model_dump(mode="json")
    config.setdefault("research", {})["engine"] = "fast"
    return RunRecord(
        name=cfg.name, mode=cfg.broker.mode, strategy=cfg.strategy.name, data_label=panel.label,
        synthetic=panel.synthetic, initial_cash=cfg.broker.cash, equity=equity, trades=trades, orders=orders,
        prices=prices, progress=progress_frame(run, trades), events=events_df,
        markets={c: str(getattr(m, "value", m)) for c, m in zip(panel.codes, panel.markets)}, config=config,
        benchmark=benchmark, benchmark_label=label, risk_free_pct=cfg.report.risk_free_pct)

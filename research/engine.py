"""The fast engine: a config in, the same ``RunRecord`` (and run folder) as the event path out.

``run_fast_backtest(cfg)`` is ``engine.backtest.run_backtest`` for declared strategies on daily
bars: it loads the source as a panel (``research.store``), computes the strategy's indicators over
every code's full history (``research.indicators``), cuts the configured window exactly as
``feeds.history.load_market_data`` does (codes without a bar in the window are dropped, or an
error when the universe names them), compiles the declaration (``research.rules``) and runs the
kernel once. The record it returns holds the same trades, equity, orders, prices and Trade Target
progress a backtrader run of the same config holds, so ``analysis.report`` writes the same run
folder and ``run.py report`` re-renders it.

What the fast record leaves out: the checker's ``check``/``check_failed`` events (the kernel has no
checker to fail) and the per-fill ``broker_alert`` events of live brokers. Risk refusals, kill
switch, stop-losses, exits, rejections and expiries are all there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import numpy as np
import pandas as pd

from analysis.record import ORDER_COLUMNS, TRADE_COLUMNS, RunRecord
from configs.schema import AppConfig
from market.costs import CostModel
from research import kernel as K
from research.indicators import add_panel_indicators
from research.panel import Panel, PanelError
from research.rules import FastEngineUnsupported, KernelInputs, check_supported, compile_inputs
from research.store import PanelLoad, load_panel
from strategies.declared import DeclaredStrategy
from strategies.spec import StrategySpec, TargetEntry
from strategies.targets import TargetBook, TargetProgress, load_targets

log = logging.getLogger(__name__)
KST = "Asia/Seoul"
MAX_PRICE_CODES = 100
"""Above this many codes the record keeps prices of traded codes only (see ``build_record``)."""
KERNEL_ERROR, KERNEL_FILLS, KERNEL_COMMISSION, KERNEL_TAX, KERNEL_TRADED = 10, 11, 12, 13, 14
"""Positions in ``kernel.simulate``'s result after the ten record arrays."""
ProgressFn = Callable[[str, int, int], None]


@dataclass
class FastRun:
    """A compiled run: what the kernel needs plus what the record needs."""

    cfg: AppConfig
    cls: type[DeclaredStrategy]
    spec: StrategySpec
    targets: TargetBook | None
    panel: Panel                 # the window, codes in the event path's feed order
    inputs: KernelInputs
    cost_model: CostModel
    load: PanelLoad | None


@dataclass
class FastResult:
    """Like ``engine.backtest.BacktestResult``; ``strategy`` is the compiled run."""

    record: RunRecord
    run: FastRun
    seconds_loading: float
    seconds_running: float
    bars: int

    @property
    def strategy(self) -> FastRun:
        return self.run


def declared_class(cfg: AppConfig) -> type[DeclaredStrategy]:
    """The config's strategy class, which must be a declaration."""
    from engine.backtest import _check_params, resolve_strategy

    cls = resolve_strategy(cfg.strategy.name)
    _check_params(cls, cfg.strategy.params)
    if not (isinstance(cls, type) and issubclass(cls, DeclaredStrategy)):
        raise FastEngineUnsupported(
            f"strategy.name {cfg.strategy.name!r} ({cls.__name__}) is written bar by bar, not declared: the fast "
            "engine runs strategies declared as a StrategySpec (strategies.declared.DeclaredStrategy, like the "
            "examples buy_and_hold, target_buy, screen_momentum); use --engine event")
    return cls


def cost_model_for(cfg: AppConfig) -> CostModel:
    """The cost model the event path's broker gets for this config (built by the same function)."""
    from brokers.sim import make_broker

    b = cfg.broker
    return make_broker(b.cash, commission_pct=b.commission_pct, sell_tax_pct=b.sell_tax_pct).cost_model


def data_config(cfg: AppConfig, targets: TargetBook | None):
    """The data section as ``engine.backtest.load_inputs`` uses it (targets narrow a CSV/cache universe)."""
    data = cfg.data
    if targets is not None and data.universe is None and data.source != "demo":
        data = data.model_copy(update={"universe": targets.codes})
    return data


def required_fields(cfg: AppConfig, cls: type[DeclaredStrategy], spec: StrategySpec) -> tuple[list[str], list[str]]:
    """(indicator specs, other fields) a run needs on its panel."""
    from engine.backtest import required_indicators
    from feeds.indicators import indicator_columns

    specs = required_indicators(cfg, cls)
    cols = set(indicator_columns(specs))
    others = [f for f in spec.fields if f not in cols and f not in ("open", "high", "low", "close", "volume")]
    return specs, others


def window_panel(full: Panel, data) -> Panel:
    """The configured window with ``load_market_data``'s rules for codes without a bar in it."""
    win = full.window(data.start, data.end)
    with_bars = win.has_bar.any(axis=0)
    missing = [c for c, ok in zip(win.codes, with_bars) if not ok]
    span = f"{data.start or 'start'}..{data.end or 'end'}"
    if missing and data.universe is not None:
        raise PanelError(f"code {missing[0]}: no bars in {span}; widen data.start/data.end or drop it from "
                         "data.universe")
    if missing:
        log.warning("dropped %d code(s) without bars in the window: %s", len(missing), ", ".join(missing))
    keep = [c for c, ok in zip(win.codes, with_bars) if ok]
    if not keep:
        raise PanelError(f"no code has bars in {span} ({full.label})")
    return win.select(keep)


def prepare(cfg: AppConfig, panel: Panel | None = None, progress: ProgressFn | None = None,
            cache_dir: Any = None) -> FastRun:
    """Load, compute and compile everything for one run (the kernel is not called yet)."""
    check_supported(cfg)
    cls = declared_class(cfg)
    spec = cls.spec_for(cfg.strategy.params)
    if isinstance(spec.entry, TargetEntry) and not cfg.strategy.targets:
        log.warning("%s has no targets: set strategy.targets in the config", cls.__name__)
    targets = load_targets(cfg.strategy.targets) if cfg.strategy.targets else None
    data = data_config(cfg, targets)
    load = None
    if panel is None:
        setting = getattr(getattr(cfg, "research", None), "panel_cache", None) if cache_dir is None else cache_dir
        panel, load = load_panel(data, setting, progress)
    elif data.universe is not None:
        panel = panel.select(data.universe)
    specs, others = required_fields(cfg, cls, spec)
    add_panel_indicators(panel, specs)
    panel.ensure(others)
    win = window_panel(panel, data)
    cost_model = cost_model_for(cfg)
    inputs = compile_inputs(cfg, spec, win, targets, cost_model)
    return FastRun(cfg, cls, spec, targets, win, inputs, cost_model, load)


def simulate(run: FastRun, record: bool = True) -> tuple:
    out = K.simulate(*run.inputs.args(record=record))
    error = int(out[KERNEL_ERROR])
    if error == K.ERR_OVERFLOW:
        raise FastEngineUnsupported("a trade value is too large for exact integer commission arithmetic "
                                    "(over 2^62 / rate numerator); use --engine event")
    if error == K.ERR_FRACTIONAL_PRICE:
        raise FastEngineUnsupported("a fill price is not a whole number of KRW; the fast engine needs integer "
                                    "prices (the panel store only makes those)")
    return out


def run_fast_backtest(cfg: AppConfig, progress: ProgressFn | None = None, panel: Panel | None = None,
                      cache_dir: Any = None) -> FastResult:
    """The configured backtest on the fast engine (no files written)."""
    t0 = time.perf_counter()
    run = prepare(cfg, panel, progress, cache_dir)
    t1 = time.perf_counter()
    out = simulate(run, record=True)
    t2 = time.perf_counter()
    if progress:
        progress("running", 1, 1)
    record = build_record(run, out)
    return FastResult(record, run, t1 - t0, t2 - t1, run.panel.bars)


# ---------------------------------------------------------------------------------------- records

def _stamps(dates: np.ndarray) -> pd.DatetimeIndex:
    # microsecond unit, as the event path's RunRecorder builds its index from Python datetimes
    return pd.DatetimeIndex(dates.astype("datetime64[us]"), name="datetime").tz_localize(KST)


def equity_frame(run: FastRun, values: np.ndarray, cash: np.ndarray) -> pd.DataFrame:
    """As ``RunRecorder.equity_frame``: value and cash per session, rounded to the won."""
    frame = pd.DataFrame({"value": values, "cash": cash}, index=_stamps(run.panel.dates))
    return frame.round().astype("int64")


def trades_frame(run: FastRun, fi: np.ndarray, ff: np.ndarray) -> pd.DataFrame:
    if not len(fi):
        return pd.DataFrame(columns=TRADE_COLUMNS)
    stamps = _stamps(run.panel.dates)
    codes = np.array(run.panel.codes, dtype=object)
    qty = fi[:, 3]
    price = ff[:, 0]
    return pd.DataFrame({
        "datetime": stamps[fi[:, 0]], "code": codes[fi[:, 1]],
        "side": np.where(fi[:, 2] > 0, "BUY", "SELL"), "qty": qty.astype(int), "price": price,
        "value": np.rint(qty * price).astype(np.int64), "commission": fi[:, 4].astype(int),
        "tax": fi[:, 5].astype(int), "order_ref": fi[:, 6].astype(int)}, columns=TRADE_COLUMNS)


_STATUS = {K.ST_ACCEPTED: "Accepted", K.ST_COMPLETED: "Completed", K.ST_EXPIRED: "Expired",
           K.ST_REJECTED: "Rejected", K.ST_MARGIN: "Margin"}


def _reject_reason(run: FastRun, code: str, row: int, reason: int, f: np.ndarray, side: int) -> str:
    market = run.panel.markets[run.panel.codes.index(code)]
    session = run.inputs.rules.sessions[row]
    if reason == K.RJ_EXPIRED:
        return f"DAY order unfilled at the close of {session}"
    if reason == K.RJ_MARGIN:
        return "not enough cash at execution"
    if reason == K.RJ_OFF_GRID:
        return f"price {f[K.OF_A]:,.2f} is not on the tick grid ({market.value}, {session})"
    if reason == K.RJ_BAND:
        limit, lower, upper = f[K.OF_A], int(f[K.OF_B]), int(f[K.OF_C])
        base = int(round(run.panel.close[row, run.panel.codes.index(code)]))
        where = "above the upper" if limit > upper else "below the lower"
        return (f"limit price {limit:,.0f} is {where} limit of {session} "
                f"(band {lower:,}–{upper:,}, base {max(1, base):,})")
    if reason == K.RJ_BUYING_POWER:
        return (f"insufficient buying power: {f[K.OF_A]:,.0f} sh x {f[K.OF_B]:,.0f} "
                f"+ commission = {f[K.OF_C]:,.0f} KRW, available {f[K.OF_D]:,.0f} KRW")
    return ""


def _refusal_reason(reason: int, f: np.ndarray, code: str, cfg: AppConfig, stop_reason: str) -> str:
    lim = cfg.risk.limits
    qty, a, b, c = f[0], f[2], f[3], f[4]
    if reason == K.RF_STOPPED:
        return f"trading stopped: {stop_reason}"
    if reason == K.RF_NO_ROOM:
        return "no room: sizer, cash, allocation or risk limits allow 0 shares"
    if reason == K.RF_ALLOCATION:
        return (f"{qty:g} sh x {a:,.0f} = {b:,.0f} KRW exceeds the target's remaining "
                f"allocation {c:,.0f} KRW")
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


def _stop_reason(cfg: AppConfig, ev_f: np.ndarray) -> str:
    start, value = ev_f
    loss = (start - value) / start * 100
    return (f"daily loss {loss:.2f}% (from {start:,.0f} to {value:,.0f} KRW) "
            f"reached daily_loss_limit_pct {cfg.risk.limits.daily_loss_limit_pct:g}%")


def build_record(run: FastRun, out: tuple) -> RunRecord:
    """The ``RunRecord`` of a kernel run (same tables and columns as ``RunRecorder`` produces)."""
    eq_v, eq_c, fi, ff, oi, of, ri, rf, ei, ef = out[:10]
    cfg, panel = run.cfg, run.panel
    stamps = _stamps(panel.dates)
    codes = panel.codes
    equity = equity_frame(run, eq_v, eq_c)
    trades = trades_frame(run, fi, ff)

    events: list[dict[str, Any]] = []
    stop_reason = ""
    for (row, c, kind), f in zip(ei, ef):
        when = stamps[row]
        if kind == K.EV_KILL_SWITCH:
            stop_reason = _stop_reason(cfg, f)
            events.append({"datetime": when, "kind": "kill_switch", "code": "",
                           "message": f"trading stopped: {stop_reason}"})
        elif kind == K.EV_STOP_LOSS:
            events.append({"datetime": when, "kind": "stop_loss", "code": codes[c],
                           "message": f"close {f[0]:,.0f} <= stop {f[1]:,.0f}; selling at market"})
        elif kind == K.EV_EXIT:
            rule = run.spec.exits[0] if run.spec.exits else None
            label = f"{rule.label}: {rule.screen.name}" if rule else "exit"
            events.append({"datetime": when, "kind": "exit", "code": codes[c],
                           "message": f"{label} (close {f[0]:,.0f})"})

    rows = []
    last_row = len(panel.dates) - 1
    for o, f in zip(oi, of):
        if o[K.OI_STATUS] == K.ST_ACCEPTED and o[K.OI_ROW] == last_row:
            continue        # placed on the last bar: backtrader never notifies it, RunRecorder never sees it
        code = codes[o[K.OI_CODE]]
        status = _STATUS[int(o[K.OI_STATUS])]
        reason = _reject_reason(run, code, int(o[K.OI_ROW]), int(o[K.OI_REASON]), f, int(o[K.OI_SIDE]))
        filled = int(o[K.OI_FILLED])
        rows.append({"ref": int(o[K.OI_REF]), "created": stamps[o[K.OI_ROW]], "code": code,
                     "side": "BUY" if o[K.OI_SIDE] > 0 else "SELL",
                     "type": "Market" if o[K.OI_TYPE] == 0 else "Limit", "qty": int(o[K.OI_QTY]),
                     "price": None if o[K.OI_TYPE] == 0 else float(f[K.OF_LIMIT]), "status": status,
                     "filled_qty": filled, "avg_price": float(f[K.OF_EXEC_VALUE] / filled) if filled else None,
                     "reason": reason, "updated": stamps[o[K.OI_UPDATED]]})
        if status in ("Rejected", "Margin"):
            events.append({"datetime": stamps[o[K.OI_UPDATED]], "kind": "order_rejected", "code": code,
                           "message": f"ref {int(o[K.OI_REF])} {'Buy' if o[K.OI_SIDE] > 0 else 'Sell'} "
                                      f"{int(o[K.OI_QTY])} sh {status}: {reason or status}"})
        elif status == "Expired":
            events.append({"datetime": stamps[o[K.OI_UPDATED]], "kind": "order_expired", "code": code,
                           "message": f"ref {int(o[K.OI_REF])}: {reason}"})
    last_refusal: dict[str, str] = {}
    for r, f in zip(ri, rf):
        code = codes[r[1]]
        reason = _refusal_reason(int(r[3]), f, code, cfg, stop_reason)
        side = "buy" if r[2] > 0 else "sell"
        price = None if f[1] != f[1] else float(f[1])
        qty = int(f[0]) if float(f[0]).is_integer() else float(f[0])
        rows.append({"ref": None, "created": stamps[r[0]], "code": code, "side": side.upper(), "type": "",
                     "qty": qty, "price": price, "status": "Refused", "filled_qty": 0, "avg_price": None,
                     "reason": reason, "updated": stamps[r[0]]})
        if last_refusal.get(code) != reason:       # TargetStrategy._refuse logs a reason once per change
            last_refusal[code] = reason
            events.append({"datetime": stamps[r[0]], "kind": "risk_refused", "code": code,
                           "message": f"{side} {float(f[0]):g} refused: {reason}"})
    orders = pd.DataFrame(rows, columns=ORDER_COLUMNS)
    if len(orders):
        orders = orders.sort_values(["created", "ref"], kind="stable", na_position="last").reset_index(drop=True)

    progress = TargetProgress(run.targets or TargetBook([]))
    for row in trades.itertuples(index=False):
        qty = row.qty if row.side == "BUY" else -row.qty
        progress.on_fill(row.code, int(qty), float(row.price), int(row.commission + row.tax))
    last_close = _forward_filled(panel.field("close"))[-1] if len(panel.dates) else np.array([])
    for i, code in enumerate(codes):
        if last_close[i] == last_close[i]:
            progress.on_price(code, float(last_close[i]))
    benchmark, label = _benchmark(cfg, panel, equity)
    keep = codes
    if len(codes) > MAX_PRICE_CODES:
        # a whole-market run keeps the prices of the codes its report draws (the benchmark above
        # used every code): prices.csv of 2,500 codes would be ~6 M rows
        from analysis.charts import select_price_codes

        drawn, _omitted = select_price_codes(trades)
        keep = list(dict.fromkeys([*drawn, *(run.targets.codes if run.targets else [])]))
    prices: dict[str, pd.DataFrame] = {}
    for code in keep:
        if code in panel.codes:
            frame = panel.frame(code)
            frame.index = frame.index.tz_localize(KST)
            prices[code] = frame
    events_df = pd.DataFrame(sorted(events, key=lambda e: e["datetime"]),
                             columns=["datetime", "kind", "code", "message"])
    config = cfg.model_dump(mode="json")
    config.setdefault("research", {})
    if isinstance(config["research"], dict):
        config["research"]["engine"] = "fast"
    return RunRecord(
        name=cfg.name, mode=cfg.broker.mode, strategy=cfg.strategy.name, data_label=panel.label,
        synthetic=panel.synthetic, initial_cash=cfg.broker.cash, equity=equity, trades=trades, orders=orders,
        prices=prices, progress=progress.frame(), events=events_df,
        markets={c: str(getattr(m, "value", m)) for c, m in zip(codes, panel.markets)}, config=config,
        benchmark=benchmark, benchmark_label=label, risk_free_pct=cfg.report.risk_free_pct)


def _forward_filled(values: np.ndarray) -> np.ndarray:
    """Each column carried forward over its NaN (a halted code keeps its last close); NaN before the first."""
    valid = ~np.isnan(values)
    rows = np.where(valid, np.arange(values.shape[0])[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    return values[rows, np.arange(values.shape[1])]


def _benchmark(cfg: AppConfig, panel: Panel, equity: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """``engine.backtest._benchmark``, with the equal-weight closes taken from the panel."""
    from analysis.benchmark import equal_weight_from_closes
    from engine.backtest import _benchmark as event_benchmark

    if cfg.report.benchmark != "equal_weight" or equity.empty:
        return event_benchmark(cfg, {}, equity)
    order = np.argsort(np.array(panel.codes), kind="stable")
    closes = _forward_filled(panel.field("close"))[:, order]
    return equal_weight_from_closes(closes, cfg.broker.cash, equity.index)

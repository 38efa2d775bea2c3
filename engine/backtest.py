"""Assemble and run a backtest from an ``AppConfig``: feeds, KRX broker, strategy, sizer, recorders.

This is the composition root of the backtest mode (``run.py`` only parses arguments and prints):
the one place where data, broker, strategy and report meet. Tests and benchmarks call
``run_backtest`` directly.
"""

from __future__ import annotations

import importlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import backtrader as bt
import pandas as pd

from analysis.record import RunRecord
from analysis.recorders import RunRecorder, events_frame
from brokers.sim import make_broker
from configs.errors import InputError
from configs.schema import AppConfig
from feeds.history import MarketData, load_market_data, make_feed
from risk.limits import RiskLimits
from risk.sizing import sizer_from_config, sizer_indicators
from strategies.base import TargetStrategy
from strategies.examples import EXAMPLES
from strategies.params import validate_params
from strategies.targets import TargetBook, load_targets

ProgressFn = Callable[[str, int, int], None]   # (stage, done, total)


class StrategyLoadError(InputError):
    """``strategy.name`` does not name a usable strategy class."""


def resolve_strategy(name: str) -> type[TargetStrategy]:
    """A built-in example by name, or ``package.module:ClassName``."""
    if name in EXAMPLES:
        return EXAMPLES[name]
    if ":" not in name:
        raise StrategyLoadError(f"strategy.name {name!r} is not a built-in example "
                                f"({', '.join(sorted(EXAMPLES))}) nor of the form 'package.module:ClassName'")
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyLoadError(f"strategy.name {name!r}: cannot import module {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, bt.Strategy)):
        raise StrategyLoadError(f"strategy.name {name!r}: {class_name!r} is not a backtrader Strategy class")
    return cls


def check_strategy_params(cfg: AppConfig, cls: type[bt.Strategy]) -> dict[str, Any]:
    """``strategy.params`` typed and range-checked against ``cls`` before any data is loaded, in every
    mode (``strategies/params.py``); the error names the config file, the parameter and the value."""
    return validate_params(cls, cfg.strategy.params, source=f"{cfg.source}: strategy.params")


@dataclass
class BacktestResult:
    record: RunRecord
    strategy: TargetStrategy
    seconds_loading: float
    seconds_running: float
    bars: int


def required_indicators(cfg: AppConfig, cls: type[bt.Strategy]) -> list[str]:
    specs = list(cfg.data.indicators)
    needed = getattr(cls, "required_indicators", None)
    if needed is not None:
        specs += needed(cfg.strategy.params)
    specs += sizer_indicators(cfg.risk.sizer)
    return list(dict.fromkeys(specs))


def load_inputs(cfg: AppConfig, progress: ProgressFn | None = None
                ) -> tuple[type[TargetStrategy], TargetBook | None, MarketData]:
    """Strategy class, targets and bars for a config (the slow, I/O part of a run)."""
    cls = resolve_strategy(cfg.strategy.name)
    check_strategy_params(cfg, cls)
    targets = load_targets(cfg.strategy.targets) if cfg.strategy.targets else None
    data_cfg = cfg.data
    if targets is not None and data_cfg.universe is None and data_cfg.source != "demo":
        data_cfg = data_cfg.model_copy(update={"universe": targets.codes})
    cb = (lambda code, done, total: progress("loading", done, total)) if progress else None
    market = load_market_data(data_cfg, extra_indicators=required_indicators(cfg, cls), progress=cb)
    if not market.bars:
        raise InputError("no bars loaded: check data.universe, data.start and data.end")
    return cls, targets, market


def build_cerebro(cfg: AppConfig, cls: type[TargetStrategy], targets: TargetBook | None, market: MarketData,
                  progress: Callable[[int], None] | None = None) -> bt.Cerebro:
    b = cfg.broker
    # backtrader numbers orders from a process-wide counter; restart it so a run's order refs
    # (in orders.csv, trades.csv and the event log) do not depend on what ran before in the process
    bt.order.OrderBase.refbasis = itertools.count(1)
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    broker = make_broker(b.cash, commission_pct=b.commission_pct, sell_tax_pct=b.sell_tax_pct,
                         price_rounding=b.price_rounding, market_buy_reserve=b.market_buy_reserve,
                         volume_cap_pct=b.volume_cap_pct, slippage_ticks=b.slippage_ticks,
                         order_validity=b.order_validity)
    cerebro.setbroker(broker)
    for code, frame in market.bars.items():
        feed = make_feed(code, frame)
        cerebro.adddata(feed, name=code)
        broker.add_code(feed, market.markets.get(code, cfg.data.default_market))
    sizer_cls, sizer_params = sizer_from_config(cfg.risk.sizer)
    cerebro.addsizer(sizer_cls, **sizer_params)
    cerebro.addstrategy(cls, targets=targets, limits=RiskLimits.from_config(cfg.risk.limits),
                        **cfg.strategy.params)
    cerebro.addanalyzer(RunRecorder, _name="recorder", progress=progress)
    return cerebro


def _benchmark(cfg: AppConfig, prices: dict[str, pd.DataFrame], equity: pd.DataFrame
               ) -> tuple[pd.Series | None, str]:
    from analysis.benchmark import equal_weight_buy_and_hold, index_benchmark

    bench = cfg.report.benchmark
    if bench == "none" or equity.empty:
        return None, ""
    if bench == "equal_weight":
        return equal_weight_buy_and_hold(prices, cfg.broker.cash, equity.index)
    return index_benchmark(Path(bench), cfg.broker.cash, equity.index)


def run_backtest(cfg: AppConfig, progress: ProgressFn | None = None) -> BacktestResult:
    """Run the configured backtest and return its record (no files written)."""
    t0 = time.perf_counter()
    cls, targets, market = load_inputs(cfg, progress)
    t1 = time.perf_counter()
    total_bars = max(len(f) for f in market.bars.values())
    bar_cb = (lambda done: progress("running", min(done, total_bars), total_bars)) if progress else None
    cerebro = build_cerebro(cfg, cls, targets, market, bar_cb)
    strategy: TargetStrategy = cerebro.run()[0]
    t2 = time.perf_counter()
    if progress:
        progress("running", total_bars, total_bars)
    recorder: RunRecorder = strategy.analyzers.recorder
    equity = recorder.equity_frame()
    prices = {code: f[["open", "high", "low", "close", "volume"]].copy() for code, f in market.bars.items()}
    for frame in prices.values():
        frame.index = frame.index.tz_localize("Asia/Seoul") if frame.index.tz is None else frame.index
    benchmark, label = _benchmark(cfg, prices, equity)
    record = RunRecord(
        name=cfg.name, mode=cfg.broker.mode, strategy=cfg.strategy.name, data_label=market.label,
        synthetic=market.synthetic, initial_cash=cfg.broker.cash, equity=equity,
        trades=recorder.trades_frame(), orders=recorder.orders_frame(strategy.refusals), prices=prices,
        progress=strategy.update_progress(), events=events_frame(strategy.events),
        markets={c: str(getattr(m, "value", m)) for c, m in market.markets.items()},
        config=cfg.model_dump(mode="json"), benchmark=benchmark, benchmark_label=label,
        risk_free_pct=cfg.report.risk_free_pct,
    )
    bars = sum(len(f) for f in market.bars.values())
    return BacktestResult(record, strategy, t1 - t0, t2 - t1, bars)


def default_out_dir(cfg: AppConfig) -> Path:
    return cfg.report.out or Path("runs") / cfg.name

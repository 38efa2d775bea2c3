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
from typing import Any, Callable

from analysis.record import RunRecord
from configs.schema import AppConfig
from market.costs import CostModel
from research import kernel as K
from research.indicators import add_panel_indicators
from research.panel import Panel, PanelError
from research.rules import FastEngineUnsupported, KernelInputs, check_supported, compile_inputs
from research.store import PanelLoad, load_panel
from strategies.declared import DeclaredStrategy
from strategies.spec import StrategySpec, TargetEntry
from strategies.targets import TargetBook, load_targets

log = logging.getLogger(__name__)
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
    from engine.backtest import check_strategy_params, resolve_strategy

    cls = resolve_strategy(cfg.strategy.name)
    check_strategy_params(cfg, cls)
    if not (isinstance(cls, type) and issubclass(cls, DeclaredStrategy)):
        raise FastEngineUnsupported(
            f"strategy.name {cfg.strategy.name!r} ({cls.__name__}) is written bar by bar, not declared: the fast "
            "engine runs strategies declared as a StrategySpec (strategies.declared.DeclaredStrategy, like the "
            "examples buy_and_hold, target_buy, screen_momentum, sma_cross); use --engine event")
    overridden = [name for name in _BEHAVIOUR if getattr(cls, name) is not getattr(DeclaredStrategy, name)]
    if overridden:
        raise FastEngineUnsupported(
            f"strategy {cls.__name__} overrides {', '.join(overridden)}: the fast engine runs the declaration "
            "(declare()) and nothing else, so it would differ from the event path; use --engine event")
    return cls


_BEHAVIOUR = ("next", "prenext", "on_bar", "on_start", "on_fill", "on_order_update", "notify_order", "notify_trade",
              "start", "stop", "buy", "sell", "check", "_start_of_bar", "_stop_out", "_run_exits", "_run_screen",
              "_run_hold", "_run_targets", "_place_target_buy", "capital_left", "affordable", "in_next_band")
"""Methods whose per-bar behaviour the kernel reproduces; a declared class that overrides one is refused."""


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


def kernel_cached() -> bool:
    """Whether numba's on-disk cache already holds the compiled kernel (the first run on a machine
    compiles it, about half a minute; every later process loads it in well under a second)."""
    import glob
    import os

    folders = [os.path.join(os.path.dirname(K.__file__), "__pycache__")]
    if os.environ.get("NUMBA_CACHE_DIR"):
        folders.append(os.environ["NUMBA_CACHE_DIR"])
    return any(glob.glob(os.path.join(f, "**", "kernel.simulate-*.nbi"), recursive=True) for f in folders)


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
    if not kernel_cached():
        log.warning("compiling the fast engine (numba, first run on this machine only, about 30 s)")
        if progress:
            progress("compile", 0, 1)
    out = simulate(run, record=True)
    t2 = time.perf_counter()
    if progress:
        progress("running", 1, 1)
    record = build_record(run, out)
    return FastResult(record, run, t1 - t0, t2 - t1, run.panel.bars)


def build_record(run: FastRun, out: tuple) -> RunRecord:
    """The run's ``RunRecord`` (``research.records``)."""
    from research.records import build_record as build

    return build(run, out)

"""A config, a panel and a declared strategy compiled into the kernel's arrays.

Everything the kernel needs to know about KRX comes from ``market/`` here, evaluated once per
session instead of once per order: which tick table is in force on the bar's date and on the next
session's date (per market), the next session's band width, the sell-tax rate of each session's
settlement date (per market), the commission rate as an exact fraction. Everything it needs to
know about the strategy comes from its ``StrategySpec``: the entry screen evaluated on the
rebalance sessions only, the exit screens, the ranking score, the Trade Targets, the sizer and the
limits. Whatever the kernel cannot reproduce exactly is refused here with ``FastEngineUnsupported``
naming the setting, so the fast engine never silently differs from the event path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy as np

from configs.errors import InputError
from configs.schema import AppConfig
from market.calendar import krx_calendar, settlement_date
from market.costs import CostModel, sell_tax_rate
from market.limits import band_rate_percent
from market.ticks import Market, tick_table
from research import kernel as K
from research.panel import MARKET_CODES, Panel
from strategies.screens import PanelUnsupported
from strategies.spec import HoldEntry, ScreenEntry, StrategySpec, TargetEntry
from strategies.targets import TargetBook


class FastEngineUnsupported(InputError):
    """A config or strategy the fast engine cannot reproduce exactly; the message names the part."""


TICK_TABLES = (tick_table(date(2024, 1, 2), Market.KOSPI),     # 0: unified table since 2023-01-25
               tick_table(date(2020, 1, 2), Market.KOSPI),     # 1: KOSPI (and KONEX) before
               tick_table(date(2020, 1, 2), Market.KOSDAQ))    # 2: KOSDAQ before
"""Tick tables by kernel id; id ``kernel.ETF_TABLE`` is the flat ETF tick."""


def _table_id(on: date, market: Market) -> int:
    if market is Market.ETF:
        return K.ETF_TABLE
    table = tick_table(on, market)
    for i, known in enumerate(TICK_TABLES):
        if table is known:
            return i
    raise FastEngineUnsupported(f"tick table of {market.value} on {on} is not one the fast engine knows")


def tick_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = max(len(t) for t in TICK_TABLES)
    bounds = np.full((K.ETF_TABLE + 1, width), np.iinfo(np.int64).max, dtype=np.int64)
    steps = np.ones((K.ETF_TABLE + 1, width), dtype=np.int64)
    nlev = np.zeros(K.ETF_TABLE + 1, dtype=np.int64)
    for i, table in enumerate(TICK_TABLES):
        for j, (b, s) in enumerate(table):
            bounds[i, j], steps[i, j] = b, s
        nlev[i] = len(table)
    bounds[K.ETF_TABLE, 0], steps[K.ETF_TABLE, 0], nlev[K.ETF_TABLE] = 0, 5, 1
    return bounds, steps, nlev


def fraction(rate: Decimal) -> tuple[int, int]:
    f = Fraction(rate)
    return f.numerator, f.denominator


@dataclass
class SessionRules:
    """Per-session KRX facts for a window of panel dates."""

    fill_ok: np.ndarray      # bool (T,): row t+1 is the session a DAY order of row t works in
    tick_bar: np.ndarray     # int (T, markets): tick table on the bar's date
    tick_sess: np.ndarray    # int (T, markets): tick table on the next session's date
    band_rate: np.ndarray    # int (T,): band width (percent) of the next session
    tax_num: np.ndarray      # int (T, markets): sell tax of a fill on row t, as num/den
    tax_den: np.ndarray
    sessions: list[date]     # the next session of each row (DAY expiry messages)


_RULES_CACHE: dict[tuple, SessionRules] = {}


def schedule_key(cost_model: CostModel) -> tuple:
    """The sell-tax schedule as a hashable value (what the session rules depend on besides dates)."""
    return tuple((since, tuple(sorted((m.value, r) for m, r in rates.items())))
                 for since, rates in cost_model.tax_schedule)


def session_rules(dates: list[date], cost_model: CostModel) -> SessionRules:
    """The session facts of ``dates`` (cached: sweeps ask for the same windows again and again)."""
    key = (tuple(dates), schedule_key(cost_model))
    hit = _RULES_CACHE.get(key)
    if hit is None:
        if len(_RULES_CACHE) > 16:
            _RULES_CACHE.clear()
        hit = _RULES_CACHE[key] = _session_rules(dates, cost_model)
    return hit


def _session_rules(dates: list[date], cost_model: CostModel) -> SessionRules:
    cal = krx_calendar()
    for d in dates:
        if not cal.is_trading_day(d):
            raise FastEngineUnsupported(f"bar date {d} is not a KRX trading day; the fast engine needs bars on "
                                        "XKRX sessions only (use --engine event)")
    T, M = len(dates), len(MARKET_CODES)
    sessions = [cal.next_trading_day(d) for d in dates]
    fill_ok = np.zeros(T, dtype=np.bool_)
    for t in range(T - 1):
        fill_ok[t] = dates[t + 1] == sessions[t]
    tick_bar = np.zeros((T, M), np.int64)
    tick_sess = np.zeros((T, M), np.int64)
    tax_num = np.zeros((T, M), np.int64)
    tax_den = np.ones((T, M), np.int64)
    band = np.zeros(T, np.int64)
    cache: dict[tuple, object] = {}
    for t, (d, s) in enumerate(zip(dates, sessions)):
        band[t] = band_rate_percent(s)
        settle = settlement_date(d)
        for m, market in enumerate(MARKET_CODES):
            tick_bar[t, m] = _table_id(d, market)
            tick_sess[t, m] = _table_id(s, market)
            key = (settle, market)
            if key not in cache:
                cache[key] = fraction(sell_tax_rate(settle, market, cost_model.tax_schedule))
            tax_num[t, m], tax_den[t, m] = cache[key]
    return SessionRules(fill_ok, tick_bar, tick_sess, band, tax_num, tax_den, sessions)


@dataclass
class KernelInputs:
    """Everything ``kernel.simulate`` takes, in its argument order (see ``args``)."""

    panel: Panel
    rules: SessionRules
    entry_mask: np.ndarray
    score: np.ndarray
    code_rank: np.ndarray
    exit_mask: np.ndarray
    atr: np.ndarray
    tgt_order: np.ndarray
    tgt_price: np.ndarray
    tgt_ret: np.ndarray
    tgt_cap: np.ndarray
    tgt_stop: np.ndarray
    has_target: np.ndarray
    ip: np.ndarray
    fp: np.ndarray

    def args(self, record: bool | None = None) -> tuple:
        p, r = self.panel, self.rules
        ip = self.ip.copy()
        if record is not None:
            ip[K.IP_RECORD] = int(record)
        bounds, steps, nlev = tick_arrays()
        f = [p.field(n) for n in ("open", "high", "low", "close", "volume")]
        args = (*f, p.has_bar, r.fill_ok, r.tick_bar, r.tick_sess, r.band_rate, r.tax_num, r.tax_den,
                bounds, steps, nlev, p.market_ids, self.entry_mask, self.score, self.code_rank, self.exit_mask,
                self.atr, self.tgt_order, self.tgt_price, self.tgt_ret, self.tgt_cap, self.tgt_stop,
                self.has_target, ip, self.fp)
        return tuple(_readonly(a) for a in args)


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view: numba compiles one kernel per array type, and arrays mapped from
    Ray's object store are read-only — so every caller passes read-only arrays and the one compiled
    (and cached) kernel serves the driver and every worker."""
    v = np.ascontiguousarray(a).view()
    v.flags.writeable = False
    return v


def check_supported(cfg: AppConfig) -> None:
    """Settings the kernel does not model: a clear error naming each, never a silent difference."""
    if cfg.broker.mode != "backtest":
        raise FastEngineUnsupported(f"broker.mode {cfg.broker.mode!r}: the fast engine is a backtest engine")
    if cfg.broker.order_validity != "day":
        raise FastEngineUnsupported("broker.order_validity 'gtc': the fast engine models DAY orders only "
                                    "(KIS cancels unfilled orders overnight); use --engine event")
    if cfg.data.timeframe != "daily":
        raise FastEngineUnsupported(f"data.timeframe {cfg.data.timeframe!r}: the fast engine runs on daily bars "
                                    "only; use --engine event")


def _screen_mask(screen, panel: Panel, rows: np.ndarray | None) -> np.ndarray:
    try:
        values = panel.values(rows)
        mask = np.asarray(screen.on_panel(values), dtype=bool)
    except PanelUnsupported as exc:
        raise FastEngineUnsupported(str(exc)) from None
    shape = (len(rows) if rows is not None else panel.shape[0], panel.shape[1])
    return np.broadcast_to(mask, shape)


def compile_inputs(cfg: AppConfig, spec: StrategySpec, panel: Panel, targets: TargetBook | None,
                   cost_model: CostModel, rules: SessionRules | None = None) -> KernelInputs:
    """The kernel's inputs for a window panel (indicators already computed over the full history)."""
    T, N = panel.shape
    if rules is None:
        rules = session_rules(panel.py_dates(), cost_model)
    has = panel.has_bar
    ip = np.zeros(K.N_IP, np.int64)
    fp = np.full(K.N_FP, np.nan)
    entry = spec.entry
    entry_mask = np.zeros((T, N), dtype=np.bool_)
    score = np.zeros((T, N))
    code_rank = np.argsort(np.argsort(np.array(panel.codes), kind="stable"), kind="stable").astype(np.int64)
    if isinstance(entry, ScreenEntry):
        ip[K.IP_KIND] = K.KIND_SCREEN
        s = entry.screener
        if not isinstance(s.rank_by, str):
            raise FastEngineUnsupported(f"screener rank_by {getattr(s.rank_by, '__name__', s.rank_by)!r} is a "
                                        "Python function; the fast engine ranks by a column name (e.g. roc_60)")
        ip[K.IP_TOP_N] = s.top_n or 0
        ip[K.IP_EVERY] = entry.rebalance_every
        ip[K.IP_DESC] = int(s.descending)
        sc = panel.field(s.rank_by)
        if entry.rebalance_every == 1:          # every session: whole columns, no row copies
            entry_mask = has & ~np.isnan(sc)
            if s.screen is not None:
                entry_mask &= _screen_mask(s.screen, panel, None)
        else:
            rows = np.flatnonzero((np.arange(T) + 1) % entry.rebalance_every == 0)
            cand = has[rows] & ~np.isnan(sc[rows])
            if s.screen is not None:
                cand &= _screen_mask(s.screen, panel, rows)
            entry_mask[rows] = cand
        score = sc
    elif isinstance(entry, TargetEntry):
        ip[K.IP_KIND] = K.KIND_TARGETS
        ip[K.IP_REPEAT] = int(entry.repeat)
    elif isinstance(entry, HoldEntry):
        ip[K.IP_KIND] = K.KIND_HOLD
        ip[K.IP_TOPUP] = int(entry.topup)
    else:  # pragma: no cover - StrategySpec only holds these
        raise FastEngineUnsupported(f"entry {type(entry).__name__} has no fast implementation")
    ip[K.IP_EVERY] = max(1, ip[K.IP_EVERY])
    exit_mask = np.zeros((T, N), dtype=np.bool_)
    for rule in spec.exits:
        exit_mask |= _screen_mask(rule.screen, panel, None)
    exit_mask &= has
    ip[K.IP_HAS_EXITS] = int(bool(spec.exits))

    b = cfg.broker
    ip[K.IP_ROUND_REJECT] = int(b.price_rounding == "reject")
    ip[K.IP_RESERVE_UPPER] = int(b.market_buy_reserve == "upper_limit")
    ip[K.IP_SLIP_TICKS] = b.slippage_ticks
    ip[K.IP_COMM_NUM], ip[K.IP_COMM_DEN] = fraction(cost_model.commission_rate)
    ip[K.IP_RECORD] = 1
    ip[K.IP_N_DATAS] = N
    fp[K.FP_CASH] = float(b.cash)
    fp[K.FP_COMM_RATE] = float(cost_model.commission_rate)
    fp[K.FP_VOL_CAP] = np.nan if b.volume_cap_pct is None else float(b.volume_cap_pct)

    lim = cfg.risk.limits
    for idx, v in ((K.FP_MAX_POS, lim.max_position_pct), (K.FP_MAX_EXP, lim.max_exposure_pct),
                   (K.FP_DAILY_LOSS, lim.daily_loss_limit_pct), (K.FP_STOP, lim.stop_loss_pct)):
        fp[idx] = np.nan if v is None else float(v)

    sz = cfg.risk.sizer
    atr = np.zeros((1, 1))
    if sz.kind == "fixed_fraction":
        ip[K.IP_SIZER], fp[K.FP_SZ_A] = K.SIZER_FIXED_FRACTION, sz.fraction
    elif sz.kind == "equal_weight":
        ip[K.IP_SIZER], fp[K.FP_SZ_A] = K.SIZER_EQUAL_WEIGHT, float(sz.slots or 0)
    elif sz.kind == "atr":
        ip[K.IP_SIZER], fp[K.FP_SZ_A], fp[K.FP_SZ_B] = K.SIZER_ATR, sz.risk_fraction, sz.atr_multiple
        atr = panel.field(f"atr_{sz.atr_period}")
    elif sz.kind == "fixed_size":
        ip[K.IP_SIZER], ip[K.IP_FS_SIZE] = K.SIZER_FIXED_SIZE, sz.size
    else:  # pragma: no cover - the schema allows only these
        raise FastEngineUnsupported(f"risk.sizer.kind {sz.kind!r} has no fast implementation")

    index = {c: i for i, c in enumerate(panel.codes)}
    tgt_price = np.zeros(N, np.int64)
    tgt_ret = np.zeros(N)
    tgt_cap = np.zeros(N, np.int64)
    tgt_stop = np.full(N, np.nan)
    has_target = np.zeros(N, np.bool_)
    order = []
    for t in (targets or []):
        i = index.get(t.code)
        if i is None:
            continue
        order.append(i)
        has_target[i] = True
        tgt_price[i] = t.target_buy_price
        tgt_ret[i] = t.target_return_pct
        tgt_cap[i] = t.max_capital
        if t.stop_loss_pct is not None:
            tgt_stop[i] = t.stop_loss_pct
    return KernelInputs(panel=panel, rules=rules, entry_mask=entry_mask, score=np.ascontiguousarray(score),
                        code_rank=code_rank, exit_mask=exit_mask, atr=np.ascontiguousarray(atr),
                        tgt_order=np.array(order, np.int64), tgt_price=tgt_price, tgt_ret=tgt_ret,
                        tgt_cap=tgt_cap, tgt_stop=tgt_stop, has_target=has_target, ip=ip, fp=fp)

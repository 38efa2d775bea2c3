"""A deterministic synthetic KRX-like market: the project's offline default data source.

Why synthetic: real bars cannot ship with the project, yet a fresh clone must run a backtest,
a demo and the emulator without a network. The generator therefore imitates the parts of KRX
that the rest of the code has to handle correctly, so demo runs exercise them:

* every open/high/low/close sits on that day's tick grid for the code's market
  (``market.ticks``; old KOSPI/KOSDAQ tables before 2023-01-25, the unified table after);
* every price lies inside the day's band from the previous close (``market.limits.price_band``),
  and some days close exactly at the upper (상한가) or lower (하한가) limit;
* prices span every tick band (a few codes under 2,000 KRW, most 5,000–200,000, one or two
  above 500,000 where the tick is 1,000 KRW);
* trading halts remove whole sessions (as in the real data, where halt rows were dropped), and
  the price resumes inside the band computed from the last close before the halt;
* returns come from a common market factor with regime changes (bull / bear / sideways) plus
  per-code drift segments, so momentum and trend screens have real structure to find.

Determinism: everything is drawn from one ``numpy.random.default_rng(cfg.seed)`` in a fixed
order, so the same ``DemoDataConfig`` gives byte-identical frames (for one numpy version).

Speed: the day loop is sequential (a band depends on yesterday's close) but vectorised across
codes, with the tick grid and band rules re-implemented on numpy arrays. The vector versions
follow ``market.ticks`` / ``market.limits`` step by step and the tests check every generated bar
against the scalar originals.

Everything generated here carries ``SYNTHETIC_LABEL`` so it is never mistaken for real data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from configs.errors import InputError
from configs.schema import DemoDataConfig
from market.calendar import trading_days
from market.limits import band_rate_percent
from feeds.timeframes import bar_index
from market.ticks import Market, tick_table

SYNTHETIC_LABEL = "SYNTHETIC demo market (feeds.demo): generated prices, not real KRX data"
"""Shown wherever demo data is shown (reports, CLI, monitor). Always starts with 'SYNTHETIC'."""

DEMO_CODE_BASE = 990_000
"""Demo codes are 990001, 990002, ...: a range no listed KRX stock uses, so a demo code can never
be confused with (or accidentally ordered as) a real one."""

OHLCV = ("open", "high", "low", "close", "volume")

# Price level classes: (low, high) of the starting price, log-uniform inside the range.
_LEVELS: dict[str, tuple[float, float]] = {
    "low": (700.0, 1_900.0),          # 1 KRW tick
    "lowmid": (2_200.0, 4_800.0),     # 5 KRW tick
    "mid": (5_500.0, 180_000.0),      # 10 / 50 / 100 KRW ticks
    "upper": (210_000.0, 450_000.0),  # 500 KRW tick (KOSPI)
    "top": (520_000.0, 900_000.0),    # 1,000 KRW tick (KOSPI)
}
# Slot (code index mod 30) -> level class; unlisted slots are "mid". Special slots come first so
# even a 5-code demo has a cheap, a very expensive and a 2,000-5,000 KRW stock.
_LEVEL_SLOTS: dict[int, str] = {1: "low", 2: "top", 3: "lowmid", 4: "upper",
                                11: "low", 13: "lowmid", 17: "top", 21: "low", 24: "upper"}

# Market-factor regimes: daily drift and volatility. Persistence gives regimes of ~100 sessions.
_REGIME_MU = np.array([0.0007, 0.0001, -0.0007])    # bull, sideways, bear
_REGIME_SIGMA = np.array([0.008, 0.010, 0.016])
_REGIME_STAY = 0.99
_MARKET_TREND = 0.0            # trend of the factor; the sigma^2/2 term below adds ~5 % a year
_MARKET_PULL = 0.005           # pull of the market level back to that trend (half-life ~140 sessions),
                               # so a default demo neither melts up nor collapses over five years

_ALPHA_SWITCH_P = 1 / 250      # per-code drift segment changes about once a year
_ALPHA_SIGMA = 0.0007          # per-day drift of a segment (about +-18 % a year at 1 sigma)
_JUMP_P = 0.004                # news days with a large idiosyncratic move
_JUMP_SIGMA = 0.07
_LIMIT_EVENT_P = 0.0005        # chance per code-session of a move that runs into the limit
_LIMIT_EVENT_RETURN = 0.45     # beyond any band, so the close is clipped to the limit


@dataclass(frozen=True, slots=True)
class Halt:
    """A trading halt: ``sessions`` consecutive trading days with no bar for ``code``."""

    code: str
    first_missing: date
    last_missing: date
    sessions: int


@dataclass
class DemoMarket:
    """The generated market. ``bars[code]`` is indexed by a naive ``DatetimeIndex`` named
    ``datetime`` (the trading day at 00:00, KST wall time) with int64 columns
    open, high, low, close, volume."""

    bars: dict[str, pd.DataFrame]
    markets: dict[str, Market]
    names: dict[str, str]
    halts: list[Halt]
    limit_up_days: dict[str, list[date]]
    limit_down_days: dict[str, list[date]]
    seed: int
    start: date
    end: date
    label: str = field(default=SYNTHETIC_LABEL)

    @property
    def codes(self) -> list[str]:
        return list(self.bars)


def demo_codes(n: int) -> list[str]:
    """The ``n`` demo codes: '990001', '990002', ..."""
    return [f"{DEMO_CODE_BASE + i + 1:06d}" for i in range(n)]


def demo_name(i: int, n: int) -> str:
    """Display name of the i-th (0-based) of n demo codes, e.g. 'DEMO01 (synthetic)'."""
    width = max(2, len(str(n)))
    return f"DEMO{i + 1:0{width}d} (synthetic)"


def _market_of(i: int) -> Market:
    # 40 % KOSDAQ; index 1 is KOSDAQ so any demo with two codes has both markets.
    return Market.KOSDAQ if i % 5 in (1, 3) else Market.KOSPI


class _Grid:
    """Vectorised tick grid and price band of one day for a fixed set of codes.

    Mirrors ``market.ticks.tick_size`` / ``round_to_tick`` and ``market.limits.price_band``
    exactly (integer arithmetic for the band), but on arrays: one call covers all codes.
    """

    def __init__(self, kospi_table: tuple[tuple[int, int], ...], kosdaq_table: tuple[tuple[int, int], ...],
                 is_kosdaq: np.ndarray) -> None:
        self._p_bounds = np.array([b for b, _ in kospi_table], dtype=np.int64)
        self._p_ticks = np.array([t for _, t in kospi_table], dtype=np.int64)
        self._q_bounds = np.array([b for b, _ in kosdaq_table], dtype=np.int64)
        self._q_ticks = np.array([t for _, t in kosdaq_table], dtype=np.int64)
        self._same = kospi_table == kosdaq_table
        self._is_kosdaq = is_kosdaq

    def tick(self, p: np.ndarray) -> np.ndarray:
        tp = self._p_ticks[np.searchsorted(self._p_bounds, p, side="right") - 1]
        if self._same:
            return tp
        tq = self._q_ticks[np.searchsorted(self._q_bounds, p, side="right") - 1]
        return np.where(self._is_kosdaq, tq, tp)

    def down(self, p: np.ndarray) -> np.ndarray:
        t = self.tick(p)
        return np.maximum(np.floor(p / t).astype(np.int64) * t, t)

    def up(self, p: np.ndarray) -> np.ndarray:
        t = self.tick(p)
        return np.ceil(p / t).astype(np.int64) * t

    def nearest(self, p: np.ndarray) -> np.ndarray:
        t = self.tick(p)
        lo = np.maximum(np.floor(p / t).astype(np.int64) * t, t)
        hi = np.ceil(p / t).astype(np.int64) * t
        return np.where(p - lo < hi - p, lo, hi)

    def band(self, base: np.ndarray, rate_percent: int) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) limits for int64 base prices, step for step as ``price_band``."""
        base_tick = self.tick(base)
        width = base * rate_percent // 100 // base_tick * base_tick
        upper = base + width
        upper_tick = self.tick(upper)
        upper = upper // upper_tick * upper_tick
        lower = np.maximum(base - width, 1)
        return lower, upper


def _regime_path(rng: np.random.Generator, n_days: int) -> np.ndarray:
    """Markov chain of market regimes (0 bull, 1 sideways, 2 bear), persistent."""
    stay = rng.random(n_days)
    jump_to = rng.integers(0, 3, n_days)
    regimes = np.empty(n_days, dtype=np.int64)
    state = int(rng.integers(0, 3))
    for t in range(n_days):
        if stay[t] > _REGIME_STAY:
            state = int(jump_to[t])
        regimes[t] = state
    return regimes


def _market_factor(regimes: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Daily log return of the common market factor: regime drift and volatility, pulled back
    towards a slow trend so regimes produce months-long swings rather than a runaway level."""
    factor = np.empty(len(regimes))
    level = 0.0
    for t, (reg, shock) in enumerate(zip(regimes, z)):
        f = _REGIME_MU[reg] + _REGIME_SIGMA[reg] * shock - _MARKET_PULL * (level - _MARKET_TREND * t)
        factor[t] = f
        level += f
    return factor


def _drift_segments(rng: np.random.Generator, n_days: int, n_codes: int) -> np.ndarray:
    """Per-code daily drift that changes at random times (n_days x n_codes)."""
    switches = rng.random((n_days, n_codes)) < _ALPHA_SWITCH_P
    segment = np.cumsum(switches, axis=0)                     # segment number of each cell
    n_segments = int(segment.max()) + 1
    alphas = rng.normal(0.0, _ALPHA_SIGMA, (n_segments, n_codes))
    return np.take_along_axis(alphas, segment, axis=0)


def _halts(rng: np.random.Generator, n_days: int, n_codes: int) -> list[tuple[int, int, int]]:
    """(code index, first missing day index, number of sessions) for each halt.

    At least one halt whenever the window has room for a session before and after it.
    """
    if n_days < 3:
        return []
    count = max(1, n_codes // 10)
    who = rng.choice(n_codes, size=min(count, n_codes), replace=False)
    out = []
    for i in who:
        length = int(min(rng.integers(3, 21), max(1, n_days // 5)))
        first = int(rng.integers(1, n_days - length))           # >= 1 session before and after
        out.append((int(i), first, length))
    return out


@dataclass
class DemoArrays:
    """The generated market as day × code arrays, before it is cut into per-code frames.

    ``research`` builds its panel straight from these (no per-code frames for 2,500 codes);
    ``generate_demo_market`` cuts the same arrays into frames, so both see the same bars.
    Prices and limits are int64; ``active`` is False on halted sessions (no bar).
    """

    days: list[date]
    codes: list[str]
    markets: list[Market]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    active: np.ndarray
    halt_specs: list[tuple[int, int, int]]
    seed: int

    @property
    def label(self) -> str:
        return (f"{SYNTHETIC_LABEL} [seed {self.seed}, {len(self.codes)} codes, "
                f"{self.days[0]}..{self.days[-1]}]")


def generate_demo_market(cfg: DemoDataConfig | None = None) -> DemoMarket:
    """Generate the synthetic market described by ``cfg`` (defaults: 30 codes, 2021-01-04..2025-12-30).

    Same config, same bytes. Raises ValueError when the window holds no KRX trading day.
    """
    a = generate_demo_arrays(cfg)
    days, codes, n_codes = a.days, a.codes, len(a.codes)
    index = bar_index(days)
    day_arr = np.array(days, dtype=object)
    bars: dict[str, pd.DataFrame] = {}
    limit_up: dict[str, list[date]] = {}
    limit_down: dict[str, list[date]] = {}
    for i, code in enumerate(codes):
        rows = a.active[:, i]
        bars[code] = pd.DataFrame(
            {"open": a.open[rows, i], "high": a.high[rows, i], "low": a.low[rows, i],
             "close": a.close[rows, i], "volume": a.volume[rows, i]},
            index=index[rows])
        limit_up[code] = list(day_arr[rows & (a.close[:, i] == a.upper[:, i])])
        limit_down[code] = list(day_arr[rows & (a.close[:, i] == a.lower[:, i])])
    halts = [Halt(codes[i], days[first], days[first + length - 1], length)
             for i, first, length in sorted(a.halt_specs, key=lambda h: (h[0], h[1]))]
    return DemoMarket(
        bars=bars, markets=dict(zip(codes, a.markets)),
        names={c: demo_name(i, n_codes) for i, c in enumerate(codes)},
        halts=halts, limit_up_days=limit_up, limit_down_days=limit_down,
        seed=a.seed, start=days[0], end=days[-1], label=a.label)


def generate_demo_arrays(cfg: DemoDataConfig | None = None) -> DemoArrays:
    """The demo market of ``cfg`` as day × code arrays (see ``DemoArrays``); same bytes per config."""
    cfg = cfg or DemoDataConfig()
    days = trading_days(cfg.start, cfg.end)
    if not days:
        raise InputError(f"demo window {cfg.start}..{cfg.end} contains no KRX trading day")
    n_days, n_codes = len(days), cfg.codes
    rng = np.random.default_rng(cfg.seed)

    codes = demo_codes(n_codes)
    markets = [_market_of(i) for i in range(n_codes)]
    is_kosdaq = np.array([m is Market.KOSDAQ for m in markets])

    # --- per-code parameters -------------------------------------------------------------
    levels = [_LEVEL_SLOTS.get(i % 30, "mid") for i in range(n_codes)]
    lo = np.log([_LEVELS[lv][0] for lv in levels])
    hi = np.log([_LEVELS[lv][1] for lv in levels])
    start_price = np.exp(lo + (hi - lo) * rng.random(n_codes))
    beta = rng.uniform(0.6, 1.4, n_codes)
    sigma = np.where(is_kosdaq, rng.uniform(0.018, 0.030, n_codes), rng.uniform(0.011, 0.020, n_codes))
    sigma = sigma + np.array([0.005 if lv == "low" else 0.0 for lv in levels])
    traded_value = np.exp(rng.normal(np.log(5e9), 0.8, n_codes))     # KRW per day
    base_volume = traded_value / start_price                           # shares per day

    # --- random paths, drawn in one fixed order -------------------------------------------
    regimes = _regime_path(rng, n_days)
    factor = _market_factor(regimes, rng.standard_normal(n_days))
    drift = _drift_segments(rng, n_days, n_codes)
    eps = rng.standard_normal((n_days, n_codes))
    jumps = (rng.random((n_days, n_codes)) < _JUMP_P) * rng.normal(0.0, _JUMP_SIGMA, (n_days, n_codes))
    events = rng.random((n_days, n_codes))
    event_up = rng.random((n_days, n_codes)) < 0.5
    gap_noise = rng.standard_normal((n_days, n_codes))
    high_noise = np.abs(rng.standard_normal((n_days, n_codes)))
    low_noise = np.abs(rng.standard_normal((n_days, n_codes)))
    vol_noise = rng.normal(0.0, 0.3, (n_days, n_codes))

    # + sigma^2/2: cancels the volatility drag so a code with zero drift does not sink on average
    returns = drift + 0.5 * sigma**2 + beta * factor[:, None] + sigma * eps + jumps
    limit_event = np.zeros((n_days, n_codes), dtype=np.int8)          # +1 up, -1 down
    hit = events < _LIMIT_EVENT_P
    limit_event[hit & event_up] = 1
    limit_event[hit & ~event_up] = -1

    active = np.ones((n_days, n_codes), dtype=bool)
    halt_specs = _halts(rng, n_days, n_codes)
    for i, first, length in halt_specs:
        active[first:first + length, i] = False

    # Guarantee at least one limit-up and one limit-down day, on sessions the code trades.
    if n_days >= 3:
        for i, t0, sign in ((0, n_days // 3, 1), (1 % n_codes, (2 * n_days) // 3, -1)):
            t = t0
            while t < n_days and (not active[t, i] or limit_event[t, i] != 0):
                t += 1
            if t < n_days:
                limit_event[t, i] = sign
    returns = np.where(limit_event != 0, limit_event * _LIMIT_EVENT_RETURN, returns)

    # --- the day loop: sequential in time, vectorised across codes ------------------------
    shape = (n_days, n_codes)       # one contiguous row per day
    o_out = np.empty(shape, np.int64)
    h_out = np.empty(shape, np.int64)
    l_out = np.empty(shape, np.int64)
    c_out = np.empty(shape, np.int64)
    v_out = np.empty(shape, np.int64)
    lower_out = np.empty(shape, np.int64)
    upper_out = np.empty(shape, np.int64)

    grids: dict[tuple[int, int], _Grid] = {}

    def grid_for(d: date) -> _Grid:
        tp, tq = tick_table(d, Market.KOSPI), tick_table(d, Market.KOSDAQ)
        key = (id(tp), id(tq))
        if key not in grids:
            grids[key] = _Grid(tp, tq, is_kosdaq)
        return grids[key]

    prev = grid_for(days[0]).nearest(start_price)
    for t, d in enumerate(days):
        grid = grid_for(d)
        lower, upper = grid.band(prev, band_rate_percent(d))
        floor_ = grid.up(lower.astype(np.float64))        # lowest grid price inside the band
        basef = prev.astype(np.float64)
        r = returns[t]
        close = np.clip(grid.nearest(np.clip(basef * np.exp(r), floor_, upper)), floor_, upper)
        gap = np.where(limit_event[t] != 0, 0.5 * r, 0.35 * r + 0.4 * sigma * gap_noise[t])
        open_ = np.clip(grid.nearest(np.clip(basef * np.exp(gap), floor_, upper)), floor_, upper)
        top = np.maximum(open_, close).astype(np.float64)
        bottom = np.minimum(open_, close).astype(np.float64)
        high = np.minimum(grid.up(top * np.exp(0.6 * sigma * high_noise[t])), upper)
        low = np.maximum(grid.down(bottom * np.exp(-0.6 * sigma * low_noise[t])), floor_)
        realized = np.abs(np.log(close / basef))
        volume = base_volume * np.exp(vol_noise[t]) * (1.0 + 2.5 * realized / sigma)
        volume = np.where(limit_event[t] != 0, volume * 2.0, volume)

        o_out[t], h_out[t], l_out[t], c_out[t] = open_, high, low, close
        v_out[t] = np.maximum(np.rint(volume), 1).astype(np.int64)
        lower_out[t], upper_out[t] = lower, upper
        prev = np.where(active[t], close, prev)          # a halted code keeps its last close

    return DemoArrays(days=list(days), codes=codes, markets=markets, open=o_out, high=h_out, low=l_out,
                      close=c_out, volume=v_out, lower=lower_out, upper=upper_out, active=active,
                      halt_specs=halt_specs, seed=cfg.seed)

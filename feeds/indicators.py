"""Indicator columns computed once per code on the whole bar frame, before a backtest starts.

Why precompute: backtrader indicators run per bar in Python; computing with ``ta`` / pandas on the
whole column is orders of magnitude faster and gives every strategy, screen and report the same
numbers. ``feeds.history.make_feed`` then exposes each column as an extra backtrader line
(``data.sma_20[0]``).

Spec strings and the columns they create (a contract other modules rely on — do not rename):

============  ==========================================================  =========================
spec          columns                                                     source
============  ==========================================================  =========================
sma_N         sma_N                                                       ta SMAIndicator(close)
ema_N         ema_N                                                       ta EMAIndicator(close)
rsi_N         rsi_N                                                       ta RSIIndicator(close)
atr_N         atr_N                                                       Wilder ATR, equal to ta
roc_N         roc_N (percent change over N bars)                          ta ROCIndicator(close)
macd_F_S_G    macd_F_S_G, macd_signal_F_S_G, macd_diff_F_S_G              ta MACD(close)
bb_N_D        bb_high_N_D, bb_mid_N_D, bb_low_N_D, bb_pband_N_D           ta BollingerBands(close)
volsma_N      volsma_N (SMA of volume)                                    ta SMAIndicator(volume)
high_N        high_N (max of high over N bars including today)            pandas rolling max
low_N         low_N (min of low over N bars including today)              pandas rolling min
============  ==========================================================  =========================

Warm-up: values that need more history than exists are NaN, never zero or partial-window
values (``fillna=False`` everywhere): sma/ema/rsi/atr/volsma/high/low/bb leave the first N-1 rows
NaN, roc the first N, macd the first S-1 and its signal/diff the first S+G-2. Strategies must
treat NaN as "not ready". ``feeds.history`` computes indicators on the full history before
slicing to the backtest window, so warm-up normally falls before the first traded bar.

ATR: ``ta.volatility.AverageTrueRange`` loops in Python per bar (about 7 ms per 1,200 bars) and
writes 0 instead of NaN during warm-up. The same Wilder recursion is computed here with a
vectorised exponential mean (verified equal to ta in the tests) and NaN warm-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import ta

from configs.errors import InputError

ALLOWED_FORMS = ("sma_N", "ema_N", "rsi_N", "atr_N", "roc_N", "macd_F_S_G", "bb_N_D", "volsma_N",
                 "high_N", "low_N")

_ONE_PARAM = ("sma", "ema", "rsi", "atr", "roc", "volsma", "high", "low")
_SPEC = re.compile(r"^(?P<kind>[a-z]+)((?:_\d+)+)$")
_MAX_WINDOW = 10_000


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """A parsed indicator spec: ``kind`` and integer ``params``; ``spec`` is the canonical text."""

    kind: str
    params: tuple[int, ...]

    @property
    def spec(self) -> str:
        return "_".join([self.kind, *map(str, self.params)])

    @property
    def columns(self) -> list[str]:
        """Column names this spec adds, in a fixed order."""
        suffix = "_".join(map(str, self.params))
        if self.kind == "macd":
            return [f"macd_{suffix}", f"macd_signal_{suffix}", f"macd_diff_{suffix}"]
        if self.kind == "bb":
            return [f"bb_high_{suffix}", f"bb_mid_{suffix}", f"bb_low_{suffix}", f"bb_pband_{suffix}"]
        return [self.spec]

    @property
    def warmup(self) -> int:
        """Bars of history needed before the last column of this spec is defined."""
        if self.kind == "macd":
            return self.params[1] + self.params[2] - 1
        if self.kind == "roc":
            return self.params[0] + 1
        return self.params[0]


def _bad(spec: object, why: str) -> InputError:
    return InputError(f"indicator spec {spec!r} {why}; allowed forms: {', '.join(ALLOWED_FORMS)} "
                      "(N, F, S, G, D positive integers, e.g. sma_20, rsi_14, macd_12_26_9, bb_20_2)")


def parse_indicator_spec(spec: str) -> IndicatorSpec:
    """Parse ``'sma_20'``-style text (case and surrounding spaces are ignored)."""
    if not isinstance(spec, str):
        raise _bad(spec, "is not text")
    text = spec.strip().lower()
    m = _SPEC.match(text)
    if not m:
        raise _bad(spec, "is not of the form name_number[_number...]")
    kind = m.group("kind")
    params = tuple(int(p) for p in m.group(2).split("_")[1:])
    if kind in _ONE_PARAM:
        expected = 1
    elif kind == "macd":
        expected = 3
    elif kind == "bb":
        expected = 2
    else:
        raise _bad(spec, f"has unknown indicator {kind!r}")
    if len(params) != expected:
        raise _bad(spec, f"needs {expected} number(s) after {kind!r}, got {len(params)}")
    if any(p < 1 or p > _MAX_WINDOW for p in params):
        raise _bad(spec, f"has a number outside 1..{_MAX_WINDOW}")
    if kind == "macd" and params[0] >= params[1]:
        raise _bad(spec, "needs the fast window F smaller than the slow window S")
    return IndicatorSpec(kind, params)


def parse_indicator_specs(specs: Iterable[str]) -> list[IndicatorSpec]:
    """Parse many specs, dropping duplicates (after canonicalisation) but keeping first order."""
    seen: dict[IndicatorSpec, None] = {}
    for s in specs:
        seen.setdefault(parse_indicator_spec(s), None)
    return list(seen)


def indicator_columns(specs: Iterable[str | IndicatorSpec]) -> list[str]:
    """Column names ``add_indicators`` would add for ``specs`` (deduplicated, in order)."""
    parsed = parse_indicator_specs(s.spec if isinstance(s, IndicatorSpec) else s for s in specs)
    return [c for p in parsed for c in p.columns]


def wilder_atr(high: pd.Series, low: pd.Series, close: pd.Series, window: int) -> pd.Series:
    """Average true range exactly as ``ta.volatility.AverageTrueRange`` defines it (seeded with the
    mean true range of the first ``window`` bars, then Wilder smoothing), vectorised, NaN warm-up."""
    prev = close.shift(1)
    tr = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
    out = pd.Series(np.nan, index=close.index, dtype=np.float64)
    if len(tr) < window:
        return out
    seeded = tr.iloc[window - 1:].copy()
    seeded.iloc[0] = tr.iloc[:window].mean()
    out.iloc[window - 1:] = seeded.ewm(alpha=1.0 / window, adjust=False).mean().to_numpy()
    return out


def _compute(spec: IndicatorSpec, df: pd.DataFrame) -> dict[str, pd.Series]:
    close = df["close"].astype(np.float64)
    p = spec.params
    k = spec.kind
    if k == "sma":
        values = [ta.trend.SMAIndicator(close, p[0]).sma_indicator()]
    elif k == "ema":
        values = [ta.trend.EMAIndicator(close, p[0]).ema_indicator()]
    elif k == "rsi":
        values = [ta.momentum.RSIIndicator(close, p[0]).rsi()]
    elif k == "roc":
        values = [ta.momentum.ROCIndicator(close, p[0]).roc()]
    elif k == "atr":
        values = [wilder_atr(df["high"].astype(np.float64), df["low"].astype(np.float64), close, p[0])]
    elif k == "volsma":
        values = [ta.trend.SMAIndicator(df["volume"].astype(np.float64), p[0]).sma_indicator()]
    elif k == "high":
        values = [df["high"].astype(np.float64).rolling(p[0], min_periods=p[0]).max()]
    elif k == "low":
        values = [df["low"].astype(np.float64).rolling(p[0], min_periods=p[0]).min()]
    elif k == "macd":
        m = ta.trend.MACD(close, window_slow=p[1], window_fast=p[0], window_sign=p[2])
        values = [m.macd(), m.macd_signal(), m.macd_diff()]
    elif k == "bb":
        b = ta.volatility.BollingerBands(close, window=p[0], window_dev=p[1])
        values = [b.bollinger_hband(), b.bollinger_mavg(), b.bollinger_lband(), b.bollinger_pband()]
    else:  # pragma: no cover - parse_indicator_spec refuses unknown kinds
        raise _bad(spec.spec, "has unknown indicator")
    return {col: pd.Series(np.asarray(v, dtype=np.float64), index=df.index)
            for col, v in zip(spec.columns, values)}


def add_indicators(df: pd.DataFrame, specs: Iterable[str | IndicatorSpec]) -> pd.DataFrame:
    """A new frame: ``df`` plus one float64 column per indicator output (see module docstring).

    ``df`` needs columns close (and high, low, volume for atr/high/low/volsma). Existing columns
    with the same names are replaced. Warm-up rows are NaN. An empty ``df`` gets empty columns.
    """
    parsed = parse_indicator_specs(s.spec if isinstance(s, IndicatorSpec) else s for s in specs)
    if not parsed:
        return df.copy()
    new: dict[str, pd.Series] = {}
    for spec in parsed:
        new.update(_compute(spec, df))
    base = df.drop(columns=[c for c in new if c in df.columns])
    return pd.concat([base, pd.DataFrame(new, index=df.index)], axis=1)

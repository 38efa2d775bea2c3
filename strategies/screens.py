"""Composable screens over a universe, read from indicator lines precomputed with ``ta``.

A ``Screen`` is a yes/no test on one feed's current bar; screens combine with ``&``, ``|`` and
``~``. A ``Screener`` applies a screen to every code that has a bar, ranks the survivors by a
score and returns the top N — the per-bar ranked list a momentum or breakout strategy starts from.

Screens never compute indicators: each one declares the indicator specs it reads (``indicators``),
the runner precomputes them once on the DataFrame (``feeds.indicators``), and the screen reads
``data.<column>[0]``. A value still in its warm-up (NaN) fails the screen rather than passing by
accident.

Example::

    screener = Screener(trend_up(20, 60) & volume_surge(1.5) & ~rsi_above(80),
                        rank_by="roc_60", top_n=5)
    for code, score in screener.run(strategy.codes_with_bars()):
        ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import backtrader as bt

Value = str | float


def _read(data: bt.AbstractDataBase, name: str) -> float:
    line = getattr(data.lines, name, None)
    if line is None:
        raise AttributeError(f"feed {data._name} has no line {name!r}; add the indicator spec to the screen "
                             "or the config's data.indicators")
    return float(line[0])


def _value(data: bt.AbstractDataBase, v: Value) -> float:
    return _read(data, v) if isinstance(v, str) else float(v)


_BASE_LINES = {"open", "high", "low", "close", "volume"}
_MULTI_COLUMN = {"bb_high_": "bb_", "bb_mid_": "bb_", "bb_low_": "bb_", "bb_pband_": "bb_",
                 "macd_signal_": "macd_", "macd_diff_": "macd_"}


def spec_of_column(column: str) -> str:
    """The indicator spec that produces ``column`` (``bb_high_20_2`` comes from ``bb_20_2``)."""
    for prefix, spec_prefix in _MULTI_COLUMN.items():
        if column.startswith(prefix):
            return spec_prefix + column[len(prefix):]
    return column


def _specs_of(*values: Value) -> tuple[str, ...]:
    return tuple(spec_of_column(v) for v in values if isinstance(v, str) and v not in _BASE_LINES)


@dataclass(frozen=True)
class Screen:
    """A named yes/no test on a feed's current bar."""

    name: str
    test: Callable[[bt.AbstractDataBase], bool]
    indicators: tuple[str, ...] = ()

    def __call__(self, data: bt.AbstractDataBase) -> bool:
        return bool(self.test(data))

    def __and__(self, other: "Screen") -> "Screen":
        return Screen(f"({self.name} & {other.name})", lambda d: self(d) and other(d),
                      self.indicators + other.indicators)

    def __or__(self, other: "Screen") -> "Screen":
        return Screen(f"({self.name} | {other.name})", lambda d: self(d) or other(d),
                      self.indicators + other.indicators)

    def __invert__(self) -> "Screen":
        return Screen(f"~{self.name}", lambda d: not self(d), self.indicators)


def _compare(a: Value, b: Value, op: Callable[[float, float], bool], name: str) -> Screen:
    def test(d: bt.AbstractDataBase) -> bool:
        x, y = _value(d, a), _value(d, b)
        return not (math.isnan(x) or math.isnan(y)) and op(x, y)
    return Screen(name, test, _specs_of(a, b))


def above(a: Value, b: Value) -> Screen:
    """``a`` > ``b``; each a column name (``close``, ``sma_200``...) or a number."""
    return _compare(a, b, lambda x, y: x > y, f"{a}>{b}")


def below(a: Value, b: Value) -> Screen:
    return _compare(a, b, lambda x, y: x < y, f"{a}<{b}")


def rsi_above(level: float, period: int = 14) -> Screen:
    return above(f"rsi_{period}", level)


def rsi_below(level: float, period: int = 14) -> Screen:
    return below(f"rsi_{period}", level)


def macd_bullish(fast: int = 12, slow: int = 26, signal: int = 9) -> Screen:
    """MACD above its signal line."""
    return above(f"macd_diff_{fast}_{slow}_{signal}", 0.0)


def trend_up(fast: int = 20, slow: int = 60, kind: str = "sma") -> Screen:
    """close > fast average > slow average: an established up-trend."""
    f, s = f"{kind}_{fast}", f"{kind}_{slow}"
    return above("close", f) & above(f, s)


def bollinger_breakout(period: int = 20, devs: int = 2) -> Screen:
    """Close above the upper Bollinger band."""
    return above("close", f"bb_high_{period}_{devs}")


def bollinger_oversold(period: int = 20, devs: int = 2) -> Screen:
    """Close below the lower Bollinger band (mean-reversion entries)."""
    return below("close", f"bb_low_{period}_{devs}")


def atr_below_pct(pct: float, period: int = 14) -> Screen:
    """Average true range under ``pct`` % of the close: calm enough to hold."""
    col = f"atr_{period}"

    def test(d: bt.AbstractDataBase) -> bool:
        atr, close = _read(d, col), float(d.close[0])
        return not math.isnan(atr) and close > 0 and atr / close * 100 < pct
    return Screen(f"atr{period}<{pct}%", test, (col,))


def volume_surge(multiple: float = 2.0, period: int = 20) -> Screen:
    """Today's volume at least ``multiple`` × its ``period``-bar average."""
    col = f"volsma_{period}"

    def test(d: bt.AbstractDataBase) -> bool:
        avg = _read(d, col)
        return not math.isnan(avg) and avg > 0 and float(d.volume[0]) >= multiple * avg
    return Screen(f"vol>{multiple}x{col}", test, (col,))


def near_high(fraction: float = 0.95, period: int = 252) -> Screen:
    """Close within ``1 − fraction`` of the ``period``-bar high (252 bars: the 52-week high)."""
    col = f"high_{period}"

    def test(d: bt.AbstractDataBase) -> bool:
        hi = _read(d, col)
        return not math.isnan(hi) and float(d.close[0]) >= fraction * hi
    return Screen(f"close>={fraction}x{col}", test, (col,))


def min_turnover(krw: float, period: int = 20) -> Screen:
    """Average daily traded value (close × average volume) of at least ``krw``: liquidity filter."""
    col = f"volsma_{period}"

    def test(d: bt.AbstractDataBase) -> bool:
        avg = _read(d, col)
        return not math.isnan(avg) and float(d.close[0]) * avg >= krw
    return Screen(f"turnover>={krw:,.0f}", test, (col,))


# --- fundamentals (point in time: feeds/fundamentals.py) -----------------------------------------
# Each reads a column of the same name that the runner adds like an indicator: on day D it holds only
# figures published by D (report date, or the filing-deadline lag), never a later statement.

def per_below(x: float) -> Screen:
    """PER = close / the latest annual EPS published by the bar's day, under ``x``. A loss-maker (EPS <= 0)
    has no PER and never passes."""
    return below("per", x)


def pbr_below(x: float) -> Screen:
    """PBR = close / the latest published BPS (annual or quarterly), under ``x``."""
    return below("pbr", x)


def roe_above(pct: float) -> Screen:
    """ROE (%) of the latest published annual statement above ``pct``."""
    return above("roe", pct)


def market_cap_above(krw: float) -> Screen:
    """Market cap (close x shares listed known on the bar's day) above ``krw``."""
    return above("market_cap", krw)


class Screener:
    """Filter a universe with a screen and rank the survivors by a score, best first."""

    def __init__(self, screen: Screen | None = None, rank_by: str | Callable[[bt.AbstractDataBase], float] = "close",
                 top_n: int | None = None, descending: bool = True) -> None:
        if top_n is not None and top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        self.screen = screen
        self.rank_by = rank_by
        self.top_n = top_n
        self.descending = descending

    @property
    def indicators(self) -> tuple[str, ...]:
        specs = list(self.screen.indicators if self.screen else ())
        if isinstance(self.rank_by, str):
            specs += _specs_of(self.rank_by)
        return tuple(dict.fromkeys(specs))

    def score(self, data: bt.AbstractDataBase) -> float:
        return _read(data, self.rank_by) if isinstance(self.rank_by, str) else float(self.rank_by(data))

    def run(self, items: Iterable[tuple[str, bt.AbstractDataBase]]) -> list[tuple[str, float]]:
        """Ranked ``(code, score)`` of the codes passing the screen (NaN scores drop out)."""
        ranked = []
        for code, data in items:
            if self.screen is not None and not self.screen(data):
                continue
            s = self.score(data)
            if not math.isnan(s):
                ranked.append((code, s))
        ranked.sort(key=lambda cs: (-cs[1], cs[0]) if self.descending else (cs[1], cs[0]))
        return ranked[: self.top_n] if self.top_n else ranked

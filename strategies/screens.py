"""Composable screens over a universe — one definition, evaluated by two engines.

A ``Screen`` is a yes/no rule on a code's current bar; screens combine with ``&``, ``|`` and
``~``. A ``Screener`` applies a screen to every code that has a bar, ranks the survivors by a
score and returns the top N — the per-bar ranked list a momentum or breakout strategy starts from.

Each built-in screen is written once, as a *rule* over named values (``close``, ``volume``,
``sma_20``, ``rsi_14``...), and evaluated by either engine:

* per bar on backtrader (``screen(data)``): the values are the feed's current line values;
* on the whole panel at once (``screen.on_panel(values)``, used by ``research``): the values are
  day × code float arrays and the same rule yields a boolean day × code mask.

The rule only uses arithmetic, comparisons, ``x == x`` (true unless NaN) and the engine's
``all``/``any``/``negate``, which mean the same on a float and on an array, so both engines agree
bit for bit given the same input values (``tests/research`` checks it on real data). A value still
in its warm-up (NaN) fails a test rather than passing by accident.

Screens never compute indicators: each one declares the indicator specs it reads
(``indicators``) and the columns it reads (``fields``); the runner precomputes them once
(``feeds.indicators`` for backtrader, ``research.indicators`` for the panel). ``fields`` is also
the extension point for non-price data (fundamentals by publication date, issue 13): a screen that
reads ``per`` gets it from the feed's ``per`` line per bar and from the panel's ``per`` field.

A ``Screen`` built from a plain Python ``test(data)`` callable still works per bar; the fast engine
refuses it with an error naming the screen (it cannot see inside a Python function).

Example::

    screener = Screener(trend_up(20, 60) & volume_surge(1.5) & ~rsi_above(80),
                        rank_by="roc_60", top_n=5)
    for code, score in screener.run(strategy.codes_with_bars()):
        ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

import backtrader as bt

from configs.errors import InputError

Value = str | float


class PanelUnsupported(InputError):
    """A rule the vectorised engine cannot evaluate; the message names it."""


class Values(Protocol):
    """What a rule reads values through (one implementation per engine)."""

    def __call__(self, name: str) -> Any: ...
    def all(self, *conditions: Any) -> Any: ...
    def any(self, *conditions: Any) -> Any: ...
    def negate(self, condition: Any) -> Any: ...
    def div(self, a: Any, b: Any) -> Any: ...
    def prev(self, name: str) -> Any: ...


def _read(data: bt.AbstractDataBase, name: str) -> float:
    line = getattr(data.lines, name, None)
    if line is None:
        raise AttributeError(f"feed {data._name} has no line {name!r}; add the indicator spec to the screen "
                             "or the config's data.indicators")
    return float(line[0])


class BarValues:
    """A feed's current bar as rule values (the event-driven engine)."""

    __slots__ = ("data",)

    def __init__(self, data: bt.AbstractDataBase) -> None:
        self.data = data

    def __call__(self, name: str) -> float:
        return _read(self.data, name)

    @staticmethod
    def all(*conditions: Any) -> bool:
        return all(conditions)

    @staticmethod
    def any(*conditions: Any) -> bool:
        return any(conditions)

    @staticmethod
    def negate(condition: Any) -> bool:
        return not condition

    @staticmethod
    def div(a: float, b: float) -> float:
        return a / b if b else math.nan

    def prev(self, name: str) -> float:
        """The value on the code's previous bar (NaN on its first)."""
        line = getattr(self.data.lines, name, None)
        if line is None:
            raise AttributeError(f"feed {self.data._name} has no line {name!r}")
        return float(line[-1]) if len(self.data) > 1 else math.nan


PREV = "@prev"
"""Suffix of a field holding the previous bar's value of a column (``sma_10@prev``) on a panel."""


Rule = Callable[[Values], Any]

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


def _fields_of(*values: Value) -> tuple[str, ...]:
    return tuple(v for v in values if isinstance(v, str))


@dataclass(frozen=True)
class Screen:
    """A named yes/no test on a code's current bar.

    Built-in screens carry a ``rule`` (both engines); ``Screen(name, test, indicators)`` with a
    per-bar ``test(data)`` callable is the per-bar-only form. ``fields`` lists the columns the rule
    reads (base lines, indicator columns, later fundamentals).
    """

    name: str
    test: Callable[[bt.AbstractDataBase], bool] | None = None
    indicators: tuple[str, ...] = ()
    rule: Rule | None = None
    fields: tuple[str, ...] = ()
    per_bar_part: str = ""      # name of a part that only has a per-bar test (the fast engine refuses it)

    def __post_init__(self) -> None:
        if self.test is None and self.rule is None:
            raise ValueError(f"screen {self.name!r} needs a rule or a test")

    def __call__(self, data: bt.AbstractDataBase) -> bool:
        if self.rule is not None:
            return bool(self.rule(BarValues(data)))
        return bool(self.test(data))

    @property
    def vectorisable(self) -> bool:
        """True when the whole expression has rules (the fast engine can evaluate it)."""
        return self.rule is not None and self.test is None

    def evaluate(self, values: Values) -> Any:
        """The rule's result through ``values`` (a bool per bar, a mask on a panel)."""
        if self.rule is not None:
            return self.rule(values)
        if isinstance(values, BarValues):
            return bool(self.test(values.data))
        part = self.per_bar_part or self.name
        raise PanelUnsupported(f"screen {part!r} is a per-bar Python test; the fast engine evaluates "
                               "only screens built from strategies.screens rules (above, below, trend_up, "
                               "volume_surge, ...) and their &, |, ~ combinations; use --engine event")

    def on_panel(self, values: Values) -> Any:
        """The screen on a whole panel (``research.panel.PanelValues``): a day × code bool mask."""
        return self.evaluate(values)

    def _combine(self, other: "Screen", name: str, how: str) -> "Screen":
        def rule(v: Values, a: Screen = self, b: Screen = other) -> Any:
            return getattr(v, how)(a.evaluate(v), b.evaluate(v))
        test = None
        if not (self.vectorisable and other.vectorisable):
            test = (lambda d: self(d) and other(d)) if how == "all" else (lambda d: self(d) or other(d))
        part = next((s.per_bar_part or s.name for s in (self, other) if not s.vectorisable), "")
        return Screen(name, test, self.indicators + other.indicators, rule if test is None else None,
                      self.fields + other.fields, part)

    def __and__(self, other: "Screen") -> "Screen":
        return self._combine(other, f"({self.name} & {other.name})", "all")

    def __or__(self, other: "Screen") -> "Screen":
        return self._combine(other, f"({self.name} | {other.name})", "any")

    def __invert__(self) -> "Screen":
        if not self.vectorisable:
            return Screen(f"~{self.name}", lambda d: not self(d), self.indicators, None, self.fields,
                          self.per_bar_part or self.name)
        return Screen(f"~{self.name}", None, self.indicators, lambda v: v.negate(self.evaluate(v)), self.fields)


def rule_screen(name: str, rule: Rule, reads: Iterable[Value]) -> Screen:
    """A screen from a rule and the values it reads (their indicator specs are derived)."""
    reads = tuple(reads)
    return Screen(name, None, _specs_of(*reads), rule, _fields_of(*reads))


def _value(v: Values, x: Value) -> Any:
    return v(x) if isinstance(x, str) else float(x)


def _compare(a: Value, b: Value, op: Callable[[Any, Any], Any], name: str) -> Screen:
    def rule(v: Values) -> Any:
        x, y = _value(v, a), _value(v, b)
        return v.all(x == x, y == y, op(x, y))
    return rule_screen(name, rule, (a, b))


def above(a: Value, b: Value) -> Screen:
    """``a`` > ``b``; each a column name (``close``, ``sma_200``...) or a number."""
    return _compare(a, b, lambda x, y: x > y, f"{a}>{b}")


def below(a: Value, b: Value) -> Screen:
    return _compare(a, b, lambda x, y: x < y, f"{a}<{b}")


def crosses_above(a: str, b: Value) -> Screen:
    """``a`` above ``b`` on this bar and not above it on the code's previous bar (a fresh cross)."""
    def rule(v: Values) -> Any:
        x, y = v(a), _value(v, b)
        px = v.prev(a)
        py = v.prev(b) if isinstance(b, str) else float(b)
        return v.all(x == x, y == y, px == px, py == py, x > y, px <= py)
    s = rule_screen(f"{a} crosses above {b}", rule, (a, b))
    prev = (a + PREV,) + ((b + PREV,) if isinstance(b, str) else ())
    return Screen(s.name, None, s.indicators, s.rule, s.fields + prev)


def crosses_below(a: str, b: Value) -> Screen:
    """``a`` below ``b`` on this bar and not below it on the code's previous bar."""
    def rule(v: Values) -> Any:
        x, y = v(a), _value(v, b)
        px = v.prev(a)
        py = v.prev(b) if isinstance(b, str) else float(b)
        return v.all(x == x, y == y, px == px, py == py, x < y, px >= py)
    s = rule_screen(f"{a} crosses below {b}", rule, (a, b))
    prev = (a + PREV,) + ((b + PREV,) if isinstance(b, str) else ())
    return Screen(s.name, None, s.indicators, s.rule, s.fields + prev)


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

    def rule(v: Values) -> Any:
        atr, close = v(col), v("close")
        return v.all(atr == atr, close > 0, v.div(atr, close) * 100 < pct)
    return rule_screen(f"atr{period}<{pct}%", rule, (col, "close"))


def volume_surge(multiple: float = 2.0, period: int = 20) -> Screen:
    """Today's volume at least ``multiple`` × its ``period``-bar average."""
    col = f"volsma_{period}"

    def rule(v: Values) -> Any:
        avg = v(col)
        return v.all(avg == avg, avg > 0, v("volume") >= multiple * avg)
    return rule_screen(f"vol>{multiple}x{col}", rule, (col, "volume"))


def near_high(fraction: float = 0.95, period: int = 252) -> Screen:
    """Close within ``1 − fraction`` of the ``period``-bar high (252 bars: the 52-week high)."""
    col = f"high_{period}"

    def rule(v: Values) -> Any:
        hi = v(col)
        return v.all(hi == hi, v("close") >= fraction * hi)
    return rule_screen(f"close>={fraction}x{col}", rule, (col, "close"))


def min_turnover(krw: float, period: int = 20) -> Screen:
    """Average daily traded value (close × average volume) of at least ``krw``: liquidity filter."""
    col = f"volsma_{period}"

    def rule(v: Values) -> Any:
        avg = v(col)
        return v.all(avg == avg, v("close") * avg >= krw)
    return rule_screen(f"turnover>={krw:,.0f}", rule, (col, "close"))


SCREENS: dict[str, Callable[..., Screen]] = {
    f.__name__: f for f in (above, below, crosses_above, crosses_below, rsi_above, rsi_below, macd_bullish, trend_up, bollinger_breakout,
                            bollinger_oversold, atr_below_pct, volume_surge, near_high, min_turnover)
}
"""The built-in screens by name (the vocabulary of ``parse_screen``)."""


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

    @property
    def fields(self) -> tuple[str, ...]:
        """Every column the screen and the score read."""
        names = list(self.screen.fields if self.screen else ())
        if isinstance(self.rank_by, str):
            names.append(self.rank_by)
        return tuple(dict.fromkeys(names))

    def score(self, data: bt.AbstractDataBase) -> float:
        return _read(data, self.rank_by) if isinstance(self.rank_by, str) else float(self.rank_by(data))

    def run(self, items: Iterable[tuple[str, bt.AbstractDataBase]]) -> list[tuple[str, float]]:
        """Ranked ``(code, score)`` of the codes passing the screen (NaN scores drop out).

        Ties rank by code, ascending; the fast engine orders the same way.
        """
        ranked = []
        for code, data in items:
            if self.screen is not None and not self.screen(data):
                continue
            s = self.score(data)
            if not math.isnan(s):
                ranked.append((code, s))
        ranked.sort(key=lambda cs: (-cs[1], cs[0]) if self.descending else (cs[1], cs[0]))
        return ranked[: self.top_n] if self.top_n else ranked

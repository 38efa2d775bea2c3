"""The panel: every code of a source as aligned day × code arrays.

Why a panel: the event-driven path walks one bar of one code at a time through backtrader's line
machinery; research wants "this rule on the whole market" as a handful of array operations. A
``Panel`` holds the bars of all codes on one shared row per session:

* ``dates`` — the sessions on which at least one code has a bar, ascending (``datetime64[D]``);
* ``codes`` and their ``markets`` (tick table, band and tax per code), in source order;
* ``open``/``high``/``low``/``close``/``volume`` — int64 KRW and shares, 0 where a code has no bar;
* ``has_bar`` — False on a halt, before a listing and after a delisting;
* ``fields`` — further float64 day × code columns: indicator columns (``sma_20``, ``rsi_14``...),
  computed over each code's *own* bars exactly as the backtrader path does (``research.indicators``),
  and NaN where the code has no bar.

**Extension point (fields).** ``Panel.field(name)`` resolves a name in this order: the price
columns, the fields already present, then each registered *field provider* in turn
(``register_field_provider``). The indicator provider is built in; point-in-time fundamentals
(PER, PBR, ROE, market cap by the date each figure became public) plug in the same way: a provider
that answers for ``per`` returns a day × code float array, and every screen that reads ``per``
works on the panel. Nothing else in ``research`` needs to change.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from configs.errors import InputError
from market.ticks import Market
from strategies.screens import PREV

log = logging.getLogger(__name__)

PRICE_FIELDS = ("open", "high", "low", "close", "volume")
MARKET_CODES: tuple[Market, ...] = (Market.KOSPI, Market.KOSDAQ, Market.KONEX, Market.ETF)
"""Integer id of each market inside the kernel (index into this tuple)."""


class PanelError(InputError):
    """A panel cannot serve a request (unknown field, empty window...); the message names it."""


FieldProvider = Callable[["Panel", str], "dict[str, np.ndarray] | None"]
"""``provider(panel, name)`` returns new fields (name -> day × code float64, NaN without a bar) that
include ``name``, or None when it does not know the name."""

_PROVIDERS: list[tuple[str, FieldProvider]] = []


def register_field_provider(label: str, provider: FieldProvider) -> None:
    """Add a source of fields (fundamentals, flags...) that ``Panel.field`` consults in order."""
    _PROVIDERS[:] = [(k, p) for k, p in _PROVIDERS if k != label] + [(label, provider)]


def unregister_field_provider(label: str) -> None:
    _PROVIDERS[:] = [(k, p) for k, p in _PROVIDERS if k != label]


def field_providers() -> list[str]:
    return [k for k, _ in _PROVIDERS]


@dataclass
class Panel:
    """Aligned day × code bars of one source (see the module docstring)."""

    dates: np.ndarray
    codes: list[str]
    markets: list[Market]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    has_bar: np.ndarray
    label: str = ""
    synthetic: bool = False
    source_key: str = ""
    names: dict[str, str] = field(default_factory=dict)
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    _float: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.dates = np.asarray(self.dates, dtype="datetime64[D]")
        t, n = len(self.dates), len(self.codes)
        for name in (*PRICE_FIELDS, "has_bar"):
            arr = getattr(self, name)
            if arr.shape != (t, n):
                raise PanelError(f"panel field {name!r} has shape {arr.shape}, expected ({t}, {n}) days x codes")
        if len(self.markets) != n:
            raise PanelError(f"panel has {n} codes but {len(self.markets)} markets")

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dates), len(self.codes)

    @property
    def bars(self) -> int:
        """Number of real bars (cells with ``has_bar``)."""
        return int(self.has_bar.sum())

    @property
    def market_ids(self) -> np.ndarray:
        return np.array([MARKET_CODES.index(Market(m)) for m in self.markets], dtype=np.int64)

    @property
    def nbytes(self) -> int:
        arrays = [getattr(self, f) for f in (*PRICE_FIELDS, "has_bar")] + list(self.fields.values())
        return int(sum(a.nbytes for a in arrays) + sum(a.nbytes for a in self._float.values()))

    def py_dates(self) -> list[date]:
        return [d.item() for d in self.dates]

    # ------------------------------------------------------------------ values
    def field(self, name: str) -> np.ndarray:
        """A day × code float64 column with NaN where there is no bar (prices, indicators, providers)."""
        if name in PRICE_FIELDS:
            cached = self._float.get(name)
            if cached is None:
                cached = getattr(self, name).astype(np.float64)
                cached[~self.has_bar] = np.nan
                self._float[name] = cached
            return cached
        found = self.fields.get(name)
        if found is not None:
            return found
        if name.endswith(PREV):
            self.fields[name] = prev = self._previous_bar(self.field(name[: -len(PREV)]))
            return prev
        for _label, provider in _PROVIDERS:
            new = provider(self, name)
            if new:
                self.fields.update(new)
                if name in new:
                    return new[name]
        raise PanelError(f"the panel has no field {name!r}: not a price column ({', '.join(PRICE_FIELDS)}), "
                         f"not an indicator column (feeds.indicators forms, e.g. sma_20, rsi_14) and no field "
                         f"provider ({', '.join(field_providers()) or 'none'}) knows it")

    def _previous_bar(self, values: np.ndarray) -> np.ndarray:
        """Each cell's value on the code's previous bar (backtrader's ``line[-1]``), NaN before it."""
        from research.indicators import previous_bar

        return previous_bar(np.ascontiguousarray(values), np.ascontiguousarray(self.has_bar))

    def ensure(self, names: Iterable[str]) -> None:
        """Compute every field in ``names`` now (before the panel is shared with workers)."""
        for n in names:
            self.field(n)

    def values(self, rows: slice | np.ndarray | None = None) -> "PanelValues":
        return PanelValues(self, rows)

    # ------------------------------------------------------------------ subsets
    def select(self, codes: Iterable[str]) -> "Panel":
        """The panel of ``codes`` in that order, keeping only sessions where one of them has a bar."""
        codes = list(codes)
        index = {c: i for i, c in enumerate(self.codes)}
        unknown = [c for c in codes if c not in index]
        if unknown:
            raise PanelError(f"code(s) {', '.join(unknown[:10])} not in the panel ({self.label})")
        cols = np.array([index[c] for c in codes], dtype=np.int64)
        has = self.has_bar[:, cols]
        rows = np.flatnonzero(has.any(axis=1))
        return self._take(rows, cols, codes)

    def window(self, start: date | None, end: date | None) -> "Panel":
        """Sessions inside ``[start, end]`` (both inclusive), all codes."""
        lo = 0 if start is None else int(np.searchsorted(self.dates, np.datetime64(start, "D"), side="left"))
        hi = len(self.dates) if end is None else int(np.searchsorted(self.dates, np.datetime64(end, "D"),
                                                                     side="right"))
        return self._take(np.arange(lo, hi), np.arange(len(self.codes)), list(self.codes))

    def _take(self, rows: np.ndarray, cols: np.ndarray, codes: list[str]) -> "Panel":
        """A sub-panel; whole rows of a contiguous range are views (no copy: sweeps cut windows often)."""
        all_cols = len(cols) == len(self.codes) and bool((cols == np.arange(len(self.codes))).all())
        contiguous = len(rows) == 0 or (int(rows[-1]) - int(rows[0]) + 1 == len(rows) and bool((np.diff(rows) == 1).all()))
        if all_cols and contiguous:
            if len(rows) == len(self.dates):
                return self
            sl = slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)

            def cut(a: np.ndarray) -> np.ndarray:
                return a[sl]
        else:
            def cut(a: np.ndarray) -> np.ndarray:
                return np.ascontiguousarray(a[np.ix_(rows, cols)])
        return replace(self, dates=self.dates[rows], codes=codes, markets=[self.markets[i] for i in cols],
                       open=cut(self.open), high=cut(self.high), low=cut(self.low), close=cut(self.close),
                       volume=cut(self.volume), has_bar=cut(self.has_bar),
                       names={c: self.names[c] for c in codes if c in self.names},
                       fields={k: cut(v) for k, v in self.fields.items()},
                       _float={k: cut(v) for k, v in self._float.items()})

    # ------------------------------------------------------------------ frames
    def frame(self, code: str, columns: Iterable[str] = PRICE_FIELDS) -> pd.DataFrame:
        """One code's bars as the project's bar frame (naive ``datetime`` index, int64 OHLCV)."""
        from feeds.timeframes import bar_index

        i = self.codes.index(code)
        rows = self.has_bar[:, i]
        data = {}
        for c in columns:
            data[c] = getattr(self, c)[rows, i] if c in PRICE_FIELDS else self.field(c)[rows, i]
        return pd.DataFrame(data, index=bar_index(self.dates[rows].astype("datetime64[ns]")))

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame], markets: dict[str, Market | str],
                    label: str = "", synthetic: bool = False, source_key: str = "",
                    names: dict[str, str] | None = None) -> "Panel":
        """A panel from per-code daily bar frames (the form ``feeds.history`` loads)."""
        codes = list(frames)
        if not codes:
            raise PanelError("no bars to build a panel from")
        day_sets = [np.asarray(f.index.values, dtype="datetime64[D]") for f in frames.values()]
        for code, days, f in zip(codes, day_sets, frames.values()):
            if len(days) != len(f) or (len(days) > 1 and not (np.diff(days.astype(np.int64)) > 0).all()):
                raise PanelError(f"code {code}: the panel needs daily bars, one per session, ascending "
                                 "(intraday bars run on the event engine only)")
        dates = np.unique(np.concatenate(day_sets)) if day_sets else np.array([], dtype="datetime64[D]")
        t, n = len(dates), len(codes)
        arrays = {name: np.zeros((t, n), dtype=np.int64) for name in PRICE_FIELDS}
        has = np.zeros((t, n), dtype=bool)
        for i, (days, f) in enumerate(zip(day_sets, frames.values())):
            rows = np.searchsorted(dates, days)
            has[rows, i] = True
            for name in PRICE_FIELDS:
                arrays[name][rows, i] = f[name].to_numpy(dtype=np.int64)
        return cls(dates=dates, codes=codes, markets=[Market(markets[c]) for c in codes], has_bar=has,
                   label=label, synthetic=synthetic, source_key=source_key, names=dict(names or {}), **arrays)


class PanelValues:
    """A panel as rule values for ``strategies.screens`` (the vectorised engine).

    ``rows`` restricts every column to some sessions (e.g. only rebalance days), which is all a
    screen on those days needs.
    """

    __slots__ = ("panel", "rows")

    def __init__(self, panel: Panel, rows: slice | np.ndarray | None = None) -> None:
        self.panel = panel
        self.rows = rows

    def __call__(self, name: str) -> np.ndarray:
        arr = self.panel.field(name)
        return arr if self.rows is None else arr[self.rows]

    @staticmethod
    def all(*conditions: Any) -> np.ndarray:
        return functools.reduce(np.logical_and, conditions)

    @staticmethod
    def any(*conditions: Any) -> np.ndarray:
        return functools.reduce(np.logical_or, conditions)

    @staticmethod
    def negate(condition: Any) -> np.ndarray:
        return ~np.asarray(condition, dtype=bool)

    @staticmethod
    def div(a: Any, b: Any) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b != 0, np.divide(a, b), np.nan)

    def prev(self, name: str) -> np.ndarray:
        return self(name + PREV)


def _indicator_provider(panel: Panel, name: str) -> dict[str, np.ndarray] | None:
    from feeds.indicators import parse_indicator_spec
    from research.indicators import panel_indicator
    from strategies.screens import spec_of_column

    try:
        spec = parse_indicator_spec(spec_of_column(name))
    except ValueError:
        return None
    if name not in spec.columns:
        return None
    return panel_indicator(panel, spec)


register_field_provider("indicators", _indicator_provider)

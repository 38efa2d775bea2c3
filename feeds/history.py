"""The one entry point the runner uses for historical bars, and the backtrader feed built from them.

``load_market_data(cfg.data)`` turns a ``DataConfig`` into ``MarketData``: per-code frames with
indicator columns, each code's market (for ticks, band and taxes), display names, and a label
saying where the numbers came from (``SYNTHETIC ...`` for the demo, so a demo result is never
mistaken for a real one). Sources: ``demo`` (``feeds.demo``), ``csv`` (a CODE.csv folder,
``feeds.csv_folder``) and ``cache`` (``feeds.cache``).

Order of work per code: load the full history -> compute indicators (``feeds.indicators``) ->
slice to ``cfg.start``..``cfg.end``. Indicators come before slicing so a 200-day SMA is already
defined on the first backtest day when earlier bars exist.

Frames: index a naive ``DatetimeIndex`` named ``datetime`` in KST wall time (backtrader has no
timezone handling worth trusting, and every KRX time is KST anyway); int64 open, high, low,
close, volume; float64 indicator columns.

``make_feed(code, df)`` wraps a frame as a backtrader ``PandasData`` whose extra lines are the
frame's indicator columns, so strategies read ``data.sma_20[0]`` without recomputing anything.
"""

from __future__ import annotations

import keyword
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import backtrader as bt
import numpy as np
import pandas as pd
from backtrader.utils import date2num

from configs.errors import InputError
from configs.schema import DataConfig
from feeds.csv_folder import csv_paths, read_csv_file
from feeds.indicators import add_indicators, indicator_columns, parse_indicator_specs
from feeds.timeframes import backtrader_timeframe, infer_timeframe, slice_bars
from market.ticks import Market

log = logging.getLogger(__name__)

OHLCV = ("open", "high", "low", "close", "volume")
BASE_LINES = (*OHLCV, "openinterest", "datetime")

ProgressFn = Callable[[str, int, int], None]


class MarketDataError(InputError):
    """Bars cannot be provided as configured (unknown codes, wrong timeframe, empty window...)."""


@dataclass
class MarketData:
    """Everything a run needs to know about its bars.

    ``bars``: code -> frame (see module docstring), sliced to the configured window.
    ``markets``/``names``: per code. ``label``: human description of the source (starts with
    "SYNTHETIC" for demo data). ``indicators``: the indicator column names present in every frame.
    ``dropped``: codes left out because they have no bar in the window (only when the universe
    was not given explicitly), with the reason. ``clamps``: high/low clamps per code (CSV).
    """

    bars: dict[str, pd.DataFrame]
    markets: dict[str, Market]
    names: dict[str, str]
    label: str
    synthetic: bool
    timeframe: str
    source: str
    indicators: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    clamps: dict[str, int] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return list(self.bars)

    def feeds(self) -> list[bt.feeds.PandasData]:
        """One backtrader feed per code, in ``codes`` order."""
        return [make_feed(code, df, self.timeframe) for code, df in self.bars.items()]


# --- markets file ---------------------------------------------------------------------------

def market_from_text(text: str) -> Market:
    """Map a market name as found in listings to ``Market``: 'KOSDAQ GLOBAL' and other KOSDAQ
    segments are KOSDAQ (same tick table, band and tax). Raises ValueError for anything else."""
    t = " ".join(str(text).strip().upper().split())
    if t.startswith("KOSDAQ"):
        return Market.KOSDAQ
    if t in ("KOSPI", "KONEX", "ETF"):
        return Market(t)
    raise InputError(f"unknown market {text!r}; allowed: KOSPI, KOSDAQ (incl. 'KOSDAQ GLOBAL'), KONEX, ETF")


def read_markets_file(path: Path | str) -> tuple[dict[str, Market], dict[str, str]]:
    """(code -> Market, code -> name) from a CSV with columns ``code,market[,name,...]`` (the
    layout of ``shared/data/krx/tickers.csv``). Codes are read as text so leading zeros survive."""
    path = Path(path)
    if not path.is_file():
        raise MarketDataError(f"{path}: markets file not found (expected CSV with columns code,market)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in ("code", "market") if c not in df.columns]
    if missing:
        raise MarketDataError(f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                              "allowed: a header with at least code,market (name optional)")
    markets: dict[str, Market] = {}
    names: dict[str, str] = {}
    for i, row in enumerate(df.itertuples(index=False), start=2):
        code = str(row.code).strip()
        if not code:
            continue
        try:
            markets[code] = market_from_text(row.market)
        except ValueError as exc:
            raise MarketDataError(f"{path}, line {i}, field 'market': {exc}") from None
        name = str(getattr(row, "name", "") or "").strip()
        if name:
            names[code] = name
    return markets, names


# --- sources ----------------------------------------------------------------------------------

@dataclass
class _Source:
    """A source resolved to its codes, a per-code loader of the FULL history, and metadata."""

    codes: list[str]
    load: Callable[[str], pd.DataFrame]
    markets: dict[str, Market]
    names: dict[str, str]
    label: str
    synthetic: bool
    clamps: dict[str, int] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


def _select(available: list[str], universe: list[str] | None, where: str) -> list[str]:
    if universe is None:
        return list(available)
    known = set(available)
    unknown = [c for c in universe if c not in known]
    if unknown:
        sample = ", ".join(available[:10]) + (" ..." if len(available) > 10 else "")
        raise MarketDataError(f"unknown code(s) {', '.join(unknown)} in data.universe: not in {where}; "
                              f"available ({len(available)}): {sample or 'none'}")
    return list(universe)


def _demo_source(cfg: DataConfig) -> _Source:
    from feeds.demo import generate_demo_market

    if cfg.timeframe != "daily":
        raise MarketDataError(f"data.timeframe {cfg.timeframe!r}: the demo market has daily bars only; "
                              "allowed with source 'demo': daily")
    demo = generate_demo_market(cfg.demo)
    codes = _universe(cfg, demo.codes, f"the demo market (codes {demo.codes[0]}..{demo.codes[-1]})")
    return _Source(codes, demo.bars.__getitem__, dict(demo.markets), dict(demo.names), demo.label, True)


def _markets_for(cfg: DataConfig) -> tuple[dict[str, Market], dict[str, str]]:
    """Markets and names: the stock master of ``data.cache_url`` when it has one (``run.py data master``),
    overridden code by code by ``data.markets_file`` when given."""
    from feeds.master import master_if_present

    markets: dict[str, Market] = {}
    names: dict[str, str] = {}
    master = master_if_present(cfg.cache_url)
    if master is not None:
        try:
            markets, names = master.markets(), master.names()
        finally:
            master.close()
    if cfg.markets_file is not None:
        file_markets, file_names = read_markets_file(cfg.markets_file)
        markets.update(file_markets)
        names.update(file_names)
    return markets, names


def _universe(cfg: DataConfig, available: list[str], where: str) -> list[str]:
    """The codes of a run: ``data.universe`` (every one must be available), or the codes a
    ``data.universe`` rule selects (those without bars here are left out, with a log line)."""
    if cfg.universe_rule is None:
        return _select(available, cfg.universe, where)
    from feeds.master import master_if_present
    from feeds.universe import resolve_universe

    master = master_if_present(cfg.cache_url)
    try:
        chosen = resolve_universe(cfg.universe_rule, master, cfg.cache_url, cfg.start, cfg.end)
    finally:
        if master is not None:
            master.close()
    have = set(available)
    missing = [c for c in chosen if c not in have]
    if missing:
        log.warning("universe rule: %d selected code(s) have no bars in %s: %s", len(missing), where,
                    ", ".join(missing[:20]))
    codes = [c for c in chosen if c in have]
    if not codes:
        raise MarketDataError(f"data.universe rule selects {len(chosen)} code(s), none with bars in {where}")
    return codes


def _csv_source(cfg: DataConfig) -> _Source:
    assert cfg.path is not None  # the schema requires it for source 'csv'
    if cfg.universe_rule is not None:
        everything = csv_paths(cfg.path, None)
        paths = {c: everything[c] for c in _universe(cfg, list(everything), f"CSV folder {cfg.path}")}
    else:
        paths = csv_paths(cfg.path, cfg.universe)          # raises naming any missing code's file
    clamps: dict[str, int] = {}

    def load(code: str) -> pd.DataFrame:
        frame, file_clamps, timeframe = read_csv_file(paths[code], code, cfg.clamp_adjusted_high)
        if timeframe != cfg.timeframe:
            raise MarketDataError(f"{paths[code]}: holds {timeframe} bars but data.timeframe is "
                                  f"{cfg.timeframe!r}; set data.timeframe: {timeframe}")
        if file_clamps:
            clamps[code] = len(file_clamps)
        return frame

    markets, names = _markets_for(cfg)
    kind = "back-adjusted" if cfg.adjusted else "unadjusted"
    label = f"CSV folder {cfg.path} ({cfg.timeframe}, {kind} prices)"
    return _Source(list(paths), load, markets, names, label, False, clamps)


def _cache_source(cfg: DataConfig) -> _Source:
    from sqlalchemy.engine import make_url

    from feeds.cache import BarCache

    cache = BarCache(cfg.cache_url)
    shown = make_url(cfg.cache_url).render_as_string(hide_password=True)
    try:
        available = cache.codes(cfg.timeframe)
        if not available:
            raise MarketDataError(f"bar cache {shown} has no {cfg.timeframe} bars; import some first "
                                  "(run.py data import --csv DIR)")
        codes = _universe(cfg, available, f"bar cache {shown} ({cfg.timeframe})")
        sources = cache.sources(cfg.timeframe)
    except Exception:
        cache.close()
        raise
    labels = sorted({sources[c][0] for c in codes if c in sources})
    adjusted = {sources[c][1] for c in codes if c in sources}
    kind = ("back-adjusted" if adjusted == {True} else "unadjusted" if adjusted == {False}
            else "mixed adjusted/unadjusted")
    label = f"bar cache {shown} ({cfg.timeframe}, {kind} prices; from {', '.join(labels) or 'unknown'})"
    markets, names = _markets_for(cfg)
    return _Source(codes, lambda code: cache.read(code, cfg.timeframe), markets, names, label, False,
                   close=cache.close)


_SOURCES: dict[str, Callable[[DataConfig], _Source]] = {
    "demo": _demo_source, "csv": _csv_source, "cache": _cache_source,
}

BarSource = _Source
"""A source resolved to its codes (in load order), a loader of each code's full history, markets,
names and a label; ``close()`` releases it. ``research.store`` builds its panels from these."""


def open_source(cfg: DataConfig) -> BarSource:
    """The source ``cfg`` names, resolved (codes selected by ``cfg.universe``, nothing loaded yet)."""
    return _SOURCES[cfg.source](cfg)


def load_market_data(cfg: DataConfig, extra_indicators: Iterable[str] = (),
                     progress: ProgressFn | None = None) -> MarketData:
    """Load the bars ``cfg`` describes, with ``cfg.indicators`` + ``extra_indicators`` computed.

    ``progress(code, i, n)`` is called after each code is ready (1-based ``i``). Raises
    ``MarketDataError`` / ``CSVDataError`` (both ValueError) with a message naming the problem;
    nothing is returned half-loaded.

    A code with no bar inside ``cfg.start``..``cfg.end`` is an error when ``cfg.universe`` names
    it, and is dropped (listed in ``MarketData.dropped``) when the universe is "everything".
    """
    from feeds.fundamentals import FIELDS as FUNDAMENTAL_FIELDS

    wanted = list(dict.fromkeys([*cfg.indicators, *extra_indicators]))
    fundamental = [w for w in wanted if w in FUNDAMENTAL_FIELDS]
    specs = parse_indicator_specs([w for w in wanted if w not in FUNDAMENTAL_FIELDS])
    source = _SOURCES[cfg.source](cfg)
    try:
        bars: dict[str, pd.DataFrame] = {}
        dropped: dict[str, str] = {}
        n = len(source.codes)
        for i, code in enumerate(source.codes, 1):
            full = source.load(code)
            frame = add_indicators(full, specs) if specs else full
            window = slice_bars(frame, cfg.start, cfg.end)
            if window.empty:
                span = (f"{full.index[0]:%Y-%m-%d}..{full.index[-1]:%Y-%m-%d}" if len(full) else "no bars")
                reason = f"no bars in {cfg.start or 'start'}..{cfg.end or 'end'} (has {span})"
                if cfg.universe is not None:
                    raise MarketDataError(f"code {code}: {reason}; widen data.start/data.end or drop it "
                                          "from data.universe")
                dropped[code] = reason
            else:
                bars[code] = window
            if progress is not None:
                progress(code, i, n)
    finally:
        source.close()
    if not bars:
        raise MarketDataError(f"no code has bars in {cfg.start or 'start'}..{cfg.end or 'end'} "
                              f"({source.label})")
    if fundamental:
        # point in time: each bar sees only the figures published by its day (feeds/fundamentals.py)
        from feeds.fundamentals import add_fundamentals

        bars = add_fundamentals(bars, cfg.cache_url, fundamental)
    if dropped:
        log.warning("dropped %d code(s) without bars in the window: %s", len(dropped), ", ".join(dropped))
    markets = {c: source.markets.get(c, cfg.default_market) for c in bars}
    names = {c: source.names.get(c, c) for c in bars}
    return MarketData(bars=bars, markets=markets, names=names, label=source.label,
                      synthetic=source.synthetic, timeframe=cfg.timeframe, source=cfg.source,
                      indicators=indicator_columns(specs) + fundamental, dropped=dropped,
                      clamps={c: k for c, k in source.clamps.items() if c in bars})


# --- backtrader feed ----------------------------------------------------------------------------

class KRXPandasData(bt.feeds.PandasData):
    """``PandasData`` that reads from numpy arrays prepared once in ``start``.

    Stock ``PandasData._load`` calls ``DataFrame.iloc[row, col]`` for every field of every bar
    (~10 us each), which dominates a 300-code backtest; here each bar costs a few array reads.
    Behaviour (column mapping, params, line values) is otherwise the stock one.
    """

    def start(self) -> None:
        super().start()
        df = self.p.dataname
        self._fast_lines = [
            (getattr(self.lines, name), df.iloc[:, col].to_numpy(dtype=np.float64))
            for name, col in self._colmapping.items() if name != "datetime" and col is not None]
        self._fast_dt = [date2num(ts) for ts in pd.DatetimeIndex(df.index).to_pydatetime()]

    def _load(self) -> bool:
        self._idx += 1
        i = self._idx
        if i >= len(self._fast_dt):
            return False
        for line, values in self._fast_lines:
            line[0] = values[i]
        self.lines.datetime[0] = self._fast_dt[i]
        return True


_FEED_CLASSES: dict[tuple[str, ...], type[KRXPandasData]] = {}
_RESERVED = set(dir(KRXPandasData)) | set(KRXPandasData.params._getkeys())


def _check_line_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) \
            or name.startswith("_") or name in _RESERVED:
        raise ValueError(f"column {name!r} cannot be a backtrader line; allowed: lower-case identifiers "
                         "that are not backtrader attribute or parameter names (e.g. sma_20)")
    return name


def feed_class(extra_lines: Iterable[str]) -> type[KRXPandasData]:
    """The ``KRXPandasData`` subclass with these extra lines (built once per tuple of names).

    Each extra line's parameter names its own column, so backtrader maps it by name.
    """
    key = tuple(_check_line_name(c) for c in extra_lines)
    cls = _FEED_CLASSES.get(key)
    if cls is None:
        # A leading underscore keeps backtrader's metaclass from registering the class globally.
        cls = type(f"_KRXPandasData{len(_FEED_CLASSES)}", (KRXPandasData,),
                   {"lines": key, "params": tuple((c, c) for c in key)})
        _FEED_CLASSES[key] = cls
    return cls


def extra_columns(df: pd.DataFrame) -> list[str]:
    """Columns of ``df`` that become extra feed lines: everything but OHLCV and openinterest."""
    return [c for c in df.columns if c not in BASE_LINES]


def make_feed(code: str, df: pd.DataFrame, timeframe: str | None = None) -> KRXPandasData:
    """A backtrader feed for one code: OHLCV plus one line per indicator column.

    ``_name`` is ``code`` (``cerebro.getdatabyname(code)`` works). ``timeframe`` ('daily',
    '5min', '1min') defaults to the one inferred from the index; it sets backtrader's
    TimeFrame/compression (Days/1, Minutes/5, Minutes/1) so resampling and analyzers agree.
    """
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise ValueError(f"{code}: bar frame lacks column(s) {', '.join(missing)}; "
                         f"required: {', '.join(OHLCV)}")
    tf = timeframe or infer_timeframe(pd.DatetimeIndex(df.index))
    bt_timeframe, compression = backtrader_timeframe(tf)
    cls = feed_class(extra_columns(df))
    feed = cls(dataname=df, name=code, timeframe=bt_timeframe, compression=compression)
    feed._name = code
    return feed


def iter_feeds(data: MarketData) -> Iterator[tuple[str, KRXPandasData]]:
    """(code, feed) pairs, for ``cerebro.adddata(feed, name=code)`` loops."""
    for code, df in data.bars.items():
        yield code, make_feed(code, df, data.timeframe)

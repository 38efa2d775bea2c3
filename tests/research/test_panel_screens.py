"""One screen definition, two engines: the panel mask equals the per-bar answer on every cell.

Each built-in screen (and ``&``, ``|``, ``~`` of them) is evaluated per bar exactly as backtrader
feeds it — through ``screen(data)`` with the bar's line values — and on the whole panel at once;
they must agree on every code and session, including warm-up (NaN) and halted (no bar) cells.
Custom per-bar screens and ranking functions are refused by the fast engine with their name.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import SHARED
from configs.schema import DemoDataConfig
from feeds.csv_folder import csv_paths, read_csv_file
from feeds.demo import generate_demo_market
from research.panel import Panel
from research.rules import FastEngineUnsupported, _screen_mask
from strategies import screens as S


class Line:
    def __init__(self, now: float, before: float) -> None:
        self.now, self.before = now, before

    def __getitem__(self, ago: int) -> float:
        return {0: self.now, -1: self.before}[ago]


class Bar:
    """What a screen reads from a backtrader feed: ``data.lines.<name>[0]`` / ``[-1]``, ``len(data)``."""

    def __init__(self, code: str, values: dict[str, float], before: dict[str, float] | None = None,
                 length: int = 2) -> None:
        self._name = code
        before = before or {}
        self.lines = SimpleNamespace(**{k: Line(v, before.get(k, float("nan"))) for k, v in values.items()})
        self.length = length
        for k in ("close", "volume"):
            setattr(self, k, [values[k]])

    def __len__(self) -> int:
        return self.length


SCREENS = [
    S.trend_up(20, 60), S.trend_up(5, 20, kind="ema"), S.above("roc_60", 0.0), S.below("close", "sma_20"),
    S.rsi_above(70), S.rsi_below(30), ~S.rsi_above(80), S.macd_bullish(), S.bollinger_breakout(),
    S.bollinger_oversold(), S.atr_below_pct(3.0), S.volume_surge(1.5), S.near_high(0.9, 60),
    S.min_turnover(1e9), S.above(5000, "close"),
    S.trend_up(20, 60) & S.volume_surge(1.5) & ~S.rsi_above(80),
    S.crosses_above("sma_10", "sma_30"), S.crosses_below("close", "sma_20"), S.crosses_above("rsi_14", 50.0),
    (S.rsi_below(30) | S.bollinger_oversold()) & S.min_turnover(5e8),
]


def panel_of(frames, markets) -> Panel:
    panel = Panel.from_frames(frames, markets)
    specs = sorted({s for sc in SCREENS for s in sc.indicators})
    from research.indicators import add_panel_indicators
    add_panel_indicators(panel, specs)
    return panel


def check(panel: Panel, rows: np.ndarray) -> int:
    names = sorted({f for sc in SCREENS for f in sc.fields if not f.endswith(S.PREV)} | {"close", "volume"})
    cells = 0
    for screen in SCREENS:
        mask = _screen_mask(screen, panel, rows)
        for r_i, r in enumerate(rows):
            for c, code in enumerate(panel.codes):
                if not panel.has_bar[r, c]:
                    continue
                prev_rows = np.flatnonzero(panel.has_bar[:r, c])
                before = {n: float(panel.field(n)[prev_rows[-1], c]) for n in names} if len(prev_rows) else {}
                bar = Bar(code, {n: float(panel.field(n)[r, c]) for n in names}, before, 1 + len(prev_rows))
                assert bool(mask[r_i, c]) == screen(bar), (screen.name, code, panel.dates[r])
                cells += 1
    return cells


def test_demo_panel_masks_equal_per_bar_answers():
    demo = generate_demo_market(DemoDataConfig(codes=15, start=date(2022, 1, 3), end=date(2023, 3, 31), seed=2))
    panel = panel_of(demo.bars, demo.markets)
    rows = np.arange(0, panel.shape[0], 7)                         # warm-up rows included
    assert check(panel, rows) > 10_000


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/krx not present")
def test_real_panel_masks_equal_per_bar_answers():
    frames = {c: read_csv_file(p, c, True)[0] for c, p in csv_paths(SHARED / "daily").items()}
    panel = panel_of(frames, {c: "KOSPI" for c in frames})
    rows = np.arange(0, panel.shape[0], 29)
    assert check(panel, rows) > 20_000


def test_per_bar_only_screens_are_refused_by_name():
    demo = generate_demo_market(DemoDataConfig(codes=3, start=date(2023, 1, 2), end=date(2023, 2, 28)))
    panel = Panel.from_frames(demo.bars, demo.markets)
    custom = S.Screen("my_custom_rule", lambda d: d.close[0] > 1000)
    assert custom(Bar("x", {"close": 2000.0, "volume": 1.0}))          # still works per bar
    for screen in (custom, S.above("close", 1000.0) & custom, ~custom | S.rsi_below(30)):
        with pytest.raises(FastEngineUnsupported, match="my_custom_rule.*per-bar Python test"):
            _screen_mask(screen, panel, None)

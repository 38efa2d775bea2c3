"""The panel store: a source as day × code arrays, cached in one Parquet file per source and range."""

from __future__ import annotations

import os
import time
from datetime import date

import numpy as np
import pytest

from configs.schema import DataConfig, DemoDataConfig
from feeds.demo import generate_demo_market
from research.panel import PRICE_FIELDS, Panel, PanelError, register_field_provider, unregister_field_provider
from research.store import load_panel, read_panel, write_panel

DEMO = DemoDataConfig(codes=25, start=date(2022, 1, 3), end=date(2023, 12, 28), seed=7)


def same_bars(panel: Panel, frames: dict) -> None:
    assert list(frames) == panel.codes
    for code, frame in frames.items():
        got = panel.frame(code)
        assert got.index.equals(frame.index), code
        for f in PRICE_FIELDS:
            assert np.array_equal(got[f].to_numpy(), frame[f].to_numpy()), (code, f)


def test_demo_panel_holds_exactly_the_demo_bars(tmp_path):
    market = generate_demo_market(DEMO)
    panel, load = load_panel(DataConfig(source="demo", demo=DEMO), tmp_path)
    assert not load.from_cache and load.path.is_file()
    same_bars(panel, market.bars)
    assert panel.synthetic and panel.label == market.label
    assert [m for m in panel.markets] == [market.markets[c] for c in panel.codes]
    halted = market.halts[0]
    i = panel.codes.index(halted.code)
    day = np.datetime64(halted.first_missing, "D")
    assert not panel.has_bar[np.searchsorted(panel.dates, day), i] and panel.close[
        np.searchsorted(panel.dates, day), i] == 0


def test_second_load_comes_from_the_parquet_cache(tmp_path):
    data = DataConfig(source="demo", demo=DEMO)
    first, _ = load_panel(data, tmp_path)
    t = time.perf_counter()
    second, load = load_panel(data, tmp_path)
    assert load.from_cache and time.perf_counter() - t < 5
    for f in (*PRICE_FIELDS, "has_bar"):
        assert np.array_equal(getattr(first, f), getattr(second, f)), f
    assert second.codes == first.codes and second.names == first.names
    other, load = load_panel(data.model_copy(update={"demo": DEMO.model_copy(update={"seed": 8})}), tmp_path)
    assert not load.from_cache and not np.array_equal(other.close, first.close)


def test_csv_panel_rebuilds_when_a_file_changes_and_keeps_universe_order(tmp_path):
    market = generate_demo_market(DEMO)
    folder = tmp_path / "csv"
    folder.mkdir()
    for code, frame in list(market.bars.items())[:4]:
        frame.rename_axis("date").to_csv(folder / f"{code}.csv", date_format="%Y-%m-%d")
    codes = list(market.bars)[:4]
    data = DataConfig(source="csv", path=folder, universe=[codes[2], codes[0]], adjusted=False)
    panel, load = load_panel(data, tmp_path / "cache")
    assert panel.codes == [codes[2], codes[0]]
    same_bars(panel, {c: market.bars[c] for c in panel.codes})
    assert load_panel(data, tmp_path / "cache")[1].from_cache
    path = folder / f"{codes[0]}.csv"
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:-1]) + "\n")                  # one bar fewer
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    again, load = load_panel(data, tmp_path / "cache")
    assert not load.from_cache and again.has_bar[:, 1].sum() == panel.has_bar[:, 1].sum() - 1


def test_an_unreadable_cache_file_is_rebuilt_not_trusted(tmp_path):
    data = DataConfig(source="demo", demo=DEMO)
    panel, load = load_panel(data, tmp_path)
    load.path.write_bytes(b"not parquet")
    with pytest.raises(PanelError, match="not a readable panel file"):
        read_panel(load.path)
    again, load2 = load_panel(data, tmp_path)
    assert not load2.from_cache and np.array_equal(again.close, panel.close)


def test_windows_selections_and_field_providers(tmp_path):
    panel, _ = load_panel(DataConfig(source="demo", demo=DEMO), "none")
    win = panel.window(date(2023, 1, 1), date(2023, 6, 30))
    assert str(win.dates[0]) >= "2023-01-02" and str(win.dates[-1]) <= "2023-06-30"
    assert win.close.base is not None                              # whole-row windows are views, not copies
    sub = panel.select(panel.codes[3:5])
    assert sub.codes == panel.codes[3:5] and sub.has_bar.any(axis=1).all()
    with pytest.raises(PanelError, match="no field 'per'"):
        panel.field("per")

    def per_provider(p: Panel, name: str):        # how issue 13's point-in-time fundamentals plug in
        return {"per": np.where(p.has_bar, 8.0, np.nan)} if name == "per" else None
    register_field_provider("test-fundamentals", per_provider)
    try:
        assert np.nanmax(panel.field("per")) == 8.0
        from strategies.screens import below
        mask = below("per", 10).on_panel(panel.values())
        assert mask[panel.has_bar].all() and not mask[~panel.has_bar].any()
    finally:
        unregister_field_provider("test-fundamentals")


def test_write_read_round_trip(tmp_path):
    panel, _ = load_panel(DataConfig(source="demo", demo=DEMO), "none")
    path = tmp_path / "p.parquet"
    write_panel(panel, path)
    back = read_panel(path)
    assert back.codes == panel.codes and np.array_equal(back.dates, panel.dates)
    assert all(np.array_equal(getattr(back, f), getattr(panel, f)) for f in (*PRICE_FIELDS, "has_bar"))

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


# ------------------------------------------------------------------------------ never a stale panel

def _master(url: str, markets: dict, day: date, names: dict | None = None, etf: str = "") -> None:
    from brokers.kis.emulator.reference import isin_for
    from brokers.kis.master import MasterRecord
    from feeds.master import StockMaster

    with StockMaster(url) as master:
        master.import_records([MasterRecord(code=c, isin=isin_for(c), name=(names or {}).get(c, c), market=m.value,
                                             group_code="EF" if c == etf else "ST", shares_listed=1_000_000)
                               for c, m in markets.items()], day, "test")


def test_a_changed_input_is_never_served_a_stale_panel(db_url, tmp_path):
    """Every input that decides a panel — the universe rule, the stock master (markets, names, kinds), the
    shares behind a market-cap floor, the bars themselves, the series data.adjusted picks — changes the key;
    an unchanged input is served from the cache. On SQLite and on PostgreSQL (no file stamp to lean on)."""
    from feeds.cache import BarCache
    from feeds.fundamentals import Figure, FundamentalsStore

    market = generate_demo_market(DemoDataConfig(codes=6, start=date(2023, 1, 2), end=date(2023, 6, 30), seed=3))
    codes = market.codes
    kospi = [c for c in codes if market.markets[c].value == "KOSPI"]
    kosdaq = [c for c in codes if market.markets[c].value == "KOSDAQ"]
    with BarCache(db_url) as cache:
        cache.write(market.bars, source="demo", adjusted=False)
    _master(db_url, market.markets, date(2023, 1, 2))
    cache_dir = tmp_path / "panels"

    def load(**data):
        cfg = DataConfig(source="cache", cache_url=db_url, adjusted=False, **data)
        return load_panel(cfg, cache_dir)

    # two rules never share a panel; the same rule is served from the cache
    a, la = load(universe_rule={"market": ["KOSPI"]})
    b, lb = load(universe_rule={"market": ["KOSDAQ"]})
    assert a.codes == kospi and b.codes == kosdaq and not lb.from_cache
    assert load(universe_rule={"market": ["KOSPI"]})[1].from_cache

    # a new master snapshot: one KOSPI code becomes an ETF (excluded, and ETF ticks where kept), another is renamed
    rule = {"market": ["KOSPI"], "exclude": ["etf"]}
    assert load(universe_rule=rule)[0].codes == kospi
    etf, renamed = kospi[0], kospi[1]
    _master(db_url, market.markets, date(2023, 2, 1), names={renamed: "새 이름"}, etf=etf)
    p, lp = load(universe_rule=rule)
    assert not lp.from_cache and p.codes == kospi[1:] and p.names[renamed] == "새 이름"
    p, lp = load(universe=kospi)
    assert p.markets[0].value == "ETF" and p.names[renamed] == "새 이름"

    # shares listed move a code across the rule's market-cap floor
    close = {c: float(market.bars[c]["close"].iloc[0]) for c in kosdaq}
    floor = int(min(close.values()) * 1_000_000 * 1.5)          # the master's 1,000,000 shares: all under it
    rule = {"market": ["KOSDAQ"], "min_market_cap": floor, "as_of": "2023-01-02"}
    below = [c for c in kosdaq if close[c] * 1_000_000 < floor]
    assert below and load(universe_rule=rule)[0].codes == [c for c in kosdaq if c not in below]
    with FundamentalsStore(db_url) as store:
        store.record(below[0], [Figure(below[0], "snapshot", date(2023, 1, 2), "shares_listed", 10_000_000.0)],
                     fetched=date(2023, 1, 2), source="test")
    p, lp = load(universe_rule=rule)
    # (the key is what the panel holds: this selection equals the plain KOSDAQ rule's, whose panel serves it)
    assert below[0] in p.codes and p.codes == b.codes

    # the bars: one code's series rewritten with as many bars and other prices
    code = kospi[2]
    before, _ = load(universe=[code])
    assert load(universe=[code])[1].from_cache
    changed = market.bars[code].copy()
    changed[["open", "high", "low", "close"]] += 10
    with BarCache(db_url) as cache:
        cache.write({code: changed}, source="demo", adjusted=False)
    after, la = load(universe=[code])
    assert not la.from_cache and (after.close[after.has_bar] == before.close[before.has_bar] + 10).all()

    # data.adjusted picks the series where a code has both
    adjusted = market.bars[code].copy()
    adjusted[["open", "high", "low", "close"]] //= 2
    with BarCache(db_url) as cache:
        cache.write({code: adjusted}, source="demo-adjusted", adjusted=True)
    orig, _ = load(universe=[code])
    adj, lad = load_panel(DataConfig(source="cache", cache_url=db_url, adjusted=True, universe=[code]), cache_dir)
    assert not lad.from_cache and (adj.close[adj.has_bar] * 2 <= orig.close[orig.has_bar]).all()
    assert "back-adjusted" in adj.label and "unadjusted" in orig.label


def test_a_rule_selects_the_demo_panel_and_the_master_sets_csv_markets(tmp_path):
    """The demo source applies a universe rule like the event path (it used to be ignored); a CSV folder's
    markets and names follow the stock master of data.cache_url, and a new master rebuilds the panel."""
    from feeds.history import load_market_data

    url = f"sqlite:///{tmp_path / 'market.sqlite'}"
    market = generate_demo_market(DEMO)
    _master(url, market.markets, date(2022, 1, 3), etf=market.codes[1])
    data = DataConfig(source="demo", demo=DEMO, cache_url=url, universe_rule={"exclude": ["etf"]})
    panel, _ = load_panel(data, tmp_path / "panels")
    assert panel.codes == [c for c in market.codes if c != market.codes[1]]
    assert panel.codes == list(load_market_data(data).bars)

    folder = tmp_path / "csv"
    folder.mkdir()
    codes = market.codes[:3]
    for code in codes:
        market.bars[code].rename_axis("date").to_csv(folder / f"{code}.csv", date_format="%Y-%m-%d")
    data = DataConfig(source="csv", path=folder, cache_url=url)
    panel, _ = load_panel(data, tmp_path / "panels")
    assert [m.value for m in panel.markets] == [market.markets[codes[0]].value, "ETF", market.markets[codes[2]].value]
    _master(url, {c: market.markets[codes[0]] for c in codes}, date(2022, 2, 3), names={codes[2]: "renamed"})
    panel, load = load_panel(data, tmp_path / "panels")
    assert not load.from_cache and [m.value for m in panel.markets] == [market.markets[codes[0]].value] * 3
    assert panel.names[codes[2]] == "renamed"

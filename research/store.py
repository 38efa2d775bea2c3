"""The panel store: a source's bars as a ``Panel``, cached in a Parquet file keyed by the source.

Building a panel of 2,500 codes × 10 years from CSV files or the SQL bar cache means parsing and
validating millions of rows; generating the demo market of that size takes seconds. The store does
it once per source and keeps the result as one Parquet file (zstd; one column per price field
holding the day × code grid row by row, plus ``has_bar``; dates, codes, markets and names in the
file's metadata), so the next load is a columnar read and a reshape — about 0.2 s for 2,500 codes
× 2,450 sessions (``bench/research.py`` prints it).

The key is a hash of everything that decides the bars: the demo's seed, size, window and generator
version; a CSV folder's path with every file's size and modification time (and the markets file);
a bar cache's URL, timeframe, codes and row count (and the SQLite file's modification time). Change
any of them and the next load rebuilds. The cache lives in ``~/.cache/krx-trader/panels`` unless a
config's ``research.panel_cache`` says otherwise (``none`` switches it off). Files are written under
a temporary name and renamed, so a crash never leaves half a panel.

Indicator columns are not cached: they depend on the strategy and take a fraction of a second to
compute over the whole panel (``research.indicators``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from configs.schema import DataConfig
from market.ticks import Market
from research.panel import PRICE_FIELDS, Panel, PanelError

log = logging.getLogger(__name__)

DEFAULT_PANEL_CACHE = Path("~/.cache/krx-trader/panels")
PANEL_FORMAT = "krx-trader panel"
PANEL_FORMAT_VERSION = 1
DEMO_PANEL_GENERATOR = "feeds.demo v1"
"""Bump when ``feeds.demo`` starts producing different bars for the same config."""

ProgressFn = Callable[[str, int, int], None]


@dataclass
class PanelLoad:
    """How a panel was obtained (for logs and the benchmark)."""

    path: Path | None
    from_cache: bool
    seconds: float


def _file_stamp(path: Path) -> list[Any]:
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def source_key(data: DataConfig) -> dict[str, Any]:
    """Everything that decides a source's bars (see the module docstring), JSON-safe."""
    if data.timeframe != "daily":
        raise PanelError(f"data.timeframe {data.timeframe!r}: the fast engine and sweeps run on daily bars only; "
                         "use --engine event for intraday bars")
    universe = sorted(data.universe) if data.universe is not None else None
    key: dict[str, Any] = {"format": PANEL_FORMAT_VERSION, "source": data.source, "universe": universe,
                           "default_market": data.default_market.value}
    if data.markets_file is not None:
        key["markets_file"] = [str(data.markets_file.resolve()), *_file_stamp(data.markets_file)[1:]] \
            if data.markets_file.is_file() else str(data.markets_file)
    if data.source == "demo":
        d = data.demo
        key.update(generator=DEMO_PANEL_GENERATOR, seed=d.seed, codes=d.codes, start=d.start.isoformat(),
                   end=d.end.isoformat())
    elif data.source == "csv":
        from feeds.csv_folder import csv_paths

        paths = csv_paths(data.path, data.universe)
        key.update(path=str(Path(data.path).resolve()), clamp=data.clamp_adjusted_high,
                   files=[_file_stamp(p) for p in paths.values()])
    else:
        from sqlalchemy.engine import make_url

        from feeds.cache import BarCache

        url = make_url(data.cache_url)
        with BarCache(data.cache_url) as cache:
            key.update(url=data.cache_url, timeframe=data.timeframe, codes=cache.codes(data.timeframe),
                       rows=cache.row_count(data.timeframe))
        if url.get_backend_name() == "sqlite" and url.database and Path(url.database).is_file():
            key["file"] = _file_stamp(Path(url.database))
    return key


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------------------- build

def _demo_panel(data: DataConfig, digest: str) -> Panel:
    from feeds.demo import demo_name, generate_demo_arrays

    a = generate_demo_arrays(data.demo)
    n = len(a.codes)
    panel = Panel(dates=np.array(a.days, dtype="datetime64[D]"), codes=list(a.codes), markets=list(a.markets),
                  open=a.open, high=a.high, low=a.low, close=a.close, volume=a.volume, has_bar=a.active,
                  label=a.label, synthetic=True, source_key=digest,
                  names={c: demo_name(i, n) for i, c in enumerate(a.codes)})
    for name in PRICE_FIELDS:   # no bar, no price (the generator fills halted sessions)
        getattr(panel, name)[~a.active] = 0
    codes = data.universe if data.universe is not None else panel.codes
    return panel.select(codes) if data.universe is not None or not a.active.any(axis=1).all() else panel


def _source_panel(data: DataConfig, digest: str, progress: ProgressFn | None) -> Panel:
    from feeds.history import open_source

    source = open_source(data)
    try:
        frames = {}
        for i, code in enumerate(source.codes, 1):
            frames[code] = source.load(code)
            if progress is not None:
                progress("panel", i, len(source.codes))
    finally:
        source.close()
    frames = {c: f for c, f in frames.items() if len(f)}
    markets = {c: source.markets.get(c, data.default_market) for c in frames}
    names = {c: source.names.get(c, c) for c in frames}
    return Panel.from_frames(frames, markets, label=source.label, synthetic=source.synthetic,
                             source_key=digest, names=names)


# ---------------------------------------------------------------------------------------- files

def write_panel(panel: Panel, path: Path) -> None:
    """The panel as one Parquet file (see the module docstring), written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: getattr(panel, name).ravel() for name in PRICE_FIELDS}
    columns["has_bar"] = panel.has_bar.ravel()
    meta = {"format": PANEL_FORMAT, "version": PANEL_FORMAT_VERSION, "shape": list(panel.shape),
            "dates": panel.dates.astype(np.int64).tolist(), "codes": panel.codes,
            "markets": [Market(m).value for m in panel.markets], "names": panel.names, "label": panel.label,
            "synthetic": panel.synthetic, "source_key": panel.source_key}
    table = pa.table(columns).replace_schema_metadata({"krx_panel": json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # one row group: each column comes back as one contiguous array, reshaped without a copy
        pq.write_table(table, tmp, compression="zstd", row_group_size=max(1, table.num_rows))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_panel(path: Path) -> Panel:
    """A panel written by ``write_panel``; ``PanelError`` naming the file when it is not one."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(b"krx_panel", b"{}"))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise PanelError(f"{path}: not a readable panel file ({exc})") from None
    if meta.get("format") != PANEL_FORMAT or meta.get("version") != PANEL_FORMAT_VERSION:
        raise PanelError(f"{path}: not a panel file of version {PANEL_FORMAT_VERSION}")
    shape = tuple(meta["shape"])
    arrays = {name: table.column(name).to_numpy().reshape(shape) for name in (*PRICE_FIELDS, "has_bar")}
    return Panel(dates=np.array(meta["dates"], dtype="datetime64[D]"), codes=list(meta["codes"]),
                 markets=[Market(m) for m in meta["markets"]], label=meta["label"],
                 synthetic=bool(meta["synthetic"]), source_key=meta["source_key"], names=dict(meta["names"]),
                 **arrays)


def cache_dir_for(setting: Path | str | None) -> Path | None:
    """The cache folder: the config's ``research.panel_cache``, ``$KRX_PANEL_CACHE``, or the default."""
    if setting is None:
        env = os.environ.get("KRX_PANEL_CACHE")
        setting = env if env else DEFAULT_PANEL_CACHE
    if str(setting).lower() == "none":
        return None
    return Path(setting).expanduser()


def load_panel(data: DataConfig, cache_dir: Path | str | None = None, progress: ProgressFn | None = None,
               use_cache: bool = True) -> tuple[Panel, PanelLoad]:
    """The full-history panel of ``data``'s source (universe applied; the window is applied later,
    after indicators, as the event path does)."""
    t0 = time.perf_counter()
    key = source_key(data)
    digest = key_digest(key)
    folder = cache_dir_for(cache_dir) if use_cache else None
    path = folder / f"panel-{data.source}-{digest}.parquet" if folder is not None else None
    if path is not None and path.is_file():
        try:
            panel = read_panel(path)
            if panel.source_key == digest:
                return panel, PanelLoad(path, True, time.perf_counter() - t0)
        except PanelError as exc:
            log.warning("rebuilding the panel: %s", exc)
    panel = _demo_panel(data, digest) if data.source == "demo" else _source_panel(data, digest, progress)
    if data.universe is not None:
        panel = panel.select(data.universe)
    if path is not None:
        try:
            write_panel(panel, path)
        except OSError as exc:
            log.warning("panel cache not written (%s): %s", path, exc)
            path = None
    return panel, PanelLoad(path, False, time.perf_counter() - t0)

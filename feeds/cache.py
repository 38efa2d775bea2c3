"""A SQLAlchemy bar cache: validated bars stored once, read back fast by code and time window.

Why a cache: CSV folders are validated on every load and downloads (later: KIS daily charts) are
slow and rate-limited; the cache keeps bars that already passed validation in one file (SQLite by
default, any SQLAlchemy URL works) keyed by (code, timeframe, datetime).

Import is all-or-nothing: ``import_csv_folder`` validates every file first (``feeds.csv_folder``)
and then, in ONE transaction, deletes each imported code's rows of that timeframe and inserts the
new ones. A failure anywhere leaves the cache exactly as it was; re-importing replaces rows,
never duplicates them. Inserts go through executemany on the DB-API cursor (SQLAlchemy's bulk
path), so ~75k rows of ``shared/data/krx/daily`` import in about a second on SQLite.

Datetimes are stored naive in KST wall time, like every bar frame in the project. Prices and
volumes are integers (KRW / shares); ``source`` says where the rows came from and ``adjusted``
whether prices are back-adjusted (off the tick grid).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import (BigInteger, Boolean, Column, DateTime, MetaData, PrimaryKeyConstraint, String, Table,
                        and_, delete, func, insert, select)
from sqlalchemy.engine import Connection, Engine

from configs.database import open_engine
from configs.errors import InputError
from feeds.csv_folder import ProgressFn, read_csv_folder
from feeds.timeframes import bar_index, check_timeframe, is_plain_date

DEFAULT_CACHE_URL = "sqlite:///data/cache/bars.sqlite"

metadata = MetaData()
bars_table = Table(
    "bars", metadata,
    Column("code", String(16), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("datetime", DateTime, nullable=False),
    Column("open", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    Column("low", BigInteger, nullable=False),
    Column("close", BigInteger, nullable=False),
    Column("volume", BigInteger, nullable=False),
    Column("source", String(255), nullable=False),
    Column("adjusted", Boolean, nullable=False),
    PrimaryKeyConstraint("code", "timeframe", "datetime", name="pk_bars"),
)
"""One row per bar; the primary key makes a duplicate bar impossible."""

OHLCV = ["open", "high", "low", "close", "volume"]


@dataclass
class ImportSummary:
    """What an import wrote: codes, rows, the timeframe, clamps per code, and how long it took."""

    folder: Path
    timeframe: str
    source: str
    adjusted: bool
    codes: list[str]
    rows: int
    rows_per_code: dict[str, int] = field(default_factory=dict)
    clamps: dict[str, int] = field(default_factory=dict)
    replaced_rows: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """One line for the CLI."""
        clamp = f", clamped {sum(self.clamps.values())} high/low value(s)" if self.clamps else ""
        return (f"imported {self.rows:,} {self.timeframe} bars for {len(self.codes)} code(s) from "
                f"{self.folder} (replaced {self.replaced_rows:,} old rows{clamp}) in {self.seconds:.2f}s")


class BarCache:
    """Bars in a database. ``BarCache("sqlite:///data/cache/bars.sqlite")`` creates the folder and
    the table when missing. Thread-safety is SQLAlchemy's (one engine, short connections)."""

    def __init__(self, url: str = DEFAULT_CACHE_URL, engine: Engine | None = None) -> None:
        self.url = url
        if engine is None:
            engine = open_engine(url, "bar cache")
        self.engine = engine
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "BarCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------
    def _rows(self, code: str, timeframe: str, df: pd.DataFrame, source: str,
              adjusted: bool) -> list[dict[str, object]]:
        """Insert parameters for one code (plain Python ints and datetimes)."""
        times = pd.DatetimeIndex(df.index).to_pydatetime()
        values = df[OHLCV].to_numpy(dtype=np.int64).tolist()
        return [{"code": code, "timeframe": timeframe, "datetime": t, "open": v[0], "high": v[1],
                 "low": v[2], "close": v[3], "volume": v[4], "source": source, "adjusted": adjusted}
                for t, v in zip(times, values)]

    def _write(self, conn: Connection, bars: dict[str, pd.DataFrame], timeframe: str, source: str,
               adjusted: bool) -> int:
        """Replace the rows of every code in ``bars``; returns the number of rows deleted."""
        tbl = bars_table
        replaced = 0
        for code, df in bars.items():
            res = conn.execute(delete(tbl).where(and_(tbl.c.code == code, tbl.c.timeframe == timeframe)))
            replaced += max(res.rowcount or 0, 0)
            rows = self._rows(code, timeframe, df, source, adjusted)
            if rows:
                conn.execute(insert(tbl), rows)     # executemany on the DB-API cursor
        return replaced

    def write(self, bars: dict[str, pd.DataFrame], timeframe: str = "daily", source: str = "",
              adjusted: bool = True) -> int:
        """Store already-validated frames (one transaction; replaces each code's rows of
        ``timeframe``). Returns rows written."""
        check_timeframe(timeframe)
        with self.engine.begin() as conn:
            self._write(conn, bars, timeframe, source, adjusted)
        return sum(len(df) for df in bars.values())

    def import_csv_folder(self, folder: Path | str, universe: Iterable[str] | None = None,
                          timeframe: str | None = None, source: str | None = None,
                          adjusted: bool = True, clamp_adjusted_high: bool = False,
                          progress: ProgressFn | None = None) -> ImportSummary:
        """Validate a CODE.csv folder completely, then write it in one transaction.

        ``timeframe`` defaults to the one inferred from the files; when given it must match them.
        ``source`` defaults to ``csv:<folder>``. Raises ``CSVDataError`` (cache untouched) on
        bad data and ValueError on a timeframe mismatch.
        """
        t0 = time.perf_counter()
        folder = Path(folder)
        loaded = read_csv_folder(folder, universe, clamp_adjusted_high=clamp_adjusted_high,
                                 progress=progress)
        if timeframe is not None and check_timeframe(timeframe) != loaded.timeframe:
            raise InputError(f"{folder}: files hold {loaded.timeframe} bars but timeframe "
                             f"{timeframe!r} was requested")
        label = source or f"csv:{folder.resolve()}"
        with self.engine.begin() as conn:
            replaced = self._write(conn, loaded.bars, loaded.timeframe, label, adjusted)
        per_code = {c: len(df) for c, df in loaded.bars.items()}
        return ImportSummary(folder=folder, timeframe=loaded.timeframe, source=label, adjusted=adjusted,
                             codes=list(loaded.bars), rows=sum(per_code.values()), rows_per_code=per_code,
                             clamps=loaded.clamp_counts, replaced_rows=replaced,
                             seconds=time.perf_counter() - t0)

    # --- reading ---------------------------------------------------------------------------
    def read(self, code: str, timeframe: str = "daily", start: object = None,
             end: object = None) -> pd.DataFrame:
        """Bars of one code, ascending, as a frame like the CSV loader's (index ``datetime``,
        int64 OHLCV). ``start``/``end`` are inclusive; a plain-date ``end`` keeps the whole day.
        An unknown code gives an empty frame (use ``codes()`` to check)."""
        tbl = bars_table
        cond = [tbl.c.code == code, tbl.c.timeframe == timeframe]
        if start is not None:
            cond.append(tbl.c.datetime >= pd.Timestamp(start).to_pydatetime())
        if end is not None:
            e = pd.Timestamp(end)
            if is_plain_date(end):
                cond.append(tbl.c.datetime < (e + pd.Timedelta(days=1)).to_pydatetime())
            else:
                cond.append(tbl.c.datetime <= e.to_pydatetime())
        stmt = select(tbl.c.datetime, *(tbl.c[c] for c in OHLCV)).where(and_(*cond)).order_by(tbl.c.datetime)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return pd.DataFrame({c: np.array([], dtype=np.int64) for c in OHLCV}, index=bar_index([]))
        times, *cols = zip(*rows)
        return pd.DataFrame({c: np.asarray(v, dtype=np.int64) for c, v in zip(OHLCV, cols)},
                            index=bar_index(list(times)))

    def codes(self, timeframe: str = "daily") -> list[str]:
        """Codes with at least one bar of ``timeframe``, sorted."""
        stmt = select(bars_table.c.code).where(bars_table.c.timeframe == timeframe).distinct() \
            .order_by(bars_table.c.code)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]

    def date_range(self, code: str, timeframe: str = "daily") -> tuple[datetime, datetime] | None:
        """(first, last) bar time of a code, or None when the cache has no such bars."""
        tbl = bars_table
        stmt = select(func.min(tbl.c.datetime), func.max(tbl.c.datetime)).where(
            and_(tbl.c.code == code, tbl.c.timeframe == timeframe))
        with self.engine.connect() as conn:
            first, last = conn.execute(stmt).one()
        return None if first is None else (first, last)

    def sources(self, timeframe: str = "daily") -> dict[str, tuple[str, bool]]:
        """code -> (source label, adjusted) for ``timeframe`` (label of the latest import)."""
        tbl = bars_table
        stmt = select(tbl.c.code, func.max(tbl.c.source), func.max(tbl.c.adjusted)).where(
            tbl.c.timeframe == timeframe).group_by(tbl.c.code)
        with self.engine.connect() as conn:
            return {code: (src, bool(adj)) for code, src, adj in conn.execute(stmt)}

    def row_count(self, timeframe: str | None = None) -> int:
        stmt = select(func.count()).select_from(bars_table)
        if timeframe is not None:
            stmt = stmt.where(bars_table.c.timeframe == timeframe)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())


def import_csv_folder(folder: Path | str, url: str = DEFAULT_CACHE_URL, *,
                      universe: Iterable[str] | None = None, timeframe: str | None = None,
                      source: str | None = None, adjusted: bool = True, clamp_adjusted_high: bool = False,
                      progress: ProgressFn | None = None) -> ImportSummary:
    """Convenience for the CLI (``run.py data import --csv DIR``): open the cache at ``url``
    (``BarCache(url)``) and import ``folder`` (arguments as ``BarCache.import_csv_folder``)."""
    cache = BarCache(url)
    try:
        return cache.import_csv_folder(folder, universe=universe, timeframe=timeframe, source=source,
                                       adjusted=adjusted, clamp_adjusted_high=clamp_adjusted_high,
                                       progress=progress)
    finally:
        cache.close()

"""A SQLAlchemy bar cache: validated bars stored once, read back fast by code and time window.

Why a cache: CSV folders are validated on every load and downloads from KIS are slow and
rate-limited; the cache keeps bars that already passed validation in one database (SQLite by
default, PostgreSQL with ``postgresql+psycopg://…``). The schema (``feeds/tables.py``) is created and
upgraded by Alembic migrations (``migrations/migrate.py``) when the cache opens — an old cache upgrades in
place.

Each code has up to two *series* per timeframe: back-adjusted prices (수정주가, ``adjusted=True``) and
original prices (``adjusted=False``); they never replace each other. ``bar_coverage`` records the day
ranges of each series that were fetched or imported completely, which is what a download skips and
how it resumes (``feeds/download.py``).

Writes are transactions: ``import_csv_folder`` validates every file first and writes all codes in ONE
transaction (all or nothing); ``write_range`` writes one code's fetched range and its coverage in one
transaction (a download keeps every code that finished, whatever happens to the next). Only portable
SQL: no boolean aggregates, no date functions — the PostgreSQL suite runs the same tests as SQLite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import String, and_, delete, func, insert, select, type_coerce
from sqlalchemy.engine import Connection, Engine

from configs.database import open_engine
from configs.errors import InputError
from feeds.csv_folder import CSVFolder, ProgressFn, read_csv_folder
from feeds.quality import Finding, HaltIntervals, QualityReport
from feeds.tables import bar_coverage, bars
from feeds.timeframes import bar_index, check_timeframe, is_plain_date
from migrations import migrate

DEFAULT_CACHE_URL = "sqlite:///data/cache/bars.sqlite"
OHLCV = ["open", "high", "low", "close", "volume"]
_INSERT_COLUMNS = ("code", "timeframe", "adjusted", "datetime", *OHLCV, "source")

bars_table = bars
"""The ``bars`` table (kept under its old name for callers)."""


@dataclass
class ImportSummary:
    """What an import wrote: codes, rows, the timeframe, clamps per code, quality findings, time."""

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
    quality: QualityReport | None = None

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """One line for the CLI (the quality table follows when something was found)."""
        clamp = f", clamped {sum(self.clamps.values())} high/low value(s)" if self.clamps else ""
        kind = "back-adjusted" if self.adjusted else "unadjusted"
        line = (f"imported {self.rows:,} {self.timeframe} {kind} bars for {len(self.codes)} code(s) from "
                f"{self.folder} (replaced {self.replaced_rows:,} old rows{clamp}) in {self.seconds:.2f}s")
        if self.quality is not None and any(f.severity != "info" for fs in self.quality.findings.values() for f in fs):
            line += "\n" + self.quality.describe()
        return line


def _as_day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def merge_ranges(ranges: Iterable[tuple[date, date]]) -> list[tuple[date, date]]:
    """Overlapping or touching day ranges merged (touching = the next starts the day after)."""
    out: list[tuple[date, date]] = []
    for first, last in sorted(ranges):
        if out and first.toordinal() <= out[-1][1].toordinal() + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def fetch_raw(conn: Connection, stmt) -> list[tuple]:
    """All rows of ``stmt`` as the DB-API cursor returns them: no SQLAlchemy row objects and no result
    processing (a whole-market read is hundreds of thousands of rows). The statement's parameters are
    rendered by SQLAlchemy itself (``literal_binds``: codes, a boolean, a timeframe — no user SQL)."""
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()


class BarCache:
    """Bars in a database. ``BarCache("sqlite:///data/cache/bars.sqlite")`` creates the folder and
    the schema when missing. Thread-safety is SQLAlchemy's (one engine, short connections)."""

    def __init__(self, url: str = DEFAULT_CACHE_URL, engine: Engine | None = None) -> None:
        self.url = url
        if engine is None:
            engine = open_engine(url, "bar cache")
        self.engine = engine
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "BarCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------
    def _rows(self, code: str, timeframe: str, df: pd.DataFrame, source: str,
              adjusted: bool) -> list[tuple[object, ...]]:
        """Rows for one code, in ``_INSERT_COLUMNS`` order (plain Python ints and datetimes)."""
        times = pd.DatetimeIndex(df.index).to_pydatetime()
        values = df[OHLCV].to_numpy(dtype=np.int64).tolist()
        return [(code, timeframe, adjusted, t, *v, source) for t, v in zip(times, values)]

    def _insert(self, conn: Connection, rows: list[tuple[object, ...]]) -> None:
        """Insert rows fast: PostgreSQL's COPY (an order of magnitude over INSERTs), else executemany."""
        if not rows:
            return
        if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
            cur = conn.connection.driver_connection.cursor()
            with cur.copy(f"COPY bars ({', '.join(_INSERT_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if conn.dialect.name == "sqlite" and conn.dialect.driver == "pysqlite":
            # the DB-API's executemany on tuples, the datetime written exactly as SQLAlchemy's DateTime type
            # stores it (text compares in the WHERE clauses must see one format)
            fmt = "%Y-%m-%d %H:%M:%S.%f"
            conn.exec_driver_sql(
                f"INSERT INTO bars ({', '.join(_INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})",
                [(r[0], r[1], int(r[2]), r[3].strftime(fmt), *r[4:]) for r in rows])
            return
        conn.execute(insert(bars), [dict(zip(_INSERT_COLUMNS, r)) for r in rows])

    def _series(self, code: str, timeframe: str, adjusted: bool):
        return and_(bars.c.code == code, bars.c.timeframe == timeframe, bars.c.adjusted == adjusted)

    def _set_coverage(self, conn: Connection, code: str, timeframe: str, adjusted: bool,
                      ranges: list[tuple[date, date]], source: str, replace: bool) -> None:
        cov = bar_coverage
        where = and_(cov.c.code == code, cov.c.timeframe == timeframe, cov.c.adjusted == adjusted)
        old: list[tuple[date, date]] = []
        if not replace:
            old = [(_as_day(a), _as_day(b)) for a, b in conn.execute(select(cov.c.first_day, cov.c.last_day).where(where))]
        conn.execute(delete(cov).where(where))
        now = datetime.now()        # to the microsecond: a rewrite must change fingerprint()
        merged = merge_ranges(old + ranges)
        if merged:
            conn.execute(insert(cov), [{"code": code, "timeframe": timeframe, "adjusted": adjusted, "first_day": a,
                                        "last_day": b, "source": source, "updated_at": now} for a, b in merged])

    def _write(self, conn: Connection, frames: dict[str, pd.DataFrame], timeframe: str, source: str,
               adjusted: bool) -> int:
        """Replace the series of every code in ``frames``; returns the number of rows deleted."""
        replaced = 0
        for code, df in frames.items():
            res = conn.execute(delete(bars).where(self._series(code, timeframe, adjusted)))
            replaced += max(res.rowcount or 0, 0)
            self._insert(conn, self._rows(code, timeframe, df, source, adjusted))
            ranges = [] if df.empty else [(_as_day(df.index[0]), _as_day(df.index[-1]))]
            self._set_coverage(conn, code, timeframe, adjusted, ranges, source, replace=True)
        return replaced

    def write(self, frames: dict[str, pd.DataFrame], timeframe: str = "daily", source: str = "",
              adjusted: bool = True) -> int:
        """Store already-validated frames (one transaction; replaces each code's series of
        ``timeframe``/``adjusted``). Returns rows written."""
        check_timeframe(timeframe)
        with self.engine.begin() as conn:
            self._write(conn, frames, timeframe, source, adjusted)
        return sum(len(df) for df in frames.values())

    def write_range(self, code: str, frame: pd.DataFrame, first_day: date, last_day: date, *,
                    timeframe: str = "daily", adjusted: bool = True, source: str = "") -> int:
        """One code's bars for ``first_day..last_day`` as fetched (``write_ranges`` with one range)."""
        return self.write_ranges(code, [(frame, first_day, last_day)], timeframe=timeframe, adjusted=adjusted,
                                 source=source)

    def write_ranges(self, code: str, pieces: Iterable[tuple[pd.DataFrame, date, date]], *,
                     timeframe: str = "daily", adjusted: bool = True, source: str = "") -> int:
        """One code's fetched ranges in ONE transaction: for each (frame, first_day, last_day), the series'
        rows in that range are replaced by the frame's and the range is recorded as covered (even when it
        holds no bar: before a listing, during a halt). Returns rows written."""
        check_timeframe(timeframe)
        pieces = list(pieces)
        written = 0
        with self.engine.begin() as conn:
            for frame, first_day, last_day in pieces:
                lo = datetime.combine(first_day, datetime.min.time())
                hi = datetime.combine(last_day, datetime.min.time()) + pd.Timedelta(days=1).to_pytimedelta()
                inside = frame
                if len(frame):
                    idx = pd.DatetimeIndex(frame.index)
                    inside = frame[(idx >= lo) & (idx < hi)]
                conn.execute(delete(bars).where(and_(self._series(code, timeframe, adjusted),
                                                     bars.c.datetime >= lo, bars.c.datetime < hi)))
                self._insert(conn, self._rows(code, timeframe, inside, source, adjusted))
                written += len(inside)
            self._set_coverage(conn, code, timeframe, adjusted, [(a, b) for _, a, b in pieces], source, replace=False)
        return written

    def import_csv_folder(self, folder: Path | str, universe: Iterable[str] | None = None,
                          timeframe: str | None = None, source: str | None = None,
                          adjusted: bool = True, clamp_adjusted_high: bool = False,
                          progress: ProgressFn | None = None, strict: bool = False,
                          halts: dict[str, HaltIntervals] | None = None) -> ImportSummary:
        """Validate a CODE.csv folder completely, then write it in one transaction.

        ``timeframe`` defaults to the one inferred from the files; when given it must match them.
        ``source`` defaults to ``csv:<folder>``. Raises ``CSVDataError`` (cache untouched) on
        bad data and ValueError on a timeframe mismatch. The quality guard (``feeds.quality``) runs on
        every file; ``strict`` also refuses the import when any code has a warning that is not a known
        halt (``halts``: code → the stock master's halt intervals), naming the code and the reason.
        """
        t0 = time.perf_counter()
        checked = check_csv_import(folder, universe, timeframe, clamp_adjusted_high, progress, strict, halts)
        return self.write_import(checked, source, adjusted, t0)

    def write_import(self, checked: "CheckedImport", source: str | None = None, adjusted: bool = True,
                     t0: float | None = None) -> ImportSummary:
        """Write a folder ``check_csv_import`` validated (one transaction)."""
        t0 = time.perf_counter() if t0 is None else t0
        folder, loaded = checked.folder, checked.loaded
        label = source or f"csv:{folder.resolve()}"
        with self.engine.begin() as conn:
            replaced = self._write(conn, loaded.bars, loaded.timeframe, label, adjusted)
        per_code = {c: len(df) for c, df in loaded.bars.items()}
        return ImportSummary(folder=folder, timeframe=loaded.timeframe, source=label, adjusted=adjusted,
                             codes=list(loaded.bars), rows=sum(per_code.values()), rows_per_code=per_code,
                             clamps=loaded.clamp_counts, replaced_rows=replaced,
                             seconds=time.perf_counter() - t0, quality=checked.report)

    # --- reading ---------------------------------------------------------------------------
    def series_kinds(self, timeframe: str = "daily") -> dict[str, set[bool]]:
        """code -> the adjustments it has series of (``{True}``, ``{False}`` or both)."""
        stmt = select(bars.c.code, bars.c.adjusted).where(bars.c.timeframe == timeframe).distinct()
        out: dict[str, set[bool]] = {}
        with self.engine.connect() as conn:
            for code, adj in conn.execute(stmt):
                out.setdefault(code, set()).add(bool(adj))
        return out

    def _pick(self, conn: Connection, code: str, timeframe: str, adjusted: bool | None, prefer: bool) -> bool | None:
        """The series to read: ``adjusted`` when given, else ``prefer`` when it exists, else the other."""
        if adjusted is not None:
            return adjusted
        have = {bool(a) for (a,) in conn.execute(select(bars.c.adjusted).where(
            and_(bars.c.code == code, bars.c.timeframe == timeframe)).distinct())}
        if not have:
            return None
        return prefer if prefer in have else (not prefer)

    def read(self, code: str, timeframe: str = "daily", start: object = None, end: object = None, *,
             adjusted: bool | None = None, prefer: bool = True) -> pd.DataFrame:
        """Bars of one code, ascending, as a frame like the CSV loader's (index ``datetime``,
        int64 OHLCV). ``start``/``end`` are inclusive; a plain-date ``end`` keeps the whole day.
        ``adjusted``: the series to read; None = the ``prefer`` series when the code has it, else the
        other. An unknown code gives an empty frame (use ``codes()`` to check)."""
        tbl = bars
        with self.engine.connect() as conn:
            series = self._pick(conn, code, timeframe, adjusted, prefer)
            rows = []
            if series is not None:
                cond = [self._series(code, timeframe, series)]
                if start is not None:
                    cond.append(tbl.c.datetime >= pd.Timestamp(start).to_pydatetime())
                if end is not None:
                    e = pd.Timestamp(end)
                    if is_plain_date(end):
                        cond.append(tbl.c.datetime < (e + pd.Timedelta(days=1)).to_pydatetime())
                    else:
                        cond.append(tbl.c.datetime <= e.to_pydatetime())
                stmt = select(tbl.c.datetime, *(tbl.c[c] for c in OHLCV)).where(and_(*cond)).order_by(tbl.c.datetime)
                rows = conn.execute(stmt).all()
        if not rows:
            return pd.DataFrame({c: np.array([], dtype=np.int64) for c in OHLCV}, index=bar_index([]))
        times, *cols = zip(*rows)
        return pd.DataFrame({c: np.asarray(v, dtype=np.int64) for c, v in zip(OHLCV, cols)},
                            index=bar_index(list(times)))

    def read_many(self, codes: Iterable[str], timeframe: str = "daily", *, adjusted: bool | None = None,
                  prefer: bool = True) -> dict[str, pd.DataFrame]:
        """``read`` for many codes with one query per series kind (a whole-market load)."""
        codes = list(codes)
        kinds = self.series_kinds(timeframe)
        want: dict[bool, list[str]] = {True: [], False: []}
        for c in codes:
            have = kinds.get(c, set())
            pick = adjusted if adjusted is not None else (prefer if prefer in have else (not prefer))
            if pick in have:
                want[pick].append(c)
        out: dict[str, pd.DataFrame] = {}
        # the datetime as the driver gives it (SQLite: text, parsed below in one vectorised call instead of one
        # regex per row by SQLAlchemy's DateTime type; PostgreSQL: datetime objects)
        cols = [bars.c.code, type_coerce(bars.c.datetime, String), *(bars.c[c] for c in OHLCV)]
        with self.engine.connect() as conn:
            for adj, group in want.items():
                for i in range(0, len(group), 500):
                    chunk = group[i:i + 500]
                    stmt = select(*cols).where(and_(bars.c.timeframe == timeframe, bars.c.adjusted == adj,
                                                    bars.c.code.in_(chunk))).order_by(bars.c.code, bars.c.datetime)
                    rows = fetch_raw(conn, stmt)
                    if not rows:
                        continue
                    code_col, times, *values = zip(*rows)
                    code_arr = np.asarray(code_col, dtype=object)
                    if isinstance(times[0], str):
                        index = pd.DatetimeIndex(pd.to_datetime(np.asarray(times, dtype=object), format="ISO8601"))
                    else:
                        index = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[us]"))
                    arrays = [np.asarray(v, dtype=np.int64) for v in values]
                    cuts = np.r_[0, np.flatnonzero(code_arr[1:] != code_arr[:-1]) + 1, len(code_arr)]
                    for a, b in zip(cuts[:-1], cuts[1:]):
                        out[str(code_arr[a])] = pd.DataFrame({c: arr[a:b] for c, arr in zip(OHLCV, arrays)},
                                                             index=bar_index(index[a:b]))
        empty = pd.DataFrame({c: np.array([], dtype=np.int64) for c in OHLCV}, index=bar_index([]))
        return {c: out.get(c, empty) for c in codes}

    def codes(self, timeframe: str = "daily", adjusted: bool | None = None) -> list[str]:
        """Codes with at least one bar of ``timeframe`` (of one series kind when ``adjusted`` is given), sorted."""
        cond = [bars.c.timeframe == timeframe]
        if adjusted is not None:
            cond.append(bars.c.adjusted == adjusted)
        stmt = select(bars.c.code).where(and_(*cond)).distinct().order_by(bars.c.code)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]

    def date_range(self, code: str, timeframe: str = "daily",
                   adjusted: bool | None = None) -> tuple[datetime, datetime] | None:
        """(first, last) bar time of a code's series (``adjusted`` None: either), or None without bars."""
        cond = [bars.c.code == code, bars.c.timeframe == timeframe]
        if adjusted is not None:
            cond.append(bars.c.adjusted == adjusted)
        stmt = select(func.min(bars.c.datetime), func.max(bars.c.datetime)).where(and_(*cond))
        with self.engine.connect() as conn:
            first, last = conn.execute(stmt).one()
        return None if first is None else (first, last)

    def sources(self, timeframe: str = "daily", prefer: bool = True) -> dict[str, tuple[str, bool]]:
        """code -> (source label, adjusted) of the series ``read`` picks for it (``prefer``red kind when
        present). Grouped by the boolean, never aggregated over it (PostgreSQL has no max(boolean))."""
        stmt = select(bars.c.code, bars.c.adjusted, func.max(bars.c.source)).where(
            bars.c.timeframe == timeframe).group_by(bars.c.code, bars.c.adjusted)
        found: dict[str, dict[bool, str]] = {}
        with self.engine.connect() as conn:
            for code, adj, src in conn.execute(stmt):
                found.setdefault(code, {})[bool(adj)] = src
        out = {}
        for code, by_kind in found.items():
            pick = prefer if prefer in by_kind else (not prefer)
            out[code] = (by_kind[pick], pick)
        return out

    def coverage(self, code: str | None = None, timeframe: str = "daily",
                 adjusted: bool = True) -> dict[str, list[tuple[date, date]]]:
        """code -> covered day ranges of its series (merged, ascending); one code or all."""
        cov = bar_coverage
        cond = [cov.c.timeframe == timeframe, cov.c.adjusted == adjusted]
        if code is not None:
            cond.append(cov.c.code == code)
        stmt = select(cov.c.code, cov.c.first_day, cov.c.last_day).where(and_(*cond)).order_by(cov.c.code, cov.c.first_day)
        out: dict[str, list[tuple[date, date]]] = {}
        with self.engine.connect() as conn:
            for c, a, b in conn.execute(stmt):
                out.setdefault(c, []).append((_as_day(a), _as_day(b)))
        return {c: merge_ranges(r) for c, r in out.items()}

    def row_count(self, timeframe: str | None = None, adjusted: bool | None = None) -> int:
        stmt = select(func.count()).select_from(bars)
        if timeframe is not None:
            stmt = stmt.where(bars.c.timeframe == timeframe)
        if adjusted is not None:
            stmt = stmt.where(bars.c.adjusted == adjusted)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def fingerprint(self, timeframe: str = "daily") -> list[object]:
        """What changes whenever a bar of ``timeframe`` is written, replaced or removed: the row count and
        the coverage's row count and newest ``updated_at`` (every write records its ranges, to the
        microsecond). A panel built from the cache keys on it (``research.store``); cheap on a large cache."""
        cov = bar_coverage
        with self.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(bars).where(bars.c.timeframe == timeframe)).scalar_one()
            n, newest = conn.execute(select(func.count(), func.max(cov.c.updated_at)).where(
                cov.c.timeframe == timeframe)).one()
        return [int(rows), int(n), str(newest)]

    def check_quality(self, codes: Iterable[str] | None = None, timeframe: str = "daily", *,
                      adjusted: bool | None = None, halts: dict[str, HaltIntervals] | None = None,
                      strict: bool = False) -> QualityReport:
        """The quality guard over cached series (``run.py data quality``)."""
        codes = list(codes) if codes is not None else self.codes(timeframe, adjusted)
        frames = self.read_many(codes, timeframe, adjusted=adjusted)
        return QualityReport.of(frames, halts, strict)


@dataclass
class CheckedImport:
    """A CODE.csv folder read, validated and passed by the quality guard: ready to be written."""

    folder: Path
    loaded: CSVFolder        # bars, timeframe, clamp counts, quality findings
    report: QualityReport


def check_csv_import(folder: Path | str, universe: Iterable[str] | None = None, timeframe: str | None = None,
                     clamp_adjusted_high: bool = False, progress: ProgressFn | None = None, strict: bool = False,
                     halts: dict[str, HaltIntervals] | None = None) -> CheckedImport:
    """Read and validate a folder for ``BarCache.import_csv_folder`` without touching any database."""
    folder = Path(folder)
    loaded = read_csv_folder(folder, universe, clamp_adjusted_high=clamp_adjusted_high, progress=progress,
                             halts=halts)
    if timeframe is not None and check_timeframe(timeframe) != loaded.timeframe:
        raise InputError(f"{folder}: files hold {loaded.timeframe} bars but timeframe {timeframe!r} was requested")
    report = QualityReport(dict(loaded.findings), strict=strict)
    refused = report.refused()
    if refused:
        code, f = next(iter(refused.items()))
        raise InputError(f"{folder / (code + '.csv')}: refused by the quality guard in strict mode: {f.kind}: "
                         f"{f.message} ({len(refused)} code(s) refused; nothing was imported)")
    return CheckedImport(folder, loaded, report)


def import_csv_folder(folder: Path | str, url: str = DEFAULT_CACHE_URL, *,
                      universe: Iterable[str] | None = None, timeframe: str | None = None,
                      source: str | None = None, adjusted: bool = True, clamp_adjusted_high: bool = False,
                      progress: ProgressFn | None = None, strict: bool = False,
                      halts: dict[str, HaltIntervals] | None = None) -> ImportSummary:
    """Convenience for the CLI (``run.py data import --csv DIR``): validate ``folder`` first, then open the
    cache at ``url`` and write it (arguments as ``BarCache.import_csv_folder``) — a refused folder never
    creates an empty database."""
    t0 = time.perf_counter()
    checked = check_csv_import(folder, universe, timeframe, clamp_adjusted_high, progress, strict, halts)
    cache = BarCache(url)
    try:
        return cache.write_import(checked, source, adjusted, t0)
    finally:
        cache.close()


__all__ = ["BarCache", "CheckedImport", "DEFAULT_CACHE_URL", "Finding", "ImportSummary", "OHLCV", "bars_table",
           "check_csv_import", "import_csv_folder", "merge_ranges"]

"""The stock master: which codes exist, what they are, and their designations over time.

Built from KIS's master files (``brokers/kis/master.py`` parses them) by ``run.py data master [--from
URL_OR_FILE]`` into the market-data database (the bar cache's: ``stocks`` and ``stock_flags``, created
by the migrations). Each import is a *snapshot*:

* ``stocks`` holds the latest record of every code (name, market, kind, sector, listing date, par value,
  shares listed, capital, market cap, flags), with the day it was first seen; a code that a later
  snapshot of its market no longer lists gets its ``delisting_date`` (it stays in the table: a backtest
  of the past must still see it — no survivorship bias from the master);
* ``stock_flags`` turns the snapshots' flags into dated intervals: a flag seen on day A opens an
  interval from A; when a later snapshot (day B) no longer shows it, the interval closes on B - 1.
  This is the history the quality guard uses to tell a halt (거래정지) from missing data.

What the master feeds: markets and names wherever a hand-made markets CSV was needed (the CSV, when
given, still overrides), the halts of the quality guard, and universes by rule (``UniverseRule``:
``{market: KOSPI, exclude: [etf, spac, preferred, 관리종목], min_market_cap: …}``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Engine

from brokers.kis.master import MASTER_BASE_URL, MASTER_FILES, MasterFormatError, MasterRecord, parse_download
from configs.database import open_engine, safe_url, sqlite_file_missing
from configs.errors import InputError
from migrations import migrate
from feeds.tables import stock_flags, stocks
from market.calendar import KST
from market.ticks import Market

log = logging.getLogger(__name__)

FLAGS = ("halted", "admin_issue", "liquidation", "caution", "warning", "risk", "unfaithful_disclosure", "overheated")
"""Designations kept as dated intervals (``stock_flags.flag``)."""
WARNING_FLAGS = {"01": "caution", "02": "warning", "03": "risk"}


def _flags_of(r: MasterRecord) -> set[str]:
    out = {f for f in ("halted", "admin_issue", "liquidation", "unfaithful_disclosure") if getattr(r, f)}
    if r.market_warning in WARNING_FLAGS:
        out.add(WARNING_FLAGS[r.market_warning])
    if r.overheated in ("2", "3"):
        out.add("overheated")
    return out


@dataclass
class MasterImport:
    """What one ``data master`` run did."""

    source: str
    as_of: date
    per_market: dict[str, int]
    new: list[str]
    delisted: list[str]
    flags_opened: int
    flags_closed: int

    def describe(self) -> str:
        markets = ", ".join(f"{m} {n:,}" for m, n in self.per_market.items())
        return (f"stock master as of {self.as_of}: {sum(self.per_market.values()):,} code(s) ({markets}) from "
                f"{self.source}; {len(self.new)} new, {len(self.delisted)} no longer listed; "
                f"designations opened {self.flags_opened}, closed {self.flags_closed}")


def _day(v: object) -> date | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def read_master_source(source: str | Path | None = None, timeout: float = 30.0) -> tuple[list[tuple[str, bytes]], date | None]:
    """The master files a ``--from`` names, as (name, bytes), and the day they are of when the server says.

    ``source``: None = KIS's download host; an http(s) URL of a folder (the three zips are fetched) or of
    one ``*.mst``/``*.zip``; a local folder (every master file in it) or file. The day comes from the
    server's ``Last-Modified`` header (the emulator sends its emulated day), else it is None.
    """
    src = str(source) if source is not None else MASTER_BASE_URL
    if src.startswith(("http://", "https://")):
        import requests

        urls = [src] if src.lower().endswith((".zip", ".mst")) else \
            [f"{src.rstrip('/')}/{f}.zip" for f in MASTER_FILES.values()]
        out, day = [], None
        for url in urls:
            try:
                resp = requests.get(url, timeout=timeout)
            except requests.RequestException as exc:
                raise InputError(f"--from {url}: cannot download the master file ({type(exc).__name__})") from None
            if resp.status_code != 200:
                raise InputError(f"--from {url}: HTTP {resp.status_code}; expected a KIS master file")
            out.append((url.rsplit("/", 1)[-1], resp.content))
            modified = resp.headers.get("Last-Modified")
            if modified:
                try:
                    day = parsedate_to_datetime(modified).astimezone(KST).date()
                except (TypeError, ValueError):
                    pass
        return out, day
    path = Path(src).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith((".mst", ".mst.zip", ".zip"))
                       and any(p.name.lower().startswith(f.split(".")[0]) for f in MASTER_FILES.values()))
        if not files:
            raise InputError(f"--from {path}: no master file in the folder (expected "
                             f"{', '.join(f + '[.zip]' for f in MASTER_FILES.values())})")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"--from {src}: no such file or folder, and not an http(s) URL")
    try:
        return [(p.name, p.read_bytes()) for p in files], None
    except OSError as exc:
        raise InputError(f"--from {src}: cannot read ({exc.strerror})") from None


class StockMaster:
    """The ``stocks`` and ``stock_flags`` tables of one market-data database."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or open_engine(url, "stock master")
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "StockMaster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------
    def import_records(self, records: Sequence[MasterRecord], as_of: date, source: str) -> MasterImport:
        """One snapshot, in ONE transaction (see the module docstring)."""
        by_code: dict[str, MasterRecord] = {}
        for r in records:
            by_code[r.code] = r
        markets = sorted({r.market for r in by_code.values()})
        with self.engine.begin() as conn:
            old = {row.code: row for row in conn.execute(select(stocks.c.code, stocks.c.market, stocks.c.first_seen,
                                                                stocks.c.delisting_date, stocks.c.as_of))}
            newer = [c for c, row in old.items() if c in by_code and _day(row.as_of) > as_of]
            if newer:
                raise InputError(f"stock master {safe_url(self.url)}: already holds a snapshot of {_day(old[newer[0]].as_of)}, "
                                 f"newer than this one ({as_of}); pass --as-of or import the newer files")
            rows = []
            for code, r in by_code.items():
                prev = old.get(code)
                rows.append({
                    "code": code, "isin": r.isin, "name": r.name, "market": r.market, "group_code": r.group_code,
                    "kind": r.kind, "sector_large": r.sector_large, "sector_medium": r.sector_medium,
                    "sector_small": r.sector_small, "listing_date": r.listing_date, "delisting_date": None,
                    "par_value": r.par_value, "shares_listed": r.shares_listed, "capital": r.capital,
                    "fiscal_month": r.fiscal_month, "ipo_price": r.ipo_price, "base_price": r.base_price,
                    "prev_volume": r.prev_volume, "market_cap": r.market_cap, "halted": r.halted,
                    "admin_issue": r.admin_issue, "liquidation": r.liquidation, "market_warning": r.market_warning,
                    "unfaithful_disclosure": r.unfaithful_disclosure, "overheated": r.overheated in ("2", "3"),
                    "spac": r.kind == "spac", "preferred": r.preferred, "as_of": as_of,
                    "first_seen": _day(prev.first_seen) if prev is not None else as_of, "source": source})
            codes = list(by_code)
            for i in range(0, len(codes), 500):
                conn.execute(delete(stocks).where(stocks.c.code.in_(codes[i:i + 500])))
            if rows:
                conn.execute(insert(stocks), rows)
            gone = sorted(c for c, row in old.items() if c not in by_code and row.market in markets
                          and row.delisting_date is None)
            for i in range(0, len(gone), 500):
                conn.execute(update(stocks).where(stocks.c.code.in_(gone[i:i + 500])).values(delisting_date=as_of))
            opened, closed = self._update_flags(conn, by_code, as_of, source)
            for i in range(0, len(gone), 500):            # a delisted code's designations end with it
                res = conn.execute(update(stock_flags).where(and_(stock_flags.c.code.in_(gone[i:i + 500]),
                                                                  stock_flags.c.last_day.is_(None)))
                                   .values(last_day=as_of - timedelta(days=1)))
                closed += max(res.rowcount or 0, 0)
        return MasterImport(source, as_of, {m: sum(r.market == m for r in by_code.values()) for m in markets},
                            sorted(c for c in by_code if c not in old), gone, opened, closed)

    def _update_flags(self, conn, by_code: Mapping[str, MasterRecord], as_of: date, source: str) -> tuple[int, int]:
        open_rows = {(c, f): _day(first) for c, f, first in conn.execute(
            select(stock_flags.c.code, stock_flags.c.flag, stock_flags.c.first_day).where(stock_flags.c.last_day.is_(None)))}
        opened = closed = 0
        new_rows = []
        for code, r in by_code.items():
            now = _flags_of(r)
            for flag in FLAGS:
                key = (code, flag)
                if flag in now and key not in open_rows:
                    new_rows.append({"code": code, "flag": flag, "first_day": as_of, "last_day": None, "source": source})
                    opened += 1
                elif flag not in now and key in open_rows and open_rows[key] < as_of:
                    conn.execute(update(stock_flags).where(and_(
                        stock_flags.c.code == code, stock_flags.c.flag == flag,
                        stock_flags.c.first_day == open_rows[key])).values(last_day=as_of - timedelta(days=1)))
                    closed += 1
        if new_rows:
            conn.execute(insert(stock_flags), new_rows)
        return opened, closed

    def add_flag_intervals(self, intervals: Iterable[tuple[str, str, date, date | None]], source: str) -> int:
        """Known designations with their dates (a reference file's history): (code, flag, first, last)."""
        rows = [{"code": c, "flag": f, "first_day": a, "last_day": b, "source": source} for c, f, a, b in intervals]
        with self.engine.begin() as conn:
            for r in rows:
                conn.execute(delete(stock_flags).where(and_(stock_flags.c.code == r["code"], stock_flags.c.flag == r["flag"],
                                                            stock_flags.c.first_day == r["first_day"])))
            if rows:
                conn.execute(insert(stock_flags), rows)
        return len(rows)

    def import_from(self, source: str | Path | None = None, as_of: date | None = None) -> MasterImport:
        """Fetch (``read_master_source``), parse and import the master files ``source`` names."""
        files, server_day = read_master_source(source)
        records: list[MasterRecord] = []
        for name, data in files:
            try:
                records += parse_download(data, name)
            except MasterFormatError as exc:
                raise InputError(f"--from {source or MASTER_BASE_URL}: {exc}") from None
        day = as_of or server_day or datetime.now(KST).date()
        label = str(source) if source is not None else MASTER_BASE_URL
        return self.import_records(records, day, f"master:{label}")

    # --- reading -------------------------------------------------------------------------
    def frame(self, include_delisted: bool = True) -> pd.DataFrame:
        """Every code of the master, one row each (columns of ``stocks``), indexed by code."""
        stmt = select(stocks).order_by(stocks.c.code)
        if not include_delisted:
            stmt = stmt.where(stocks.c.delisting_date.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        df = pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in stocks.columns])
        return df.set_index("code", drop=False)

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(stocks.c.code)).all())

    def markets(self) -> dict[str, Market]:
        """code → the market whose tick table and band apply (ETFs and ETNs: ``Market.ETF``)."""
        out = {}
        with self.engine.connect() as conn:
            for code, market, kind in conn.execute(select(stocks.c.code, stocks.c.market, stocks.c.kind)):
                out[code] = Market.ETF if kind in ("etf", "etn") else Market(market)
        return out

    def names(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {c: n for c, n in conn.execute(select(stocks.c.code, stocks.c.name))}

    def flag_intervals(self, flag: str, codes: Iterable[str] | None = None) -> dict[str, list[tuple[date, date | None]]]:
        """code → the intervals of ``flag`` (first, last or None while in force), ascending."""
        stmt = select(stock_flags.c.code, stock_flags.c.first_day, stock_flags.c.last_day).where(
            stock_flags.c.flag == flag).order_by(stock_flags.c.code, stock_flags.c.first_day)
        wanted = set(codes) if codes is not None else None
        out: dict[str, list[tuple[date, date | None]]] = {}
        with self.engine.connect() as conn:
            for code, a, b in conn.execute(stmt):
                if wanted is None or code in wanted:
                    out.setdefault(code, []).append((_day(a), _day(b)))
        return out

    def halts(self, codes: Iterable[str] | None = None) -> dict[str, list[tuple[date, date | None]]]:
        """The known 거래정지 intervals per code (the quality guard's ``halts``)."""
        return self.flag_intervals("halted", codes)

    def flags_on(self, day: date) -> dict[str, set[str]]:
        """code → the designations in force on ``day`` by the recorded intervals."""
        out: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for code, flag, a, b in conn.execute(select(stock_flags.c.code, stock_flags.c.flag,
                                                        stock_flags.c.first_day, stock_flags.c.last_day)):
                if _day(a) <= day and (b is None or day <= _day(b)):
                    out.setdefault(code, set()).add(flag)
        return out

    def first_snapshot(self) -> date | None:
        with self.engine.connect() as conn:
            days = [_day(d) for (d,) in conn.execute(select(stocks.c.first_seen))]
        return min(days) if days else None


def master_if_present(url: str) -> StockMaster | None:
    """The stock master of ``url`` when that database exists and holds one — never creating a database
    as a side effect (a CSV backtest names the default cache URL without ever having made it)."""
    from sqlalchemy import inspect

    from configs.database import check_db_url

    try:
        check_db_url(url)
    except ValueError as exc:
        raise InputError(f"market-data database: {exc}") from None
    if sqlite_file_missing(url):
        return None
    from sqlalchemy.exc import DatabaseError

    engine = open_engine(url, "stock master")
    try:
        with engine.connect() as conn:
            present = inspect(conn).has_table("stocks") and conn.execute(select(stocks.c.code).limit(1)).first() is not None
    except DatabaseError as exc:
        engine.dispose()
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(f"database {safe_url(url)}: cannot use it ({first})") from None
    if not present:
        engine.dispose()
        return None
    return StockMaster(url, engine)


def master_for(url: str) -> StockMaster | None:
    """The stock master of a market-data database, or None when it has never been imported."""
    master = StockMaster(url)
    if len(master) == 0:
        master.close()
        return None
    return master


__all__ = ["FLAGS", "MasterImport", "StockMaster", "master_for", "master_if_present", "read_master_source"]

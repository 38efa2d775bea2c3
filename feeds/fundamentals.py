"""Fundamentals, point in time: every figure stamped with the first day it was public.

Sources (``run.py data fundamentals``):

* **KIS's finance TRs** (``finance/income-statement``, ``balance-sheet``, ``financial-ratio``, annual and
  quarterly, real environment) — they give the *period* of a figure, never the day it was published.
  The figure's ``known_from`` is then a conservative bound (``basis = lag``): the legal filing deadline,
  period end + 45 days for a quarter (분기·반기보고서) and + 90 days for a fiscal year (사업보고서; also the
  fourth quarter, which only the annual report discloses) — raised to the day after an earlier fetch of
  the same code that did *not* have the figure yet (a late filer), and lowered to the day a fetch first
  saw it (it was public then). Each fetch is recorded (item ``_fetched``) so later fetches can use it.
* **``inquire-price``** — PER, PBR, EPS, BPS, market cap and shares listed as of the fetch day
  (``period = snapshot``, ``basis = seen``).
* **A reference file** (``reference.json``, the emulator's format) — statements with their real
  publication day (``basis = report``), and shares listed with their dated history.

A restated figure (a later fetch with another value for the same period) is a new version with its own
``known_from``: a backtest on day D reads, per figure, the newest version known by D.

Point-in-time fields for a backtest (``FIELDS``; ``point_in_time``), each on day D from figures known by D:

* ``eps``, ``roe`` (%), ``revenue``, ``operating_income``, ``net_income``: the latest *annual* figure;
* ``bps``, ``debt_ratio`` (%): the latest balance-sheet figure, annual or quarterly (a stock quantity);
* ``shares_listed``: the latest known count; before the first one, the earliest known (KIS offers no
  history of shares listed; a documented approximation — shares change rarely and are no earnings news);
* ``per`` = close / eps, ``pbr`` = close / bps (NaN when the denominator is not positive: a loss-maker has
  no meaningful PER and never passes ``per_below``), ``market_cap`` = close × shares_listed. On
  back-adjusted bars the close before a split is scaled while EPS is not: PER/PBR around a split are
  off until the next statement (use original prices for valuation screens when it matters).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import and_, insert, or_, select
from sqlalchemy.engine import Engine

from configs.database import open_engine
from feeds.columns import FUNDAMENTAL_FIELDS
from feeds.tables import fundamentals as table
from migrations import migrate

log = logging.getLogger(__name__)

QUARTER_LAG_DAYS = 45
ANNUAL_LAG_DAYS = 90
FETCHED = "_fetched"
"""Item recording a fetch (period_end = the fetch day): the lower bound for figures it did not have."""

FIELDS = FUNDAMENTAL_FIELDS
"""Point-in-time fields a strategy, screen or panel can read (feed lines / panel fields of these names); the
names belong to the vocabulary of ``feeds.columns``, their definitions are here (``point_in_time``)."""

_ANNUAL_ITEMS = {"eps": "eps", "roe": "roe_pct", "revenue": "revenue", "operating_income": "operating_income",
                 "net_income": "net_income"}
_BALANCE_ITEMS = {"bps": "bps", "debt_ratio": "debt_ratio_pct"}
_ANNUAL, _STATEMENTS, _SNAPSHOT = ("annual",), ("annual", "quarter"), ("snapshot",)
_SOURCES = {**{f: (item, _ANNUAL) for f, item in _ANNUAL_ITEMS.items()},
            **{f: (item, _STATEMENTS) for f, item in _BALANCE_ITEMS.items()},
            "per": ("eps", _ANNUAL), "pbr": ("bps", _STATEMENTS), "shares_listed": ("shares_listed", _SNAPSHOT),
            "market_cap": ("shares_listed", _SNAPSHOT)}
"""field → (the stored item it is computed from, the periods of that item it reads) (``_fields``)."""


def items_for(fields: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The stored items (→ periods) ``point_in_time`` reads for ``fields``: a run reads only those rows."""
    out: dict[str, set[str]] = {}
    for f in fields:
        if f not in _SOURCES:
            raise ValueError(f"unknown fundamental field {f!r}; allowed: {', '.join(FIELDS)}")
        item, periods = _SOURCES[f]
        out.setdefault(item, set()).update(periods)
    return {item: tuple(sorted(p)) for item, p in sorted(out.items())}


def _day(v: object) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def filing_deadline(period: str, period_end: date, fiscal_month: int = 12) -> date:
    """The last day a figure of ``period`` ending ``period_end`` may legally be published."""
    annual = period == "annual" or period_end.month == fiscal_month
    return period_end + timedelta(days=ANNUAL_LAG_DAYS if annual else QUARTER_LAG_DAYS)


@dataclass
class Figure:
    code: str
    period: str
    period_end: date
    item: str
    value: float | None


@dataclass
class FundamentalsImport:
    codes: int
    figures: int
    new_versions: int
    failures: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def describe(self) -> str:
        head = "INTERRUPTED — run again to resume\n" if self.interrupted else ""
        asked = f"{self.requests:,} requests in " if self.requests else ""
        lines = [head + f"fundamentals: {self.codes} code(s), {self.figures:,} figure(s) read, {self.new_versions:,} new "
                 f"or restated, {len(self.failures)} failed, {asked}{self.seconds:.1f}s"]
        lines += [f"  failed {c}: {r}" for c, r in list(self.failures.items())[:50]]
        return "\n".join(lines)


class FundamentalsStore:
    """The ``fundamentals`` table of one market-data database."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or open_engine(url, "fundamentals")
        migrate.upgrade(self.engine)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "FundamentalsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------
    def _latest(self, conn, code: str) -> dict[tuple[str, date, str], tuple[date, float | None]]:
        out: dict[tuple[str, date, str], tuple[date, float | None]] = {}
        rows = conn.execute(select(table.c.period, table.c.period_end, table.c.item, table.c.known_from, table.c.value)
                            .where(table.c.code == code).order_by(table.c.known_from))
        for period, end, item, known, value in rows:
            out[(period, _day(end), item)] = (_day(known), value)
        return out

    def record(self, code: str, figures: Sequence[Figure], *, fetched: date, source: str,
               published: Mapping[tuple[str, date], date] | None = None, fiscal_month: int = 12,
               fetched_periods: Iterable[str] | None = None) -> int:
        """Store one code's figures from one fetch (ONE transaction); returns the new versions written.

        ``published``: (period, period_end) → report day when the source knows it (``basis = report``);
        else the deadline rule of the module docstring (``basis = lag``); snapshots are ``seen``.
        ``fetched_periods``: the periods this fetch asked for (recorded as ``_fetched``, the lower bound of
        whatever a later fetch brings); default: those present in ``figures``."""
        return self.record_many(code, [dict(figures=figures, fetched=fetched, source=source, published=published,
                                            fiscal_month=fiscal_month, fetched_periods=fetched_periods)])

    def record_many(self, code: str, fetches: Iterable[Mapping[str, Any]]) -> int:
        """Several ``record`` calls for one code (their keyword arguments, in order) in ONE transaction, the
        code's stored versions read once: the same rows as the calls one by one, at the cost of one (a
        reference file's statements for a code)."""
        with self._lock, self.engine.begin() as conn:
            latest = self._latest(conn, code)
            return sum(self._record(conn, latest, code, **f) for f in fetches)

    def _record(self, conn, latest: dict[tuple[str, date, str], tuple[date, float | None]], code: str,
                figures: Sequence[Figure], *, fetched: date, source: str,
                published: Mapping[tuple[str, date], date] | None = None, fiscal_month: int = 12,
                fetched_periods: Iterable[str] | None = None) -> int:
        fetch_days: dict[str, list[date]] = {}
        for (period, end, item) in latest:
            if item == FETCHED:
                fetch_days.setdefault(period, []).append(end)
        rows = []
        for f in figures:
            key = (f.period, f.period_end, f.item)
            have = latest.get(key)
            value = None if f.value is None or (isinstance(f.value, float) and np.isnan(f.value)) else float(f.value)
            if have is not None and (have[1] == value or (have[1] is not None and value is not None
                                                          and abs(have[1] - value) <= 1e-9 * max(1.0, abs(value)))):
                continue
            if have is not None or f.period == "snapshot":  # a restatement or a snapshot: public from this fetch on
                known, basis = fetched, "seen"
            elif published and (f.period, f.period_end) in published:
                known, basis = published[(f.period, f.period_end)], "report"
            else:
                known = filing_deadline(f.period, f.period_end, fiscal_month)
                lacked = [d for d in fetch_days.get(f.period, []) if f.period_end <= d < fetched]
                if lacked:                                  # an earlier fetch did not have it yet
                    known = max(known, max(lacked) + timedelta(days=1))
                known, basis = min(known, fetched), "lag"
            rows.append({"code": code, "period": f.period, "period_end": f.period_end, "item": f.item,
                         "known_from": known, "value": value, "basis": basis, "source": source})
        periods = set(fetched_periods) if fetched_periods is not None else \
            {f.period for f in figures if f.period != "snapshot"}
        for period in sorted(periods):
            if (period, fetched, FETCHED) not in latest:
                rows.append({"code": code, "period": period, "period_end": fetched, "item": FETCHED,
                             "known_from": fetched, "value": float(sum(1 for f in figures if f.period == period)),
                             "basis": "seen", "source": source})
        rows = list({(r["period"], r["period_end"], r["item"], r["known_from"]): r for r in rows}.values())
        if rows:
            conn.execute(insert(table), rows)
        for r in rows:                                  # what _latest would read back now
            key = (r["period"], r["period_end"], r["item"])
            if key not in latest or r["known_from"] >= latest[key][0]:
                latest[key] = (r["known_from"], r["value"])
        return sum(1 for r in rows if r["item"] != FETCHED)

    # --- reading -------------------------------------------------------------------------
    def rows(self, codes: Iterable[str] | None = None, items: Iterable[str] | None = None) -> pd.DataFrame:
        """Every stored version (columns of the table), for some codes / items."""
        stmt = select(table).where(table.c.item != FETCHED)
        if items is not None:
            stmt = stmt.where(table.c.item.in_(list(items)))
        codes = list(codes) if codes is not None else None
        frames = []
        with self.engine.connect() as conn:
            chunks = [codes[i:i + 500] for i in range(0, len(codes), 500)] if codes is not None else [None]
            for chunk in chunks:
                st = stmt if chunk is None else stmt.where(table.c.code.in_(chunk))
                frames.append(pd.DataFrame(conn.execute(st).mappings().all(), columns=[c.name for c in table.columns]))
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[c.name for c in table.columns])
        for col in ("period_end", "known_from"):
            df[col] = [_day(v) for v in df[col]]
        return df

    def figures(self, codes: Sequence[str], items: Mapping[str, Sequence[str]]) -> pd.DataFrame:
        """Every stored version of ``items`` (item → the periods wanted) for ``codes`` as columns — code, period, item (text),
        period_end, known_from (``datetime64[D]``), value (float, NaN for none) — read through the DB-API
        cursor: what a whole market's point-in-time fields are computed from (``rows`` builds Python
        objects per row, ten times slower on hundreds of thousands of rows)."""
        from feeds.cache import fetch_raw

        cols = (table.c.code, table.c.period, table.c.item, table.c.period_end, table.c.known_from, table.c.value)
        stmt = select(*cols).where(or_(*(and_(table.c.item == item, table.c.period.in_(list(periods)))
                                           for item, periods in items.items())))
        codes = list(codes)
        raw: list[tuple] = []
        with self.engine.connect() as conn:
            for i in range(0, len(codes), 500):
                raw += fetch_raw(conn, stmt.where(table.c.code.in_(codes[i:i + 500])))
        code, period, item, end, known, value = (list(c) for c in zip(*raw)) if raw else ([],) * 6
        return pd.DataFrame({"code": pd.Series(code, dtype=object), "period": pd.Series(period, dtype=object),
                             "item": pd.Series(item, dtype=object),
                             "period_end": np.array(end, dtype="datetime64[D]"),       # ISO text or dates
                             "known_from": np.array(known, dtype="datetime64[D]"),
                             "value": np.array(value, dtype=np.float64)})

    def as_of(self, code: str, day: date, period: str | None = None) -> dict[str, float]:
        """Every figure of ``code`` known on ``day``: item → the value of its latest period (``period``: only
        annual, quarter or snapshot figures; default: statements of either period, annual on a tie, and
        snapshot items where no statement has them)."""
        df = self.rows([code])
        df = df[df["known_from"] <= day]
        if period is not None:
            df = df[df["period"] == period]
        df = df.assign(rank=[{"snapshot": 0, "quarter": 1, "annual": 2}[p] for p in df["period"]])
        df = df.assign(stmt=df["period"] != "snapshot")
        out: dict[str, float] = {}
        for item, g in df.sort_values(["stmt", "period_end", "rank", "known_from"]).groupby("item"):
            out[item] = g.iloc[-1]["value"]
        return out

    def codes(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted({c for (c,) in conn.execute(select(table.c.code).distinct())})


# --- point-in-time fields ------------------------------------------------------------------------

_PERIOD_ORDER = {"snapshot": 0, "quarter": 1, "annual": 2}
"""Order of figures of one period end known on one day: an annual figure is taken over a quarterly one."""


def _as_days(values: pd.Series) -> np.ndarray:
    if np.issubdtype(values.dtype, np.datetime64):
        return values.to_numpy().astype("datetime64[D]")
    return np.array([_day(v) for v in values], dtype="datetime64[D]")


def _step_table(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Every code's steps at once: (code index, day, value) sorted by code then day, and the codes. From
    each day on, a code's value is that of the *latest period* among the versions known by then, in its
    newest version: a later version of an older period never moves it back, a restatement of the latest
    one does. Vectorised over all codes (a whole market's rows take a fraction of a second)."""
    if rows.empty:
        return np.array([], np.int64), np.array([], "datetime64[D]"), np.array([]), []
    codes, code_id = np.unique(rows["code"].astype(str).to_numpy(), return_inverse=True)
    end, known = _as_days(rows["period_end"]), _as_days(rows["known_from"])
    rank = rows["period"].map(_PERIOD_ORDER).fillna(0).to_numpy(np.int64)
    value = pd.to_numeric(rows["value"], errors="coerce").to_numpy(np.float64)       # None: NaN
    order = np.lexsort((rank, end, known, code_id))
    code_id, end, known, value = code_id[order], end[order], known[order], value[order]
    e = end.astype(np.int64)
    latest = pd.Series(e).groupby(code_id).cummax().to_numpy()            # the latest period known so far
    holder = pd.Series(np.where(e == latest, np.arange(len(e)), -1)).groupby(code_id).cummax().to_numpy()
    last_of_day = np.r_[(code_id[1:] != code_id[:-1]) | (known[1:] != known[:-1]), True]
    return code_id[last_of_day], known[last_of_day], value[holder][last_of_day], [str(c) for c in codes]


def _steps(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(days, values) of ONE code's steps (``_step_table``)."""
    _ids, days, values, _codes = _step_table(rows)
    return days, values


def _on(days: np.ndarray, steps: tuple[np.ndarray, np.ndarray], backfill: bool = False) -> np.ndarray:
    at, vals = steps
    out = np.full(len(days), np.nan)
    if not len(at):
        return out
    i = np.searchsorted(at, days, side="right") - 1
    ok = i >= 0
    out[ok] = vals[i[ok]]
    if backfill:
        out[~ok] = vals[0]
    return out


def _grid(rows: pd.DataFrame, days: np.ndarray, codes: Sequence[str], item: str, periods: tuple[str, ...],
          backfill: bool = False) -> np.ndarray:
    """Day × code values of one stored item on ``days`` (NaN where nothing is known yet)."""
    part = rows[(rows["item"] == item) & rows["period"].isin(periods)]
    ids, at, vals, known_codes = _step_table(part)
    out = np.full((len(days), len(codes)), np.nan)
    column = {c: j for j, c in enumerate(codes)}
    bounds = np.searchsorted(ids, np.arange(len(known_codes) + 1))
    for u, code in enumerate(known_codes):
        j = column.get(code)
        if j is not None:
            out[:, j] = _on(days, (at[bounds[u]:bounds[u + 1]], vals[bounds[u]:bounds[u + 1]]), backfill)
    return out


def _fields(rows: pd.DataFrame, days: np.ndarray, codes: Sequence[str], close: np.ndarray,
            fields: Iterable[str]) -> dict[str, np.ndarray]:
    """The point-in-time ``fields`` as day × code arrays (``close``: day × code) — the one computation
    behind both engines' columns (``point_in_time`` per code, ``panel_fields`` per panel)."""
    wanted = list(dict.fromkeys(fields))
    need = set(wanted)
    base: dict[str, np.ndarray] = {}

    def series(item: str, periods: tuple[str, ...], backfill: bool = False) -> np.ndarray:
        return _grid(rows, days, codes, item, periods, backfill)

    for f in ("eps", "bps", "shares_listed", *_ANNUAL_ITEMS, *_BALANCE_ITEMS):
        derived = {"eps": {"per"}, "bps": {"pbr"}, "shares_listed": {"market_cap"}}.get(f, set())
        if (need & ({f} | derived)) and f not in base:
            item, periods = _SOURCES[f]
            base[f] = series(item, periods, backfill=periods == _SNAPSHOT)
    with np.errstate(divide="ignore", invalid="ignore"):
        if "per" in need:
            eps = base["eps"]
            base["per"] = np.where(eps > 0, close / eps, np.nan)
        if "pbr" in need:
            bps = base["bps"]
            base["pbr"] = np.where(bps > 0, close / bps, np.nan)
        if "market_cap" in need:
            base["market_cap"] = close * base["shares_listed"]
    out: dict[str, np.ndarray] = {}
    for f in wanted:
        if f not in base:
            raise ValueError(f"unknown fundamental field {f!r}; allowed: {', '.join(FIELDS)}")
        out[f] = base[f]
    return out


def point_in_time(rows: pd.DataFrame, days: Sequence[object], close: np.ndarray,
                  fields: Iterable[str] = FIELDS) -> dict[str, np.ndarray]:
    """The point-in-time ``fields`` of ONE code on ``days`` (its bars' days) given its ``close`` per day
    and its stored figures ``rows`` (``FundamentalsStore.rows([code])``). NaN where nothing is known."""
    d = np.array(pd.DatetimeIndex(days).values, dtype="datetime64[D]")
    close = np.asarray(close, dtype=np.float64)[:, None]
    grids = _fields(rows.assign(code=""), d, [""], close, fields)
    return {f: g[:, 0] for f, g in grids.items()}


def stored_rows(url: str, codes: Sequence[str], fields: Sequence[str]) -> pd.DataFrame:
    """The stored rows ``fields`` are computed from, for ``codes`` — what both engines read. A database that
    does not exist (it is never created by a read) or holds none of them for any code is an ``InputError``:
    a screen on fundamentals would otherwise run and silently never pass."""
    from configs.database import check_db_url, safe_url, sqlite_file_missing
    from configs.errors import InputError

    items = items_for(fields)
    try:
        check_db_url(url)
    except ValueError as exc:
        raise InputError(f"data.cache_url: {exc}") from None
    how = ("import them with 'run.py data fundamentals --reference FILE' or fetch them from KIS with "
           "'run.py data fundamentals --config FILE' (data.cache_url names the database)")
    if sqlite_file_missing(url):
        raise InputError(f"fundamental field(s) {', '.join(fields)}: no market-data database at {safe_url(url)}; {how}")
    with FundamentalsStore(url) as store:
        rows = store.figures(list(codes), items)
    if rows.empty:
        raise InputError(f"fundamental field(s) {', '.join(fields)}: {safe_url(url)} holds no {', '.join(items)} "
                         f"figure for any of the {len(codes)} code(s) of the run; {how}")
    return rows


def add_fundamentals(frames: Mapping[str, pd.DataFrame], url: str, fields: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Each frame with float columns ``fields`` added, point in time (the event engine's feed lines)."""
    fields = list(dict.fromkeys(fields))
    rows = stored_rows(url, list(frames), fields)
    by_code = {c: g for c, g in rows.groupby("code")} if len(rows) else {}
    empty = rows.iloc[:0]
    out = {}
    for code, df in frames.items():
        values = point_in_time(by_code.get(code, empty), df.index, df["close"].to_numpy(), fields)
        new = df.copy()
        for f, arr in values.items():
            new[f] = arr
        out[code] = new
    return out


def panel_fields(url: str, dates: np.ndarray, codes: Sequence[str], close: np.ndarray,
                 fields: Iterable[str]) -> dict[str, np.ndarray]:
    """The same fields as day × code arrays (the fast engine's panel: ``close`` is day × code, NaN where a
    code has no bar; the result is NaN there too)."""
    fields = list(dict.fromkeys(fields))
    rows = stored_rows(url, list(codes), fields)
    days = np.asarray(dates, dtype="datetime64[D]")
    close = np.asarray(close, dtype=np.float64)
    no_bar = np.isnan(close)
    out = _fields(rows, days, [str(c) for c in codes], close, fields)
    for grid in out.values():
        grid[no_bar] = np.nan
    return out


def panel_provider(url: str, batch: Iterable[str] = ()) -> Callable[[object, str], dict[str, np.ndarray] | None]:
    """A field provider for the fast engine's panel (``research.panel.register_field_provider``): it answers
    for the names in ``FIELDS`` with day × code arrays from ``url``'s fundamentals (``panel_fields``), the
    same values the event engine's feed lines get, and None for any other name. The first request also
    computes the other fields of ``batch`` (one read of the database for all the fields a run needs). The
    panel passes itself; the provider reads ``panel.dates``, ``panel.codes`` and ``panel.field("close")``."""
    extra = [f for f in dict.fromkeys(batch) if f in FIELDS]

    def provide(panel: object, name: str) -> dict[str, np.ndarray] | None:
        if name not in FIELDS:
            return None
        have = getattr(panel, "fields", {})
        fields = [name] + [f for f in extra if f != name and f not in have]
        close = panel.field("close")  # type: ignore[attr-defined]
        return panel_fields(url, panel.dates, list(panel.codes), close, fields)  # type: ignore[attr-defined]
    return provide


def shares_on(url: str, codes: Sequence[str], day: date) -> dict[str, float]:
    """Shares listed known on ``day`` per code (snapshots; before the first, the earliest known)."""
    with FundamentalsStore(url) as store:
        rows = store.rows(codes, ["shares_listed"])
    out = {}
    for code, g in rows.groupby("code"):
        out[code] = float(_on(np.array([np.datetime64(day, "D")]), _steps(g[g["period"] == "snapshot"]), True)[0])
    return out


def market_caps(url: str, codes: Sequence[str], day: date, master=None) -> dict[str, float]:
    """Market cap on ``day`` = the close of the last bar on or before it (original prices preferred) ×
    the shares known then (``shares_on``; the master's count when no figure is stored)."""
    from feeds.cache import BarCache

    shares = shares_on(url, codes, day)
    if master is not None:
        df = master.frame()
        for c in codes:
            if np.isnan(shares.get(c, np.nan)) and c in df.index:
                shares[c] = float(df.at[c, "shares_listed"])
    out = {}
    with BarCache(url) as cache:
        for c in codes:
            bars = cache.read(c, end=day, prefer=False)
            if len(bars) and not np.isnan(shares.get(c, np.nan)):
                out[c] = float(bars["close"].iloc[-1]) * shares[c]
    return out


# --- fetching from KIS and importing a reference file --------------------------------------------

def _frame_figures(code: str, period: str, frame: pd.DataFrame) -> list[Figure]:
    out = []
    for end, row in frame.iterrows():
        for item, v in row.items():
            out.append(Figure(code, period, pd.Timestamp(end).date(), str(item),
                              None if pd.isna(v) else float(v)))
    return out


def fetch_code(client, code: str, today: date) -> tuple[list[Figure], int]:
    """Every figure KIS gives for one code (six finance TRs + inquire-price); (figures, requests)."""
    figures: list[Figure] = []
    n = 0
    for quarterly, period in ((False, "annual"), (True, "quarter")):
        for method in (client.income_statement, client.balance_sheet, client.financial_ratios):
            figures += _frame_figures(code, period, method(code, quarterly=quarterly))
            n += 1
    q = client.quote(code)
    n += 1
    raw = q.raw
    snap = {"per": raw.get("per"), "pbr": raw.get("pbr"), "eps": raw.get("eps"), "bps": raw.get("bps"),
            "shares_listed": raw.get("lstn_stcn"), "market_cap": raw.get("hts_avls")}
    for item, text in snap.items():
        try:
            v = float(str(text).strip()) if text not in (None, "") else None
        except ValueError:
            v = None
        if v is not None and item == "market_cap":
            v *= 100_000_000                     # hts_avls: 억원
        figures.append(Figure(code, "snapshot", today, item, v))
    return figures, n


def fetch_fundamentals(client, store: FundamentalsStore, codes: Sequence[str], today: date, *, workers: int = 4,
                       fiscal_months: Mapping[str, int] | None = None, stop: threading.Event | None = None,
                       progress: Callable[[int, int], None] | None = None) -> FundamentalsImport:
    """Fetch and record every code's figures, several codes in flight on the client's shared rate budget."""

    from brokers.kis.errors import KISError
    from feeds.download import run_pool

    t0 = time.monotonic()
    req0 = client.stats.requests
    result = FundamentalsImport(codes=len(codes), figures=0, new_versions=0)
    lock = threading.Lock()
    done = [0]

    def one(code: str) -> None:
        try:
            figures, _ = fetch_code(client, code, today)
        except KISError as exc:
            with lock:
                result.failures[code] = f"KIS: {exc}"
            return
        new = store.record(code, figures, fetched=today, source=f"kis-{client.env.value}",
                           fiscal_month=(fiscal_months or {}).get(code, 12), fetched_periods=("annual", "quarter"))
        with lock:
            result.figures += len(figures)
            result.new_versions += new
            done[0] += 1
            if progress is not None:
                progress(done[0], len(codes))

    result.interrupted = run_pool(list(codes), one, workers, stop or threading.Event())
    result.requests = client.stats.requests - req0
    result.seconds = time.monotonic() - t0
    return result


def import_reference(store: FundamentalsStore, reference, source: str,
                     progress: Callable[[int, int], None] | None = None) -> FundamentalsImport:
    """Statements with their publication days and dated shares listed from a reference file
    (``brokers/kis/emulator/reference.py`` format): ``basis = report``; one transaction per code."""
    from brokers.kis.emulator.reference import BALANCE_FIELDS, INCOME_FIELDS

    t0 = time.monotonic()
    result = FundamentalsImport(codes=len(reference.securities), figures=0, new_versions=0)
    for done, (code, sec) in enumerate(reference.securities.items(), 1):
        figures: list[Figure] = []
        published: dict[tuple[str, date], date] = {}
        for st in sec.financials:
            if not st.consolidated and any(o.consolidated and o.period == st.period and o.period_end == st.period_end
                                           for o in sec.financials):
                continue
            published[(st.period, st.period_end)] = st.published
            shares = reference.shares_on(code, st.period_end) or None
            for item in (*INCOME_FIELDS, *BALANCE_FIELDS):
                figures.append(Figure(code, st.period, st.period_end, item, getattr(st, item)))
            eq, ni = st.total_equity, st.net_income
            ratios = {"roe_pct": (ni * (4 if st.period == "quarter" else 1) / eq * 100) if eq and ni is not None else None,
                      "eps": ni / shares if shares and ni is not None else None,
                      "bps": eq / shares if shares and eq is not None else None,
                      "debt_ratio_pct": (st.total_liabilities / eq * 100) if eq and st.total_liabilities is not None
                      else None}
            figures += [Figure(code, st.period, st.period_end, k, v) for k, v in ratios.items()]
        hist = sec.shares_listed if isinstance(sec.shares_listed, list) else None
        if hist is None:
            figures.append(Figure(code, "snapshot", sec.listing_date, "shares_listed", float(sec.shares_listed)))
            published[("snapshot", sec.listing_date)] = sec.listing_date
        else:
            for e in hist:
                figures.append(Figure(code, "snapshot", e.start, "shares_listed", float(e.value)))
        fetches: list[dict[str, Any]] = [dict(figures=[f], fetched=f.period_end, source=source, fetched_periods=())
                                         for f in figures if f.period == "snapshot"]
        by_statement: dict[tuple[str, date], list[Figure]] = {}
        for f in figures:
            if f.period != "snapshot":
                by_statement.setdefault((f.period, f.period_end), []).append(f)
        fetches += [dict(figures=by_statement.get(key, []), fetched=pub, source=source, published={key: pub},
                         fetched_periods=())
                    for key, pub in sorted(published.items(), key=lambda kv: kv[1]) if key[0] != "snapshot"]
        result.new_versions += store.record_many(code, fetches)      # one transaction per code
        result.figures += len(figures)
        if progress is not None:
            progress(done, len(reference.securities))
    result.seconds = time.monotonic() - t0
    return result


__all__ = ["ANNUAL_LAG_DAYS", "FIELDS", "Figure", "FundamentalsImport", "FundamentalsStore", "QUARTER_LAG_DAYS",
           "add_fundamentals", "fetch_code", "fetch_fundamentals", "filing_deadline", "import_reference", "items_for",
           "market_caps", "panel_fields", "panel_provider", "point_in_time", "shares_on", "stored_rows"]

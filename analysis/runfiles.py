"""A ``RunRecord`` to and from the files of a run folder, losslessly enough to re-render the report.

Why a folder of plain files: a report must be re-renderable (``run.py report --run DIR``) after the
backtest process is gone, and CSV/JSON stay readable by people and by other tools (Excel, pandas).

Layout (all UTF-8, ``\\n`` line ends; datetimes ISO-8601 with the Korean offset, e.g.
``2024-01-02T15:30:00+09:00``; codes always text so ``005930`` keeps its zeros):

* ``run.json``      — scalar fields of the record, ``markets``, ``config``, ``benchmark_label``.
* ``equity.csv``    — ``datetime, value, cash[, other equity columns], benchmark`` (empty without).
* ``trades.csv``    — one row per fill, ``analysis.record.TRADE_COLUMNS`` first.
* ``orders.csv``    — one row per order with final status and reason, ``ORDER_COLUMNS`` first.
* ``prices.csv``    — long format ``datetime, code, open, high, low, close, volume``.
* ``progress.csv``  — Trade Target progress, ``code`` then ``PROGRESS_COLUMNS``.
* ``events.csv``    — ``datetime, kind, code, message``.

:func:`write_files` writes every file under a temporary name first and renames them into place
only after all were written, so an error never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from analysis.formatting import fmt_ref
from analysis.metrics import KST, to_kst_index
from analysis.record import (EVENT_COLUMNS, ORDER_COLUMNS, PROGRESS_COLUMNS, TRADE_COLUMNS,
                             RunRecord)
from configs.errors import InputError

FORMAT_NAME = "krx-trader run"
FORMAT_VERSION = 1
RUN_JSON, EQUITY_CSV, TRADES_CSV, ORDERS_CSV = "run.json", "equity.csv", "trades.csv", "orders.csv"
PRICES_CSV, PROGRESS_CSV, EVENTS_CSV = "prices.csv", "progress.csv", "events.csv"
PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]
TEXT_COLUMNS = ("code", "side", "type", "status", "reason", "kind", "message")
REF_COLUMNS = ("ref", "order_ref")
DATETIME_COLUMNS = ("datetime", "created", "updated")
_PLAIN_INT = re.compile(r"^(0|[1-9][0-9]*)$")


# --------------------------------------------------------------------------- datetimes

def iso_kst(values: Iterable[Any] | pd.Index | pd.Series) -> list[str]:
    """ISO-8601 strings in KST with ``+09:00`` (``""`` for missing). Naive values are taken as KST.

    Korea has had no daylight saving time since 1988, so the offset is always +09:00 and can be
    appended after converting, which keeps this vectorised for long price files.
    """
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(pd.Index(values), format="ISO8601") if _is_text(values)
                               else pd.Index(values))
        idx = to_kst_index(idx)
    except (TypeError, ValueError):
        return ["" if _missing(v) else str(v) for v in values]
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if (idx.microsecond != 0).any() else "%Y-%m-%dT%H:%M:%S"
    text = idx.strftime(fmt)
    return ["" if pd.isna(t) else f"{s}+09:00" for s, t in zip(text, idx)]


def _is_text(values: Any) -> bool:
    sample = [v for v in list(values)[:50] if not _missing(v)]
    return bool(sample) and all(isinstance(v, str) for v in sample)


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def parse_kst(values: Iterable[Any]) -> pd.DatetimeIndex:
    """ISO-8601 strings (any offset, or none = KST) back to an Asia/Seoul DatetimeIndex; blanks → NaT."""
    raw = pd.Series(list(values), dtype=object)
    raw = raw.where(raw.notna() & (raw.astype(str).str.strip() != ""), None)
    if raw.isna().all():
        return pd.DatetimeIndex([pd.NaT] * len(raw), tz=KST)
    parsed = pd.to_datetime(raw, format="ISO8601", utc=True)
    return pd.DatetimeIndex(parsed).tz_convert(KST)


# --------------------------------------------------------------------------- frames for the files

def equity_frame(record: RunRecord) -> pd.DataFrame:
    """``datetime, value, cash, …, benchmark`` with the benchmark aligned to the equity bars."""
    eq = record.equity
    if eq is None or len(eq) == 0:
        return pd.DataFrame(columns=["datetime", "value", "cash", "benchmark"])
    idx = to_kst_index(eq.index)
    out = pd.DataFrame({"datetime": iso_kst(idx)})
    cols = ["value", "cash"] + [c for c in eq.columns if c not in ("value", "cash", "benchmark")]
    for c in cols:
        out[c] = eq[c].to_numpy() if c in eq else np.nan
    if record.benchmark is not None and len(record.benchmark):
        b = pd.Series(record.benchmark.to_numpy(), index=to_kst_index(record.benchmark.index))
        b = b[~b.index.duplicated(keep="last")]
        out["benchmark"] = b.reindex(idx).to_numpy()
    else:
        out["benchmark"] = np.nan
    return out


def _table_frame(df: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """The contract's columns first (created empty when missing), extra columns after, datetimes ISO."""
    if df is None or len(df) == 0:
        extra = [] if df is None else [c for c in df.columns if c not in columns]
        return pd.DataFrame(columns=columns + extra)
    out = df.reset_index(drop=True).copy()
    for c in columns:
        if c not in out.columns:
            out[c] = np.nan
    out = out[columns + [c for c in out.columns if c not in columns]]
    for c in DATETIME_COLUMNS:
        if c in out.columns:
            out[c] = iso_kst(out[c])
    for c in REF_COLUMNS:
        if c in out.columns:
            out[c] = [fmt_ref(v) for v in out[c]]
    return out


def trades_frame(record: RunRecord) -> pd.DataFrame:
    return _table_frame(record.trades, TRADE_COLUMNS)


def orders_frame(record: RunRecord) -> pd.DataFrame:
    return _table_frame(record.orders, ORDER_COLUMNS)


def events_frame(record: RunRecord) -> pd.DataFrame:
    return _table_frame(record.events, EVENT_COLUMNS)


def progress_frame(record: RunRecord) -> pd.DataFrame:
    p = record.progress
    if p is None or len(p) == 0:
        return pd.DataFrame(columns=["code"] + PROGRESS_COLUMNS)
    out = p.copy()
    out.index = out.index.astype(str)
    out.index.name = "code"
    out = out.reset_index()
    return _table_frame(out, ["code"] + PROGRESS_COLUMNS)


def prices_long(prices: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All codes' bars stacked: ``datetime, code, open, high, low, close, volume``."""
    parts = []
    for code in sorted(prices):
        df = prices[code]
        if df is None or len(df) == 0:
            continue
        part = pd.DataFrame({"datetime": iso_kst(df.index), "code": str(code)})
        for c in PRICE_COLUMNS:
            part[c] = df[c].to_numpy() if c in df else np.nan
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["datetime", "code"] + PRICE_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def run_json(record: RunRecord) -> dict[str, Any]:
    """The record's scalar fields, markets and config (JSON-safe, ``default=str`` for odd values)."""
    return {
        "format": FORMAT_NAME, "version": FORMAT_VERSION,
        "written_at": datetime.now(KST).isoformat(timespec="seconds"),
        "name": record.name, "mode": record.mode, "strategy": record.strategy,
        "data_label": record.data_label, "synthetic": bool(record.synthetic),
        "initial_cash": int(record.initial_cash), "risk_free_pct": float(record.risk_free_pct),
        "benchmark_label": record.benchmark_label,
        "markets": {str(k): str(v) for k, v in (record.markets or {}).items()},
        "config": json.loads(json.dumps(record.config or {}, default=str)),
    }


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n").encode("utf-8")


def record_files(record: RunRecord) -> dict[str, bytes]:
    """Every data file of the run folder, in memory (nothing is written here)."""
    return {
        RUN_JSON: json_bytes(run_json(record)),
        EQUITY_CSV: csv_bytes(equity_frame(record)),
        TRADES_CSV: csv_bytes(trades_frame(record)),
        ORDERS_CSV: csv_bytes(orders_frame(record)),
        PRICES_CSV: csv_bytes(prices_long(record.prices or {})),
        PROGRESS_CSV: csv_bytes(progress_frame(record)),
        EVENTS_CSV: csv_bytes(events_frame(record)),
    }


# --------------------------------------------------------------------------- writing

def write_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (name → bytes) into ``out_dir`` all-or-nothing per file.

    Each file goes to a hidden temporary name first; only when every temporary file was written
    are they renamed (``os.replace``, atomic on one filesystem) in the given order. On an error the
    temporaries are removed and the previous files, if any, stay untouched.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    temps: list[tuple[Path, Path]] = []
    try:
        for name, data in files.items():
            final = out_dir / name
            tmp = out_dir / f".{name}.tmp-{token}"
            temps.append((tmp, final))
            with open(tmp, "wb") as fh:
                fh.write(data)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _final in temps:
            if tmp.exists():
                try:
                    tmp.unlink()
                except OSError:
                    pass


# --------------------------------------------------------------------------- reading

def _read_csv(path: Path) -> pd.DataFrame:
    dtypes = {c: str for c in TEXT_COLUMNS + REF_COLUMNS + DATETIME_COLUMNS}
    return pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])


def _refs(col: pd.Series) -> pd.Series:
    """Order references back to integers when they all were plain integers, else kept as text
    (a KIS order number like ``0000117057`` must keep its zeros)."""
    present = col.dropna().astype(str)
    if len(present) and present.map(lambda s: bool(_PLAIN_INT.match(s))).all():
        return pd.to_numeric(col, errors="coerce").astype("Int64")
    return col.astype(object).where(col.notna(), None)


def _restore_table(df: pd.DataFrame) -> pd.DataFrame:
    for c in DATETIME_COLUMNS:
        if c in df.columns:
            df[c] = parse_kst(df[c])
    for c in REF_COLUMNS:
        if c in df.columns:
            df[c] = _refs(df[c])
    for c in TEXT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def load_record(out_dir: str | Path) -> RunRecord:
    """Rebuild the ``RunRecord`` of a run folder written by ``analysis.report.write_report``.

    A folder whose files were edited or truncated is an ``InputError`` naming it, not a traceback."""
    d = Path(out_dir)
    try:
        return _load_record(d)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{d}: the run folder's files are damaged or were edited ({type(exc).__name__}: "
                         f"{first}); re-run the backtest to write it again") from None


def _load_record(d: Path) -> RunRecord:
    meta_path = d / RUN_JSON
    if not meta_path.is_file():
        raise InputError(f"{d} is not a run folder: {RUN_JSON} is missing "
                         "(write one with analysis.report.write_report)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: expected a JSON object")
    if meta.get("format") != FORMAT_NAME or int(meta.get("version", 0)) > FORMAT_VERSION:
        raise InputError(f"{meta_path}: unsupported run folder format {meta.get('format')!r} "
                         f"version {meta.get('version')!r} (this code reads version {FORMAT_VERSION})")

    eq = _read_csv(d / EQUITY_CSV)
    idx = parse_kst(eq["datetime"]) if len(eq) else pd.DatetimeIndex([], tz=KST)
    idx.name = "datetime"
    bench = None
    if "benchmark" in eq.columns:
        b = pd.to_numeric(eq["benchmark"], errors="coerce")
        if b.notna().any():
            bench = pd.Series(b.to_numpy(dtype=float), index=idx, name="benchmark")
    equity = eq.drop(columns=[c for c in ("datetime", "benchmark") if c in eq.columns])
    equity.index = idx

    trades = _restore_table(_read_csv(d / TRADES_CSV))
    orders = _restore_table(_read_csv(d / ORDERS_CSV))
    events = _restore_table(_read_csv(d / EVENTS_CSV))
    progress = _read_csv(d / PROGRESS_CSV)
    progress = progress.set_index("code") if "code" in progress.columns else progress
    progress.index = progress.index.astype(str)
    progress.index.name = "code"

    prices: dict[str, pd.DataFrame] = {}
    long = _read_csv(d / PRICES_CSV)
    if len(long):
        long.index = parse_kst(long["datetime"])
        long.index.name = "datetime"
        for code, g in long.groupby("code", sort=True):
            prices[str(code)] = g[[c for c in PRICE_COLUMNS if c in g.columns]]

    return RunRecord(
        name=meta["name"], mode=meta["mode"], strategy=meta["strategy"], data_label=meta["data_label"],
        synthetic=bool(meta["synthetic"]), initial_cash=int(meta["initial_cash"]), equity=equity,
        trades=trades, orders=orders, prices=prices, progress=progress, events=events,
        markets=dict(meta.get("markets") or {}), config=dict(meta.get("config") or {}),
        benchmark=bench, benchmark_label=meta.get("benchmark_label", ""),
        risk_free_pct=float(meta.get("risk_free_pct", 0.0)),
    )

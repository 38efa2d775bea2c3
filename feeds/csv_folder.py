"""Load a folder of ``CODE.csv`` bar files, refusing anything a backtest should not trust.

Layout (that of ``shared/data/krx/daily`` and ``intraday_5m``): one file per code, a header line,
then ``date,open,high,low,close,volume`` (daily, ``YYYY-MM-DD``) or
``datetime,open,high,low,close,volume`` (intraday, ``YYYY-MM-DD HH:MM[:SS]``, naive KST). Column
names are matched case-insensitively; extra columns (e.g. ``change``) are ignored. Prices and
volumes must be whole numbers (integer KRW / shares; ``60800.0`` is accepted).

Why so strict: a silently skipped bad row shifts every indicator and fill after it, and a
half-loaded universe produces a backtest that looks fine and is wrong. So every problem raises a
``CSVDataError`` naming the file, the line (header = line 1), the field, the offending value and
what is allowed, and nothing is returned unless every requested file loaded.

Back-adjusted prices (Naver / pykrx) round each of O/H/L/C separately, which leaves some highs
1–5 KRW under max(open, close) (see ``shared/data/krx/README.md``). With
``clamp_adjusted_high=True`` such gaps are closed (high raised / low lowered) and every clamp is
reported; a wider gap is still an error, because that is no longer rounding.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from configs.errors import InputError
from configs.files import read_text, shown
from feeds.quality import Finding, HaltIntervals, check_bars, first_error, ohlc_violations, order_violation
from feeds.timeframes import bar_index, infer_timeframe, slice_bars

log = logging.getLogger(__name__)

CODE_FILE = re.compile(r"^(?=.*[0-9])[0-9A-Z]{6}$")
"""File stems taken as codes: 6 digits or capitals with at least one digit (so README.csv is not a code)."""
PRICE_FIELDS = ("open", "high", "low", "close")
NUMBER_FIELDS = (*PRICE_FIELDS, "volume")
TIME_FIELDS = ("date", "datetime")
MAX_CSV_BYTES = 1 << 30
MAX_NUMBER = 1e15
"""Beyond this a value cannot be a price or a volume (and past 9.2e18 it would not even fit int64)."""
_ALLOWED_BY_KIND = {
    "magnitude": "prices up to 100,000,000 KRW and volumes up to 100,000,000,000 shares",
    "session": "dates that are sessions of the XKRX calendar",
    "spike": "prices inside the session's price band (or a corporate action that persists)",
}
MAX_CLAMP_KRW = 5
"""Largest high/low gap (KRW) treated as adjustment rounding rather than bad data."""

_REQUIRED_TEXT = "a time column ('date' or 'datetime') and open, high, low, close, volume"
_DATE_FORMAT = "%Y-%m-%d"
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")

ProgressFn = Callable[[str, int, int], None]


class CSVDataError(InputError):
    """A bar file that cannot be used. ``str(err)`` names file, line, field, value and what is
    allowed; the same facts are attributes for programs."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None,
                 field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.line = line
        self.field = field
        self.value = value


@dataclass(frozen=True, slots=True)
class Clamp:
    """One high raised (or low lowered) to cover open/close in back-adjusted data."""

    code: str
    line: int
    field: str      # "high" or "low"
    before: int
    after: int


@dataclass
class CSVFolder:
    """What ``read_csv_folder`` loaded: frames (index ``datetime``, int64 OHLCV), the timeframe
    shared by every file, the clamps applied and where each code came from."""

    bars: dict[str, pd.DataFrame]
    timeframe: str
    clamps: list[Clamp] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    """The quality guard's findings per code (``feeds.quality``); errors were refused already."""

    @property
    def clamp_counts(self) -> dict[str, int]:
        """Clamps per code (codes without clamps are absent)."""
        return dict(Counter(c.code for c in self.clamps))


def _fail(path: Path, line: int | None, fld: str | None, value: object, problem: str,
          allowed: str) -> CSVDataError:
    where = f"{shown(path)}" + (f", line {line}" if line is not None else "")
    what = f", field '{fld}'" if fld is not None else ""
    val = f": value {value!r}" if value is not None else ":"
    return CSVDataError(f"{where}{what}{val} {problem}; allowed: {allowed}",
                        path=path, line=line, field=fld, value=value)


def csv_paths(folder: Path | str, universe: Iterable[str] | None = None) -> dict[str, Path]:
    """Map code -> file for the requested codes (all ``CODE.csv`` files when ``universe`` is None).

    Raises ``CSVDataError`` for a missing folder, a missing file for any requested code (all of
    them are listed), or a folder without any ``CODE.csv`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CSVDataError(f"{folder}: bar folder not found (expected a folder of CODE.csv files, "
                           "e.g. 005930.csv)", path=folder)
    available = {p.stem: p for p in sorted(folder.glob("*.csv")) if CODE_FILE.match(p.stem)}
    if universe is None:
        if not available:
            raise CSVDataError(f"{folder}: no CODE.csv files (file names must be 6-character codes "
                               "such as 005930.csv)", path=folder)
        return available
    codes = list(universe)
    missing = [c for c in codes if not (folder / f"{c}.csv").is_file()]
    if missing:
        sample = ", ".join(list(available)[:10]) + (" ..." if len(available) > 10 else "")
        raise CSVDataError(
            f"{folder}: no file for requested code(s) {', '.join(missing)} "
            f"(looked for {', '.join(str(folder / f'{c}.csv') for c in missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}); available: {sample or 'none'}",
            path=folder / f"{missing[0]}.csv", field="code", value=missing[0])
    return {c: folder / f"{c}.csv" for c in codes}


def _read_text(path: Path) -> str:
    try:
        return read_text(path, "bar file", MAX_CSV_BYTES)
    except InputError as exc:    # binary, not UTF-8 (CP949 hinted), unreadable: the loader's error type
        raise CSVDataError(str(exc), path=path) from None


def _header(path: Path, text: str) -> list[str]:
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise _fail(path, None, None, None, "is empty (no header line)",
                    f"a header line with {_REQUIRED_TEXT}, then one row per bar")
    return [c.strip() for c in first.rstrip("\r\n").split(",")]


def _unique(header: list[str]) -> list[str]:
    """Column names pandas accepts (an ignored column may repeat: ``x``, ``x.1``, ...)."""
    seen: Counter[str] = Counter()
    out = []
    for h in header:
        out.append(h if not seen[h] else f"{h}.{seen[h]}")
        seen[h] += 1
    return out


def _columns(path: Path, header: list[str]) -> tuple[str, dict[str, str]]:
    """(time field, {field: column name in the file}) after checking the header."""
    lowered = [h.lower() for h in header]
    dup = sorted({h for h in lowered if lowered.count(h) > 1 and h in (*TIME_FIELDS, *NUMBER_FIELDS)})
    if dup:
        raise _fail(path, 1, dup[0], dup[0], "appears more than once in the header",
                    f"each of {_REQUIRED_TEXT} exactly once")
    times = [t for t in TIME_FIELDS if t in lowered]
    if len(times) != 1:
        problem = "has both 'date' and 'datetime'" if times else "has no time column"
        raise _fail(path, 1, "date", ",".join(header), f"header {problem}",
                    "'date' (YYYY-MM-DD, daily bars) or 'datetime' (YYYY-MM-DD HH:MM:SS, intraday)")
    missing = [f for f in NUMBER_FIELDS if f not in lowered]
    if missing:
        raise _fail(path, 1, missing[0], ",".join(header),
                    f"header lacks required column(s) {', '.join(missing)}",
                    f"{_REQUIRED_TEXT} (other columns are ignored)")
    names = {f: header[lowered.index(f)] for f in (times[0], *NUMBER_FIELDS)}
    return times[0], names


def _parse_times(path: Path, raw: pd.Series, time_field: str) -> pd.DatetimeIndex:
    if time_field == "date":
        parsed = pd.to_datetime(raw, format=_DATE_FORMAT, errors="coerce")
        allowed = "a date YYYY-MM-DD, e.g. 2024-01-02"
    else:
        parsed = pd.to_datetime(raw, format=_DATETIME_FORMATS[0], errors="coerce")
        for fmt in _DATETIME_FORMATS[1:]:
            todo = parsed.isna()
            if todo.any():
                parsed[todo] = pd.to_datetime(raw[todo], format=fmt, errors="coerce")
        allowed = "a naive KST time YYYY-MM-DD HH:MM[:SS], e.g. 2020-02-18 09:05:00"
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise _fail(path, i + 2, time_field, raw.iloc[i], "is not a valid time", allowed)
    return bar_index(parsed)


def _parse_numbers(path: Path, raw: pd.Series, fld: str) -> np.ndarray:
    numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    allowed = ("a whole number of shares >= 0" if fld == "volume"
               else "a whole number of KRW > 0 (no thousands separators)")
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        i = int(bad[0])
        raise _fail(path, i + 2, fld, raw.iloc[i], "is not a number", allowed)
    frac = np.flatnonzero(numbers != np.round(numbers))
    if len(frac):
        i = int(frac[0])
        raise _fail(path, i + 2, fld, raw.iloc[i], "is not a whole number", allowed)
    huge = np.flatnonzero(np.abs(numbers) > MAX_NUMBER)
    if len(huge):
        i = int(huge[0])
        raise _fail(path, i + 2, fld, raw.iloc[i], "is implausibly large", allowed)
    values = numbers.astype(np.int64)
    neg = np.flatnonzero(values < 0) if fld == "volume" else np.flatnonzero(values <= 0)
    if len(neg):
        i = int(neg[0])
        raise _fail(path, i + 2, fld, raw.iloc[i],
                    "is negative" if fld == "volume" else "is not a positive price", allowed)
    return values


def read_csv_file(path: Path | str, code: str | None = None,
                  clamp_adjusted_high: bool = False) -> tuple[pd.DataFrame, list[Clamp], str]:
    """Read and validate one bar file: (frame, clamps applied, timeframe).

    The frame has a naive ``DatetimeIndex`` named ``datetime`` and int64 columns
    open, high, low, close, volume. Raises ``CSVDataError`` on the first problem found.
    """
    frame, clamps, timeframe, _ = read_csv_file_checked(path, code, clamp_adjusted_high)
    return frame, clamps, timeframe


def read_csv_file_checked(path: Path | str, code: str | None = None, clamp_adjusted_high: bool = False,
                          halts: HaltIntervals = ()) -> tuple[pd.DataFrame, list[Clamp], str, list[Finding]]:
    """``read_csv_file`` plus the quality guard's findings (``halts``: the code's known halts)."""
    path = Path(path)
    code = code or path.stem
    if not path.is_file():
        raise _fail(path, None, None, None, "does not exist", f"a CODE.csv file with {_REQUIRED_TEXT}")
    text = _read_text(path)
    header = _header(path, text)
    time_field, names = _columns(path, header)
    try:
        # every column is read (not usecols): a row with more values than the header — an unquoted
        # 16,971,946 — is then an error instead of silently becoming 16
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False,
                          header=0, names=_unique(header), index_col=False)
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+), saw (\d+)", str(exc))
        hint = (f"{m.group(2)} values for {len(header)} columns (a number written with thousands separators? "
                "write 16971946, not 16,971,946)" if m else f"malformed row ({exc})")
        raise CSVDataError(f"{shown(path)}" + (f", line {m.group(1)}" if m else "") +
                           f": {hint}; allowed: one value per header column",
                           path=path, line=int(m.group(1)) if m else None) from None
    raw = raw[[_unique(header)[header.index(n)] for n in names.values()]]
    raw.columns = list(names.values())
    raw = raw.rename(columns={v: k for k, v in names.items()})
    raw = raw.apply(lambda s: s.str.strip())
    blank = (raw == "").all(axis=1).to_numpy()
    n = len(raw)
    while n and blank[n - 1]:            # a trailing blank line is harmless; drop it
        n -= 1
    raw = raw.iloc[:n]
    if n == 0:
        raise _fail(path, 2, None, None, "has a header but no data rows", "one row per bar after the header")
    inner_blank = np.flatnonzero(blank[:n])
    if len(inner_blank):
        raise _fail(path, int(inner_blank[0]) + 2, None, "", "is an empty line", "one row per bar, no blank lines")

    index = _parse_times(path, raw[time_field], time_field)
    bad_order = order_violation(index)
    if bad_order is not None:
        i, dup = bad_order
        raise _fail(path, i + 2, time_field, raw[time_field].iloc[i],
                    ("repeats the previous row's time" if dup else
                     f"is earlier than the previous row's {raw[time_field].iloc[i - 1]!r}"),
                    "strictly ascending times, one row per bar")

    cols = {f: _parse_numbers(path, raw[f], f) for f in NUMBER_FIELDS}
    o, h, lo, c = cols["open"], cols["high"], cols["low"], cols["close"]
    violations = ohlc_violations(o, h, lo, c)
    bad, _ = violations["high_low"]
    if len(bad):
        i = int(bad[0])
        raise _fail(path, i + 2, "high", raw["high"].iloc[i], f"is below low {raw['low'].iloc[i]!r}",
                    "high >= low")

    clamps: list[Clamp] = []
    for fld, target, cmp_text in (("high", np.maximum(o, c), "below max(open, close)"),
                                  ("low", np.minimum(o, c), "above min(open, close)")):
        rows_wrong, gaps_wrong = violations[fld]
        if not len(rows_wrong):
            continue
        gap = np.zeros(len(h), dtype=np.int64)
        gap[rows_wrong] = gaps_wrong
        wrong = gap > 0
        fixable = wrong & (gap <= MAX_CLAMP_KRW) if clamp_adjusted_high else np.zeros_like(wrong)
        unfixable = np.flatnonzero(wrong & ~fixable)
        if len(unfixable):
            i = int(unfixable[0])
            hint = (f"clamping covers gaps of 1-{MAX_CLAMP_KRW} KRW only, this one is {int(gap[i])} KRW"
                    if clamp_adjusted_high else
                    f"back-adjusted data may clamp gaps of 1-{MAX_CLAMP_KRW} KRW: config "
                    f"data.clamp_adjusted_high: true, or run.py data import --clamp")
            raise _fail(path, i + 2, fld, raw[fld].iloc[i], f"is {cmp_text} = {int(target[i])} ({hint})",
                        "low <= open, close <= high")
        rows = np.flatnonzero(fixable)
        arr = h if fld == "high" else lo
        clamps += [Clamp(code, int(i) + 2, fld, int(arr[i]), int(target[i])) for i in rows]
        arr[rows] = target[rows]

    frame = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": cols["volume"]},
                         index=index)
    findings = check_bars(frame, code, halts)
    bad = first_error(findings)
    if bad is not None:
        raise _fail(path, bad.row + 2 if bad.row is not None else None, bad.field, None, bad.message,
                    _ALLOWED_BY_KIND.get(bad.kind, "bars KRX can have printed (feeds/quality.py)"))
    for finding in findings:
        log.info("%s: %s", shown(path), finding.message)
    try:
        timeframe = infer_timeframe(index, has_time_column=False if time_field == "date" else None)
    except ValueError as exc:
        raise _fail(path, None, time_field, None, f"has an unknown bar size ({exc})",
                    "daily, 5-minute or 1-minute bars") from None
    return frame, clamps, timeframe, findings


def read_csv_folder(folder: Path | str, universe: Iterable[str] | None = None,
                    start: object = None, end: object = None, clamp_adjusted_high: bool = False,
                    progress: ProgressFn | None = None,
                    halts: Mapping[str, HaltIntervals] | None = None) -> CSVFolder:
    """Load and validate every requested file; all or nothing.

    ``start``/``end`` (dates or datetimes, inclusive; a date ``end`` keeps the whole day) slice
    the frames *after* validating whole files. ``progress(code, i, n)`` is called after each file.
    Raises ``CSVDataError`` on the first problem, or when files mix timeframes.
    """
    paths = csv_paths(folder, universe)
    bars: dict[str, pd.DataFrame] = {}
    clamps: list[Clamp] = []
    timeframes: dict[str, str] = {}
    findings: dict[str, list[Finding]] = {}
    for i, (code, path) in enumerate(paths.items(), 1):
        frame, file_clamps, timeframe, findings[code] = read_csv_file_checked(
            path, code, clamp_adjusted_high, (halts or {}).get(code, ()))
        timeframes[code] = timeframe
        bars[code] = slice_bars(frame, start, end)
        clamps += file_clamps
        if progress is not None:
            progress(code, i, len(paths))
    kinds = sorted(set(timeframes.values()))
    if len(kinds) > 1:
        first = {k: next(c for c, t in timeframes.items() if t == k) for k in kinds}
        raise CSVDataError(f"{folder}: files mix timeframes ("
                           + ", ".join(f"{paths[c].name} is {k}" for k, c in first.items())
                           + "); allowed: one timeframe per folder", path=Path(folder))
    if clamps:
        counts = Counter(c.code for c in clamps)
        log.info("clamped %d high/low value(s) by <= %d KRW in %s: %s", len(clamps), MAX_CLAMP_KRW,
                 folder, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return CSVFolder(bars=bars, timeframe=kinds[0], clamps=clamps, paths=paths, findings=findings)


def load_csv_folder(folder: Path | str, universe: Iterable[str] | None = None, start: object = None,
                    end: object = None, clamp_adjusted_high: bool = False) -> dict[str, pd.DataFrame]:
    """Code -> validated bar frame for a folder of CODE.csv files (see ``read_csv_folder``,
    which also returns the timeframe and the clamp report; clamps are logged here)."""
    return read_csv_folder(folder, universe, start, end, clamp_adjusted_high).bars


def write_csv_folder(bars: dict[str, pd.DataFrame], folder: Path | str) -> list[Path]:
    """Write frames as CODE.csv in the layout ``read_csv_folder`` reads (used to export demo data
    for the emulator and for round-trip tests). Daily frames get a ``date`` column, intraday
    frames a ``datetime`` column."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for code, df in bars.items():
        idx = pd.DatetimeIndex(df.index)
        daily = bool((idx == idx.normalize()).all())
        times = idx.strftime(_DATE_FORMAT if daily else _DATETIME_FORMATS[0])
        body = df[list(NUMBER_FIELDS)].copy()
        body.insert(0, "date" if daily else "datetime", times)
        path = folder / f"{code}.csv"
        body.to_csv(path, index=False, lineterminator="\n")
        out.append(path)
    return out

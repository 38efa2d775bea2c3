"""Per-code reference data: what a stock *is* (name, market, kind, sector, shares, par value, listing,
designations) and its financial statements with the day each became public.

Why a file of its own, and why this shape
-----------------------------------------
Bars say what a code traded at; KIS also answers what the code is (``search-info``,
``search-stock-info``, ``inquire-price``'s ``lstn_stcn``/``per``/``eps``…) and how the company did
(``finance/*``). A later stage builds a stock master (KIS-format ``kospi_code.mst``/``kosdaq_code.mst``)
and point-in-time fundamentals from the same data, so the format is built for *history*:

* every fact that changes over a listing's life (name, market, kind, sector, shares listed, par
  value) is either one value or a list of dated values ``[{"from": "2018-05-04", "value": …}]``, the
  value in force from that day on — a stock split, a KOSDAQ→KOSPI move or a SPAC merger is a new entry,
  never an overwrite;
* designations (관리종목, 거래정지, 투자주의/경고/위험, 정리매매, …) are intervals ``from``..``to``
  (inclusive, open-ended when ``to`` is null);
* each financial statement carries ``published``: the emulator (and anything point-in-time) serves a
  statement only from that day on, never before — no look-ahead.

The file is JSON (``reference.json``) beside the bars (``data.path`` of a CSV source) or named by the
emulator config's ``reference_file``; the format is documented field by field in the emulator README.
Every error names the file, the security (index and code), the field and the value.

The generated default (``generate_reference``) is deterministic: each code's facts are drawn from a
generator seeded by the code itself, and its income grows with the code's own prices, so the demo
market gets stable, plausible reference data with no file at all. It is labelled ``synthetic``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from market.calendar import krx_calendar

FORMAT = "krx-trader/reference"
VERSION = 1
DEFAULT_FILE_NAME = "reference.json"

Kind = Literal["stock", "preferred", "etf", "etn", "reit", "spac", "infra", "fund", "dr", "foreign"]
ListingMarket = Literal["KOSPI", "KOSDAQ", "KONEX"]
DesignationKind = Literal["admin_issue", "halted", "liquidation", "caution", "warning", "risk",
                          "unfaithful_disclosure", "overheated"]
"""관리종목, 거래정지, 정리매매, 투자주의, 투자경고, 투자위험, 불성실공시법인, 단기과열."""

GROUP_CODE: Mapping[str, str] = {"stock": "ST", "preferred": "ST", "spac": "ST", "etf": "EF", "etn": "EN",
                                 "reit": "RT", "infra": "IF", "fund": "MF", "dr": "DR", "foreign": "FS"}
"""Kind → 증권그룹구분코드 of the KIS master file ([OTA] ``stocks_info`` master layout: ST 주권, EF ETF, …)."""

INCOME_FIELDS = ("revenue", "cost_of_sales", "gross_profit", "depreciation", "sga", "operating_income",
                 "non_operating_income", "non_operating_expense", "ordinary_income", "extraordinary_gain",
                 "extraordinary_loss", "net_income")
BALANCE_FIELDS = ("current_assets", "non_current_assets", "total_assets", "current_liabilities",
                  "non_current_liabilities", "total_liabilities", "capital_stock", "capital_surplus",
                  "retained_earnings", "total_equity")

class ReferenceError(ValueError):
    """A reference file that cannot be used; the message names file, security, field and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class _DatedBase(_Strict):
    start: date = Field(alias="from")

    @field_validator("start", mode="before")
    @classmethod
    def _iso(cls, v: Any) -> Any:
        return date.fromisoformat(v) if isinstance(v, str) else v


class DatedInt(_DatedBase):
    value: int


class DatedStr(_DatedBase):
    value: str = Field(min_length=1)


class DatedMarket(_DatedBase):
    value: ListingMarket


class DatedKind(_DatedBase):
    value: Kind


class Sector(_Strict):
    """KRX index-industry classification (지수업종 대/중/소분류) and the standard industry class."""

    code: str = Field(pattern=r"^[0-9]{1,4}$")
    name: str
    medium_code: str = ""
    medium_name: str = ""
    small_code: str = ""
    small_name: str = ""
    industry_code: str = ""
    industry_name: str = ""


class DatedSector(_DatedBase):
    value: Sector


def _iso_date(v: Any) -> Any:
    return date.fromisoformat(v) if isinstance(v, str) else v


class Designation(_Strict):
    kind: DesignationKind
    start: date = Field(alias="from")
    end: date | None = Field(None, alias="to")
    reason: str = ""

    _dates = field_validator("start", "end", mode="before")(classmethod(lambda cls, v: _iso_date(v)))

    @model_validator(mode="after")
    def _ordered(self) -> "Designation":
        if self.end is not None and self.end < self.start:
            raise ValueError(f"'to' {self.end} is before 'from' {self.start}")
        return self


class Statement(_Strict):
    """One financial statement as published (KRW, integers; missing items are null).

    ``period``: ``annual`` (income over the 12 months ending ``period_end``) or ``quarter`` (the three
    months ending ``period_end``). Balance-sheet items are as of ``period_end``."""

    period: Literal["annual", "quarter"]
    period_end: date
    published: date
    consolidated: bool = True
    revenue: int | None = None
    cost_of_sales: int | None = None
    gross_profit: int | None = None
    depreciation: int | None = None
    sga: int | None = None
    operating_income: int | None = None
    non_operating_income: int | None = None
    non_operating_expense: int | None = None
    ordinary_income: int | None = None
    extraordinary_gain: int | None = None
    extraordinary_loss: int | None = None
    net_income: int | None = None
    current_assets: int | None = None
    non_current_assets: int | None = None
    total_assets: int | None = None
    current_liabilities: int | None = None
    non_current_liabilities: int | None = None
    total_liabilities: int | None = None
    capital_stock: int | None = None
    capital_surplus: int | None = None
    retained_earnings: int | None = None
    total_equity: int | None = None

    _dates = field_validator("period_end", "published", mode="before")(classmethod(lambda cls, v: _iso_date(v)))

    @model_validator(mode="after")
    def _published_after_period(self) -> "Statement":
        if self.published < self.period_end:
            raise ValueError(f"published {self.published} is before period_end {self.period_end}")
        return self


class Security(_Strict):
    code: str = Field(pattern=r"^[0-9A-Z]{6,7}$")
    isin: str = Field("", pattern=r"^([A-Z]{2}[0-9A-Z]{9}[0-9])?$")
    name: str | list[DatedStr]
    name_en: str | list[DatedStr] = ""
    market: ListingMarket | list[DatedMarket]
    kind: Kind | list[DatedKind] = "stock"
    sector: Sector | list[DatedSector] | None = None
    shares_listed: int | list[DatedInt]
    par_value: int | list[DatedInt] = 0
    listing_date: date
    delisting_date: date | None = None
    fiscal_month: int = Field(12, ge=1, le=12)
    kospi200: bool = False
    ipo_price: int | None = None
    designations: list[Designation] = Field(default_factory=list)
    financials: list[Statement] = Field(default_factory=list)

    _dates = field_validator("listing_date", "delisting_date", mode="before")(
        classmethod(lambda cls, v: _iso_date(v)))

    @field_validator("name", "name_en", "market", "kind", "sector", "shares_listed", "par_value")
    @classmethod
    def _history_sorted(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("a dated history needs at least one entry")
            days = [e.start for e in v]
            if days != sorted(days) or len(set(days)) != len(days):
                raise ValueError(f"dated entries must have strictly increasing 'from' dates, got {days}")
        return v

    @field_validator("shares_listed", "par_value")
    @classmethod
    def _not_negative(cls, v: Any, info: Any) -> Any:
        values = [e.value for e in v] if isinstance(v, list) else [v]
        least = 1 if info.field_name == "shares_listed" else 0
        bad = [x for x in values if x < least]
        if bad:
            raise ValueError(f"must be at least {least}, got {bad[0]}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Security":
        if self.delisting_date is not None and self.delisting_date < self.listing_date:
            raise ValueError(f"delisting_date {self.delisting_date} is before listing_date {self.listing_date}")
        seen: set[tuple[str, date, bool]] = set()
        for s in self.financials:
            key = (s.period, s.period_end, s.consolidated)
            if key in seen:
                raise ValueError(f"two {s.period} statements for {s.period_end} (consolidated={s.consolidated})")
            seen.add(key)
        return self


class ReferenceFile(_Strict):
    format: Literal["krx-trader/reference"]
    version: Literal[1]
    synthetic: bool = False
    as_of: date | None = None
    securities: list[Security]

    _dates = field_validator("as_of", mode="before")(classmethod(lambda cls, v: _iso_date(v)))

    @model_validator(mode="after")
    def _unique(self) -> "ReferenceFile":
        codes = [s.code for s in self.securities]
        dup = sorted({c for c in codes if codes.count(c) > 1})
        if dup:
            raise ValueError(f"codes listed twice: {dup}")
        return self


# ---- reading ---------------------------------------------------------------------------------


def _value_on(v: Any, d: date, default: Any = None) -> Any:
    """The value of a scalar-or-dated-history field on day ``d`` (the first entry before its start)."""
    if not isinstance(v, list):
        return v
    starts = [e.start for e in v]
    i = bisect.bisect_right(starts, d) - 1
    return v[max(i, 0)].value if v else default


@dataclass(frozen=True)
class Snapshot:
    """What a security is on one day (the fields KIS's quotation/info TRs report)."""

    code: str
    day: date
    name: str
    name_en: str
    market: str
    kind: str
    sector: Sector | None
    shares_listed: int
    par_value: int
    listed: bool
    designations: frozenset[str]

    @property
    def halted(self) -> bool:
        return "halted" in self.designations

    @property
    def admin_issue(self) -> bool:
        return "admin_issue" in self.designations

    @property
    def preferred(self) -> bool:
        return self.kind == "preferred"

    @property
    def capital(self) -> int:
        return self.shares_listed * self.par_value


class ReferenceData:
    """All securities of one reference file, with point-in-time lookups."""

    def __init__(self, parsed: ReferenceFile, source: str = "<reference>") -> None:
        self.source = source
        self.synthetic = parsed.synthetic
        self.securities: dict[str, Security] = {s.code: s for s in parsed.securities}
        self._statements: dict[tuple[str, str], list[Statement]] = {}
        for s in parsed.securities:
            for period in ("annual", "quarter"):
                rows = [st for st in s.financials if st.period == period]
                rows.sort(key=lambda st: (st.period_end, not st.consolidated))
                self._statements[(s.code, period)] = rows

    def __contains__(self, code: str) -> bool:
        return code in self.securities

    def get(self, code: str) -> Security | None:
        return self.securities.get(code)

    def snapshot(self, code: str, d: date) -> Snapshot | None:
        s = self.securities.get(code)
        if s is None:
            return None
        active = frozenset(x.kind for x in s.designations if x.start <= d and (x.end is None or d <= x.end))
        listed = s.listing_date <= d and (s.delisting_date is None or d <= s.delisting_date)
        return Snapshot(code, d, _value_on(s.name, d), _value_on(s.name_en, d) or "", _value_on(s.market, d),
                        _value_on(s.kind, d), _value_on(s.sector, d), int(_value_on(s.shares_listed, d)),
                        int(_value_on(s.par_value, d) or 0), listed, active)

    def statements(self, code: str, period: str, as_of: date, consolidated: bool = True) -> list[Statement]:
        """Statements of ``period`` published on or before ``as_of``, oldest first (one per period end:
        consolidated when available and asked for, else the separate one)."""
        rows = [st for st in self._statements.get((code, period), ()) if st.published <= as_of]
        by_end: dict[date, Statement] = {}
        for st in rows:
            cur = by_end.get(st.period_end)
            if cur is None or (st.consolidated == consolidated and cur.consolidated != consolidated):
                by_end[st.period_end] = st
        return [by_end[k] for k in sorted(by_end)]

    def shares_on(self, code: str, d: date) -> int:
        s = self.securities.get(code)
        return int(_value_on(s.shares_listed, d)) if s else 0


_TYPE_TAGS = {"int", "str", "bool", "float", "date", "none", "list", "dict"}


def _is_type_tag(part: Any) -> bool:
    """Loc parts pydantic adds for union members (``int``, ``list[DatedInt]``, ``Sector``…)."""
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part or part[:1].isupper())


def _error_location(exc: ValidationError, raw: Any) -> list[str]:
    """One line per offending field: ``securities[3] (005930).shares_listed: … (got 'x')``."""
    merged: dict[str, list[str]] = {}
    shown_value: dict[str, str] = {}
    for e in exc.errors(include_url=False):
        loc = [p for p in e.get("loc", ()) if not _is_type_tag(p)]
        where = ""
        rest = loc
        if len(loc) >= 2 and loc[0] == "securities" and isinstance(loc[1], int):
            i = loc[1]
            code = ""
            try:
                code = str(raw["securities"][i].get("code", ""))
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
            where = f"securities[{i}]" + (f" ({code})" if code else "")
            rest = loc[2:]
        path = ".".join(str(p) for p in rest)
        field = (where + ("." if where and path else "") + path) or "(top level)"
        msg = str(e.get("msg"))
        if msg not in merged.setdefault(field, []):
            merged[field].append(msg)
        value = e.get("input")
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        shown_value.setdefault(field, shown if len(shown) <= 80 else shown[:77] + "...")
    return [f"  - {f}: {' or '.join(m)} (got {shown_value[f]})" for f, m in merged.items()]


def parse_reference(raw: Any, source: str = "<reference>") -> ReferenceData:
    """Validate an already-decoded reference document."""
    if not isinstance(raw, dict):
        raise ReferenceError(f"{source}: the top level must be a JSON object with 'format', 'version' and "
                             f"'securities', got {type(raw).__name__}")
    try:
        parsed = ReferenceFile.model_validate(raw)
    except ValidationError as exc:
        lines = _error_location(exc, raw)
        raise ReferenceError("\n".join([f"{source}: {len(lines)} problem(s)"] + lines)) from None
    return ReferenceData(parsed, source)


def load_reference(path: str | Path) -> ReferenceData:
    """Read and validate ``reference.json``; ``ReferenceError`` names the file, field and value."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ReferenceError(f"{p}: no such reference file") from None
    except UnicodeDecodeError as exc:
        raise ReferenceError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ReferenceError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReferenceError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise ReferenceError(f"{p}: not usable JSON ({type(exc).__name__})") from None
    return parse_reference(raw, str(p))


def dump_reference(data: Iterable[Security], *, synthetic: bool, as_of: date | None = None) -> dict[str, Any]:
    """The JSON document of ``data`` (dates as ISO text, ``from``/``to`` spelled as in the file)."""
    doc = {"format": FORMAT, "version": VERSION, "synthetic": synthetic,
           "as_of": as_of.isoformat() if as_of else None,
           "securities": [s.model_dump(mode="json", by_alias=True, exclude_defaults=True) for s in data]}
    return doc


# ---- the generated default -------------------------------------------------------------------


def isin_for(code: str, prefix: str = "KR7", suffix: str = "00") -> str:
    """A KRX-style ISIN (표준코드): ``KR7`` + the 6-digit code + ``00`` + the ISO 6166 check digit."""
    body = f"{prefix}{code}{suffix}"[:11].ljust(11, "0")
    digits = "".join(str(int(ch, 36)) for ch in body)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 0:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return body + str((10 - total % 10) % 10)


SECTORS: tuple[tuple[str, str], ...] = (
    ("0005", "음식료·담배"), ("0008", "화학"), ("0009", "제약"), ("0011", "금속"), ("0012", "기계·장비"),
    ("0013", "전기·전자"), ("0015", "운송장비·부품"), ("0016", "유통"), ("0018", "건설"), ("0021", "금융"),
    ("0026", "IT 서비스"), ("0019", "운송·창고"),
)
"""KRX index-industry codes/names used by the generated default (a plausible subset, not a full table)."""


def _rng(code: str, salt: str = "") -> np.random.Generator:
    digest = hashlib.sha256(f"krx-trader/reference/{code}/{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _quarter_ends(first: date, last: date) -> list[date]:
    out = []
    for y in range(first.year, last.year + 1):
        for m, d in ((3, 31), (6, 30), (9, 30), (12, 31)):
            e = date(y, m, d)
            if first <= e <= last:
                out.append(e)
    return out


def _published(period_end: date, annual: bool) -> date:
    """Korean filing deadlines: quarterly/half-year reports within 45 days, annual reports within 90
    (the generator publishes annual figures on day 75, as most preliminary results come out in March)."""
    return period_end + timedelta(days=75 if annual or period_end.month == 12 else 45)


def _halts(days: list[date]) -> list[tuple[date, date]]:
    """Trading days missing between a code's first and last bar, merged into intervals."""
    if len(days) < 2:
        return []
    cal = krx_calendar()
    have = set(days)
    out: list[tuple[date, date]] = []
    d = cal.next_trading_day(days[0])
    start: date | None = None
    prev: date | None = None
    while d < days[-1]:
        if d not in have:
            if start is None:
                start = d
            prev = d
        elif start is not None:
            out.append((start, prev or start))
            start = None
        d = cal.next_trading_day(d)
    if start is not None:
        out.append((start, prev or start))
    return out


def generate_security(code: str, daily: pd.DataFrame, market: str = "KOSPI", name: str | None = None) -> Security:
    """Deterministic reference data for one code from its daily bars (see the module docstring)."""
    rng = _rng(code)
    days = [ts.date() for ts in daily.index]
    first, last = days[0], days[-1]
    closes = daily["close"].astype(float)
    first_price = max(float(daily["close"].iloc[0]), 1.0)
    cap0 = float(np.exp(rng.uniform(np.log(5e10), np.log(5e13))))       # 50 bn – 50 tn KRW
    par = int(rng.choice([100, 200, 500, 1_000, 5_000]))
    shares = max(int(cap0 / first_price) // 1_000 * 1_000, 100_000)
    sector = SECTORS[int(rng.integers(len(SECTORS)))]
    listing = first - timedelta(days=int(rng.integers(0, 20 * 365)))
    psr = float(rng.uniform(0.4, 2.5))
    op_margin = float(rng.uniform(0.03, 0.20))
    asset_turn = float(rng.uniform(0.5, 1.25))
    debt_ratio = float(rng.uniform(0.3, 1.5))
    rev0 = cap0 / psr
    listed_market = market if market in ("KOSPI", "KOSDAQ", "KONEX") else "KOSPI"
    kind = "etf" if market == "ETF" else "stock"

    def year_return(y: int) -> float:
        c = closes[(daily.index.year == y)]
        return float(c.iloc[-1] / c.iloc[0] - 1.0) if len(c) >= 2 else 0.0

    statements: list[Statement] = []
    span_first = date(first.year - 1, 1, 1)
    annual_rev: dict[int, float] = {}
    rev = rev0
    for y in range(span_first.year, last.year + 1):
        rev = rev * (1.0 + 0.5 * year_return(y) + float(rng.normal(0.02, 0.03)))
        annual_rev[y] = max(rev, 1e8)
    seasonal = np.array([0.23, 0.25, 0.25, 0.27])
    for end in _quarter_ends(span_first, last):
        y, q = end.year, (end.month - 1) // 3
        yr = annual_rev[y]
        for period, revenue in (("quarter", yr * seasonal[q]), ("annual", yr)):
            if period == "annual" and end.month != 12:
                continue
            margin = op_margin * (1.0 + float(rng.normal(0, 0.15)))
            op = revenue * margin
            cogs = revenue * (1.0 - margin - 0.12)
            sga = revenue - cogs - op
            non_op_in, non_op_out = revenue * 0.01, revenue * 0.012
            ordinary = op + non_op_in - non_op_out
            net = ordinary * 0.76
            assets = round(yr / asset_turn)
            equity = round(assets / (1.0 + debt_ratio))
            liabilities = assets - equity                      # the balance sheet balances to the won
            capital = par * shares
            surplus = round(max(equity - capital, 0) * 0.3)
            cur_assets, cur_liab = round(assets * 0.45), round(liabilities * 0.6)
            statements.append(Statement(
                period=period, period_end=end, published=_published(end, period == "annual"),
                revenue=round(revenue), cost_of_sales=round(cogs), gross_profit=round(revenue - cogs),
                depreciation=round(revenue * 0.04), sga=round(sga), operating_income=round(op),
                non_operating_income=round(non_op_in), non_operating_expense=round(non_op_out),
                ordinary_income=round(ordinary), extraordinary_gain=0, extraordinary_loss=0,
                net_income=round(net), current_assets=cur_assets, non_current_assets=assets - cur_assets,
                total_assets=assets, current_liabilities=cur_liab, non_current_liabilities=liabilities - cur_liab,
                total_liabilities=liabilities, capital_stock=capital, capital_surplus=surplus,
                retained_earnings=equity - capital - surplus, total_equity=equity))
    designations = [Designation(kind="halted", start=a, end=b, reason="거래정지 (no bars in the data)")
                    for a, b in _halts(days)]
    return Security(code=code, isin=isin_for(code), name=name or code, name_en=f"DEMO {code}",
                    market=listed_market, kind=kind,
                    sector=Sector(code=sector[0], name=sector[1]), shares_listed=shares, par_value=par,
                    listing_date=listing, fiscal_month=12, designations=designations, financials=statements)


def generate_reference(daily: Mapping[str, pd.DataFrame], markets: Mapping[str, Any] | None = None,
                       names: Mapping[str, str] | None = None) -> ReferenceData:
    """The deterministic default for every code of ``daily`` ({code: daily OHLCV frame})."""
    secs = []
    for code in sorted(daily):
        df = daily[code]
        if df is None or len(df) == 0:
            continue
        m = (markets or {}).get(code, "KOSPI")
        secs.append(generate_security(code, df, getattr(m, "value", str(m)), (names or {}).get(code)))
    parsed = ReferenceFile(format=FORMAT, version=VERSION, synthetic=True, securities=secs)
    return ReferenceData(parsed, "<generated>")


def merge(base: ReferenceData, extra: ReferenceData) -> ReferenceData:
    """``extra``'s securities replace ``base``'s with the same code (a file completing the default)."""
    secs = dict(base.securities)
    secs.update(extra.securities)
    parsed = ReferenceFile(format=FORMAT, version=VERSION, synthetic=base.synthetic and extra.synthetic,
                           securities=list(secs.values()))
    return ReferenceData(parsed, f"{extra.source} (+ generated)")


__all__ = ["BALANCE_FIELDS", "DEFAULT_FILE_NAME", "Designation", "FORMAT", "GROUP_CODE", "INCOME_FIELDS",
           "ReferenceData", "ReferenceError", "ReferenceFile", "Sector", "Security", "Snapshot", "Statement",
           "VERSION", "dump_reference", "generate_reference", "generate_security", "isin_for", "load_reference",
           "merge", "parse_reference"]

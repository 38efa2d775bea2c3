"""Trade Target Manager: targets ("Data1") and their progress ("Data2").

Data1 is what the user wants: for each code a target buy price, a target return, the most
capital it may use and an optional stop-loss. It is loaded from CSV or YAML and validated with
pydantic; every error names the file, the row and the field.

Data2 is where each target stands: shares bought, capital used, average purchase price, current
return and absolute return. The Trade Executor updates it on every fill (``on_fill``) and every
bar (``on_price``). Updates go into small per-code records, and ``frame()`` builds the pandas
DataFrame from them on demand: a per-bar pandas write for every code would cost more than the
rest of a backtest's bookkeeping together (see bench/backtest.py), while readers (the report,
the monitor) only need the frame now and then.

Definitions (integer KRW):
* ``avg_price`` — average purchase price of the shares held, without costs (as KIS's
  ``pchs_avg_pric``); ``capital_used`` = shares × avg_price.
* ``current_return_pct`` — (last price / avg_price − 1) × 100 on the shares held.
* ``absolute_return`` — realised P&L after every commission and tax paid so far plus the
  unrealised P&L of the shares held at the last price (sell costs not yet paid are not deducted).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from configs.errors import InputError
from configs.files import load_yaml, read_text, shown

CODE_PATTERN = r"^[0-9A-Z]{6}$"
MAX_PRICE_KRW = 100_000_000          # no KRX share has traded near 1억 KRW
MAX_CAPITAL_KRW = 10**15
MAX_TARGETS_BYTES = 16 << 20


class TradeTarget(BaseModel):
    """One row of Data1."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    code: str = Field(..., pattern=CODE_PATTERN, description="6-character KRX code, e.g. 005930")
    target_buy_price: int = Field(..., gt=0, le=MAX_PRICE_KRW, description="buy at or under this price (KRW)")
    target_return_pct: float = Field(..., gt=0, le=1000, description="sell when up this many percent")
    max_capital: int = Field(..., gt=0, le=MAX_CAPITAL_KRW, description="most KRW this target may tie up")
    stop_loss_pct: float | None = Field(None, gt=0, lt=100, description="sell when down this many percent")
    name: str = Field("", max_length=200)

    @field_validator("target_buy_price", "target_return_pct", "max_capital", "stop_loss_pct", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        # CSV cells are text and must be converted, but a YAML `true` must not become 1 KRW
        if isinstance(value, bool):
            raise ValueError(f"{str(value).lower()} is a boolean, not a number")
        if isinstance(value, str) and "," in value:
            raise ValueError("write the number without thousands separators")
        return value


class TargetFileError(InputError):
    """A targets file that cannot be used; the message names file, row, field and value."""


_EXTRA = "\x00extra"   # DictReader's key for values beyond the header


def _row_errors(exc: ValidationError, source: str, row: int | str) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        fld = ".".join(str(p) for p in err["loc"]) or "(row)"
        out.append(f"{source} row {row}: field '{fld}' value {err.get('input')!r}: {err['msg']}")
    return out


def _blank_to_none(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, str) and v.strip() == "" else v) for k, v in record.items()}


class TargetBook:
    """Data1: validated targets keyed by code (insertion order kept)."""

    def __init__(self, targets: Iterable[TradeTarget]) -> None:
        self._targets: dict[str, TradeTarget] = {}
        for t in targets:
            if t.code in self._targets:
                raise TargetFileError(f"code {t.code} appears twice in the targets")
            self._targets[t.code] = t

    def __contains__(self, code: object) -> bool:
        return code in self._targets

    def __iter__(self):
        return iter(self._targets.values())

    def __len__(self) -> int:
        return len(self._targets)

    def get(self, code: str) -> TradeTarget | None:
        return self._targets.get(code)

    @property
    def codes(self) -> list[str]:
        return list(self._targets)

    def frame(self) -> pd.DataFrame:
        rows = [t.model_dump() for t in self._targets.values()]
        cols = list(TradeTarget.model_fields)
        return pd.DataFrame(rows, columns=cols).set_index("code")

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], source: str = "<targets>",
                     first_row: int = 1) -> "TargetBook":
        errors: list[str] = []
        targets: list[TradeTarget] = []
        seen: dict[str, int] = {}
        for i, rec in enumerate(records):
            row = first_row + i
            if not isinstance(rec, dict):
                errors.append(f"{source} row {row}: expected a mapping of fields, got {rec!r}")
                continue
            rec = _blank_to_none(rec)
            if isinstance(rec.get("code"), int):
                errors.append(f"{source} row {row}: field 'code' value {rec['code']!r}: codes must be text; "
                              "quote them (an unquoted 000660 is read as a number)")
                continue
            try:
                t = TradeTarget.model_validate(rec, strict=False)
            except ValidationError as exc:
                errors.extend(_row_errors(exc, source, row))
                continue
            if t.code in seen:
                errors.append(f"{source} row {row}: field 'code' value {t.code!r}: duplicate of row {seen[t.code]}")
                continue
            seen[t.code] = row
            targets.append(t)
        if errors:
            raise TargetFileError("\n".join(errors))
        return cls(targets)


def load_targets(path: str | Path) -> TargetBook:
    """Read Data1 from ``.csv`` (header row) or ``.yaml``/``.yml`` (a list, or ``{targets: [...]}``).
    Every problem is one ``TargetFileError`` naming the file (and row, field and value)."""
    try:
        return _load_targets(path)
    except TargetFileError:
        raise
    except InputError as exc:   # unreadable file, not UTF-8, bad YAML: same message, the targets' type
        raise TargetFileError(str(exc)) from None


def _load_targets(path: str | Path) -> TargetBook:
    path = Path(path)
    name = shown(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = read_text(path, "targets file", MAX_TARGETS_BYTES)
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA)
            if not reader.fieldnames:
                raise TargetFileError(f"{name}: empty file (expected a header row)")
            missing = [c for c in ("code", "target_buy_price", "target_return_pct", "max_capital")
                       if c not in reader.fieldnames]
            if missing:
                raise TargetFileError(f"{name}: missing column(s) {missing}; header is {reader.fieldnames}")
            records = []
            for row in reader:
                if _EXTRA in row:
                    raise TargetFileError(f"{name} row {reader.line_num}: {len(reader.fieldnames) + len(row[_EXTRA])} "
                                          f"values for {len(reader.fieldnames)} columns (a number written with "
                                          "thousands separators? write 1000000, not 1,000,000)")
                records.append(dict(row))
        except csv.Error as exc:
            raise TargetFileError(f"{name}: not a valid CSV file ({exc})") from None
        return TargetBook.from_records(records, name, first_row=2)  # line 1 is the header
    if suffix in (".yaml", ".yml"):
        raw = load_yaml(path, "targets file", MAX_TARGETS_BYTES)
        if isinstance(raw, dict) and "targets" in raw:
            raw = raw["targets"]
        if not isinstance(raw, list):
            raise TargetFileError(f"{name}: expected a list of targets (or a 'targets:' key holding one)")
        return TargetBook.from_records(raw, name, first_row=1)
    raise TargetFileError(f"{name}: unsupported extension {suffix!r}; use .csv, .yaml or .yml")


class TargetStatus(str, Enum):
    WAITING = "waiting"      # nothing bought yet
    HOLDING = "holding"      # shares held
    DONE = "done"            # sold out at or above the target return
    STOPPED = "stopped"      # sold out below the target (stop-loss or other exit)


@dataclass
class _Progress:
    shares: int = 0
    avg_price: float = 0.0
    bought_qty: int = 0
    sold_qty: int = 0
    last_price: float = math.nan
    realized: float = 0.0          # P&L closed so far, after all costs paid
    costs_paid: int = 0
    status: TargetStatus = TargetStatus.WAITING


@dataclass
class TargetProgress:
    """Data2 for a ``TargetBook`` (codes traded without a target are tracked too)."""

    book: TargetBook
    _rows: dict[str, _Progress] = field(default_factory=dict)
    _frame: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        for code in self.book.codes:
            self._rows[code] = _Progress()

    def row(self, code: str) -> _Progress:
        p = self._rows.get(code)
        if p is None:
            p = self._rows[code] = _Progress()
        return p

    def shares(self, code: str) -> int:
        p = self._rows.get(code)
        return p.shares if p else 0

    def capital_used(self, code: str) -> int:
        p = self._rows.get(code)
        return int(round(p.shares * p.avg_price)) if p else 0

    def capital_left(self, code: str) -> int | None:
        """KRW this code's target still allows (None: no target, no cap)."""
        t = self.book.get(code)
        return None if t is None else max(0, t.max_capital - self.capital_used(code))

    def status(self, code: str) -> TargetStatus:
        return self.row(code).status

    def seed(self, code: str, shares: int, avg_price: float) -> None:
        """Start from a position the account already holds (live start or restart)."""
        p = self.row(code)
        p.shares, p.avg_price = int(shares), float(avg_price)
        p.status = TargetStatus.HOLDING if shares else p.status
        self._frame = None

    def on_fill(self, code: str, qty: int, price: float, costs: int) -> None:
        """A fill: ``qty`` > 0 bought, < 0 sold; ``costs`` = commission + tax of that fill."""
        p = self.row(code)
        if qty > 0:
            new_shares = p.shares + qty
            p.avg_price = (p.shares * p.avg_price + qty * price) / new_shares
            p.shares = new_shares
            p.bought_qty += qty
            p.realized -= costs
            p.status = TargetStatus.HOLDING
        elif qty < 0:
            sold = min(-qty, p.shares)
            p.realized += sold * (price - p.avg_price) - costs
            p.shares -= sold
            p.sold_qty += sold
            if p.shares == 0:
                target = self.book.get(code)
                hit = target is not None and price >= p.avg_price * (1 + target.target_return_pct / 100) - 1e-9
                p.status = TargetStatus.DONE if hit else TargetStatus.STOPPED
        p.costs_paid += costs
        p.last_price = price
        self._frame = None

    def on_price(self, code: str, price: float) -> None:
        """The bar's close for ``code`` (only codes being tracked are kept)."""
        p = self._rows.get(code)
        if p is not None and p.last_price != price:
            p.last_price = price
            self._frame = None

    def frame(self) -> pd.DataFrame:
        """Data2 as a DataFrame indexed by code (rebuilt only after a change)."""
        if self._frame is not None:
            return self._frame
        rows = []
        for code, p in self._rows.items():
            t = self.book.get(code)
            capital = p.shares * p.avg_price
            unrealized = p.shares * (p.last_price - p.avg_price) if p.shares and not math.isnan(p.last_price) else 0.0
            current = ((p.last_price / p.avg_price - 1) * 100) if p.shares and p.avg_price and not math.isnan(p.last_price) else math.nan
            rows.append({
                "code": code,
                "target_buy_price": t.target_buy_price if t else math.nan,
                "target_return_pct": t.target_return_pct if t else math.nan,
                "max_capital": t.max_capital if t else math.nan,
                "stop_loss_pct": (t.stop_loss_pct if t and t.stop_loss_pct is not None else math.nan),
                "shares": p.shares,
                "bought_qty": p.bought_qty,
                "sold_qty": p.sold_qty,
                "capital_used": int(round(capital)),
                "avg_price": round(p.avg_price, 2) if p.shares else math.nan,
                "last_price": p.last_price,
                "current_return_pct": current,
                "realized": int(round(p.realized)),
                "absolute_return": int(round(p.realized + unrealized)),
                "costs_paid": p.costs_paid,
                "allocation_used_pct": (capital / t.max_capital * 100) if t else math.nan,
                "target_progress_pct": (current / t.target_return_pct * 100) if t and not math.isnan(current) else math.nan,
                "status": p.status.value,
            })
        self._frame = pd.DataFrame(rows).set_index("code") if rows else pd.DataFrame(
            columns=["shares"]).rename_axis("code")
        return self._frame

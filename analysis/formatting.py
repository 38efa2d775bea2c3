"""Text formatting of numbers for the report and the live monitor (one place, one convention).

Money is integer KRW with thousands separators and the unit ``원`` (e.g. ``12,345,678 원``);
fractions are shown as percentages with two decimals. Missing values (``None``/NaN) render as an
em dash so a table never shows ``nan``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

MISSING = "—"


def is_missing(x: Any) -> bool:
    """True for None, NaN, NaT and pandas NA: values a report must show as "—"."""
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def fmt_krw(x: Any, unit: str = " 원") -> str:
    """``12345678.4`` -> ``"12,345,678 원"`` (rounded half away from zero to whole KRW)."""
    if is_missing(x):
        return MISSING
    v = float(x)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    n = int(math.copysign(math.floor(abs(v) + 0.5), v))
    return f"{n:,}{unit}"


def fmt_int(x: Any) -> str:
    """Integer with thousands separators (quantities, counts)."""
    if is_missing(x):
        return MISSING
    v = float(x)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{int(round(v)):,}"


def fmt_price(x: Any) -> str:
    """A price: whole KRW with separators, or two decimals when it is not whole (adjusted data)."""
    if is_missing(x):
        return MISSING
    v = float(x)
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:,.2f}"


def fmt_pct(x: Any, signed: bool = False, digits: int = 2) -> str:
    """A fraction as a percentage: ``0.12345`` -> ``"12.35%"`` (``"+12.35%"`` when ``signed``)."""
    if is_missing(x):
        return MISSING
    v = float(x) * 100.0
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v:+,.{digits}f}%" if signed else f"{v:,.{digits}f}%"


def fmt_pct_points(x: Any, signed: bool = False, digits: int = 2) -> str:
    """A value that is already in percent (e.g. ``target_return_pct``): ``12.3`` -> ``"12.30%"``."""
    if is_missing(x):
        return MISSING
    return fmt_pct(float(x) / 100.0, signed=signed, digits=digits)


def fmt_ratio(x: Any, digits: int = 2) -> str:
    """A unitless ratio (Sharpe, profit factor): two decimals, ``∞`` for an infinite ratio."""
    if is_missing(x):
        return MISSING
    v = float(x)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v:,.{digits}f}"


def fmt_ref(x: Any) -> str:
    """An order reference as text: ``12.0`` (an int column that met a blank) -> ``"12"``; text kept
    as is so a KIS order number like ``0000117057`` keeps its zeros; missing -> ``""``."""
    if is_missing(x):
        return ""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def sign_class(x: Any) -> str:
    """CSS class for a signed figure: ``pos`` (red, rise) / ``neg`` (blue, fall) / ``""``."""
    if is_missing(x):
        return ""
    v = float(x)
    return "pos" if v > 0 else "neg" if v < 0 else ""

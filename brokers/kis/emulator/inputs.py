"""Checks every request input passes before the emulator trusts it (shared by REST, admin and WebSocket).

Why here and not in each handler: malformed input must end as a KIS-shaped error, never as an
exception deep inside a handler (a 500 with a traceback, or a WebSocket session closed without a
word). These helpers refuse what no KIS client sends: non-ASCII digits (a full-width "１" is a digit
to ``str.isdigit``), numbers longer than any KIS field, JSON nested deeper than a KIS body ever is,
integers beyond Python's conversion limit, NaN/Infinity.
"""

from __future__ import annotations

import json
from typing import Any

class InputError(Exception):
    """An input KIS would refuse with ``OPSQ2001`` ``INPUT INVALID_CHECK_<FIELD>``."""

    def __init__(self, field_name: str) -> None:
        super().__init__(field_name)
        self.field = field_name


MAX_NUMBER_DIGITS = 15
"""Quantities and prices longer than this are refused as input errors (KIS fields are ≤ 10–19 digits;
Python's int() also refuses > 4,300 digits with a ValueError that must never escape as a 500)."""
MAX_JSON_DEPTH = 32
"""Request bodies nested deeper than this are refused before parsing (KIS bodies are flat objects)."""


def is_ascii_number(text: str) -> bool:
    """ASCII digits only (a full-width "１" is a digit to ``str.isdigit`` but not to KIS), bounded length."""
    return 0 < len(text) <= MAX_NUMBER_DIGITS and text.isascii() and text.isdigit()


def _too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    depth = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, or ``None`` when it is not UTF-8 JSON a KIS client could have sent
    (nesting beyond ``MAX_JSON_DEPTH``, integers beyond Python's digit limit, NaN…)."""
    try:
        text = raw.decode("utf-8") or "{}"
    except UnicodeDecodeError:
        return None
    if _too_deep(text):
        return None
    try:
        return json.loads(text, parse_constant=lambda c: None)
    except (ValueError, RecursionError):   # JSONDecodeError is a ValueError; so is the int digit limit
        return None


__all__ = ["InputError", "MAX_JSON_DEPTH", "MAX_NUMBER_DIGITS", "is_ascii_number", "parse_json"]

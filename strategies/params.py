"""Strategy parameters, typed and range-checked before a run starts.

A strategy's ``params`` (backtrader's tuple of names and defaults) says which knobs exist; ``param_rules``
says what each may hold. Without a check, ``top_n: "5"`` surfaced as a TypeError inside the screener and
``rebalance_every: 0`` as a ZeroDivisionError inside ``on_bar`` — on paper and live, in the middle of a
session. ``validate_params`` runs before the data is even loaded, in every mode, and names the
parameter, the value and what is allowed.

A parameter without a rule is typed by its default (an int default takes whole numbers, a float default
any finite number, a bool ``true``/``false``, a str text), so a user strategy is checked too without
declaring anything. ``check_params`` (a classmethod a strategy may define) adds rules across
parameters, e.g. ``fast < slow``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable

from configs.errors import InputError

INTERNAL_PARAMS = frozenset({"targets", "limits"})
"""Set by the runner from the config's targets file and risk section, never from ``strategy.params``."""

MAX_MAGNITUDE = 1e15
"""No parameter (KRW amounts included) plausibly exceeds 1,000조."""


class ParamError(InputError):
    """``strategy.params`` holds a value the strategy cannot use; the message lists every problem."""


@dataclass(frozen=True)
class Param:
    """What one parameter may hold: its kind and, for numbers, an inclusive range (or ``choices``)."""

    kind: type                               # int, float, bool or str
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(self.kind,
                                                                                              self.kind.__name__)
        bounds = []
        if self.gt is not None:
            bounds.append(f"> {self.gt:g}")
        if self.ge is not None:
            bounds.append(f">= {self.ge:g}")
        if self.le is not None:
            bounds.append(f"<= {self.le:g}")
        return what + (" " + " and ".join(bounds) if bounds else "")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if self.choices is not None:
            return None if value in self.choices and type(value) is type(self.choices[0]) else "is not allowed"
        if self.kind is bool:
            return None if isinstance(value, bool) else f"is {_kind_of(value)}, not true/false"
        if self.kind is str:
            return None if isinstance(value, str) and value.strip() else f"is {_kind_of(value)}, not non-empty text"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"is {_kind_of(value)}, not a number"
        if self.kind is int and not isinstance(value, int):
            return "is not a whole number"
        if isinstance(value, float) and not math.isfinite(value):
            return "is not a finite number"
        if abs(value) > MAX_MAGNITUDE:
            return "is implausibly large"
        if self.gt is not None and not value > self.gt:
            return "is out of range"
        if self.ge is not None and not value >= self.ge:
            return "is out of range"
        if self.le is not None and not value <= self.le:
            return "is out of range"
        return None


def _kind_of(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _rule_from_default(default: Any) -> Param | None:
    if isinstance(default, bool):
        return Param(bool)
    if isinstance(default, int):
        return Param(int)
    if isinstance(default, float):
        return Param(float)
    if isinstance(default, str):
        return Param(str)
    return None   # None or an object default: the strategy must declare a rule to accept a value


def strategy_param_defaults(cls: type) -> dict[str, Any]:
    """The user-settable parameters of a backtrader strategy class and their defaults."""
    return {name: default for name, default in cls.params._gettuple() if name not in INTERNAL_PARAMS}


def rules_for(cls: type) -> dict[str, Param]:
    """Declared rules, completed with rules inferred from the defaults."""
    declared: dict[str, Param] = {}
    for klass in reversed(cls.__mro__):          # a subclass's rules refine its bases'
        declared.update(vars(klass).get("param_rules", {}) or {})
    rules: dict[str, Param] = {}
    for name, default in strategy_param_defaults(cls).items():
        rule = declared.get(name) or _rule_from_default(default)
        if rule is not None:
            rules[name] = rule
    return rules


def validate_params(cls: type, params: dict[str, Any], source: str = "strategy.params") -> dict[str, Any]:
    """``params`` checked against ``cls``: returns them unchanged, or raises ``ParamError`` listing
    every problem (unknown names, wrong types, values out of range, cross-parameter rules)."""
    defaults = strategy_param_defaults(cls)
    rules = rules_for(cls)
    problems: list[str] = []
    if not isinstance(params, dict):
        raise ParamError(f"{source}: must be a mapping of parameter names to values, got {_kind_of(params)}")
    for name in params:
        if name in INTERNAL_PARAMS:
            problems.append(f"{name!r} is set from the config's "
                            f"{'strategy.targets file' if name == 'targets' else 'risk section'}, not from params")
        elif name not in defaults:
            close = difflib.get_close_matches(str(name), list(defaults), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{name!r} is not a parameter of {cls.__name__}{hint}; allowed: "
                            f"{', '.join(sorted(defaults))}")
    for name, value in params.items():
        if name not in defaults or name in INTERNAL_PARAMS:
            continue
        rule = rules.get(name)
        if rule is None:
            continue
        why = rule.problem(value)
        if why:
            problems.append(f"{name} = {value!r} {why}; allowed: {rule.allowed()}")
    if not problems:
        check = getattr(cls, "check_params", None)
        if check is not None:
            merged = {**defaults, **params}
            problems.extend(check(merged) or [])
    if problems:
        head = f"{source}: {len(problems)} problem(s) with the parameters of {cls.__name__}"
        raise ParamError("\n".join([head] + [f"  - {p}" for p in problems]))
    return dict(params)


def describe_rules(cls: type) -> Iterable[tuple[str, Any, str]]:
    """(name, default, allowed) for each parameter: for documentation and error hints."""
    rules = rules_for(cls)
    for name, default in strategy_param_defaults(cls).items():
        rule = rules.get(name)
        yield name, default, rule.allowed() if rule else "any"

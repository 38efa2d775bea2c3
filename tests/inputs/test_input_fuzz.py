"""A fuzzer in the suite: generated malformed configs, strategy parameters, targets files, price CSVs and
command lines, each of which must end in one clear error naming the file, key or field — never a
traceback, never a hang, never a run on garbage.

Why generated rather than listed: the first fuzz of ``run.py`` (3,407 inputs) found 63 tracebacks, 2 hangs
and 217 garbage inputs accepted, almost none of them in the cases anyone had thought to write down. The
generators here know the *schema* (``configs/schema.py`` is walked field by field and each field gets values
of every wrong kind for it: booleans for numbers, YAML 1.1 sexagesimal/octal/yes-no, NaN, out-of-range,
lists, maps, bad dates), the *bar-file* format (valid random bars, then one corruption) and the *command
line*, so each generated input is garbage by construction and the oracle is simple: refused, by name.

Examples are deterministic (``derandomize``) so CI is repeatable; ``KRX_FUZZ_SCALE=10`` runs ten times as
many, ``KRX_FUZZ_RANDOM=1`` draws new ones. The emulator's half of the fuzz is
``tests/emulator/test_emu_fuzz.py``. The cases of the original findings are explicit ``@example``\\ s.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import tempfile
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import run
from configs.errors import InputError
from configs.schema import AppConfig, StrictModel, load_config
from engine.backtest import check_strategy_params, resolve_strategy
from feeds.csv_folder import CSVDataError, read_csv_file
from market.calendar import trading_days
from strategies.examples import EXAMPLES
from strategies.params import rules_for
from strategies.targets import TargetFileError, load_targets

SCALE = float(os.environ.get("KRX_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("KRX_FUZZ_RANDOM") == "1"
WORK = Path(tempfile.mkdtemp(prefix="krx-fuzz-"))
COUNTS: dict[str, int] = {}


def counted(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=max(1, int(n * SCALE)), deadline=timedelta(seconds=5), derandomize=not RANDOM,
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                          HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------------ the schema
def leaves(model: type[StrictModel], prefix: tuple[str, ...] = ()):
    """(path, field) for every scalar setting of a config model, nested sections walked."""
    for name, f in model.model_fields.items():
        subs = [a for a in (typing.get_args(f.annotation) or (f.annotation,))
                if isinstance(a, type) and issubclass(a, StrictModel)]
        if subs:
            yield from leaves(subs[0], prefix + (name,))
        elif name != "params":
            yield prefix + (name,), f


LEAVES = list(leaves(AppConfig))
NUMBER_GARBAGE = ["yes", "no", "on", "off", "true", "false", "1:30:00", "0777", "0x1F", "'12'", '"3"', "1,000",
                  ".nan", ".inf", "-.inf", "[1]", "{a: 1}", "1e999", "9" * 400, "２", "'  5'", "five"]
BOOL_GARBAGE = ["yes", "no", "on", "off", "1", "0", "'true'", "[true]", "{x: 1}", "y", "TRUE_"]
DATE_GARBAGE = ["20240102", "2024-13-01", "2024-02-30", "yesterday", "1900-01-02", "2999-01-02", "[2024-01-02]",
                "true", "1.5"]
NON_TEXT_GARBAGE = ["123", "[a]", "{a: b}", "true", "1.5", "2024-01-02"]


def _constraint(field, name: str):
    for m in field.metadata:
        if hasattr(m, name):
            return getattr(m, name)
        if hasattr(m, "pattern") and name == "pattern":
            return m.pattern
    return None


def garbage_for(path: tuple[str, ...], field) -> list[str]:
    """YAML texts that must be refused for this setting."""
    from configs.schema import _scalar_kinds

    kinds = _scalar_kinds(field.annotation)
    ann = field.annotation
    literal = [a for a in (typing.get_args(ann) or (ann,)) if typing.get_origin(a) is typing.Literal] or \
        ([ann] if typing.get_origin(ann) is typing.Literal else [])
    out: list[str] = []
    if kinds & {int, float, typing.Any.__class__} or kinds & {int} or kinds & {float} or "Decimal" in str(ann):
        out += NUMBER_GARBAGE
        lo = _constraint(field, "ge") if _constraint(field, "ge") is not None else _constraint(field, "gt")
        hi = _constraint(field, "le") if _constraint(field, "le") is not None else _constraint(field, "lt")
        if lo is not None:
            out.append(str(lo - 1))
        if hi is not None:
            out.append(str(hi * 10 + 1))
        if int in kinds and float not in kinds and "Decimal" not in str(ann):
            out.append("2.5")
    elif kinds == {bool}:
        out += BOOL_GARBAGE
    elif kinds & {__import__("datetime").date}:
        out += DATE_GARBAGE
    elif "list[" in str(ann):
        out += ["5", "true", "{a: 1}", "[[1]]", "[5930]"] if "Literal" not in str(ann) else ["[bogus]", "5", "[1]"]
    else:
        out += NON_TEXT_GARBAGE[:3]
        if literal or "Market" in str(ann):
            out += ["zzz", "'DEMO '", "KOSPI200x"]
        if _constraint(field, "pattern"):
            out += ["'!! bad !!'", "''"]
        if path[-1].endswith("_url"):
            out += ["'not a url'", "'ftp://x'"]
    if not out:
        pytest.fail(f"no garbage for {'.'.join(path)}")
    return out


CASES = [(p, g) for p, f in LEAVES for g in garbage_for(p, f)]
BASE = {"name": "fz", "data": {"source": "demo", "demo": {"codes": 2, "start": "2024-01-02", "end": "2024-03-29"}},
        "strategy": {"name": "screen_momentum"}}


def to_yaml(tree: dict[str, Any], raw: dict[tuple[str, ...], str], indent: int = 0,
            prefix: tuple[str, ...] = ()) -> str:
    """Block YAML where the values at ``raw`` paths are written verbatim (plain scalars, untouched)."""
    lines = []
    for key, value in tree.items():
        path = prefix + (key,)
        pad = "  " * indent
        if path in raw:
            lines.append(f"{pad}{key}: {raw[path]}")
        elif isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(to_yaml(value, raw, indent + 1, path))
        else:
            lines.append(f"{pad}{key}: {value!s}" if not isinstance(value, str) else f"{pad}{key}: '{value}'")
    return "\n".join(line for line in lines if line)


def tree_with(path: tuple[str, ...]) -> dict[str, Any]:
    tree: dict[str, Any] = copy.deepcopy(BASE)
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise AssertionError(path)
    node[path[-1]] = None
    return tree


def must_refuse(path: Path, text: str, *names: str) -> str:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        cfg = load_config(path)
        check_strategy_params(cfg, resolve_strategy(cfg.strategy.name))
    msg = str(err.value)
    assert path.name in msg, msg
    assert any(n in msg for n in names), f"none of {names} named in: {msg}\n--- input ---\n{text}"
    return msg


def test_every_setting_has_garbage_to_try():
    assert len(LEAVES) > 60 and len(CASES) > 600


def flow_style(text: str, section: str) -> str:
    """The same config with one top-level section rewritten as a YAML flow mapping on one line."""
    import yaml as _yaml

    lines = text.splitlines()
    try:
        i = lines.index(f"{section}:")
    except ValueError:
        return text
    j = i + 1
    while j < len(lines) and lines[j].startswith("  "):
        j += 1
    body = "\n".join(line[2:] for line in lines[i + 1:j])
    try:
        _yaml.safe_load(body)           # only when the body is itself parseable (garbage may not be)
    except Exception:  # noqa: BLE001 - YAMLError or a constructor's ValueError: keep block style
        return text
    flat = "{" + ", ".join(f"{line.strip()}" for line in lines[i + 1:j] if not line.startswith("    ")) + "}"
    if any(line.startswith("    ") for line in lines[i + 1:j]):
        return text                     # nested sections stay in block style
    return "\n".join(lines[:i] + [f"{section}: {flat}"] + lines[j:])


@fuzz_settings(3000)
@given(st.sampled_from(CASES), st.one_of(st.none(), st.sampled_from(CASES)), st.booleans(),
       st.sampled_from(["screen_momentum", "buy_and_hold", "target_buy"]))
@example(((("broker", "cash"), "1:30:00")), None, False, "screen_momentum")
@example(((("broker", "cash"), "0777")), None, False, "screen_momentum")
@example(((("broker", "cash"), "yes")), None, False, "screen_momentum")
@example(((("risk", "sizer", "fraction"), "true")), None, False, "screen_momentum")
def test_fuzz_config_settings(case, other, flow, strategy):
    counted("fuzz_config_settings")
    path, garbage = case
    raw = {path: garbage}
    names = [".".join(path), path[-1]]
    if other is not None and other[0] != path and other[0][:len(path)] != path and path[:len(other[0])] != other[0]:
        raw[other[0]] = other[1]
        names += [".".join(other[0]), other[0][-1]]
    tree = tree_with(path)
    for p in raw:
        node = tree
        for key in p[:-1]:
            node = node.setdefault(key, {})
        node[p[-1]] = None
    tree["strategy"]["name"] = strategy
    text = to_yaml(tree, raw) + "\n"
    if flow:
        text = flow_style(text, path[0])
        names.append(f"{path[0]}.")     # {cash: 1,000} is cash: 1 plus a key '000': refused by that key
    lines = text.splitlines()
    names += [f"line {i}" for i, l in enumerate(lines, 1) for p, g in raw.items() if f"{p[-1]}: {g}" in l]
    must_refuse(WORK / "fz.yaml", text, *names)


SECTIONS = [("broker",), ("broker", "kis"), ("data",), ("data", "demo"), ("risk",), ("risk", "sizer"),
            ("risk", "limits"), ("report",), ("monitor",), ("monitor", "alerts"), ()]


@fuzz_settings(400)
@given(st.sampled_from(SECTIONS), st.sampled_from(["colour", "stop_los_pct", "Cash", "universe ", "x-y"]),
       st.sampled_from(["unknown", "duplicate"]))
@example(("risk",), "unused", "duplicate")
def test_fuzz_unknown_and_duplicate_keys(section, key, how):
    counted('fuzz_unknown_and_duplicate_keys')
    text = to_yaml(BASE, {}) + "\n"
    leaf = next((p for p, _f in LEAVES if p[:-1] == section), None)
    if how == "duplicate" and leaf is not None:
        body = to_yaml(tree_with(leaf), {leaf: "1"}) + "\n"
        lines = body.splitlines()
        i = next(i for i, l in enumerate(lines) if l.strip().startswith(f"{leaf[-1]}:"))
        lines.insert(i + 1, lines[i])
        must_refuse(WORK / "dup.yaml", "\n".join(lines) + "\n", "appears twice")
    else:
        tree = tree_with(section + (key,)) if section else {**BASE, key: None}
        must_refuse(WORK / "unk.yaml", to_yaml(tree, {section + (key,): "1"}) + "\n", "unknown key", key.strip())


# ------------------------------------------------------------------------------------ strategy params
PARAM_CASES = [(name, param, g) for name, cls in EXAMPLES.items() for param, rule in rules_for(cls).items()
               for g in (NUMBER_GARBAGE + ["-1", "0", "1e20"] if rule.kind in (int, float) else BOOL_GARBAGE)]


RANDOM_NUMBERS = st.one_of(st.integers(-10**20, 10**20).map(str),
                           st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr))
PARAM_CASES_RANDOM = st.tuples(st.sampled_from([(n, p) for n, p, _g in PARAM_CASES]), RANDOM_NUMBERS).map(
    lambda t: (t[0][0], t[0][1], t[1]))


@fuzz_settings(1500)
@given(st.one_of(st.sampled_from(PARAM_CASES), PARAM_CASES_RANDOM))
@example(("screen_momentum", "top_n", "'5'"))
@example(("screen_momentum", "rebalance_every", "0"))
def test_fuzz_strategy_params(case):
    counted('fuzz_strategy_params')
    name, param, garbage = case
    rule = rules_for(EXAMPLES[name])[param]
    if rule.kind in (int, float) and re.fullmatch(r"-?[0-9]+(\.[0-9]*)?(e[-+]?[0-9]+)?", garbage):
        number = float(garbage) if ("." in garbage or "e" in garbage) else int(garbage)
        if rule.kind is float and isinstance(number, int) and abs(number) < 2**53:
            number = float(number)
        if rule.problem(number) is None:
            return      # a number this rule allows: not garbage (the random half draws such numbers too)
    cls = EXAMPLES[name]
    text = to_yaml({**BASE, "strategy": {"name": name, "params": {param: None}}},
                   {("strategy", "params", param): garbage}) + "\n"
    must_refuse(WORK / "params.yaml", text, f"{param} = ", param)


# ------------------------------------------------------------------------------------------ price CSVs
SESSIONS = trading_days(pd.Timestamp("2023-01-02").date(), pd.Timestamp("2024-12-30").date())
CSV_MUTATIONS = ["spike", "spike_field", "thousands", "holiday", "magnitude", "token", "duplicate_date",
                 "descending", "high_below_low", "blank_line", "nul", "cp949", "missing_column", "extra_value",
                 "negative", "fraction"]


def bar_rows(seed: int, n: int) -> list[list[Any]]:
    rng = np.random.default_rng(seed)
    close = 10_000.0
    rows = []
    start = int(rng.integers(0, len(SESSIONS) - n))
    for d in SESSIONS[start:start + n]:
        o = close * (1 + rng.uniform(-0.05, 0.05))
        close = max(100.0, close * (1 + rng.uniform(-0.08, 0.08)))
        h, lo = max(o, close) * (1 + rng.uniform(0, 0.02)), min(o, close) * (1 - rng.uniform(0, 0.02))
        rows.append([d.isoformat(), round(o), round(h), round(lo), round(close), int(rng.integers(1, 10**7))])
    return rows


def csv_text(rows: list[list[Any]]) -> str:
    return "date,open,high,low,close,volume\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"


@fuzz_settings(2000)
@given(st.integers(0, 10**6), st.integers(5, 60), st.sampled_from(CSV_MUTATIONS), st.integers(1, 10**6),
       st.sampled_from([2, 5, 10, 100, 1000, 10000, 0.2, 0.1, 0.01, 0.001]))
@example(1, 10, "spike", 5, 1000)
@example(1, 10, "thousands", 3, 2)
def test_fuzz_price_csv(seed, n, mutation, where, factor):
    counted('fuzz_price_csv')
    rows = bar_rows(seed, n)
    path = WORK / "123456.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    if where % 8 == 0:
        read_csv_file(path)                               # the unmutated file is valid (checked now and then)
    i = 1 + where % (n - 2)                               # an inner row: its neighbours tell spikes apart
    r = rows[i]
    text: str | bytes
    if mutation == "spike":
        rows[i] = r[:1] + [max(1, round(v * factor)) for v in r[1:5]] + r[5:]
    elif mutation == "spike_field":
        rows[i][2] = max(r[2], round(r[4] * max(factor, 2)))       # a high far above the band
    elif mutation == "thousands":
        rows[i][5] = f"{int(r[5]) + 1000:,}"
    elif mutation == "holiday":
        d = pd.Timestamp(rows[i - 1][0])
        sat = d + pd.Timedelta(days=(5 - d.weekday()) % 7 or 7)
        if sat >= pd.Timestamp(rows[i][0]):
            rows[i][0] = (pd.Timestamp(rows[i][0]) - pd.Timedelta(days=(pd.Timestamp(rows[i][0]).weekday() + 2) % 7
                                                                   or 7)).date().isoformat()
        else:
            rows.insert(i, [sat.date().isoformat()] + r[1:])
    elif mutation == "magnitude":
        rows[i][5] = str(10**int(12 + where % 10))
    elif mutation == "token":
        rows[i][1 + where % 5] = ["abc", "", "NaN", "inf", "1e400", "--5", "12..5", "１２"][where % 8]
    elif mutation == "duplicate_date":
        rows[i][0] = rows[i - 1][0]
    elif mutation == "descending":
        rows[i][0], rows[i - 1][0] = rows[i - 1][0], rows[i][0]
    elif mutation == "high_below_low":
        rows[i][2], rows[i][3] = r[3] - 1, r[2] + 1
    elif mutation == "negative":
        rows[i][1 + where % 4] = -abs(int(r[1]))
    elif mutation == "fraction":
        rows[i][1 + where % 4] = f"{r[1]}.5"
    text = csv_text(rows)
    if mutation == "blank_line":
        lines = text.splitlines()
        lines.insert(i + 1, "")
        text = "\n".join(lines) + "\n"
    elif mutation == "missing_column":
        text = text.replace(",volume\n", "\n", 1)
    elif mutation == "extra_value":
        lines = text.splitlines()
        lines[i + 1] += ",7"
        text = "\n".join(lines) + "\n"
    if mutation == "nul":
        text = text.encode() [: 40] + b"\x00" + text.encode()[40:]
    elif mutation == "cp949":
        text = text.replace("volume", "volume,비고", 1).encode("cp949")
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(CSVDataError) as err:
        read_csv_file(path)
    msg = str(err.value)
    assert "123456.csv" in msg and "allowed" in msg or "UTF-8" in msg, msg


# -------------------------------------------------------------------------------------- targets files
TARGET_FIELDS = ["target_buy_price", "target_return_pct", "max_capital", "stop_loss_pct"]
TARGET_GARBAGE = ["abc", "-5", "0", "1,000", "9" * 400, "nan", "inf", "true", "1e400", "１２", "[1]"]


NOT_A_NUMBER = st.text(alphabet="0123456789bcdghjklmopqrstuvwxyz가나_ -", min_size=1, max_size=12).filter(
    lambda t: any(ch.isalpha() for ch in t) and t.strip() == t and t[:1] not in "-_ " and ":" not in t)


@fuzz_settings(1500)
@given(st.sampled_from(TARGET_FIELDS), st.one_of(st.sampled_from(TARGET_GARBAGE), NOT_A_NUMBER),
       st.sampled_from(["csv", "yaml"]), st.integers(0, 3))
@example("target_buy_price", "9" * 400, "csv", 0)
def test_fuzz_targets(field, garbage, kind, row):
    counted('fuzz_targets')
    good = {"code": "005930", "target_buy_price": "70000", "target_return_pct": "10", "max_capital": "1000000",
            "stop_loss_pct": "5"}
    rows = [dict(good, code=f"00593{k}") for k in range(4)]
    rows[row][field] = garbage
    path = WORK / f"targets.{kind}"
    if kind == "csv":
        if "," in garbage or "[" in garbage:
            garbage = f'"{garbage}"'
            rows[row][field] = garbage
        path.write_text(",".join(good) + "\n" + "\n".join(",".join(r.values()) for r in rows) + "\n",
                        encoding="utf-8")
    else:
        path.write_text("targets:\n" + "".join(
            "  - {" + ", ".join(f"{k}: {v if k != 'code' else repr(v)}" for k, v in r.items()) + "}\n"
            for r in rows), encoding="utf-8")
    with pytest.raises(TargetFileError) as err:
        load_targets(path)
    msg = str(err.value)
    assert path.name in msg and (f"row {row + (2 if kind == 'csv' else 1)}" in msg or "line" in msg), msg


# ---------------------------------------------------------------------------------------- command line
def _files() -> dict[str, str]:
    d = WORK / "cli"
    d.mkdir(exist_ok=True)
    (d / "binary.yaml").write_bytes(b"\x00\x01\x02\x03")
    (d / "cp949.yaml").write_bytes("name: 한\n".encode("cp949"))
    (d / "empty.yaml").write_text("")
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "dup.yaml").write_text("name: a\nname: b\n")
    (d / "nomode.yaml").write_text("strategy: {name: buy_and_hold}\nbroker: {mode: paper}\ndata: {universe: []}\n")
    (d / "bad.csv").write_text("date,open\n1,2\n")
    run_dir = d / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "run.json").write_text('{"format": "krx-trader run", "version": 1}')
    junk = d / "junk_run"
    junk.mkdir(exist_ok=True)
    (junk / "run.json").write_text("{not json")
    return {"binary": str(d / "binary.yaml"), "cp949": str(d / "cp949.yaml"), "empty": str(d / "empty.yaml"),
            "list": str(d / "list.yaml"), "dup": str(d / "dup.yaml"), "nomode": str(d / "nomode.yaml"),
            "csv": str(d / "bad.csv"), "dir": str(d), "run": str(run_dir), "junk": str(junk),
            "missing": str(d / "missing.yaml"), "long": str(d / ("x" * 3000)), "blank": "", "dash": "-",
            "unicode": "설정.yaml", "nul": "a\x00b"}


FILES = _files()
VALUES = list(FILES) + ["text:abc", "text:--", "text:9" * 1, "text:１"]


def _value(key: str) -> str:
    return key[5:] if key.startswith("text:") else FILES[key]


COMMANDS = {
    "backtest": [("--config", True), ("--out", True)],
    "report": [("--run", True)],
    "data import": [("--csv", True), ("--cache", True), ("--config", True), ("--timeframe", True),
                    ("--clamp", False), ("--unadjusted", False)],
    "data download": [("--source", True), ("--config", True), ("--unadjusted", False)],
    "paper": [("--config", True), ("--out", True), ("--until", True)],
    "live": [("--config", True), ("--confirm-live", False), ("--until", True)],
    "monitor": [("--journal", True), ("--host", True), ("--port", True), ("--poll-ms", True)],
    "emulator": [("--config", True), ("--env-file", True)],
    "bogus": [("--x", True)],
}


@fuzz_settings(1500)
@given(st.sampled_from(sorted(COMMANDS)), st.data())
@example("report", None)
def test_fuzz_command_line(command, data):
    counted('fuzz_command_line')
    argv = command.split()
    if data is not None:
        for flag, takes in data.draw(st.lists(st.sampled_from(COMMANDS[command]), max_size=5)):
            argv.append(flag)
            if takes:
                argv.append(_value(data.draw(st.sampled_from(VALUES))))
        if data.draw(st.booleans()):
            argv.append(data.draw(st.sampled_from(["--verbose", "--help-me", "extra", "-v"])))
    else:
        argv += ["--run", FILES["junk"]]
    if command == "monitor" and "--journal" in argv and "--host" not in argv:
        argv += ["--host", ""]          # never start a server that waits for Ctrl-C
    def hung(*_):
        raise TimeoutError(f"run.py {' '.join(argv)} did not return within 20 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)                    # a command that blocks (a server started on garbage) fails, not hangs
    try:
        code = run.main(argv)
    except SystemExit as exc:           # argparse
        code = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 2, (argv, code)


@pytest.fixture(scope="module", autouse=True)
def _remove_work_dir():
    yield
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"\nfuzzed inputs: {sum(COUNTS.values()):,} {COUNTS}")

"""Parameter sweeps on the fast engine, in parallel on Ray.

``run_sweep(cfg, grid)`` evaluates every point of a grid (the cartesian product of parameter
values) on the fast engine and writes a results folder:

* ``points.jsonl`` — one line per finished point, appended and flushed as each one finishes: the
  record that lets an interrupted sweep restart where it stopped (finished points are skipped);
* ``results.csv`` / ``results.json`` — every point with its metrics, best first;
* ``sweep.html`` — heat maps of the chosen metric over two parameters (in-sample and out-of-sample
  side by side with a walk-forward split) and the table of the best points;
* ``sweep.json`` — what was swept (base config digest, grid, windows) so a restart into the same
  folder with a different config is refused instead of mixing results.

**Grid keys.** A bare name is a strategy parameter (``top_n``, ``fast``); a dotted name is a config
key (``risk.limits.stop_loss_pct``, ``broker.slippage_ticks``, ``risk.sizer.risk_fraction``). Every
point is validated as a whole config before anything runs; an error names the key and the value.

**Walk-forward.** With ``walk_forward`` (a date, or the in-sample share of sessions) each point runs
twice: on the in-sample window (``is_*`` metrics, used for ranking) and on the out-of-sample window
that follows (``oos_*``), starting with fresh cash; indicators come from the full history in both,
so the out-of-sample run starts warmed up. A grid that only rewards overfitting shows it as a
collapse from the in-sample to the out-of-sample column.

**Ray.** The panel — prices and every indicator column any point needs, computed once in the
driver — is put into Ray's object store once; each task maps it without copying (numpy arrays
are zero-copy from the store) and runs only the screens and the kernel. ``address`` names an
existing cluster (``ray://HOST:10001``); without one a local Ray starts on this machine's cores.
``executor="inline"`` runs the points in this process (tests, debugging).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import yaml

from configs.errors import InputError
from configs.schema import AppConfig, ConfigError, format_validation_error
from research.engine import (KERNEL_COMMISSION, KERNEL_FILLS, KERNEL_TAX, KERNEL_TRADED, cost_model_for,
                             data_config, declared_class, kernel_cached, required_fields, window_panel)
from research.indicators import add_panel_indicators
from research.panel import Panel
from research.rules import compile_inputs, schedule_key, session_rules
from research.store import load_panel
from strategies.targets import TargetBook, load_targets

log = logging.getLogger(__name__)
ProgressFn = Callable[[str, int, int], None]

POINTS_JSONL, RESULTS_CSV, RESULTS_JSON, SWEEP_JSON, SWEEP_HTML = (
    "points.jsonl", "results.csv", "results.json", "sweep.json", "sweep.html")
METRICS = ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown", "calmar",
           "final_equity", "fills", "commission", "tax", "turnover", "exposure")
LOWER_IS_BETTER = {"annual_volatility", "turnover", "commission", "tax"}


class SweepError(InputError):
    """A sweep that cannot run as asked; the message names the key, value or folder."""


# ------------------------------------------------------------------------------------- the grid

def parse_grid_arg(text: str) -> tuple[str, list[Any]]:
    """``"top_n=3,5,10"`` -> ("top_n", [3, 5, 10]); values are read as YAML scalars (numbers, booleans,
    text)."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise SweepError(f"--grid {text!r}: expected NAME=V1,V2,... (e.g. top_n=3,5,10)")
    parsed = []
    for raw in values.split(","):
        raw = raw.strip()
        if not raw:
            raise SweepError(f"--grid {text!r}: empty value in the list")
        try:
            parsed.append(yaml.safe_load(raw))
        except yaml.YAMLError:
            parsed.append(raw)
    return name, parsed


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination, the first parameter varying slowest."""
    if not grid:
        return [{}]
    names = list(grid)
    for n in names:
        if not grid[n]:
            raise SweepError(f"grid parameter {n!r} has no values")
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def point_id(point: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _set(raw: dict[str, Any], path: list[str], value: Any) -> None:
    node = raw
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise SweepError(f"grid key {'.'.join(path)!r}: {key!r} is not a section")
        node = child
    node[path[-1]] = value


def point_config(base: AppConfig, point: dict[str, Any]) -> AppConfig:
    """The base config with a point's values set; validated like a config file."""
    raw = base.model_dump()          # Python values (Decimal, date, Path): the strict loader checks kinds
    for name, value in point.items():
        path = ["strategy", "params", name] if "." not in name else name.split(".")
        _set(raw, path, value)
    try:
        cfg = AppConfig.model_validate(raw)
    except Exception as exc:  # pydantic ValidationError
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            raise ConfigError(format_validation_error(exc, f"grid point {point}")) from None
        raise
    cls = declared_class(cfg)    # unknown strategy params are errors here, naming the key
    try:
        cls.spec_for(cfg.strategy.params)
    except (ValueError, TypeError, KeyError) as exc:
        raise SweepError(f"grid point {point}: {exc}") from None
    return cfg


# ------------------------------------------------------------------------------------- windows

@dataclass(frozen=True)
class Window:
    label: str            # "" (whole window), "is_" or "oos_"
    start: date | None
    end: date | None
    # session facts per tax schedule, computed once in the driver: a worker then never builds the
    # KRX calendar (exchange_calendars takes seconds per process)
    rules: dict = field(default_factory=dict, compare=False, hash=False)


def windows_for(cfg: AppConfig, panel: Panel, split: date | float | None) -> list[Window]:
    """The evaluation windows: the configured one, or its in-sample and out-of-sample parts."""
    data = cfg.data
    if split is None:
        return [Window("", data.start, data.end)]
    full = window_panel(panel, data)
    dates = full.py_dates()
    if isinstance(split, float):
        k = int(len(dates) * split)
        if not 1 <= k < len(dates):
            raise SweepError(f"walk_forward {split}: leaves no session on one side of {len(dates)} sessions")
        is_end, oos_start = dates[k - 1], dates[k]
    else:
        later = [d for d in dates if d > split]
        if split < dates[0] or not later:
            raise SweepError(f"walk_forward {split}: must fall inside the data window {dates[0]}..{dates[-1]}")
        is_end, oos_start = split, later[0]
    return [Window("is_", data.start, is_end), Window("oos_", oos_start, data.end)]


# ------------------------------------------------------------------------------------- one point

def point_metrics(win: Panel, out: tuple, cfg: AppConfig) -> dict[str, Any]:
    """The sweep's metrics of one kernel run (``analysis.metrics`` definitions)."""
    from analysis.metrics import infer_periods_per_year, return_metrics, years_between

    values = pd.Series(out[0], index=pd.DatetimeIndex(win.dates.astype("datetime64[ns]")).tz_localize("Asia/Seoul"))
    cash = out[1]
    ppy = infer_periods_per_year(values.index)
    m = return_metrics(values, ppy, cfg.report.risk_free_pct, float(cfg.broker.cash))
    years = years_between(values.index[0], values.index[-1]) if len(values) > 1 else math.nan
    avg = float(values.mean()) if len(values) else math.nan
    invested = values.to_numpy() - cash
    return {
        "total_return": m["total_return"], "cagr": m["cagr"], "annual_volatility": m["annual_volatility"],
        "sharpe": m["sharpe"], "sortino": m["sortino"], "max_drawdown": m["max_drawdown"], "calmar": m["calmar"],
        "final_equity": int(round(float(values.iloc[-1]))) if len(values) else None,
        "fills": int(out[KERNEL_FILLS]), "commission": int(out[KERNEL_COMMISSION]), "tax": int(out[KERNEL_TAX]),
        "turnover": (float(out[KERNEL_TRADED]) / avg / years) if avg > 0 and years > 0 else math.nan,
        "exposure": float((np.abs(invested) >= 1.0).mean()) if len(values) else math.nan,
    }


def evaluate_point(panel: Panel, cfg_json: dict[str, Any], point: dict[str, Any], windows: list[Window],
                   targets: TargetBook | None) -> dict[str, Any]:
    """Run one point on every window (in a Ray task or inline); returns its result row."""
    from research import kernel as K

    t0 = time.perf_counter()
    cfg = AppConfig.model_validate(cfg_json)
    cls = declared_class(cfg)
    spec = cls.spec_for(cfg.strategy.params)
    cost_model = cost_model_for(cfg)
    row: dict[str, Any] = {"id": point_id(point), **point}
    for w in windows:
        data = cfg.data.model_copy(update={"start": w.start, "end": w.end})
        win = window_panel(panel, data)
        rules = w.rules.get((tuple(win.py_dates()), schedule_key(cost_model)))
        inputs = compile_inputs(cfg, spec, win, targets, cost_model, rules)
        out = K.simulate(*inputs.args(record=False))
        row.update({f"{w.label}{k}": v for k, v in point_metrics(win, out, cfg).items()})
    row["seconds"] = time.perf_counter() - t0
    return row


# ------------------------------------------------------------------------------------- executors

class InlineExecutor:
    """Points one after another in this process (tests, debugging, a single core)."""

    workers = 1

    def run(self, panel: Panel, tasks: list[tuple[dict, dict]], windows: list[Window],
            targets: TargetBook | None) -> Iterator[dict[str, Any]]:
        for cfg_json, point in tasks:
            yield evaluate_point(panel, cfg_json, point, windows, targets)

    def close(self) -> None:
        pass


def _import_engine() -> bool:
    import research.kernel  # noqa: F401  (numba loads the compiled kernel from its cache on first use)
    import research.sweep  # noqa: F401
    return True


def _project_root() -> str:
    return str(Path(__file__).resolve().parents[1])


class RayExecutor:
    """Points as Ray tasks; the panel goes into the object store once."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import ray

        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(
                include_dashboard=False,      # no web UI: nothing to serve in a sandbox or on a CI runner
                log_to_driver=False,          # worker logs stay in Ray's log folder, not in the progress bar
                ignore_reinit_error=True,
            )
            root = _project_root()
            if address:
                # a remote cluster gets this checkout as the job's working dir (its nodes need the
                # pinned dependencies installed); big or private folders stay behind
                kwargs["runtime_env"] = {"working_dir": root, "excludes": [
                    ".venv", ".git", "runs", "data", "test-artifacts", "**/__pycache__", "*.sqlite", ".env"]}
                try:
                    ray.init(address=address, **kwargs)
                except (ConnectionError, OSError, RuntimeError, ValueError) as exc:
                    raise SweepError(f"cannot use the Ray cluster at {address}: {exc} (the head must run a Ray "
                                     "client server, e.g. ray start --head --ray-client-server-port=10001; a "
                                     "token-authenticated cluster also needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                                     "or RAY_AUTH_TOKEN_PATH in this environment)") from None
            else:
                # workers import the project like the driver does, even from a plain checkout; one
                # numba thread per worker (Ray runs one task per core already)
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                    [root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep), "NUMBA_NUM_THREADS": "1"}}
                # address="local": always a fresh Ray on this machine, never a cluster some earlier
                # `ray start` left registered in /tmp/ray (that one needs --address)
                ray.init(address="local", num_cpus=num_cpus, **kwargs)
            self.started = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def warm(self) -> None:
        """Start every worker and import the engine there (a few seconds each, paid once per sweep)."""
        ray = self.ray
        warm = ray.remote(num_cpus=1)(_import_engine)
        ray.get([warm.remote() for _ in range(self.workers)])

    def run(self, panel: Panel, tasks: list[tuple[dict, dict]], windows: list[Window],
            targets: TargetBook | None) -> Iterator[dict[str, Any]]:
        ray = self.ray
        panel_ref = ray.put(panel)              # once; every task maps the same arrays
        remote = ray.remote(num_cpus=1)(evaluate_point)
        pending = [remote.remote(panel_ref, cfg_json, point, windows, targets) for cfg_json, point in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


# ------------------------------------------------------------------------------------- the sweep

@dataclass
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]
    ran: int
    skipped: int
    seconds: float
    workers: int
    metric: str
    rank_key: str
    prepare_seconds: float = 0.0
    startup_seconds: float = 0.0
    html: Path | None = None
    params: list[str] = field(default_factory=list)

    @property
    def points_per_second(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else math.nan


def _signature(base: AppConfig, windows: list[Window], grid_names: list[str]) -> dict[str, Any]:
    raw = base.model_dump(mode="json")
    raw.pop("research", None)
    raw.pop("report", None)
    for name in grid_names:       # the swept keys may take any value in a restart with a wider grid
        node = raw
        path = ["strategy", "params", name] if "." not in name else name.split(".")
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"config": digest, "windows": [[w.label, str(w.start), str(w.end)] for w in windows]}


def _load_finished(out: Path, signature: dict[str, Any]) -> dict[str, dict[str, Any]]:
    meta = out / SWEEP_JSON
    if meta.is_file():
        old = json.loads(meta.read_text(encoding="utf-8"))
        if old.get("signature") != signature:
            raise SweepError(f"{out} holds a sweep of another config or window ({old.get('signature')}); "
                             "choose another --out or delete the folder")
    finished: dict[str, dict[str, Any]] = {}
    path = out / POINTS_JSONL
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: skipping a torn line (interrupted write)", path)
                continue
            finished[row["id"]] = row
    return finished


def _json_safe(v: Any) -> Any:
    from analysis.metrics import json_safe

    return json_safe(v)


def run_sweep(cfg: AppConfig, grid: dict[str, list[Any]] | None = None, *, out: Path | None = None,
              metric: str | None = None, walk_forward: date | float | None = None,
              heatmap: list[str] | None = None, address: str | None = None, num_cpus: int | None = None,
              executor: str | Any = "ray", progress: ProgressFn | None = None, panel: Panel | None = None,
              cache_dir: Any = None) -> SweepResult:
    """Evaluate the grid (config ``research.sweep`` merged with the arguments); see the module docstring."""
    t_start = time.perf_counter()
    sw = cfg.research.sweep
    grid = {**sw.grid, **(grid or {})}
    metric = metric or sw.metric
    if metric not in METRICS:
        raise SweepError(f"metric {metric!r} is not one the sweep computes; allowed: {', '.join(METRICS)}")
    split = walk_forward if walk_forward is not None else sw.walk_forward
    heatmap = heatmap or sw.heatmap
    out = Path(out or sw.out or Path("runs") / f"{cfg.name}-sweep")
    points = grid_points(grid)
    configs = [point_config(cfg, p) for p in points]        # every point validated before anything runs
    if heatmap and any(h not in grid for h in heatmap):
        raise SweepError(f"heatmap {heatmap}: both must be grid parameters ({', '.join(grid) or 'none'})")

    # ---- the shared panel: every field any point needs, computed once
    targets = load_targets(cfg.strategy.targets) if cfg.strategy.targets else None
    data = data_config(cfg, targets)
    if panel is None:
        setting = cfg.research.panel_cache if cache_dir is None else cache_dir
        panel, _ = load_panel(data, setting, progress)
    elif data.universe is not None:
        panel = panel.select(data.universe)
    specs: list[str] = []
    others: list[str] = []
    for pc in configs:
        cls = declared_class(pc)
        s, o = required_fields(pc, cls, cls.spec_for(pc.strategy.params))
        specs += s
        others += o
    add_panel_indicators(panel, list(dict.fromkeys(specs)))
    panel.ensure(dict.fromkeys(others))
    panel.ensure(("open", "high", "low", "close", "volume"))   # float views, shared by every task
    windows = windows_for(cfg, panel, split)
    for pc in configs:
        cm = cost_model_for(pc)
        for w in windows:
            dates = window_panel(panel, pc.data.model_copy(update={"start": w.start, "end": w.end})).py_dates()
            key = (tuple(dates), schedule_key(cm))
            if key not in w.rules:
                w.rules[key] = session_rules(dates, cm)
    signature = _signature(cfg, windows, list(grid))

    out.mkdir(parents=True, exist_ok=True)
    finished = _load_finished(out, signature)
    (out / SWEEP_JSON).write_text(json.dumps({"signature": signature, "grid": _json_safe(grid), "metric": metric,
                                              "walk_forward": str(split) if split is not None else None,
                                              "heatmap": heatmap}, indent=2), encoding="utf-8")
    todo = [(pc.model_dump(), p) for pc, p in zip(configs, points) if point_id(p) not in finished]
    skipped = len(points) - len(todo)
    t_prepared = time.perf_counter()

    ex = executor
    t_start_ex = time.perf_counter()
    if executor == "ray":
        ex = RayExecutor(address or sw.address, num_cpus or sw.num_cpus)
        if todo:
            ex.warm()
    elif executor == "inline":
        ex = InlineExecutor()
    ran = 0
    t_run = time.perf_counter()
    try:
        if progress:
            progress("sweep", skipped, len(points))
        with (out / POINTS_JSONL).open("a", encoding="utf-8") as fh:
            def done(row: dict[str, Any]) -> None:
                nonlocal ran
                fh.write(json.dumps(_json_safe(row)) + "\n")
                fh.flush()
                finished[row["id"]] = _json_safe(row)
                ran += 1
                if progress:
                    progress("sweep", skipped + ran, len(points))

            if todo and not isinstance(ex, InlineExecutor) and not kernel_cached():
                # compile the kernel once here (numba caches it on disk) instead of in every worker at
                # once; the point is a real one and counts
                log.warning("compiling the fast engine (numba, first run on this machine only, about 30 s)")
                cfg_json, point = todo.pop(0)
                done(evaluate_point(panel, cfg_json, point, windows, targets))
            for row in ex.run(panel, todo, windows, targets) if todo else ():
                done(row)
    finally:
        ex.close()
    run_seconds = time.perf_counter() - t_run

    rank_key = ("is_" if split is not None else "") + metric
    ids = [point_id(p) for p in points]
    rows = [finished[i] for i in ids if i in finished]
    rows.sort(key=lambda r: _sort_key(r.get(rank_key), metric))
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    result = SweepResult(out=out, rows=rows, ran=ran, skipped=skipped, seconds=run_seconds,
                         workers=getattr(ex, "workers", 1), metric=metric, rank_key=rank_key,
                         prepare_seconds=t_prepared - t_start, startup_seconds=t_run - t_start_ex,
                         params=list(grid))
    write_results(result, cfg, grid, heatmap, split)
    return result


def _sort_key(v: Any, metric: str) -> tuple:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return (1, 0.0)
    return (0, float(v) if metric in LOWER_IS_BETTER else -float(v))


def write_results(result: SweepResult, cfg: AppConfig, grid: dict[str, list[Any]], heatmap: list[str] | None,
                  split: date | float | None) -> None:
    from analysis.runfiles import write_files
    from research.sweep_report import render_sweep_html

    frame = pd.DataFrame(result.rows)
    cols = ["rank", *result.params] + [c for c in frame.columns if c not in ("rank", "id", *result.params)] + ["id"]
    frame = frame[[c for c in cols if c in frame.columns]] if len(frame) else frame
    html = render_sweep_html(result, cfg, grid, heatmap, split)
    write_files(result.out, {
        RESULTS_CSV: frame.to_csv(index=False).encode("utf-8"),
        RESULTS_JSON: json.dumps({"metric": result.metric, "rank_key": result.rank_key, "grid": _json_safe(grid),
                                  "walk_forward": str(split) if split is not None else None,
                                  "points": result.rows}, indent=2, ensure_ascii=False).encode("utf-8"),
        SWEEP_HTML: html.encode("utf-8"),
    })
    result.html = result.out / SWEEP_HTML


def best_points(result: SweepResult, n: int = 5) -> list[dict[str, Any]]:
    return result.rows[:n]


def describe(result: SweepResult) -> str:
    """A few lines for the terminal: speed and the best points."""
    lines = [f"sweep: {result.ran} point(s) run, {result.skipped} skipped (finished before) in {result.seconds:.1f} s "
             f"on {result.workers} worker(s) ({result.points_per_second:.2f} points/s; before that "
             f"{result.prepare_seconds:.1f} s loading and indicators, {result.startup_seconds:.1f} s starting workers)"]
    for r in result.rows[:5]:
        params = ", ".join(f"{p}={r.get(p)}" for p in result.params)
        score = r.get(result.rank_key)
        extra = ""
        if result.rank_key.startswith("is_"):
            oos = r.get("oos_" + result.metric)
            extra = f", out-of-sample {result.metric} {_fmt(oos)}"
        lines.append(f"  #{r['rank']}: {params or '(base config)'}: {result.rank_key} {_fmt(score)}{extra}")
    lines.append(f"results: {result.out / RESULTS_CSV}  heat map: {result.html}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def iter_rows(path: Path) -> Iterable[dict[str, Any]]:
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)

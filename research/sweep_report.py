"""``sweep.html``: heat maps of a sweep's metric over two parameters and the table of the best points.

Self-contained like ``report.html`` (inline CSS, PNGs as ``data:`` URIs; ``analysis.styles`` and the
report's table helpers), so it opens offline and can be mailed as one file.

A heat map shows one cell per (x, y) pair of the two chosen parameters. When the grid has more
parameters, each cell shows the *best* point over the others (by the ranking metric), and says so.
With a walk-forward split the in-sample map (what the ranking sees) and the out-of-sample map (the
same cells' points, run on the sessions after the split) sit side by side: a cell that is bright in
sample and dark out of sample is a fit to noise.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis import charts, styles
from analysis.metrics import KST
from analysis.report import _img, _table, _td, esc
from configs.schema import AppConfig

PCT_METRICS = {"total_return", "cagr", "annual_volatility", "max_drawdown", "exposure"}


def _fmt(metric: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if metric.split("_", 1)[-1] in PCT_METRICS or metric in PCT_METRICS:
        return f"{v * 100:.1f}%"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else esc(v)


def heat_table(rows: list[dict[str, Any]], x: str, y: str, key: str, value_key: str, lower_better: bool
               ) -> tuple[list[Any], list[Any], np.ndarray]:
    """(x values, y values, matrix[y, x]) of ``value_key`` at the best point (by ``key``) per cell."""
    xs = sorted({r.get(x) for r in rows}, key=_order)
    ys = sorted({r.get(y) for r in rows}, key=_order)
    grid = np.full((len(ys), len(xs)), np.nan)
    best = np.full((len(ys), len(xs)), np.nan)
    for r in rows:
        i, j = ys.index(r.get(y)), xs.index(r.get(x))
        score = r.get(key)
        if score is None or (isinstance(score, float) and math.isnan(score)):
            continue
        better = (math.isnan(best[i, j]) or (score < best[i, j] if lower_better else score > best[i, j]))
        if better:
            best[i, j] = score
            v = r.get(value_key)
            grid[i, j] = np.nan if v is None else float(v)
    return xs, ys, grid


def _order(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def heatmap_png(xs: list[Any], ys: list[Any], grid: np.ndarray, x: str, y: str, title: str, metric: str,
                synthetic: bool) -> bytes:
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.grid(False)
        finite = grid[np.isfinite(grid)]
        masked = np.ma.masked_invalid(grid)
        cmap = "RdBu" if metric == "annual_volatility" else "RdBu_r"
        if finite.size and (finite.min() < 0 < finite.max()):
            lim = float(np.abs(finite).max())
            ax.imshow(masked, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        else:
            ax.imshow(masked, cmap="Reds" if not finite.size or finite.max() > 0 else "Blues_r", aspect="auto",
                      interpolation="nearest")
        mid = float(np.nanmean(np.abs(finite))) if finite.size else 0.0
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                v = grid[i, j]
                if math.isfinite(v):
                    ax.text(j, i, _fmt(metric, float(v)).replace("–", ""), ha="center", va="center", fontsize=8,
                            color="white" if abs(v) > 1.5 * mid and mid > 0 else styles.PALETTE["text"])
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title)
        fig.tight_layout()
    width = min(9.0, 2.5 + 0.9 * len(xs))
    height = min(7.0, 1.6 + 0.45 * len(ys))
    return charts._render(width, height, draw, synthetic)


def render_sweep_html(result: Any, cfg: AppConfig, grid: dict[str, list[Any]], heatmap: list[str] | None,
                      split: Any) -> str:
    rows = result.rows
    params = list(grid)
    metric = result.metric
    lower = metric in {"annual_volatility", "turnover", "commission", "tax"}
    synthetic = cfg.data.source == "demo"
    maps = ""
    pair = heatmap or (params[:2] if len(params) >= 2 else None)
    if pair and rows:
        x, y = pair
        others = [p for p in params if p not in pair]
        note = (f'<p class="note">Each cell shows the best point over {", ".join(others)} '
                f'(by {esc(result.rank_key)}).</p>' if others else "")
        xs, ys, g = heat_table(rows, x, y, result.rank_key, result.rank_key, lower)
        title = ("in-sample " if split is not None else "") + metric
        maps += _img("heat-is", heatmap_png(xs, ys, g, x, y, title, metric, synthetic), f"{metric} heat map")
        if split is not None:
            xs, ys, g = heat_table(rows, x, y, result.rank_key, "oos_" + metric, lower)
            maps += _img("heat-oos", heatmap_png(xs, ys, g, x, y, f"out-of-sample {metric} (same points)", metric,
                                                 synthetic), f"out-of-sample {metric} heat map")
        maps = f"<h2>Heat map: {esc(metric)} over {esc(x)} × {esc(y)}</h2>{note}<div class=\"heat\">{maps}</div>"
    elif rows:
        maps = '<p class="note">A heat map needs two grid parameters.</p>'

    shown = ["is_" + metric, "oos_" + metric] if split is not None else [metric]
    extra = [m for m in ("total_return", "cagr", "sharpe", "max_drawdown", "fills") if m != metric]
    prefix = "is_" if split is not None else ""
    cols = params + shown + [prefix + m for m in extra] + (["oos_total_return"] if split is not None else [])
    cols = list(dict.fromkeys(cols))
    headers = [("#", "num")] + [(c, "num" if c not in params else "") for c in cols]
    body = []
    for r in rows[:50]:
        cells = [_td(str(r.get("rank")), "num")]
        for c in cols:
            v = r.get(c)
            cells.append(_td(esc(v) if c in params else _fmt(c, v), "" if c in params else "num"))
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = _table(headers, body)
    speed = (f"{result.ran} point(s) run, {result.skipped} taken from an earlier run, "
             f"{result.seconds:.1f} s on {result.workers} worker(s)")
    wf = (f"Walk-forward: ranked on the sessions up to {esc(split)} (in-sample), scored on the sessions after "
          f"it (out-of-sample, fresh cash)." if split is not None else "No walk-forward split.")
    banner = ('<div class="banner-synthetic" role="alert">SYNTHETIC DATA — a sweep on the generated demo '
              'market says nothing about real stocks.</div>' if synthetic else "")
    generated = datetime.now(KST).strftime("%Y-%m-%d %H:%M:%S KST")
    grid_json = json.dumps(grid, ensure_ascii=False, default=str)
    body_html = f"""<main>
<header><h1>Sweep — {esc(cfg.strategy.name)} · {esc(cfg.name)}</h1>
<p class="subtitle">{len(rows)} point(s), ranked by {esc(result.rank_key)} · {speed}</p>{banner}
<p class="note">{wf} Grid: {esc(grid_json)}</p></header>
<section id="heatmaps">{maps}</section>
<section id="best"><h2>Points, best first</h2>{table}</section>
<footer>Generated {generated} by krx-trader research.sweep (fast engine, fills identical to the event-driven
simulator). Check the chosen point with <code>run.py backtest --engine event</code> before paper trading.
Files: results.csv, results.json, points.jsonl.</footer>
</main>"""
    return (f'<!DOCTYPE html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>Sweep {esc(cfg.name)}</title>\n<style>{styles.CSS}\n.heat figure{{display:inline-block;"
            f"margin-right:1em}}</style>\n</head>\n<body>\n{body_html}\n</body>\n</html>\n")

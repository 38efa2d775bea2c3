"""Report charts as PNG bytes, drawn with matplotlib's Agg canvas directly.

Why not ``cerebro.plot()``: it breaks on recent matplotlib and needs live backtrader objects, while
a report must be re-renderable from files. Why not ``pyplot``: it keeps global figure state and
picks a GUI backend; ``Figure`` + ``FigureCanvasAgg`` is headless, thread-safe per figure (the live
monitor renders from a server thread) and leaves nothing open. Every chart is drawn inside
``matplotlib.rc_context(styles.mpl_rc())`` so the look comes from one place.

Every function accepts empty inputs and then returns a small chart that says what is missing
("no trades", "no Trade Target progress") instead of raising. When ``synthetic`` is true the chart
carries a "SYNTHETIC DATA" stamp, so an image copied out of the report is still labelled.

Speed: the whole set for 30 codes × 1,250 daily bars renders in well under a few seconds; the
price small multiples are capped (``max_panels``) because each panel costs ~50 ms.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from analysis import styles
from analysis.metrics import drawdown_series, monthly_returns, normalise_trades, to_kst_index
from analysis.record import RunRecord

DEFAULT_MAX_PRICE_PANELS = 12
DEFAULT_MAX_PROGRESS_ROWS = 30
WIDTH_IN = 10.0


# --------------------------------------------------------------------------- plumbing

def _naive_kst(index: pd.Index) -> pd.DatetimeIndex:
    """KST wall-clock times without tz, so axis labels show Korean dates whatever rcParams say."""
    return to_kst_index(index).tz_localize(None)


def _render(width: float, height: float, draw: Callable[[Figure], None], synthetic: bool) -> bytes:
    """Create a figure, let ``draw`` fill it, stamp it if synthetic, return PNG bytes."""
    with matplotlib.rc_context(styles.mpl_rc()):
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        draw(fig)
        if synthetic:
            fig.text(0.995, 0.005, "SYNTHETIC DATA", ha="right", va="bottom", fontsize=8,
                     fontweight="bold", color=styles.PALETTE["warning"], alpha=0.85)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def placeholder_chart(message: str, title: str = "", synthetic: bool = False,
                      width: float = WIDTH_IN, height: float = 1.6) -> bytes:
    """A small chart that states why there is nothing to draw (e.g. "no trades")."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        if title:
            ax.text(0.5, 0.85, title, ha="center", va="top", fontsize=10, fontweight="bold",
                    transform=ax.transAxes)
        ax.text(0.5, 0.4, message, ha="center", va="center", fontsize=11, color=styles.PALETTE["muted"],
                transform=ax.transAxes)
    return _render(width, height, draw, synthetic)


def _no_negative_zero(x: float, digits: int) -> float:
    """``-0.0`` and values that round to zero print as ``0``, not ``-0``."""
    return 0.0 if round(x, digits) == 0 else x


def krw_formatter(max_abs: float) -> FuncFormatter:
    """Axis labels in KRW: full figures below one million, else millions with one decimal."""
    if max_abs >= 1e6:
        return FuncFormatter(lambda v, _pos: f"{_no_negative_zero(v / 1e6, 1):,.1f}M")
    return FuncFormatter(lambda v, _pos: f"{_no_negative_zero(v, 0):,.0f}")


def pct_formatter(digits: int = 0) -> FuncFormatter:
    """Axis labels for values already in percent."""
    return FuncFormatter(lambda v, _pos: f"{_no_negative_zero(v, digits):.{digits}f}%")


def _value_frame(equity: pd.DataFrame) -> pd.Series:
    if equity is None or len(equity) == 0 or "value" not in equity:
        return pd.Series(dtype=float)
    s = pd.Series(pd.to_numeric(equity["value"], errors="coerce").to_numpy(dtype=float),
                  index=to_kst_index(equity.index)).sort_index().dropna()
    return s


def _bench_series(benchmark: pd.Series | None) -> pd.Series | None:
    if benchmark is None or len(benchmark) == 0:
        return None
    s = pd.Series(pd.to_numeric(benchmark, errors="coerce").to_numpy(dtype=float),
                  index=to_kst_index(benchmark.index)).sort_index().dropna()
    return s if len(s) else None


# --------------------------------------------------------------------------- equity and drawdown

def equity_chart(equity: pd.DataFrame, benchmark: pd.Series | None = None, benchmark_label: str = "",
                 synthetic: bool = False, initial_cash: float | None = None) -> bytes:
    """Strategy equity (value at each bar close) against the benchmark, in KRW."""
    values = _value_frame(equity)
    if len(values) == 0:
        return placeholder_chart("no equity data", "Equity", synthetic)
    bench = _bench_series(benchmark)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(_naive_kst(values.index), values.to_numpy(), color=styles.PALETTE["strategy"],
                label="Strategy")
        top = float(np.nanmax(np.abs(values.to_numpy())))
        if bench is not None:
            ax.plot(_naive_kst(bench.index), bench.to_numpy(), color=styles.PALETTE["benchmark"],
                    label=benchmark_label or "Benchmark", linewidth=1.1)
            top = max(top, float(np.nanmax(np.abs(bench.to_numpy()))))
        if initial_cash:
            ax.axhline(float(initial_cash), color=styles.PALETTE["muted"], linewidth=0.7, linestyle=":")
        ax.yaxis.set_major_formatter(krw_formatter(top))
        ax.set_ylabel("KRW")
        ax.set_title("Equity vs benchmark")
        ax.legend(loc="upper left")
        fig.tight_layout()
    return _render(WIDTH_IN, 3.8, draw, synthetic)


def drawdown_chart(equity: pd.DataFrame, benchmark: pd.Series | None = None, benchmark_label: str = "",
                   synthetic: bool = False) -> bytes:
    """Underwater curve: % below the running peak, strategy filled, benchmark as a line."""
    values = _value_frame(equity)
    if len(values) == 0:
        return placeholder_chart("no equity data", "Drawdown", synthetic)
    bench = _bench_series(benchmark)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        dd = drawdown_series(values) * 100.0
        x = _naive_kst(dd.index)
        ax.fill_between(x, dd.to_numpy(), 0.0, color=styles.PALETTE["drawdown"], alpha=0.35, linewidth=0,
                        label="Strategy")
        ax.plot(x, dd.to_numpy(), color=styles.PALETTE["drawdown"], linewidth=0.8)
        if bench is not None:
            bdd = drawdown_series(bench) * 100.0
            ax.plot(_naive_kst(bdd.index), bdd.to_numpy(), color=styles.PALETTE["benchmark"],
                    linewidth=1.0, label=benchmark_label or "Benchmark")
        ax.yaxis.set_major_formatter(pct_formatter())
        ax.set_ylim(top=0.5)
        ax.set_title("Drawdown (below running peak)")
        ax.legend(loc="lower left")
        fig.tight_layout()
    return _render(WIDTH_IN, 2.6, draw, synthetic)


def monthly_returns_chart(equity: pd.DataFrame, initial_cash: float | None = None,
                          synthetic: bool = False) -> bytes:
    """Heat map of monthly returns (rows: years, columns: months and the year), in %.

    Red is a gain and blue a loss (Korean convention, see ``styles``); every cell is annotated.
    """
    values = _value_frame(equity)
    if len(values) == 0:
        return placeholder_chart("no equity data", "Monthly returns", synthetic)
    table = monthly_returns(values, initial_cash) * 100.0
    data = table.to_numpy(dtype=float)
    n_years = data.shape[0]

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.grid(False)
        finite = np.abs(data[:, :12][np.isfinite(data[:, :12])])
        lim = max(float(np.percentile(finite, 95)) if finite.size else 1.0, 0.5)
        masked = np.ma.masked_invalid(data)
        ax.imshow(masked, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                v = data[i, j]
                if not math.isfinite(v):
                    continue
                strong = abs(v) > 0.6 * lim
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if strong else styles.PALETTE["text"],
                        fontweight="bold" if j == 12 else "normal")
        ax.axvline(11.5, color="white", linewidth=3)
        ax.set_xticks(range(13), [*[f"{m}" for m in range(1, 13)], "Year"])
        ax.set_yticks(range(n_years), [str(y) for y in table.index])
        ax.tick_params(length=0)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_title("Monthly returns (%)")
        fig.tight_layout()
    return _render(WIDTH_IN, 1.1 + 0.32 * n_years, draw, synthetic)


# --------------------------------------------------------------------------- prices and fills

def select_price_codes(trades: pd.DataFrame | None,
                       max_panels: int = DEFAULT_MAX_PRICE_PANELS) -> tuple[list[str], int]:
    """The codes to draw (most fills first, ties by code) and how many traded codes are omitted."""
    t = normalise_trades(trades)
    if len(t) == 0:
        return [], 0
    counts = t.groupby("code").size().reset_index(name="n").sort_values(["n", "code"],
                                                                       ascending=[False, True])
    codes = counts["code"].astype(str).tolist()
    return codes[:max_panels], max(0, len(codes) - max_panels)


def price_chart(prices: dict[str, pd.DataFrame], trades: pd.DataFrame | None,
                max_panels: int = DEFAULT_MAX_PRICE_PANELS, synthetic: bool = False,
                markets: dict[str, str] | None = None) -> bytes:
    """Small multiples: close of each traded code with buy (▲, red) and sell (▼, blue) fills.

    Only the ``max_panels`` codes with the most fills are drawn; the title says how many were
    omitted. Without trades the chart says "no trades".
    """
    codes, omitted = select_price_codes(trades, max_panels)
    if not codes:
        return placeholder_chart("no trades", "Prices and fills", synthetic)
    t = normalise_trades(trades)
    fills = {code: g for code, g in t.groupby("code")}
    ncols = 3 if len(codes) > 4 else 2 if len(codes) > 1 else 1
    nrows = math.ceil(len(codes) / ncols)
    markets = markets or {}

    def draw(fig: Figure) -> None:
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= len(codes):
                ax.set_visible(False)
                continue
            code = codes[k]
            px = prices.get(code)
            top = 0.0
            if px is not None and len(px) and "close" in px:
                close = pd.to_numeric(px["close"], errors="coerce")
                ax.plot(_naive_kst(px.index), close.to_numpy(dtype=float), color=styles.PALETTE["price"],
                        linewidth=0.8)
                top = float(np.nanmax(close.to_numpy(dtype=float))) if close.notna().any() else 0.0
            g = fills.get(code)
            if g is not None:
                for side, marker, colour in (("BUY", "^", styles.PALETTE["buy"]),
                                             ("SELL", "v", styles.PALETTE["sell"])):
                    s = g[g["side"] == side]
                    if len(s):
                        ax.scatter(_naive_kst(pd.DatetimeIndex(s["datetime"])), s["price"].to_numpy(float),
                                   marker=marker, s=22, color=colour, edgecolors="white", linewidths=0.4,
                                   zorder=3, label=side.title())
                top = max(top, float(np.nanmax(g["price"].to_numpy(float))) if len(g) else 0.0)
            n_fills = 0 if g is None else len(g)
            market = markets.get(code)
            ax.set_title(f"{code}{' · ' + market if market else ''}  ({n_fills} fills)", fontsize=9)
            ax.yaxis.set_major_formatter(krw_formatter(top))
            ax.tick_params(axis="x", labelsize=7, labelrotation=0)
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2, maxticks=5))
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        head = f"Close with fills (▲ buy, ▼ sell) — {len(codes)} codes with the most fills"
        if omitted:
            head += f"; {omitted} more traded code{'s' if omitted != 1 else ''} omitted"
        fig.suptitle(head, fontsize=10, fontweight="bold")
        fig.tight_layout()
    return _render(WIDTH_IN, 0.4 + 2.0 * nrows, draw, synthetic)


# --------------------------------------------------------------------------- Trade Target progress

def progress_chart(progress: pd.DataFrame | None, max_rows: int = DEFAULT_MAX_PROGRESS_ROWS,
                   synthetic: bool = False) -> bytes:
    """Per code: capital used vs ``max_capital`` (left) and current vs target return (right).

    Rows are the codes with the most capital used (capped at ``max_rows``; the title says how many
    are omitted). A run without targets (no max capital, no target return) and with every position
    closed has nothing to measure progress against; it then shows the result per code
    (``absolute_return``, KRW) if the progress table carries one, else a "no targets" note.
    """
    title = "Trade Target progress"
    if progress is None or len(progress) == 0:
        return placeholder_chart("no Trade Target progress", title, synthetic)
    p = progress.copy()
    for col in ("max_capital", "capital_used", "current_return_pct", "target_return_pct", "absolute_return"):
        p[col] = pd.to_numeric(p[col], errors="coerce") if col in p else np.nan
    p.index = p.index.astype(str)
    has_targets = p["max_capital"].notna().any() or p["target_return_pct"].notna().any()
    has_capital = (p["capital_used"].fillna(0) != 0).any() or p["current_return_pct"].notna().any()
    if not (has_targets or has_capital):
        if (p["absolute_return"].fillna(0) != 0).any():
            return _result_per_code_chart(p, max_rows, synthetic)
        return placeholder_chart("no targets set and no capital in use", title, synthetic)
    p = p.sort_values(["capital_used"], ascending=False, na_position="last", kind="mergesort")
    omitted = max(0, len(p) - max_rows)
    p = p.iloc[:max_rows].iloc[::-1]        # biggest at the top of a horizontal bar chart
    y = np.arange(len(p))
    labels = list(p.index)

    def draw(fig: Figure) -> None:
        ax1, ax2 = fig.subplots(1, 2, sharey=True)
        maxc = p["max_capital"].to_numpy(float)
        used = p["capital_used"].fillna(0).to_numpy(float)
        ax1.barh(y, np.nan_to_num(maxc), color=styles.PALETTE["grid"], height=0.7, label="max capital")
        ax1.barh(y, used, color=styles.PALETTE["used"], height=0.45, label="capital used")
        top = float(np.nanmax(np.abs(np.concatenate([np.nan_to_num(maxc), used])))) if len(p) else 0.0
        ax1.xaxis.set_major_formatter(krw_formatter(top))
        ax1.set_yticks(y, labels)
        ax1.set_title("Capital used vs max capital (KRW)")
        ax1.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, borderaxespad=2.2)
        cur = p["current_return_pct"].to_numpy(float)
        tgt = p["target_return_pct"].to_numpy(float)
        colours = [styles.PALETTE["up"] if (v == v and v >= 0) else styles.PALETTE["down"] for v in cur]
        ax2.barh(y, np.nan_to_num(cur), color=colours, height=0.55)
        ax2.scatter(tgt, y, marker="|", s=180, color=styles.PALETTE["target"], linewidths=2.2, zorder=3)
        handles = [Patch(color=styles.PALETTE["up"], label="current return ≥ 0"),
                   Patch(color=styles.PALETTE["down"], label="current return < 0"),
                   Line2D([], [], marker="|", linestyle="none", markersize=11, markeredgewidth=2.2,
                          color=styles.PALETTE["target"], label="target return")]
        ax2.axvline(0, color=styles.PALETTE["muted"], linewidth=0.7)
        ax2.xaxis.set_major_formatter(pct_formatter())
        ax2.set_title("Current vs target return (%)")
        ax2.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, borderaxespad=2.2)
        head = title + (f" — top {len(p)} by capital used; {omitted} omitted" if omitted else "")
        fig.suptitle(head, fontsize=10, fontweight="bold")
        fig.tight_layout()
    return _render(WIDTH_IN, 1.6 + 0.26 * len(p), draw, synthetic)


def _result_per_code_chart(p: pd.DataFrame, max_rows: int, synthetic: bool) -> bytes:
    """Absolute return per code (KRW), largest magnitudes first: progress of a run without targets."""
    p = p.reindex(p["absolute_return"].abs().sort_values(ascending=False, kind="mergesort").index)
    omitted = max(0, len(p) - max_rows)
    p = p.iloc[:max_rows].iloc[::-1]
    vals = p["absolute_return"].fillna(0).to_numpy(float)
    y = np.arange(len(p))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        colours = [styles.PALETTE["up"] if v >= 0 else styles.PALETTE["down"] for v in vals]
        ax.barh(y, vals, color=colours, height=0.6)
        ax.axvline(0, color=styles.PALETTE["muted"], linewidth=0.7)
        ax.set_yticks(y, list(p.index))
        ax.xaxis.set_major_formatter(krw_formatter(float(np.max(np.abs(vals))) if len(vals) else 0.0))
        head = "Trade Target progress — no targets set; result per code (absolute return, KRW, after costs)"
        if omitted:
            head += f"; {omitted} smaller omitted"
        ax.set_title(head)
        fig.tight_layout()
    return _render(WIDTH_IN, 1.2 + 0.24 * len(p), draw, synthetic)


# --------------------------------------------------------------------------- all of them

def render_charts(record: RunRecord, max_price_panels: int = DEFAULT_MAX_PRICE_PANELS) -> dict[str, bytes]:
    """Every report chart of a ``RunRecord`` by name (equity, drawdown, monthly, prices, progress)."""
    syn = bool(record.synthetic)
    return {
        "equity": equity_chart(record.equity, record.benchmark, record.benchmark_label, syn,
                               record.initial_cash),
        "drawdown": drawdown_chart(record.equity, record.benchmark, record.benchmark_label, syn),
        "monthly": monthly_returns_chart(record.equity, record.initial_cash, syn),
        "prices": price_chart(record.prices, record.trades, max_price_panels, syn, record.markets),
        "progress": progress_chart(record.progress, synthetic=syn),
    }


__all__ = ["equity_chart", "drawdown_chart", "monthly_returns_chart", "price_chart", "progress_chart",
           "placeholder_chart", "select_price_codes", "render_charts", "krw_formatter"]

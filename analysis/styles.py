"""The shared look of every report and of the live monitor: one CSS string, one palette, chart rcParams.

Why one module: the static report (``analysis.report``) and the live page (``analysis.monitor``)
must look like the same product, and a colour changed here changes both. Importing this module has
no side effects: it neither imports pyplot nor touches ``matplotlib.rcParams``; charts apply
:func:`mpl_rc` through ``matplotlib.rc_context`` so the global state of the process stays intact.

Colour convention: Korean trading screens (HTS/MTS) show rises and buys (매수) in **red** and falls
and sells (매도) in **blue**. The palette follows that convention so a Korean reader does not read
a gain as a loss; the legends always name the series, so the convention is never the only cue.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

PALETTE: dict[str, str] = {
    "strategy": "#1f4e8c",     # equity line of the strategy
    "benchmark": "#9a9a9a",    # benchmark line, deliberately quieter
    "up": "#d62728",           # rise / profit (Korean convention: red)
    "down": "#1f62c4",         # fall / loss (Korean convention: blue)
    "buy": "#d62728",          # 매수 marker
    "sell": "#1f62c4",         # 매도 marker
    "drawdown": "#c0392b",
    "price": "#444444",
    "target": "#f39c12",       # target return / max capital markers
    "used": "#2e86ab",         # capital used
    "grid": "#e6e6e6",
    "text": "#222222",
    "muted": "#6b7280",
    "accent": "#0f766e",
    "warning": "#b91c1c",
    "background": "#ffffff",
    "panel": "#f7f8fa",
}
"""Named colours shared by the CSS and the charts."""

FONT_STACK_CSS = (
    '"Pretendard", "Apple SD Gothic Neo", "Malgun Gothic", "맑은 고딕", "Noto Sans KR", '
    '"Noto Sans CJK KR", "Source Han Sans KR", "NanumGothic", "Nanum Gothic", system-ui, '
    '-apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
)
"""Korean-capable fonts first (macOS, Windows, Linux/Noto, Naver), then generic system fonts."""

MONO_STACK_CSS = ('"D2Coding", "NanumGothicCoding", ui-monospace, "SFMono-Regular", Menlo, Consolas, '
                  '"Liberation Mono", monospace')

KOREAN_MPL_FONTS: tuple[str, ...] = (
    "Malgun Gothic", "AppleGothic", "Apple SD Gothic Neo", "Noto Sans CJK KR", "Noto Sans KR",
    "Source Han Sans KR", "NanumGothic", "NanumBarunGothic", "UnDotum",
)
"""Matplotlib font families that carry Hangul; whichever are installed are tried before DejaVu Sans."""

CSS = f"""
:root {{
  --c-text: {PALETTE['text']}; --c-muted: {PALETTE['muted']}; --c-grid: {PALETTE['grid']};
  --c-up: {PALETTE['up']}; --c-down: {PALETTE['down']}; --c-accent: {PALETTE['accent']};
  --c-warning: {PALETTE['warning']}; --c-panel: {PALETTE['panel']}; --c-strategy: {PALETTE['strategy']};
}}
* {{ box-sizing: border-box; }}
html {{ -webkit-text-size-adjust: 100%; }}
body {{
  margin: 0; padding: 24px 32px 48px; color: var(--c-text); background: #fff;
  font-family: {FONT_STACK_CSS};
  font-size: 14px; line-height: 1.5; word-break: keep-all; overflow-wrap: anywhere;
}}
main {{ max-width: 1200px; margin: 0 auto; }}
h1 {{ font-size: 24px; margin: 0 0 4px; }}
h2 {{ font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--c-grid); }}
h3 {{ font-size: 15px; margin: 16px 0 6px; }}
.subtitle {{ color: var(--c-muted); margin: 0 0 16px; }}
.note {{ color: var(--c-muted); font-size: 12px; margin: 4px 0 8px; }}
.banner-synthetic {{
  background: #fff4e5; border: 2px solid #f0a020; color: #7a4100; font-weight: 700;
  padding: 10px 16px; border-radius: 6px; margin: 8px 0 16px; letter-spacing: 0.02em;
}}
.banner-live {{
  background: #fdecec; border: 2px solid var(--c-warning); color: var(--c-warning); font-weight: 700;
  padding: 10px 16px; border-radius: 6px; margin: 8px 0 16px;
}}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px;
          margin: 12px 0; }}
.card {{ background: var(--c-panel); border: 1px solid var(--c-grid); border-radius: 8px; padding: 12px 14px; }}
.card .label {{ color: var(--c-muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }}
.card .value {{ font-size: 22px; font-weight: 700; font-variant-numeric: tabular-nums; white-space: nowrap; }}
.card .sub {{ color: var(--c-muted); font-size: 12px; }}
table.data {{ border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: 13px; }}
table.data th, table.data td {{ padding: 5px 8px; border-bottom: 1px solid var(--c-grid); text-align: left;
                               vertical-align: top; }}
table.data th {{ background: var(--c-panel); font-weight: 600; position: sticky; top: 0; }}
table.data tbody tr:nth-child(even) {{ background: #fbfbfc; }}
table.data tbody tr:hover {{ background: #f1f5f9; }}
table.data td.num, table.data th.num {{ text-align: right; font-variant-numeric: tabular-nums;
                                        white-space: nowrap; }}
table.data td.code {{ font-family: {MONO_STACK_CSS}; }}
table.data tr.gap td {{ text-align: center; color: var(--c-muted); font-style: italic; }}
table.compact {{ width: auto; min-width: 420px; }}
.pos {{ color: var(--c-up); }}
.neg {{ color: var(--c-down); }}
.side-BUY {{ color: {PALETTE['buy']}; font-weight: 600; }}
.side-SELL {{ color: {PALETTE['sell']}; font-weight: 600; }}
.status-Completed {{ color: var(--c-accent); }}
.status-Rejected, .status-Margin, .status-Refused {{ color: var(--c-warning); }}
.chart {{ margin: 8px 0 20px; }}
.chart img {{ max-width: 100%; height: auto; border: 1px solid var(--c-grid); border-radius: 6px; }}
.empty {{ color: var(--c-muted); font-style: italic; }}
details {{ margin: 8px 0; }}
pre {{ background: var(--c-panel); padding: 10px; border-radius: 6px; overflow: auto; font-size: 12px;
       font-family: {MONO_STACK_CSS}; }}
footer {{ margin-top: 40px; color: var(--c-muted); font-size: 12px; }}
@media print {{ body {{ padding: 0; }} .chart img {{ border: none; }} }}
"""
"""The report/monitor stylesheet. Classes: ``banner-synthetic``, ``cards``/``card``, ``data`` tables
with ``num`` (right-aligned, tabular figures) and ``code`` cells, ``pos``/``neg``, ``side-*``,
``status-*``, ``chart``, ``note``, ``empty``."""


@lru_cache(maxsize=1)
def available_korean_fonts() -> tuple[str, ...]:
    """The entries of :data:`KOREAN_MPL_FONTS` that matplotlib can find on this machine.

    Only installed families are put into ``font.family``: matplotlib logs a "findfont: Font family
    not found" warning for every missing one, which would flood logs on a headless server.
    """
    from matplotlib import font_manager  # lazy: importing font_manager builds the font cache

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(name for name in KOREAN_MPL_FONTS if name in installed)


def mpl_rc() -> dict[str, Any]:
    """rcParams for every chart; apply with ``matplotlib.rc_context(mpl_rc())``.

    Hangul fonts (when installed) precede DejaVu Sans, so Korean labels render and Latin text keeps
    a consistent face; matplotlib (>= 3.6) falls back per glyph along the list.
    """
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [*available_korean_fonts(), "DejaVu Sans"],
        "axes.unicode_minus": False,   # Hangul fonts often lack U+2212; use ASCII hyphen-minus
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.titleweight": "bold",
        "axes.labelsize": 9,
        "axes.edgecolor": "#bbbbbb",
        "axes.linewidth": 0.8,
        "axes.grid": True,
        "axes.axisbelow": True,
        "grid.color": PALETTE["grid"],
        "grid.linewidth": 0.7,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": _cycler([PALETTE["strategy"], PALETTE["benchmark"], PALETTE["accent"],
                                    PALETTE["target"], PALETTE["up"], PALETTE["down"]]),
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "legend.fontsize": 8,
        "legend.frameon": False,
        "figure.facecolor": PALETTE["background"],
        "axes.facecolor": PALETTE["background"],
        "savefig.facecolor": PALETTE["background"],
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "lines.linewidth": 1.3,
        "path.simplify": True,
        "agg.path.chunksize": 10000,   # long intraday curves render without Agg overflow
    }


def _cycler(colors: list[str]) -> Any:
    from cycler import cycler

    return cycler(color=colors)

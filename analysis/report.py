"""The run report: data files, ``metrics.json`` and one self-contained ``report.html``.

``write_report(record, out_dir)`` writes the run folder (see ``analysis.runfiles`` for the data
files) plus ``metrics.json`` and ``report.html``; ``render_report(out_dir)`` rebuilds the last two
from the folder alone via ``load_record`` (what ``run.py report --run DIR`` calls), so a report can
be restyled or recomputed without rerunning the backtest.

``report.html`` is self-contained on purpose: inline CSS, charts embedded as base64 ``data:`` PNGs
and no external URLs, so it opens offline, can be mailed as one file and leaks no request. Text
from the record (config values such as an emulator's ``http://127.0.0.1`` URL, messages) is
escaped and its ``://`` written as ``&#58;//``: the browser shows it unchanged, while the file
contains no ``http://`` string that a reader or a check could take for a resource reference.

Everything is computed in memory first and written with ``runfiles.write_files`` (temporary names,
then renames), so a failure never leaves a half-written report.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from analysis import charts, styles
from analysis.formatting import (MISSING, fmt_int, fmt_krw, fmt_pct, fmt_pct_points, fmt_price, fmt_ratio,
                                 fmt_ref, is_missing, sign_class)
from analysis.metrics import KST, compute_metrics, normalise_trades
from analysis.record import PROGRESS_COLUMNS, RunRecord
from analysis.runfiles import (EQUITY_CSV, EVENTS_CSV, ORDERS_CSV, PRICES_CSV, PROGRESS_CSV, RUN_JSON,
                               TRADES_CSV, json_bytes, load_record, record_files, write_files)

METRICS_JSON = "metrics.json"
REPORT_HTML = "report.html"
FILL_ROWS_EACH_END = 50        # fills table: first and last N rows
MAX_EVENT_ROWS = 300
MAX_REASON_ROWS = 50
MAX_PROGRESS_ROWS = 500

__all__ = ["write_report", "render_report", "load_record", "render_html", "METRICS_JSON", "REPORT_HTML",
           "RUN_JSON", "EQUITY_CSV", "TRADES_CSV", "ORDERS_CSV", "PRICES_CSV", "PROGRESS_CSV", "EVENTS_CSV"]


# --------------------------------------------------------------------------- public API

def write_report(record: RunRecord, out_dir: Path) -> Path:
    """Write the whole run folder for ``record`` into ``out_dir``; returns the path of report.html."""
    out_dir = Path(out_dir)
    files = record_files(record)
    files.update(_rendered_files(record))
    write_files(out_dir, files)
    return out_dir / REPORT_HTML


def render_report(out_dir: Path) -> Path:
    """Recompute ``metrics.json`` and ``report.html`` from the files of an earlier run folder."""
    out_dir = Path(out_dir)
    record = load_record(out_dir)
    write_files(out_dir, _rendered_files(record))
    return out_dir / REPORT_HTML


def _rendered_files(record: RunRecord) -> dict[str, bytes]:
    metrics = compute_metrics(record)
    images = charts.render_charts(record)
    page = render_html(record, metrics, images)
    return {METRICS_JSON: json_bytes(metrics), REPORT_HTML: page.encode("utf-8")}


# --------------------------------------------------------------------------- html helpers

def esc(value: Any) -> str:
    """HTML-escape text from the record; ``://`` becomes ``&#58;//`` (see the module docstring)."""
    if is_missing(value):
        return MISSING
    return html.escape(str(value), quote=True).replace("://", "&#58;//")


def _td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _table(headers: list[tuple[str, str]], rows: list[str], extra_class: str = "") -> str:
    head = "".join(f'<th class="{c}">{esc(h)}</th>' if c else f"<th>{esc(h)}</th>" for h, c in headers)
    cls = f"data {extra_class}".strip()
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure class="chart" id="chart-{name}"><img alt="{esc(alt)}" '
            f'src="data:image/png;base64,{data}"></figure>')


def _ts(value: Any, with_time: bool) -> str:
    if is_missing(value):
        return MISSING
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return esc(value)
    ts = ts.tz_localize(KST) if ts.tzinfo is None else ts.tz_convert(KST)
    return ts.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _iso_date(text: Any) -> str:
    return MISSING if is_missing(text) else str(text)[:10]


def _needs_time(values: Any) -> bool:
    """Show times only when the timestamps are not all at the same time of day (intraday data)."""
    idx = pd.DatetimeIndex(pd.Series(values).dropna())
    if len(idx) == 0:
        return False
    if idx.tz is not None:
        idx = idx.tz_convert(KST)
    return len(set(zip(idx.hour, idx.minute))) > 1


# --------------------------------------------------------------------------- sections

def _profit_factor(m: dict[str, Any]) -> str:
    """JSON has no infinity: a null profit factor with wins and no losses is shown as ∞."""
    pf = m.get("profit_factor")
    if pf is None and (m.get("wins") or 0) > 0 and (m.get("losses") or 0) == 0:
        return "∞"
    return fmt_ratio(pf)


def _cards(m: dict[str, Any]) -> str:
    b = m.get("benchmark") or {}

    def card(label: str, value: str, sub: str = "", cls: str = "") -> str:
        sub_html = f'<div class="sub">{sub}</div>' if sub else ""
        return (f'<div class="card"><div class="label">{esc(label)}</div>'
                f'<div class="value {cls}">{value}</div>{sub_html}</div>')

    bench_sub = f"benchmark {fmt_pct(b.get('total_return'), signed=True)}" if b else "no benchmark"
    excess = m.get("excess_return")
    dd_days = m.get("max_drawdown_duration_calendar_days")
    return '<div class="cards">' + "".join([
        card("Total return", fmt_pct(m.get("total_return"), signed=True), bench_sub,
             sign_class(m.get("total_return"))),
        card("Excess vs benchmark", fmt_pct(excess, signed=True) if b else MISSING,
             esc(b.get("label", "")) if b else "", sign_class(excess)),
        card("CAGR", fmt_pct(m.get("cagr"), signed=True), "", sign_class(m.get("cagr"))),
        card("Sharpe", fmt_ratio(m.get("sharpe")), f"Sortino {fmt_ratio(m.get('sortino'))}"),
        card("Max drawdown", fmt_pct(m.get("max_drawdown")),
             f"{fmt_int(dd_days)} calendar days" if not is_missing(dd_days) else "", "neg"
             if (m.get("max_drawdown") or 0) < 0 else ""),
        card("Final equity", fmt_krw(m.get("final_equity")), f"from {fmt_krw(m.get('initial_equity'))}"),
        card("Round trips", fmt_int(m.get("round_trips")),
             f"win rate {fmt_pct(m.get('win_rate'))} · {fmt_int(m.get('fills'))} fills"),
        card("Profit factor", _profit_factor(m),
             f"avg hold {fmt_ratio(m.get('avg_holding_days'), 1)} days"),
        card("Costs paid", fmt_krw((m.get("commission") or 0) + (m.get("tax") or 0)),
             f"commission {fmt_krw(m.get('commission'))} · tax {fmt_krw(m.get('tax'))}"),
    ]) + "</div>"


def _dd_dates(d: dict[str, Any]) -> str:
    if is_missing(d.get("max_drawdown_peak")):
        return MISSING
    rec = _iso_date(d.get("max_drawdown_recovery")) if d.get("max_drawdown_recovered") else "not recovered"
    return f"{_iso_date(d['max_drawdown_peak'])} → {_iso_date(d['max_drawdown_trough'])} → {rec}"


def _dd_duration(d: dict[str, Any]) -> str:
    if is_missing(d.get("max_drawdown_duration_bars")):
        return MISSING
    return (f"{fmt_int(d['max_drawdown_duration_bars'])} bars / "
            f"{fmt_int(d['max_drawdown_duration_trading_days'])} trading days / "
            f"{fmt_int(d['max_drawdown_duration_calendar_days'])} calendar days")


_RETURN_ROWS: list[tuple[str, Callable[[dict[str, Any]], str], bool]] = [
    ("Total return", lambda d: fmt_pct(d.get("total_return"), signed=True), True),
    ("CAGR", lambda d: fmt_pct(d.get("cagr"), signed=True), True),
    ("Annual volatility", lambda d: fmt_pct(d.get("annual_volatility")), False),
    ("Sharpe ratio", lambda d: fmt_ratio(d.get("sharpe")), False),
    ("Sortino ratio", lambda d: fmt_ratio(d.get("sortino")), False),
    ("Max drawdown", lambda d: fmt_pct(d.get("max_drawdown")), False),
    ("Max drawdown peak → trough → recovery", _dd_dates, False),
    ("Max drawdown duration", _dd_duration, False),
    ("Calmar ratio", lambda d: fmt_ratio(d.get("calmar")), False),
]

_STRATEGY_ROWS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("Initial equity", lambda m: fmt_krw(m.get("initial_equity"))),
    ("Final equity", lambda m: fmt_krw(m.get("final_equity"))),
    ("Net profit", lambda m: fmt_krw(m.get("net_profit"))),
    ("Round trips closed / still open", lambda m: f"{fmt_int(m.get('round_trips'))} / "
                                                  f"{fmt_int(m.get('open_round_trips'))}"),
    ("Fills (buys / sells)", lambda m: f"{fmt_int(m.get('fills'))} ({fmt_int(m.get('buy_fills'))} / "
                                       f"{fmt_int(m.get('sell_fills'))})"),
    ("Win rate (closed round trips, after costs)", lambda m: fmt_pct(m.get("win_rate"))),
    ("Profit factor", _profit_factor),
    ("Average round-trip P&L", lambda m: fmt_krw(m.get("avg_trade_pnl"))),
    ("Average round-trip return", lambda m: fmt_pct(m.get("avg_trade_return"), signed=True)),
    ("Best / worst round trip", lambda m: f"{fmt_krw(m.get('best_trade_pnl'))} / "
                                          f"{fmt_krw(m.get('worst_trade_pnl'))}"),
    ("Average holding (calendar days)", lambda m: fmt_ratio(m.get("avg_holding_days"), 1)),
    ("Traded value (buys + sells)", lambda m: fmt_krw(m.get("traded_value"))),
    ("Turnover (traded value / avg equity)", lambda m: f"{fmt_ratio(m.get('turnover'))}× "
                                                       f"({fmt_ratio(m.get('turnover_annual'))}× a year)"),
    ("Exposure (bars with a position)", lambda m: fmt_pct(m.get("exposure"))),
    ("Average invested (1 − cash / value)", lambda m: fmt_pct(m.get("avg_invested"))),
    ("Commission paid", lambda m: fmt_krw(m.get("commission"))),
    ("Tax paid (sell tax)", lambda m: fmt_krw(m.get("tax"))),
    ("Bars / bars per year", lambda m: f"{fmt_int(m.get('bars'))} / {fmt_ratio(m.get('periods_per_year'), 0)}"),
    ("Risk-free rate (Sharpe, Sortino)", lambda m: fmt_pct_points(m.get("risk_free_pct"))),
]


def _metrics_table(m: dict[str, Any]) -> str:
    b = m.get("benchmark")
    headers = [("Metric", ""), ("Strategy", "num"), ("Benchmark", "num")]
    rows = []
    for label, f, signed in _RETURN_ROWS:
        sv = f(m)
        bv = f(b) if b else MISSING
        scls = "num " + sign_class(m.get("total_return")) if signed and label == "Total return" else "num"
        rows.append(f"<tr>{_td(esc(label))}{_td(sv, scls)}{_td(bv, 'num')}</tr>")
    if b:
        rows.append(f"<tr>{_td('Final value')}{_td(fmt_krw(m.get('final_equity')), 'num')}"
                    f"{_td(fmt_krw(b.get('final_value')), 'num')}</tr>")
        ex = m.get("excess_return")
        rows.append(f"<tr>{_td('Excess return (strategy − benchmark)')}"
                    f"{_td(fmt_pct(ex, signed=True), 'num ' + sign_class(ex))}{_td(MISSING, 'num')}</tr>")
    table1 = _table(headers, rows, "compact")
    rows2 = [f"<tr>{_td(esc(label))}{_td(f(m), 'num')}</tr>" for label, f in _STRATEGY_ROWS]
    table2 = _table([("Trading", ""), ("Strategy", "num")], rows2, "compact")
    note = ('<p class="note">Returns are fractions of the initial cash; Sharpe/Sortino are annualised from '
            'bar returns with the bars per year shown below. A round trip is one position per code opened '
            'from flat and closed back to flat; its P&amp;L includes commission and tax. '
            f'Benchmark: {esc(b.get("label")) if b else "none"}.</p>')
    return table1 + note + table2


def _fills_section(record: RunRecord) -> str:
    t = normalise_trades(record.trades)
    if len(t) == 0:
        return '<p class="empty">No fills.</p>'
    with_time = _needs_time(t["datetime"])
    n = len(t)
    k = FILL_ROWS_EACH_END
    positions = list(range(n)) if n <= 2 * k else list(range(k)) + [-1] + list(range(n - k, n))
    rows = []
    for i in positions:
        if i < 0:
            rows.append(f'<tr class="gap"><td colspan="10">… {n - 2 * k:,} fills not shown …</td></tr>')
            continue
        r = t.iloc[i]
        side = str(r["side"])
        rows.append("<tr>" + "".join([
            _td(fmt_int(i + 1), "num"), _td(_ts(r["datetime"], with_time)), _td(esc(r["code"]), "code"),
            _td(esc(side), f"side-{esc(side)}"), _td(fmt_int(r["qty"]), "num"),
            _td(fmt_price(r["price"]), "num"), _td(fmt_krw(r["value"]), "num"),
            _td(fmt_krw(r["commission"]), "num"), _td(fmt_krw(r["tax"]), "num"),
            _td(esc(fmt_ref(r["order_ref"])), "num"),
        ]) + "</tr>")
    headers = [("#", "num"), ("Time" if with_time else "Date", ""), ("Code", ""), ("Side", ""), ("Qty", "num"),
               ("Price", "num"), ("Value", "num"), ("Commission", "num"), ("Tax", "num"), ("Order ref", "num")]
    note = (f'<p class="note">{n:,} fills; showing the first and last {k} (all of them are in trades.csv).</p>'
            if n > 2 * k else f'<p class="note">{n:,} fills (also in trades.csv).</p>')
    return note + _table(headers, rows)


def _orders_section(record: RunRecord) -> str:
    o = record.orders
    if o is None or len(o) == 0:
        return '<p class="empty">No orders.</p>'
    status = o["status"].fillna("").astype(str) if "status" in o else pd.Series([""] * len(o))
    counts = status.value_counts()
    rows = [f'<tr>{_td(esc(s), "status-" + esc(s))}{_td(fmt_int(c), "num")}</tr>'
            for s, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    out = _table([("Status", ""), ("Orders", "num")], rows, "compact")
    reason = o["reason"].fillna("").astype(str) if "reason" in o else pd.Series([""] * len(o))
    frame = pd.DataFrame({"status": status.to_numpy(), "reason": reason.to_numpy()})
    frame = frame[frame["reason"].str.strip() != ""]
    if len(frame):
        grouped = frame.groupby(["status", "reason"]).size().reset_index(name="n")
        grouped = grouped.sort_values(["n", "status", "reason"], ascending=[False, True, True])
        shown = grouped.head(MAX_REASON_ROWS)
        rows = [f'<tr>{_td(esc(r.status), "status-" + esc(r.status))}{_td(esc(r.reason))}'
                f'{_td(fmt_int(r.n), "num")}</tr>' for r in shown.itertuples()]
        out += "<h3>Reasons</h3>" + _table([("Status", ""), ("Reason", ""), ("Orders", "num")], rows)
        if len(grouped) > len(shown):
            out += f'<p class="note">{len(grouped) - len(shown)} more distinct reasons in orders.csv.</p>'
    else:
        out += '<p class="note">No order carries a reason.</p>'
    return out


def _events_section(record: RunRecord) -> str:
    e = record.events
    if e is None or len(e) == 0:
        return '<p class="empty">No events (no risk refusals, kill switch or checker alerts).</p>'
    e = e.reset_index(drop=True)
    dts = pd.Series(e["datetime"]) if "datetime" in e else pd.Series([None] * len(e))
    with_time = _needs_time(pd.to_datetime(dts, errors="coerce"))
    kinds = e["kind"].fillna("").astype(str).value_counts() if "kind" in e else pd.Series(dtype=int)
    summary = ", ".join(f"{esc(k)}: {v:,}" for k, v in kinds.items())
    rows = []
    for i in _events_to_show(e["kind"] if "kind" in e else pd.Series([""] * len(e)), MAX_EVENT_ROWS):
        r = e.iloc[i]
        rows.append("<tr>" + _td(_ts(dts.iloc[i], with_time)) + _td(esc(r.get("kind"))) +
                    _td(esc(r.get("code")), "code") + _td(esc(r.get("message"))) + "</tr>")
    out = f'<p class="note">{len(e):,} events ({summary}).</p>'
    out += _table([("Time", ""), ("Kind", ""), ("Code", ""), ("Message", "")], rows)
    if len(e) > MAX_EVENT_ROWS:
        out += (f'<p class="note">Showing {MAX_EVENT_ROWS} of {len(e):,}: the rarest kinds in full, the most '
                'frequent from the start; all are in events.csv.</p>')
    return out


def _events_to_show(kinds: pd.Series, cap: int) -> list[int]:
    """Row positions to list, in time order: all of them up to ``cap``; beyond it the rarest kinds
    first, so a single kill switch or checker alert is never buried under routine exit notes."""
    n = len(kinds)
    if n <= cap:
        return list(range(n))
    k = kinds.fillna("").astype(str).reset_index(drop=True)
    keep: list[int] = []
    for kind, _count in sorted(k.value_counts().items(), key=lambda kv: (kv[1], kv[0])):
        positions = list(k.index[k == kind])
        keep += positions[: cap - len(keep)]
        if len(keep) >= cap:
            break
    return sorted(keep)


_MONEY_HINTS = ("capital", "return", "pnl", "realized", "cost", "value", "cash")


def _fmt_extra(column: str, value: Any) -> tuple[str, str]:
    """Text and CSS class for a progress column the contract does not name (the runner may add
    some, e.g. ``realized`` or ``status``): percent by ``_pct`` suffix, KRW by name, else plain."""
    if is_missing(value):
        return MISSING, "num"
    if isinstance(value, str):
        return esc(value), ""
    name = column.lower()
    if name.endswith("_pct"):
        return fmt_pct_points(value), "num"
    if "qty" in name or "shares" in name or "count" in name:
        return fmt_int(value), "num"
    if any(h in name for h in _MONEY_HINTS):
        return fmt_krw(value), "num " + sign_class(value) if "realized" in name or "pnl" in name else "num"
    try:
        return fmt_price(float(value)), "num"
    except (TypeError, ValueError):
        return esc(value), ""


def _progress_section(record: RunRecord) -> str:
    p = record.progress
    if p is None or len(p) == 0:
        return '<p class="empty">No Trade Target progress (the strategy did not use trade targets).</p>'
    markets = record.markets or {}
    extra_cols = [c for c in p.columns if c not in PROGRESS_COLUMNS]
    rows = []
    for code, r in list(p.iterrows())[:MAX_PROGRESS_ROWS]:
        used, maxc = r.get("capital_used"), r.get("max_capital")
        share = None
        if not is_missing(used) and not is_missing(maxc) and float(maxc):
            share = float(used) / float(maxc)
        cur = r.get("current_return_pct")
        absr = r.get("absolute_return")
        cells = [
            _td(esc(code), "code"), _td(esc(markets.get(str(code), ""))),
            _td(fmt_price(r.get("target_buy_price")), "num"),
            _td(fmt_pct_points(r.get("target_return_pct")), "num"),
            _td(fmt_krw(maxc), "num"), _td(fmt_int(r.get("shares")), "num"), _td(fmt_krw(used), "num"),
            _td(fmt_pct(share), "num"), _td(fmt_price(r.get("avg_price")), "num"),
            _td(fmt_price(r.get("last_price")), "num"),
            _td(fmt_pct_points(cur, signed=True), "num " + sign_class(cur)),
            _td(fmt_krw(absr), "num " + sign_class(absr)),
        ]
        for c in extra_cols:
            text, cls = _fmt_extra(str(c), r.get(c))
            cells.append(_td(text, cls))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    headers = [("Code", ""), ("Market", ""), ("Target buy", "num"), ("Target return", "num"),
               ("Max capital", "num"), ("Shares", "num"), ("Capital used", "num"), ("Used", "num"),
               ("Avg price", "num"), ("Last price", "num"), ("Current return", "num"),
               ("Absolute return", "num")]
    headers += [(str(c), "") for c in extra_cols]
    out = '<div style="overflow-x:auto">' + _table(headers, rows) + "</div>"
    if len(p) > MAX_PROGRESS_ROWS:
        out += f'<p class="note">Showing {MAX_PROGRESS_ROWS} of {len(p):,} codes; all are in progress.csv.</p>'
    return out


# --------------------------------------------------------------------------- page

def render_html(record: RunRecord, metrics: dict[str, Any], images: dict[str, bytes]) -> str:
    """The complete report page as a string (no I/O)."""
    m = metrics
    title = f"{record.strategy} · {record.name} · {record.mode}"
    period = (f"{_iso_date(m.get('start'))} → {_iso_date(m.get('end'))} ({fmt_int(m.get('bars'))} bars)"
              if m.get("start") else "no bars")
    banners = ""
    if record.synthetic:
        banners += ('<div class="banner-synthetic" role="alert">SYNTHETIC DATA — the prices in this report '
                    'come from the generated demo market, not from KRX. Results say nothing about real '
                    'stocks.</div>')
    if str(record.mode).lower() == "live":
        banners += '<div class="banner-live">LIVE ACCOUNT — real orders and real money.</div>'
    codes, omitted = charts.select_price_codes(record.trades)
    omitted_note = (f'<p class="note">Price panels show the {len(codes)} codes with the most fills; '
                    f'{omitted} more traded codes are omitted (their fills are in trades.csv).</p>'
                    if omitted else "")
    chart_html = (
        "<h2>Equity</h2>" + _img("equity", images["equity"], "Equity vs benchmark")
        + _img("drawdown", images["drawdown"], "Drawdown")
        + "<h2>Monthly returns</h2>" + _img("monthly", images["monthly"], "Monthly returns heat map")
        + "<h2>Prices and fills</h2>" + omitted_note + _img("prices", images["prices"], "Prices with fills")
    )
    config_json = json.dumps(record.config or {}, indent=2, ensure_ascii=False, default=str)
    generated = datetime.now(KST).strftime("%Y-%m-%d %H:%M:%S KST")
    synthetic_word = (" (SYNTHETIC)" if record.synthetic and "synthetic" not in str(record.data_label).lower()
                      else "")
    title_word = " (SYNTHETIC)" if record.synthetic else ""
    body = f"""<main>
<header>
<h1>{esc(record.strategy)} — {esc(record.name)} <small>({esc(record.mode)})</small></h1>
<p class="subtitle">Data: {esc(record.data_label)}{synthetic_word} · {period} ·
initial cash {fmt_krw(record.initial_cash)}</p>
{banners}
</header>
<section id="headline">{_cards(m)}</section>
<section id="metrics"><h2>Metrics</h2>{_metrics_table(m)}</section>
<section id="charts">{chart_html}</section>
<section id="progress"><h2>Trade Target progress</h2>
{_img("progress", images["progress"], "Trade Target progress")}
{_progress_section(record)}</section>
<section id="fills"><h2>Fills</h2>{_fills_section(record)}</section>
<section id="orders"><h2>Orders</h2>{_orders_section(record)}</section>
<section id="events"><h2>Events</h2>{_events_section(record)}</section>
<section id="config"><h2>Run configuration</h2>
<details><summary>config (as validated)</summary><pre>{esc(config_json)}</pre></details></section>
<footer>Generated {generated} by krx-trader analysis.report. Money in KRW (원); rises and buys in red,
falls and sells in blue. Files of this run: {esc(", ".join([RUN_JSON, METRICS_JSON, EQUITY_CSV, TRADES_CSV,
ORDERS_CSV, PRICES_CSV, PROGRESS_CSV, EVENTS_CSV]))}.</footer>
</main>"""
    return (f'<!DOCTYPE html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}{title_word}</title>\n<style>{styles.CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")

"""The run folder: every file written, HTML self-contained and labelled, re-rendering reproduces it."""

from __future__ import annotations

import base64
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis import charts, report, styles
from analysis.formatting import fmt_krw, fmt_pct
from analysis.metrics import compute_metrics
from analysis.record import EVENT_COLUMNS, ORDER_COLUMNS, PROGRESS_COLUMNS, TRADE_COLUMNS, RunRecord
from analysis.runfiles import load_record
from analysis.sample import make_sample_record
from configs.errors import InputError

KST = "Asia/Seoul"
FILES = ["run.json", "metrics.json", "equity.csv", "trades.csv", "orders.csv", "prices.csv",
         "progress.csv", "events.csv", "report.html"]
PNG = b"\x89PNG\r\n\x1a\n"


def make_record(synthetic: bool = True, with_trades: bool = True) -> RunRecord:
    """Two codes over 30 daily bars; 005930 is bought and sold once, 000660 bought and still held."""
    idx = pd.date_range("2024-01-02 15:30", periods=30, freq="B", tz=KST, name="datetime")
    a = np.linspace(70_000, 77_000, 30).round()
    b = np.linspace(130_000, 120_000, 30).round()
    prices = {c: pd.DataFrame({"open": p, "high": p + 500, "low": p - 500, "close": p,
                               "volume": 1_000_000}, index=idx) for c, p in (("005930", a), ("000660", b))}
    if with_trades:
        trades = pd.DataFrame([
            (idx[1], "005930", "BUY", 10, a[1], 10 * a[1], 98, 0, 1),
            (idx[5], "000660", "BUY", 5, b[5], 5 * b[5], 91, 0, 2),
            (idx[20], "005930", "SELL", 10, a[20], 10 * a[20], 106, 1_363, 3),
        ], columns=TRADE_COLUMNS)
        orders = pd.DataFrame([
            (1, idx[0], "005930", "BUY", "Market", 10, None, "Completed", 10, a[1], "", idx[1]),
            (2, idx[4], "000660", "BUY", "Limit", 5, 126_000, "Completed", 5, b[5], "", idx[5]),
            (3, idx[19], "005930", "SELL", "Market", 10, None, "Completed", 10, a[20], "", idx[20]),
            (4, idx[21], "000660", "BUY", "Limit", 5, 99_000, "Expired", 0, None, "DAY order expired", idx[21]),
            (None, idx[22], "005930", "BUY", "Market", 100, None, "Refused", 0, None,
             "max_position_pct 25% exceeded", idx[22]),
        ], columns=ORDER_COLUMNS)
    else:
        trades = pd.DataFrame(columns=TRADE_COLUMNS)
        orders = pd.DataFrame(columns=ORDER_COLUMNS)
    cash = np.full(30, 10_000_000.0)
    pos = np.zeros(30)
    if with_trades:
        cash[1:] -= 10 * a[1] + 98
        cash[5:] -= 5 * b[5] + 91
        cash[20:] += 10 * a[20] - 106 - 1_363
        pos[1:20] += 10 * a[1:20]
        pos[5:] += 5 * b[5:]
    equity = pd.DataFrame({"value": (cash + pos).round().astype("int64"), "cash": cash.round().astype("int64")},
                          index=idx)
    message = "max_position_pct 25% exceeded <script>x</script>"
    events = pd.DataFrame([(idx[22], "risk_refusal", "005930", message)], columns=EVENT_COLUMNS)
    progress = pd.DataFrame([[70_000, 10.0, 1_000_000, 0, 0, 0, a[-1], 0.0, 0],
                             [125_000, 8.0, 1_000_000, 5, 5 * b[5], b[5], b[-1], -5.5, -34_000]],
                            columns=PROGRESS_COLUMNS, index=pd.Index(["005930", "000660"], name="code"))
    bench = pd.Series(np.linspace(10_000_000, 10_300_000, 30), index=idx)
    return RunRecord(
        name="unit", mode="backtest", strategy="hand_made",
        data_label="SYNTHETIC demo market (seed 1)" if synthetic else "/data/krx/daily",
        synthetic=synthetic, initial_cash=10_000_000, equity=equity, trades=trades, orders=orders,
        prices=prices, progress=progress, events=events, markets={"005930": "KOSPI", "000660": "KOSPI"},
        config={"name": "unit", "broker": {"kis": {"rest_url": "https://openapivts.example:29443"}}},
        benchmark=bench, benchmark_label="Equal-weight buy & hold, 2 codes (no costs)", risk_free_pct=3.0,
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One run folder shared by the read-only tests (writing a report takes about half a second)."""
    out = tmp_path_factory.mktemp("written") / "run"
    rec = make_record()
    html_path = report.write_report(rec, out)
    return rec, out, html_path


def test_write_report_writes_every_file_and_no_temporaries(written):
    _rec, out, html_path = written
    assert html_path == out / "report.html"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_metrics_json_matches_compute_metrics(written):
    rec, out, _ = written
    on_disk = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(compute_metrics(rec)))
    assert on_disk["round_trips"] == 1 and on_disk["open_round_trips"] == 1
    assert on_disk["commission"] == 98 + 91 + 106 and on_disk["tax"] == 1_363


def test_csv_files_follow_the_contract(written):
    _rec, out, _ = written
    trades = (out / "trades.csv").read_text(encoding="utf-8").splitlines()
    assert trades[0] == ",".join(TRADE_COLUMNS)
    assert trades[1].startswith("2024-01-03T15:30:00+09:00,005930,BUY,10,")
    equity = (out / "equity.csv").read_text(encoding="utf-8").splitlines()
    assert equity[0] == "datetime,value,cash,benchmark"
    assert equity[1].startswith("2024-01-02T15:30:00+09:00,10000000,10000000,10000000")
    orders = pd.read_csv(out / "orders.csv", dtype=str, keep_default_na=False)
    assert list(orders.columns) == ORDER_COLUMNS
    assert orders.loc[4, "status"] == "Refused" and orders.loc[4, "ref"] == ""
    assert orders["ref"].tolist()[:4] == ["1", "2", "3", "4"]          # not "1.0" although a ref is blank
    assert orders.loc[3, "reason"] == "DAY order expired"
    prices = pd.read_csv(out / "prices.csv", dtype={"code": str})
    assert list(prices.columns) == ["datetime", "code", "open", "high", "low", "close", "volume"]
    assert len(prices) == 60 and set(prices["code"]) == {"005930", "000660"}
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["synthetic"] is True and run["initial_cash"] == 10_000_000


def test_html_is_self_contained_and_embeds_the_charts(written):
    _rec, _out, html_path = written
    page = html_path.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', page)      # only data: resources
    assert "<link" not in page and "<script" not in page             # the event's <script> is escaped
    assert "&lt;script&gt;" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 5
    assert all(base64.b64decode(i).startswith(PNG) for i in images)
    assert "<style>" in page and styles.CSS.strip()[:20] in page


def test_html_content_money_percentages_and_sections(written):
    rec, _out, html_path = written
    page = html_path.read_text(encoding="utf-8")
    m = compute_metrics(rec)
    assert "<title>hand_made · unit · backtest (SYNTHETIC)</title>" in page
    assert fmt_krw(m["final_equity"]) in page and re.search(r"\d{1,3}(,\d{3})+ 원", page)
    assert fmt_pct(m["total_return"], signed=True) in page
    assert re.search(r"[+-]?\d+\.\d{2}%", page)
    for section in ("headline", "metrics", "charts", "fills", "orders", "events", "progress"):
        assert f'<section id="{section}">' in page
    assert "Expired" in page and "DAY order expired" in page and "Refused" in page
    assert "risk_refusal" in page
    assert "Equal-weight buy &amp; hold, 2 codes (no costs)" in page
    assert "000660" in page and "-5.50%" in page                    # Trade Target progress row


def test_synthetic_banner_only_when_synthetic(tmp_path):
    page_syn = report.write_report(make_record(synthetic=True), tmp_path / "a").read_text(encoding="utf-8")
    page_real = report.write_report(make_record(synthetic=False), tmp_path / "b").read_text(encoding="utf-8")
    assert '<div class="banner-synthetic"' in page_syn and "SYNTHETIC DATA" in page_syn
    assert '<div class="banner-synthetic"' not in page_real and "SYNTHETIC DATA" not in page_real


def test_render_report_from_the_folder_reproduces_the_metrics(written, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(written[1], out)
    before = (out / "metrics.json").read_text(encoding="utf-8")
    (out / "metrics.json").unlink()
    (out / "report.html").unlink()
    html_path = report.render_report(out)
    assert html_path.is_file()
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == json.loads(before)
    assert '<div class="banner-synthetic"' in html_path.read_text(encoding="utf-8")


def test_load_record_round_trip(written):
    rec, out, _ = written
    back = load_record(out)
    assert (back.name, back.mode, back.strategy, back.synthetic, back.initial_cash) == \
        (rec.name, rec.mode, rec.strategy, rec.synthetic, rec.initial_cash)
    assert str(back.equity.index.tz) == KST and back.equity.index.equals(rec.equity.index)
    assert back.equity["value"].tolist() == rec.equity["value"].tolist()
    assert back.benchmark.to_numpy() == pytest.approx(rec.benchmark.to_numpy())
    assert sorted(back.prices) == ["000660", "005930"]                  # leading zeros kept
    assert back.prices["005930"]["close"].tolist() == rec.prices["005930"]["close"].tolist()
    assert back.trades["code"].tolist() == rec.trades["code"].tolist()
    assert back.trades["datetime"].tolist() == rec.trades["datetime"].tolist()
    assert back.trades["order_ref"].tolist() == [1, 2, 3]
    assert back.orders["status"].tolist() == rec.orders["status"].tolist()
    assert back.orders["ref"].iloc[:4].tolist() == [1, 2, 3, 4] and pd.isna(back.orders["ref"].iloc[4])
    assert back.progress.index.tolist() == ["005930", "000660"]
    assert back.events["message"].iloc[0] == rec.events["message"].iloc[0]
    assert back.config == rec.config and back.markets == rec.markets
    assert back.risk_free_pct == 3.0 and back.benchmark_label == rec.benchmark_label


def test_kis_style_order_numbers_keep_their_zeros(tmp_path):
    rec = make_record()
    rec.trades["order_ref"] = ["0000117057", "0000117058", "0000117059"]
    report.write_report(rec, tmp_path / "r")
    refs = load_record(tmp_path / "r").trades["order_ref"].tolist()
    assert refs == ["0000117057", "0000117058", "0000117059"]


def test_empty_trades_progress_and_events_render(tmp_path):
    rec = make_record(with_trades=False)
    rec.progress = pd.DataFrame(columns=PROGRESS_COLUMNS)
    rec.events = pd.DataFrame(columns=EVENT_COLUMNS)
    rec.benchmark = None
    page = report.write_report(rec, tmp_path / "r").read_text(encoding="utf-8")
    assert "No fills." in page and "No orders." in page and "No events" in page
    assert "No Trade Target progress" in page
    m = json.loads((tmp_path / "r" / "metrics.json").read_text(encoding="utf-8"))
    assert m["fills"] == 0 and m["benchmark"] is None
    assert charts.price_chart(rec.prices, rec.trades).startswith(PNG)
    assert report.render_report(tmp_path / "r").is_file()


def test_failed_render_leaves_no_half_written_files(tmp_path, monkeypatch):
    out = tmp_path / "r"
    report.write_report(make_record(), out)
    old_html = (out / "report.html").read_bytes()

    def boom(*_a, **_k):
        raise RuntimeError("chart failed")

    monkeypatch.setattr(charts, "render_charts", boom)
    with pytest.raises(RuntimeError):
        report.render_report(out)
    with pytest.raises(RuntimeError):
        report.write_report(make_record(), tmp_path / "fresh")
    assert (out / "report.html").read_bytes() == old_html
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not (tmp_path / "fresh").exists() or list((tmp_path / "fresh").iterdir()) == []


def test_failed_write_removes_temporaries(tmp_path, monkeypatch):
    import analysis.runfiles as rf

    calls = {"n": 0}
    real_replace = rf.os.replace

    def flaky_replace(src, dst):
        calls["n"] += 1
        raise OSError("disk full")

    monkeypatch.setattr(rf.os, "replace", flaky_replace)
    with pytest.raises(OSError):
        rf.write_files(tmp_path, {"a.csv": b"1", "b.csv": b"2"})
    monkeypatch.setattr(rf.os, "replace", real_replace)
    assert calls["n"] == 1 and list(tmp_path.iterdir()) == []


def test_large_record_truncates_fills_and_omits_price_panels(tmp_path):
    rec = make_sample_record(n_codes=16, n_bars=120, trips_per_code=4)
    page = report.write_report(rec, tmp_path / "r").read_text(encoding="utf-8")
    n = len(rec.trades)
    assert n > 2 * report.FILL_ROWS_EACH_END
    assert f"{n - 2 * report.FILL_ROWS_EACH_END:,} fills not shown" in page
    assert "4 more traded codes are omitted" in page
    assert '<div class="banner-synthetic"' in page


def test_load_record_on_a_folder_without_run_json(tmp_path):
    with pytest.raises(InputError, match="run.json"):
        load_record(tmp_path)


def test_styles_import_has_no_side_effects():
    import importlib

    import matplotlib

    before = dict(matplotlib.rcParams)
    importlib.reload(styles)
    assert dict(matplotlib.rcParams) == before
    rc = styles.mpl_rc()
    assert rc["font.sans-serif"][-1] == "DejaVu Sans"
    assert "Malgun Gothic" in styles.CSS and "Noto Sans KR" in styles.CSS


def test_price_panels_are_the_codes_with_the_most_fills():
    trades = pd.DataFrame({"datetime": pd.date_range("2024-01-02", periods=6, tz=KST),
                           "code": ["000003", "000001", "000001", "000002", "000002", "000001"],
                           "side": "BUY", "qty": 1, "price": 100, "value": 100, "commission": 0, "tax": 0,
                           "order_ref": range(6)})
    assert charts.select_price_codes(trades, max_panels=2) == (["000001", "000002"], 1)
    assert charts.select_price_codes(trades.iloc[:0], max_panels=2) == ([], 0)


def test_progress_chart_without_targets_or_results_is_a_note():
    empty = pd.DataFrame({c: [np.nan, np.nan] for c in PROGRESS_COLUMNS}, index=["000001", "000002"])
    empty["capital_used"] = 0
    note = charts.placeholder_chart("no targets set and no capital in use", "Trade Target progress")
    assert charts.progress_chart(empty) == note
    with_results = empty.assign(absolute_return=[1_000.0, -500.0])
    assert charts.progress_chart(with_results) != note
    assert charts.progress_chart(make_record().progress).startswith(PNG)


def test_rare_events_are_listed_even_when_routine_ones_overflow():
    kinds = pd.Series(["exit"] * 500 + ["kill_switch"])
    shown = report._events_to_show(kinds, cap=20)
    assert len(shown) == 20 and 500 in shown and shown == sorted(shown)
    assert report._events_to_show(kinds.iloc[:5], cap=20) == [0, 1, 2, 3, 4]


def test_profit_factor_without_losses_shows_infinity():
    assert report._profit_factor({"profit_factor": None, "wins": 2, "losses": 0}) == "∞"
    assert report._profit_factor({"profit_factor": None, "wins": 0, "losses": 0}) == "—"
    assert report._profit_factor({"profit_factor": 1.5, "wins": 2, "losses": 1}) == "1.50"


@pytest.mark.parametrize("n_bars", [5, 400, 1250])
def test_price_chart_renders_without_matplotlib_warnings(n_bars):
    import warnings

    rec = make_sample_record(n_codes=2, n_bars=n_bars, trips_per_code=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert charts.price_chart(rec.prices, rec.trades).startswith(PNG)

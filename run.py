#!/usr/bin/env python3
"""krx-trader command line: backtest | sweep | data | report | emulator | paper | live | monitor.

    python run.py backtest --config configs/backtest-demo.yaml [--out DIR] [--engine fast|event]
    python run.py sweep --config configs/research-demo.yaml --grid top_n=3,5,10 --grid fast=10,20,40
    python run.py data import --csv DIR [--cache URL] [--timeframe daily]
    python run.py report --run DIR
    python run.py emulator --config configs/emulator.yaml
    python run.py paper --config configs/paper-emulator.yaml [--until 2026-11-24T15:31:00]
    python run.py live --config FILE --confirm-live
    python run.py data master [--from URL_OR_FILE] [--cache URL]
    python run.py data download --source kis --config FILE [--universe master|FILE|CODES]
    python run.py data fundamentals --config FILE [--universe ...] | --reference FILE | --demo-reference
    python run.py data quality [--cache URL] [--strict]

This file only parses arguments and prints; the work lives in ``engine``, ``feeds``, ``analysis``
and ``brokers``. ``main`` is the one error boundary (``run_guarded``): a problem with an input — a
config, targets file, bar file, strategy parameter, argument, credential or database URL
(``configs.errors.InputError``, KIS's typed errors, an ``OSError`` naming a file) — prints one message
naming the file, key or value and exits with status 2; anything else is a bug: one line on the
terminal, the traceback in the run's log (or a crash log), exit status 1. Never a traceback on screen.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal as signal_module
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130

_current_run_log: Path | None = None
"""The run.log of the command in progress, where an unexpected error's traceback goes."""


class ProgressBar:
    """A one-line text progress bar on stderr (quiet when stderr is not a terminal, except at 100 %)."""

    def __init__(self, stream=sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last: tuple[str, int] | None = None
        self._t0 = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        total = max(total, 1)
        pct = int(done * 100 / total)
        if self._last == (stage, pct):
            return
        self._last = (stage, pct)
        if not self.tty and done < total:
            return
        filled = self.width * done // total
        line = f"{stage:<8} [{'#' * filled}{'.' * (self.width - filled)}] {pct:3d}% ({done}/{total})"
        end = "\n" if done >= total else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


def _fmt_pct(x) -> str:
    return "n/a" if x is None else f"{x * 100:,.2f}%"


def _summary_table(metrics: dict, report_path: Path, seconds: float, synthetic: bool) -> str:
    bench = metrics.get("benchmark") or {}
    rows = [
        ("Total return", _fmt_pct(metrics.get("total_return")), _fmt_pct(bench.get("total_return"))),
        ("CAGR", _fmt_pct(metrics.get("cagr")), _fmt_pct(bench.get("cagr"))),
        ("Annual volatility", _fmt_pct(metrics.get("annual_volatility")), _fmt_pct(bench.get("annual_volatility"))),
        ("Sharpe", f"{metrics.get('sharpe') or 0:.2f}", f"{bench.get('sharpe') or 0:.2f}" if bench else "n/a"),
        ("Max drawdown", _fmt_pct(metrics.get("max_drawdown")), _fmt_pct(bench.get("max_drawdown"))),
        ("Final equity (KRW)", f"{metrics.get('final_equity', 0):,}", ""),
        ("Round trips / fills", f"{metrics.get('round_trips', 0)} / {metrics.get('fills', 0)}", ""),
        ("Commission / tax (KRW)", f"{int(metrics.get('commission') or 0):,} / {int(metrics.get('tax') or 0):,}", ""),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "strategy", "")])
    out = [f"{'':<{w0}}  {'strategy':>{w1}}  benchmark", "-" * (w0 + w1 + 14)]
    out += [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    if synthetic:
        out.append("Data: SYNTHETIC demo market (not real prices)")
    out.append(f"Report: {report_path}  ({seconds:.1f} s)")
    return "\n".join(out)


class _run_log:
    """Everything logged during a run also goes to ``<out>/run.log`` (INFO and up): risk refusals,
    rejections and checker alerts stay readable after the progress bars are gone."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.handler: logging.Handler | None = None

    def __enter__(self) -> "_run_log":
        global _current_run_log
        _prepare_out_dir(self.out)
        self.handler = logging.FileHandler(self.out / "run.log", mode="w", encoding="utf-8")
        _current_run_log = self.out / "run.log"
        self.handler.setLevel(logging.INFO)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(self.handler)
        self._level = root.level
        root.setLevel(min(root.level, logging.INFO))
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._level)
        self.handler.close()


def _prepare_out_dir(out: Path) -> None:
    """The report folder, created; a clear ``InputError`` when ``--out`` names a file or cannot be made."""
    from configs.errors import InputError
    from configs.files import shown

    try:
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {shown(out)}: is a file, expected a folder for the report")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {shown(out)}: cannot create the report folder ({exc.strerror})") from None


def cmd_backtest(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from configs.errors import InputError
    from configs.schema import load_config
    from engine.backtest import default_out_dir, run_backtest

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    if cfg.broker.mode != "backtest":
        raise InputError(f"{cfg.source}: broker.mode is {cfg.broker.mode!r}; "
                         f"use 'run.py {cfg.broker.mode}' for it, or set broker.mode: backtest")
    out = Path(args.out) if args.out else default_out_dir(cfg)
    engine = args.engine or cfg.research.engine
    _prepare_out_dir(out)
    with _run_log(out):
        if engine == "fast":
            from research.engine import kernel_cached, run_fast_backtest

            _note_compile(kernel_cached())
            result = run_fast_backtest(cfg, progress=ProgressBar())
        else:
            result = run_backtest(cfg, progress=ProgressBar())
    report = write_report(result.record, out)
    import json
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    print(_summary_table(metrics, report, time.perf_counter() - t0, result.record.synthetic))
    return 0


def _note_compile(cached: bool) -> None:
    if not cached:
        print("fast engine: compiling its kernel with numba (first run on this machine only, about 30 s; "
              "cached afterwards)", file=sys.stderr, flush=True)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Every point of a parameter grid on the fast engine, in parallel on Ray; results + heat maps."""
    from datetime import date

    from configs.errors import InputError
    from configs.schema import load_config
    from research.sweep import describe, parse_grid_arg, run_sweep

    cfg = load_config(args.config)
    grid: dict = {}
    for text in args.grid or []:
        name, values = parse_grid_arg(text)
        grid[name] = values
    split = None
    if args.walk_forward:
        try:
            split = date.fromisoformat(args.walk_forward)
        except ValueError:
            try:
                split = float(args.walk_forward)
            except ValueError:
                raise InputError(f"--walk-forward {args.walk_forward!r}: expected a date (2022-12-30) or the "
                                 "in-sample share of sessions (0.7)") from None
    heatmap = args.heatmap.split(",") if args.heatmap else None
    from research.engine import kernel_cached

    _note_compile(kernel_cached())
    result = run_sweep(cfg, grid, out=Path(args.out) if args.out else None, metric=args.metric,
                       walk_forward=split, heatmap=heatmap, address=args.address, num_cpus=args.cpus,
                       executor="inline" if args.inline else "ray", progress=ProgressBar())
    print(describe(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import render_report

    path = render_report(Path(args.run))
    print(f"Report: {path}")
    return 0


def cmd_data_import(args: argparse.Namespace) -> int:
    from feeds.cache import import_csv_folder

    url = args.cache
    if args.config:
        from configs.schema import load_config
        url = load_config(args.config).data.cache_url
    from feeds.master import master_if_present

    master = master_if_present(url)          # its halts tell the quality guard a halt from missing data
    halts = None
    if master is not None:
        halts = master.halts()
        master.close()
    summary = import_csv_folder(Path(args.csv), url=url, timeframe=args.timeframe,
                                clamp_adjusted_high=args.clamp, adjusted=not args.unadjusted, strict=args.strict,
                                halts=halts)
    print(summary)
    return 0


def _data_url(args: argparse.Namespace) -> str:
    """The market-data database of a ``data`` command: ``--config``'s data.cache_url, else ``--cache``."""
    if getattr(args, "config", None):
        from configs.schema import load_config
        return load_config(args.config).data.cache_url
    return args.cache


def _parse_day(text: str | None, flag: str):
    from datetime import date

    from configs.errors import InputError

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{flag} {text[:40]!r}: not a date; write YYYY-MM-DD") from None


def cmd_data_master(args: argparse.Namespace) -> int:
    """Build (or refresh) the stock master from KIS's master files."""
    from feeds.master import StockMaster

    with StockMaster(_data_url(args)) as master:
        result = master.import_from(args.source, as_of=_parse_day(args.as_of, "--as-of"))
    print(result.describe())
    return 0


def cmd_data_quality(args: argparse.Namespace) -> int:
    """The quality guard over the cached bars: a table per code; exit 1 in strict mode when any is refused."""
    from configs.database import check_db_url, sqlite_file_missing
    from configs.errors import InputError
    from feeds.cache import BarCache
    from feeds.master import master_for

    url = _data_url(args)
    try:
        check_db_url(url)
    except ValueError as exc:
        raise InputError(f"--cache: {exc}") from None
    if sqlite_file_missing(url):         # a report on nothing would create an empty database as a side effect
        raise InputError(f"data quality: no market-data database at {cache_label(url)}; fill one first "
                         "(run.py data import --csv DIR, or run.py data download)")
    codes = args.codes.split(",") if args.codes else None
    master = master_for(url)
    halts = master.halts(codes) if master is not None else None
    if master is not None:
        master.close()
    adjusted = None if args.series == "any" else args.series == "adjusted"
    with BarCache(url) as cache:
        report = cache.check_quality(codes, args.timeframe, adjusted=adjusted, halts=halts, strict=args.strict)
    print(report.describe(only_problems=not args.all))
    return 1 if report.refused() else 0


def cmd_session(args: argparse.Namespace) -> int:
    """paper / live: the same strategy on KIS until the feeds end (--until) or Ctrl-C."""

    from analysis.report import write_report
    from configs.database import safe_url
    from configs.errors import InputError
    from configs.schema import load_config
    from engine.backtest import default_out_dir
    from engine.live import build_live_session, run_until_signal

    cfg = load_config(args.config)
    if cfg.broker.mode != args.command:
        raise InputError(f"{cfg.source}: broker.mode is {cfg.broker.mode!r} but the command is "
                         f"{args.command!r}; set broker.mode: {args.command} (the one switch)")
    until = _parse_until(args.until) if args.until else None
    out = Path(args.out) if args.out else default_out_dir(cfg)
    _prepare_out_dir(out)
    if cfg.monitor.enabled and cfg.monitor.host in ("0.0.0.0", "::"):
        print(f"warning: monitor.host {cfg.monitor.host} binds every network interface: anyone who can reach "
              "this machine sees the dashboard (the controls still need the token)", file=sys.stderr)
    session = build_live_session(cfg, confirm_live=getattr(args, "confirm_live", False), until=until)
    server = router = None
    with _run_log(out):
        if cfg.monitor.enabled:
            from engine.monitoring import attach_monitor

            client = session.store.client
            creds = getattr(client, "creds", None)
            secrets = [getattr(creds, "app_key", ""), getattr(creds, "app_secret", ""), getattr(creds, "cano", "")]
            server, _source, router = attach_monitor(session, cfg, secrets=[x for x in secrets if x])
            print(f"monitor: {server.url}", file=sys.stderr)
        print(f"{args.command}: {len(session.codes)} code(s), journal {safe_url(cfg.broker.kis.journal_url)}; "
              "Ctrl-C stops and writes the report", file=sys.stderr)
        try:
            run_until_signal(session)
        finally:
            if server is not None:
                server.stop()
            if router is not None:
                router.close()
    report = write_report(session.record(), out)
    print(f"Report: {report}")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """The dashboard of a journal (after a run, or of a trader running elsewhere), read-only."""
    import threading

    from analysis.monitor import MonitorServer
    from brokers.kis.journal import Journal
    from engine.monitoring import JournalSource

    from configs.errors import InputError

    if not args.host.strip():
        raise InputError("--host '': an empty host binds every network interface; use 127.0.0.1 "
                         "(or 0.0.0.0 on purpose)")
    from configs.database import safe_url, sqlite_file_missing

    if sqlite_file_missing(args.journal):   # read-only: never create an empty journal where none was written
        raise InputError(f"--journal {safe_url(args.journal)!r}: no such journal file (a paper or live run "
                         "creates it at broker.kis.journal_url)")
    journal = Journal(args.journal, what="--journal")    # any unusable URL: one InputError naming --journal
    if args.host in ("0.0.0.0", "::"):
        print(f"warning: --host {args.host} binds every network interface: anyone who can reach this machine "
              "sees the dashboard", file=sys.stderr)
    server = MonitorServer(JournalSource(journal), host=args.host, port=args.port,
                           poll_ms=args.poll_ms, title="krx-trader monitor (journal)").start()
    print(f"monitor: {server.url}", flush=True)
    stop = threading.Event()
    import signal as _signal

    for sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


class DownloadProgressBar:
    """The download's progress line on stderr: codes, requests/s, ETA, bars, failures. On a terminal it
    redraws in place (at most 5 times a second); otherwise it prints a line every 10 %."""

    def __init__(self, stream=sys.stderr, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last_draw = 0.0
        self._last_decile = -1
        import threading

        self._lock = threading.Lock()      # called from the download's worker threads too

    @staticmethod
    def _clock(seconds: float | None) -> str:
        if seconds is None:
            return "--:--:--"
        s = int(seconds)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    def __call__(self, p) -> None:
        with self._lock:
            self._draw(p)

    def _draw(self, p) -> None:
        total = max(p.requests_planned, 1)
        frac = p.requests / total if p.requests_planned else (1.0 if p.codes_done >= p.codes_total else 0.0)
        now = time.monotonic()
        finished = p.codes_done >= p.codes_total
        if self.tty:
            if not finished and now - self._last_draw < 0.2:
                return
        else:
            decile = int(frac * 10)
            if decile == self._last_decile and not finished:
                return
            self._last_decile = decile
        self._last_draw = now
        filled = int(self.width * min(frac, 1.0))
        line = (f"download [{'#' * filled}{'.' * (self.width - filled)}] {frac * 100:3.0f}% "
                f"{p.codes_done:,}/{p.codes_total:,} codes  {p.requests:,}/{p.requests_planned:,} req  "
                f"{p.rate:5.1f} req/s  ETA {self._clock(p.eta)}  {p.bars:,} bars  {p.failures} failed")
        self.stream.write(("\r" if self.tty else "") + line + ("" if self.tty and not finished else "\n"))
        self.stream.flush()


def _read_universe(spec: str | None, cfg, master) -> list[str]:
    """``--universe``: ``master`` (every listed code of the stock master), a file of codes (one per line, or
    a CSV with a ``code`` column), or codes separated by commas; default: the config's ``data.universe``."""
    import re

    from configs.errors import InputError
    from configs.schema import CODE_PATTERN
    from feeds.universe import resolve_universe

    if spec is None:
        if cfg.data.universe_rule is not None:
            return resolve_universe(cfg.data.universe_rule, master, None)
        if cfg.data.universe:
            return list(cfg.data.universe)
        raise InputError("data download: say which codes: --universe master|FILE|CODE,CODE (or data.universe "
                         "in the config)")
    if spec == "master":
        if master is None:
            raise InputError("--universe master: the database has no stock master yet; run "
                             "'run.py data master' first")
        return list(master.frame(include_delisted=False).index)
    path = Path(spec)
    if path.is_file():
        from configs.files import read_text

        lines = [ln.strip() for ln in read_text(path, "universe file").splitlines() if ln.strip()]
        if lines and lines[0].split(",")[0].strip().lower() == "code":
            lines = lines[1:]
        codes = [ln.split(",")[0].strip().strip('"') for ln in lines]
        where = f"{path}"
    else:
        codes = [c.strip() for c in spec.split(",") if c.strip()]
        where = "--universe"
    bad = [c for c in codes if not re.match(CODE_PATTERN, c)]
    if bad or not codes:
        raise InputError(f"{where}: {bad[0]!r} is not a code; expected 6 characters like 005930, or 'master'"
                         if bad else f"{where}: no codes")
    return list(dict.fromkeys(codes))


def cmd_data_download(args: argparse.Namespace) -> int:
    """Fill the bar cache from KIS's daily chart TR: resumable, several codes in flight (feeds/download.py)."""
    from brokers.kis.client import Credentials, KISClient
    from brokers.kis.protocol import Env
    from configs.schema import load_config
    from feeds.cache import BarCache
    from feeds.download import Downloader, last_complete_session
    from feeds.master import master_for

    cfg = load_config(args.config)
    env = Env.REAL if cfg.broker.mode == "live" else Env.PAPER
    kis = cfg.broker.kis
    url = cfg.data.cache_url
    master = master_for(url)
    try:
        codes = _read_universe(args.universe, cfg, master)
        end = _parse_day(args.end, "--end") or cfg.data.end or last_complete_session()
        start = _parse_day(args.start, "--start") or cfg.data.start or end.replace(year=end.year - 10)
        halts, listing = {}, {}
        if master is not None:
            halts = master.halts(codes)
            df = master.frame()
            listing = {c: (df.at[c, "listing_date"], df.at[c, "delisting_date"]) for c in codes if c in df.index}
            listing = {c: (None if pd_isna(a) else a, None if pd_isna(b) else b) for c, (a, b) in listing.items()}
    finally:
        if master is not None:
            master.close()
    client = KISClient(Credentials.from_env(kis.env_file), env, kis.rest_url, token_cache=kis.token_cache,
                       requests_per_second=kis.requests_per_second)
    with BarCache(url) as cache:
        downloader = Downloader(client, cache, adjusted=not args.unadjusted, workers=args.workers,
                                strict=args.strict, halts=halts, listing=listing, progress=DownloadProgressBar(),
                                source=f"kis-{env.value}")
        print(f"download: {len(codes):,} code(s), {start}..{end}, into {cache_label(url)}", file=sys.stderr)
        summary = downloader.run(codes, start, end)
    client.close()
    print(summary.describe())
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return 1 if summary.failures else 0


def cmd_data_fundamentals(args: argparse.Namespace) -> int:
    """Point-in-time fundamentals into the market-data database: from KIS's finance TRs + inquire-price,
    or from a reference file with publication dates (feeds/fundamentals.py)."""
    from datetime import datetime

    from configs.errors import InputError
    from feeds.fundamentals import FundamentalsStore, fetch_fundamentals, import_reference
    from feeds.master import master_for
    from market.calendar import KST

    if args.reference or args.demo_reference:
        reference, label = _reference_data(args)
        bar = ProgressBar()
        with FundamentalsStore(_data_url(args)) as store:
            result = import_reference(store, reference, label,
                                      progress=lambda done, total: bar("fundamentals", done, total))
        print(result.describe())
        return 0
    if not args.config:
        raise InputError("data fundamentals: give --config (KIS access), --reference FILE, or --config with "
                         "--demo-reference")
    from brokers.kis.client import Credentials, KISClient
    from brokers.kis.protocol import Env
    from configs.schema import load_config

    cfg = load_config(args.config)
    if cfg.broker.mode != "live":
        raise InputError(f"{cfg.source}: KIS serves the finance TRs on the real environment only; set broker.mode: "
                         "live in the download config (no order is placed)")
    url = cfg.data.cache_url
    master = master_for(url)
    try:
        codes = _read_universe(args.universe, cfg, master)
        months = {}
        if master is not None:
            df = master.frame()
            months = {c: int(m) for c, m in zip(df.index, df["fiscal_month"]) if not pd_isna(m)}
    finally:
        if master is not None:
            master.close()
    kis = cfg.broker.kis
    client = KISClient(Credentials.from_env(kis.env_file), Env.REAL, kis.rest_url, token_cache=kis.token_cache,
                       requests_per_second=kis.requests_per_second)
    today = _parse_day(args.as_of, "--as-of") or datetime.now(KST).date()
    bar = ProgressBar()
    with FundamentalsStore(url) as store:
        result = fetch_fundamentals(client, store, codes, today, workers=args.workers, fiscal_months=months,
                                    progress=lambda done, total: bar("fundamentals", done, total))
    client.close()
    print(result.describe())
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 1 if result.failures else 0


def _reference_data(args: argparse.Namespace):
    """(reference data, source label) of ``data fundamentals --reference FILE`` or ``--demo-reference``."""
    from brokers.kis.emulator.reference import ReferenceError, generate_reference, load_reference
    from configs.errors import InputError

    if args.reference and args.demo_reference:
        raise InputError("data fundamentals: give --reference FILE or --demo-reference, not both")
    if args.reference:
        try:
            return load_reference(args.reference), f"reference:{args.reference}"
        except ReferenceError as exc:
            raise InputError(str(exc)) from None
    if not args.config:
        raise InputError("data fundamentals --demo-reference: give --config, a config with data.source: demo")
    from configs.schema import load_config
    from feeds.demo import generate_demo_market

    cfg = load_config(args.config)
    if cfg.data.source != "demo":
        raise InputError(f"{cfg.source}: --demo-reference imports the reference data generated for the demo market, "
                         f"but data.source is {cfg.data.source!r}; use --reference FILE")
    market = generate_demo_market(cfg.data.demo)
    return (generate_reference(market.bars, market.markets, market.names),
            f"reference:generated for the SYNTHETIC demo market (seed {cfg.data.demo.seed})")


def pd_isna(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def cache_label(url: str) -> str:
    from configs.database import safe_url

    return safe_url(url)


def cmd_emulator(args: argparse.Namespace) -> int:
    from brokers.kis.emulator.cli import main as emulator_main

    return emulator_main(args.config, env_file=Path(args.env_file) if args.env_file else None)


def _int_in(low: int, high: int):
    """An argparse type: a whole number in [low, high], with a message naming the range."""
    def parse(text: str) -> int:
        try:
            if not text.strip().lstrip("+-").isascii():
                raise ValueError(text)
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    parse.__name__ = f"whole number {low}..{high}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description="krx-trader: backtest-first trading for KRX stocks")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    bt_ = sub.add_parser("backtest", help="run a backtest and write a report")
    bt_.add_argument("--config", required=True, help="YAML config (see configs/)")
    bt_.add_argument("--out", help="report folder (default: report.out or runs/<name>)")
    bt_.add_argument("--engine", choices=["event", "fast"],
                     help="event: backtrader, any strategy; fast: declared strategies on daily bars, the whole "
                          "market in seconds, same fills (default: research.engine of the config, else event)")
    bt_.set_defaults(func=cmd_backtest)

    sw = sub.add_parser("sweep", help="run a parameter grid on the fast engine in parallel (Ray)")
    sw.add_argument("--config", required=True, help="YAML config of a declared strategy")
    sw.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                    help="a parameter and its values (repeatable): top_n=3,5,10 or risk.limits.stop_loss_pct=5,10")
    sw.add_argument("--metric", help="rank by this metric (default research.sweep.metric, else sharpe)")
    sw.add_argument("--walk-forward", metavar="DATE|SHARE",
                    help="rank in-sample up to DATE (or the first SHARE of sessions), score out-of-sample after")
    sw.add_argument("--heatmap", metavar="X,Y", help="the two grid parameters of the heat map (default: first two)")
    sw.add_argument("--address", help="an existing Ray cluster, e.g. ray://HOST:10001 (default: local Ray)")
    sw.add_argument("--cpus", type=int, help="cores of the local Ray (default: all)")
    sw.add_argument("--out", help="results folder (default research.sweep.out or runs/<name>-sweep); "
                                  "a restart into the same folder skips finished points")
    sw.add_argument("--inline", action="store_true", help="run the points in this process, without Ray")
    sw.set_defaults(func=cmd_sweep)

    rp = sub.add_parser("report", help="re-render the report of an earlier run")
    rp.add_argument("--run", required=True, help="run folder written by 'backtest'")
    rp.set_defaults(func=cmd_report)

    data = sub.add_parser("data", help="manage the bar cache")
    dsub = data.add_subparsers(dest="data_command", required=True)
    imp = dsub.add_parser("import", help="validate a folder of CODE.csv files and load it into the cache")
    imp.add_argument("--csv", required=True, help="folder of CODE.csv files (date,open,high,low,close,volume)")
    imp.add_argument("--cache", default="sqlite:///data/cache/bars.sqlite", help="SQLAlchemy URL of the cache")
    imp.add_argument("--config", help="take the cache URL from this config's data.cache_url")
    imp.add_argument("--timeframe", default="daily", choices=["daily", "5min", "1min"])
    imp.add_argument("--clamp", action="store_true", help="clamp 1-5 KRW high/low gaps of adjusted data")
    imp.add_argument("--unadjusted", action="store_true", help="mark the bars as unadjusted (on the tick grid)")
    imp.add_argument("--strict", action="store_true", help="refuse the import when any code has a quality warning")
    imp.set_defaults(func=cmd_data_import)

    ms = dsub.add_parser("master", help="build the stock master from KIS's master files (kospi/kosdaq/konex_code.mst)")
    ms.add_argument("--from", dest="source", help="URL of the folder holding the zips (or of one file), or a local "
                                                  "folder/file; default: KIS's download host")
    ms.add_argument("--cache", default="sqlite:///data/cache/bars.sqlite", help="SQLAlchemy URL of the market-data database")
    ms.add_argument("--config", help="take the database URL from this config's data.cache_url")
    ms.add_argument("--as-of", help="the day the files are of (default: the server's Last-Modified, else today)")
    ms.set_defaults(func=cmd_data_master)

    fu = dsub.add_parser("fundamentals", help="point-in-time fundamentals from KIS's finance TRs (or a reference file)")
    fu.add_argument("--config", help="config with broker.kis (real environment) and data.cache_url/universe")
    fu.add_argument("--universe", help="master, a file of codes, or CODE,CODE,...; default: the config's data.universe")
    fu.add_argument("--reference", help="import reference.json (statements with their publication dates) instead")
    fu.add_argument("--demo-reference", action="store_true",
                    help="import the reference data the emulator generates for --config's demo market (SYNTHETIC)")
    fu.add_argument("--cache", default="sqlite:///data/cache/bars.sqlite", help="database URL (with --reference)")
    fu.add_argument("--as-of", help="the day of this fetch (default: today, KST); the emulator's emulated day")
    fu.add_argument("--workers", type=_int_in(1, 32), default=4, help="codes in flight (one shared rate budget)")
    fu.set_defaults(func=cmd_data_fundamentals)

    qa = dsub.add_parser("quality", help="the quality guard's report of the cached bars, per code")
    qa.add_argument("--cache", default="sqlite:///data/cache/bars.sqlite", help="SQLAlchemy URL of the market-data database")
    qa.add_argument("--config", help="take the database URL from this config's data.cache_url")
    qa.add_argument("--codes", help="comma-separated codes (default: every cached code)")
    qa.add_argument("--timeframe", default="daily", choices=["daily", "5min", "1min"])
    qa.add_argument("--series", default="any", choices=["any", "adjusted", "original"])
    qa.add_argument("--strict", action="store_true", help="also refuse codes with warnings (exit status 1)")
    qa.add_argument("--all", action="store_true", help="list every code, not only those with findings")
    qa.set_defaults(func=cmd_data_quality)

    dl = dsub.add_parser("download", help="fill the bar cache from KIS's chart TRs (resumable: run it again)")
    dl.add_argument("--source", required=True, choices=["kis"])
    dl.add_argument("--config", required=True, help="config with broker.kis (URLs), data.universe/start/end/cache_url")
    dl.add_argument("--universe", help="master (every listed code of the stock master), a file of codes, or "
                                       "CODE,CODE,...; default: the config's data.universe")
    dl.add_argument("--start", help="first day (default: data.start, else ten years before --end)")
    dl.add_argument("--end", help="last day (default: data.end, else the last complete session)")
    dl.add_argument("--workers", type=_int_in(1, 32), default=4, help="codes in flight (one shared rate budget)")
    dl.add_argument("--strict", action="store_true", help="refuse codes with quality warnings too")
    dl.add_argument("--unadjusted", action="store_true", help="original prices (FID_ORG_ADJ_PRC=1)")
    dl.set_defaults(func=cmd_data_download)

    for mode in ("paper", "live"):
        sp = sub.add_parser(mode, help=f"trade the strategy on KIS {'모의투자 (paper)' if mode == 'paper' else '실전 (live)'}")
        sp.add_argument("--config", required=True)
        sp.add_argument("--out", help="report folder written when the session stops")
        sp.add_argument("--until", help="stop at this exchange time, e.g. 2026-11-24T15:31:00 (KST)")
        if mode == "live":
            sp.add_argument("--confirm-live", action="store_true",
                            help="required: this places real orders with real money")
        sp.set_defaults(func=cmd_session)

    mon = sub.add_parser("monitor", help="serve the dashboard of a journal database (read-only)")
    mon.add_argument("--journal", required=True, help="the journal's URL, e.g. sqlite:///data/journal.sqlite or "
                     "postgresql+psycopg://user@host/db")
    mon.add_argument("--host", default="127.0.0.1")
    mon.add_argument("--port", type=_int_in(0, 65535), default=0)
    mon.add_argument("--poll-ms", type=_int_in(100, 60_000), default=2000)
    mon.set_defaults(func=cmd_monitor)

    emu = sub.add_parser("emulator", help="start the local KIS Open API emulator")
    emu.add_argument("--config", required=True, help="emulator YAML (see configs/emulator.yaml)")
    emu.add_argument("--env-file", help="also write KIS_APP_KEY/KIS_APP_SECRET/KIS_ACCOUNT/KIS_HTS_ID here "
                                        "(mode 0600) for run.py paper")
    emu.set_defaults(func=cmd_emulator)
    return p


def _parse_until(text: str):
    """``--until``: an exchange time (KST when no offset is given)."""
    from datetime import datetime

    from configs.errors import InputError
    from market.calendar import KST

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--until {text[:40]!r}: not a time; e.g. 2026-11-24T15:31:00 (KST)") from None
    return when.replace(tzinfo=KST) if when.tzinfo is None else when.astimezone(KST)


def _expected_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None when ``exc`` is a bug.

    Expected: every ``InputError`` (configs, targets, bar files, strategy parameters, database URLs,
    arguments), KIS's typed errors (wrong app key/secret, KIS refusing a request, KIS unreachable —
    already scrubbed of secrets) and an ``OSError`` that names a file (disk full, permission denied).
    """
    from configs.errors import InputError

    if isinstance(exc, InputError):
        return str(exc)
    from brokers.kis.errors import KISConfigError, KISError

    if isinstance(exc, (KISError, KISConfigError)):
        return f"KIS: {exc}"
    if isinstance(exc, OSError) and (exc.filename or exc.strerror):
        from configs.files import shown

        where = f"{shown(exc.filename)}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


def _write_crash_log(exc: BaseException) -> Path | None:
    """The traceback of a bug, appended to the run's log (or a private crash log); its path."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    target = _current_run_log
    try:
        if target is None:
            fd, name = tempfile.mkstemp(prefix="krx-trader-crash-", suffix=".log")   # mode 0600
            with open(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return Path(name)
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"\n{time.strftime('%Y-%m-%d %H:%M:%S')} unexpected error\n{text}")
        return target
    except OSError:
        return None


def run_guarded(args: argparse.Namespace) -> int:
    """The error boundary of every command (see the module docstring)."""
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RecursionError as exc:   # a bug, and its traceback is thousands of lines: keep the head
        log_path = _write_crash_log(exc)
        print(f"error: unexpected RecursionError (a bug; details in {log_path})", file=sys.stderr)
        return EXIT_BUG
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        message = _expected_error_message(exc)
        if message is not None:
            if args.verbose:
                logging.getLogger("krx").debug("expected error", exc_info=exc)
            print(f"error: {message}", file=sys.stderr)
            return EXIT_USAGE
        log_path = _write_crash_log(exc)
        where = f"the traceback is in {log_path}" if log_path else "no log could be written"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}{': ' + first if first else ''} (a bug; {where})",
              file=sys.stderr)
        if args.verbose:
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return EXIT_BUG


def main(argv: list[str] | None = None) -> int:
    global _current_run_log
    _current_run_log = None
    args = build_parser().parse_args(argv)    # argparse: one usage message and exit 2 on bad arguments
    if hasattr(signal_module, "SIGUSR1"):
        # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a live run waits
        try:
            faulthandler.register(signal_module.SIGUSR1, all_threads=True)
        except (ValueError, OSError, AttributeError):   # stderr without a file descriptor (embedded, tests)
            pass
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if args.verbose else logging.ERROR)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[console])
    nul = [f"--{k.replace('_', '-')}" for k, v in vars(args).items() if isinstance(v, str) and "\x00" in v]
    if nul:
        print(f"error: {', '.join(nul)}: contains a NUL character", file=sys.stderr)
        return EXIT_USAGE
    return run_guarded(args)


if __name__ == "__main__":
    sys.exit(main())

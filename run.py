#!/usr/bin/env python3
"""krx-trader command line: backtest | sweep | data | report | emulator | paper | live | monitor.

    python run.py backtest --config configs/backtest-demo.yaml [--out DIR] [--engine fast|event]
    python run.py sweep --config configs/research-demo.yaml --grid top_n=3,5,10 --grid fast=10,20,40
    python run.py data import --csv DIR [--cache URL] [--timeframe daily]
    python run.py report --run DIR
    python run.py emulator --config configs/emulator.yaml
    python run.py paper --config configs/paper-emulator.yaml [--until 2026-11-24T15:31:00]
    python run.py live --config FILE --confirm-live
    python run.py data download --source kis --config FILE

This file only parses arguments and prints; the work lives in ``engine``, ``feeds``, ``analysis``
and ``brokers``. Expected problems (a bad config, targets file or CSV) end with one clear message
and exit status 2, never a traceback.
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
        self.out.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.out / "run.log", mode="w", encoding="utf-8")
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


def cmd_backtest(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from configs.schema import load_config
    from engine.backtest import default_out_dir, run_backtest

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    if cfg.broker.mode != "backtest":
        raise ValueError(f"{args.config}: broker.mode is {cfg.broker.mode!r}; "
                         f"use 'run.py {cfg.broker.mode}' for it, or set broker.mode: backtest")
    out = Path(args.out) if args.out else default_out_dir(cfg)
    engine = args.engine or cfg.research.engine
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
                raise ValueError(f"--walk-forward {args.walk_forward!r}: expected a date (2022-12-30) or the "
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
    summary = import_csv_folder(Path(args.csv), url=url, timeframe=args.timeframe,
                                clamp_adjusted_high=args.clamp, adjusted=not args.unadjusted)
    print(summary)
    return 0


def cmd_session(args: argparse.Namespace) -> int:
    """paper / live: the same strategy on KIS until the feeds end (--until) or Ctrl-C."""
    from datetime import datetime

    from analysis.report import write_report
    from configs.schema import load_config
    from engine.backtest import default_out_dir
    from engine.live import build_live_session, run_until_signal
    from market.calendar import KST

    cfg = load_config(args.config)
    if cfg.broker.mode != args.command:
        raise ValueError(f"{args.config}: broker.mode is {cfg.broker.mode!r} but the command is "
                         f"{args.command!r}; set broker.mode: {args.command} (the one switch)")
    until = datetime.fromisoformat(args.until).replace(tzinfo=KST) if args.until else None
    session = build_live_session(cfg, confirm_live=getattr(args, "confirm_live", False), until=until)
    out = Path(args.out) if args.out else default_out_dir(cfg)
    server = router = None
    with _run_log(out):
        if cfg.monitor.enabled:
            from engine.monitoring import attach_monitor

            client = session.store.client
            creds = getattr(client, "creds", None)
            secrets = [getattr(creds, "app_key", ""), getattr(creds, "app_secret", ""), getattr(creds, "cano", "")]
            server, _source, router = attach_monitor(session, cfg, secrets=[x for x in secrets if x])
            print(f"monitor: {server.url}", file=sys.stderr)
        print(f"{args.command}: {len(session.codes)} code(s), journal {cfg.broker.kis.journal_url}; "
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

    server = MonitorServer(JournalSource(Journal(args.journal)), host=args.host, port=args.port,
                           poll_ms=args.poll_ms, title="krx-trader monitor (journal)").start()
    print(f"monitor: {server.url}", flush=True)
    stop = threading.Event()
    import signal as _signal

    for sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    """Fill the bar cache from KIS's daily chart TR (100 rows a call, paged backwards)."""
    from datetime import date

    from brokers.kis.client import Credentials, KISClient
    from brokers.kis.protocol import Env
    from configs.schema import load_config
    from feeds.cache import BarCache

    cfg = load_config(args.config)
    env = Env.REAL if cfg.broker.mode == "live" else Env.PAPER
    kis = cfg.broker.kis
    client = KISClient(Credentials.from_env(kis.env_file), env, kis.rest_url, token_cache=kis.token_cache,
                       requests_per_second=kis.requests_per_second)
    codes = cfg.data.universe or []
    if not codes:
        raise ValueError("data.universe: list the codes to download")
    start = cfg.data.start or date(date.today().year - 1, 1, 1)
    end = cfg.data.end or date.today()
    frames = {}
    for i, code in enumerate(codes, 1):
        frames[code] = client.daily_bars(code, start, end, adjusted=not args.unadjusted)
        ProgressBar()("download", i, len(codes))
    cache = BarCache(cfg.data.cache_url)
    cache.write(frames, timeframe="daily", source=f"kis-{env.value}", adjusted=not args.unadjusted)
    print(f"cached {sum(len(f) for f in frames.values()):,} daily bars of {len(frames)} code(s) "
          f"in {cfg.data.cache_url}")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from brokers.kis.emulator.cli import main as emulator_main

    return emulator_main(args.config, env_file=Path(args.env_file) if args.env_file else None)


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
    imp.set_defaults(func=cmd_data_import)

    dl = dsub.add_parser("download", help="fill the bar cache from KIS's chart TRs")
    dl.add_argument("--source", required=True, choices=["kis"])
    dl.add_argument("--config", required=True, help="config with broker.kis (URLs), data.universe/start/end/cache_url")
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
    mon.add_argument("--journal", required=True, help="SQLAlchemy URL, e.g. sqlite:///data/journal.sqlite")
    mon.add_argument("--host", default="127.0.0.1")
    mon.add_argument("--port", type=int, default=0)
    mon.add_argument("--poll-ms", type=int, default=2000)
    mon.set_defaults(func=cmd_monitor)

    emu = sub.add_parser("emulator", help="start the local KIS Open API emulator")
    emu.add_argument("--config", required=True, help="emulator YAML (see configs/emulator.yaml)")
    emu.add_argument("--env-file", help="also write KIS_APP_KEY/KIS_APP_SECRET/KIS_ACCOUNT/KIS_HTS_ID here "
                                        "(mode 0600) for run.py paper")
    emu.set_defaults(func=cmd_emulator)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(signal_module, "SIGUSR1"):
        # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a live run waits
        faulthandler.register(signal_module.SIGUSR1, all_threads=True)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if args.verbose else logging.ERROR)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[console])
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # config, targets, CSV and strategy errors are ValueErrors with a message that names the problem
        if args.verbose:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

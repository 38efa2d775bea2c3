#!/usr/bin/env python3
"""The fast engine on the whole market: bars/s, peak memory, vectorbt on the same signals, sweep scaling.

Data: the SYNTHETIC demo market, ``--codes`` codes × ``--years`` years (default 2,500 × 10 years ≈
2,450 sessions ≈ 6.1 M bars, the size of KOSPI + KOSDAQ). Measurements, each in a fresh child
process so its peak memory is its own:

* **sma_cross** — SMA(10)/SMA(30) crossover, 10 shares per signal, every KRX rule of the simulator
  (next-open fills, tick grid, band, upper-limit reservation, costs and dated tax, DAY expiry):
  panel load, indicators, screens and kernel, bars/s;
* **screen_momentum** — the whole-market screen backtest of ``configs/research-demo.yaml`` (ATR
  sizing, volume cap, slippage, stop-loss, daily-loss kill switch): the same stages; the goal is
  <= 10 s on 2 cores;
* **vectorbt** (when the ``bench`` extra is installed) — ``Portfolio.from_signals`` on the same
  panel closes with the same crossover entries and exits and the same commission (fills at the
  signal bar's close, no KRX rules): seconds and bars/s, warm (second call, after numba compiled);
* **agreement** — the event-driven simulator and the fast engine on ``--check-codes`` codes: same
  fills and equity (the speed is only worth something if the fills are the event path's);
* **sweep scaling** — a ``screen_momentum`` grid of ``--sweep-points`` points on ``--sweep-codes``
  codes, on a local Ray with 1 core and with all cores: points/s and the speed-up.

    python bench/research.py [--codes 2500] [--years 10] [--repeat 3] [--sweep-codes 500]
                             [--sweep-points 8] [--check-codes 30] [--skip sweep,vectorbt]

Every figure is printed; a goal that is missed is printed as missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GB = 1024 ** 3


def demo_body(codes: int, years: int, strategy: dict, **extra) -> dict:
    end = date(2025, 12, 30)
    return {"name": "bench-research", "data": {"source": "demo", "demo": {
        "codes": codes, "start": date(end.year - years + 1, 1, 2).isoformat(), "end": end.isoformat()}},
        "strategy": strategy, "report": {"benchmark": "none"}, **extra}


def cross_body(codes: int, years: int) -> dict:
    return demo_body(codes, years, {"name": "sma_cross", "params": {"fast": 10, "slow": 30}},
                     broker={"cash": 10 ** 12},
                     risk={"sizer": {"kind": "fixed_size", "size": 10},
                           "limits": {"max_position_pct": None, "max_exposure_pct": None}})


def screen_body(codes: int, years: int) -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "research-demo.yaml").read_text(encoding="utf-8"))
    body = demo_body(codes, years, raw["strategy"], broker=raw["broker"], risk=raw["risk"])
    return body


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ------------------------------------------------------------------------------------ children

def child_fast(body: dict, repeat: int) -> dict:
    """Stages of one fast run (panel already cached), then the kernel again ``repeat`` times."""
    from configs.schema import parse_config
    from research import engine as E
    from research.indicators import add_panel_indicators
    from research.rules import compile_inputs
    from research.store import load_panel

    from market.calendar import krx_calendar

    cfg = parse_config(body)
    t = time.perf_counter()
    krx_calendar()                      # exchange_calendars' XKRX: built once per process, both engines
    calendar = time.perf_counter() - t
    t0 = time.perf_counter()
    cls = E.declared_class(cfg)
    spec = cls.spec_for(cfg.strategy.params)
    panel, load = load_panel(cfg.data)
    t1 = time.perf_counter()
    specs, others = E.required_fields(cfg, cls, spec)
    add_panel_indicators(panel, specs)
    panel.ensure(others)
    t2 = time.perf_counter()
    win = E.window_panel(panel, cfg.data)
    inputs = compile_inputs(cfg, spec, win, None, E.cost_model_for(cfg))
    t3 = time.perf_counter()
    run = E.FastRun(cfg, cls, spec, None, win, inputs, E.cost_model_for(cfg), load)
    out = E.simulate(run, record=True)
    t4 = time.perf_counter()
    kernel, kernel_rec = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        E.simulate(run, record=False)
        kernel.append(time.perf_counter() - t)
        t = time.perf_counter()
        E.simulate(run, record=True)
        kernel_rec.append(time.perf_counter() - t)
    t5 = time.perf_counter()
    record = E.build_record(run, out)
    t6 = time.perf_counter()
    return {"bars": int(win.bars), "codes": len(win.codes), "sessions": len(win.dates), "cached": load.from_cache,
            "calendar": calendar, "load": t1 - t0, "indicators": t2 - t1, "compile": t3 - t2, "kernel_first": t4 - t3,
            "kernel": min(kernel) if kernel else t4 - t3, "kernel_rec": min(kernel_rec) if kernel_rec else t4 - t3,
            "record": t6 - t5, "fills": int(len(record.trades)),
            "total": (t1 - t0) + (t2 - t1) + (t3 - t2) + (t4 - t3), "peak_rss": peak_rss()}


def child_vectorbt(body: dict, repeat: int) -> dict:
    import numpy as np
    import pandas as pd
    import vectorbt as vbt

    from configs.schema import parse_config
    from research import engine as E
    from research.indicators import add_panel_indicators
    from research.store import load_panel

    cfg = parse_config(body)
    t = time.perf_counter()
    panel, _ = load_panel(cfg.data)
    load = time.perf_counter() - t
    index = pd.DatetimeIndex(panel.dates.astype("datetime64[ns]"))
    t = time.perf_counter()
    # the usual vectorbt workflow computes its signals on the close matrix with pandas
    close_all = pd.DataFrame(panel.field("close"), index=index, columns=panel.codes)
    f10, f30 = close_all.rolling(10).mean(), close_all.rolling(30).mean()
    own_entries = (f10 > f30) & (f10.shift() <= f30.shift())
    own_exits = f10 < f30
    signals = time.perf_counter() - t
    del f10, f30, own_entries, own_exits, close_all
    add_panel_indicators(panel, ["sma_10", "sma_30"])
    win = E.window_panel(panel, cfg.data)
    fast, slow = win.field("sma_10"), win.field("sma_30")
    entries = win.values().all(fast > slow, win.field("sma_10@prev") <= win.field("sma_30@prev"))
    exits = fast < slow
    index = pd.DatetimeIndex(win.dates.astype("datetime64[ns]"))
    close = pd.DataFrame(win.field("close"), index=index, columns=win.codes)
    entries = pd.DataFrame(entries, index=index, columns=win.codes)
    exits = pd.DataFrame(exits, index=index, columns=win.codes)
    fees = float(E.cost_model_for(cfg).commission_rate)
    times = []
    for _ in range(repeat + 1):                  # the first call compiles vectorbt's numba code
        t = time.perf_counter()
        pf = vbt.Portfolio.from_signals(close, entries, exits, size=10, fees=fees, init_cash=10 ** 12)
        total = float(pf.total_return().mean())
        times.append(time.perf_counter() - t)
    return {"bars": int(win.bars), "cells": int(close.size), "first": times[0], "warm": min(times[1:]),
            "load": load, "signals": signals,
            "orders": int(pf.orders.count().sum()), "mean_return": total, "peak_rss": peak_rss(),
            "version": vbt.__version__, "entries": int(np.asarray(entries).sum())}


def child_check(body: dict) -> dict:
    from configs.schema import parse_config
    from engine.backtest import run_backtest
    from research.engine import run_fast_backtest

    cfg = parse_config(body)
    t = time.perf_counter()
    event = run_backtest(cfg).record
    t_event = time.perf_counter() - t
    t = time.perf_counter()
    fast = run_fast_backtest(cfg).record
    t_fast = time.perf_counter() - t

    def fills(df):
        return sorted((r.datetime.date(), r.code, r.side, int(r.qty), float(r.price), int(r.commission), int(r.tax))
                      for r in df.itertuples())
    return {"fills": len(event.trades), "same_fills": fills(event.trades) == fills(fast.trades),
            "same_equity": bool(event.equity.equals(fast.equity)), "event_seconds": t_event,
            "fast_seconds": t_fast, "bars": int(sum(len(f) for f in event.prices.values()))}


def child_sweep(body: dict, points: int, cpus: int, out: str) -> dict:
    from configs.schema import parse_config
    from research.sweep import run_sweep

    cfg = parse_config(body)
    tops = [3, 5, 8, 10, 15, 20, 25, 30]
    fasts = [10, 20]
    n_top = max(1, points // len(fasts))
    grid = {"top_n": tops[:n_top], "fast": fasts[: max(1, min(len(fasts), points))]}
    result = run_sweep(cfg, grid, out=Path(out), num_cpus=cpus, executor="ray")
    return {"points": result.ran, "seconds": result.seconds, "workers": result.workers,
            "points_per_second": result.points_per_second, "prepare": result.prepare_seconds,
            "startup": result.startup_seconds}


CHILDREN = {"fast": child_fast, "vectorbt": child_vectorbt, "check": child_check, "sweep": child_sweep}


def spawn(kind: str, *args) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", json.dumps([kind, *args])], capture_output=True,
                       text=True, cwd=ROOT, env={**os.environ})
    if r.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ main

def ensure_panel(body: dict) -> tuple[float, bool]:
    from configs.schema import parse_config
    from research.store import load_panel

    t = time.perf_counter()
    _panel, load = load_panel(parse_config(body).data)
    return time.perf_counter() - t, load.from_cache


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codes", type=int, default=2500)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--check-codes", type=int, default=30)
    ap.add_argument("--sweep-codes", type=int, default=2500)
    ap.add_argument("--sweep-points", type=int, default=8)
    ap.add_argument("--skip", default="", help="comma list of: vectorbt, check, sweep")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        print(json.dumps(CHILDREN[kind](*rest)))
        return 0
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    cores = os.cpu_count() or 1

    cross, screen = cross_body(args.codes, args.years), screen_body(args.codes, args.years)
    gen_seconds, cached = ensure_panel(cross)
    print(f"data: SYNTHETIC demo market, {args.codes:,} codes x {args.years} years; panel "
          f"{'read from the cache' if cached else 'generated and cached'} in {gen_seconds:.1f} s; {cores} core(s)")

    fc = spawn("fast", cross, args.repeat)
    fs = spawn("fast", screen, args.repeat)
    print(f"\nfast engine ({fc['bars']:,} bars = {fc['codes']:,} codes x {fc['sessions']:,} sessions, panel cached; "
          f"the KRX calendar, built once per process by either engine, took {fc['calendar']:.2f} s and is not in "
          f"the total):")
    print(f"{'':24}{'load':>7}{'indic.':>8}{'screens':>9}{'kernel':>8}{'= total':>9}{'bars/s':>13}"
          f"{'kernel bars/s':>15}{'peak RSS':>10}{'fills':>8}")
    for name, r in (("sma_cross (10 sh/signal)", fc), ("screen_momentum", fs)):
        print(f"{name:24}{r['load']:7.2f}{r['indicators']:8.2f}{r['compile']:9.2f}{r['kernel_first']:8.2f}"
              f"{r['total']:9.2f}{r['bars'] / r['total']:13,.0f}{r['bars'] / r['kernel']:15,.0f}"
              f"{r['peak_rss'] / GB:9.2f}G{r['fills']:8,}")
    print(f"  (the kernel column includes loading the compiled kernel from numba's cache; warm, it takes "
          f"{fc['kernel_rec']:.3f} s / {fs['kernel_rec']:.3f} s with records, {fc['kernel']:.3f} s / {fs['kernel']:.3f} s "
          f"without (sweeps); building the run record afterwards: {fc['record']:.2f} s / {fs['record']:.2f} s)")
    whole = fs["total"] + fs["calendar"]
    goal_time = whole <= 10.0
    goal_mem = max(fc["peak_rss"], fs["peak_rss"]) <= 2 * GB
    print(f"goal: whole-market screen backtest <= 10 s on {cores} cores: {whole:.2f} s with the calendar "
          f"({fs['total']:.2f} s without) -> {'OK' if goal_time else 'MISSED'}")
    print(f"goal: peak memory <= 2 GB: {max(fc['peak_rss'], fs['peak_rss']) / GB:.2f} GB -> "
          f"{'OK' if goal_mem else 'MISSED'}")

    if "vectorbt" not in skip:
        try:
            import vectorbt  # noqa: F401
        except ImportError:
            print("\nvectorbt: not installed (pip install -e '.[bench]'); comparison skipped")
        else:
            vb = spawn("vectorbt", cross, args.repeat)
            sim_ratio = (fc["kernel_rec"] / fc["bars"]) / (vb["warm"] / vb["bars"])
            vb_total = vb["load"] + vb["signals"] + vb["warm"]
            e2e_ratio = (fc["total"] / fc["bars"]) / (vb_total / vb["bars"])
            print(f"\nvectorbt {vb['version']} on the same panel ({vb['entries']:,} entries, {vb['orders']:,} orders; "
                  f"fills at the signal bar's close, no KRX rules), numba already compiled:")
            print(f"  simulation: Portfolio.from_signals {vb['warm']:.2f} s ({vb['bars'] / vb['warm']:,.0f} bars/s) vs "
                  f"the fast kernel with records {fc['kernel_rec']:.2f} s -> {sim_ratio:.2f}x the time per bar "
                  f"-> {'faster than vectorbt' if sim_ratio < 1 else 'SLOWER than vectorbt (goal missed)'}")
            print(f"  end to end: vectorbt load {vb['load']:.2f} + pandas SMAs and signals {vb['signals']:.2f} + "
                  f"simulation {vb['warm']:.2f} = {vb_total:.2f} s vs the fast engine {fc['total']:.2f} s "
                  f"-> {e2e_ratio:.2f}x (the fast engine's indicators are per code over its own bars, equal to ta)")
            print(f"  vectorbt's first call (its numba compile) {vb['first']:.2f} s; peak RSS {vb['peak_rss'] / GB:.2f} GB")

    if "check" not in skip:
        ck = spawn("check", cross_body(args.check_codes, 3))
        ck2 = spawn("check", screen_body(args.check_codes, 3))
        print(f"\nagreement with the event-driven simulator ({args.check_codes} codes x 3 years):")
        for name, r in (("sma_cross", ck), ("screen_momentum", ck2)):
            print(f"  {name:16} {r['fills']:5} fills: same fills {'yes' if r['same_fills'] else 'NO'}, same equity "
                  f"{'yes' if r['same_equity'] else 'NO'}; event {r['event_seconds']:.2f} s "
                  f"({r['bars'] / r['event_seconds']:,.0f} bars/s), fast {r['fast_seconds']:.2f} s")

    if "sweep" not in skip:
        import tempfile

        body = screen_body(args.sweep_codes, args.years)
        ensure_panel(body)
        with tempfile.TemporaryDirectory() as tmp:
            one = spawn("sweep", body, args.sweep_points, 1, f"{tmp}/one")
            allc = spawn("sweep", body, args.sweep_points, cores, f"{tmp}/all")
        print(f"\nsweep scaling (screen_momentum, {args.sweep_codes} codes x {args.years} years, "
              f"{one['points']} points, local Ray):")
        print(f"  1 core : {one['points_per_second']:.2f} points/s ({one['seconds']:.1f} s)")
        print(f"  {allc['workers']} cores: {allc['points_per_second']:.2f} points/s ({allc['seconds']:.1f} s) -> "
              f"speed-up {allc['points_per_second'] / one['points_per_second']:.2f}x")
        print(f"  (before the points: panel load and indicators {allc['prepare']:.1f} s, Ray start-up and worker "
              f"imports {one['startup']:.1f} s / {allc['startup']:.1f} s — not in points/s)")
    return 0 if (goal_time and goal_mem) else 1


if __name__ == "__main__":
    sys.exit(main())

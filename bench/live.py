#!/usr/bin/env python3
"""The KIS adapter measured against the project's emulator, over real loopback sockets.

    .venv/bin/python bench/live.py [--codes 39] [--day-seconds 120] [--seconds 8] [--orders 20]

Prints:

1. **tick → strategy**: the emulator streams 39 codes (40 subscriptions with the notices) on an
   accelerated clock (a trading day in ``--day-seconds``); a paper trader (``KISStore``/``KISData``/
   ``KISBroker`` exactly as ``run.py paper`` builds them, 1-minute bars) records, for each bar its
   strategy receives, the wall time from its input — the moment the tick that completed the bar
   arrived from the WebSocket (the store's callback on the ws thread), or for a bar the clock closed
   the moment it fell due (``broker.kis.bar_close_grace_s`` after its end) — to the strategy's
   ``next()``: p50/p99/max, and how long a minute's bars of all codes took from the first input to
   the strategy. Also shown: from the moment the feed completed the bar (which leaves out the time
   the tick waited in a queue). The emulator runs as ``run.py emulator`` in its own process, as it
   is deployed (``--emulator thread`` runs it inside the benchmark's process instead).
2. **frames/s parsed** by the feed side (``KISWebSocket`` frames and trade records per second).
3. **order latency**: ``--orders`` market orders placed by the strategy during continuous trading;
   submit → Accepted and submit → Completed, p50/p99 (wall clock).
4. **rate-limit use**: four threads sharing one client call ``inquire-price`` for ``--seconds``
   against the real environment's limit (18/s) enforced by the emulator on the wall clock; prints
   the share of the allowed rate the client reached and how many EGW00201 it saw (goal: 0).
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backtrader as bt  # noqa: E402

from brokers.kis.client import Credentials, KISClient  # noqa: E402
from brokers.kis.emulator.clock import AcceleratedClock  # noqa: E402
from brokers.kis.emulator.server import Emulator  # noqa: E402
from configs.emulator_schema import EmulatorConfig  # noqa: E402
from configs.schema import DemoDataConfig, parse_config  # noqa: E402
from engine.live import build_live_session  # noqa: E402
from feeds.demo import generate_demo_market  # noqa: E402
from market.calendar import KST  # noqa: E402
from strategies.base import TargetStrategy  # noqa: E402

DAY = date(2025, 3, 5)
DEMO_START = date(2024, 9, 2)
DEMO_SEED = 5


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Sample(NamedTuple):
    """One live bar as the strategy received it."""

    bar: str              # the bar's time
    code: str
    input_s: float        # its input (the completing tick's arrival, or the moment it fell due) -> next()
    built_s: float        # the feed completing it -> next()
    at_start: bool        # its input came before the strategy's first next() (start-up backlog)
    next_at: float        # time.perf_counter() at next()
    closed_by_clock: bool


class Probe(TargetStrategy):
    """Records bar latency; places market orders one at a time and times them."""

    params = (("orders", 20), ("code", None), ("out", None))

    def __init__(self):
        super().__init__()
        self.bar_latency: list[float] = []
        self.samples: list[Sample] = []
        self.first_next: float | None = None
        self._counted: dict[str, float] = {}
        self.ack: list[float] = []
        self.fill: list[float] = []
        self._sent: dict[int, float] = {}

    def on_bar(self) -> None:
        now = time.perf_counter()
        if self.first_next is None:
            self.first_next = now
        for code, data in self.codes_with_bars():
            closed = data.bar_closed_at
            if not closed or self._counted.get(code) == closed:
                continue   # a history bar, or this bar was counted in an earlier turn of the same minute
            self._counted[code] = closed
            self.bar_latency.append(now - closed)
            arrived = data.input_at or closed
            self.samples.append(Sample(data.datetime.datetime(0).isoformat(), code, now - arrived, now - closed,
                                       arrived < self.first_next, now, data.closed_by_clock))
        if len(self.ack) + len(self._sent) < self.p.orders and not self._sent:
            order = self.buy(data=self.p.code, size=1)
            if order is not None:
                self._sent[order.ref] = time.perf_counter()

    def on_order_update(self, order) -> None:
        t0 = self._sent.get(order.ref)
        if t0 is None:
            return
        if order.status == bt.Order.Accepted:
            self.ack.append(time.perf_counter() - t0)
        elif order.status == bt.Order.Completed:
            self.fill.append(time.perf_counter() - t0)
            self._sent.pop(order.ref, None)
        elif order.status in (bt.Order.Rejected, bt.Order.Canceled, bt.Order.Expired, bt.Order.Margin):
            self._sent.pop(order.ref, None)

    def stop(self) -> None:
        self.p.out.put(self)


def _emulator_config(args, start: datetime) -> dict:
    """The emulator of the latency run: paper, no rate limit, a trading day in ``--day-seconds``."""
    return {"env": "paper", "log_requests": False, "rate_limit": {"enabled": False},
            "paper": {"account": {"cash": 1_000_000_000}},
            "clock": {"mode": "accelerated", "day_seconds": args.day_seconds, "start": start.isoformat()},
            "data": {"source": "demo", "demo": {"codes": args.codes, "start": DEMO_START.isoformat(),
                                                 "end": DAY.isoformat(), "seed": DEMO_SEED}}}


def _with_rate(clock: AcceleratedClock):
    """The emulator's clock as the trader's, stating its rate as ``AdminClock`` does (so the loop
    wakes when a bar falls due, as with ``clock: emulator``)."""
    def now() -> datetime:
        return clock.now()

    now.rate = clock.rate  # type: ignore[attr-defined]
    return now


class EmulatorProcess:
    """``run.py emulator`` in its own process, as a user runs it beside ``run.py paper``: the
    emulator's threads do not share the trader's interpreter lock (an in-process emulator does,
    which puts its pump and socket work into the trader's latency)."""

    def __init__(self, args, start: datetime, tmp: Path) -> None:
        import yaml

        config = tmp / "emulator.yaml"
        cfg = _emulator_config(args, start)
        cfg["ports"] = {"rest_paper": 0, "ws_paper": 0, "admin": 0}
        config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "emulator", "--config", str(config)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {line.strip()} {self.proc.stderr.read()[-2000:]}")
        self.banner = json.loads(line)
        # the request log follows the banner on stdout: drain it so the emulator never blocks on a pipe
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def trader_bench(args) -> None:
    start = datetime(DAY.year, DAY.month, DAY.day, 9, 0, 30, tzinfo=KST)
    tmp = Path(tempfile.mkdtemp())
    out: queue.Queue = queue.Queue()
    codes = [f"{990001 + i:06d}" for i in range(args.codes)]
    kis: dict = {"bar": "1min", "requests_per_second": 50, "token_cache": str(tmp / "t.json"),
                 "journal_url": f"sqlite:///{tmp / 'j.sqlite'}", "env_file": None}
    emu = proc = None
    session_kw: dict = {}
    if args.emulator == "process":
        proc = EmulatorProcess(args, start, tmp)
        b = proc.banner
        kis.update(rest_url=b["rest_url"], ws_url=b["ws_url"], clock="emulator", admin_url=b["admin_url"])
        c = Credentials.from_mapping(b)
    else:
        demo = generate_demo_market(DemoDataConfig(codes=args.codes, start=DEMO_START, end=DAY, seed=DEMO_SEED))
        cfg = EmulatorConfig.model_validate(_emulator_config(args, start))
        clock = AcceleratedClock(start, args.day_seconds)
        emu = Emulator(cfg, bars=demo.bars, markets=demo.markets, clock=clock)
        emu.start()
        creds = emu.credentials("paper")
        c = Credentials.from_mapping(creds.as_dict())
        kis.update(rest_url=creds.rest_url, ws_url=creds.ws_url)
        session_kw["now"] = _with_rate(clock)
        codes = list(demo.bars)
    try:
        app = parse_config({"name": "bench", "broker": {"mode": "paper", "kis": kis},
                            "data": {"universe": codes},
                            "strategy": {"name": "bench.live:Probe",
                                         "params": {"orders": args.orders, "code": codes[0], "out": out}},
                            "risk": {"limits": {"max_position_pct": 100}}})
        now = session_kw.get("now")
        session = build_live_session(app, credentials=c, until=start + timedelta(minutes=args.minutes),
                                     **session_kw)
        for data in session.cerebro.datas:
            data.p.qcheck = args.qcheck
        t0 = time.perf_counter()
        thread = threading.Thread(target=session.run, daemon=True)
        thread.start()
        probe: Probe = out.get(timeout=args.minutes * args.day_seconds / 390 * 60 + 120)
        wall = time.perf_counter() - t0
        ws = session.store.ws
        thread.join(30)
        where = "its own process (run.py emulator)" if proc else "the trader's process"
        print(f"trader: {len(codes)} codes streaming from an emulator in {where}, a trading day in "
              f"{args.day_seconds:g} s, {args.minutes} emulated minutes in {wall:.1f} s wall"
              + ("" if now else "; trader clock: clock: emulator (AdminClock)"))
        steady = [s.input_s for s in probe.samples if not s.at_start]
        backlog = [s.input_s for s in probe.samples if s.at_start]
        p99 = pct(steady, .99)
        print(f"tick -> strategy (the tick that completed a bar arrived, or the bar fell due on the clock, to "
              f"next()): p50 {pct(steady, .5) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, "
              f"max {max(steady or [float('nan')]) * 1e3:.2f} ms over {len(steady)} bars "
              f"(goal p99 < 5 ms) -> {'OK' if p99 < 0.005 else 'ABOVE GOAL'}")
        minutes: dict[str, list[Sample]] = {}
        for s in probe.samples:
            if not s.at_start:
                minutes.setdefault(s.bar, []).append(s)
        spans = [max(s.next_at for s in v) - min(s.next_at - s.input_s for s in v) for v in minutes.values()]
        closed_by_clock = sum(1 for s in probe.samples if not s.at_start and s.closed_by_clock)
        print(f"  {len(steady) - closed_by_clock} bars closed by a tick of the next minute, {closed_by_clock} by the "
              f"clock ({app.broker.kis.bar_close_grace_s:g} s after their end, the loop woken then)")
        print(f"  a minute's {len(codes)} bars, from its first input to the strategy holding all of them: "
              f"p50 {pct(spans, .5) * 1e3:.2f} ms, max {max(spans or [float('nan')]) * 1e3:.2f} ms "
              f"over {len(spans)} minutes (ticks of many codes in the same moment arrive as one burst)")
        if backlog:
            print(f"  not counted above: {len(backlog)} bars whose ticks arrived while the trader was still starting "
                  f"(history backfill of {len(codes)} codes; the strategy's first bar came "
                  f"{probe.first_next - t0:.1f} s after the start), delivered up to {max(backlog) * 1e3:.1f} ms later")
        print(f"bar completed -> strategy: p50 {pct(probe.bar_latency, .5) * 1e3:.2f} ms, "
              f"p99 {pct(probe.bar_latency, .99) * 1e3:.2f} ms over {len(probe.bar_latency)} bars")
        print(f"frames parsed: {ws.stats.frames / wall:,.0f} frames/s, {ws.stats.records / wall:,.0f} trade "
              f"records/s ({ws.stats.frames:,} frames, {ws.stats.records:,} records)")
        print(f"order submit -> accepted: p50 {pct(probe.ack, .5) * 1e3:.1f} ms, p99 {pct(probe.ack, .99) * 1e3:.1f} ms; "
              f"submit -> filled: p50 {pct(probe.fill, .5) * 1e3:.1f} ms, p99 {pct(probe.fill, .99) * 1e3:.1f} ms "
              f"({len(probe.fill)} orders)")
        if args.dump:
            with open(args.dump, "w", encoding="utf-8") as f:
                f.write(",".join(Sample._fields) + "\n")
                f.writelines(",".join(map(str, row)) + "\n" for row in probe.samples)
    finally:
        if emu is not None:
            emu.stop()
        if proc is not None:
            proc.stop()


def rate_bench(args) -> None:
    demo = generate_demo_market(DemoDataConfig(codes=4, start=date(2024, 9, 2), end=DAY, seed=5))
    cfg = EmulatorConfig.model_validate({"env": "real", "log_requests": False,
                                         "rate_limit": {"enabled": True, "time_base": "wall"},
                                         "clock": {"mode": "real"}})
    emu = Emulator(cfg, bars=demo.bars, markets=demo.markets).start()
    tmp = Path(tempfile.mkdtemp())
    try:
        creds = emu.credentials("real")
        client = KISClient(Credentials.from_mapping(creds.as_dict()), "real", creds.rest_url,
                           token_cache=tmp / "t.json", wallclock=emu.now)
        client.access_token()
        code = next(iter(demo.bars))
        stop = time.perf_counter() + args.seconds
        ok = [0]
        errors: list[str] = []
        lock = threading.Lock()

        def worker():
            while time.perf_counter() < stop:
                try:
                    client.quote(code)
                    with lock:
                        ok[0] += 1
                except Exception as exc:  # noqa: BLE001
                    errors.append(type(exc).__name__)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rate = ok[0] / wall
        print(f"rate limit: {rate:.1f} req/s of the real env's 18/s allowed = {rate / 18 * 100:.0f}%; "
              f"EGW00201 seen by the client: {client.stats.rate_limited}; errors surfaced: {len(errors)}")
    finally:
        emu.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codes", type=int, default=39, help="39 codes + the notices = 40 subscriptions")
    ap.add_argument("--day-seconds", type=float, default=390.0, help="wall seconds per emulated trading day")
    ap.add_argument("--minutes", type=int, default=30, help="emulated minutes the trader runs")
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--qcheck", type=float, default=0.5,
                    help="longest the live loop waits when no input arrives (backtrader's qcheck; any tick or "
                         "broker event wakes it at once, so latency does not depend on it)")
    ap.add_argument("--seconds", type=float, default=8.0, help="rate-limit phase duration")
    ap.add_argument("--dump", help="write every latency sample to this CSV file")
    ap.add_argument("--emulator", choices=("process", "thread"), default="process",
                    help="process: run.py emulator beside the trader, as deployed (default); thread: inside the "
                         "trader's process, sharing its interpreter lock")
    args = ap.parse_args()
    trader_bench(args)
    rate_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

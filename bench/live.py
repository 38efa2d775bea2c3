#!/usr/bin/env python3
"""The KIS adapter measured against the project's emulator, over real loopback sockets.

    .venv/bin/python bench/live.py [--codes 39] [--day-seconds 120] [--seconds 8] [--orders 20]

Prints:

1. **tick → strategy**: the emulator streams 39 codes (40 subscriptions with the notices) on an
   accelerated clock (a trading day in ``--day-seconds``); a paper trader (``KISStore``/``KISData``/
   ``KISBroker`` exactly as ``run.py paper`` builds them, 1-minute bars) records, for each bar its
   strategy receives, the wall time from the moment the tick that completed the bar arrived from
   the WebSocket (the store's callback on the ws thread; for a bar closed by the clock, the moment
   the feed saw it due) to the strategy's ``next()``: p50/p99/max. Also shown: from the moment the
   feed completed the bar (the old measure, which left out the time the tick waited in a queue).
2. **frames/s parsed** by the feed side (``KISWebSocket`` frames and trade records per second).
3. **order latency**: ``--orders`` market orders placed by the strategy during continuous trading;
   submit → Accepted and submit → Completed, p50/p99 (wall clock).
4. **rate-limit use**: four threads sharing one client call ``inquire-price`` for ``--seconds``
   against the real environment's limit (18/s) enforced by the emulator on the wall clock; prints
   the share of the allowed rate the client reached and how many EGW00201 it saw (goal: 0).
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backtrader as bt  # noqa: E402

from brokers.kis.client import Credentials, KISClient  # noqa: E402
from brokers.kis.emulator.clock import AcceleratedClock  # noqa: E402
from brokers.kis.emulator.server import Emulator  # noqa: E402
from brokers.kis.journal import Journal  # noqa: E402
from brokers.kis.ws import KISWebSocket  # noqa: E402
from configs.emulator_schema import EmulatorConfig  # noqa: E402
from configs.schema import DemoDataConfig, parse_config  # noqa: E402
from engine.live import build_live_session  # noqa: E402
from feeds.demo import generate_demo_market  # noqa: E402
from market.calendar import KST  # noqa: E402
from strategies.base import TargetStrategy  # noqa: E402

DAY = date(2025, 3, 5)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Probe(TargetStrategy):
    """Records bar latency; places market orders one at a time and times them."""

    params = (("orders", 20), ("code", None), ("out", None))

    def __init__(self):
        super().__init__()
        self.bar_latency: list[float] = []
        self.tick_latency: list[float] = []
        self.ack: list[float] = []
        self.fill: list[float] = []
        self._sent: dict[int, float] = {}

    def on_bar(self) -> None:
        now = time.perf_counter()
        for code, data in self.codes_with_bars():
            if data.bar_closed_at:
                self.bar_latency.append(now - data.bar_closed_at)
            arrived = getattr(data, "input_at", None)
            if arrived:
                self.tick_latency.append(now - arrived)
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


def trader_bench(args) -> None:
    demo = generate_demo_market(DemoDataConfig(codes=args.codes, start=date(2024, 9, 2), end=DAY, seed=5))
    start = datetime(DAY.year, DAY.month, DAY.day, 9, 0, 30, tzinfo=KST)
    cfg = EmulatorConfig.model_validate({"env": "paper", "log_requests": False, "rate_limit": {"enabled": False},
                                         "paper": {"account": {"cash": 1_000_000_000}},
                                         "clock": {"mode": "accelerated", "day_seconds": args.day_seconds}})
    clock = AcceleratedClock(start, args.day_seconds)
    emu = Emulator(cfg, bars=demo.bars, markets=demo.markets, clock=clock).start()
    tmp = Path(tempfile.mkdtemp())
    out: queue.Queue = queue.Queue()
    try:
        creds = emu.credentials("paper")
        c = Credentials.from_mapping(creds.as_dict())
        client = KISClient(c, "paper", creds.rest_url, token_cache=tmp / "t.json", wallclock=emu.now,
                           requests_per_second=1000)
        ws_box: list[KISWebSocket] = []

        def ws_factory(**callbacks):
            ws = KISWebSocket(creds.ws_url, client.approval_key, "paper", c.hts_id, wallclock=emu.now,
                              account_filter=c.account, **callbacks)
            ws_box.append(ws)
            return ws

        codes = list(demo.bars)
        app = parse_config({"name": "bench", "broker": {"mode": "paper", "kis": {"bar": "1min"}},
                            "data": {"universe": codes},
                            "strategy": {"name": "bench.live:Probe",
                                         "params": {"orders": args.orders, "code": codes[0], "out": out}},
                            "risk": {"limits": {"max_position_pct": 100}}})
        session = build_live_session(app, client=client, ws_factory=ws_factory, now=emu.now,
                                     journal=Journal(f"sqlite:///{tmp / 'j.sqlite'}", now=emu.now),
                                     credentials=c, until=start + timedelta(minutes=args.minutes))
        for data in session.cerebro.datas:
            data.p.qcheck = args.qcheck
        t0 = time.perf_counter()
        thread = threading.Thread(target=session.run, daemon=True)
        thread.start()
        probe: Probe = out.get(timeout=args.minutes * args.day_seconds / 390 * 60 + 120)
        wall = time.perf_counter() - t0
        thread.join(30)
        ws = ws_box[0]
        print(f"trader: {len(codes)} codes streaming, a trading day in {args.day_seconds:g} s, "
              f"{args.minutes} emulated minutes in {wall:.1f} s wall")
        t = probe.tick_latency
        print(f"tick -> strategy (tick arrived to next()): p50 {pct(t, .5) * 1e3:.2f} ms, p99 {pct(t, .99) * 1e3:.2f} ms, "
              f"max {max(t or [float('nan')]) * 1e3:.2f} ms over {len(t)} bars")
        print(f"bar completed -> strategy: p50 {pct(probe.bar_latency, .5) * 1e3:.2f} ms, "
              f"p99 {pct(probe.bar_latency, .99) * 1e3:.2f} ms over {len(probe.bar_latency)} bars")
        print(f"frames parsed: {ws.stats.frames / wall:,.0f} frames/s, {ws.stats.records / wall:,.0f} trade "
              f"records/s ({ws.stats.frames:,} frames, {ws.stats.records:,} records)")
        print(f"order submit -> accepted: p50 {pct(probe.ack, .5) * 1e3:.1f} ms, p99 {pct(probe.ack, .99) * 1e3:.1f} ms; "
              f"submit -> filled: p50 {pct(probe.fill, .5) * 1e3:.1f} ms, p99 {pct(probe.fill, .99) * 1e3:.1f} ms "
              f"({len(probe.fill)} orders)")
    finally:
        emu.stop()


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
    ap.add_argument("--minutes", type=int, default=20, help="emulated minutes the trader runs")
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--qcheck", type=float, default=0.5,
                    help="longest the live loop waits when no input arrives (backtrader's qcheck; any tick or "
                         "broker event wakes it at once, so latency does not depend on it)")
    ap.add_argument("--seconds", type=float, default=8.0, help="rate-limit phase duration")
    args = ap.parse_args()
    trader_bench(args)
    rate_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

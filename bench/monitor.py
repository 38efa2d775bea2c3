#!/usr/bin/env python3
"""Is the dashboard responsive with 40 subscriptions streaming?

    .venv/bin/python bench/monitor.py [--codes 39] [--day-seconds 390] [--seconds 20] [--poll-ms 500]

A paper trader (1-minute bars, ``buy_and_hold``) runs against the emulator on an accelerated
clock with 39 codes streaming (40 WebSocket registrations with the execution notices); its
dashboard is open in headless Chromium. The page records, for every update it renders, when the
trader built that state; the script prints:

* page update latency: state built on the trader's thread → rendered in the browser, p50/p99
  (includes waiting for the next poll, so about half the poll interval is the floor);
* ``/api/state`` response time measured from a second client at the same time, p50/p99;
* how far the trader's state lags the exchange clock.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from analysis.monitor import MonitorServer  # noqa: E402
from brokers.kis.client import Credentials, KISClient  # noqa: E402
from brokers.kis.emulator.clock import AcceleratedClock  # noqa: E402
from brokers.kis.emulator.server import Emulator  # noqa: E402
from brokers.kis.journal import Journal  # noqa: E402
from brokers.kis.ws import KISWebSocket  # noqa: E402
from configs.emulator_schema import EmulatorConfig  # noqa: E402
from configs.schema import DemoDataConfig, parse_config  # noqa: E402
from engine.live import build_live_session  # noqa: E402
from engine.monitoring import LiveSource  # noqa: E402
from feeds.demo import generate_demo_market  # noqa: E402
from market.calendar import KST  # noqa: E402

DAY = date(2025, 3, 5)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codes", type=int, default=39)
    ap.add_argument("--day-seconds", type=float, default=390.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--poll-ms", type=int, default=500)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium): nothing measured")
        return 1
    from playwright.sync_api import sync_playwright

    demo = generate_demo_market(DemoDataConfig(codes=args.codes, start=date(2024, 9, 2), end=DAY, seed=5))
    start = datetime(DAY.year, DAY.month, DAY.day, 9, 0, 30, tzinfo=KST)
    emu = Emulator(EmulatorConfig.model_validate({"env": "paper", "log_requests": False,
                                                  "rate_limit": {"enabled": False},
                                                  "paper": {"account": {"cash": 1_000_000_000}}}),
                   bars=demo.bars, markets=demo.markets, clock=AcceleratedClock(start, args.day_seconds)).start()
    tmp = Path(tempfile.mkdtemp())
    try:
        creds = emu.credentials("paper")
        c = Credentials.from_mapping(creds.as_dict())
        client = KISClient(c, "paper", creds.rest_url, token_cache=tmp / "t.json", wallclock=emu.now,
                           requests_per_second=1000)

        def ws_factory(**cb):
            return KISWebSocket(creds.ws_url, client.approval_key, "paper", c.hts_id, wallclock=emu.now,
                                account_filter=c.account, **cb)

        codes = list(demo.bars)
        cfg = parse_config({"name": "bench-monitor", "broker": {"mode": "paper", "kis": {"bar": "1min"}},
                            "data": {"universe": codes}, "strategy": {"name": "buy_and_hold"},
                            "risk": {"limits": {"max_position_pct": 100}}})
        session = build_live_session(cfg, client=client, ws_factory=ws_factory, now=emu.now,
                                     journal=Journal(f"sqlite:///{tmp / 'j.sqlite'}", now=emu.now), credentials=c,
                                     until=start + timedelta(hours=6))
        for data in session.cerebro.datas:
            data.p.qcheck = 0.01
        source = LiveSource(session, None)
        server = MonitorServer(source, poll_ms=args.poll_ms).start()
        thread = threading.Thread(target=session.run, daemon=True)
        thread.start()
        api_ms: list[float] = []
        lags: list[float] = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                t = time.perf_counter()
                st = requests.get(server.base_url + "/api/state", params={"token": server.token}, timeout=10).json()
                api_ms.append((time.perf_counter() - t) * 1000)
                if st.get("clock"):
                    lags.append((emu.now() - datetime.fromisoformat(st["clock"])).total_seconds())
                stop.wait(0.2)

        side = threading.Thread(target=hammer, daemon=True)
        side.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                         "--disable-background-networking"])
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_timeout(args.seconds * 1000)   # the measurement window (the page polls on its own)
            renders = page.evaluate("window.__renders")
            browser.close()
        stop.set()
        side.join(5)
        session.stop()
        thread.join(30)
        server.stop()
        lat = [r["rendered"] - r["built"] for r in renders if r.get("built")]
        ws = session.store.ws
        print(f"{len(codes)} codes streaming ({len(codes) + 1} registrations), a trading day in "
              f"{args.day_seconds:g} s, {args.seconds:g} s measured, page polling every {args.poll_ms} ms")
        print(f"frames received by the trader: {ws.stats.frames:,} ({ws.stats.frames / args.seconds:,.0f}/s)")
        print(f"page updates: {len(lat)}; built -> rendered p50 {pct(lat, .5):.0f} ms, p99 {pct(lat, .99):.0f} ms "
              f"(state rebuilt every 200 ms, page polls every {args.poll_ms} ms)")
        print(f"/api/state response: p50 {pct(api_ms, .5):.1f} ms, p99 {pct(api_ms, .99):.1f} ms over {len(api_ms)} calls")
        if lags:
            speed = (7 * 3600 + 10 * 60) / args.day_seconds   # emulated seconds per wall second (08:30-15:40 window)
            med = statistics.median(lags)
            print(f"state vs exchange clock: median lag {med:.1f} s emulated = {med / speed * 1000:.0f} ms wall")
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

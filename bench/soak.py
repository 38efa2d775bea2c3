#!/usr/bin/env python3
"""Seeded randomized soak of the KIS broker: chaos orders, every fault kind, kill -9 restarts.

    .venv/bin/python bench/soak.py --runs 200 --seed 1 [--workers 2] [--keep]

Each run: an in-process emulator (paper, stepped clock, 5 demo codes, some holdings) and a trader
started exactly as a user starts one — ``run.py paper`` with a config pointing at the emulator —
running the chaos strategy (``bench/chaos.py``: random market and limit buys and sells, cancels and
revises). The driver steps the market through the day a few minutes at a time and, at random
steps, injects a fault: WebSocket drops, POST timeouts before and after acceptance, 5xx bursts and
5xx/unreadable/reset replies after acceptance (orders, revises, cancels), failing look-ups, rate
storms, token expiry, duplicate and reordered notices, notices before replies, slow replies, the
market moving during a paged read, and an order from another app. It kills the trader (-9) one to
three times, sometimes while a POST is on the wire, and sometimes restarts it only the next morning.
After the close it stops the trader (Ctrl-C) and compares the emulator's account with the journal
and the book:

* every order of ours at KIS is claimed by exactly one intent (none orphaned, none claimed twice);
* every order's fills are journaled exactly once (KIS's filled quantity = the journal's);
* the positions agree (KIS, minus the other app's fills = start + journal = the trader's final book);
* nothing is left unresolved (no intent still UNKNOWN/SENDING after the close).

Prints one line per run and the totals; exits 1 if any run broke a rule. ``tests/live/test_soak.py``
runs a few seeds in the suite.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from brokers.kis.emulator.cli import write_env_file  # noqa: E402
from brokers.kis.emulator.clock import SteppedClock  # noqa: E402
from brokers.kis.emulator.matching import OrderError  # noqa: E402
from brokers.kis.emulator.server import Emulator  # noqa: E402
from brokers.kis.journal import Journal  # noqa: E402
from brokers.kis.protocol import BUY  # noqa: E402
from configs.emulator_schema import EmulatorConfig  # noqa: E402
from configs.schema import DemoDataConfig  # noqa: E402
from feeds.demo import generate_demo_market  # noqa: E402
from market.calendar import KST, krx_calendar  # noqa: E402
from market.sessions import schedule  # noqa: E402

DAY = date(2025, 3, 5)
NEXT = krx_calendar().next_trading_day(DAY)
WAIT = 90.0
HOLDINGS = 300
OPEN_STATES = {"QUEUED", "SENDING", "UNKNOWN", "ACCEPTED", "PARTIAL", "CANCELLING", "REVISING", "ARMED"}


# ---------------------------------------------------------------- the trader process
class Trader:
    """``run.py paper`` in a child process; its ``SOAK`` status lines are read from a pipe."""

    def __init__(self, config: Path, until: datetime, log: Path) -> None:
        self.log = open(log, "a", encoding="utf-8")
        self.p = subprocess.Popen([sys.executable, "run.py", "paper", "--config", str(config), "--until",
                                   until.replace(tzinfo=None).isoformat(), "--out", str(config.parent / "out")],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        self.lines: "queue.Queue[dict | None]" = queue.Queue()
        self.last: dict = {}
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in iter(self.p.stdout.readline, ""):
            if line.startswith("SOAK "):
                self.lines.put(json.loads(line[5:]))
            else:
                self.log.write(line)
        self.lines.put(None)

    def read(self, until, what: str) -> dict:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                st = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"timed out waiting for {what}") from None
            if st is None:
                raise RuntimeError(f"the trader ended while waiting for {what} (exit {self.p.wait()})")
            self.last = st
            if until(st):
                return st

    def settle(self, emu: Emulator) -> dict:
        for _ in range(40):
            # a ping reaches only a connected session: after a drop, wait (turn by turn) for the reconnect
            if emu.status()["ws"]["paper"]["sessions"] == 0:
                self.read(lambda s: emu.status()["ws"]["paper"]["sessions"] > 0, "a WebSocket session")
            pings = self.last.get("pings", 0)
            emu.ping_websockets(wait_echo=WAIT)
            events = self.last.get("journal_events")
            target = emu.now().isoformat()
            # a turn that began after the echo has applied everything sent before the ping, on a clock
            # (the emulator's, cached a few ms by the trader) that has reached this step
            st = self.read(lambda s: s["done_pings"] > pings and s["idle"] and s["now"] >= target, "the ping barrier")
            if st["journal_events"] == events:
                return st
        raise RuntimeError("the trader never settled")

    def kill(self) -> None:
        self.p.kill()
        self.p.wait(WAIT)
        self.log.close()

    def interrupt(self) -> int:
        self.p.send_signal(signal.SIGINT)
        code = self.p.wait(WAIT)
        self.log.close()
        return code


# ---------------------------------------------------------------- faults
def inject(emu: Emulator, rng: random.Random, codes: list[str], counts: dict[str, int]) -> None:
    f = emu.faults
    orders = rng.choice(["order-cash", "order-cash", "order-rvsecncl"])
    kind = rng.choice(["ws_drop", "timeout_after", "timeout_before", "http500_burst", "http500_after", "garbage_after",
                       "reset_after", "lookups_fail", "rate_storm", "token_expiry", "duplicates", "reorder",
                       "notice_first", "slow_reply", "paged_read_moves", "hts_order"])
    if kind == "ws_drop":
        emu.drop_websockets()
    elif kind == "timeout_after":
        f.timeout(path=orders, after_accept=True)
    elif kind == "timeout_before":
        f.timeout(path=orders)
    elif kind == "http500_burst":
        f.http500(count=rng.randint(2, 5), path=rng.choice(["", orders, "inquire-daily-ccld", "inquire-balance"]))
    elif kind == "http500_after":
        f.http500(path=orders, after_accept=True)
    elif kind == "garbage_after":
        f.garbage(path=orders, after_accept=True)
    elif kind == "reset_after":
        f.reset(path=orders, after_accept=True)
    elif kind == "lookups_fail":
        f.http500(count=rng.randint(3, 10), path="inquire-daily-ccld")
    elif kind == "rate_storm":
        f.rate_storm(count=rng.randint(2, 6))
    elif kind == "token_expiry":
        emu.expire_tokens()
    elif kind == "duplicates":
        f.duplicate_notices(rng.randint(2, 8))
    elif kind == "reorder":
        f.reorder_notices(rng.randint(2, 8))
    elif kind == "notice_first":
        f.notice_first(count=rng.randint(1, 3))
    elif kind == "slow_reply":
        f.delay(rng.uniform(0.2, 1.5), path=orders, count=rng.randint(1, 3))
    elif kind == "paged_read_moves":
        f.advance_clock(rng.choice([20, 60]), path="inquire-daily-ccld", skip=rng.randint(0, 2))
    elif kind == "hts_order":   # rests at the lower limit: its notices and rows are foreign, the positions untouched
        code = rng.choice(codes)
        with emu.engine.lock:
            lower = emu.engine.quote(code).band.lower
        try:
            emu.hts_order(code, "buy", 7, price=lower)
        except OrderError:           # the account has no buying power left for it: no fault this time
            return
    counts[kind] = counts.get(kind, 0) + 1


# ---------------------------------------------------------------- one run
@dataclass
class RunResult:
    seed: int
    orders: int = 0
    fills: int = 0
    faults: int = 0
    restarts: int = 0
    next_morning: bool = False
    unclaimed: list[str] = field(default_factory=list)       # orders at KIS no intent claims
    claimed_twice: list[str] = field(default_factory=list)
    fill_errors: list[str] = field(default_factory=list)     # lost or double-counted fills
    position_errors: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    cash_diff: float = 0.0
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.unclaimed or self.claimed_twice or self.fill_errors or self.position_errors
                    or self.unresolved or self.error)


def emulator_for(seed: int, demo) -> Emulator:
    rng = random.Random(seed)
    holdings = [{"code": c, "qty": HOLDINGS, "avg_price": int(demo.bars[c]["close"].iloc[-30])} for c in demo.bars]
    cfg = EmulatorConfig.model_validate({
        "env": "paper", "log_requests": False,
        "paper": {"account": {"cano": "50000001", "hts_id": "soak", "cash": 200_000_000, "holdings": holdings},
                  "order_window": "order_entry"},
        "rate_limit": {"enabled": False},
        "rest": {"hold_timeout_s": 1.5},
        "matching": {"participation": rng.choice([0.002, 0.005, 0.02]), "limit_fill": "touch"},
        "ws": {"ping_interval_s": None}})
    start = datetime(DAY.year, DAY.month, DAY.day, 8, 50, tzinfo=KST)
    return Emulator(cfg, bars=demo.bars, markets=demo.markets, clock=SteppedClock(start)).start()


def run_one(seed: int, workdir: Path, demo=None) -> RunResult:
    t0 = time.monotonic()
    demo = demo or market()
    rng = random.Random(seed)
    res = RunResult(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    emu = emulator_for(seed, demo)
    trader: Trader | None = None
    counts: dict[str, int] = {}
    try:
        codes = list(demo.bars)
        env_file = workdir / "kis.env"
        write_env_file(emu, env_file)
        two_days = rng.random() < 0.35
        res.next_morning = two_days
        end_day = NEXT if two_days else DAY
        until = schedule(end_day).close + timedelta(minutes=10)
        trade_until = f"{rng.randint(10, 12):02d}:{rng.choice(['00', '30'])}"   # then resting orders only
        config = workdir / "paper.yaml"
        config.write_text(yaml.safe_dump({
            "name": f"soak-{seed}",
            "broker": {"mode": "paper", "kis": {
                "rest_url": emu.rest_url(), "ws_url": emu.ws_url(), "clock": "emulator", "admin_url": emu.admin_url,
                "env_file": str(env_file), "token_cache": str(workdir / "token.json"),
                "journal_url": f"sqlite:///{workdir / 'journal.sqlite'}", "bar": "1min", "order_window": "extended",
                "requests_per_second": 50, "reconcile_every_s": 20, "order_timeout_s": 1.0,
                "unknown_order_timeout_s": 60}},
            "data": {"universe": codes},
            "strategy": {"name": "bench.chaos:Chaos", "params": {"seed": seed, "until": trade_until}},
            "risk": {"limits": {"max_position_pct": 100, "max_exposure_pct": 100}}}))
        log = workdir / "trader.log"

        def start() -> Trader:
            t = Trader(config, until, log)
            t.read(lambda s: True, "the trader's first turn")
            return t

        sched = schedule(DAY)
        emu.advance_to(sched.open + timedelta(minutes=5))   # every feed has backfilled bars (see README)
        trader = start()
        trader.settle(emu)
        # kill steps early enough that every run reaches them: the shortest day (trading until 10:00, a
        # two-day run's first day ending at noon) still has 7 steps, so every run restarts 1-3 times
        # (two-day runs once more, the next morning)
        kills = sorted(rng.sample(range(2, 7), rng.randint(1, 3)))
        step = 0
        for day in ([DAY, NEXT] if two_days else [DAY]):
            s = schedule(day)
            if day != DAY:                                   # the crash in the afternoon: restart next morning
                trader.kill()
                emu.advance_to(s.open + timedelta(minutes=5))
                res.restarts += 1
                trader = start()
                trader.settle(emu)
            # day one of a two-day run ends in the afternoon with the crash; the last day trades to the close
            end = sched.open + timedelta(hours=rng.randint(3, 5)) if (two_days and day == DAY) \
                else s.close + timedelta(minutes=1)
            while emu.now() < end:
                step += 1
                if rng.random() < 0.45:
                    inject(emu, rng, codes, counts)
                if step in kills:
                    if rng.random() < 0.4:                   # kill while an order POST is slow on the wire
                        emu.faults.delay(5.0, path=rng.choice(["order-cash", "order-rvsecncl"]))
                    emu.advance(timedelta(minutes=rng.randint(1, 3)))
                    trader.kill()
                    res.restarts += 1
                    emu.advance(timedelta(minutes=rng.randint(0, 3)))
                    emu.faults.clear()
                    trader = start()
                else:
                    trading = emu.now().strftime("%H:%M") < trade_until
                    jump = timedelta(minutes=rng.randint(2, 12) if trading else rng.randint(30, 90))
                    emu.advance(min(jump, max(end - emu.now(), timedelta(seconds=1))))
                trader.settle(emu)
        emu.faults.clear()
        final = schedule(end_day)
        for after in (2, 3):                                 # DAY orders expire, the close is confirmed
            emu.advance_to(max(emu.now(), final.close + timedelta(minutes=after)))
            trader.settle(emu)
        trader.interrupt()   # (its exit code also reflects the report, which is not under test here)
        trader = None
        compare(emu, workdir, res, [DAY, NEXT] if two_days else [DAY])
    except Exception as exc:  # noqa: BLE001 - reported per run
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        if trader is not None:
            try:
                trader.kill()
            except Exception:  # noqa: BLE001
                pass
        emu.stop()
    res.faults = sum(counts.values())
    res.seconds = time.monotonic() - t0
    return res


def compare(emu: Emulator, workdir: Path, res: RunResult, days: list[date]) -> None:
    journal = Journal(f"sqlite:///{workdir / 'journal.sqlite'}")
    intents = [i for d in days for i in journal.intents_for_day(d)]
    fills = journal.all_fills()
    booked: dict[str, int] = {}
    for f in fills:
        booked[f["intent_id"]] = booked.get(f["intent_id"], 0) + int(f["qty"])
    acct = emu.account("paper")
    with emu.engine.lock:
        orders = sorted(acct.orders.values(), key=lambda o: o.no)
        positions = {c: p.qty for c, p in acct.positions.items()}
        cash = acct.cash_all()
    hts_shares: dict[str, int] = {}
    hts_cash = 0
    for o in orders:
        if o.kind == "cancel":
            continue
        if o.source != "api":
            sign = 1 if o.side == BUY else -1
            hts_shares[o.code] = hts_shares.get(o.code, 0) + sign * o.filled_qty
            hts_cash += -sign * o.filled_value - o.fees
            continue
        res.orders += 1
        res.fills += o.filled_qty
        claims = [i for i in intents if i.odno and int(i.odno) == o.no]
        if not claims:
            res.unclaimed.append(f"{o.no} {o.kind} {o.code} filled {o.filled_qty}")
            continue
        if len(claims) > 1:
            res.claimed_twice.append(f"{o.no} by {len(claims)}")
        got = booked.get(claims[0].id, 0)
        if got != o.filled_qty:
            res.fill_errors.append(f"{o.no}: KIS filled {o.filled_qty}, journal {got}")
    for i in intents:
        if i.state in OPEN_STATES:
            res.unresolved.append(f"{i.code} {i.side} {i.qty} {i.state} {i.reason}")
    stops = journal.events(kinds=["stop"])
    book = stops[-1]["payload"].get("local", {}) if stops else None
    book_cash = stops[-1]["payload"].get("cash") if stops else None
    for code in sorted(set(positions) | set(hts_shares) | {f["code"] for f in fills}):
        ours_at_kis = positions.get(code, 0) - hts_shares.get(code, 0)
        journaled = HOLDINGS + sum(f["qty"] if f["side"] == "buy" else -f["qty"] for f in fills if f["code"] == code)
        in_book = (book or {}).get(code, 0)
        if not ours_at_kis == journaled == in_book:
            res.position_errors.append(f"{code}: KIS (ours) {ours_at_kis}, journal {journaled}, book {in_book}")
    if book is None:
        res.position_errors.append("no final book in the journal (the trader did not stop cleanly)")
    if book_cash is not None:
        res.cash_diff = float(book_cash) - (cash - hts_cash)
    journal.close()


_MARKET = None


def market():
    global _MARKET
    if _MARKET is None:
        _MARKET = generate_demo_market(DemoDataConfig(codes=5, start=date(2024, 9, 2), end=NEXT, seed=3))
    return _MARKET


def describe(r: RunResult) -> str:
    flags = []
    for name in ("unclaimed", "claimed_twice", "fill_errors", "position_errors", "unresolved"):
        v = getattr(r, name)
        if v:
            flags.append(f"{name}={v[:3]}{'…' if len(v) > 3 else ''}")
    if r.error:
        flags.append(f"error={r.error}")
    return (f"seed {r.seed}: {'ok ' if r.ok else 'FAIL'} {r.orders} orders, {r.fills} shares filled, {r.faults} faults, "
            f"{r.restarts} restarts{' (next morning)' if r.next_morning else ''}, cash diff {r.cash_diff:,.0f} KRW, "
            f"{r.seconds:.0f}s {' '.join(flags)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="runs in parallel (each has its own emulator)")
    ap.add_argument("--keep", action="store_true", help="keep each run's folder (journal, trader log)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="soak-"))
    market()
    results: list[RunResult] = []

    def one(seed: int) -> RunResult:
        r = run_one(seed, base / f"run-{seed}")
        print(describe(r), flush=True)
        if r.ok and not args.keep:
            shutil.rmtree(base / f"run-{seed}", ignore_errors=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(one, range(args.seed, args.seed + args.runs)))
    bad = [r for r in results if not r.ok]
    tot = lambda name: sum(len(getattr(r, name)) for r in results)  # noqa: E731
    print(f"\n{len(results)} runs: {sum(r.orders for r in results):,} orders at KIS, "
          f"{sum(r.fills for r in results):,} shares filled, {sum(r.faults for r in results)} faults, "
          f"{sum(r.restarts for r in results)} restarts ({sum(r.next_morning for r in results)} next-morning)")
    print(f"orders without exactly one intent: {tot('unclaimed') + tot('claimed_twice')}; lost or double-counted "
          f"fills: {tot('fill_errors')}; position mismatches: {tot('position_errors')}; unresolved intents: "
          f"{tot('unresolved')}; runs with errors: {sum(bool(r.error) for r in results)}")
    diffs = [abs(r.cash_diff) for r in results]
    print(f"cash, book vs KIS: max |diff| {max(diffs or [0]):,.0f} KRW (commission rounding on merged bookings)")
    if bad:
        print(f"failed seeds: {[r.seed for r in bad]} (folders kept under {base})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Drive a paper-trading session against the in-process KIS emulator on a stepped clock.

The trader runs exactly as ``run.py paper`` runs it (``engine.live.build_live_session``: KISStore,
KISBroker, KISData, the strategy, the RunRecorder), in a background thread, over real sockets.
The test owns time: it steps the emulator's clock, then ``settle()`` waits — on conditions, never
on sleeps — until the trader has received and applied everything the emulator sent:

1. a PINGPONG barrier: the emulator pings every session; frames are ordered on the socket, so once
   the trader has echoed the ping, every tick and notice sent before it has arrived;
2. a broker turn that began after the echo has completed (it drained all of it) and the store is
   idle (no tick, notice or reply waiting, no request on its way, no look-up due);
3. repeat until a round brings nothing new (a reply can cause notices, notices can cause orders).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from brokers.kis.client import Credentials, KISClient
from brokers.kis.emulator.clock import ClockAsWall, SteppedClock
from brokers.kis.emulator.server import Emulator
from brokers.kis.journal import Journal
from brokers.kis.ws import KISWebSocket
from configs.emulator_schema import EmulatorConfig
from configs.schema import AppConfig, parse_config
from engine.live import LiveSession, build_live_session
from market.calendar import KST, krx_calendar
from market.sessions import schedule

WAIT = 30.0  # seconds: a failure guard only; a healthy step settles in milliseconds
RUNNING: list["Trader"] = []   # traders still running; tests/live/conftest.py closes them after each test


def emulator_config(**overrides: Any) -> EmulatorConfig:
    """Paper env tuned for equivalence with the simulator (each choice explained)."""
    base: dict[str, Any] = {
        "env": "paper",
        "log_requests": False,
        "paper": {"account": {"cano": "50000001", "hts_id": "emupaper", "cash": 50_000_000},
                  # orders from 08:30 meet the 09:00 opening auction: a market order placed after
                  # yesterday's close fills at today's open, as in the backtest
                  "order_window": "order_entry"},
        # REST budget: the test steps time, and KIS's 1 call/s paper limit would only slow it down
        "rate_limit": {"enabled": False},
        # a print at the limit fills a resting limit, as the simulator's bar-low rule does
        "matching": {"limit_fill": "touch", "participation": 1.0},
        "ws": {"ping_interval_s": None},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return EmulatorConfig.model_validate(base)


def app_config(strategy: dict[str, Any], codes: list[str], **sections: Any) -> AppConfig:
    raw = {"name": "paper-test", "broker": {"mode": "paper", "cash": 50_000_000,
                                            "kis": {"bar": "daily", "order_window": "extended",
                                                    "reconcile_every_s": 3600}},
           "data": {"universe": codes}, "strategy": strategy}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_config(raw)


@dataclass
class Trader:
    emu: Emulator
    session: LiveSession
    thread: threading.Thread
    journal: Journal
    error: list[BaseException]

    @property
    def store(self):
        return self.session.store

    @property
    def broker(self):
        return self.session.broker

    # ------------------------------------------------------------------ time
    def settle(self, rounds: int = 40) -> None:
        store = self.store
        for _ in range(rounds):
            self._check_alive()
            before = len(self.journal.events())
            pings = store.pings
            self.emu.ping_websockets(wait_echo=WAIT)
            assert store.wait_for(lambda: store.pings > pings or not self.thread.is_alive(), WAIT), \
                "the trader never echoed the PINGPONG barrier"
            # a broker turn that began after the echo has applied everything sent before the ping
            assert store.wait_for(lambda: (store.done_pings > pings and store.idle()) or not self.thread.is_alive(),
                                  WAIT), "the trader did not drain its queues"
            if len(self.journal.events()) == before:
                return
        raise AssertionError("the trader kept busy for too many rounds")

    def step_to(self, moment: datetime) -> None:
        self.emu.advance_to(moment)
        self.settle()

    def run_day(self, day, steps: int = 4) -> None:
        """Order entry, open auction, the session in a few steps, the close and a bit after."""
        sched = schedule(day)
        self.step_to(sched.order_entry + timedelta(minutes=1))
        self.step_to(sched.open + timedelta(seconds=1))
        span = (sched.close - sched.open) / steps
        for i in range(1, steps):
            self.step_to(sched.open + span * i)
        self.step_to(sched.close + timedelta(minutes=1, seconds=1))  # daily bar closes, strategy decides
        self.step_to(sched.close + timedelta(minutes=2))             # DAY orders confirmed and expired

    def close(self) -> None:
        """Stop the session (if still running) and wait for its thread."""
        if self.thread.is_alive():
            self.session.stop()
            self.thread.join(WAIT)
        self.journal.close()          # its pooled connections (a PostgreSQL server counts them); reads still work
        if self in RUNNING:
            RUNNING.remove(self)

    def finish(self) -> None:
        self.thread.join(WAIT)
        self._check_alive(allow_stopped=True)
        assert not self.thread.is_alive(), "the session did not end at --until"

    def _check_alive(self, allow_stopped: bool = False) -> None:
        if self.error:
            raise AssertionError(f"the trader thread failed: {self.error[0]!r}") from self.error[0]
        if not allow_stopped and not self.thread.is_alive():
            raise AssertionError("the trader thread ended early")


def start_trader(emu: Emulator, cfg: AppConfig, tmp_path: Path, until: datetime,
                 journal_url: str | None = None, qcheck: float = 0.02, **client_kw: Any) -> Trader:
    creds = emu.credentials("paper")
    c = Credentials.from_mapping(creds.as_dict())
    client = KISClient(c, "paper", creds.rest_url, token_cache=tmp_path / "token.json", wallclock=emu.now,
                       **{"requests_per_second": 1000, **client_kw})

    def ws_factory(**callbacks):
        return KISWebSocket(creds.ws_url, client.approval_key, "paper", creds.hts_id, wallclock=emu.now,
                            account_filter=c.account, backoff=(0.05, 0.2), **callbacks)

    journal = Journal(journal_url or f"sqlite:///{tmp_path / 'journal.sqlite'}", now=emu.now)
    session = build_live_session(cfg, client=client, ws_factory=ws_factory, now=emu.now, journal=journal,
                                 credentials=c, until=until)
    for data in session.cerebro.datas:
        data.p.qcheck = qcheck
        data.p.window = 100_000      # keep the whole history: indicators equal the backtest's
    error: list[BaseException] = []

    def target() -> None:
        try:
            session.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test through Trader.error
            error.append(exc)

    thread = threading.Thread(target=target, name="trader", daemon=True)
    thread.start()
    trader = Trader(emu, session, thread, journal, error)
    RUNNING.append(trader)
    assert session.store.connected.wait(WAIT) or error, "the WebSocket never connected"
    trader._check_alive()
    return trader


def make_emulator(bars: dict[str, pd.DataFrame], markets: dict[str, Any], start: datetime,
                  **overrides: Any) -> Emulator:
    clock = SteppedClock(start)
    # The trader's clients run on emu.now (their "wall clock" is the stepped market), so the gateway's
    # token clock follows the same timeline; with the system wall clock a market stepped across days
    # would have the client re-issue tokens within the real minute (EGW00133, a 61 s wait).
    emu = Emulator(emulator_config(**overrides), bars=bars, markets=markets, clock=clock,
                   wall_clock=ClockAsWall(clock))
    return emu.start()


def trading_days(first, count: int) -> list:
    days, d = [], first
    cal = krx_calendar()
    while len(days) < count:
        if cal.is_trading_day(d):
            days.append(d)
        d += timedelta(days=1)
    return days


def at(day, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST)


class Scripted:
    """A trader running ``scripted.Commands`` on 1-minute bars: ``do(fn)`` runs ``fn(strategy)`` on
    cerebro's thread at the next bar and returns its result."""

    def __init__(self, trader: Trader, commands, results, day) -> None:
        self.trader, self.commands, self.results, self.day = trader, commands, results, day
        self.minute = schedule(day).open + timedelta(minutes=1)

    @property
    def strategy(self):
        return self.trader.session.cerebro.runningstrats[0]

    def tick(self, minutes: int = 1) -> None:
        self.minute += timedelta(minutes=minutes)
        self.trader.step_to(self.minute)

    def skip(self, minutes: int) -> None:
        """Move the market on without waiting for the trader (it may be disconnected)."""
        self.minute += timedelta(minutes=minutes)
        self.trader.emu.advance_to(self.minute)

    def do(self, fn):
        import queue as _q
        self.commands.put(fn)
        self.tick()
        try:
            result = self.results.get(timeout=WAIT)
        except _q.Empty:
            raise AssertionError("the command never ran (no bar?)") from None
        if isinstance(result, BaseException):
            raise result
        self.trader.settle()
        return result


def start_scripted(emu: Emulator, tmp_path: Path, codes: list[str], day, *, kis: dict[str, Any] | None = None,
                   risk: dict[str, Any] | None = None, journal_url: str | None = None, **client_kw: Any) -> Scripted:
    import queue as _q

    commands, results = _q.Queue(), _q.Queue()
    cfg = app_config({"name": "scripted:Commands", "params": {"commands": commands, "results": results}}, codes,
                     broker={"mode": "paper", "cash": 50_000_000,
                             "kis": {"bar": "1min", "order_window": "extended", "reconcile_every_s": 3600,
                                     **(kis or {})}},
                     risk=risk or {"limits": {"max_position_pct": 100, "max_exposure_pct": 100}})
    trader = start_trader(emu, cfg, tmp_path, until=schedule(day).close + timedelta(minutes=5), journal_url=journal_url,
                          **client_kw)
    s = Scripted(trader, commands, results, day)
    trader.step_to(s.minute)
    return s

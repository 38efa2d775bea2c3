"""Fixtures for the KIS transport tests: an in-process emulator on real sockets, virtual time, helpers.

Why virtual time: the client's waits (rate-limit pacing, backoff, the one-token-per-minute rule)
all go through injected ``clock``/``sleep``/``wallclock``. ``VirtualTime.sleep`` returns at once and
steps the emulator's stepped clock by the same amount, so client and server agree on time (the
emulator's token bucket refills, token throttles expire) while the test never really sleeps.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import pytest
import requests

from brokers.kis import ratelimit, tokencache
from brokers.kis.client import Credentials, KISClient
from brokers.kis.ws import KISWebSocket
from brokers.kis.emulator.clock import ClockAsWall, SteppedClock
from brokers.kis.emulator.server import Emulator
from configs.emulator_schema import EmulatorConfig
from market.calendar import KST, krx_calendar

START = datetime(2025, 6, 2, 10, 0, tzinfo=KST)
"""A Monday and a KRX trading day; the data's last day (2025-06-03 is a holiday)."""
MAIN = "005930"
SECOND = "000660"
HOLDING_CODES = [f"9{i:05d}" for i in range(1, 26)]
"""25 small holdings on paper: more than one 20-row balance page."""
NAMES = {MAIN: "삼성전자", SECOND: "SK하이닉스", **{c: f"종목{c}" for c in HOLDING_CODES}}


def _frame(days: list[date], base: int, spread: int, volume: int) -> pd.DataFrame:
    rows = []
    p = base
    for i, d in enumerate(days):
        rows.append((pd.Timestamp(d), p, p + spread, p - spread, p + spread // 3, volume + i))
        p += spread // 5 if i % 3 else -(spread // 5)
    f = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"]).set_index("date")
    return f.astype("int64")


@pytest.fixture(scope="session")
def market_bars() -> dict[str, pd.DataFrame]:
    cal = krx_calendar()
    days = [d.date() for d in pd.bdate_range("2024-09-02", START.date()) if cal.is_trading_day(d.date())]
    bars = {MAIN: _frame(days, 70_000, 1_500, 600_000), SECOND: _frame(days, 180_000, 4_000, 200_000)}
    for k, c in enumerate(HOLDING_CODES):
        bars[c] = _frame(days[-30:], 10_000 + 100 * k, 200, 50_000)
    return bars


def base_config() -> dict[str, Any]:
    holdings_paper = [{"code": c, "qty": 10 + i, "avg_price": 9_000} for i, c in enumerate(HOLDING_CODES)]
    holdings_paper.append({"code": MAIN, "qty": 50, "avg_price": 65_000})
    return {
        "env": "paper", "serve_both": True, "log_requests": True,
        "paper": {"account": {"cano": "50000001", "hts_id": "emupaper", "cash": 100_000_000,
                              "holdings": holdings_paper}},
        "real": {"account": {"cano": "63000001", "hts_id": "emureal", "cash": 100_000_000,
                             "holdings": [{"code": MAIN, "qty": 50, "avg_price": 65_000},
                                          {"code": SECOND, "qty": 5, "avg_price": 170_000}]}},
        "rest": {"pad_msg1": True, "hold_timeout_s": 3.0},
        "ws": {"ping_interval_s": None},
        "matching": {"participation": 0.05},
        # The client paces and backs off in virtual time (VirtualTime.sleep steps the emulator), so the
        # emulator's buckets must refill on the emulated clock too, not on wall seconds.
        "rate_limit": {"time_base": "clock"},
    }


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


@pytest.fixture(autouse=True)
def _isolated_registries() -> Iterator[None]:
    ratelimit.reset_registry()
    tokencache.clear_memory()
    yield
    ratelimit.reset_registry()
    tokencache.clear_memory()


@pytest.fixture
def make_emulator(market_bars: dict[str, pd.DataFrame]) -> Iterator[Callable[..., Emulator]]:
    made: list[Emulator] = []

    def make(**overrides: Any) -> Emulator:
        cfg = EmulatorConfig.model_validate(_merge(base_config(), overrides))
        clock = SteppedClock(START)
        # The client under test lives in VirtualTime, whose sleeps step this clock: one timeline for the
        # client's wall clock, the gateway's token rules and the market (see ClockAsWall).
        emu = Emulator(cfg, bars=market_bars, names=NAMES, clock=clock, wall_clock=ClockAsWall(clock))
        emu.start()
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.stop()


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


class VirtualTime:
    """Monotonic + sleep + wall clock in virtual time, tied to the emulator's stepped clock."""

    def __init__(self, emu: Emulator | None = None) -> None:
        self.emu = emu
        self.t = 1_000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        s = max(0.0, float(seconds))
        with self._lock:
            self.sleeps.append(s)
            self.t += s
        if self.emu is not None and s > 0:
            self.emu.advance(timedelta(seconds=s))

    def wallclock(self) -> datetime:
        if self.emu is not None:
            return self.emu.now()
        return START + timedelta(seconds=self.t - 1_000.0)


@pytest.fixture
def vt(emu: Emulator) -> VirtualTime:
    return VirtualTime(emu)


def creds_of(emu: Emulator, env: str, index: int = 0) -> Credentials:
    return Credentials.from_mapping(emu.credentials(env, index).as_dict())


def make_client(emu: Emulator, env: str, vt: VirtualTime, *, index: int = 0, **kw: Any) -> KISClient:
    c = emu.credentials(env, index)
    kw.setdefault("token_cache", None)
    return KISClient(Credentials.from_mapping(c.as_dict()), env, c.rest_url, clock=vt.monotonic,
                     wallclock=vt.wallclock, sleep=vt.sleep, **kw)


@pytest.fixture
def client_factory(emu: Emulator, vt: VirtualTime, tmp_path: Path) -> Callable[..., KISClient]:
    def make(env: str = "paper", **kw: Any) -> KISClient:
        kw.setdefault("token_cache", tmp_path / f"token-{env}.json")
        return make_client(emu, env, vt, **kw)

    return make


class EmuLog(logging.Handler):
    """The emulator's request log (one line per request: env, method, path, TR id, status, msg_cd).

    The emulator logs a request only *after* writing its reply, so a client that already has its
    answer may look before the line exists. ``wait`` blocks on a condition until enough lines
    arrived; ``settled`` first sends a marker request and waits for *its* line, so every request
    answered before it has been logged too — then exact counts are safe.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.lines.append(record.getMessage())
            self.cond.notify_all()

    def _with(self, needle: str) -> list[str]:
        return [line for line in self.lines if needle in line]

    def wait(self, needle: str, n: int = 1, timeout: float = 5.0) -> list[str]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self._with(needle)) >= n, timeout):
                raise AssertionError(f"emulator logged {len(self._with(needle))} of {n} lines with {needle!r}")
            return self._with(needle)

    def settled(self, emu: Emulator, needle: str) -> list[str]:
        marker = f"/__settle__/{uuid.uuid4().hex}"
        requests.get(emu.rest_url() + marker, timeout=5)
        self.wait(marker)
        with self.cond:
            return self._with(needle)


@pytest.fixture
def emu_log() -> Iterator[EmuLog]:
    logger = logging.getLogger("krx_trader.emulator")
    handler = EmuLog()
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def orders_at(emu: Emulator, env: str) -> list[dict[str, Any]]:
    return emu.account_summary(env)["orders"]


class Collector:
    """Thread-safe sink for WebSocket callbacks; ``wait`` pulls until a predicate holds."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.seen: list[tuple[str, Any]] = []

    def cb(self, kind: str) -> Callable[..., None]:
        def put(*args: Any) -> None:
            self.q.put((kind, args[0] if len(args) == 1 else args))

        return put

    def wait(self, kind: str, pred: Callable[[Any], bool] = lambda _: True, timeout: float = 5.0) -> Any:
        """First item of ``kind`` satisfying ``pred`` (already seen items included)."""
        for k, v in self.seen:
            if k == kind and pred(v):
                self.seen.remove((k, v))
                return v
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {kind}; seen: {[k for k, _ in self.seen][-20:]}")
            try:
                k, v = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if k == kind and pred(v):
                return v
            self.seen.append((k, v))

    def take(self, kind: str, n: int, pred: Callable[[Any], bool] = lambda _: True, timeout: float = 5.0) -> list[Any]:
        return [self.wait(kind, pred, timeout) for _ in range(n)]

    def drain(self, kind: str) -> list[Any]:
        out = [v for k, v in self.seen if k == kind]
        self.seen = [(k, v) for k, v in self.seen if k != kind]
        while True:
            try:
                k, v = self.q.get_nowait()
            except queue.Empty:
                return out
            if k == kind:
                out.append(v)
            else:
                self.seen.append((k, v))


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


class Kit:
    """Helpers for the tests, handed out as a fixture (importing ``conftest`` by name is fragile when
    several test folders have one)."""

    START = START
    MAIN = MAIN
    SECOND = SECOND
    HOLDING_CODES = HOLDING_CODES
    VirtualTime = VirtualTime
    Collector = Collector
    make_client = staticmethod(make_client)
    creds_of = staticmethod(creds_of)
    orders_at = staticmethod(orders_at)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture
def ws_factory(kit, emu, vt, collector) -> Iterator[Any]:
    made: list[KISWebSocket] = []

    def make(env: str = "paper", client: Any = None, start: bool = True, sink: Collector | None = None,
             **kw: Any) -> KISWebSocket:
        """A started session whose callbacks all feed ``sink`` (default: the ``collector`` fixture)."""
        client = client or kit.make_client(emu, env, vt)
        c = emu.credentials(env)
        out = sink or collector
        kw.setdefault("on_trade", out.cb("trade"))
        kw.setdefault("on_book", out.cb("book"))
        kw.setdefault("on_notice", out.cb("notice"))
        kw.setdefault("on_state", out.cb("state"))
        kw.setdefault("on_ack", out.cb("ack"))
        kw.setdefault("on_ping", out.cb("ping"))
        kw.setdefault("on_reconnected", lambda: out.q.put(("reconnected", None)))
        kw.setdefault("backoff", (0.05, 0.2))
        ws = KISWebSocket(c.ws_url, client.approval_key, env, kw.pop("hts_id", c.hts_id), wallclock=vt.wallclock,
                          **kw)
        made.append(ws)
        if start:
            ws.start()
            assert ws.wait_connected(5.0)
        return ws

    yield make
    for ws in made:
        ws.stop()

"""Injectable clocks for the emulator: real time, accelerated replay, or stepped by a test.

Every clock answers two questions:

* ``now()`` — the emulated moment, timezone-aware in Asia/Seoul. Sessions, order times, notice
  times, T+2 and the replayed market follow it (token lifetimes do not: see ``WallClock``).
* ``monotonic()`` — seconds for the REST rate limiter when it runs on the clock's time base
  (``rate_limit.time_base: clock``). Real and accelerated clocks answer wall seconds (a rate
  limit is about how fast a client hammers the server; an accelerated day must not multiply the
  allowed rate); the stepped clock answers emulated seconds, so a test can drain a bucket and
  refill it by stepping, with no sleeps.

Why three kinds: ``RealClock`` for paper trading at human speed, ``AcceleratedClock`` to replay
many days quickly with a client in the loop, ``SteppedClock`` for deterministic tests where the
market replays exactly up to the moment the test asks for.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from datetime import date, datetime, time as dtime, timedelta

from market.calendar import KST, krx_calendar


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("clock moments must be timezone-aware (Asia/Seoul)")
    return moment.astimezone(KST)


class Clock(ABC):
    """The emulated time source; thread-safe."""

    mode: str = "abstract"

    @abstractmethod
    def now(self) -> datetime:
        """The emulated moment (aware, Asia/Seoul)."""

    def monotonic(self) -> float:
        """Seconds for rate limiting (wall clock unless the clock is stepped)."""
        return time.monotonic()

    @property
    def steppable(self) -> bool:
        return False

    def describe(self) -> dict[str, object]:
        return {"mode": self.mode, "now": self.now().isoformat()}


class RealClock(Clock):
    """Wall-clock speed. With ``start`` the emulated time begins there (e.g. a day the data covers)
    and runs at 1×; without it the emulated time is the real time in Seoul."""

    mode = "real"

    def __init__(self, start: datetime | None = None) -> None:
        self._wall0 = time.monotonic()
        self._start = _aware(start) if start is not None else None

    def now(self) -> datetime:
        if self._start is None:
            return datetime.now(KST)
        return self._start + timedelta(seconds=time.monotonic() - self._wall0)


class AcceleratedClock(Clock):
    """Replays trading days fast: each trading day's window (default 08:30–15:40 KST) lasts
    ``day_seconds`` of wall time, then the clock jumps to the next trading day's window.

    Nights, weekends and holidays are skipped instantly, so ``day_seconds`` is exactly "a trading
    day in N seconds". The mapping is a pure function of wall time elapsed since construction, so
    the emulated time is monotonic and never drifts.
    """

    mode = "accelerated"

    def __init__(self, start: datetime, day_seconds: float, window: tuple[dtime, dtime] = (dtime(8, 30),
                                                                                           dtime(15, 40)),
                 at: float | None = None) -> None:
        """``at``: the ``time.monotonic()`` moment ``start`` holds for (default: now). A trader that
        read an emulator's clock at ``at`` follows it with a copy made this way (``AdminClock``)."""
        if day_seconds <= 0:
            raise ValueError("day_seconds must be positive")
        start = _aware(start)
        self.day_seconds = float(day_seconds)
        self.window = window
        cal = krx_calendar()
        first = start.date() if cal.is_trading_day(start.date()) else cal.next_trading_day(start.date())
        self._first_day = first
        w0, w1 = self._window_bounds(first)
        self._window_len = (w1 - w0).total_seconds()
        if self._window_len <= 0:
            raise ValueError("window end must be after window start")
        # offset inside the first day's window the clock starts at
        offset = (min(max(start, w0), w1) - w0).total_seconds() if first == start.date() else 0.0
        self._wall0 = (time.monotonic() if at is None else at) - offset / self._window_len * self.day_seconds
        self._days: list[date] = [first]
        self._lock = threading.Lock()  # now() is called from the pump and REST threads at once

    def _window_bounds(self, d: date) -> tuple[datetime, datetime]:
        return datetime.combine(d, self.window[0], KST), datetime.combine(d, self.window[1], KST)

    @property
    def rate(self) -> float:
        """Emulated seconds per wall second inside a trading day's window."""
        return self._window_len / self.day_seconds

    def _day(self, k: int) -> date:
        with self._lock:
            while len(self._days) <= k:
                self._days.append(krx_calendar().next_trading_day(self._days[-1]))
            return self._days[k]

    def now(self) -> datetime:
        elapsed = max(0.0, time.monotonic() - self._wall0)
        k = int(elapsed // self.day_seconds)
        frac = (elapsed - k * self.day_seconds) / self.day_seconds
        w0, _ = self._window_bounds(self._day(k))
        return w0 + timedelta(seconds=frac * self._window_len)

    def describe(self) -> dict[str, object]:
        return {"mode": self.mode, "now": self.now().isoformat(), "day_seconds": self.day_seconds,
                "window": [self.window[0].isoformat(), self.window[1].isoformat()]}


class SteppedClock(Clock):
    """Moves only when told to. Tests call ``Emulator.advance``/``advance_to`` (which step this
    clock *and* replay the market up to the new moment before returning)."""

    mode = "stepped"

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)
        self._origin = self._now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return (self._now - self._origin).total_seconds()

    @property
    def steppable(self) -> bool:
        return True

    def set(self, moment: datetime) -> datetime:
        """Move to ``moment``; going backwards is refused (the market cannot un-trade)."""
        moment = _aware(moment)
        with self._lock:
            if moment < self._now:
                raise ValueError(f"cannot step back from {self._now.isoformat()} to {moment.isoformat()}")
            self._now = moment
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=float(delta))
        if delta < timedelta(0):
            raise ValueError("cannot advance by a negative delta")
        with self._lock:
            self._now = self._now + delta
            return self._now


# ---- the gateway's wall clock ----------------------------------------------------------------


class WallClock(ABC):
    """The *gateway's* time: token and approval-key lifetimes, the one-``tokenP``-a-minute rule,
    the 6-hour reuse window and the PINGPONG stamp.

    Why a second clock: those are facts of KIS's OAuth gateway, which runs on the real calendar even
    while the emulator replays a 2025 market in 2026. Clients written for real KIS compare
    ``access_token_token_expired`` with *their* wall clock (KIS's sample ``read_token()``, python-kis
    ``KisAccessToken.remaining``); a stamp on the market clock looks expired to them, so they
    re-issue on every call and hit ``EGW00133``. The market clock (``Clock``) drives only market
    facts: prints, sessions, order times, T+2.
    """

    mode: str = "abstract"

    @abstractmethod
    def now(self) -> datetime:
        """The wall moment (aware, Asia/Seoul)."""


class SystemWallClock(WallClock):
    """The machine's clock: the default in every market-clock mode."""

    mode = "system"

    def now(self) -> datetime:
        return datetime.now(KST)


class ManualWallClock(WallClock):
    """A wall clock a test moves by hand (``advance``/``set``), to walk through token lifetimes
    without waiting; it never moves by itself and is independent of the market clock."""

    mode = "manual"

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=float(delta))
        if delta < timedelta(0):
            raise ValueError("cannot advance by a negative delta")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def set(self, moment: datetime) -> datetime:
        moment = _aware(moment)
        with self._lock:
            if moment < self._now:
                raise ValueError(f"cannot step back from {self._now.isoformat()} to {moment.isoformat()}")
            self._now = moment
            return self._now


class ClockAsWall(WallClock):
    """A wall clock that reads a market clock: for harnesses whose client runs in *virtual* time tied
    to a stepped market (``tests/kis``'s ``VirtualTime`` sleeps by stepping the emulator), so client and
    gateway share one timeline by construction. Never a default: against real clients the gateway's
    time is the machine's (``SystemWallClock``)."""

    mode = "market"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return self.clock.now()

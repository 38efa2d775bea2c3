"""Where a paper/live trader gets the exchange time from.

Against KIS the exchange clock is the machine's clock in Asia/Seoul. Against the project's
emulator it is the emulator's (accelerated or stepped) clock, read from its admin endpoint, so
session opens, the close and DAY-order expiry follow the replayed market rather than the wall.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, time as dtime, timedelta
from typing import Any, Callable, Mapping

from market.calendar import KST


def system_now() -> datetime:
    return datetime.now(KST)


system_now.rate = 1.0  # type: ignore[attr-defined]   # exchange seconds per wall second (see AdminClock.rate)


class AdminClock:
    """The emulator's clock, read from its admin endpoint.

    An accelerated or real-speed emulator clock is a pure function of the wall time elapsed (it
    cannot be stepped), so after one reading the trader follows a local copy of it and asks nothing
    more: a clock read on the bar-building path must not wait for an HTTP round trip (that put
    milliseconds of latency into every tick the loop was handling at the time). A stepped clock only
    moves when a test or the admin tells it to, so it is read over HTTP, at most every ``ttl``
    seconds (the broker asks often).

    ``read`` answers ``KISClient.server_clock()``'s mapping (``now``, ``mode``, and ``day_seconds``
    and ``window`` for an accelerated clock) or ``None`` when the endpoint does not answer.
    """

    def __init__(self, read: Callable[[], Mapping[str, Any] | None], ttl: float = 0.05) -> None:
        self._read = read
        self.ttl = ttl
        self._at = 0.0
        self._now: datetime | None = None
        self._follow: Callable[[], datetime] | None = None
        self._rate: float | None = None
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        """Exchange seconds per wall second once the clock is followed locally (1.0 for a real-speed
        clock); ``None`` for a clock read over HTTP, which only moves when stepped. The store uses it
        to wake cerebro's loop when a bar falls due."""
        return self._rate

    @property
    def local(self) -> bool:
        """True once the clock is followed locally (no more HTTP)."""
        return self._follow is not None

    def __call__(self) -> datetime:
        follow = self._follow
        if follow is not None:
            return follow()
        with self._lock:
            if self._follow is not None:
                return self._follow()
            if self._now is None or time.monotonic() - self._at > self.ttl:
                sent = time.monotonic()
                state = self._read()
                received = time.monotonic()
                if state is None:
                    if self._now is None:
                        raise RuntimeError("the emulator's admin endpoint did not answer with its clock "
                                           "(check broker.kis.admin_url)")
                else:
                    # the emulator read its clock between sending and receiving: the midpoint is the
                    # best local moment for it (off by at most half a loopback round trip)
                    copy = _local_copy(state, (sent + received) / 2)
                    if copy is not None:
                        self._rate = copy[1]
                        self._follow = copy[0]
                        return self._follow()
                    self._now = state["now"]
                self._at = received
            return self._now


def _local_copy(state: Mapping[str, Any], at: float) -> tuple[Callable[[], datetime], float] | None:
    """A local clock equal to the emulator's from ``state`` read at monotonic ``at``, with its rate
    (exchange seconds per wall second), or None when the clock can move other than with the wall
    time (stepped)."""
    now: datetime = state["now"]
    if state.get("mode") == "real":
        return (lambda: now + timedelta(seconds=time.monotonic() - at)), 1.0
    if state.get("mode") == "accelerated" and state.get("day_seconds") and state.get("window"):
        from brokers.kis.emulator.clock import AcceleratedClock

        w0, w1 = (dtime.fromisoformat(str(t)) for t in state["window"])
        clock = AcceleratedClock(now, float(state["day_seconds"]), (w0, w1), at=at)
        return clock.now, clock.rate
    return None

"""Where a paper/live trader gets the exchange time from.

Against KIS the exchange clock is the machine's clock in Asia/Seoul. Against the project's
emulator it is the emulator's (accelerated or stepped) clock, read from its admin endpoint, so
session opens, the close and DAY-order expiry follow the replayed market rather than the wall.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Callable

from market.calendar import KST


def system_now() -> datetime:
    return datetime.now(KST)


class AdminClock:
    """The emulator's clock over HTTP, read at most every ``ttl`` seconds (the broker asks often)."""

    def __init__(self, fetch: Callable[[], datetime | None], ttl: float = 0.05) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._at = 0.0
        self._now: datetime | None = None
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            if self._now is None or time.monotonic() - self._at > self.ttl:
                now = self._fetch()
                if now is None:
                    if self._now is None:
                        raise RuntimeError("the emulator's admin endpoint did not answer with its clock "
                                           "(check broker.kis.admin_url)")
                else:
                    self._now = now
                self._at = time.monotonic()
            return self._now

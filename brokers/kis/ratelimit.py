"""Client-side REST rate limiting: one token bucket per app key, shared by every thread of a process.

Why client-side: KIS counts every TR of an app key (orders included) against one per-second budget
(PROTOCOL §5.1: real 18/s, paper 1/s since 2026-04-20) and answers ``EGW00201`` beyond it. Pacing
requests avoids those errors instead of recovering from them; the retry logic in ``client.py``
still handles the ones that slip through (the gateway is distributed and sometimes refuses below
the nominal rate).

Design: a *reservation* bucket. ``acquire()`` takes a token under the lock — letting the level go
negative — and sleeps the debt **outside** the lock, so concurrent callers queue up fairly without
holding the lock while sleeping. All time comes from the injected ``clock``/``sleep`` so tests run
in virtual time.

Not shared across processes: two processes on one key must split the rate themselves (configure
``requests_per_second``), as KIS's own limit is per key.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable

__all__ = ["TokenBucket", "bucket_for", "reset_registry"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; ``acquire()`` blocks until one is free."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = float(rate)
        self._burst = max(1.0, float(burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._level = self._burst
        self._last = clock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def set_rate(self, rate: float, burst: float | None = None) -> None:
        """Change the pace (e.g. a second client configured lower for the same key)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        with self._lock:
            self._refill()
            self._rate = float(rate)
            if burst is not None:
                self._burst = max(1.0, float(burst))
            self._level = min(self._level, self._burst)

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._level = min(self._burst, self._level + (now - self._last) * self._rate)
            self._last = now

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping as long as needed; returns the seconds waited."""
        with self._lock:
            self._refill()
            self._level -= tokens
            wait = -self._level / self._rate if self._level < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def penalize(self) -> None:
        """The server said "too fast": empty the bucket so the next caller waits a full interval."""
        with self._lock:
            self._refill()
            self._level = min(self._level, 0.0)


_REGISTRY: dict[str, TokenBucket] = {}
_REGISTRY_LOCK = threading.Lock()


def _fingerprint(app_key: str) -> str:
    """The registry never holds the app key itself, only a digest of it."""
    return hashlib.sha256(app_key.encode("utf-8")).hexdigest()[:24]


def bucket_for(app_key: str, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> TokenBucket:
    """The process-wide bucket of ``app_key``; created on first use with ``clock``/``sleep``.

    When a later caller asks for a lower rate, the shared bucket slows down to it (the most
    conservative setting wins: exceeding KIS's limit hurts every user of the key).
    """
    fp = _fingerprint(app_key)
    with _REGISTRY_LOCK:
        b = _REGISTRY.get(fp)
        if b is None:
            b = _REGISTRY[fp] = TokenBucket(rate, burst, clock, sleep)
        elif rate < b.rate:
            b.set_rate(rate)
        return b


def reset_registry() -> None:
    """Forget every shared bucket (tests)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()

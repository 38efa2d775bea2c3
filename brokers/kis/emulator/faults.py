"""Fault injection, switchable at run time (Python API here, JSON over the admin endpoint).

Each REST fault is a counted rule: it applies to the next ``count`` requests whose path contains
``path`` (any request when ``path`` is empty), then disarms itself. Notice faults apply to the next
``count`` notices. Why counted rules rather than probabilities: a test (or a rehearsal) must know
exactly which request hits the fault, otherwise it cannot assert on the client's reaction.

REST faults (checked in this order by the server):

* ``http500``      — answer HTTP 500 with a gateway error envelope (default ``EGW00203``) without
  processing the request (a burst = ``count`` > 1).
* ``rate_storm``   — answer ``EGW00201`` (HTTP 500) whatever the bucket says.
* ``timeout``      — hold the connection for ``hold_s`` and close it without a reply. With
  ``after_accept=True`` the request is processed first (an order *is* placed, its notices go
  out) — the "timed out after the order was accepted" case; otherwise nothing is processed.
* ``delay``        — process, release the notices, then wait ``seconds`` before replying (with
  ``before=True`` the wait comes before processing instead).
* ``notice_first`` — deliver the request's notices over the WebSocket and wait (bounded) until
  they were written before sending the REST reply.
* ``garbage``      — answer HTTP 200 with a body that is not JSON (an unparseable reply).
* ``reset``        — close the connection at once without any reply (a connection reset).
* ``http500``, ``garbage`` and ``reset`` take ``after_accept=True`` too: the request is processed
  first (an order *is* placed, its notices go out), then the reply is the fault — the ambiguous
  outcomes an order client must resolve at KIS rather than treat as a rejection.
* ``advance_clock`` — step the emulator's (stepped) clock by ``seconds`` before processing the
  request: the market moves *during* a call, e.g. fills landing between two pages of a paged read.

Every REST fault takes ``skip``: the first ``skip`` matching requests pass untouched (so a fault
can hit page 2 of a paged read, or the second look-up after a timeout).

Notice faults: ``duplicate_notices`` (each affected notice is sent twice), ``reorder_notices``
(an affected notice is held back and sent after the next notice of the same account, or at the
end of the next clock step).

Other faults act at once and live on ``Emulator``: ``drop_websockets``, ``expire_tokens``,
``hts_order`` (an order placed by "another app" the client never sent) and ``reject_next_orders``
(the REST call succeeds but the exchange refuses: the notice carries ``RFUS_YN=1``).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RestFault:
    kind: str
    count: int = 1
    path: str = ""
    seconds: float = 0.0
    after_accept: bool = False
    before: bool = False
    hold_s: float | None = None
    msg_cd: str | None = None
    msg1: str | None = None
    status: int = 500
    skip: int = 0

    def matches(self, path: str) -> bool:
        return self.count > 0 and (not self.path or self.path in path)


@dataclass
class FaultState:
    rest: list[RestFault] = field(default_factory=list)
    duplicate_notices: int = 0
    reorder_notices: int = 0
    reject_orders: int = 0


REST_KINDS = ("http500", "rate_storm", "timeout", "delay", "notice_first", "garbage", "reset", "advance_clock")


class FaultController:
    """Thread-safe registry of armed faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = FaultState()
        self.fired: dict[str, int] = {}

    # ---- arming ----------------------------------------------------------------------------

    def arm_rest(self, kind: str, count: int = 1, path: str = "", **kw: Any) -> RestFault:
        if kind not in REST_KINDS:
            raise ValueError(f"unknown REST fault {kind!r}; one of {REST_KINDS}")
        if count < 1:
            raise ValueError("count must be >= 1")
        fault = RestFault(kind, count, path, **kw)
        with self._lock:
            self.state.rest.append(fault)
        return fault

    def http500(self, count: int = 1, path: str = "", msg_cd: str | None = None, msg1: str | None = None,
                status: int = 500, after_accept: bool = False, skip: int = 0) -> RestFault:
        return self.arm_rest("http500", count, path, msg_cd=msg_cd, msg1=msg1, status=status,
                             after_accept=after_accept, skip=skip)

    def garbage(self, count: int = 1, path: str = "", after_accept: bool = False, skip: int = 0) -> RestFault:
        return self.arm_rest("garbage", count, path, after_accept=after_accept, skip=skip)

    def reset(self, count: int = 1, path: str = "", after_accept: bool = False, skip: int = 0) -> RestFault:
        return self.arm_rest("reset", count, path, after_accept=after_accept, skip=skip)

    def advance_clock(self, seconds: float, count: int = 1, path: str = "", skip: int = 0) -> RestFault:
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        return self.arm_rest("advance_clock", count, path, seconds=seconds, skip=skip)

    def rate_storm(self, count: int = 10, path: str = "") -> RestFault:
        return self.arm_rest("rate_storm", count, path)

    def timeout(self, count: int = 1, path: str = "", after_accept: bool = False,
                hold_s: float | None = None) -> RestFault:
        return self.arm_rest("timeout", count, path, after_accept=after_accept, hold_s=hold_s)

    def delay(self, seconds: float, count: int = 1, path: str = "", before: bool = False) -> RestFault:
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return self.arm_rest("delay", count, path, seconds=seconds, before=before)

    def notice_first(self, count: int = 1, path: str = "order") -> RestFault:
        return self.arm_rest("notice_first", count, path)

    def duplicate_notices(self, count: int = 1) -> None:
        with self._lock:
            self.state.duplicate_notices += count

    def reorder_notices(self, count: int = 1) -> None:
        with self._lock:
            self.state.reorder_notices += count

    def reject_next_orders(self, count: int = 1) -> None:
        with self._lock:
            self.state.reject_orders += count

    def clear(self) -> None:
        with self._lock:
            self.state = FaultState()

    # ---- consuming -------------------------------------------------------------------------

    def take_rest(self, kind: str, path: str, **match: Any) -> RestFault | None:
        """Consume one use of the first armed fault of ``kind`` matching ``path`` (and ``match``)."""
        with self._lock:
            for f in self.state.rest:
                if f.kind == kind and f.matches(path) and all(getattr(f, k) == v for k, v in match.items()):
                    if f.skip > 0:
                        f.skip -= 1
                        return None
                    f.count -= 1
                    if f.count <= 0:
                        self.state.rest.remove(f)
                    self.fired[kind] = self.fired.get(kind, 0) + 1
                    return f
        return None

    def take_counter(self, name: str) -> bool:
        with self._lock:
            n = getattr(self.state, name)
            if n > 0:
                setattr(self.state, name, n - 1)
                self.fired[name] = self.fired.get(name, 0) + 1
                return True
        return False

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"rest": [asdict(f) for f in self.state.rest],
                    "duplicate_notices": self.state.duplicate_notices,
                    "reorder_notices": self.state.reorder_notices,
                    "reject_orders": self.state.reject_orders,
                    "fired": dict(self.fired)}

"""The gate between the engine and the WebSocket hubs: ordering of notices vs REST replies.

Why a gate: on KIS the notice stream and the REST reply are independent, and clients must cope
with either arriving first (PROTOCOL §7.1). The emulator makes the order a *choice*:

* default — notices produced while a REST call is being handled (its acknowledgement, plus any
  fill the clock pump produces meanwhile for the same account) are held until the reply bytes
  were written, then released in order. Deterministic "reply, then notice".
* ``notice_first`` fault — released before the reply, and the reply waits (bounded) until the
  WebSocket layer has written them.
* ``timeout``/``delay`` faults — released at once, so the notice arrives while the reply is late
  or never comes.

Notice faults applied here: duplicates and out-of-order delivery (see ``faults.py``).
Trade prints are never held: market data flows independently of anyone's orders.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from brokers.kis.protocol import Env, notice_tr_for
from brokers.kis.emulator.faults import FaultController
from brokers.kis.emulator.frames import notice_record
from brokers.kis.emulator.matching import Account, Event, NoticeEvent, TradeEvent


@dataclass
class NoticeOut:
    """A formatted notice on its way to the sessions subscribed to ``(tr_id, hts_id)``."""

    env: Env
    tr_id: str
    hts_id: str
    record: list[str]
    event: NoticeEvent
    delivered: threading.Event = field(default_factory=threading.Event)

    def copy(self) -> "NoticeOut":
        return NoticeOut(self.env, self.tr_id, self.hts_id, list(self.record), self.event)


Item = TradeEvent | NoticeOut


class NoticeGate:
    def __init__(self, faults: FaultController, publish: Callable[[list[Item]], None],
                 notice_fields: dict[Env, int]) -> None:
        self.faults = faults
        self.publish = publish
        self.notice_fields = notice_fields
        self._lock = threading.Lock()
        self._holds: dict[int, int] = {}
        self._held: dict[int, list[NoticeOut]] = {}
        self._reordered: dict[int, tuple[NoticeOut, float]] = {}

    def _format(self, ev: NoticeEvent) -> NoticeOut:
        env = ev.account.env
        return NoticeOut(env, notice_tr_for(env), ev.account.hts_id, notice_record(ev, self.notice_fields[env]), ev)

    # ---- engine side -----------------------------------------------------------------------

    def submit(self, events: list[Event]) -> None:
        """Engine sink: trades go out now, notices now or after the account's hold ends."""
        out: list[Item] = []
        with self._lock:
            for ev in events:
                if isinstance(ev, TradeEvent):
                    out.append(ev)
                    continue
                item = self._format(ev)
                key = id(ev.account)
                if self._holds.get(key):
                    self._held.setdefault(key, []).append(item)
                else:
                    out.extend(self._apply_faults(key, [item]))
        if out:
            self.publish(out)

    def hold(self, account: Account) -> None:
        with self._lock:
            key = id(account)
            self._holds[key] = self._holds.get(key, 0) + 1

    def release(self, account: Account | None) -> list[NoticeOut]:
        """End one hold; returns the notices published now (to wait on ``delivered``)."""
        if account is None:
            return []
        key = id(account)
        with self._lock:
            n = self._holds.get(key, 0) - 1
            if n > 0:
                self._holds[key] = n
                return []
            self._holds.pop(key, None)
            items = self._apply_faults(key, self._held.pop(key, []))
        if items:
            self.publish(list(items))
        return [i for i in items if isinstance(i, NoticeOut)]

    def _apply_faults(self, key: int, items: list[NoticeOut]) -> list[NoticeOut]:
        """Duplicate / reorder, under ``self._lock``."""
        out: list[NoticeOut] = []
        for item in items:
            held = self._reordered.pop(key, None)
            if held is None and self.faults.take_counter("reorder_notices"):
                self._reordered[key] = (item, time.monotonic())
                continue
            out.append(item)
            if self.faults.take_counter("duplicate_notices"):
                out.append(item.copy())
            if held is not None:
                out.append(held[0])
        return out

    def flush_reordered(self, older_than_s: float = 0.0) -> None:
        """Release notices held back by the reorder fault when no later notice came."""
        now = time.monotonic()
        with self._lock:
            ready = [k for k, (_, t) in self._reordered.items() if now - t >= older_than_s]
            items = [self._reordered.pop(k)[0] for k in ready]
        if items:
            self.publish(list(items))

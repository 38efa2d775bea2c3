"""``H0STMKO0`` (장운영정보, market status) records: VI start/end from the replayed tape, halts from the
reference data.

When frames go out (real environment only: [OTA] legacy README leaves the paper cell empty):

* **VI** — the hub hands each batch of prints (``TradeEvent``) of a subscribed code here; every VI
  start or end (``market.volatility.vi_events``) whose moment falls inside the batch becomes one
  record, in time order (VI start: ``VI_CLS_CODE`` 1 static / 2 dynamic, ``ANTC_MKOP_CLS_CODE``
  311 expected-price auction; VI end: ``N``, 112);
* **halts** — a code designated ``halted`` in the reference data has no prints that day, so its
  status goes out when a client subscribes and again at the first event of every new trading day
  (``TRHT_YN`` Y with the designation's reason, ``ISCD_STAT_CLS_CODE`` 58), and once more when the
  halt is over (``TRHT_YN`` N).

Runs on the WebSocket loop thread only; it reads the immutable reference data and the tape carried
by the event, never the engine's mutable state (the engine's current day is read as one attribute).
"""

from __future__ import annotations

from datetime import date
from typing import Callable

from brokers.kis import protocol as P
from brokers.kis.emulator.matching import TradeEvent
from brokers.kis.emulator.reference import ReferenceData, Snapshot
from market.volatility import ViEvent, vi_events

MKOP_REGULAR = "20"
"""``MKOP_CLS_CODE`` during the regular session (the value ``inquire-asking-price`` reports as
``new_mkop_cls_code``; unconfirmed for H0STMKO0)."""
ANTC_AUCTION_START, ANTC_AUCTION_END = "311", "112"
"""``ANTC_MKOP_CLS_CODE`` of an expected-price auction start/end ([3P] capture, PROTOCOL §3.9)."""
EXCH_KRX = "1"


class MarketStatus:
    """Builds ``H0STMKO0`` records for one environment's hub."""

    def __init__(self, reference: ReferenceData, current_day: Callable[[], date]) -> None:
        self.reference = reference
        self.current_day = current_day
        self._vi: dict[tuple[str, date], list[ViEvent]] = {}

    def _record(self, snap: Snapshot | None, code: str, *, vi: str = P.VI_NONE, antc: str = "") -> list[str]:
        halted = bool(snap and snap.halted)
        reason = ""
        if halted and snap is not None:
            sec = self.reference.get(code)
            if sec is not None:
                reason = next((d.reason for d in sec.designations
                               if d.kind == "halted" and d.start <= snap.day and (d.end is None or snap.day <= d.end)),
                              "")
        status = (P.ISCD_STAT_HALTED if halted else P.ISCD_STAT_ADMIN if snap and snap.admin_issue
                  else P.ISCD_STAT_NORMAL)
        return [code, "Y" if halted else "N", reason, MKOP_REGULAR, antc, "", "", status, vi, P.VI_NONE, EXCH_KRX]

    def halt_record(self, code: str, day: date | None = None) -> list[str] | None:
        """The code's halt status on ``day`` (default: the engine's day) — ``None`` when it is not halted."""
        snap = self.reference.snapshot(code, day or self.current_day())
        if snap is None or not snap.halted:
            return None
        return self._record(snap, code)

    def day_change(self, code: str, previous: date | None, day: date) -> list[str] | None:
        """A record when the code's halt state differs between ``previous`` and ``day``."""
        now = self.reference.snapshot(code, day)
        before = self.reference.snapshot(code, previous) if previous else None
        was = bool(before and before.halted)
        is_ = bool(now and now.halted)
        if was == is_ or now is None:
            return None
        return self._record(now, code)

    def vi_records(self, ev: TradeEvent) -> list[list[str]]:
        """VI starts and ends that happen within the prints ``ev.first..ev.last`` of ``ev.tape``."""
        tape = ev.tape
        key = (ev.code, tape.day)
        events = self._vi.get(key)
        if events is None:
            if len(self._vi) > 1024:
                self._vi.clear()
            sec = self.reference.get(ev.code)
            events = vi_events(tape.times, tape.prices, tape.auction, tape.base, bool(sec and sec.kospi200))
            self._vi[key] = events
        if not events:
            return []
        t0 = float(tape.times[ev.first - 1]) if ev.first > 0 else float("-inf")
        t1 = float(tape.times[ev.last])
        snap = self.reference.snapshot(ev.code, tape.day)
        out: list[tuple[float, int, list[str]]] = []
        for e in events:
            if t0 < e.start <= t1:
                code = P.VI_STATIC if e.kind == "static" else P.VI_DYNAMIC
                out.append((e.start, 0, self._record(snap, ev.code, vi=code, antc=ANTC_AUCTION_START)))
            if t0 < e.end <= t1:
                out.append((e.end, 1, self._record(snap, ev.code, vi=P.VI_NONE, antc=ANTC_AUCTION_END)))
        out.sort(key=lambda t: (t[0], t[1]))
        return [r for _, _, r in out]


__all__ = ["MarketStatus"]

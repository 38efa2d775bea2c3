"""KRX volatility interruption (VI, 변동성완화장치): when one day's prints trigger it.

Rules (``shared/krx/RULES.md`` §7), as pure functions of a day's prints:

* **static VI** — a continuous-session print ±10 % or more away from the static reference price: the
  day's opening single price (the base price when the open did not trade) and, after a VI, the first
  print once it ends (the VI's own single price);
* **dynamic VI** — a print that moves 3 % (KOSPI200 members) or 6 % (other KOSPI and KOSDAQ stocks)
  or more from the previous print;
* either switches the stock to a 2-minute single-price auction; continuous trading resumes after it
  (the random end of up to 30 s is not modelled). A VI cannot start while one is in force, nor on an
  auction print (the opening and closing auctions have their own rules, not modelled here).

Used by the emulator to announce VIs in ``H0STMKO0`` frames; the replay itself is not paused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

STATIC_VI_PCT = 10.0
DYNAMIC_VI_PCT = {True: 3.0, False: 6.0}
"""Dynamic thresholds of the regular session: KOSPI200 members (True) and everything else (False)."""
VI_DURATION_S = 120.0


@dataclass(frozen=True)
class ViEvent:
    """One VI: triggered by print ``index`` at ``start`` (epoch seconds), in force until ``end``."""

    index: int
    start: float
    end: float
    kind: str                 # "static" or "dynamic"
    reference: int            # the price the move was measured from
    price: int                # the triggering print


def vi_events(times: Sequence[float], prices: Sequence[int], auction: Sequence[bool], base: int,
              kospi200: bool = False) -> list[ViEvent]:
    """Every VI one day's prints trigger, in time order (see the module rules)."""
    events: list[ViEvent] = []
    n = len(prices)
    if n == 0:
        return events
    ref = int(prices[0]) if auction[0] else int(base)
    dyn = DYNAMIC_VI_PCT[bool(kospi200)]
    until = float("-inf")
    reset_ref = False
    prev: int | None = None
    for i in range(n):
        t, p = float(times[i]), int(prices[i])
        if t < until:
            prev = p
            continue
        if reset_ref:
            ref, reset_ref = p, False
            prev = p
            continue
        if auction[i]:
            prev = p
            continue
        kind = ""
        if ref > 0 and abs(p - ref) * 100.0 >= STATIC_VI_PCT * ref:
            kind = "static"
        elif prev is not None and prev > 0 and abs(p - prev) * 100.0 >= dyn * prev:
            kind = "dynamic"
        if kind:
            until = t + VI_DURATION_S
            events.append(ViEvent(i, t, until, kind, ref if kind == "static" else int(prev or ref), p))
            reset_ref = True
        prev = p
    return events


__all__ = ["DYNAMIC_VI_PCT", "STATIC_VI_PCT", "VI_DURATION_S", "ViEvent", "vi_events"]

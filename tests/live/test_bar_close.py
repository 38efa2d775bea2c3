"""When a live intraday bar closes: at once on a tick of the next bar, or by the clock one grace
period after its end, with cerebro's loop woken at that moment rather than by the next input."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from types import SimpleNamespace

from brokers.kis.store import KISStore
from feeds.kis_live import BarBuilder
from market.calendar import KST


def at(hh: int, mm: int, ss: float = 0.0) -> datetime:
    return datetime(2025, 3, 5, hh, mm, tzinfo=KST) + timedelta(seconds=ss)


def test_a_tick_of_the_next_minute_closes_the_bar_at_once() -> None:
    b = BarBuilder(1, close_grace=timedelta(seconds=1))
    assert b.add(at(9, 7, 10), 100, 5) is None
    assert b.add(at(9, 7, 59), 101, 3) is None
    done = b.add(at(9, 8, 0), 102, 1)
    assert done is not None and done["close"] == 101 and done["volume"] == 8


def test_the_clock_closes_a_quiet_bar_one_grace_after_its_end_and_a_late_tick_still_counts() -> None:
    b = BarBuilder(1, close_grace=timedelta(seconds=1))
    b.add(at(9, 7, 10), 100, 5)
    assert b.due(datetime(2025, 3, 5, 9, 7)) == at(9, 8, 1)
    assert b.close_if_due(at(9, 8, 0)) is None            # its end: a 09:07:59 tick may still be coming
    assert b.add(at(9, 7, 59), 99, 2) is None              # ... and here it is, counted
    done = b.close_if_due(at(9, 8, 1))
    assert done is not None and done["close"] == 99 and done["volume"] == 7
    assert b.add(at(9, 7, 59.5), 98, 1) is None and b.current is None   # later than that: late, ignored


def test_daily_bars_keep_their_closing_auction_grace() -> None:
    b = BarBuilder(None, daily_grace=timedelta(seconds=60), close_grace=timedelta(seconds=1))
    b.add(at(10, 0), 100, 5)
    assert b.due(datetime(2025, 3, 5)) == at(15, 31)


class _Feed(SimpleNamespace):
    def next_due(self):
        return self.due


class _Clock:
    """An exchange clock running ``rate`` times the wall, like the emulator's accelerated one."""

    def __init__(self, start: datetime, rate: float | None) -> None:
        self.start, self.t0, self.rate = start, time.monotonic(), rate

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * (self.rate or 0.0))


def _store(clock, due: datetime | None) -> KISStore:
    store = KISStore(None, None, None, now=clock)
    store.register_data(_Feed(p=SimpleNamespace(dataname="005930"), due=due))
    return store


def test_the_loop_wakes_when_a_bar_falls_due_not_at_the_end_of_its_wait() -> None:
    clock = _Clock(at(9, 7, 59), rate=60.0)              # 1.2 exchange seconds = 20 ms of wall time
    store = _store(clock, due=at(9, 8, 1.2))
    t = time.monotonic()
    store.wait_input(5.0)
    waited = time.monotonic() - t
    assert waited < 1.0                                    # woken at the due moment, not after 5 s
    assert clock() >= at(9, 8, 1.2)


def test_a_stepped_clock_or_no_open_bar_keeps_the_plain_wait() -> None:
    for clock, due in ((_Clock(at(9, 7, 59), rate=None), at(9, 8, 1)), (_Clock(at(9, 7, 59), rate=60.0), None)):
        store = _store(clock, due)
        assert store._next_due_in() is None
        t = time.monotonic()
        store.wait_input(0.05)
        assert time.monotonic() - t >= 0.04


def test_a_bar_already_due_does_not_wait_at_all() -> None:
    store = _store(_Clock(at(9, 8, 5), rate=1.0), due=at(9, 8, 1))
    t = time.monotonic()
    store.wait_input(5.0)
    assert time.monotonic() - t < 0.5


def test_an_ended_feed_never_asks_the_loop_to_wake_for_its_last_open_bar() -> None:
    """A feed past its ``end`` keeps its last bar open; its due moment is in the past, and waking the
    loop for it would make every later wait return at once (a spinning loop)."""
    from feeds.kis_live import live_data_class

    feed = live_data_class(())(store=None, dataname="005930", bar="1min")
    feed._state = feed._ST_LIVE
    feed._builder.add(at(9, 7, 10), 100, 5)
    assert feed.next_due() == at(9, 8)
    feed._state = feed._ST_OVER
    assert feed.next_due() is None

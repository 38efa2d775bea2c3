"""``AdminClock``: how a trader started with ``clock: emulator`` tells the time.

An accelerated (or real-speed) emulator clock is read once over HTTP and then followed locally, so
the bar-building path never waits for a round trip; a stepped clock keeps being read over HTTP.
The local copy is checked against the emulator's own clock object, not against itself.
"""

from __future__ import annotations

import time
from datetime import date, datetime, time as dtime, timedelta
from typing import Any

import pytest

from brokers.kis.clock import AdminClock, _local_copy
from brokers.kis.emulator.clock import AcceleratedClock, RealClock
from brokers.kis.emulator.server import Emulator
from configs.emulator_schema import EmulatorConfig
from market.calendar import KST, krx_calendar

from conftest import START, base_config, make_client


class Counted:
    """Wraps ``KISClient.server_clock`` and counts the HTTP reads."""

    def __init__(self, read) -> None:
        self.read = read
        self.calls = 0

    def __call__(self) -> dict[str, Any] | None:
        self.calls += 1
        return self.read()


def _emulator_with(clock, market_bars) -> Emulator:
    cfg = EmulatorConfig.model_validate({**base_config(), "log_requests": False})
    return Emulator(cfg, bars=market_bars, clock=clock).start()


@pytest.mark.parametrize("make_clock", [
    lambda: AcceleratedClock(START, day_seconds=390.0),        # a trading day in 6.5 minutes (60x)
    lambda: RealClock(START),
], ids=["accelerated", "real"])
def test_a_clock_that_runs_with_the_wall_is_read_once_then_followed_locally(make_clock, market_bars, vt) -> None:
    emu = _emulator_with(make_clock(), market_bars)
    try:
        read = Counted(make_client(emu, "paper", vt, admin_url=emu.admin_url).server_clock)
        clock = AdminClock(read)
        for _ in range(50):
            before = emu.clock.now()
            mine = clock()
            after = emu.clock.now()
            # the copy is anchored half a loopback round trip from the emulator's reading: at 60x a
            # 10 ms round trip is 0.3 s of emulated time, so 1.5 s bounds it with room to spare
            assert before - timedelta(seconds=1.5) <= mine <= after + timedelta(seconds=1.5)
        assert read.calls == 1
        assert clock.local and clock.rate == getattr(emu.clock, "rate", 1.0)
        stamps = [clock() for _ in range(200)]
        assert stamps == sorted(stamps)          # never backwards
    finally:
        emu.stop()


def test_the_local_copy_crosses_nights_and_holidays_as_the_emulator_does() -> None:
    """An accelerated clock jumps from one trading day's window to the next; a copy read at the
    first day's 15:39 must land on the same later day and minute as the emulator's clock."""
    krx_calendar()                                               # built now, so the reads below follow at once
    anchor = time.monotonic() - 7.3                             # both started 7.3 wall seconds ago
    friday_close = datetime(2025, 5, 2, 15, 39, tzinfo=KST)      # 5 May (Children's Day) and 6 May are holidays
    emulator_clock = AcceleratedClock(friday_close, day_seconds=1.0, at=anchor)
    state = {"now": friday_close, "mode": "accelerated", "day_seconds": 1.0, "window": ["08:30:00", "15:40:00"]}
    copy, rate = _local_copy(state, anchor)
    assert rate == emulator_clock.rate == 7 * 3600 + 10 * 60      # a 7 h 10 min window per wall second
    before = emulator_clock.now()
    mine = copy()
    after = emulator_clock.now()
    assert before <= mine <= after            # the same mapping of the same wall time (a day per wall second)
    # by hand: 15:39 is 25,740 s into the 25,800 s window, so 7.3 s later the clock is 8.30 windows on:
    # the 8th trading day after Friday 2 May (7, 8, 9, 12, 13, 14, 15, 16 May), 0.30 into its window
    # (10:38; later by as long as this test took between its reads, a window per wall second)
    assert mine.date() == date(2025, 5, 16)
    assert dtime(10, 30) <= mine.timetz().replace(tzinfo=None)


def test_a_stepped_clock_is_read_over_http_every_time_it_may_have_moved(emu, vt) -> None:
    read = Counted(make_client(emu, "paper", vt, admin_url=emu.admin_url).server_clock)
    clock = AdminClock(read, ttl=0.0)
    assert clock() == emu.now()
    emu.advance(timedelta(minutes=7))
    assert clock() == emu.now()
    assert read.calls >= 2 and not clock.local and clock.rate is None


def test_an_admin_endpoint_that_does_not_answer_is_an_error_naming_the_setting() -> None:
    clock = AdminClock(lambda: None)
    with pytest.raises(RuntimeError, match="broker.kis.admin_url"):
        clock()


def test_the_admin_endpoint_describes_an_accelerated_clock(market_bars, vt) -> None:
    emu = _emulator_with(AcceleratedClock(START, day_seconds=120.0), market_bars)
    try:
        state = make_client(emu, "paper", vt, admin_url=emu.admin_url).server_clock()
        assert state["mode"] == "accelerated" and state["day_seconds"] == 120.0
        assert state["window"] == ["08:30:00", "15:40:00"] and state["steppable"] is False
        assert state["now"].tzinfo is not None
    finally:
        emu.stop()

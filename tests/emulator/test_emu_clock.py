"""Clocks (stepped, accelerated under freezegun, real) and the pump keeping the market on the clock."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta

import pytest
from freezegun import freeze_time

from brokers.kis.emulator.clock import AcceleratedClock, RealClock, SteppedClock
from brokers.kis.emulator.server import Emulator
from kis_emu_helpers import KST, NAMES, Client, Ws, at, base_config, run, standard_bars


def test_stepped_clock_moves_only_forward() -> None:
    c = SteppedClock(at("09:00"))
    assert c.now() == at("09:00") and c.monotonic() == 0.0
    c.advance(timedelta(seconds=90))
    assert c.now() == at("09:01:30") and c.monotonic() == 90.0
    with pytest.raises(ValueError):
        c.set(at("09:00"))
    with pytest.raises(ValueError):
        SteppedClock(datetime(2025, 6, 2, 9, 0))                     # naive datetimes are refused


def test_accelerated_clock_maps_a_trading_day_onto_n_seconds() -> None:
    with freeze_time("2026-01-01 00:00:00") as frozen:
        c = AcceleratedClock(at("08:30"), day_seconds=100.0)         # window 08:30–15:40 (430 min)
        assert c.now() == at("08:30")
        frozen.tick(50)
        assert c.now() == at("08:30") + timedelta(minutes=215)      # half the window
        frozen.tick(50)
        # the next trading day after Mon 2025-06-02 is Wed 06-04 (06-03 is a holiday)
        assert c.now() == datetime(2025, 6, 4, 8, 30, tzinfo=KST)
        frozen.tick(100 * 2 + 25)
        assert c.now() == datetime(2025, 6, 9, 8, 30, tzinfo=KST) + timedelta(minutes=107.5)  # 06-05, 06-09


def test_accelerated_clock_start_inside_window_and_on_holiday() -> None:
    with freeze_time("2026-01-01"):
        assert AcceleratedClock(at("12:05"), 100.0).now() == at("12:05")
        assert AcceleratedClock(datetime(2025, 6, 3, 9, 0, tzinfo=KST), 100.0).now() == \
            datetime(2025, 6, 4, 8, 30, tzinfo=KST)


def test_real_clock_runs_at_wall_speed() -> None:
    with freeze_time("2026-01-01") as frozen:
        c = RealClock(at("10:00"))
        frozen.tick(2.5)
        assert c.now() == at("10:00:02") + timedelta(seconds=0.5)
        assert RealClock().now().tzinfo is not None


def test_accelerated_emulator_streams_and_keeps_up(make_emu) -> None:
    """A pumped clock replays prints as time passes; the engine never lags its clock for long."""
    cfg = base_config("paper", clock={"mode": "accelerated", "day_seconds": 120, "pump_interval_s": 0.01})
    emu = Emulator(cfg, bars=standard_bars(), names=NAMES,
                   clock=AcceleratedClock(at("08:59:50"), day_seconds=120))
    with emu:
        cl = Client(emu.credentials())

        async def go() -> None:
            async with Ws(emu.ws_url(), cl.approval()) as ws:
                await ws.request("H0STCNT0", "005930")
                frame = await ws.frame("H0STCNT0", timeout=10)       # 09:00 arrives within ~0.3 s of wall time
                assert frame.split("|")[2].isdigit()
                with pytest.raises(RuntimeError):
                    emu.advance(1)                                   # only stepped clocks can be stepped

        run(go())
        status = emu.status()
        assert status["pump"]["iterations"] > 0
        assert status["pump"]["max_busy_s"] < 0.5
    assert date(2025, 6, 2) == at("09:00").date() and time(9) == at("09:00").time()
    assert asyncio.iscoroutinefunction(Ws.request)

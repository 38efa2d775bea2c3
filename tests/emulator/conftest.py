"""Fixtures for the emulator suite (helpers live in ``kis_emu_helpers.py``)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable, Iterator

import pandas as pd
import pytest

from brokers.kis.emulator.clock import ManualWallClock, SteppedClock
from brokers.kis.emulator.server import Emulator
from kis_emu_helpers import NAMES, WALL_START, at, base_config, standard_bars


@pytest.fixture
def make_emu() -> Iterator[Callable[..., Emulator]]:
    """Factory: ``make_emu(env="paper", start=at("08:55"), bars=None, **config_overrides)`` → started.

    The gateway's wall clock is a ``ManualWallClock`` at ``WALL_START`` — a different year from the
    replayed market on purpose, so a token stamped on the wrong clock shows at once; tests walk
    token lifetimes with ``emu.wall_clock.advance``."""
    started: list[Emulator] = []

    def factory(env: str = "paper", start: datetime | None = None, bars: dict[str, pd.DataFrame] | None = None,
                **overrides: Any) -> Emulator:
        cfg = base_config(env, **overrides)
        emu = Emulator(cfg, bars=bars or standard_bars(), names=NAMES,
                       clock=SteppedClock(start or at("08:55")), wall_clock=ManualWallClock(WALL_START))
        started.append(emu)
        return emu.start()

    yield factory
    for emu in started:
        emu.stop()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every emulator thread must be gone once its emulator stopped (clean shutdown)."""
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("kis-emu") and t.is_alive()]
    assert not alive, f"leaked emulator threads: {alive}"



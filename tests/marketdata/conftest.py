"""Fixtures of the market-data suites (the market itself: ``market_helpers.py``)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Callable, Iterator

import pandas as pd
import pytest

from brokers.kis import ratelimit, tokencache
from brokers.kis.emulator.clock import SteppedClock
from brokers.kis.emulator.server import Emulator
from market.calendar import KST, krx_calendar
from market_helpers import MARKET_END, SmallMarket, _build, emulator_config

_MARKET: SmallMarket | None = None


@pytest.fixture(scope="session")
def small_market() -> SmallMarket:
    global _MARKET
    if _MARKET is None:
        _MARKET = _build()
    return _MARKET


@pytest.fixture(autouse=True)
def _isolated_registries() -> Iterator[None]:
    ratelimit.reset_registry()
    tokencache.clear_memory()
    yield
    ratelimit.reset_registry()
    tokencache.clear_memory()


@pytest.fixture
def market_emulator(small_market: SmallMarket) -> Iterator[Callable[..., Emulator]]:
    """``market_emulator(day=MARKET_END, rate=400, **config)`` → a started emulator of the small market
    on the morning of ``day`` (08:50 KST, before the open: every bar up to the day before is history)."""
    made: list[Emulator] = []

    def make(day: date = MARKET_END, rate: float = 400.0, bars: dict[str, pd.DataFrame] | None = None,
             **extra: Any) -> Emulator:
        day = day if krx_calendar().is_trading_day(day) else krx_calendar().next_trading_day(day)
        emu = Emulator(emulator_config(rate, **extra), bars=bars or small_market.bars, markets=small_market.markets,
                       names=small_market.names, reference=small_market.reference,
                       clock=SteppedClock(datetime.combine(day, time(8, 50), KST)))
        made.append(emu.start())
        return emu

    yield make
    for emu in made:
        emu.stop()



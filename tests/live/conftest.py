"""Live-adapter tests: every trader a test started is stopped before its emulator goes away; the
trader's journal is a SQLite file unless a test asks for PostgreSQL (``journal_url``); the fault and
window tests share one small market (``demo``, overridden by modules that need another) and an
emulator factory opening on it before the session (``emu_factory``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Iterator

import pytest

import harness
from configs.schema import DemoDataConfig
from feeds.demo import generate_demo_market
from harness import at, make_emulator

FAULT_DAY = date(2025, 3, 5)
FAULT_MARKET = DemoDataConfig(codes=3, start=date(2024, 9, 2), end=FAULT_DAY, seed=11)


@pytest.fixture(autouse=True)
def close_traders() -> Iterator[None]:
    yield
    for trader in list(harness.RUNNING):
        trader.close()


@pytest.fixture
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The trader's journal: a SQLite file in the test's folder, or — parametrised ``indirect`` with
    ``"postgresql"`` — a fresh database on the session's PostgreSQL server (skipped where none starts)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("pg_server").create_database("journal")
    return f"sqlite:///{tmp_path / 'journal.sqlite'}"


@pytest.fixture(scope="module")
def demo():
    return generate_demo_market(FAULT_MARKET)


@pytest.fixture
def emu_factory(demo):
    """``emu_factory(**overrides)`` → an emulator on ``demo`` at 08:50 of the fault day, stopped after the test."""
    made = []

    def make(**overrides):
        emu = make_emulator(demo.bars, demo.markets, at(FAULT_DAY, 8, 50), **overrides)
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.stop()

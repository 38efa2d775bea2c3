"""Live-adapter tests: every trader a test started is stopped before its emulator goes away."""

from __future__ import annotations

from typing import Iterator

import pytest

import harness


@pytest.fixture(autouse=True)
def close_traders() -> Iterator[None]:
    yield
    for trader in list(harness.RUNNING):
        trader.close()

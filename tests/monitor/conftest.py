"""Monitor tests reuse the live-adapter harness (tests/live) and a local webhook receiver."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))

from receiver import Receiver  # noqa: E402


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def close_traders() -> Iterator[None]:
    import harness

    yield
    for trader in list(harness.RUNNING):
        trader.close()

"""Live-adapter tests: every trader a test started is stopped before its emulator goes away; the
trader's journal is a SQLite file unless a test asks for PostgreSQL (``journal_url``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

import harness


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

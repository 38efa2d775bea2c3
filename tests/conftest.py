"""Fixtures shared by every suite: databases on SQLite and on a real PostgreSQL server.

``db_url`` is parametrised over both backends: a test that takes it runs twice, once on a fresh SQLite
file and once on a fresh database of a real PostgreSQL server started for the session
(``tests/pg_server.py``: initdb + pg_ctl into a temp folder). Where no server can be started (no
binaries, no unprivileged user to run it as) the PostgreSQL half skips with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from pg_server import PgServer, PgUnavailable


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = PgServer().start()
    except PgUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        server.stop()
        pytest.skip("psycopg is not installed (pip install -e '.[postgres]')")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def new_db_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``new_db_url(name)`` → the URL of a fresh, empty database on the test's backend."""
    def make(name: str = "db") -> str:
        if db_backend == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.sqlite')}"
        server: PgServer = request.getfixturevalue("pg_server")
        return server.create_database(name[:20])
    return make


@pytest.fixture
def db_url(new_db_url: Callable[[str], str]) -> str:
    """A fresh, empty database on SQLite and on PostgreSQL (the test runs once per backend)."""
    return new_db_url("db")

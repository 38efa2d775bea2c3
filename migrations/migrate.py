"""Create and upgrade a database's schemas with Alembic — the only way tables come into being.

Two schemas, each its own Alembic script directory and its own version table, so they can share one
database without seeing each other:

* ``data`` (``migrations/data``): the bar cache, stock master and fundamentals; every store calls
  ``upgrade(engine)`` when it opens a database.
* ``journal`` (``migrations/journal``): the trading journal (``brokers/kis/journal.py``).

A new database gets every table, an old one is upgraded in place, a current one costs one small query.
A database created before migrations existed (its tables and no version table: a bar cache's ``bars``,
a journal's four tables) is recognised and stamped with the first revision, then upgraded like any
other; one holding only some of those tables is refused rather than guessed at.

On PostgreSQL the upgrade holds an advisory lock, so two processes opening one fresh database do not
both try to create it. A database *newer* than this code (a revision it does not know) is refused
with a message instead of being used with a schema the code does not understand.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from configs.database import safe_url
from configs.errors import InputError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Schema:
    """One Alembic script directory (``migrations/<name>``) and how to recognise its pre-migration form."""

    version_table: str
    baseline: str
    legacy_tables: tuple[str, ...]
    """the tables a database created before migrations has (all of them) — stamped ``baseline``"""


SCHEMAS = {
    "data": Schema("krx_data_version", "0001", ("bars",)),
    "journal": Schema("krx_journal_version", "0001", ("intents", "fills", "fill_notices", "events")),
}
_ADVISORY_LOCK = 0x6B72785F6462      # "krx_db": any constant shared by every process of the project

_current: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def _config(schema: str, conn: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / schema))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table"] = SCHEMAS[schema].version_table
    return cfg


def head(schema: str = "data") -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    with _lock:
        key = ("head", schema)
        if key not in _current:
            _current[key] = ScriptDirectory.from_config(_config(schema)).get_current_head()
        return _current[key]


def revision(engine: Engine, schema: str = "data") -> str | None:
    """The revision the database is at (None: never migrated)."""
    table = SCHEMAS[schema].version_table
    with engine.connect() as conn:
        if not inspect(conn).has_table(table):
            return None
        return conn.execute(text(f"select version_num from {table}")).scalar()


def upgrade(engine: Engine, schema: str = "data", target: str = "head", what: str = "database") -> str:
    """Bring ``engine``'s database to ``target`` (default: the newest revision) of ``schema``; returns it.
    A file that is not a database, or a server refusing the DDL, is an ``InputError`` naming ``what`` (the
    setting) and the URL without its password."""
    want = head(schema) if target == "head" else target
    key = (engine.url.render_as_string(hide_password=False), schema)
    if target == "head" and _current.get(key) == want:
        return want
    try:
        return _upgrade(engine, schema, target, want, key, what)
    except (OperationalError, DatabaseError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(f"{what} {safe_url(str(engine.url))!r}: cannot use it ({first})") from None


def _upgrade(engine: Engine, schema: str, target: str, want: str, key: tuple[str, str], what: str) -> str:
    from alembic import command
    from alembic.script import ScriptDirectory

    spec = SCHEMAS[schema]
    shown = safe_url(str(engine.url))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("select pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
        cfg = _config(schema, conn)
        insp = inspect(conn)
        have = None
        if insp.has_table(spec.version_table):
            have = conn.execute(text(f"select version_num from {spec.version_table}")).scalar()
        else:
            present = [t for t in spec.legacy_tables if insp.has_table(t)]
            if present and len(present) < len(spec.legacy_tables):
                missing = [t for t in spec.legacy_tables if t not in present]
                raise InputError(f"{what} {shown!r}: has the table(s) {', '.join(present)} but not "
                                 f"{', '.join(missing)} and no {spec.version_table}: not a {schema} database "
                                 "krx-trader wrote; use another database or move these tables aside")
            if present:
                log.info("%s: a %s database from before migrations; stamping revision %s and upgrading in place",
                         shown, schema, spec.baseline)
                command.stamp(cfg, spec.baseline)
                have = spec.baseline
        if have is not None:
            try:
                ScriptDirectory.from_config(cfg).get_revision(have)
            except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
                raise InputError(f"{what} {shown!r} is at {schema} schema revision {have!r}, newer than this "
                                 f"version of krx-trader knows (newest {want}); upgrade krx-trader") from None
        if have != want:
            log.info("%s: upgrading schema %s from %s to %s", shown, schema, have, want)
            command.upgrade(cfg, want)
    if target == "head":
        _current[key] = want
    return want


def downgrade(engine: Engine, target: str, schema: str = "data") -> None:
    """Take the schema back to ``target`` (tests of the upgrade path)."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_config(schema, conn), target)
    _current.pop((engine.url.render_as_string(hide_password=False), schema), None)


def forget(engine: Engine | None = None) -> None:
    """Drop the "already current" memo (tests that rebuild a database under the same URL)."""
    with _lock:
        if engine is None:
            for k in [k for k in _current if k[0] != "head"]:
                _current.pop(k, None)
        else:
            url = engine.url.render_as_string(hide_password=False)
            for k in [k for k in _current if k[0] == url]:
                _current.pop(k, None)

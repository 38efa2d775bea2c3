"""Database URLs as users write them (``data.cache_url``, ``broker.kis.journal_url``, ``--cache``).

One place turns a URL into an SQLAlchemy engine, so every way a URL can be wrong — not a URL, an
unknown dialect, a driver that is not installed, a file that cannot be opened, a server that does not
answer — is one ``InputError`` naming the setting and the URL (password hidden), never an SQLAlchemy
traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from configs.errors import InputError

EXAMPLES = "e.g. sqlite:///data/cache/bars.sqlite or postgresql+psycopg://user@host/db"


def safe_url(url: str) -> str:
    """``url`` for messages: the password replaced by ``***``; unparseable text cut short."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url if len(url) <= 80 else url[:77] + "..."


def check_db_url(url: str) -> str:
    """``url`` when it parses and names a dialect SQLAlchemy has; else ``ValueError`` (for pydantic)."""
    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ValueError(f"{safe_url(url)!r} is not a usable database URL ({str(exc).splitlines()[0]}); "
                         f"{EXAMPLES}") from None
    return url


def sqlite_file_missing(url: str) -> bool:
    """True when ``url`` names an SQLite file that does not exist (or an in-memory database): a reader
    then has nothing to read, and opening it would create an empty database as a side effect. Not a
    URL at all: False (opening it gives the error that names the problem)."""
    try:
        u = make_url(url)
    except ArgumentError:
        return False
    if u.get_backend_name() != "sqlite":
        return False
    db = u.database or ""
    return not db or db == ":memory:" or not Path(db).expanduser().is_file()


def open_engine(url: str, what: str = "database", sqlite_pragmas: Sequence[str] = ()) -> Engine:
    """An engine for ``url`` whose connection works (SQLite: the folder is created first).

    ``sqlite_pragmas`` (e.g. ``"journal_mode=WAL"``) run on every new SQLite connection, the probe's
    included — which is also what unmasks a file that is not a database: SQLite opens anything and
    complains only when it first reads the file."""
    try:
        check_db_url(url)
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from None
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:"):
        try:
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{what} {safe_url(url)!r}: cannot create its folder ({exc.strerror})") from None
    try:
        engine = create_engine(url)
        if sqlite_pragmas and engine.dialect.name == "sqlite":
            def _pragmas(dbapi_conn, _record) -> None:
                cur = dbapi_conn.cursor()
                for pragma in sqlite_pragmas:
                    cur.execute(f"PRAGMA {pragma}")
                cur.close()

            event.listen(engine, "connect", _pragmas)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except ModuleNotFoundError as exc:
        if u.get_backend_name() == "postgresql" and u.get_driver_name() != "psycopg":
            raise InputError(f"{what} {safe_url(url)!r}: the driver {exc.name!r} is not installed; write the URL "
                             "as postgresql+psycopg://… for the driver this project installs "
                             "(pip install -e '.[postgres]')") from None
        raise InputError(f"{what} {safe_url(url)!r}: the driver {exc.name!r} is not installed "
                         "(PostgreSQL: pip install 'psycopg[binary]')") from None
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(f"{what} {safe_url(url)!r}: cannot open it ({first})") from None
    return engine

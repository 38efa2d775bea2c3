"""The trading journal: every intent, its state, the fills booked and the notices seen, in SQL.

Why a journal: a trader process can die at any moment — after handing an order to the wire and
before reading the reply, between a fill notice and its bookkeeping. On restart the broker asks
KIS what happened and uses the journal to know which orders are *ours*, what each one had booked,
and which POSTs never got an answer (DESIGN "Live order flow"; ``brokers/kis/reconcile.py``).

Tables (SQLAlchemy 2.x core, portable SQL only: SQLite by default, or PostgreSQL with
``broker.kis.journal_url: postgresql+psycopg://…``). They are declared here and created and upgraded
only by the Alembic migrations of ``migrations/journal`` (version table ``krx_journal_version``, so a
journal can share a database with the market data); ``tests/kis/test_journal.py`` checks that the two
agree on both backends. A journal from before migrations is stamped and used; one from before scopes
(no env/account columns) is refused with ``JournalSchemaError``.

* ``intents`` — one row per order the strategy asked for (and one per revision: a revise is a new
  order at KIS). ``state`` uses the lifecycle's vocabulary (``brokers/kis/lifecycle.OrderState``)
  and is written only by ``Lifecycle.transition``. ``sent_at`` is journaled *before* the POST
  leaves, so an intent without an answer can be looked up at KIS by its submit-time window;
  ``odno``/``branch``/``ord_time`` come from KIS's answer.
* ``fills`` — what the book booked, one row per increase of an order's filled quantity, keyed by
  ``(order number, filled total after it)``: a booking is recorded once by construction.
* ``fill_notices`` — every distinct fill notice seen, so the running notice total of an order
  survives a restart and a notice is never counted twice.
* ``events`` — an append-only log (request, reply, notice, alert, reconcile…) with a JSON payload
  that never contains secrets.

Identity: every row carries the environment (paper/real), the account and the app key it belongs
to (``JournalScope``), as non-reversible ids. Paper and live may share a journal (the default
``journal_url``) without ever seeing each other's orders: every query of a bound journal is scoped.

Times: every timestamp is stored and returned as an aware KST datetime on both backends
(``KSTDateTime``).

Files: a SQLite journal and its ``-wal``/``-shm`` companions are created readable by the owner
only (0600): they hold the account's trading history.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import (Column, DateTime, Float, Integer, MetaData, String, Table, Text, TypeDecorator,
                        UniqueConstraint, bindparam, func, insert, inspect, select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from configs.database import check_db_url, open_engine, safe_url
from configs.errors import InputError
from market.calendar import KST
from migrations import migrate

JOURNAL_KEY = "broker.kis.journal_url"
"""The setting named in every message about a journal URL (``run.py monitor`` names ``--journal``)."""
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL")
"""durable enough to survive kill -9 (WAL), fast enough for ticks"""


class KSTDateTime(TypeDecorator):
    """A timezone-aware timestamp, KST-aware in and out on every backend.

    PostgreSQL keeps the instant (``timestamptz``) and returns it in the session's zone; SQLite keeps
    text without an offset. Converting to KST before writing and after reading makes both store the
    KST wall time and both return the same aware value; a naive value is taken as KST wall time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return _aware(value)

    def process_result_value(self, value, dialect):
        return _aware(value)


metadata = MetaData()

_SCOPE = (Column("env", String(8), nullable=False, index=True),
          Column("account", String(24), nullable=False, index=True),
          Column("app_key", String(24), nullable=False))


def _scope_columns(nullable: bool = False) -> list[Column]:
    return [Column(c.name, c.type, nullable=nullable, index=c.index) for c in _SCOPE]


intents = Table(
    "intents", metadata,
    Column("id", String(36), primary_key=True),
    *_scope_columns(),
    Column("session_day", String(10), nullable=False, index=True),   # the KST session the order works in
    Column("created_at", KSTDateTime(), nullable=False),
    Column("updated_at", KSTDateTime(), nullable=False),
    Column("bt_ref", Integer),                                       # backtrader order ref in that process
    Column("kind", String(8), nullable=False),                       # new | revise
    Column("code", String(12), nullable=False),
    Column("side", String(4), nullable=False),                       # buy | sell
    Column("qty", Integer, nullable=False),
    Column("price", Integer, nullable=False),                        # 0 for market orders
    Column("ord_dvsn", String(2), nullable=False),
    Column("state", String(12), nullable=False, index=True),
    Column("odno", String(20), index=True),
    Column("branch", String(10)),
    Column("replaces", String(36)),                                  # intent id a revision replaces
    Column("orig_odno", String(20)),                                 # revisions: the order number revised
    Column("sent_at", KSTDateTime()),                      # journaled before the POST leaves
    Column("ord_time", String(6)),                                   # ORD_TMD (HHMMSS KST) from KIS
    Column("filled_qty", Integer, nullable=False, default=0),
    Column("filled_value", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False, default=""),
)

fills = Table(
    "fills", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_scope_columns(),
    Column("fill_key", String(120), nullable=False),
    Column("intent_id", String(36), index=True),
    Column("odno", String(20), index=True),
    Column("ts", KSTDateTime(), nullable=False),
    Column("code", String(12), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("price", Float, nullable=False),
    Column("commission", Integer, nullable=False, default=0),
    Column("tax", Integer, nullable=False, default=0),
    Column("source", String(12), nullable=False),                    # notice | check | recovery
    UniqueConstraint("env", "account", "fill_key", name="uq_fill_key"),
)

fill_notices = Table(
    "fill_notices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_scope_columns(),
    Column("notice_key", String(120), nullable=False),
    Column("intent_id", String(36), index=True),
    Column("odno", String(20), index=True),
    Column("ts", KSTDateTime(), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("price", Float, nullable=False),
    UniqueConstraint("env", "account", "notice_key", name="uq_notice_key"),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_scope_columns(nullable=True),
    Column("ts", KSTDateTime(), nullable=False, index=True),
    Column("kind", String(24), nullable=False, index=True),
    Column("intent_id", String(36)),
    Column("odno", String(20)),
    Column("message", Text, nullable=False, default=""),
    Column("payload", Text, nullable=False, default="{}"),
)


class JournalSchemaError(InputError):
    """The journal was written by an older version whose rows carry no env/account identity."""


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(("krx-trader",) + parts).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class JournalScope:
    """Whose rows these are: environment, account and app key, as ids that do not reveal them."""

    env: str
    account: str
    app_key: str

    @classmethod
    def of(cls, env: str, cano: str, product_code: str, app_key: str) -> "JournalScope":
        return cls(str(env), _digest("account", cano, product_code), _digest("appkey", app_key))

    def row(self) -> dict[str, str]:
        return {"env": self.env, "account": self.account, "app_key": self.app_key}


@dataclass
class Intent:
    id: str
    env: str
    account: str
    app_key: str
    session_day: str
    created_at: datetime
    updated_at: datetime
    bt_ref: int | None
    kind: str
    code: str
    side: str
    qty: int
    price: int
    ord_dvsn: str
    state: str
    odno: str | None
    branch: str | None
    replaces: str | None
    orig_odno: str | None
    sent_at: datetime | None
    ord_time: str | None
    filled_qty: int
    filled_value: int
    reason: str

    @property
    def day(self) -> date:
        return date.fromisoformat(self.session_day)


@dataclass(frozen=True)
class FillRow:
    """One booking: the increase of an order's filled quantity (``key`` unique per order and total)."""

    key: str
    odno: str
    ts: datetime
    code: str
    side: str
    qty: int
    price: float
    commission: int
    tax: int
    source: str


@dataclass(frozen=True)
class NoticeRow:
    """A distinct fill notice (``key`` from the notice's own fields)."""

    key: str
    odno: str
    ts: datetime
    qty: int
    price: float


def _aware(ts: datetime | None) -> datetime | None:
    """``ts`` as aware KST; a naive value is KST wall time (what SQLite returns for a KST value)."""
    if ts is None:
        return None
    return ts.replace(tzinfo=KST) if ts.tzinfo is None else ts.astimezone(KST)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: another backend, or an in-memory database)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" \
            or u.database.startswith("file:"):
        return None
    return Path(u.database).expanduser()


def _create_owner_only(path: Path) -> None:
    """Create ``path`` (and its folder) when missing, readable and writable by the owner only (0600).
    An existing file is left alone until it proved to be a journal (``Journal._secure_files``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    os.close(fd)


_UPSERT_DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}
"""the backends a journal runs on (each has its own INSERT … ON CONFLICT)"""


class _AlreadyRecorded(Exception):
    """A fill or notice with this key is in the journal: the transaction is rolled back, nothing written."""


# Statements built once and executed with a row of parameters: building ``insert(t).values(**row)``
# for every write cost more than the write itself (SQLAlchemy coerces every value into the statement
# and derives its cache key each time), and journal writes run on the trading loop's thread.
_INSERT_INTENT = insert(intents)
_INSERT_EVENT = insert(events)
_UPDATE_INTENT = update(intents).where(intents.c.id == bindparam("intent_key"))
_INSERT_ONCE: dict[tuple[str, str], Any] = {}


def _insert_once_statement(dialect_name: str, table: Table) -> Any:
    key = (dialect_name, table.name)
    stmt = _INSERT_ONCE.get(key)
    if stmt is None:
        stmt = _INSERT_ONCE[key] = (_UPSERT_DIALECTS[dialect_name].insert(table).on_conflict_do_nothing()
                                    .returning(table.c.id))
    return stmt


def _insert_once(conn: Connection, table: Table, row: dict[str, Any]) -> None:
    """Insert ``row`` unless its unique key is already there (then ``_AlreadyRecorded``).

    ``INSERT … ON CONFLICT DO NOTHING`` on both backends rather than catching the unique violation: no
    error is raised inside the transaction (on PostgreSQL an error aborts it until the rollback), the
    server logs no error per duplicate notice, and any *other* integrity error (a NOT NULL, a bug) is
    still raised instead of being taken for a duplicate."""
    # (not rowcount: it is -1 for a RETURNING insert on PostgreSQL)
    if conn.execute(_insert_once_statement(conn.dialect.name, table), row).first() is None:
        raise _AlreadyRecorded(table.name)


class Journal:
    """Thread-safe journal (the order workers, the ws thread and the strategy thread all write).

    ``scope`` binds it to one environment/account/app key (``bind`` does it later, once the live
    session knows its credentials); an unbound journal reads everything (the dashboard) and refuses
    to write intents or fills. ``what`` names the setting the URL came from in error messages: a URL
    that cannot be used (not a URL, no driver, no server, a file that is not a database, a journal too
    old or too new) is one ``InputError`` naming it and the URL without its password.
    """

    def __init__(self, url: str = "sqlite:///data/journal.sqlite", now=lambda: datetime.now(KST),
                 scope: JournalScope | None = None, what: str = JOURNAL_KEY) -> None:
        self.url = url
        self.what = what
        try:
            check_db_url(url)
            self._file = _sqlite_file(url)
        except ValueError as exc:
            raise InputError(f"{what}: {exc}") from None
        if self._file is not None:
            try:
                _create_owner_only(self._file)
            except OSError as exc:
                raise InputError(f"{what} {safe_url(url)!r}: cannot create the journal file "
                                 f"({exc.strerror})") from None
        self.engine: Engine = open_engine(url, what, sqlite_pragmas=SQLITE_PRAGMAS)
        try:
            if self.engine.dialect.name not in _UPSERT_DIALECTS:
                raise InputError(f"{what} {safe_url(url)!r}: the journal runs on SQLite or PostgreSQL, "
                                 f"not {self.engine.dialect.name}")
            self._check_schema()
            migrate.upgrade(self.engine, "journal", what=what)
            self._secure_files()
        except BaseException:
            self.engine.dispose()
            raise
        self._now = now
        self._lock = threading.Lock()
        self.scope = scope

    def _check_schema(self) -> None:
        """Refuse a journal from before scopes: its rows cannot be told apart by environment/account."""
        insp = inspect(self.engine)
        if insp.has_table("intents"):
            cols = {c["name"] for c in insp.get_columns("intents")}
            if "env" not in cols or "kind" not in cols:
                raise JournalSchemaError(
                    f"{self.what} {safe_url(self.url)!r}: written by an older krx-trader (its rows carry no "
                    "environment or account, so paper and live orders could be mistaken for each other); move "
                    f"the file aside or set {self.what} to a new file")

    def _secure_files(self) -> None:
        """The SQLite file and its WAL companions, 0600 (they exist once a connection has used WAL)."""
        if self._file is None:
            return
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self._file}{suffix}")
            if p.exists():
                os.chmod(p, 0o600)

    # ------------------------------------------------------------------ scope
    def bind(self, scope: JournalScope) -> None:
        if self.scope is not None and self.scope != scope:
            raise ValueError("this journal is already bound to another environment/account/app key")
        self.scope = scope

    def _scope(self) -> JournalScope:
        if self.scope is None:
            raise RuntimeError("the journal is not bound to an environment/account (Journal.bind)")
        return self.scope

    def _where(self, table: Table, q):
        if self.scope is None:
            return q
        return q.where(table.c.env == self.scope.env, table.c.account == self.scope.account)

    # ------------------------------------------------------------------ intents
    def new_intent(self, *, kind: str, code: str, side: str, qty: int, price: int, ord_dvsn: str,
                   bt_ref: int | None, session_day: date, state: str, replaces: str | None = None,
                   orig_odno: str | None = None, reason: str = "") -> Intent:
        now = self._now()
        row = dict(id=str(uuid.uuid4()), **self._scope().row(), session_day=session_day.isoformat(), created_at=now,
                   updated_at=now, bt_ref=bt_ref, kind=kind, code=code, side=side, qty=int(qty), price=int(price),
                   ord_dvsn=ord_dvsn, state=state, odno=None, branch=None, replaces=replaces, orig_odno=orig_odno,
                   sent_at=None, ord_time=None, filled_qty=0, filled_value=0, reason=reason)
        with self._lock, self.engine.begin() as conn:
            conn.execute(_INSERT_INTENT, row)
        return Intent(**row)

    def record(self, intent_id: str, changes: dict[str, Any], *, fill: FillRow | None = None,
               notice: NoticeRow | None = None, event: tuple[str, str] | None = None) -> bool:
        """One transaction: the intent's new state/fields, the fill booked and the notice seen with
        it, and an ``(kind, message)`` event for the log. False (and nothing written) when ``notice``
        or ``fill`` was already recorded."""
        scope = self._scope()
        now = self._now()
        changes = dict(changes, updated_at=now)
        try:
            with self._lock, self.engine.begin() as conn:
                if event is not None:
                    conn.execute(_INSERT_EVENT, dict(**scope.row(), ts=now, kind=event[0], intent_id=intent_id,
                                                     odno=notice.odno if notice else None, message=event[1],
                                                     payload="{}"))
                if notice is not None:
                    _insert_once(conn, fill_notices, dict(
                        **scope.row(), notice_key=notice.key, intent_id=intent_id, odno=notice.odno, ts=notice.ts,
                        qty=int(notice.qty), price=float(notice.price)))
                if fill is not None:
                    _insert_once(conn, fills, dict(
                        **scope.row(), fill_key=fill.key, intent_id=intent_id, odno=fill.odno, ts=fill.ts,
                        code=fill.code, side=fill.side, qty=int(fill.qty), price=float(fill.price),
                        commission=int(fill.commission), tax=int(fill.tax), source=fill.source))
                conn.execute(_UPDATE_INTENT, dict(changes, intent_key=intent_id))
        except _AlreadyRecorded:
            return False
        return True

    def intent(self, intent_id: str) -> Intent | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(intents).where(intents.c.id == intent_id)).mappings().first()
        return self._intent(row) if row else None

    def intents_for_day(self, day: date) -> list[Intent]:
        return self._intents(intents.c.session_day == day.isoformat())

    def intents_in_states(self, states: Iterable[str]) -> list[Intent]:
        return self._intents(intents.c.state.in_(sorted(states)))

    def open_intents(self) -> list[Intent]:
        from brokers.kis.lifecycle import OPEN_STATES

        return self.intents_in_states(s.value for s in OPEN_STATES)

    def _intents(self, *conditions) -> list[Intent]:
        q = self._where(intents, select(intents).where(*conditions)).order_by(intents.c.created_at)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [self._intent(r) for r in rows]

    @staticmethod
    def _intent(row) -> Intent:
        return Intent(**row)

    def claimed_odnos(self, day: date) -> dict[int, str]:
        """Order numbers (as numbers) that an intent working on ``day`` already claims → intent id."""
        q = self._where(intents, select(intents.c.odno, intents.c.id).where(
            intents.c.session_day == day.isoformat(), intents.c.odno.is_not(None)))
        with self.engine.connect() as conn:
            return {int(o): i for o, i in conn.execute(q).all() if str(o).strip().isdigit()}

    # ------------------------------------------------------------------ fills and notices
    def totals(self, intent_id: str) -> tuple[int, float, int, float]:
        """(booked qty, booked value, noticed qty, noticed value) of one intent, from its rows."""
        with self.engine.connect() as conn:
            b = conn.execute(select(func.coalesce(func.sum(fills.c.qty), 0),
                                    func.coalesce(func.sum(fills.c.qty * fills.c.price), 0.0))
                             .where(fills.c.intent_id == intent_id)).one()
            n = conn.execute(select(func.coalesce(func.sum(fill_notices.c.qty), 0),
                                    func.coalesce(func.sum(fill_notices.c.qty * fill_notices.c.price), 0.0))
                             .where(fill_notices.c.intent_id == intent_id)).one()
        return int(b[0]), float(b[1]), int(n[0]), float(n[1])

    def notice_keys(self, intent_id: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(fill_notices.c.notice_key).where(fill_notices.c.intent_id == intent_id)).all()
        return {r[0] for r in rows}

    def fills_for(self, odno: str | None = None, intent_id: str | None = None) -> list[dict[str, Any]]:
        q = select(fills)
        if odno is not None:
            q = q.where(fills.c.odno == odno)
        if intent_id is not None:
            q = q.where(fills.c.intent_id == intent_id)
        with self.engine.connect() as conn:
            rows = conn.execute(self._where(fills, q).order_by(fills.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def all_fills(self, since: datetime | None = None) -> list[dict[str, Any]]:
        q = select(fills)
        if since is not None:
            q = q.where(fills.c.ts >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(self._where(fills, q).order_by(fills.c.id)).mappings().all()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ events
    def log(self, kind: str, message: str = "", *, intent_id: str | None = None, odno: str | None = None,
            payload: dict[str, Any] | None = None) -> None:
        scope = self.scope.row() if self.scope is not None else {}
        with self._lock, self.engine.begin() as conn:
            conn.execute(_INSERT_EVENT, dict(**scope, ts=self._now(), kind=kind, intent_id=intent_id, odno=odno,
                                             message=message,
                                             payload=json.dumps(payload or {}, ensure_ascii=False, default=str)))

    def events(self, kinds: Iterable[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        q = self._where(events, select(events))
        if kinds is not None:
            q = q.where(events.c.kind.in_(list(kinds)))
        q = q.order_by(events.c.id.desc())
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [dict(r, payload=json.loads(r["payload"] or "{}")) for r in reversed(rows)]

    def event_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(self._where(events, select(func.count()).select_from(events))).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Journal", "JournalScope", "JournalSchemaError", "Intent", "FillRow", "NoticeRow"]

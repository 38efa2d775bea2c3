"""The trading journal: every intent, request, reply, notice, fill and reconciliation, in SQL.

Why a journal: a trader process can die at any moment — between sending an order and reading
the reply, between a fill notice and its bookkeeping. On restart the broker rebuilds positions and
open orders from KIS, and uses the journal to know which of those orders are *ours*, which intent
each belongs to, which fills were already counted, and which order POSTs never got an answer.

Tables (SQLAlchemy 2.x core; SQLite by default, any SQLAlchemy URL):

* ``intents``   — one row per order the strategy asked for (the client-side identity of an order),
  with its state machine: SUBMITTING → SENT → ACCEPTED → PARTIAL → FILLED | CANCELLED |
  EXPIRED | REJECTED | REPLACED, or UNKNOWN when a POST timed out and KIS has not told us yet.
  ``odno`` (KIS order number) and ``branch`` (KRX_FWDG_ORD_ORGNO) are filled when known;
  ``replaces`` links a revision to the intent it replaced (the revise chain).
* ``fills``     — one row per execution, unique on ``fill_key`` so a duplicate notice can never be
  counted twice, even across restarts.
* ``events``    — an append-only log (request, reply, notice, alert, reconcile...) with a JSON
  payload that never contains secrets (the broker passes already-redacted dicts).

Every write is its own short transaction, so what is in the journal is never half-written.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import (Column, DateTime, Float, Integer, MetaData, String, Table, Text, UniqueConstraint,
                        create_engine, event, insert, select, update)
from sqlalchemy.engine import Engine

from market.calendar import KST

FINAL_STATES = frozenset({"FILLED", "CANCELLED", "EXPIRED", "REJECTED", "REPLACED"})
OPEN_STATES = frozenset({"SUBMITTING", "SENT", "ACCEPTED", "PARTIAL", "UNKNOWN"})

metadata = MetaData()

intents = Table(
    "intents", metadata,
    Column("id", String(36), primary_key=True),
    Column("session_day", String(10), nullable=False, index=True),   # KST trading day, YYYY-MM-DD
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("bt_ref", Integer),                                       # backtrader order ref in that process
    Column("code", String(12), nullable=False),
    Column("side", String(4), nullable=False),                       # buy | sell
    Column("qty", Integer, nullable=False),
    Column("price", Integer, nullable=False),                        # 0 for market orders
    Column("ord_dvsn", String(2), nullable=False),
    Column("state", String(12), nullable=False, index=True),
    Column("odno", String(20), index=True),
    Column("branch", String(10)),
    Column("replaces", String(36)),                                  # intent id this one revised
    Column("filled_qty", Integer, nullable=False, default=0),
    Column("filled_value", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False, default=""),
)

fills = Table(
    "fills", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fill_key", String(120), nullable=False),
    Column("intent_id", String(36), index=True),
    Column("odno", String(20), index=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("code", String(12), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("price", Float, nullable=False),
    Column("commission", Integer, nullable=False, default=0),
    Column("tax", Integer, nullable=False, default=0),
    Column("source", String(12), nullable=False),                    # notice | recovered
    UniqueConstraint("fill_key", name="uq_fill_key"),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(24), nullable=False, index=True),
    Column("intent_id", String(36)),
    Column("odno", String(20)),
    Column("message", Text, nullable=False, default=""),
    Column("payload", Text, nullable=False, default="{}"),
)


@dataclass
class Intent:
    id: str
    session_day: str
    created_at: datetime
    updated_at: datetime
    bt_ref: int | None
    code: str
    side: str
    qty: int
    price: int
    ord_dvsn: str
    state: str
    odno: str | None
    branch: str | None
    replaces: str | None
    filled_qty: int
    filled_value: int
    reason: str

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def _aware(ts: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes even for timezone columns; they were stored as KST."""
    if ts is None:
        return None
    return ts.replace(tzinfo=KST) if ts.tzinfo is None else ts.astimezone(KST)


def _sqlite_url_ready(url: str) -> None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)


class Journal:
    """Thread-safe journal (the ws thread and the strategy thread both write)."""

    def __init__(self, url: str = "sqlite:///data/journal.sqlite", now=lambda: datetime.now(KST)) -> None:
        _sqlite_url_ready(url)
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):  # durable enough to survive kill -9, fast enough for ticks
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
        metadata.create_all(self.engine)
        self._now = now
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ intents
    def new_intent(self, *, code: str, side: str, qty: int, price: int, ord_dvsn: str, bt_ref: int | None,
                   session_day: date, replaces: str | None = None, state: str = "SUBMITTING") -> Intent:
        now = self._now()
        row = dict(id=str(uuid.uuid4()), session_day=session_day.isoformat(), created_at=now, updated_at=now,
                   bt_ref=bt_ref, code=code, side=side, qty=int(qty), price=int(price), ord_dvsn=ord_dvsn,
                   state=state, odno=None, branch=None, replaces=replaces, filled_qty=0, filled_value=0, reason="")
        with self._lock, self.engine.begin() as conn:
            conn.execute(insert(intents).values(**row))
        return Intent(**row)

    def update_intent(self, intent_id: str, **changes: Any) -> None:
        changes["updated_at"] = self._now()
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(intents).where(intents.c.id == intent_id).values(**changes))

    def intent(self, intent_id: str) -> Intent | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(intents).where(intents.c.id == intent_id)).mappings().first()
        return self._intent(row) if row else None

    def intents_for_day(self, day: date, open_only: bool = False) -> list[Intent]:
        q = select(intents).where(intents.c.session_day == day.isoformat())
        if open_only:
            q = q.where(intents.c.state.in_(sorted(OPEN_STATES)))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(intents.c.created_at)).mappings().all()
        return [self._intent(r) for r in rows]

    def open_intents(self) -> list[Intent]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(intents).where(intents.c.state.in_(sorted(OPEN_STATES)))
                                .order_by(intents.c.created_at)).mappings().all()
        return [self._intent(r) for r in rows]

    @staticmethod
    def _intent(row) -> Intent:
        d = dict(row)
        d["created_at"] = _aware(d["created_at"])
        d["updated_at"] = _aware(d["updated_at"])
        return Intent(**d)

    # ------------------------------------------------------------------ fills
    def record_fill(self, *, fill_key: str, intent_id: str | None, odno: str, ts: datetime, code: str, side: str,
                    qty: int, price: float, commission: int, tax: int, source: str) -> bool:
        """Store a fill once; False when ``fill_key`` was already recorded (a duplicate)."""
        with self._lock, self.engine.begin() as conn:
            exists = conn.execute(select(fills.c.id).where(fills.c.fill_key == fill_key)).first()
            if exists:
                return False
            conn.execute(insert(fills).values(fill_key=fill_key, intent_id=intent_id, odno=odno, ts=ts, code=code,
                                              side=side, qty=int(qty), price=float(price),
                                              commission=int(commission), tax=int(tax), source=source))
        return True

    def fills_for(self, odno: str | None = None, intent_id: str | None = None) -> list[dict[str, Any]]:
        q = select(fills)
        if odno is not None:
            q = q.where(fills.c.odno == odno)
        if intent_id is not None:
            q = q.where(fills.c.intent_id == intent_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(fills.c.id)).mappings().all()
        return [dict(r, ts=_aware(r["ts"])) for r in rows]

    def all_fills(self, since: datetime | None = None) -> list[dict[str, Any]]:
        q = select(fills)
        if since is not None:
            q = q.where(fills.c.ts >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(fills.c.id)).mappings().all()
        return [dict(r, ts=_aware(r["ts"])) for r in rows]

    # ------------------------------------------------------------------ events
    def log(self, kind: str, message: str = "", *, intent_id: str | None = None, odno: str | None = None,
            payload: dict[str, Any] | None = None) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(insert(events).values(ts=self._now(), kind=kind, intent_id=intent_id, odno=odno,
                                               message=message,
                                               payload=json.dumps(payload or {}, ensure_ascii=False, default=str)))

    def events(self, kinds: Iterable[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        q = select(events)
        if kinds is not None:
            q = q.where(events.c.kind.in_(list(kinds)))
        q = q.order_by(events.c.id.desc())
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [dict(r, ts=_aware(r["ts"]), payload=json.loads(r["payload"] or "{}")) for r in reversed(rows)]

    def event_count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    def close(self) -> None:
        self.engine.dispose()

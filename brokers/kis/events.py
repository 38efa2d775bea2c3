"""Typed messages between the store's threads and the broker (cerebro's thread).

Why typed and not ``("reply", payload)`` tuples: each message is a dataclass the broker handles by
a named method (``KISBroker._handlers`` maps the type to it), so a reader can follow a message from
the thread that makes it to the code that applies it, and a misspelt kind fails at import time.

Requests go from the broker to the store (``PostRequest``, ``ReadRequest``); results come back
(``Post*``, ``OrdersRead``, ``BalanceRead``, ``ReadFailed``) together with what the WebSocket
reports (``NoticeReceived``, ``ConnectionChanged``, ``Reconnected``). Nothing here imports the
broker or the store, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from brokers.kis.models import DailyOrder, OrderReply
from brokers.kis.ws_events import ExecutionNotice

PostKind = Literal["new", "revise", "cancel"]


@dataclass(frozen=True)
class PostRequest:
    """One order POST for an order worker. ``intent_id`` names the intent it acts for (for a cancel,
    the order being cancelled). ``window_end``: never send at or after it (the order window closed)."""

    kind: PostKind
    intent_id: str
    code: str
    side: str
    qty: int | None
    price: int
    ord_dvsn: str
    branch: str = ""
    orig_odno: str = ""
    window_end: datetime | None = None


@dataclass(frozen=True)
class PostPlaced:
    """KIS answered the POST with an order number: the order (revise, cancel) exists."""

    request: PostRequest
    reply: OrderReply
    latency_s: float


@dataclass(frozen=True)
class PostRefused:
    """KIS answered clearly that it did not take the request (a business rejection)."""

    request: PostRequest
    msg_cd: str
    message: str


@dataclass(frozen=True)
class PostAmbiguous:
    """No clear answer (timeout, 5xx, connection reset, unreadable reply): it may exist at KIS."""

    request: PostRequest
    error: str


@dataclass(frozen=True)
class PostNotSent:
    """The request certainly never reached KIS: the trader is stopping, the window closed, or the
    connection failed before sending (or KIS's rate limit refused it before processing)."""

    request: PostRequest
    reason: str
    stopping: bool = False


@dataclass(frozen=True)
class ReadRequest:
    """A look-up of orders at KIS (``inquire-daily-ccld`` over ``start``..``end``), for ``purpose``.
    ``code``/``odno`` narrow it (a look-up by an order's own identity)."""

    purpose: str
    start: date
    end: date
    code: str = ""
    odno: str = ""
    serial: int = 0


@dataclass(frozen=True)
class OrdersRead:
    """Rows KIS returned. ``asked_at``/``answered_at`` (exchange clock) bound when they were true."""

    request: ReadRequest
    rows: tuple[DailyOrder, ...]
    asked_at: datetime
    answered_at: datetime


@dataclass(frozen=True)
class BalanceRead:
    """A fresh ``inquire-balance`` snapshot (``account.AccountSnapshot``) for the checker."""

    purpose: str
    snapshot: Any
    serial: int = 0


@dataclass(frozen=True)
class ReadFailed:
    """A look-up that still failed after its retries (the next one is scheduled by the broker)."""

    request: ReadRequest | str
    error: str
    serial: int = 0


@dataclass(frozen=True)
class NoticeReceived:
    notice: ExecutionNotice
    received: float = 0.0            # time.perf_counter() on the ws thread


@dataclass(frozen=True)
class ConnectionChanged:
    state: str
    reason: str = ""


@dataclass(frozen=True)
class Reconnected:
    """The WebSocket is back and resubscribed: notices may have been missed meanwhile."""

    at: float = field(default=0.0)

"""``KISStore``: the one connection to KIS a trader process holds (backtrader's Store pattern).

As backtrader's ``IBStore`` does, the store owns the connections and the threads and hands out a
broker (``getbroker``) and data feeds (``getdata``) that share them:

* the REST client (``KISClient``: token cache, rate limiter, transport retries);
* the WebSocket (``KISWebSocket``: trades and execution notices, reconnecting on its own thread);
* **order workers** (``order_workers`` threads): each sends one order/revise/cancel POST and
  reports a typed outcome — placed, refused, *ambiguous* (may exist at KIS) or certainly not
  sent. A POST is checked against the trader's stop and its order window right before it leaves
  (``KISNotSent``). Workers never look anything up and never re-send: resolving an ambiguous
  outcome is the broker's job, at KIS, by the order's own identity;
* a **reader** thread for look-ups (``inquire-daily-ccld``, ``inquire-balance``), retried with
  backoff by one decorator (``retried``) — never used around order creation;
* the journal and the Account Manager.

Nothing on those threads touches backtrader objects or the broker's state: results go to one
inbox as typed events (``brokers/kis/events.py``) that the broker applies on cerebro's thread, and
every input (a tick for a feed, an event for the broker) wakes cerebro's loop through one
condition (``wait_input``), so a tick reaches the strategy without polling delays.

The store does not import the broker or the feed: they register their classes (``BrokerCls``,
``DataCls``) when imported, as backtrader's live stores do.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

from brokers.kis.account import AccountManager, AccountSnapshot
from brokers.kis.clock import system_now
from brokers.kis.errors import KISError, KISNotSent, KISRateLimited, KISRejected, KISTransportError
from brokers.kis.events import (BalanceRead, ConnectionChanged, NoticeReceived, OrdersRead, PostAmbiguous,
                                PostNotSent, PostPlaced, PostRefused, PostRequest, ReadFailed, ReadRequest,
                                Reconnected)
from brokers.kis.journal import Journal
from brokers.kis.models import DailyOrder
from market.calendar import KST

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadRetry:
    """Backoff of a failed look-up: ``attempts`` in all, waits doubling from ``first_delay_s``."""

    attempts: int = 4
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0


def retried(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Retry a *read* with exponential backoff (``self.read_retry``), interruptible by ``stop``.

    One decorator for every look-up, as freqtrade's ``retrier``; deliberately never applied to an
    order POST, whose ambiguous outcome must be looked up, not repeated. ``KISRejected`` is an
    answer, not a failure, and is not retried."""

    @functools.wraps(fn)
    def wrapper(self: "KISStore", *args: Any, **kwargs: Any) -> Any:
        policy: ReadRetry = self.read_retry
        delay = policy.first_delay_s
        for attempt in range(1, policy.attempts + 1):
            try:
                return fn(self, *args, **kwargs)
            except KISRejected:
                raise
            except Exception as exc:  # noqa: BLE001 - every transport/server failure of a read is retried
                if attempt >= policy.attempts or self._stopping.is_set():
                    raise
                log.warning("%s failed (attempt %d of %d): %s; retrying in %.2fs", fn.__name__, attempt,
                            policy.attempts, exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, policy.max_delay_s)
        raise AssertionError("unreachable")

    return wrapper


_yield_interpreter: Callable[[], None] = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))
"""Release the GIL for a moment (a system call), so a thread waiting for it can take it."""


class KISStore:
    """Connections, threads and queues shared by ``KISBroker`` and ``KISData``."""

    BrokerCls: Any = None       # set by brokers/kis/broker.py
    DataCls: Any = None         # set by feeds/kis_live.py: a factory taking the indicator specs

    def __init__(self, client, ws_factory: Callable[..., Any] | None, journal: Journal, *,
                 now: Callable[[], datetime] = system_now,
                 account: AccountManager | None = None, order_workers: int = 2,
                 read_retry: ReadRetry | None = None) -> None:
        self.client = client
        self.journal = journal
        self.now = now
        self.account = account or AccountManager(client, now=now)
        self.order_workers = max(1, int(order_workers))
        self.read_retry = read_retry or ReadRetry()
        self.inbox: "queue.SimpleQueue[Any]" = queue.SimpleQueue()   # typed events for the broker
        self.tick_queues: dict[str, "queue.SimpleQueue[Any]"] = {}   # per code, for the feeds
        self.datas: list[Any] = []
        self.broker = None
        self._ws_factory = ws_factory
        self.ws = None
        self._posts: "queue.Queue[PostRequest | None]" = queue.Queue()
        self._reads: "queue.Queue[Any]" = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._lock = threading.Lock()
        self._halted = threading.Event()      # no POST leaves any more (Ctrl-C, stop)
        self._stopping = threading.Event()    # threads are being shut down
        self._input = threading.Condition()   # any input for cerebro's thread (ticks, broker events)
        self._waited_loop = -1
        self.last_trade_time: datetime | None = None
        self.last_prices: dict[str, int] = {}
        self.connected = threading.Event()
        # progress counters (the monitor shows them; tests wait on them instead of sleeping)
        self._progress = threading.Condition()
        self.pings = 0             # PINGPONG frames seen: everything sent before one has arrived
        self.turn_pings = 0        # ``pings`` when the current turn began: that turn saw everything sent before
        self.done_pings = 0        # ... of the previous turn, which has completed (its strategy step included)
        self.loops = 0             # broker.next() turns completed
        self.reconnects = 0        # WebSocket sessions re-established (and resubscribed)
        self.on_loop: list[Callable[[], None]] = []   # run on cerebro's thread at the end of each broker turn
        self._posts_out = 0        # POSTs handed to the workers and not yet reported back
        self._reads_out = 0        # look-ups queued or running

    # ------------------------------------------------------------------ backtrader Store protocol
    def getbroker(self, **kwargs):
        if self.broker is None:
            self.broker = self.BrokerCls(store=self, **kwargs)
        return self.broker

    def getdata(self, code: str, **kwargs):
        """A live feed for ``code`` with the indicator lines the strategy reads."""
        cls = self.DataCls(kwargs.get("indicators", ()))
        return cls(store=self, dataname=code, name=code, **kwargs)

    def register_data(self, data) -> "queue.SimpleQueue[Any]":
        with self._lock:
            self.datas.append(data)
            q = self.tick_queues.setdefault(data.p.dataname, queue.SimpleQueue())
        if self.ws is not None:
            self.ws.subscribe_trades(data.p.dataname)
        return q

    def start(self) -> None:
        """Start the workers, the reader and the WebSocket once, whoever (broker or a feed) asks first."""
        with self._lock:
            if self._started:
                return
            self._started = True
        for i in range(self.order_workers):
            self._spawn(self._post_worker, f"kis-order-worker-{i + 1}")
        self._spawn(self._read_worker, "kis-reader")
        if self._ws_factory is not None:
            self.ws = self._ws_factory(on_trade=self._on_trade, on_notice=self._on_notice,
                                       on_state=self._on_state, on_reconnected=self._on_reconnected,
                                       on_ping=self._on_ping)
            self.ws.subscribe_notices()
            for code in list(self.tick_queues):
                self.ws.subscribe_trades(code)
            self.ws.start()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def halt(self) -> None:
        """From now on no order POST leaves (safe from any thread, e.g. a signal handler)."""
        self._halted.set()
        self._wake()

    @property
    def halted(self) -> bool:
        return self._halted.is_set()

    def stop(self, post_grace_s: float | None = None) -> None:
        """Halt, let POSTs already on the wire finish (their answers are reported, so the broker can
        journal them), then close everything. Queued work is reported as not sent, never sent."""
        self.halt()
        with self._lock:
            if not self._started:
                return
            self._started = False
        grace = post_grace_s if post_grace_s is not None else float(getattr(self.client, "order_timeout", 10)) + 5
        for _ in range(self.order_workers):
            self._posts.put(None)
        self._stopping.set()
        self._reads.put(None)
        deadline = time.monotonic() + grace
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("%s did not finish within %.0fs; its outcome is resolved at KIS on the next start",
                            t.name, grace)
        self._threads.clear()
        if self.ws is not None:
            self.ws.stop()

    # ------------------------------------------------------------------ inputs (store threads)
    def _wake(self) -> None:
        with self._input:
            self._input.notify_all()
        # Hand the interpreter lock over. The WebSocket thread parses a burst of frames (all codes
        # trading at the same moment: the open, the close, a busy second) without ever blocking, so
        # cerebro's thread, woken by the first tick, used to wait for the lock until the burst was
        # parsed. Releasing it here lets the two threads interleave: bench/live.py measured tick ->
        # strategy p99 4.6 -> 2.6 ms with 39 codes, and the whole burst seen by the strategy sooner.
        _yield_interpreter()

    def _deliver(self, event: Any) -> None:
        self.inbox.put(event)
        self._wake()

    def _on_trade(self, trade) -> None:
        self.last_trade_time = trade.time
        self.last_prices[trade.code] = trade.price   # stop triggers read it (one dict write: thread-safe)
        q = self.tick_queues.get(trade.code)
        if q is not None:
            q.put((time.perf_counter(), trade))
            self._wake()

    def _on_notice(self, notice) -> None:
        self._deliver(NoticeReceived(notice, time.perf_counter()))

    def _on_state(self, state, reason: str = "") -> None:
        name = getattr(state, "name", str(state))
        if name == "CONNECTED":
            self.connected.set()
        elif name in ("DISCONNECTED", "CONNECTING"):
            self.connected.clear()
        for q in list(self.tick_queues.values()):
            q.put(("state", name, reason))
        self._deliver(ConnectionChanged(name, reason))

    def _on_reconnected(self) -> None:
        self._deliver(Reconnected(time.perf_counter()))
        with self._progress:
            self.reconnects += 1
            self._progress.notify_all()

    def _on_ping(self, _stamp: str = "") -> None:
        with self._progress:
            self.pings += 1
            self._progress.notify_all()
        self._wake()   # a turn after the ping proves everything sent before it was applied (monitor, tests)

    # ------------------------------------------------------------------ cerebro's loop
    def has_input(self) -> bool:
        return not self.inbox.empty() or any(not q.empty() for q in self.tick_queues.values())

    def wall_seconds(self, exchange_seconds: float) -> float | None:
        """Wall seconds for a span of the exchange clock (the emulator's accelerated clock runs
        faster than the wall); None when the clock does not say its rate or does not run with the
        wall (stepped: it moves when told, so waiting for it on the wall would only spin)."""
        rate = getattr(self.now, "rate", None)
        return exchange_seconds / rate if rate else None

    def _next_due_in(self) -> float | None:
        """Wall seconds until the first feed's open bar falls due (None: no bar open, or a stepped clock)."""
        dues = [d for d in (data.next_due() for data in self.datas) if d is not None]
        if not dues:
            return None
        return self.wall_seconds(max(0.0, (min(dues) - self.now()).total_seconds()))

    def wait_input(self, timeout: float) -> None:
        """Block cerebro's thread until any input arrives, a feed's bar falls due, or ``timeout``, at most
        once per loop turn: the first feed of a turn waits, the others only look (no busy-waiting, no
        stacked waits). Waking at the bar's end closes a bar whose code has not traded since on time,
        instead of at the next tick of any code or the end of ``timeout``."""
        if timeout <= 0 or self._waited_loop == self.loops:
            return
        due_in = self._next_due_in()
        if due_in is not None:
            timeout = min(timeout, due_in)
            if timeout <= 0:
                return
        self._waited_loop = self.loops
        pings = self.pings
        with self._input:
            self._input.wait_for(lambda: self.has_input() or self._halted.is_set() or self.pings != pings, timeout)

    def begin_turn(self) -> None:
        """Called by the broker when a ``next()`` begins (a turn = the broker's step and the strategy's)."""
        with self._progress:
            self.done_pings, self.turn_pings = self.turn_pings, self.pings
            self._progress.notify_all()

    def mark_loop(self) -> None:
        """Called by the broker at the end of each ``next()``."""
        with self._progress:
            self.loops += 1
            self._progress.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds (re-evaluated on every ping and broker turn)."""
        with self._progress:
            return self._progress.wait_for(predicate, timeout)

    def idle(self) -> bool:
        """Nothing received waits to be applied, no request is on its way and the broker has no
        work scheduled (a look-up due, an order waiting for a worker)."""
        broker_settled = getattr(self.broker, "settled", None)
        return (self._posts_out == 0 and self._reads_out == 0 and not self.has_input()
                and (broker_settled is None or broker_settled()))

    # ------------------------------------------------------------------ order POSTs
    def free_post_slots(self) -> int:
        return 0 if self._halted.is_set() else self.order_workers - self._posts_out

    def post(self, request: PostRequest) -> None:
        """Hand one POST to the workers (the broker keeps at most ``order_workers`` outstanding)."""
        with self._progress:
            self._posts_out += 1
        self._posts.put(request)

    def _post_worker(self) -> None:
        while True:
            req = self._posts.get()
            if req is None:
                return
            try:
                event = self._send(req)
            except Exception as exc:  # noqa: BLE001 - a bug after the request may have left: ambiguous
                log.exception("order worker: unexpected error on %s", req.kind)
                event = PostAmbiguous(req, f"unexpected error: {exc}")
            with self._progress:
                self._posts_out -= 1
                self._progress.notify_all()
            self._deliver(event)

    def _send(self, req: PostRequest):
        def before_send() -> None:
            if self._halted.is_set():
                raise KISNotSent("the trader is stopping")
            if req.window_end is not None and self.now() >= req.window_end:
                raise KISNotSent("the order window closed")

        c = self.client
        t0 = time.perf_counter()
        try:
            if req.kind == "new":
                reply = c.order_cash(req.side, req.code, int(req.qty), int(req.price), req.ord_dvsn,
                                     before_send=before_send)
            elif req.kind == "revise":
                reply = c.revise(req.branch, req.orig_odno, req.qty, int(req.price), req.ord_dvsn,
                                 before_send=before_send)
            else:
                reply = c.cancel(req.branch, req.orig_odno, req.qty, before_send=before_send)
        except KISNotSent as exc:
            return PostNotSent(req, exc.detail, stopping=self._halted.is_set())
        except KISRejected as exc:
            return PostRefused(req, exc.msg_cd, exc.msg1 or str(exc))
        except (KISTransportError, KISRateLimited) as exc:
            return PostNotSent(req, f"not sent: {exc}")
        except KISError as exc:
            if exc.ambiguous:
                return PostAmbiguous(req, str(exc))
            return PostNotSent(req, f"refused before processing: {exc}")
        return PostPlaced(req, reply, time.perf_counter() - t0)

    # ------------------------------------------------------------------ look-ups
    def request_read(self, request: ReadRequest) -> None:
        """Queue a look-up of orders; its ``OrdersRead`` (or ``ReadFailed``) arrives in the inbox."""
        self._queue_read(request)

    def request_balance(self, purpose: str, serial: int = 0) -> None:
        self._queue_read((purpose, serial))

    def _queue_read(self, item: Any) -> None:
        with self._progress:
            self._reads_out += 1
        self._reads.put(item)

    def _read_worker(self) -> None:
        while True:
            item = self._reads.get()
            if item is None:
                return
            try:
                if isinstance(item, ReadRequest):
                    event: Any = self.read_orders(item)
                else:
                    purpose, serial = item
                    event = BalanceRead(purpose, self.read_balance(), serial)
            except Exception as exc:  # noqa: BLE001 - reported; the broker decides when to ask again
                log.warning("look-up failed after retries: %s", exc)
                req = item if isinstance(item, ReadRequest) else item[0]
                event = ReadFailed(req, str(exc), item.serial if isinstance(item, ReadRequest) else item[1])
            with self._progress:
                self._reads_out -= 1
                self._progress.notify_all()
            self._deliver(event)

    @retried
    def read_orders(self, request: ReadRequest) -> OrdersRead:
        """``inquire-daily-ccld`` (every page) with the exchange times that bound it. Also called
        directly, on cerebro's thread, by the start-up recovery (before the strategy runs)."""
        asked_at = self.now()
        rows = self.client.daily_orders(request.start, request.end, code=request.code, odno=request.odno)
        return OrdersRead(request, tuple(rows), asked_at, self.now())

    @retried
    def read_balance(self) -> AccountSnapshot:
        return self.account.load()

    @retried
    def quote(self, code: str):
        """``inquire-price`` for the day's band and tick (the broker caches it per code and day)."""
        return self.client.quote(code)

    # ------------------------------------------------------------------ helpers
    def today(self) -> date:
        return self.now().astimezone(KST).date()


__all__ = ["KISStore", "ReadRetry", "retried", "DailyOrder"]

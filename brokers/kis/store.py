"""``KISStore``: the one connection to KIS a trader process holds (backtrader's Store pattern).

Like backtrader's ``IBStore``, the store owns the connections and their threads and hands out a
broker (``getbroker``) and data feeds (``getdata``) that share them:

* the REST client (``KISClient``: token cache, rate limiter, retries);
* the WebSocket (``KISWebSocket``: quotes and execution notices, reconnects on its own thread);
* an **order worker** thread that sends order, cancel and revise requests one by one, so a slow
  or rate-limited POST never blocks the strategy, and that looks an order up before anything is
  re-sent when a POST times out;
* the journal and the Account Manager.

Nothing from those threads touches backtrader objects: they put messages on queues, and the
broker (``KISBroker.next``) and the feeds (``KISData._load``) drain them on cerebro's thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

from brokers.kis.account import AccountManager
from brokers.kis.journal import Journal
from market.calendar import KST

log = logging.getLogger("krx.kis.store")


@dataclass
class OrderRequest:
    """A REST call for the worker: ``kind`` is new | cancel | revise."""

    kind: str
    intent_id: str
    code: str = ""
    side: str = ""
    qty: int | None = 0
    price: int = 0
    ord_dvsn: str = "00"
    branch: str = ""
    orig_odno: str = ""
    submitted_at: datetime | None = None
    known_odnos: Callable[[], set[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class KISStore:
    """Connections, threads and queues shared by ``KISBroker`` and ``KISData``."""

    def __init__(self, client, ws_factory: Callable[..., Any] | None, journal: Journal, *,
                 now: Callable[[], datetime] = lambda: datetime.now(KST),
                 account: AccountManager | None = None, timeout_lookups: int = 3,
                 lookup_wait_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.journal = journal
        self.now = now
        self.account = account or AccountManager(client, now=now)
        self.events: "queue.Queue[tuple[str, Any]]" = queue.Queue()     # for the broker
        self.tick_queues: dict[str, "queue.Queue[Any]"] = {}              # per code, for the feeds
        self.datas: list[Any] = []
        self.broker = None
        self._ws_factory = ws_factory
        self.ws = None
        self._requests: "queue.Queue[OrderRequest | None]" = queue.Queue()
        self._worker: threading.Thread | None = None
        self._started = False
        self._lock = threading.Lock()
        self.timeout_lookups = timeout_lookups
        self.lookup_wait_s = lookup_wait_s
        self._sleep = sleep
        self.last_trade_time: datetime | None = None
        self.last_prices: dict[str, int] = {}
        self.connected = threading.Event()
        # progress counters (the monitor shows them; tests wait on them instead of sleeping)
        self._progress = threading.Condition()
        self.pings = 0             # PINGPONG frames seen: everything sent before one has arrived
        self.loops = 0             # broker.next() turns completed
        self.reconnects = 0        # WebSocket sessions re-established (and resubscribed)
        self.on_loop: list[Callable[[], None]] = []   # run on cerebro's thread at the end of each broker turn
        self._outstanding = 0      # requests queued or being sent (decremented after their event is queued)

    # ------------------------------------------------------------------ backtrader Store protocol
    def getbroker(self, **kwargs):
        from brokers.kis.broker import KISBroker

        if self.broker is None:
            self.broker = KISBroker(store=self, **kwargs)
        return self.broker

    def getdata(self, code: str, **kwargs):
        """A live feed for ``code`` with the indicator lines the strategy reads."""
        from feeds.kis_live import live_data_class

        cls = live_data_class(kwargs.get("indicators", ()))
        return cls(store=self, dataname=code, name=code, **kwargs)

    def register_data(self, data) -> "queue.Queue[Any]":
        with self._lock:
            self.datas.append(data)
            q = self.tick_queues.setdefault(data.p.dataname, queue.Queue())
        if self.ws is not None:
            self.ws.subscribe_trades(data.p.dataname)
        return q

    def start(self) -> None:
        """Start the worker and the WebSocket once, whoever (broker or a feed) asks first."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._worker = threading.Thread(target=self._work, name="kis-order-worker", daemon=True)
        self._worker.start()
        if self._ws_factory is not None:
            self.ws = self._ws_factory(on_trade=self._on_trade, on_notice=self._on_notice,
                                       on_state=self._on_state, on_reconnected=self._on_reconnected,
                                       on_ping=self._on_ping)
            self.ws.subscribe_notices()
            for code in list(self.tick_queues):
                self.ws.subscribe_trades(code)
            self.ws.start()

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
        self._requests.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
        if self.ws is not None:
            self.ws.stop()

    # ------------------------------------------------------------------ callbacks (ws thread)
    def _on_trade(self, trade) -> None:
        self.last_trade_time = trade.time
        self.last_prices[trade.code] = trade.price   # stop triggers read it (one dict write: thread-safe)
        q = self.tick_queues.get(trade.code)
        if q is not None:
            q.put(trade)

    def _on_notice(self, notice) -> None:
        self.events.put(("notice", notice))

    def _on_state(self, state, reason: str = "") -> None:
        name = getattr(state, "name", str(state))
        if name == "CONNECTED":
            self.connected.set()
        elif name in ("DISCONNECTED", "CONNECTING"):
            self.connected.clear()
        self.events.put(("ws_state", (name, reason)))
        for q in list(self.tick_queues.values()):
            q.put(("state", name, reason))

    def _on_reconnected(self) -> None:
        self.events.put(("reconnected", None))
        with self._progress:
            self.reconnects += 1
            self._progress.notify_all()

    def _on_ping(self, _stamp: str = "") -> None:
        with self._progress:
            self.pings += 1
            self._progress.notify_all()

    # ------------------------------------------------------------------ progress (monitor, tests)
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
        """Nothing received is waiting to be applied and no request is on its way to KIS."""
        return (self._outstanding == 0 and self.events.empty()
                and all(q.empty() for q in self.tick_queues.values()))

    # ------------------------------------------------------------------ order worker
    def send(self, request: OrderRequest) -> None:
        """Queue a REST order/cancel/revise for the worker thread."""
        with self._progress:
            self._outstanding += 1
        self._requests.put(request)

    def _work(self) -> None:
        from brokers.kis.errors import KISError, KISRejected, KISTimeout

        while True:
            req = self._requests.get()
            if req is None:
                return
            started = time.monotonic()
            try:
                reply = self._call(req)
                self.events.put(("reply", (req, reply, time.monotonic() - started)))
            except KISTimeout as exc:
                self.journal.log("timeout", f"{req.kind} POST timed out: {exc}", intent_id=req.intent_id)
                found = self._lookup_after_timeout(req) if req.kind == "new" else None
                self.events.put(("timeout", (req, found)))
            except KISRejected as exc:
                self.events.put(("rejected", (req, exc)))
            except KISError as exc:
                self.events.put(("failed", (req, exc)))
            except Exception as exc:  # a bug must not kill the worker: report it as a failure
                log.exception("order worker: unexpected error")
                self.events.put(("failed", (req, exc)))
            finally:
                with self._progress:
                    self._outstanding -= 1
                    self._progress.notify_all()

    def _call(self, req: OrderRequest):
        c = self.client
        if req.kind == "new":
            return c.order_cash(req.side, req.code, int(req.qty), int(req.price), req.ord_dvsn)
        if req.kind == "cancel":
            return c.cancel(req.branch, req.orig_odno, req.qty)
        if req.kind == "revise":
            return c.revise(req.branch, req.orig_odno, req.qty, int(req.price), req.ord_dvsn)
        raise ValueError(f"unknown request kind {req.kind!r}")

    def _lookup_after_timeout(self, req: OrderRequest):
        """Find the order a timed-out POST may have placed: same code/side/qty/price, a number we
        do not know yet, placed at or after the POST. Never re-sends anything.

        Returns ``(row, asked_at)`` — KIS's totals in ``row`` cover every fill up to ``asked_at`` — or None."""
        when = (req.submitted_at or self.now()).astimezone(KST)
        day = when.date()
        since = (when - timedelta(seconds=60)).strftime("%H%M%S") if when.hour or when.minute else "000000"
        for attempt in range(self.timeout_lookups):
            asked_at = self.now()
            try:
                rows = self.client.daily_orders(day, day, code=req.code)
            except Exception as exc:  # noqa: BLE001 - a failed lookup is retried, then reported
                log.warning("lookup after timeout failed (%s): %s", attempt + 1, exc)
                rows = []
            known = req.known_odnos() if req.known_odnos else set()
            for row in rows:
                if (row.side == req.side and int(row.qty) == int(req.qty) and int(row.price) == int(req.price)
                        and int(row.odno) not in known and str(row.ord_time) >= since):
                    return row, asked_at
            if attempt + 1 < self.timeout_lookups:
                self._sleep(self.lookup_wait_s)
        return None

    # ------------------------------------------------------------------ helpers
    def today(self) -> date:
        return self.now().astimezone(KST).date()

"""KIS WebSocket client: real-time trades, books and execution notices with automatic recovery.

One ``KISWebSocket`` = one session of one app key (KIS allows one per key, PROTOCOL §4.1). It runs
its own thread with an asyncio loop so the broker's main thread never blocks on the socket.

What it does, and why:

* **Subscriptions are state, not calls.** ``subscribe_*`` records the wish (idempotent) and sends it
  when connected; after any reconnect everything is re-sent (``OPSP0002`` "already subscribed" is
  fine). The client budget (``protocol.WS_CLIENT_REGISTRATION_BUDGET``, 40 — one under the server's
  41) is enforced up front with ``KISSubscriptionLimit``, because over the cap KIS silently sends
  nothing for the extra codes (§7.7).
* **PINGPONG** is answered with a WebSocket **pong frame carrying the text**, exactly as KIS's own
  sample does (``await ws.pong(raw)`` in [OTA] ``examples_user/kis_auth.py`` — the evidence of what
  real KIS accepts); KIS drops clients that do not answer (§4.6).
* **Market status** (``H0STMKO0``, real env): ``subscribe_market_status(code)`` → ``on_status``
  with VI start/end and trading halts (``MarketStatusUpdate``).
* **Encryption**: key/iv are kept per TR id from the latest successful ack and used to decrypt
  ``1|…`` frames (AES-256-CBC, §4.5). Multi-record frames are split (§4.4).
* **Disconnects** (server drop, idle watchdog, ``OPSP8996`` second session…) →
  ``on_state(DISCONNECTED, reason)``, reconnect with exponential backoff + jitter, a fresh approval
  key when the server says ``OPSP0011`` invalid approval, resubscribe, then ``on_reconnected()`` once
  every resubscription was answered — the broker then recovers missed fills over REST (§7.6).
* **Callbacks run on the ws thread**: keep them fast (queue and return); an exception in a callback
  is logged and swallowed, never fatal to the connection.
* Notices for other accounts linked to the same HTS ID are dropped when ``account_filter`` is set (§4.7).

Secrets: the approval key is never logged; logs carry TR ids, codes (stock codes), msg_cd, reasons.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import threading
from datetime import date, datetime
from enum import Enum
from typing import Any, Callable

from brokers.kis import protocol as P
from brokers.kis.errors import KISSubscriptionLimit
from brokers.kis.protocol import Env
from brokers.kis.ws_events import (
    KST, BookUpdate, ExecutionNotice, MarketStatusUpdate, SubscriptionAck, Trade, parse_book, parse_market_status,
    parse_notice, parse_trade,
)

__all__ = ["KISWebSocket", "ConnectionState", "Trade", "BookUpdate", "ExecutionNotice", "MarketStatusUpdate",
           "SubscriptionAck", "WsStats"]

log = logging.getLogger("krx_trader.kis.ws")

RESUBSCRIBE_ACK_TIMEOUT_S = 10.0
"""If some resubscription is never answered, ``on_reconnected`` still fires after this long."""
OPEN_TIMEOUT_S = 10.0


class ConnectionState(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


class WsStats:
    """Counters (read from any thread; written on the ws thread only)."""

    def __init__(self) -> None:
        self.connects = 0
        self.frames = 0
        self.records = 0
        self.multi_record_frames = 0
        self.pings = 0
        self.pongs_sent = 0
        self.decrypt_errors = 0
        self.parse_errors = 0
        self.callback_errors = 0
        self.dropped_other_account = 0
        self.approval_refreshes = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class _Disconnect(Exception):
    """Internal: leave the current connection with a reason (and maybe a fresh approval key)."""

    def __init__(self, reason: str, refresh_approval: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refresh_approval = refresh_approval


def _digits(text: str | None) -> str:
    return "".join(ch for ch in (text or "") if ch.isdigit())


class KISWebSocket:
    """Real-time session. ``approval_key`` is a callable (usually ``KISClient.approval_key``); when it
    accepts ``refresh=True`` it is called so after an invalid-approval answer."""

    def __init__(self, ws_url: str, approval_key: Callable[..., str], env: Env | str, hts_id: str, *,
                 on_trade: Callable[[Trade], None] | None = None, on_book: Callable[[BookUpdate], None] | None = None,
                 on_notice: Callable[[ExecutionNotice], None] | None = None,
                 on_state: Callable[[ConnectionState, str], None] | None = None,
                 on_reconnected: Callable[[], None] | None = None, idle_timeout: float = 90.0,
                 backoff: tuple[float, float] = (0.5, 30.0), account_filter: str | None = None,
                 on_ack: Callable[[SubscriptionAck], None] | None = None,
                 on_ping: Callable[[str], None] | None = None,
                 wallclock: Callable[[], datetime] = lambda: datetime.now(KST),
                 max_subscriptions: int = P.WS_CLIENT_REGISTRATION_BUDGET,
                 on_status: Callable[[MarketStatusUpdate], None] | None = None) -> None:
        self.ws_url = ws_url
        self.env = Env(env)
        self.hts_id = hts_id
        self._approval_fn = approval_key
        try:
            self._approval_refreshable = "refresh" in inspect.signature(approval_key).parameters
        except (TypeError, ValueError):
            self._approval_refreshable = False
        self.on_trade, self.on_book, self.on_notice = on_trade, on_book, on_notice
        self.on_state, self.on_reconnected, self.on_ack, self.on_ping = on_state, on_reconnected, on_ack, on_ping
        self.on_status = on_status
        self.idle_timeout = float(idle_timeout)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.account_filter = _digits(account_filter) or None
        self.max_subscriptions = int(max_subscriptions)
        self._wallclock = wallclock
        self.notice_tr = P.notice_tr_for(self.env)
        self.stats = WsStats()
        self._rng = random.Random()

        self._lock = threading.Lock()
        self._subs: dict[tuple[str, str], None] = {}        # desired registrations, insertion-ordered
        self._state = ConnectionState.STOPPED
        self._connected_evt = threading.Event()
        self._started_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task | None = None
        self._stopping = False

        # loop-thread state
        self._ws: Any = None
        self._keys: dict[str, tuple[str, str]] = {}          # tr_id -> (key, iv) of the latest ack
        self._approval: str | None = None
        self._pending: set[tuple[str, str]] = set()         # resubscriptions awaiting an answer
        self._reconnect_pending = False
        self._ever_connected = False
        self._invalid_approval_seen = 0
        self._healthy = False        # this connection got a successful ack or a PINGPONG
        self._gen = 0                # connection generation (stale timers check it)

    # ---- public API (any thread) -----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def subscriptions(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._subs)

    def start(self) -> None:
        """Start the ws thread; returns once the first connection attempt has begun."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._started_evt.clear()
        self._thread = threading.Thread(target=self._run, name=f"kis-ws-{self.env.value}", daemon=True)
        self._thread.start()
        self._started_evt.wait(10.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the socket, end the loop, join the thread; ``on_state(STOPPED)``. Idempotent."""
        self._stopping = True
        loop, task = self._loop, self._main
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass
        if self._thread is threading.current_thread():
            return  # called from a callback on the ws thread: the loop ends by itself
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("ws thread did not stop within %.0fs", timeout)
            self._thread = None

    def wait_connected(self, timeout: float) -> bool:
        """Block until the socket is open (not necessarily subscribed); False on timeout."""
        return self._connected_evt.wait(timeout)

    def subscribe_trades(self, code: str) -> None:
        self._want(P.WS_TR_TRADE, code, True)

    def unsubscribe_trades(self, code: str) -> None:
        self._want(P.WS_TR_TRADE, code, False)

    def subscribe_book(self, code: str) -> None:
        self._want(P.WS_TR_BOOK, code, True)

    def unsubscribe_book(self, code: str) -> None:
        self._want(P.WS_TR_BOOK, code, False)

    def subscribe_market_status(self, code: str) -> None:
        """장운영정보 (VI, halts) of ``code`` — ``H0STMKO0``, real environment only ([OTA] legacy README)."""
        if self.env is not Env.REAL:
            raise ValueError("H0STMKO0 market status is served on the real environment only")
        self._want(P.WS_TR_MARKET_STATUS, code, True)

    def unsubscribe_market_status(self, code: str) -> None:
        self._want(P.WS_TR_MARKET_STATUS, code, False)

    def subscribe_notices(self) -> None:
        """Execution notices of the HTS ID (H0STCNI0 real / H0STCNI9 paper)."""
        if not self.hts_id:
            raise ValueError("execution notices need the HTS ID (KIS_HTS_ID), the tr_key of H0STCNI0/9")
        self._want(self.notice_tr, self.hts_id, True)

    def unsubscribe_notices(self) -> None:
        self._want(self.notice_tr, self.hts_id, False)

    def _want(self, tr_id: str, tr_key: str, on: bool) -> None:
        pair = (tr_id, tr_key)
        with self._lock:
            if on:
                if pair in self._subs:
                    return
                if len(self._subs) >= self.max_subscriptions:
                    raise KISSubscriptionLimit(
                        f"cannot subscribe {tr_id} {tr_key}: {len(self._subs)} of {self.max_subscriptions} "
                        f"registrations in use (KIS serves at most {P.WS_MAX_REGISTRATIONS} per session, notices "
                        "included); unsubscribe something first")
                self._subs[pair] = None
            else:
                if pair not in self._subs:
                    return
                del self._subs[pair]
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: loop.create_task(self._send_registration(pair, on)))
            except RuntimeError:
                pass

    # ---- thread / loop -----------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._main = loop.create_task(self._supervise())
            loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001
            log.exception("ws loop crashed")
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()
                self._loop = None
                self._main = None
                self._connected_evt.clear()
                self._set_state(ConnectionState.STOPPED, "stopped")

    def _set_state(self, state: ConnectionState, reason: str) -> None:
        self._state = state
        if state is ConnectionState.CONNECTED:
            self._connected_evt.set()
        else:
            self._connected_evt.clear()
        log.info("ws %s: %s (%s)", self.env.value, state.value, reason)
        self._callback(self.on_state, state, reason)

    def _callback(self, fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a broken callback must not kill the session
            self.stats.callback_errors += 1
            log.exception("ws callback %s raised", getattr(fn, "__name__", fn))

    async def _get_approval(self, refresh: bool) -> str:
        def call() -> str:
            if refresh and self._approval_refreshable:
                return self._approval_fn(refresh=True)
            return self._approval_fn()

        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _delay(self, attempt: int) -> float:
        base, cap = self.backoff
        d = min(cap, base * (2 ** attempt))
        return d * (0.5 + 0.5 * self._rng.random())

    async def _supervise(self) -> None:
        from websockets.asyncio.client import connect

        attempt = 0
        refresh = False
        first = True
        while not self._stopping:
            self._set_state(ConnectionState.CONNECTING, "first connection" if first else f"attempt {attempt + 1}")
            if first:
                self._started_evt.set()
                first = False
            reason = "closed"
            self._healthy = False
            try:
                if refresh or self._approval is None:
                    self._approval = await self._get_approval(refresh)
                    if refresh:
                        self.stats.approval_refreshes += 1
                    refresh = False
                async with connect(self.ws_url, ping_interval=None, open_timeout=OPEN_TIMEOUT_S, close_timeout=2,
                                   max_queue=1024, compression=None) as ws:
                    self._ws = ws
                    self._keys.clear()
                    self._invalid_approval_seen = 0
                    self.stats.connects += 1
                    self._set_state(ConnectionState.CONNECTED, self.ws_url)
                    reconnect = self._ever_connected
                    self._ever_connected = True
                    await self._session(ws, reconnect)
            except _Disconnect as d:
                reason = d.reason
                refresh = d.refresh_approval
            except asyncio.CancelledError:
                break
            except Exception as exc:  # noqa: BLE001 - every network failure ends up here
                reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError) else type(exc).__name__
                from websockets.exceptions import ConnectionClosed

                if isinstance(exc, ConnectionClosed):
                    reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            finally:
                self._ws = None
                self._pending.clear()
            if self._stopping:
                break
            self._set_state(ConnectionState.DISCONNECTED, reason)
            attempt = 0 if self._healthy else attempt + 1
            delay = self._delay(attempt)
            log.info("ws %s: reconnecting in %.2fs", self.env.value, delay)
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                break

    async def _session(self, ws: Any, reconnect: bool) -> None:
        """Run one connection until it ends: by an exception (closed, idle, _Disconnect) or by ``stop()``."""
        self._gen += 1
        gen = self._gen
        with self._lock:
            pairs = list(self._subs)
        self._pending = set(pairs) if reconnect else set()
        self._reconnect_pending = reconnect
        for pair in pairs:
            await self._send_registration(pair, True)
        if reconnect:
            if not pairs:
                self._fire_reconnected()
            else:
                asyncio.get_running_loop().call_later(
                    RESUBSCRIBE_ACK_TIMEOUT_S, lambda: self._fire_reconnected() if gen == self._gen else None)
        # ``stop()`` cancels this task; the flag, checked between frames, ends the session whatever happens
        # to the cancel (on Python 3.11 ``asyncio.wait_for`` swallowed one that landed while ``recv()``
        # already had a frame, gh-86296 — under a steady stream that was most stops).
        # One watchdog for the session, pushed back on every frame: ``asyncio.wait_for`` around each
        # ``recv()`` made a task per frame, a third of this thread's work per frame — and in a burst of
        # frames this thread holds the interpreter lock, so its work per frame is tick latency.
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.idle_timeout) as watchdog:
                while not self._stopping:
                    text = await ws.recv()
                    watchdog.reschedule(loop.time() + self.idle_timeout)
                    if isinstance(text, bytes):
                        text = text.decode("utf-8", "replace")
                    await self._on_message(ws, text)
        except TimeoutError:
            if watchdog.expired():
                raise _Disconnect(f"idle for {self.idle_timeout:g}s (watchdog)") from None
            raise

    def _fire_reconnected(self) -> None:
        if not self._reconnect_pending:
            return
        self._reconnect_pending = False
        self._pending.clear()
        self._callback(self.on_reconnected)

    async def _send_registration(self, pair: tuple[str, str], on: bool) -> None:
        ws = self._ws
        if ws is None or self._approval is None:
            return  # sent on (re)connect
        msg = P.subscribe_request(self._approval, pair[0], pair[1], subscribe=on)
        try:
            await ws.send(json.dumps(msg))
        except Exception as exc:  # noqa: BLE001 - the reader will see the closed connection
            log.debug("ws send failed (%s)", type(exc).__name__)

    # ---- incoming ----------------------------------------------------------------------------

    async def _on_message(self, ws: Any, text: str) -> None:
        if P.is_control_message(text):
            await self._on_control(ws, text)
            return
        try:
            frame = P.parse_frame(text)
        except ValueError:
            self.stats.parse_errors += 1
            log.warning("ws: malformed frame ignored")
            return
        self.stats.frames += 1
        payload = frame.payload
        if frame.encrypted:
            kv = self._keys.get(frame.tr_id)
            if kv is None:
                self.stats.decrypt_errors += 1
                log.warning("ws: encrypted %s frame before any key/iv ack: dropped", frame.tr_id)
                return
            try:
                payload = P.aes_decrypt(payload, kv[0], kv[1])
            except Exception:  # noqa: BLE001 - bad padding, bad base64…
                self.stats.decrypt_errors += 1
                log.warning("ws: %s frame could not be decrypted: dropped", frame.tr_id)
                return
        try:
            records = P.split_records(payload, frame.count, P.FIELD_COUNTS.get(frame.tr_id))
        except ValueError:
            self.stats.parse_errors += 1
            log.warning("ws: %s frame with a bad record count: dropped", frame.tr_id)
            return
        self.stats.records += len(records)
        if len(records) > 1:
            self.stats.multi_record_frames += 1
        today = self._wallclock().astimezone(KST).date()
        for rec in records:
            self._dispatch(frame.tr_id, rec, today)

    def _dispatch(self, tr_id: str, rec: list[str], today: date) -> None:
        try:
            if tr_id == P.WS_TR_TRADE:
                if self.on_trade is not None:
                    self._callback(self.on_trade, parse_trade(rec, today))
            elif tr_id == P.WS_TR_BOOK:
                if self.on_book is not None:
                    self._callback(self.on_book, parse_book(rec, today))
            elif tr_id == P.WS_TR_MARKET_STATUS:
                if self.on_status is not None:
                    self._callback(self.on_status, parse_market_status(rec, self._wallclock()))
            elif tr_id in P.WS_TR_NOTICE.values():
                n = parse_notice(rec, today)
                if self.account_filter and _digits(n.account) != self.account_filter:
                    self.stats.dropped_other_account += 1
                    return
                self._callback(self.on_notice, n)
            else:
                log.debug("ws: frame of unhandled TR %s", tr_id)
        except (ValueError, IndexError):
            self.stats.parse_errors += 1
            log.warning("ws: %s record could not be parsed: dropped", tr_id)

    async def _on_control(self, ws: Any, text: str) -> None:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            self.stats.parse_errors += 1
            return
        header = msg.get("header") if isinstance(msg, dict) and isinstance(msg.get("header"), dict) else {}
        tr_id = str(header.get("tr_id") or "")
        if tr_id == P.PINGPONG:
            if len(text.encode("utf-8")) <= 125:   # a control frame's payload limit (RFC 6455 §5.5)
                await ws.pong(text)  # a pong frame carrying the text: what KIS's own sample sends
            else:
                await ws.send(text)  # cannot fit a pong: the verbatim text echo python-kis sends
            self.stats.pongs_sent += 1
            self.stats.pings += 1
            self._healthy = True
            self._callback(self.on_ping, str(header.get("datetime") or ""))
            return
        body = msg.get("body") if isinstance(msg.get("body"), dict) else {}
        tr_key = str(header.get("tr_key") or "")
        code = str(body.get("msg_cd") or "")
        text1 = str(body.get("msg1") or "").strip()
        rt_cd = str(body.get("rt_cd") or "")
        out = body.get("output") if isinstance(body.get("output"), dict) else None
        if code == P.WS_SUBSCRIBED.code and out and out.get("key") and out.get("iv"):
            self._keys[tr_id] = (str(out["key"]), str(out["iv"]))
        elif out and out.get("key") and out.get("iv") and rt_cd == "0":
            self._keys[tr_id] = (str(out["key"]), str(out["iv"]))
        ok = code in (P.WS_SUBSCRIBED.code, P.WS_UNSUBSCRIBED.code, P.WS_ALREADY_SUBSCRIBED.code)
        subscribe = {P.WS_SUBSCRIBED.code: True, P.WS_ALREADY_SUBSCRIBED.code: True,
                     P.WS_UNSUBSCRIBED.code: False, P.WS_NOT_SUBSCRIBED.code: False}.get(code)
        ack = SubscriptionAck(tr_id, tr_key, code, text1, ok, subscribe)
        if code == P.WS_APPKEY_IN_USE.code:
            log.warning("ws %s: %s %s — another session uses this app key", self.env.value, code, text1)
            self._callback(self.on_ack, ack)
            raise _Disconnect(f"{code} {text1}")
        if code == P.WS_INVALID_APPROVAL.code:
            self._callback(self.on_ack, ack)
            self._invalid_approval_seen += 1
            if self._invalid_approval_seen == 1:
                log.warning("ws %s: approval key refused (%s): fetching a fresh one", self.env.value, code)
                raise _Disconnect(f"{code} invalid approval key", refresh_approval=True)
            return
        if code == P.WS_MAX_SUBSCRIBE.code:
            log.error("ws %s: %s for %s %s — the server's registration cap is full", self.env.value, code,
                      tr_id, tr_key)
        elif not ok:
            log.warning("ws %s: %s %s for %s %s", self.env.value, code or "?", text1, tr_id, tr_key)
        else:
            self._healthy = True
            log.debug("ws %s: %s %s %s", self.env.value, code, tr_id, tr_key)
        self._callback(self.on_ack, ack)
        if self._reconnect_pending and (tr_id, tr_key) in self._pending:
            self._pending.discard((tr_id, tr_key))
            if not self._pending:
                self._fire_reconnected()

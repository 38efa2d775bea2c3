"""The KIS WebSocket surface of one environment (plain ``ws://``, any path).

Runs inside the emulator's asyncio loop thread on the ``websockets`` server. Rules (PROTOCOL §4):

* every JSON message carries ``header.approval_key`` (from ``/oauth2/Approval`` of the same
  environment; old clients may send ``appkey``+``appsecret`` instead when
  ``accept_appkey_header``); unknown/expired keys → ``OPSP0011``;
* one session per app key: a second connection gets ``OPSP8996`` (rt_cd 9) and is closed
  (``second_session: kick`` closes the first instead);
* registrations are ``(tr_id, tr_key)`` pairs, at most ``max_registrations`` (41) per session →
  ``OPSP0008``; duplicate → ``OPSP0002``; unregistering an unknown pair → ``OPSP0003``;
* every success ack carries ``output.iv``/``output.key`` (fresh per session and TR id), ``encrypt``
  ``Y`` for notices and ``N`` for quotes; notices are AES-256-CBC encrypted with that key/iv;
* ``H0STCNT0`` frames bunch up to ``max_records_per_frame`` prints of one code (``0|TR|NNN|…``);
  one ``H0STASP0`` frame follows each bunch with the book after its last print;
* PINGPONG: every ``ping_interval_s`` the server sends ``{"header":{"tr_id":"PINGPONG",...}}``; a
  session that has not answered the previous one by the next round is dropped. Both answers count:
  the text echo (python-kis, [PK] ``client/websocket.py``) and a WebSocket **pong frame** carrying
  the text — what KIS's own sample sends (``await ws.pong(raw)`` in [OTA]
  ``examples_user/kis_auth.py``), so real KIS accepts it;
* a message that is not a usable JSON object (bad UTF-8, nested deeper than a KIS message ever is,
  a 5,000-digit number) is answered with ``EMU00007`` and the session stays open;
* ``H0STMKO0`` (market status, real env): VI start/end frames as prints cross them and halt frames
  on subscription and at each new trading day (``status.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.asyncio.server import ServerConnection

from brokers.kis import protocol as P
from brokers.kis.emulator.auth import App, AuthRegistry, mask
from brokers.kis.emulator.frames import book_record, trade_record
from brokers.kis.emulator.inputs import parse_json
from brokers.kis.emulator.matching import TradeEvent
from brokers.kis.emulator.notices import Item, NoticeOut
from brokers.kis.emulator.status import MarketStatus

log = logging.getLogger("krx_trader.emulator.ws")


CLOSE_GRACE_S = 1.0
"""How long a server-side close waits for the client's close frame before resetting the connection."""


@dataclass
class WsSettings:
    max_registrations: int = P.WS_MAX_REGISTRATIONS
    ping_interval_s: float | None = 10.0
    second_session: str = "refuse"
    book_fields: int = 59
    max_records_per_frame: int = 10
    accept_appkey_header: bool = True


def new_aes_key() -> tuple[str, str]:
    """(key, iv): 32 lowercase letters and 16 hex characters, as captured from KIS (§4.3)."""
    key = "".join(secrets.choice(string.ascii_lowercase) for _ in range(P.AES_KEY_LENGTH))
    iv = secrets.token_hex(P.AES_IV_LENGTH // 2)
    return key, iv


class PongAwareConnection(ServerConnection):
    """A server connection that reports every pong frame it receives (``websockets`` itself silently
    drops unsolicited pongs), so a PINGPONG answered with ``ws.pong(text)`` counts as answered."""

    pong_listener: Callable[[bytes], None] | None = None

    def acknowledge_pings(self, data: bytes) -> None:
        listener = self.pong_listener
        if listener is not None:
            try:
                listener(bytes(data))
            except Exception:  # noqa: BLE001 - a listener bug must not break the protocol layer
                log.exception("pong listener failed")
        super().acknowledge_pings(data)


@dataclass(eq=False)
class Session:
    ws: Any
    app: App | None = None
    subs: set[tuple[str, str]] = field(default_factory=set)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    awaiting_pong: bool = False
    closed: bool = False
    sent: int = 0
    pong_frames: int = 0
    text_echoes: int = 0

    def key_for(self, tr_id: str) -> tuple[str, str]:
        if tr_id not in self.keys:
            self.keys[tr_id] = new_aes_key()
        return self.keys[tr_id]


class WsHub:
    """Sessions and subscriptions of one environment's WebSocket listener."""

    def __init__(self, env: P.Env, auth: AuthRegistry, settings: WsSettings, *,
                 clock_text: Callable[[], str], on_streams_changed: Callable[[], None],
                 trace: Callable[[str, str], None] | None = None, status: MarketStatus | None = None) -> None:
        self.env = env
        self.auth = auth
        self.settings = settings
        self.clock_text = clock_text
        self.on_streams_changed = on_streams_changed
        self.trace = trace or (lambda kind, detail: None)
        self.notice_tr = P.notice_tr_for(env)
        self.sessions: set[Session] = set()
        self.by_app: dict[str, Session] = {}
        self.by_sub: dict[tuple[str, str], set[Session]] = {}
        self.frames_sent = 0
        self.records_sent = 0
        self._ping_task: asyncio.Task | None = None
        self._pong = asyncio.Event()   # set whenever a session echoes PINGPONG (or goes away)
        self.status = status
        self._status_day = None        # trading day of the last halt announcement
        self.ping_rounds = 0
        self.sessions_opened = 0
        self.malformed = 0

    # ---- public (loop thread) --------------------------------------------------------------

    def streamed_codes(self) -> set[str]:
        return {key for (tr, key), ss in self.by_sub.items() if ss and tr in self._STREAM_TRS}

    _STREAM_TRS = (P.WS_TR_TRADE, P.WS_TR_BOOK, P.WS_TR_MARKET_STATUS)
    """Registrations that make the engine replay a code's prints."""

    def start_pinger(self) -> None:
        if self.settings.ping_interval_s:
            self._ping_task = asyncio.get_running_loop().create_task(self._pinger())

    async def stop(self) -> None:
        if self._ping_task:
            self._ping_task.cancel()
        for s in list(self.sessions):
            await self._close(s, abort=False)

    async def ping_round(self) -> int:
        """Drop sessions that ignored the previous PINGPONG, then send a new one to the rest."""
        text = P.pingpong_message(self.clock_text())
        self.ping_rounds += 1
        dropped = 0
        for s in list(self.sessions):
            if s.closed:
                continue
            if s.awaiting_pong:
                log.info("ws %s: no PINGPONG echo, dropping session %s", self.env.value,
                         mask(s.app.appkey if s.app else None))
                await self._close(s, abort=True)
                dropped += 1
                continue
            s.awaiting_pong = True
            s.queue.put_nowait((text, None))
        return dropped

    async def wait_echoes(self, timeout: float) -> bool:
        """Wait until no open session still owes a PINGPONG echo (False on timeout).

        Lets a test use a ping round as a barrier and start the next round only once the echo is
        back — a round started earlier would drop the session as silent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(s.awaiting_pong and not s.closed for s in self.sessions):
            self._pong.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._pong.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return True

    async def drop(self, appkey: str | None = None, abort: bool = True) -> int:
        n = 0
        for s in list(self.sessions):
            if appkey is None or (s.app and s.app.appkey == appkey):
                await self._close(s, abort=abort)
                n += 1
        return n

    def dispatch(self, items: list[Item]) -> None:
        """Fan prints and notices out to the subscribed sessions (loop thread)."""
        self._check_day()
        for item in items:
            if isinstance(item, TradeEvent):
                self._dispatch_trades(item)
            elif item.env is self.env:
                self._dispatch_notice(item)

    # ---- dispatch ----------------------------------------------------------------------------

    def _dispatch_trades(self, ev: TradeEvent) -> None:
        trade_ss = self.by_sub.get((P.WS_TR_TRADE, ev.code))
        if trade_ss:
            per = self.settings.max_records_per_frame
            idx = list(range(ev.first, ev.last + 1))
            for k in range(0, len(idx), per):
                chunk = idx[k:k + per]
                text = P.encode_frame(P.WS_TR_TRADE, [trade_record(ev.tape, i) for i in chunk])
                for s in trade_ss:
                    s.queue.put_nowait((text, None))
                self.frames_sent += len(trade_ss)
                self.records_sent += len(chunk) * len(trade_ss)
        status_ss = self.by_sub.get((P.WS_TR_MARKET_STATUS, ev.code))
        if status_ss and self.status is not None:
            for record in self.status.vi_records(ev):
                self._send_all(status_ss, P.encode_frame(P.WS_TR_MARKET_STATUS, [record]))
        book_ss = self.by_sub.get((P.WS_TR_BOOK, ev.code))
        if book_ss:
            text = P.encode_frame(P.WS_TR_BOOK, [book_record(ev.tape, ev.last, self.settings.book_fields)])
            for s in book_ss:
                s.queue.put_nowait((text, None))
            self.frames_sent += len(book_ss)
            self.records_sent += len(book_ss)

    def _send_all(self, sessions: set[Session], text: str) -> None:
        for s in sessions:
            s.queue.put_nowait((text, None))
        self.frames_sent += len(sessions)
        self.records_sent += len(sessions)

    def _check_day(self) -> None:
        """At the first event of a new trading day: halt status of every subscribed code that changed."""
        if self.status is None:
            return
        day = self.status.current_day()
        if day == self._status_day:
            return
        previous, self._status_day = self._status_day, day
        if previous is None:
            return          # the first day seen: subscriptions already got that day's state
        for (tr, code), sessions in list(self.by_sub.items()):
            if tr == P.WS_TR_MARKET_STATUS and sessions:
                record = self.status.day_change(code, previous, day)
                if record is not None:
                    self._send_all(sessions, P.encode_frame(P.WS_TR_MARKET_STATUS, [record]))

    def _dispatch_notice(self, item: NoticeOut) -> None:
        sessions = self.by_sub.get((item.tr_id, item.hts_id))
        if not sessions:
            item.delivered.set()
            return
        sessions = list(sessions)
        pending = {"n": len(sessions)}

        def done() -> None:
            pending["n"] -= 1
            if pending["n"] <= 0:
                self.trace("notice", item.record[2])
                item.delivered.set()

        for s in sessions:
            key, iv = s.key_for(item.tr_id)
            s.queue.put_nowait((P.encode_encrypted_frame(item.tr_id, item.record, key, iv), done))
        self.frames_sent += len(sessions)
        self.records_sent += len(sessions)

    # ---- connection handling -----------------------------------------------------------------

    def _on_pong(self, s: Session, data: bytes) -> None:
        """A pong frame: KIS's sample answers PINGPONG with ``ws.pong(raw)``."""
        s.pong_frames += 1
        if s.awaiting_pong:
            s.awaiting_pong = False
            self._pong.set()

    async def handler(self, ws: Any) -> None:
        session = Session(ws)
        self.sessions.add(session)
        self.sessions_opened += 1
        if isinstance(ws, PongAwareConnection):
            ws.pong_listener = lambda data: self._on_pong(session, data)
        writer = asyncio.get_running_loop().create_task(self._writer(session))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    message = message.decode("utf-8", "replace")
                await self._on_message(session, message)
        except Exception:  # noqa: BLE001 - a broken client must never take the hub down
            pass
        finally:
            await self._forget(session)
            writer.cancel()

    async def _writer(self, s: Session) -> None:
        try:
            while True:
                text, done = await s.queue.get()
                try:
                    await s.ws.send(text)
                    s.sent += 1
                finally:
                    if done is not None:
                        done()
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - connection gone
            pass
        finally:
            while not s.queue.empty():  # release waiters of undelivered notices
                _, done = s.queue.get_nowait()
                if done is not None:
                    done()

    def _answer(self, s: Session, tr_id: str, tr_key: str, code: P.WsCode, *, encrypt: bool = False,
                keys: tuple[str, str] | None = None) -> None:
        msg = P.control_answer(tr_id, tr_key, code, encrypt=encrypt, key=keys[0] if keys else None,
                               iv=keys[1] if keys else None)
        s.queue.put_nowait((json.dumps(msg, ensure_ascii=False), None))

    async def _on_message(self, s: Session, text: str) -> None:
        msg = parse_json(text.encode("utf-8", "replace"))
        if not isinstance(msg, dict):
            self.malformed += 1
            self._answer(s, "", "", P.WS_MALFORMED)
            return
        header = msg.get("header") if isinstance(msg.get("header"), dict) else {}
        if header.get("tr_id") == P.PINGPONG:
            s.text_echoes += 1
            s.awaiting_pong = False
            self._pong.set()
            return
        body = msg.get("body") if isinstance(msg.get("body"), dict) else {}
        inp = body.get("input") if isinstance(body.get("input"), dict) else {}
        tr_id = str(inp.get("tr_id") or "")[:16]
        tr_key = str(inp.get("tr_key") or "")[:64]
        lower = {str(k).lower(): v for k, v in header.items()}
        app = None
        if lower.get("approval_key"):
            app = self.auth.app_for_approval(str(lower["approval_key"]))
        elif self.settings.accept_appkey_header and lower.get("appkey"):
            app = self.auth.app_for_keys(str(lower.get("appkey")), str(lower.get("appsecret") or ""))
        if app is None or app.env is not self.env:
            self._answer(s, tr_id, tr_key, P.WS_INVALID_APPROVAL)
            return
        if s.app is None:
            other = self.by_app.get(app.appkey)
            if other is not None and not other.closed:
                if self.settings.second_session == "kick":
                    await self._close(other, abort=True)
                else:
                    self._answer(s, tr_id, tr_key, P.WS_APPKEY_IN_USE)
                    s.closed = True
                    asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self._close(s)))
                    return
            s.app = app
            self.by_app[app.appkey] = s
        elif s.app.appkey != app.appkey:
            self._answer(s, tr_id, tr_key, P.WS_INVALID_APPROVAL)
            return
        tr_type = str(header.get("tr_type") or lower.get("tr_type") or "")
        if tr_type == P.WS_TR_TYPE_SUBSCRIBE:
            self._subscribe(s, tr_id, tr_key)
        elif tr_type == P.WS_TR_TYPE_UNSUBSCRIBE:
            self._unsubscribe(s, tr_id, tr_key)
        else:
            self._answer(s, tr_id, tr_key, P.WS_INTERNAL_ERROR)

    def _valid_tr(self, tr_id: str) -> bool:
        if tr_id in P.WS_TR_NOTICE.values():
            return tr_id == self.notice_tr
        return len(tr_id) == 8 and tr_id.startswith("H0")

    def _subscribe(self, s: Session, tr_id: str, tr_key: str) -> None:
        if not tr_id or not tr_key or not self._valid_tr(tr_id):
            self._answer(s, tr_id, tr_key, P.WS_INTERNAL_ERROR)
            return
        pair = (tr_id, tr_key)
        if pair in s.subs:
            self._answer(s, tr_id, tr_key, P.WS_ALREADY_SUBSCRIBED)
            return
        if len(s.subs) >= self.settings.max_registrations:
            self._answer(s, tr_id, tr_key, P.WS_MAX_SUBSCRIBE)
            return
        s.subs.add(pair)
        self.by_sub.setdefault(pair, set()).add(s)
        self._answer(s, tr_id, tr_key, P.WS_SUBSCRIBED, encrypt=tr_id == self.notice_tr, keys=s.key_for(tr_id))
        if tr_id == P.WS_TR_MARKET_STATUS and self.status is not None:
            if self._status_day is None:
                self._status_day = self.status.current_day()
            record = self.status.halt_record(tr_key, self._status_day)
            if record is not None:
                s.queue.put_nowait((P.encode_frame(P.WS_TR_MARKET_STATUS, [record]), None))
        if tr_id in self._STREAM_TRS:
            self.on_streams_changed()

    def _unsubscribe(self, s: Session, tr_id: str, tr_key: str) -> None:
        pair = (tr_id, tr_key)
        if pair not in s.subs:
            self._answer(s, tr_id, tr_key, P.WS_NOT_SUBSCRIBED)
            return
        s.subs.discard(pair)
        subs = self.by_sub.get(pair)
        if subs:
            subs.discard(s)
            if not subs:
                del self.by_sub[pair]
        self._answer(s, tr_id, tr_key, P.WS_UNSUBSCRIBED, encrypt=tr_id == self.notice_tr)
        if tr_id in self._STREAM_TRS:
            self.on_streams_changed()

    async def _forget(self, s: Session) -> None:
        s.closed = True
        self.sessions.discard(s)
        if s.app is not None and self.by_app.get(s.app.appkey) is s:
            del self.by_app[s.app.appkey]
        changed = False
        for pair in s.subs:
            subs = self.by_sub.get(pair)
            if subs:
                subs.discard(s)
                if not subs:
                    del self.by_sub[pair]
            changed = changed or pair[0] in self._STREAM_TRS
        s.subs.clear()
        if changed:
            self.on_streams_changed()

    async def _close(self, s: Session, abort: bool = False) -> None:
        """Close a session: a close handshake (at most ``CLOSE_GRACE_S``), else — or with ``abort`` — a TCP
        reset. Some clients never answer the close frame (websocket-client under python-kis while its
        thread is busy); waiting for them would stall the emulator's shutdown."""
        s.closed = True
        try:
            if not abort:
                await asyncio.wait_for(s.ws.close(), timeout=CLOSE_GRACE_S)
        except Exception:  # noqa: BLE001 - timed out or already broken: reset below
            abort = True
        if abort:
            transport = getattr(s.ws, "transport", None)
            if transport is not None:
                transport.abort()
        await self._forget(s)

    async def _pinger(self) -> None:
        interval = float(self.settings.ping_interval_s or 0)
        try:
            while True:
                await asyncio.sleep(interval)
                await self.ping_round()
        except asyncio.CancelledError:
            pass

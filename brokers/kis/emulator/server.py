"""``Emulator``: a local KIS (REST + WebSocket + admin) on 127.0.0.1, for tests and offline paper trading.

Architecture, and why:

* **REST** — stdlib ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive), one listener per environment.
  It gives byte-level control of status, headers and body, and a fault that delays or swallows a
  reply simply blocks its own handler thread (on an event, so ``stop()`` interrupts it) without
  stalling anyone else. A handler costs ~0.2 ms; the real environment's 18–20 req/s per key × many
  keys is far below what it sustains (see ``bench/emulator.py``).
* **WebSocket** — the ``websockets`` asyncio server, all environments' listeners in one event-loop
  thread: many idle-ish connections, cheap fan-out of frames, no thread per socket.
* **One engine** (``matching.Engine``) guarded by one lock is the single state. REST handlers,
  the clock pump and test steps all mutate it under that lock; the engine pushes events through
  the ``NoticeGate`` to the loop thread (``call_soon_threadsafe``), never blocking on sockets.
* **Clock** — injectable (``clock.py``). Real/accelerated clocks are followed by a pump thread
  that replays the market up to ``clock.now()`` every ``pump_interval_s`` (and every REST call
  catches up first); a stepped clock moves only in ``advance``/``advance_to``, which replay
  synchronously before returning — so a test knows every fill up to that moment has happened.
* **Admin** — a separate small HTTP listener (``admin_url``) for the clock and fault switches.

Public API (see README-style summary in the class docstring).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, time as dtime, timedelta
from decimal import Decimal
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from brokers.kis import protocol as P
from brokers.kis.protocol import Env
from brokers.kis.emulator.auth import App, AuthRegistry, AuthSettings, mask
from brokers.kis.emulator.clock import AcceleratedClock, Clock, RealClock, SteppedClock, SystemWallClock, WallClock
from brokers.kis.emulator.faults import FaultController
from brokers.kis.emulator.inputs import is_ascii_number, parse_json
from brokers.kis.emulator.marketdata import BarStore
from brokers.kis.emulator.masterfiles import MasterFiles
from brokers.kis.emulator.matching import Account, Engine, MatchingRules, OrderError, Position
from brokers.kis.emulator.notices import Item, NoticeGate
from brokers.kis.emulator.rest import EnvRestSettings, RestRequest, RestResponse, RestService, RestSettings
from brokers.kis.emulator.reference import DEFAULT_FILE_NAME, ReferenceData, generate_reference, load_reference, merge
from brokers.kis.emulator.status import MarketStatus
from brokers.kis.emulator.ws import CLOSE_GRACE_S, PongAwareConnection, WsHub, WsSettings
from configs.emulator_schema import EmulatorConfig
from market.calendar import KST, krx_calendar
from market.costs import CostModel
from market.ticks import Market

log = logging.getLogger("krx_trader.emulator")

DEFAULT_CANO = {Env.REAL: "63000001", Env.PAPER: "50000001"}
DEFAULT_BRANCH = {Env.REAL: "06010", Env.PAPER: "00950"}
DEFAULT_NOTICE_FIELDS = {Env.REAL: 26, Env.PAPER: 23}
DEFAULT_ORDER_WINDOW = {Env.REAL: "order_entry", Env.PAPER: "regular"}


@dataclass(frozen=True)
class Credentials:
    """What a client needs to talk to one environment of the emulator. ``repr`` hides the secret."""

    env: str
    rest_url: str
    ws_url: str
    appkey: str
    appsecret: str
    cano: str
    acnt_prdt_cd: str
    hts_id: str

    @property
    def account(self) -> str:
        return f"{self.cano}-{self.acnt_prdt_cd}"

    def __repr__(self) -> str:
        return (f"Credentials(env={self.env!r}, rest_url={self.rest_url!r}, ws_url={self.ws_url!r}, "
                f"appkey={mask(self.appkey)!r}, appsecret='***', account={self.account!r}, hts_id={self.hts_id!r})")

    def as_dict(self) -> dict[str, str]:
        return {"env": self.env, "rest_url": self.rest_url, "ws_url": self.ws_url, "appkey": self.appkey,
                "appsecret": self.appsecret, "account": self.account, "hts_id": self.hts_id}


def default_start(store: BarStore) -> datetime:
    """08:50 KST on the last trading day the data covers (the emulator then replays that day)."""
    days = [store.last_day(c) for c in store.codes if store.last_day(c)]
    cal = krx_calendar()
    d = max(days) if days else datetime.now(KST).date()
    if not cal.is_trading_day(d):
        d = cal.previous_trading_day(d)
    return datetime.combine(d, dtime(8, 50), KST)


def build_clock(cfg: EmulatorConfig, store: BarStore) -> Clock:
    c = cfg.clock
    start = c.start
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=KST)
    if c.mode == "real":
        return RealClock(start)
    start = start or default_start(store)
    if c.mode == "accelerated":
        return AcceleratedClock(start, c.day_seconds, tuple(c.window))  # type: ignore[arg-type]
    return SteppedClock(start)


MAX_ADMIN_STEP = timedelta(days=366)
"""The furthest one admin clock step may go (a replay of years in one request would hold the engine)."""


def _admin_int(value: Any, name: str) -> int:
    """An admin argument as a non-negative integer: a JSON integer or ASCII digits, never a bool, a
    float or a full-width "１" (the admin endpoint is as strict as the REST surface)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 15:
        return value
    if isinstance(value, str) and is_ascii_number(value):
        return int(value)
    raise ValueError(f"{name} must be a whole number, got {str(value)[:20]!r}")


def resolve_reference(cfg: EmulatorConfig, store: BarStore) -> ReferenceData:
    """The config's ``reference_file``, else ``reference.json`` in a CSV source's folder, else nothing —
    completed by the generated default for every code the file does not list."""
    generated = generate_reference(store.daily, store.markets, store.names)
    path = cfg.reference_file
    if path is None and cfg.data.source == "csv" and cfg.data.path is not None:
        candidate = cfg.data.path / DEFAULT_FILE_NAME
        path = candidate if candidate.exists() else None
    if path is None:
        return generated
    loaded = load_reference(path)
    missing = sorted(set(store.codes) - set(loaded.securities))
    if missing:
        log.warning("reference file %s lists %d of %d codes; generated defaults for the rest", path,
                    len(store.codes) - len(missing), len(store.codes))
    return merge(generated, loaded)


class _Server(ThreadingHTTPServer):
    """Tracks live connections so ``stop()`` can close keep-alive sockets and join every thread."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128  # many keys connecting at once must not overflow the listen backlog

    def __init__(self, addr: tuple[str, int], handler: type, emulator: "Emulator", env: Env | None) -> None:
        self.emulator = emulator
        self.env = env
        self.stop_event = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-reply is routine (one debug line); anything else is a bug and
        is logged with its traceback (the fuzz test fails on those)."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            log.debug("connection from %s ended: %s", client_address[0] if client_address else "?",
                      type(exc).__name__)
            return
        log.exception("unhandled error serving a request")

    def close_all(self) -> None:
        self.stop_event.set()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KIS-Emulator"
    sys_version = ""
    timeout = 60
    disable_nagle_algorithm = True  # with keep-alive, Nagle + delayed ACK would add ~40 ms per reply
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stdlib logging
        return

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        return  # the emulator logs its own line per request (and a refused request line has no requestline)

    # ---- malformed requests: always a reply, never a dropped socket ---------------------------

    def parse_request(self) -> bool:
        """stdlib parsing, except that an HTTP/0.9 request line (no version) gets a proper HTTP/1.0
        400 instead of a header read that waits for the socket timeout."""
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split()
        if len(words) == 2 or (len(words) == 3 and not words[2].startswith("HTTP/")):
            self.command, self.path = (words + [""])[:2]
            self.request_version = "HTTP/1.0"
            self.close_connection = True
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        return super().parse_request()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every protocol-level refusal (400, 404, 414, 431, 501, 505…) as a KIS-shaped JSON body."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        body = P.message("bad_request").envelope(self.server.env or Env.PAPER)
        if message:
            body["msg1"] = f"{body['msg1']} ({message})"
        try:
            self._write(int(code), body, {"Connection": "close"})
        except OSError:
            pass

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` after answering 400 for a Content-Length that is not a plain
        number, larger than ``rest.max_body_bytes``, or a chunked body (no KIS client sends one)."""
        te = (self.headers.get("Transfer-Encoding") or "").strip()
        raw = self.headers.get("Content-Length")
        values = self.headers.get_all("Content-Length") or []
        limit = self.server.emulator.config.rest.max_body_bytes
        if te or len(set(values)) > 1:
            self.send_error(400, "Transfer-Encoding and repeated Content-Length are not supported")
            return None
        if raw is None:
            return b""
        text = raw.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 12 or int(text) > limit:
            self.send_error(400, f"bad Content-Length {text[:20]!r} (a number up to {limit})")
            return None
        length = int(text)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _write(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        # ``Content-Type`` as KIS writes it: KIS's sample turns every all-lower-case header name into a
        # namedtuple field, and ``content-type`` is not a valid identifier (issue 10).
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(data)
        self.flush_headers()  # status line, headers and body in one send()

    def _write_bytes(self, status: int, data: bytes, content_type: str,
                     headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _master_file(self, path: str, t0: float) -> bool:
        """Serve a stock master zip when ``path`` names one (plain GET, no token, as KIS's host)."""
        emu = self.server.emulator
        prefix = emu.config.master_files.path.rstrip("/") + "/"
        if emu.master_files is None or self.command != "GET" or not path.startswith(prefix):
            return False
        name = path[len(prefix):]
        data = emu.master_files.files().get(name)
        env = self.server.env or Env.PAPER
        if data is None:
            self._write(404, {"rt_cd": "1", "msg_cd": "EMU00404", "msg1": f"no such master file: {name[:60]}"})
            emu._log_request(env, self.command, path[:80], "master", None, 404, "EMU00404", t0)
            return True
        # Last-Modified = 06:00 KST of the emulated day: the day the files are of, as a static host says it
        made = datetime.combine(emu.engine.day, dtime(6, 0), KST)
        self._write_bytes(200, data, "application/zip", {"Last-Modified": formatdate(made.timestamp(), usegmt=True)})
        emu._log_request(env, self.command, path[:80], "master", None, 200, "-", t0)
        return True

    def _swallow(self, hold_s: float) -> None:
        """Hold the request open, then close the socket without a reply (a client-side timeout)."""
        self.server.stop_event.wait(hold_s)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _gateway_error(self, f: Any, env: Env, path: str, label: str, t0: float) -> None:
        """The ``http500`` fault: a gateway error envelope (default ``EGW00203``)."""
        out = P.message("gateway_error").envelope(env)
        if f.msg_cd:
            out["msg_cd"] = f.msg_cd
        if f.msg1:
            out["msg1"] = f.msg1
        self._write(f.status, out)
        self.server.emulator._log_request(env, self.command, path, label, self.headers.get("appkey"), f.status,
                                          str(out["msg_cd"]) + " [fault]", t0)

    def _broken_reply(self, faults: Any, path: str, env: Env, label: str, t0: float, *, after_accept: bool,
                      resp: RestResponse | None = None) -> bool:
        """The ``garbage`` (HTTP 200, not JSON) and ``reset`` (no reply at all) faults."""
        emu = self.server.emulator
        for kind in ("garbage", "reset"):
            f = faults.take_rest(kind, path, after_accept=after_accept)
            if f is None:
                continue
            if resp is not None:
                emu.gate.release(resp.held)
                resp.held = None
            emu._log_request(env, self.command, path, label, self.headers.get("appkey"), 0,
                             f"{kind}{' after accept' if after_accept else ''} [fault]", t0)
            if kind == "garbage":
                data = b"<html><body>502 Bad Gateway</body></html>"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return True
        return False

    def _handle(self) -> None:
        emu = self.server.emulator
        env = self.server.env
        assert env is not None
        t0 = time.perf_counter()
        body = self._read_body()
        if body is None:
            emu._log_request(env, self.command, self.path[:80], "-", self.headers.get("appkey"), 400, "EMU00400", t0)
            return
        parts = urlsplit(self.path)
        query = {k.upper(): v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        if self._master_file(path, t0):
            return
        req = RestRequest(env, self.command, path, query, self.headers, body)
        faults = emu.faults
        label = self.headers.get("tr_id") or path
        f = faults.take_rest("http500", path, after_accept=False)
        if f is not None:
            self._gateway_error(f, env, path, label, t0)
            return
        if self._broken_reply(faults, path, env, label, t0, after_accept=False):
            return
        if faults.take_rest("rate_storm", path) is not None:
            m = P.message("rate_limited")
            self._write(m.http, m.envelope(env))
            emu._log_request(env, self.command, path, label, self.headers.get("appkey"), m.http,
                             "EGW00201 [fault]", t0)
            return
        f = faults.take_rest("timeout", path, after_accept=False)
        if f is not None:
            emu._log_request(env, self.command, path, label, self.headers.get("appkey"), 0, "timeout [fault]", t0)
            self._swallow(f.hold_s or emu.config.rest.hold_timeout_s)
            return
        f = faults.take_rest("delay", path, before=True)
        if f is not None:
            self.server.stop_event.wait(f.seconds)
        f = faults.take_rest("advance_clock", path)
        if f is not None and emu.clock.steppable:
            emu.advance(timedelta(seconds=f.seconds))   # the market moves during this call
        try:
            resp: RestResponse = emu.rest.handle(req)
        except Exception:  # noqa: BLE001 - a bug must answer like a gateway error, not kill the socket
            log.exception("internal error on %s %s", self.command, path)
            body = {"rt_cd": "1", "msg_cd": "EMU99999", "msg1": "에뮬레이터 내부 오류입니다."}
            self._write(500, body)
            emu._log_request(env, self.command, path, label, self.headers.get("appkey"), 500, "EMU99999", t0)
            return
        try:
            f = faults.take_rest("http500", path, after_accept=True)
            if f is not None:
                emu.gate.release(resp.held)
                resp.held = None
                self._gateway_error(f, env, path, label, t0)
                return
            if self._broken_reply(faults, path, env, label, t0, after_accept=True, resp=resp):
                return
            f = faults.take_rest("timeout", path, after_accept=True)
            if f is not None:
                emu.gate.release(resp.held)
                resp.held = None
                emu._log_request(env, self.command, path, label, self.headers.get("appkey"), 0,
                                 f"{resp.msg_cd} timeout-after-accept [fault]", t0)
                self._swallow(f.hold_s or emu.config.rest.hold_timeout_s)
                return
            f = faults.take_rest("delay", path, before=False)
            if f is not None:
                emu.gate.release(resp.held)
                resp.held = None
                self.server.stop_event.wait(f.seconds)
            elif faults.take_rest("notice_first", path) is not None:
                delivered = emu.gate.release(resp.held)
                resp.held = None
                deadline = time.monotonic() + 2.0
                for item in delivered:
                    item.delivered.wait(max(0.0, deadline - time.monotonic()))
            if isinstance(resp.body, dict) and isinstance(resp.body.get("output"), dict) \
                    and "ODNO" in resp.body["output"]:
                emu._trace("reply", str(resp.body["output"]["ODNO"]))  # before the bytes leave
            self._write(resp.status, resp.body, resp.headers)
        finally:
            if resp.held is not None:
                emu.gate.release(resp.held)
        emu._log_request(env, self.command, path, label, self.headers.get("appkey"), resp.status, resp.msg_cd, t0)


class _AdminHandler(_RestHandler):
    """The admin endpoint: a token like the monitor's (``X-Admin-Token`` header or ``?token=``; printed
    in the banner, ``Emulator.admin_token`` in Python) on every route but ``GET /admin/clock`` (the
    exchange clock a trader with ``clock: emulator`` reads — no account data), JSON bodies only, and
    no cross-site requests: a foreign ``Origin`` or ``Sec-Fetch-Site: cross-site`` is refused, and so
    is any POST that is not ``application/json`` (a browser's "simple" text/plain POST)."""

    server_version = "KIS-Emulator-Admin"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        try:
            self._write(int(code), {"ok": False, "error": message or "bad request"}, {"Connection": "close"})
        except OSError:
            pass

    def _refusal(self) -> tuple[int, str] | None:
        emu = self.server.emulator
        parts = urlsplit(self.path)
        origin = (self.headers.get("Origin") or "").strip().rstrip("/")
        if origin and origin != emu.admin_url:
            return 403, f"cross-site request refused (Origin {origin[:60]})"
        if (self.headers.get("Sec-Fetch-Site") or "").strip().lower() == "cross-site":
            return 403, "cross-site request refused"
        if self.command == "GET" and parts.path.rstrip("/") == "/admin/clock":
            return None
        supplied = self.headers.get("X-Admin-Token") or (parse_qs(parts.query).get("token") or [""])[0]
        if not emu.admin_authorised(supplied):
            return 401, "admin token required (X-Admin-Token header; printed in the emulator banner)"
        if self.command in ("POST", "PUT"):
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return 415, "admin requests must be application/json"
        return None

    def _handle(self) -> None:
        emu = self.server.emulator
        refusal = self._refusal()
        if refusal is not None:
            self.close_connection = True
            self._write(refusal[0], {"ok": False, "error": refusal[1]})
            return
        raw = self._read_body()
        if raw is None:
            return
        args = parse_json(raw)
        if not isinstance(args, dict):
            self._write(400, {"ok": False, "error": "body must be a JSON object"})
            return
        try:
            status, body = emu.admin(self.command, urlsplit(self.path).path, args)
        except (ValueError, TypeError, KeyError, RuntimeError, OrderError, OverflowError) as exc:
            status, body = 400, {"ok": False, "error": str(getattr(exc, "key", exc))[:200]}
        self._write(status, body)


class Emulator:
    """A local KIS for one or both environments.

    Construction::

        emu = Emulator(config, bars={code: DataFrame}, markets={code: Market}, names={code: name},
                       clock=SteppedClock(datetime(2025, 6, 2, 8, 55, tzinfo=KST)))
        with emu:                              # or emu.start() ... emu.stop()
            creds = emu.credentials()          # env, rest_url, ws_url, appkey, appsecret, account, hts_id
            emu.advance(timedelta(minutes=5))  # stepped clock only: replays the market to that moment
            emu.faults.timeout(path="order-cash", after_accept=True)

    ``config`` defaults to ``EmulatorConfig()`` (paper env). ``bars`` is required: the CLI loads it
    with ``feeds.history.load_market_data``; tests pass small hand-made frames.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, bars: Mapping[str, pd.DataFrame],
                 markets: Mapping[str, Market | str] | None = None, names: Mapping[str, str] | None = None,
                 clock: Clock | None = None, wall_clock: WallClock | None = None,
                 reference: ReferenceData | None = None) -> None:
        self.config = cfg = config or EmulatorConfig()
        self.admin_token = cfg.admin_token or secrets.token_urlsafe(24)
        self.primary_env = Env(cfg.env)
        self.envs: list[Env] = [self.primary_env]
        if cfg.serve_both:
            self.envs.append(Env.REAL if self.primary_env is Env.PAPER else Env.PAPER)
        m = cfg.matching
        self.store = BarStore(bars, {k: Market(v) for k, v in (markets or {}).items()}, names,
                              tick_interval_s=m.tick_interval_s, max_ticks_per_bar=m.max_ticks_per_bar)
        self.clock: Clock = clock or build_clock(cfg, self.store)
        env_cfg = {e: cfg.env_config(e.value) for e in Env}
        rules = MatchingRules(
            limit_fill=m.limit_fill, participation=m.participation, expiry_notice=m.expiry_notice,
            revise_confirm_notice=m.revise_confirm_notice, first_order_no=m.first_order_no,
            order_window={e: (env_cfg[e].order_window or DEFAULT_ORDER_WINDOW[e]) for e in Env})  # type: ignore[misc]
        costs = CostModel(commission_rate=Decimal(m.commission_pct) / Decimal(100))
        self.engine = Engine(self.store, self.clock.now(), costs=costs, rules=rules)
        self.faults = FaultController()
        self.wall_clock: WallClock = wall_clock or SystemWallClock()
        if reference is not None and set(self.store.codes) - set(reference.securities):
            reference = merge(generate_reference(self.store.daily, self.store.markets, self.store.names), reference)
        self.reference = reference or resolve_reference(cfg, self.store)
        t = cfg.token
        self.auth = AuthRegistry(self.clock, wall=self.wall_clock, settings=AuthSettings(
            lifetime_s=t.lifetime_s, reuse_window_s=t.reuse_window_s, issue_interval_s=t.issue_interval_s,
            approval_lifetime_s=t.approval_lifetime_s, rate_limit_enabled=cfg.rate_limit.enabled,
            rate_time_base=cfg.rate_limit.time_base,
            rate={e: env_cfg[e].rate_limit_per_sec or P.REST_RATE_LIMIT_PER_SEC[e] for e in Env},
            burst={e: env_cfg[e].rate_limit_burst for e in Env}))
        self.accounts: dict[Env, Account] = {}
        self._apps: dict[Env, list[App]] = {}
        for env in self.envs:
            ec = env_cfg[env]
            a = ec.account
            acct = Account(env, a.cano or DEFAULT_CANO[env], a.acnt_prdt_cd, a.hts_id, a.holder,
                           ec.branch or DEFAULT_BRANCH[env], a.cash)
            for h in a.holdings:
                acct.positions[h.code] = Position(h.code, h.qty, h.qty * h.avg_price)
            self.engine.add_account(acct)
            self.accounts[env] = acct
            self._apps[env] = [self.auth.add_app(env, acct, ec.appkey, ec.appsecret)]
            for _ in range(ec.extra_apps):
                self._apps[env].append(self.auth.add_app(env, acct))
        self.gate = NoticeGate(self.faults, self._publish,
                               {e: env_cfg[e].notice_fields or DEFAULT_NOTICE_FIELDS[e] for e in Env})
        self.engine.sink = self.gate.submit
        self.rest = RestService(self.engine, self.auth, self.clock, self.gate, self.faults, RestSettings(
            strict_string_values=cfg.rest.strict_string_values, pad_msg1=cfg.rest.pad_msg1,
            balance_by_stock=cfg.rest.balance_by_stock,
            messages=P.business_messages(cfg.rest.business_codes,
                                         {k: (o.code, o.text) for k, o in cfg.rest.message_overrides.items()}),
            envs={e: EnvRestSettings(env_cfg[e].branch or DEFAULT_BRANCH[e], env_cfg[e].odno_padded) for e in Env}),
            reference=self.reference)
        self.market_status = MarketStatus(self.reference, lambda: self.engine.day)
        self.master_files = (MasterFiles(self.reference, self.store, lambda: self.engine.day)
                             if cfg.master_files.enabled else None)
        w = cfg.ws
        self._ws_settings = WsSettings(max_registrations=w.max_registrations, ping_interval_s=w.ping_interval_s,
                                       second_session=w.second_session, book_fields=w.book_fields,
                                       max_records_per_frame=w.max_records_per_frame,
                                       accept_appkey_header=w.accept_appkey_header)
        self.hubs: dict[Env, WsHub] = {}
        self._rest_servers: dict[Env, _Server] = {}
        self._admin: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws_servers: dict[Env, Any] = {}
        self._ws_ports: dict[Env, int] = {}
        self._stop = threading.Event()
        self._started = False
        self.pump_stats = {"iterations": 0, "max_lag_s": 0.0, "last_lag_s": 0.0, "max_busy_s": 0.0}
        self.trace: deque[tuple[str, str, float]] = deque(maxlen=2000)
        """(kind, detail, perf_counter) of REST replies written and notices written to sockets, in
        the order they happened — lets tests check "notice before reply" without timing guesses."""

    def _trace(self, kind: str, detail: str) -> None:
        self.trace.append((kind, detail, time.perf_counter()))

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Emulator":
        if self._started:
            return self
        host = self.config.host
        ports = self.config.ports
        try:
            for env in self.envs:
                port = ports.rest_real if env is Env.REAL else ports.rest_paper
                srv = _Server((host, port), _RestHandler, self, env)
                self._rest_servers[env] = srv
                self._spawn(srv.serve_forever, f"kis-emu-rest-{env.value}", kwargs={"poll_interval": 0.1})
            self._admin = _Server((host, ports.admin), _AdminHandler, self, None)
            self._spawn(self._admin.serve_forever, "kis-emu-admin", kwargs={"poll_interval": 0.1})
            self._loop = asyncio.new_event_loop()
            self._spawn(self._run_loop, "kis-emu-ws")
            fut = asyncio.run_coroutine_threadsafe(self._start_ws(host), self._loop)
            fut.result(timeout=10)
            if not self.clock.steppable:
                self._spawn(self._pump, "kis-emu-pump")
        except BaseException:
            self.stop()
            raise
        self._started = True
        log.info("emulator up: env=%s rest=%s ws=%s admin=%s clock=%s", ",".join(e.value for e in self.envs),
                 self.rest_url(), self.ws_url(), self.admin_url, self.clock.mode)
        return self

    def _spawn(self, target: Any, name: str, kwargs: dict[str, Any] | None = None) -> None:
        th = threading.Thread(target=target, name=name, kwargs=kwargs or {}, daemon=True)
        th.start()
        self._threads.append(th)

    def _run_loop(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    async def _start_ws(self, host: str) -> None:
        from websockets.asyncio.server import serve

        for env in self.envs:
            hub = WsHub(env, self.auth, self._ws_settings,
                        clock_text=lambda: self.wall_clock.now().strftime("%Y%m%d%H%M%S"),
                        on_streams_changed=self._streams_changed, trace=self._trace,
                        status=self.market_status if env is Env.REAL else None)
            port = self.config.ports.ws_real if env is Env.REAL else self.config.ports.ws_paper
            server = await serve(hub.handler, host, port, ping_interval=None, max_queue=64,
                                 compression=None, create_connection=PongAwareConnection,
                                 close_timeout=CLOSE_GRACE_S)
            self.hubs[env] = hub
            self._ws_servers[env] = server
            self._ws_ports[env] = server.sockets[0].getsockname()[1]
            hub.start_pinger()

    async def _stop_ws(self) -> None:
        for hub in self.hubs.values():
            await hub.stop()
        for server in self._ws_servers.values():
            server.close()
            await server.wait_closed()

    def stop(self) -> None:
        """Close every listener and connection and join every thread (idempotent)."""
        self._stop.set()
        for srv in list(self._rest_servers.values()) + ([self._admin] if self._admin else []):
            srv.close_all()
            srv.shutdown()
        if self._loop is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._stop_ws(), self._loop).result(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        for srv in list(self._rest_servers.values()) + ([self._admin] if self._admin else []):
            srv.server_close()
        for th in self._threads:
            th.join(timeout=10)
        self._threads.clear()
        self._rest_servers.clear()
        self._admin = None
        self._started = False

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- addresses and credentials ---------------------------------------------------------

    def _env(self, env: Env | str | None) -> Env:
        e = self.primary_env if env is None else Env(env)
        if e not in self.envs:
            raise ValueError(f"environment {e.value} is not served (serve_both: false)")
        return e

    def rest_url(self, env: Env | str | None = None) -> str:
        srv = self._rest_servers[self._env(env)]
        return f"http://{self.config.host}:{srv.server_address[1]}"

    def master_url(self, env: Env | str | None = None) -> str:
        """Where the stock master zips are served (``{master_url}/kospi_code.mst.zip`` …)."""
        return self.rest_url(env) + self.config.master_files.path.rstrip("/")

    def ws_url(self, env: Env | str | None = None) -> str:
        return f"ws://{self.config.host}:{self._ws_ports[self._env(env)]}"

    @property
    def admin_url(self) -> str:
        assert self._admin is not None, "emulator not started"
        return f"http://{self.config.host}:{self._admin.server_address[1]}"

    def admin_authorised(self, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(str(supplied), self.admin_token)

    @property
    def admin_headers(self) -> dict[str, str]:
        """Headers an admin request needs (token, JSON) — for tests and scripts."""
        return {"X-Admin-Token": self.admin_token, "Content-Type": "application/json"}

    @property
    def env(self) -> Env:
        return self.primary_env

    def credentials(self, env: Env | str | None = None, index: int = 0) -> Credentials:
        e = self._env(env)
        app = self._apps[e][index]
        return self._creds(app)

    def all_credentials(self, env: Env | str | None = None) -> list[Credentials]:
        return [self._creds(a) for a in self._apps[self._env(env)]]

    def _creds(self, app: App) -> Credentials:
        acct = app.account
        return Credentials(app.env.value, self.rest_url(app.env), self.ws_url(app.env), app.appkey, app.appsecret,
                           acct.cano, acct.prdt, acct.hts_id)

    def add_app(self, env: Env | str | None = None) -> Credentials:
        """Another app key on the same account (KIS lets one account hold several)."""
        e = self._env(env)
        app = self.auth.add_app(e, self.accounts[e])
        self._apps[e].append(app)
        return self._creds(app)

    def account(self, env: Env | str | None = None) -> Account:
        """The engine's account object (read it under ``engine.lock`` while the emulator runs)."""
        return self.accounts[self._env(env)]

    # ---- clock -----------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, delta: timedelta | float) -> datetime:
        """Stepped clock: move by ``delta`` and replay the market up to the new moment."""
        clock = self._stepped()
        with self.engine.lock:
            moment = clock.advance(delta)
            self.engine.advance_to(moment)
        self.gate.flush_reordered()
        return moment

    def advance_to(self, moment: datetime) -> datetime:
        clock = self._stepped()
        with self.engine.lock:
            moment = clock.set(moment)
            self.engine.advance_to(moment)
        self.gate.flush_reordered()
        return moment

    def _stepped(self) -> SteppedClock:
        if not isinstance(self.clock, SteppedClock):
            raise RuntimeError(f"the {self.clock.mode} clock cannot be stepped")
        return self.clock

    def _pump(self) -> None:
        interval = self.config.clock.pump_interval_s
        while not self._stop.is_set():
            t0 = time.monotonic()
            target = self.clock.now()
            with self.engine.lock:
                self.engine.advance_to(target)
            self.gate.flush_reordered(older_than_s=1.0)
            busy = time.monotonic() - t0
            lag = (self.clock.now() - self.engine.now).total_seconds()
            st = self.pump_stats
            st["iterations"] += 1
            st["last_lag_s"] = lag
            st["max_lag_s"] = max(st["max_lag_s"], lag)
            st["max_busy_s"] = max(st["max_busy_s"], busy)
            self._stop.wait(max(0.0, interval - busy))

    # ---- events to the WebSocket loop ------------------------------------------------------

    def _publish(self, items: list[Item]) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            for it in items:
                if hasattr(it, "delivered"):
                    it.delivered.set()  # type: ignore[union-attr]
            return
        loop.call_soon_threadsafe(self._dispatch, items)

    def _dispatch(self, items: list[Item]) -> None:
        for hub in self.hubs.values():
            hub.dispatch(items)
        for it in items:  # notices for nobody: let waiters go
            if hasattr(it, "delivered") and not any(h.env is it.env for h in self.hubs.values()):  # type: ignore
                it.delivered.set()  # type: ignore[union-attr]

    def _streams_changed(self) -> None:
        codes: set[str] = set()
        for hub in self.hubs.values():
            codes |= hub.streamed_codes()
        self.engine.streamed = frozenset(codes)  # type: ignore[assignment]

    def _in_loop(self, coro: Any, timeout: float = 10.0) -> Any:
        assert self._loop is not None, "emulator not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    # ---- faults acting at once -------------------------------------------------------------

    def drop_websockets(self, env: Env | str | None = None, appkey: str | None = None, abort: bool = True) -> int:
        """Cut WebSocket sessions (abort = TCP reset without close frame, like a KIS restart)."""
        envs = self.envs if env is None else [self._env(env)]

        async def go() -> int:
            return sum([await self.hubs[e].drop(appkey, abort) for e in envs])

        return int(self._in_loop(go()))

    def ping_websockets(self, env: Env | str | None = None, wait_echo: float | None = None) -> int:
        """Run one PINGPONG round now; returns how many silent sessions were dropped.

        ``wait_echo`` (seconds): also wait until every session has echoed this round's ping, so
        the round can serve as an ordering barrier (frames sent before it have been read)."""
        envs = self.envs if env is None else [self._env(env)]

        async def go() -> int:
            dropped = sum([await self.hubs[e].ping_round() for e in envs])
            if wait_echo:
                for e in envs:
                    await self.hubs[e].wait_echoes(wait_echo)
            return dropped

        return int(self._in_loop(go(), timeout=(wait_echo or 0) + 10.0))

    def expire_tokens(self, appkey: str | None = None) -> int:
        return self.auth.expire_tokens(appkey)

    def hts_order(self, code: str, side: str, qty: int, price: int = 0, ord_dvsn: str | None = None,
                  env: Env | str | None = None) -> str:
        """An order placed from "another app" (HTS/MTS) on the account: notices and inquiries show
        it, the client never sent it. ``side``: buy/sell (or 02/01). Returns its ODNO."""
        e = self._env(env)
        side_code = {"buy": P.BUY, "sell": P.SELL, P.BUY: P.BUY, P.SELL: P.SELL}[side.lower()]
        dvsn = ord_dvsn or ("01" if price == 0 else "00")
        with self.engine.lock:
            self.engine.advance_to(self.clock.now())
            order, events = self.engine.place_order(self.accounts[e], code, side_code, dvsn, qty, price, source="hts")
            self.engine.emit(events)
        return self.rest.odno(e, order.no)

    # ---- status / admin --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.engine.lock:
            processed = self.engine.now
            ticks = self.engine.ticks_processed
        now = self.clock.now()
        return {"envs": [e.value for e in self.envs], "primary_env": self.primary_env.value,
                "clock": self.clock.describe(), "now": now.isoformat(), "processed_until": processed.isoformat(),
                "lag_s": max(0.0, (now - processed).total_seconds()), "ticks_processed": ticks,
                "pump": dict(self.pump_stats),
                "ws": {e.value: {"sessions": len(h.sessions), "sessions_opened": h.sessions_opened,
                                 "frames_sent": h.frames_sent, "records_sent": h.records_sent,
                                 "ping_rounds": h.ping_rounds, "pong_frames": sum(s.pong_frames for s in h.sessions),
                                 "text_echoes": sum(s.text_echoes for s in h.sessions),
                                 "malformed": h.malformed} for e, h in self.hubs.items()},
                "urls": {e.value: {"rest": self.rest_url(e), "ws": self.ws_url(e)} for e in self.envs},
                "admin_url": self.admin_url if self._admin else None, "faults": self.faults.describe()}

    def account_summary(self, env: Env | str | None = None) -> dict[str, Any]:
        e = self._env(env)
        acct = self.accounts[e]
        with self.engine.lock:
            cal = krx_calendar()
            d = self.engine.now.date()
            d0 = d if cal.is_trading_day(d) else cal.previous_trading_day(d)
            return {"env": e.value, "account": f"{acct.cano}-{acct.prdt}", "hts_id": acct.hts_id,
                    "cash_d0": acct.cash_due_by(d0), "cash_d1": acct.cash_due_by(cal.next_trading_day(d0)),
                    "cash_d2": acct.cash_all(), "buying_power": self.engine.buying_power(acct),
                    "positions": {c: {"qty": p.qty, "cost": p.cost} for c, p in acct.positions.items()},
                    "orders": [{"odno": self.rest.odno(e, o.no), "code": o.code, "side": o.side,
                                "ord_dvsn": o.ord_dvsn, "kind": o.kind, "qty": o.qty, "price": o.price,
                                "filled": o.filled_qty, "open": o.open_qty, "source": o.source}
                               for o in sorted(acct.orders.values(), key=lambda o: o.no)]}

    def admin(self, method: str, path: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The admin endpoint's routes (JSON in, JSON out)."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["admin"]:
            return 404, {"ok": False, "error": "unknown path"}
        route = parts[1:]
        if route == ["status"] and method == "GET":
            return 200, self.status()
        if route == ["clock"]:
            if method == "GET":   # now, mode and what a trader needs to follow the clock locally
                return 200, {**self.clock.describe(), "steppable": self.clock.steppable}
            if "to" in args:
                moment = datetime.fromisoformat(str(args["to"]))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=KST)
                if moment - self.clock.now() > MAX_ADMIN_STEP:
                    raise ValueError(f"'to' more than {MAX_ADMIN_STEP.days} days ahead")
                now = self.advance_to(moment)
            else:
                step = float(args.get("advance_s", 0))
                if not 0 <= step <= MAX_ADMIN_STEP.total_seconds():     # also refuses NaN and inf
                    raise ValueError(f"advance_s must be 0..{MAX_ADMIN_STEP.total_seconds():.0f}")
                now = self.advance(step)
            return 200, {"now": now.isoformat(), "mode": self.clock.mode}
        if route == ["accounts"] and method == "GET":
            return 200, {"accounts": [self.account_summary(e) for e in self.envs]}
        if route == ["faults"]:
            if method == "DELETE":
                self.faults.clear()
            return 200, self.faults.describe()
        if len(route) == 2 and route[0] == "faults" and method == "POST":
            return 200, {"ok": True, "result": self._arm(route[1], args)}
        if route == ["ws", "ping"] and method == "POST":
            return 200, {"ok": True, "dropped": self.ping_websockets(args.get("env"))}
        return 404, {"ok": False, "error": "unknown route"}

    def _arm(self, kind: str, a: dict[str, Any]) -> Any:
        f = self.faults
        if kind in ("http500", "rate_storm", "timeout", "delay", "notice_first", "garbage", "reset", "advance_clock"):
            fault = f.arm_rest(kind, _admin_int(a.pop("count", 1), "count"), str(a.pop("path", "") if kind != "notice_first"
                                                                   else a.pop("path", "order")), **a)
            return fault.kind
        if kind == "duplicate_notices":
            f.duplicate_notices(_admin_int(a.get("count", 1), "count"))
        elif kind == "reorder_notices":
            f.reorder_notices(_admin_int(a.get("count", 1), "count"))
        elif kind == "reject_next_orders":
            f.reject_next_orders(_admin_int(a.get("count", 1), "count"))
        elif kind == "drop_websockets":
            return self.drop_websockets(a.get("env"), a.get("appkey"), bool(a.get("abort", True)))
        elif kind == "expire_tokens":
            return self.expire_tokens(a.get("appkey"))
        elif kind == "hts_order":
            return self.hts_order(str(a["code"]), str(a["side"]), _admin_int(a["qty"], "qty"),
                                  _admin_int(a.get("price", 0), "price"),
                                  a.get("ord_dvsn"), a.get("env"))
        elif kind == "clear":
            f.clear()
        else:
            raise ValueError(f"unknown fault {kind!r}")
        return kind

    def _log_request(self, env: Env, method: str, path: str, tr: str, appkey: str | None, status: int,
                     msg_cd: str, t0: float) -> None:
        if self.config.log_requests:
            log.info("%s %s %s tr_id=%s key=%s -> %s %s %.1fms", env.value, method, path, tr, mask(appkey),
                     status, msg_cd, (time.perf_counter() - t0) * 1000)

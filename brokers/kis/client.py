"""KIS (한국투자증권) Open API REST client for domestic stocks: auth, orders, inquiries, charts.

This is the adapter's transport layer. It knows the wire (headers, envelopes, paging, TR ids from
``protocol.py``) and the *safety* rules around it; it knows nothing about backtrader or the order
book of the broker that uses it.

Safety rules, and why:

* **Orders are never re-sent once they may have reached KIS.** A read timeout, a connection closed
  after sending, an HTTP 5xx or an unparseable reply to ``order-cash``/``order-rvsecncl`` raises at
  once with ``ambiguous=True`` (``KISTimeout``/``KISServerError``): the order may exist, and only
  the caller can look it up (``daily_orders``) before trying again — one intent must never become
  two orders (DESIGN "Live order flow" step 4). Refusals that KIS gives *before* processing are
  safe and retried: rate limits (``EGW00201``/``EGW00215``), an expired/invalid token (re-issued
  once) and connection failures before sending.
* **Queries are retried** with exponential backoff and jitter on rate limits, 5xx, connection
  errors and timeouts (``KIS_RETRY``), because re-reading is harmless.
* **Pacing**: every request of an app key passes one process-wide token bucket
  (``ratelimit.bucket_for``) at ``protocol.REST_RATE_LIMIT_PER_SEC`` (real 18/s, paper 1/s).
* **Tokens** come from a shared 0600 disk cache (``tokencache.py``) and are re-issued only when
  fewer than ``TOKEN_REFRESH_MARGIN_S`` remain, never more than once a minute (``EGW00133``) — each
  issuance also pings the account holder's phone.
* **Secrets** (app key/secret, tokens, account number) never reach logs or exception text; logs
  carry method, path, TR id, HTTP status, ``msg_cd`` and latency only. urllib3's debug log prints
  query strings, so a filter masks ``CANO`` there.

All waiting goes through the injected ``clock``/``sleep``/``wallclock`` so tests run in virtual time.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Literal, Mapping
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter

from brokers.kis import protocol as P
from brokers.kis.credentials import Credentials, mask_account, mask_key
from brokers.kis.errors import (
    KISAuthError, KISError, KISRateLimited, KISRejected, KISServerError, KISTimeout, KISTransportError,
    TOKEN_THROTTLED_CODE, error_from_reply,
)
from brokers.kis.info import CalendarMismatch
from brokers.kis.models import (
    Balance, BuyingPower, DailyOrder, OrderReply, parse_buying_power, parse_cash, parse_daily_order,
    parse_holding, parse_open_order, parse_order_reply, to_int,
)
from brokers.kis.protocol import Api, Env, Generation
from brokers.kis.quotations import BAR_COLUMNS, MAX_PAGES, Quotations
from brokers.kis.ratelimit import TokenBucket, bucket_for
from brokers.kis.tokencache import CachedToken, TokenCache, cache_key

__all__ = [
    "Credentials", "KISClient", "RetryPolicy", "KIS_RETRY", "ClientStats", "KST", "TOKEN_REFRESH_MARGIN_S",
    "BAR_COLUMNS",
]

log = logging.getLogger("krx_trader.kis.client")

KST = ZoneInfo("Asia/Seoul")

TOKEN_REFRESH_MARGIN_S = 600.0
"""Re-issue the access token when fewer than 10 minutes remain (what python-kis does, §2.1)."""
TOKEN_ISSUE_SPACING_S = float(P.TOKEN_ISSUE_INTERVAL_S) + 1.0
"""Wait between two ``tokenP`` issuances: the 1-per-minute rule plus a second of margin."""
CLOCK_SKEW_TOLERANCE_S = 300.0
"""If ``access_token_token_expired`` and ``now + expires_in`` disagree by more, the server's clock
is not ours (an emulator on a stepped clock): trust ``expires_in`` on our clock instead."""
CONNECT_TIMEOUT_S = 3.05


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts: ``min(max_delay, base_delay · 2^attempt)``, then a random part
    (``jitter`` = share of the delay randomised away) so many clients do not retry in lockstep.
    A rate-limit retry waits at least one bucket interval."""

    max_retries: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** attempt))
        return d * (1.0 - self.jitter * rng.random())


KIS_RETRY = RetryPolicy()
"""Defaults: 4 retries (5 attempts), 0.25 s → 0.5 → 1 → 2 s (each up to 50 % shorter), capped at 8 s."""


@dataclass
class ClientStats:
    """Counters for monitoring and tests (not thread-exact: plain ints)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    tokens_issued: int = 0
    tokens_from_cache: int = 0
    token_waits: int = 0
    reauths: int = 0


@dataclass
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: dict[str, Any] | None
    tr_id: str
    latency_ms: float


# ---- log redaction ----------------------------------------------------------------------------

_SECRET_PARAMS_RE = re.compile(r"((?:^|[?&])(?:CANO|CTX_AREA_[FN]K\d+)=)[^&\s\"']*", re.IGNORECASE)
"""Query parameters that carry the account number: ``CANO`` and the paging keys, which KIS builds
from it (``81055689^01^N^…``, §3.1)."""


class _RedactAccountFilter(logging.Filter):
    """urllib3 logs ``"GET /path?CANO=…"`` at DEBUG: mask the account-bearing parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        upper = text.upper()
        if "CANO=" in upper or "CTX_AREA_" in upper:
            record.msg = _SECRET_PARAMS_RE.sub(r"\1****", text)
            record.args = ()
        return True


def _install_redaction() -> None:
    lg = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactAccountFilter) for f in lg.filters):
        lg.addFilter(_RedactAccountFilter())


_install_redaction()


# ---- transport error classification -----------------------------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    """The chain of wrapped exceptions (requests → urllib3 MaxRetryError → reason → OSError)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            v = getattr(e, attr, None)
            if isinstance(v, BaseException):
                todo.append(v)
    return seen


def _not_sent(exc: BaseException) -> bool:
    """True when the connection failed before the request could be written (refused, DNS, connect
    timeout): then the request certainly did not reach KIS."""
    import urllib3.exceptions as u3

    for e in _causes(exc):
        if isinstance(e, (u3.NewConnectionError, u3.ConnectTimeoutError, ConnectionRefusedError)):
            return True
        if type(e).__name__ in ("NameResolutionError", "LocationParseError"):
            return True
    return False


def _cause_name(exc: BaseException) -> str:
    chain = _causes(exc)
    return type(chain[-1]).__name__ if chain else type(exc).__name__


def _as_ambiguous(e: KISError) -> KISError:
    if e.ambiguous:
        return e
    return type(e)(e.detail, msg_cd=e.msg_cd, msg1=e.msg1, http_status=e.http_status, tr_id=e.tr_id,
                   ambiguous=True)


def _numbered(r: OrderReply, reply: _Reply) -> OrderReply:
    """An order reply must carry a numeric order number; without one the outcome is ambiguous."""
    if not r.odno.isdigit():
        log.error("order %s accepted without a readable order number: outcome unknown; look it up", reply.tr_id)
        raise KISServerError("reply without a readable order number", msg_cd=r.msg_cd, msg1=r.msg1,
                             http_status=reply.status, tr_id=reply.tr_id, ambiguous=True)
    return r


def _three_months_before(d: date) -> date:
    y, m = d.year, d.month - 3
    if m <= 0:
        y, m = y - 1, m + 12
    for day in (d.day, 30, 29, 28):
        try:
            return date(y, m, day)
        except ValueError:
            continue
    return date(y, m, 28)


_SIDE_CODES = {"00": "00", "all": "00", "": "00", "sell": P.SELL, P.SELL: P.SELL, "buy": P.BUY, P.BUY: P.BUY}
_CCLD_CODES = {"00": "00", "all": "00", "": "00", "01": "01", "filled": "01", "02": "02", "unfilled": "02"}


class KISClient(Quotations):
    """Synchronous, thread-safe REST client of one app key / account in one environment.

    ``rest_url`` defaults to KIS's host for ``env``; point it at the emulator in tests. See the
    module docstring for the retry, pacing, token and logging rules.
    """

    def __init__(self, creds: Credentials, env: Env | str, rest_url: str | None = None, *,
                 token_cache: Path | None = None, requests_per_second: float | None = None,
                 use_old_tr_ids: bool = False, timeout: float = 10.0, order_timeout: float = 10.0,
                 max_retries: int = KIS_RETRY.max_retries, clock: Callable[[], float] = _time.monotonic,
                 wallclock: Callable[[], datetime] = lambda: datetime.now(KST),
                 sleep: Callable[[float], None] = _time.sleep, retry: RetryPolicy | None = None,
                 burst: float = 1.0, admin_url: str | None = None, fresh_connection_for_orders: bool = True) -> None:
        self.creds = creds
        self.env: Env = Env(env)
        self.rest_url: str = (rest_url or P.REST_BASE_URL[self.env]).rstrip("/")
        self.use_old_tr_ids = use_old_tr_ids
        self._generation = Generation.OLD if use_old_tr_ids else Generation.NEW
        self.timeout = float(timeout)
        self.order_timeout = float(order_timeout)
        base = retry or KIS_RETRY
        self.retry = RetryPolicy(max_retries, base.base_delay, base.max_delay, base.jitter)
        self._clock = clock
        self._wallclock = wallclock
        self._sleep = sleep
        self._rng = random.Random()
        rate = float(requests_per_second or P.REST_RATE_LIMIT_PER_SEC[self.env])
        self.bucket: TokenBucket = bucket_for(creds.app_key, rate, burst, clock, sleep)
        self._cache = TokenCache(token_cache)
        self._cache_key = cache_key(self.env.value, self.rest_url, creds.app_key)
        self._token: CachedToken | None = None
        self._token_lock = threading.RLock()
        self._approval: str | None = None
        self._approval_lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self.admin_url = admin_url.rstrip("/") if admin_url else None
        self.fresh_connection_for_orders = fresh_connection_for_orders
        self.stats = ClientStats()
        self._calendar_checks: dict[date, list[CalendarMismatch]] = {}
        self._kis_open: dict[date, bool] = {}

    def __repr__(self) -> str:
        return (f"KISClient(env={self.env.value!r}, rest_url={self.rest_url!r}, app_key={mask_key(self.creds.app_key)!r}, "
                f"account={mask_account(self.creds.cano, self.creds.product_code)!r})")

    # ---- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections (the client stays usable; new sessions open on demand)."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()
        self._local = threading.local()

    def __enter__(self) -> "KISClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _new_session() -> requests.Session:
        s = requests.Session()
        adapter = HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=4)  # urllib3 must never re-send
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        return s

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = self._new_session()
            with self._sessions_lock:
                self._sessions.append(s)
        return s

    # ---- TR ids ------------------------------------------------------------------------------

    def tr_id(self, api: Api | str) -> str:
        """The TR id sent for ``api``: new ids by default, old ones with ``use_old_tr_ids`` where
        they exist (§3.0: KIS may block old ids without notice)."""
        api = Api(api)
        try:
            return P.tr_id_for(api, self.env, self._generation)
        except ValueError:
            if self._generation is Generation.OLD:
                try:
                    return P.tr_id_for(api, self.env, Generation.NEW)
                except ValueError:
                    pass
        raise KISRejected(f"{api.value} is not offered on the {self.env.value} environment")

    # ---- raw HTTP ----------------------------------------------------------------------------

    def _http(self, method: str, path: str, *, headers: dict[str, str], params: Mapping[str, str] | None = None,
              body: Mapping[str, Any] | None = None, timeout: float, tr_id: str, fresh: bool = False) -> _Reply:
        """One HTTP exchange. Raises ``KISTransportError`` (not sent) or ``KISTimeout`` (maybe sent).

        ``fresh``: use a new connection instead of a pooled keep-alive one. Orders do, because a
        pooled socket the server closed at the wrong moment fails *after* the request was written,
        which is indistinguishable from a lost reply; on a fresh connection a failure before
        sending is reliably "not sent". Costs one TCP/TLS handshake per order.

        Exceptions from ``requests`` are not chained (``from None``): their text holds the URL with
        the account number in the query string.
        """
        url = self.rest_url + path
        data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        t0 = _time.perf_counter()
        self.stats.requests += 1
        session = self._new_session() if fresh else self._session()
        try:
            resp = session.request(method, url, params=params, data=data, headers=headers,
                                   timeout=(min(CONNECT_TIMEOUT_S, timeout), timeout), allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            raise KISTransportError("connect timeout", tr_id=tr_id) from None
        except requests.exceptions.ReadTimeout:
            raise KISTimeout(f"no reply within {timeout:g}s", tr_id=tr_id) from None
        except requests.exceptions.ConnectionError as exc:
            if _not_sent(exc):
                raise KISTransportError(f"connection failed ({_cause_name(exc)})", tr_id=tr_id) from None
            raise KISTimeout(f"connection closed without a reply ({_cause_name(exc)})", tr_id=tr_id) from None
        except requests.exceptions.ChunkedEncodingError as exc:
            raise KISTimeout(f"reply cut off ({_cause_name(exc)})", tr_id=tr_id) from None
        except requests.exceptions.RequestException as exc:
            raise KISTransportError(f"request not sent ({type(exc).__name__})", tr_id=tr_id) from None
        finally:
            if fresh:
                session.close()
        latency = (_time.perf_counter() - t0) * 1000.0
        try:
            parsed = resp.json()
        except ValueError:
            parsed = None
        return _Reply(resp.status_code, resp.headers, parsed if isinstance(parsed, dict) else None, tr_id, latency)

    def _headers(self, tr_id: str, token: str, tr_cont: str = "") -> dict[str, str]:
        return {"content-type": "application/json; charset=utf-8", "authorization": f"Bearer {token}",
                "appkey": self.creds.app_key, "appsecret": self.creds.app_secret, "tr_id": tr_id,
                "tr_cont": tr_cont, "custtype": "P"}

    def _backoff(self, attempt: int, floor: float = 0.0) -> None:
        self.stats.retries += 1
        self._sleep(max(floor, self.retry.delay(attempt, self._rng)))

    # ---- the one request path of /uapi -------------------------------------------------------

    def _call(self, api: Api, *, params: Mapping[str, str] | None = None, body: Mapping[str, Any] | None = None,
              tr_cont: str = "", order: bool = False, before_send: Callable[[], None] | None = None) -> _Reply:
        """Send one TR with pacing, token refresh and the retry policy (see the module docstring).

        ``before_send`` runs right before every attempt leaves (after the rate limiter's wait): an
        order's owner raises ``KISNotSent`` from it when the order must not go any more (the trader
        is stopping, its window closed) — nothing was sent, so that answer is certain."""
        spec = P.API_SPEC[api]
        tr_id = self.tr_id(api)
        timeout = self.order_timeout if order else self.timeout
        attempt = 0
        reauthed = False
        level = logging.INFO if order else logging.DEBUG
        while True:
            token = self.access_token()
            self.bucket.acquire()
            if before_send is not None:
                before_send()
            try:
                reply = self._http(spec.method, spec.full_path, headers=self._headers(tr_id, token, tr_cont),
                                   params=params, body=body, timeout=timeout, tr_id=tr_id,
                                   fresh=order and self.fresh_connection_for_orders)
                err = error_from_reply(reply.status, reply.body, tr_id)
                msg_cd = str((reply.body or {}).get("msg_cd", "")).strip()
                log.log(level if err is None else logging.WARNING, "%s %s tr_id=%s -> http=%s msg_cd=%s %.0fms",
                        spec.method, spec.full_path, tr_id, reply.status, msg_cd or "-", reply.latency_ms)
                if err is None:
                    return reply
                raise err
            except KISAuthError as e:
                if e.token_problem and not reauthed:
                    reauthed = True
                    self.stats.reauths += 1
                    log.info("token refused (%s) on %s: re-issuing once", e.msg_cd, tr_id)
                    self._invalidate_token(token)
                    continue
                raise
            except KISRateLimited:
                self.stats.rate_limited += 1
                self.bucket.penalize()
                if attempt >= self.retry.max_retries:
                    raise
                log.info("rate limited on %s: backing off (attempt %d)", tr_id, attempt + 1)
                self._backoff(attempt, floor=1.0 / self.bucket.rate)
                attempt += 1
            except KISTransportError as e:
                if attempt >= self.retry.max_retries:
                    raise
                log.warning("%s on %s: retrying (attempt %d)", e.detail, tr_id, attempt + 1)
                self._backoff(attempt)
                attempt += 1
            except (KISTimeout, KISServerError) as e:
                if order:
                    log.error("order %s outcome unknown (%s): NOT re-sent; look the order up", tr_id, e)
                    raise _as_ambiguous(e) from None
                if isinstance(e, KISServerError) and e.http_status is not None and 200 < e.http_status < 500:
                    raise
                if attempt >= self.retry.max_retries:
                    raise
                log.warning("%s on %s: retrying (attempt %d)", type(e).__name__, tr_id, attempt + 1)
                self._backoff(attempt)
                attempt += 1

    def _paged(self, api: Api, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every page of a ``tr_cont``-paged TR (§3.1): ``tr_cont`` F/M → ask again with ``N`` and
        the ``ctx_area_*`` keys copied verbatim (trailing spaces included)."""
        pages: list[dict[str, Any]] = []
        fk = nk = ""
        tr_cont = ""
        for _ in range(MAX_PAGES):
            p = dict(params)
            p["CTX_AREA_FK100"] = fk
            p["CTX_AREA_NK100"] = nk
            reply = self._call(api, params=p, tr_cont=tr_cont)
            body = reply.body or {}
            pages.append(body)
            cont = str(reply.headers.get("tr_cont", "")).strip().upper()
            if cont not in P.TR_CONT_MORE:
                return pages
            nfk = str(body.get("ctx_area_fk100", body.get("CTX_AREA_FK100", "")))
            nnk = str(body.get("ctx_area_nk100", body.get("CTX_AREA_NK100", "")))
            if (nfk, nnk) == (fk, nk):
                log.warning("%s: paging keys did not move; stopping after %d pages", api.value, len(pages))
                return pages
            fk, nk, tr_cont = nfk, nnk, P.TR_CONT_NEXT_REQUEST
        log.warning("%s: stopped after %d pages", api.value, MAX_PAGES)
        return pages

    # ---- OAuth -------------------------------------------------------------------------------

    def _oauth_post(self, path: str, body: Mapping[str, Any]) -> _Reply:
        """POST to an OAuth endpoint; retried on transport errors, timeouts and 5xx (all harmless
        here: a duplicate issuance at worst earns an ``EGW00133``, handled by the caller)."""
        attempt = 0
        label = path.rsplit("/", 1)[-1]
        while True:
            try:
                reply = self._http("POST", path, headers={"content-type": "application/json; charset=utf-8"},
                                   body=body, timeout=self.timeout, tr_id=label)
                err = error_from_reply(reply.status, reply.body, label)
                code = str((reply.body or {}).get("error_code", "")).strip()
                log.log(logging.INFO if err is None else logging.WARNING, "POST %s -> http=%s %s %.0fms", path,
                        reply.status, code or "-", reply.latency_ms)
                if err is None:
                    return reply
                raise err
            except (KISTransportError, KISTimeout, KISServerError, KISRateLimited) as e:
                if isinstance(e, KISServerError) and e.http_status is not None and e.http_status < 500:
                    raise
                if attempt >= self.retry.max_retries:
                    raise
                self._backoff(attempt, floor=1.0 if isinstance(e, KISRateLimited) else 0.0)
                attempt += 1

    @staticmethod
    def _fresh(tok: CachedToken | None, now: datetime) -> bool:
        """Usable without renewal: more than the margin left — or, for a token that was short-lived
        from the start (a server re-serving an old token), more than half its lifetime."""
        if tok is None:
            return False
        lifetime = (tok.expires_at - tok.issued_at).total_seconds()
        return tok.seconds_left(now) > min(TOKEN_REFRESH_MARGIN_S, max(lifetime, 0.0) / 2)

    def access_token(self) -> str:
        """A valid access token: memory → shared disk cache → ``tokenP`` (see ``_obtain_token``)."""
        if self._fresh(self._token, self._wallclock()):
            return self._token.access_token  # type: ignore[union-attr]
        with self._token_lock:
            if self._fresh(self._token, self._wallclock()):
                return self._token.access_token  # type: ignore[union-attr]
            return self._obtain_token()

    def _obtain_token(self) -> str:
        """Under the cache's cross-process lock: reuse another process's fresh token, else issue one,
        waiting out the one-per-minute rule (recorded in the cache as ``last_issue_at``)."""
        for _ in range(3):
            with self._cache.locked():
                entry = self._cache.load(self._cache_key)
                now = self._wallclock()
                t = entry.token
                if t is not None and self._fresh(t, now):
                    self._token = t
                    self.stats.tokens_from_cache += 1
                    log.debug("access token from cache (expires %s)", t.expires_at.isoformat())
                    return t.access_token
                if entry.last_issue_at is not None:
                    wait = TOKEN_ISSUE_SPACING_S - (now - entry.last_issue_at).total_seconds()
                    if wait > 0:
                        wait = min(wait, TOKEN_ISSUE_SPACING_S)
                        self.stats.token_waits += 1
                        log.info("a token was issued %.0fs ago: waiting %.0fs (KIS allows one per minute)",
                                 TOKEN_ISSUE_SPACING_S - wait, wait)
                        self._sleep(wait)
                        now = self._wallclock()
                try:
                    tok = self._issue_token(now)
                except KISAuthError as e:
                    if not e.throttled:
                        raise
                    log.warning("token issuance throttled (%s): will wait and retry", e.msg_cd)
                    self._cache.save(self._cache_key, t, now)
                    continue
                self._cache.save(self._cache_key, tok, now)
                self._token = tok
                return tok.access_token
        raise KISAuthError("token issuance kept being throttled", msg_cd=TOKEN_THROTTLED_CODE)

    def _issue_token(self, now: datetime) -> CachedToken:
        reply = self._oauth_post(P.PATH_TOKEN, {"grant_type": "client_credentials", "appkey": self.creds.app_key,
                                                "appsecret": self.creds.app_secret})
        body = reply.body or {}
        value = str(body.get("access_token") or "")
        if not value:
            raise KISServerError("tokenP reply without access_token", http_status=reply.status, tr_id="tokenP")
        expires_in = to_int(body.get("expires_in"), P.TOKEN_LIFETIME_S)
        by_clock = now + timedelta(seconds=expires_in)
        expires_at = by_clock
        text = str(body.get("access_token_token_expired") or "").strip()
        if text:
            try:
                server = datetime.strptime(text, P.TOKEN_EXPIRY_FORMAT).replace(tzinfo=KST)
                skew = (server - by_clock).total_seconds()
                if abs(skew) <= CLOCK_SKEW_TOLERANCE_S:
                    expires_at = server
                else:
                    log.warning("server clock differs from ours by %.0fs: token expiry taken from expires_in", skew)
            except ValueError:
                log.warning("unreadable access_token_token_expired; using expires_in")
        self.stats.tokens_issued += 1
        log.info("access token issued (expires %s)", expires_at.isoformat())
        return CachedToken(value, expires_at, now)

    def _invalidate_token(self, token: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.access_token == token:
                self._token = None
            self._cache.forget_token(self._cache_key, token)

    def approval_key(self, refresh: bool = False) -> str:
        """WebSocket approval key from ``/oauth2/Approval`` (the secret goes as ``secretkey``, §2.3);
        cached in memory, re-issued with ``refresh=True`` (after ``OPSP0011`` invalid approval)."""
        with self._approval_lock:
            if self._approval and not refresh:
                return self._approval
            reply = self._oauth_post(P.PATH_APPROVAL, {"grant_type": "client_credentials",
                                                       "appkey": self.creds.app_key,
                                                       "secretkey": self.creds.app_secret})
            key = str((reply.body or {}).get("approval_key") or "")
            if not key:
                raise KISAuthError("Approval reply without approval_key", http_status=reply.status, tr_id="Approval")
            self._approval = key
            return key

    def revoke(self) -> None:
        """Revoke the current token at KIS (``/oauth2/revokeP``) and drop it from the caches."""
        with self._token_lock:
            tok = self._token or self._cache.load(self._cache_key).token
            if tok is None:
                return
            try:
                self._oauth_post(P.PATH_REVOKE, {"appkey": self.creds.app_key, "appsecret": self.creds.app_secret,
                                                 "token": tok.access_token})
            except KISAuthError as e:
                if not e.token_problem:
                    raise
                log.info("revoke: token already invalid (%s)", e.msg_cd)
            self._token = None
            self._cache.forget_token(self._cache_key, tok.access_token)

    # ---- orders ------------------------------------------------------------------------------

    def _account(self) -> dict[str, str]:
        return {"CANO": self.creds.cano, "ACNT_PRDT_CD": self.creds.product_code}

    @staticmethod
    def _price_text(ord_dvsn: str, price: int) -> str:
        dv = P.ORD_DVSN.get(ord_dvsn)
        return "0" if dv is not None and dv.market_price else str(int(price))

    def order_cash(self, side: Literal["buy", "sell"], code: str, qty: int, price: int, ord_dvsn: str = "00",
                   exchange: str = "KRX", *, before_send: Callable[[], None] | None = None) -> OrderReply:
        """주식주문(현금) cash buy/sell. Market-type ``ord_dvsn`` sends price ``"0"``.

        Raises ``KISRejected`` (final), or ``KISTimeout``/``KISServerError`` with ``ambiguous=True``
        when the order may exist — never re-sent here. A success without a readable order number
        is ambiguous too (KIS took it, but which order is it?).
        """
        if side not in ("buy", "sell"):
            raise ValueError("side must be 'buy' or 'sell'")
        if int(qty) <= 0:
            raise ValueError("qty must be positive")
        api = Api.ORDER_CASH_BUY if side == "buy" else Api.ORDER_CASH_SELL
        body = {**self._account(), "PDNO": code, "ORD_DVSN": ord_dvsn, "ORD_QTY": str(int(qty)),
                "ORD_UNPR": self._price_text(ord_dvsn, price), "EXCG_ID_DVSN_CD": exchange}
        reply = self._call(api, body=body, order=True, before_send=before_send)
        r = _numbered(parse_order_reply(reply.body or {}), reply)
        log.info("order %s %s qty=%d price=%s ord_dvsn=%s -> odno=%s branch=%s", side, code, int(qty),
                 body["ORD_UNPR"], ord_dvsn, r.odno, r.branch)
        return r

    def revise(self, branch: str, orig_odno: str, qty: int | None, price: int, ord_dvsn: str = "00",
               exchange: str = "KRX", *, before_send: Callable[[], None] | None = None) -> OrderReply:
        """정정: a NEW order number for the revised remainder. ``qty=None`` revises all that remains
        (``QTY_ALL_ORD_YN=Y``)."""
        return self._rvsecncl(P.RVSE, branch, orig_odno, qty, self._price_text(ord_dvsn, price), ord_dvsn, exchange,
                              before_send)

    def cancel(self, branch: str, orig_odno: str, qty: int | None = None, exchange: str = "KRX", *,
               before_send: Callable[[], None] | None = None) -> OrderReply:
        """취소 of the unfilled remainder (or ``qty`` of it); the cancel gets its own order number."""
        return self._rvsecncl(P.CNCL, branch, orig_odno, qty, "0", "00", exchange, before_send)

    def _rvsecncl(self, kind: str, branch: str, orig_odno: str, qty: int | None, price_text: str, ord_dvsn: str,
                  exchange: str, before_send: Callable[[], None] | None = None) -> OrderReply:
        if qty is not None and int(qty) <= 0:
            raise ValueError("qty must be positive (or None for all that remains)")
        body = {**self._account(), "KRX_FWDG_ORD_ORGNO": branch, "ORGN_ODNO": str(orig_odno), "ORD_DVSN": ord_dvsn,
                "RVSE_CNCL_DVSN_CD": kind, "ORD_QTY": "0" if qty is None else str(int(qty)), "ORD_UNPR": price_text,
                "QTY_ALL_ORD_YN": "Y" if qty is None else "N", "EXCG_ID_DVSN_CD": exchange}
        reply = self._call(Api.ORDER_RVSECNCL, body=body, order=True, before_send=before_send)
        r = _numbered(parse_order_reply(reply.body or {}), reply)
        log.info("%s of %s qty=%s -> odno=%s", "cancel" if kind == P.CNCL else "revise", orig_odno,
                 "all" if qty is None else qty, r.odno)
        return r

    # ---- account inquiries -------------------------------------------------------------------

    def balance(self) -> Balance:
        """주식잔고조회, every page. Cash from ``output2`` (a one-element array on the wire)."""
        params = {**self._account(), "AFHR_FLPR_YN": "N", "OFL_YN": "", "INQR_DVSN": "01", "UNPR_DVSN": "01",
                  "FUND_STTL_ICLD_YN": "N", "FNCG_AMT_AUTO_RDPT_YN": "N", "PRCS_DVSN": "00"}
        pages = self._paged(Api.INQUIRE_BALANCE, params)
        rows: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        for body in pages:
            rows.extend(r for r in (body.get("output1") or []) if isinstance(r, dict) and r)
            o2 = body.get("output2")
            if isinstance(o2, list) and o2 and isinstance(o2[0], dict):
                summary = o2[0]
            elif isinstance(o2, dict) and o2:
                summary = o2
        holdings = [h for h in (parse_holding(r) for r in rows) if h.qty > 0]
        return Balance(holdings, parse_cash(summary), {"output1": rows, "output2": summary, "pages": len(pages)})

    def daily_orders(self, start: date, end: date, *, code: str = "", side: str = "00", filled: str = "00",
                     odno: str = "") -> list[DailyOrder]:
        """주식일별주문체결조회 between ``start`` and ``end`` (inclusive), every page, oldest first.

        ``side``: ``00``/``all``, ``01``/``sell``, ``02``/``buy``; ``filled``: ``00`` all, ``01``/``filled``,
        ``02``/``unfilled``. Days older than three months go to the separate "before 3 months" TR
        (§3.7); a range spanning both is split. A "data changed since the query" answer restarts
        the paging (twice at most).
        """
        try:
            side_cd, ccld_cd = _SIDE_CODES[side.lower()], _CCLD_CODES[filled.lower()]
        except KeyError:
            raise ValueError("side must be 00/01/02/all/buy/sell and filled 00/01/02/all/filled/unfilled") from None
        if end < start:
            return []
        cutoff = _three_months_before(self._wallclock().date())
        ranges: list[tuple[Api, date, date]] = []
        if start < cutoff:
            ranges.append((Api.INQUIRE_DAILY_CCLD_OLD, start, min(end, cutoff - timedelta(days=1))))
        if end >= cutoff:
            ranges.append((Api.INQUIRE_DAILY_CCLD, max(start, cutoff), end))
        seen: dict[tuple[Any, int | str], DailyOrder] = {}
        for api, a, b in ranges:
            params = {**self._account(), "INQR_STRT_DT": a.strftime("%Y%m%d"), "INQR_END_DT": b.strftime("%Y%m%d"),
                      "SLL_BUY_DVSN_CD": side_cd, "INQR_DVSN": "00", "PDNO": code, "CCLD_DVSN": ccld_cd,
                      "ORD_GNO_BRNO": "", "ODNO": odno, "INQR_DVSN_3": "00", "INQR_DVSN_1": ""}
            for row in self._paged_restartable(api, params):
                o = parse_daily_order(row)
                seen[(o.date, to_int(o.odno, -1) if o.odno.strip().isdigit() else o.odno)] = o
        return sorted(seen.values(), key=lambda o: (o.date or date.min, to_int(o.odno), o.odno))

    def _paged_restartable(self, api: Api, params: Mapping[str, str]) -> list[dict[str, Any]]:
        changed = P.message("ccld_changed").real_text
        for attempt in range(3):
            try:
                pages = self._paged(api, params)
            except KISRejected as e:
                if changed[:12] in e.msg1 and attempt < 2:
                    log.info("%s: data changed while paging; restarting", api.value)
                    continue
                raise
            return [r for body in pages for r in (body.get("output1") or []) if isinstance(r, dict) and r]
        return []

    def open_orders(self) -> list[DailyOrder]:
        """Orders that can still be revised or cancelled.

        Real: 주식정정취소가능주문조회 (``remaining_qty`` = ``psbl_qty``). Paper has no such TR (§3.5):
        today's ``daily_orders`` with ``remaining_qty > 0`` that are not cancel rows. Caveat: after the
        close, expired day orders still show ``rmn_qty > 0`` there.
        """
        today = self._wallclock().date()
        if self.env is Env.REAL:
            params = {**self._account(), "INQR_DVSN_1": "0", "INQR_DVSN_2": "0"}
            pages = self._paged(Api.INQUIRE_PSBL_RVSECNCL, params)
            rows = [r for body in pages for r in (body.get("output") or []) if isinstance(r, dict) and r]
            return [o for o in (parse_open_order(r, today) for r in rows) if o.remaining_qty > 0]
        return [o for o in self.daily_orders(today, today) if o.remaining_qty > 0 and not o.cancelled]

    def buying_power(self, code: str, price: int, ord_dvsn: str = "00") -> BuyingPower:
        """매수가능조회 for ``code`` at ``price`` (use the order type you will send: a market buy is
        reserved at the upper limit, §3.8)."""
        params = {**self._account(), "PDNO": code, "ORD_UNPR": self._price_text(ord_dvsn, price), "ORD_DVSN": ord_dvsn,
                  "CMA_EVLU_AMT_ICLD_YN": "N", "OVRS_ICLD_YN": "N"}
        reply = self._call(Api.INQUIRE_PSBL_ORDER, params=params)
        out = (reply.body or {}).get("output") or {}
        return parse_buying_power(out if isinstance(out, dict) else {})

    # ---- emulator helper ---------------------------------------------------------------------

    def server_clock(self) -> dict[str, Any] | None:
        """The emulator's clock via its admin endpoint (``admin_url``): ``now`` (aware datetime),
        ``mode`` and, for an accelerated clock, ``day_seconds`` and ``window``; ``None`` against real
        KIS or when the endpoint does not answer."""
        if not self.admin_url:
            return None
        try:
            r = self._session().get(self.admin_url + "/admin/clock", timeout=self.timeout)
            state = r.json()
            text = state.get("now")
        except (requests.exceptions.RequestException, ValueError, AttributeError):
            return None
        if not text:
            return None
        d = datetime.fromisoformat(str(text))
        return {**state, "now": d if d.tzinfo else d.replace(tzinfo=KST)}

    def server_now(self) -> datetime | None:
        """The emulator's clock now; ``None`` against real KIS."""
        state = self.server_clock()
        return state["now"] if state else None

"""App keys, access tokens, WebSocket approval keys and the per-app-key REST rate limiter.

Rules (PROTOCOL.md §2, §5.1). Token and approval-key lifetimes, the one-a-minute ``tokenP`` rule
and the reuse window run on the **wall clock** (``WallClock``: the machine's clock by default, a
``ManualWallClock`` in tests) in every market-clock mode — they are facts of the gateway, and the
clients written for real KIS compare ``access_token_token_expired`` with their own wall clock
(KIS's sample ``read_token()``; python-kis ``KisAccessToken.remaining`` re-issues under 10 minutes):

* ``tokenP``: a request within ``issue_interval_s`` (60 s) of the previous successful one is
  refused with HTTP 403 ``EGW00133``; within ``reuse_window_s`` (6 h) of issuance the **same**
  token is served again (``expires_in`` = seconds left); otherwise a new 24 h token is issued.
  Older tokens stay valid until their own expiry, as on KIS.
* An expired token answers ``EGW00123`` (HTTP 500); an unknown, revoked or other-app token
  ``EGW00121``.
* Keys are bound to one environment: a paper key on the real host → ``EGW02004``, a real key on
  the paper host → ``EGW02007``.
* REST rate limit: one token bucket per app key, shared by every TR of that key (orders too);
  capacity = 1 s worth of the rate unless configured; empty → ``EGW00201`` (HTTP 500). Buckets
  refill on ``Clock.monotonic()`` by default ("auto": emulated seconds on a stepped clock, so a
  test drains and refills a bucket by stepping; wall seconds on real/accelerated clocks);
  ``rate_time_base="wall"`` forces real seconds (a client that paces itself on the wall clock
  against a stepped emulator).

Secrets never leave this module except in the credentials the operator asked for; ``mask``
is what logs use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from brokers.kis import protocol as P
from brokers.kis.emulator.clock import Clock, SystemWallClock, WallClock
from brokers.kis.emulator.matching import Account

_ALNUM = string.ascii_letters + string.digits


def new_appkey() -> str:
    """36 characters like KIS's (``PS`` + 34 alphanumerics)."""
    return "PS" + "".join(secrets.choice(_ALNUM) for _ in range(P.APPKEY_LENGTH - 2))


def new_appsecret() -> str:
    """180 characters (KIS secrets are base64-looking text)."""
    alphabet = _ALNUM + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(P.APPSECRET_LENGTH - 1)) + "="


def mask(value: str | None) -> str:
    """What logs print instead of a key/token: the first 4 characters only."""
    if not value:
        return "-"
    return value[:4] + "…"


@dataclass
class App:
    appkey: str
    appsecret: str
    env: P.Env
    account: Account

    def credentials(self, rest_url: str, ws_url: str) -> dict[str, str]:
        return {"env": self.env.value, "rest_url": rest_url, "ws_url": ws_url, "appkey": self.appkey,
                "appsecret": self.appsecret, "account": f"{self.account.cano}-{self.account.prdt}",
                "hts_id": self.account.hts_id}


@dataclass
class Token:
    value: str
    appkey: str
    issued_at: datetime
    expires_at: datetime
    revoked: bool = False


@dataclass
class Bucket:
    rate: float
    capacity: float
    level: float
    last: float

    def take(self, now: float) -> bool:
        if now > self.last:
            self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
            self.last = now
        if self.level >= 1.0:
            self.level -= 1.0
            return True
        return False


@dataclass
class AuthSettings:
    lifetime_s: int = P.TOKEN_LIFETIME_S
    reuse_window_s: int = P.TOKEN_REUSE_WINDOW_S
    issue_interval_s: int = P.TOKEN_ISSUE_INTERVAL_S
    approval_lifetime_s: int = 86_400
    rate_limit_enabled: bool = True
    rate_time_base: str = "auto"
    rate: dict[P.Env, float] = field(default_factory=lambda: dict(P.REST_RATE_LIMIT_PER_SEC))
    burst: dict[P.Env, float | None] = field(default_factory=lambda: {P.Env.REAL: None, P.Env.PAPER: None})


class AuthError(Exception):
    """Carries the ready answer: HTTP status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("msg_cd") or body.get("error_code"))
        self.status = status
        self.body = body


def gateway_error(key: str, env: P.Env) -> AuthError:
    m = P.message(key)
    return AuthError(m.http, m.envelope(env))


class AuthRegistry:
    """All apps of all environments (so cross-environment use can be recognised)."""

    def __init__(self, clock: Clock, settings: AuthSettings | None = None, wall: WallClock | None = None) -> None:
        self.clock = clock          # market clock: only the rate limiter's "auto"/"clock" time base
        self.wall = wall or SystemWallClock()
        self.settings = settings or AuthSettings()
        self._lock = threading.Lock()
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, Token] = {}
        self._latest: dict[str, Token] = {}
        self._last_issue: dict[str, datetime] = {}
        self.approvals: dict[str, tuple[str, datetime]] = {}
        self._buckets: dict[str, Bucket] = {}
        self._signing_key = secrets.token_bytes(32)

    # ---- apps ----------------------------------------------------------------------------

    def add_app(self, env: P.Env, account: Account, appkey: str | None = None, appsecret: str | None = None) -> App:
        app = App(appkey or new_appkey(), appsecret or new_appsecret(), env, account)
        with self._lock:
            if app.appkey in self.apps:
                raise ValueError("app key already registered")
            self.apps[app.appkey] = app
        return app

    def _app_for(self, host_env: P.Env, appkey: str | None, appsecret: str | None, oauth: bool) -> App:
        app = self.apps.get(appkey or "")
        if app is None:
            if oauth:
                raise AuthError(403, P.oauth_error(*P.OAUTH_APPKEY_INVALID))
            raise gateway_error("appkey_invalid", host_env)
        if app.env is not host_env:
            key = "paper_key_on_real" if host_env is P.Env.REAL else "real_key_on_paper"
            if oauth:
                m = P.message(key)
                raise AuthError(403, P.oauth_error(m.code(host_env), m.text(host_env)))
            raise gateway_error(key, host_env)
        if not appsecret or not hmac.compare_digest(app.appsecret, appsecret):
            if oauth:
                raise AuthError(403, P.oauth_error(*P.OAUTH_APPSECRET_INVALID))
            raise gateway_error("appsecret_invalid", host_env)
        return app

    # ---- tokens --------------------------------------------------------------------------

    def _jwt(self, appkey: str, issued: datetime, expires: datetime) -> str:
        def b64(obj: Any) -> str:
            raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        header = b64({"typ": "JWT", "alg": "HS512"})
        payload = b64({"sub": "token", "aud": hashlib.sha256(appkey.encode()).hexdigest()[:36],
                       "prdt_cd": "", "iss": "unogw", "exp": int(expires.timestamp()),
                       "iat": int(issued.timestamp()), "jti": uuid.uuid4().hex})
        sig = b64(hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha512).digest())
        return f"{header}.{payload}.{sig}"

    def issue_token(self, host_env: P.Env, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /oauth2/tokenP`` → (status, body)."""
        try:
            app = self._app_for(host_env, body.get("appkey"), body.get("appsecret"), oauth=True)
        except AuthError as exc:
            return exc.status, exc.body
        now = self.wall.now()
        s = self.settings
        with self._lock:
            last = self._last_issue.get(app.appkey)
            if last is not None and (now - last).total_seconds() < s.issue_interval_s:
                return 403, P.oauth_error(*P.OAUTH_TOKEN_THROTTLED)
            tok = self._latest.get(app.appkey)
            reusable = (tok is not None and not tok.revoked and now < tok.expires_at
                        and (now - tok.issued_at).total_seconds() < s.reuse_window_s)
            if not reusable:
                expires = now + timedelta(seconds=s.lifetime_s)
                tok = Token(self._jwt(app.appkey, now, expires), app.appkey, now, expires)
                self.tokens[tok.value] = tok
                self._latest[app.appkey] = tok
            assert tok is not None
            self._last_issue[app.appkey] = now
        return 200, {"access_token": tok.value, "access_token_token_expired":
                     tok.expires_at.strftime(P.TOKEN_EXPIRY_FORMAT), "token_type": "Bearer",
                     "expires_in": max(0, int((tok.expires_at - now).total_seconds()))}

    def revoke(self, host_env: P.Env, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /oauth2/revokeP``."""
        try:
            app = self._app_for(host_env, body.get("appkey"), body.get("appsecret"), oauth=True)
        except AuthError as exc:
            return exc.status, exc.body
        with self._lock:
            tok = self.tokens.get(str(body.get("token") or ""))
            if tok is None or tok.revoked or tok.appkey != app.appkey:
                return 403, P.oauth_error(*P.OAUTH_TOKEN_INVALID)
            tok.revoked = True
            if self._latest.get(app.appkey) is tok:
                del self._latest[app.appkey]
        return 200, dict(P.REVOKE_OK)

    def expire_tokens(self, appkey: str | None = None) -> int:
        """Fault: every live token (of one key, or all) expires now."""
        now = self.wall.now()
        n = 0
        with self._lock:
            for tok in self.tokens.values():
                if (appkey is None or tok.appkey == appkey) and tok.expires_at > now:
                    tok.expires_at = now
                    n += 1
        return n

    def approval(self, host_env: P.Env, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /oauth2/Approval`` — note the secret arrives as ``secretkey`` (§2.3)."""
        try:
            app = self._app_for(host_env, body.get("appkey"), body.get("secretkey"), oauth=True)
        except AuthError as exc:
            return exc.status, exc.body
        key = str(uuid.uuid4())
        with self._lock:
            self.approvals[key] = (app.appkey, self.wall.now())
        return 200, {"approval_key": key}

    def app_for_approval(self, approval_key: str) -> App | None:
        with self._lock:
            entry = self.approvals.get(approval_key)
        if entry is None:
            return None
        appkey, issued = entry
        if (self.wall.now() - issued).total_seconds() >= self.settings.approval_lifetime_s:
            return None
        return self.apps.get(appkey)

    def app_for_keys(self, appkey: str | None, appsecret: str | None) -> App | None:
        """Legacy WebSocket header auth (appkey + appsecret instead of an approval key)."""
        app = self.apps.get(appkey or "")
        if app is None or not appsecret or not hmac.compare_digest(app.appsecret, appsecret):
            return None
        return app

    # ---- REST checks ---------------------------------------------------------------------

    def check_rest(self, host_env: P.Env, appkey: str | None, appsecret: str | None, authorization: str | None
                   ) -> App:
        """Key/secret/env, then bearer token. Raises ``AuthError`` with the KIS answer."""
        app = self._app_for(host_env, appkey, appsecret, oauth=False)
        auth = (authorization or "").strip()
        if not auth[:7].lower() == "bearer ":
            raise gateway_error("token_invalid", host_env)
        value = auth[7:].strip()
        with self._lock:
            tok = self.tokens.get(value)
        if tok is None or tok.revoked or tok.appkey != app.appkey:
            raise gateway_error("token_invalid", host_env)
        if self.wall.now() >= tok.expires_at:
            raise gateway_error("token_expired", host_env)
        return app

    def check_hashkey(self, host_env: P.Env, appkey: str | None, appsecret: str | None) -> App:
        return self._app_for(host_env, appkey, appsecret, oauth=False)

    def take_rate(self, app: App) -> bool:
        """One request from ``app``'s bucket; False = rate limited."""
        s = self.settings
        if not s.rate_limit_enabled:
            return True
        rate = s.rate[app.env]
        cap = s.burst.get(app.env) or max(rate, 1.0)
        now = time.monotonic() if s.rate_time_base == "wall" else self.clock.monotonic()
        with self._lock:
            b = self._buckets.get(app.appkey)
            if b is None:
                b = self._buckets[app.appkey] = Bucket(rate, cap, cap, now)
            return b.take(now)

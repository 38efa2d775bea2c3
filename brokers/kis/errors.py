"""Typed errors of the KIS (한국투자증권) transport layer, and the mapping from a KIS reply to them.

Why a hierarchy and not one exception with a code: callers act on the *kind* of failure, not on
the code. A rejection (tick error, not enough cash…) is final; a rate limit is retried; an expired
token is re-issued; a timeout on an order is **ambiguous** — the order may exist — and must be
looked up before anything is re-sent. The classes say which is which, and ``ambiguous`` marks the
instances whose outcome is unknown.

Codes are never re-typed here: they come from ``brokers/kis/protocol.py`` (the single source of
truth). ``str()`` of every error is built only from the server's ``msg_cd``/``msg1``, the TR id,
the HTTP status and our own text — never from headers, bodies we sent, URLs or credentials.
"""

from __future__ import annotations

from typing import Any, Mapping

from brokers.kis import protocol as P

__all__ = [
    "KISError", "KISRejected", "KISRateLimited", "KISAuthError", "KISServerError", "KISTransportError",
    "KISNotSent", "KISTimeout", "KISConfigError", "KISSubscriptionLimit", "RATE_LIMIT_CODES", "TOKEN_EXPIRED_CODES",
    "TOKEN_INVALID_CODES", "TOKEN_THROTTLED_CODE", "AUTH_CODES", "PERMANENT_GATEWAY_CODES", "error_from_reply",
    "clean_msg1",
]


def _codes(*keys: str) -> frozenset[str]:
    """Real and paper codes of the named protocol messages (they are equal for gateway codes)."""
    out: set[str] = set()
    for k in keys:
        m = P.message(k)
        out.update({m.real_code, m.paper_code})
    return frozenset(out)


RATE_LIMIT_CODES: frozenset[str] = _codes("rate_limited", "ledger_rate_limited")
"""``EGW00201`` personal per-second limit, ``EGW00215`` ledger TPS cap (PROTOCOL §5.1): retry later."""
TOKEN_EXPIRED_CODES: frozenset[str] = _codes("token_expired")
"""``EGW00123``: the access token expired → invalidate the cache, re-issue once, retry once."""
TOKEN_INVALID_CODES: frozenset[str] = _codes("token_invalid") | {P.OAUTH_TOKEN_INVALID[0]}
"""``EGW00121``: unknown/revoked token (e.g. a cached token of a restarted server) → same treatment."""
TOKEN_THROTTLED_CODE: str = P.OAUTH_TOKEN_THROTTLED[0]
"""``EGW00133`` (HTTP 403): a ``tokenP`` within a minute of the last issuance → wait and reuse."""
AUTH_CODES: frozenset[str] = (
    TOKEN_EXPIRED_CODES | TOKEN_INVALID_CODES
    | _codes("appkey_invalid", "appsecret_invalid", "paper_key_on_real", "real_key_on_paper")
    | {TOKEN_THROTTLED_CODE, P.OAUTH_APPKEY_INVALID[0], P.OAUTH_APPSECRET_INVALID[0]}
)
"""Token and app-key problems (PROTOCOL §5.2)."""
PERMANENT_GATEWAY_CODES: frozenset[str] = _codes("not_paper_tr", "service_not_found")
"""HTTP 500 answers that are configuration errors, not transient faults (``EGW02006`` real-only TR on
paper, ``MCA00124`` unknown service): retrying cannot help, so they surface as ``KISRejected``."""


def clean_msg1(text: Any) -> str:
    """KIS right-pads ``msg1`` with spaces to 80 characters (§1.4): trim before comparing."""
    return str(text or "").strip()


class KISError(Exception):
    """Base of every KIS transport error.

    Attributes: ``msg_cd`` (8-char KIS code or ``""``), ``msg1`` (trimmed server text), ``http_status``
    (``None`` when no reply arrived), ``tr_id``, ``ambiguous`` (True when the request may have been
    processed although we got no usable answer — look it up before re-sending an order).
    """

    def __init__(self, detail: str = "", *, msg_cd: str = "", msg1: str = "", http_status: int | None = None,
                 tr_id: str = "", ambiguous: bool = False) -> None:
        self.detail = detail
        self.msg_cd = msg_cd or ""
        self.msg1 = clean_msg1(msg1)
        self.http_status = http_status
        self.tr_id = tr_id or ""
        self.ambiguous = ambiguous
        super().__init__(self._text())

    def _text(self) -> str:
        parts = []
        if self.msg_cd:
            parts.append(self.msg_cd)
        if self.msg1:
            parts.append(self.msg1)
        if self.detail:
            parts.append(self.detail)
        ctx = []
        if self.tr_id:
            ctx.append(f"tr_id={self.tr_id}")
        if self.http_status is not None:
            ctx.append(f"http={self.http_status}")
        if self.ambiguous:
            ctx.append("ambiguous: the request may have been processed")
        text = " ".join(parts) or type(self).__name__
        return f"{text} ({', '.join(ctx)})" if ctx else text

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self) -> Any:  # picklable across processes with its attributes
        return (_rebuild, (type(self), self.detail, self.msg_cd, self.msg1, self.http_status, self.tr_id,
                           self.ambiguous))


def _rebuild(cls: type[KISError], detail: str, msg_cd: str, msg1: str, http_status: int | None, tr_id: str,
             ambiguous: bool) -> KISError:
    return cls(detail, msg_cd=msg_cd, msg1=msg1, http_status=http_status, tr_id=tr_id, ambiguous=ambiguous)


class KISRejected(KISError):
    """Business rejection: HTTP 200 with ``rt_cd != "0"`` (tick, band, cash, nothing left, market
    closed, input validation ``OPSQ2001``…), or a permanent gateway refusal. Final: do not retry."""


class KISRateLimited(KISError):
    """``EGW00201``/``EGW00215``: KIS refused the request *before* processing it — safe to retry,
    orders included. The client retries these itself; seeing one means the retries ran out."""


class KISAuthError(KISError):
    """Token or app-key problem (``EGW00123`` expired, ``EGW00121`` invalid, ``EGW00103`` bad key,
    ``EGW00133`` token issuance throttled, wrong key for the host…)."""

    @property
    def token_problem(self) -> bool:
        """True when a fresh access token may fix it (expired or invalid token)."""
        return self.msg_cd in TOKEN_EXPIRED_CODES or self.msg_cd in TOKEN_INVALID_CODES

    @property
    def throttled(self) -> bool:
        return self.msg_cd == TOKEN_THROTTLED_CODE


class KISServerError(KISError):
    """Other HTTP 5xx (gateway trouble such as ``EGW00203``) or an unparseable reply. Retried for
    queries; for an order it is raised at once with ``ambiguous=True``."""


class KISTransportError(KISError):
    """The request surely did not reach KIS (connection refused, DNS, connect timeout): safe to retry."""


class KISNotSent(KISTransportError):
    """The request was deliberately not sent (its owner's ``before_send`` refused: the trader is
    stopping, or the order's window closed). Certain: KIS never saw it."""


class KISTimeout(KISError):
    """No reply (read timeout, or the connection closed after the request was sent): the request MAY
    have been processed. Always ``ambiguous``; an order is never re-sent automatically."""

    def __init__(self, detail: str = "", **kw: Any) -> None:
        kw["ambiguous"] = True
        super().__init__(detail, **kw)


class KISConfigError(ValueError):
    """Missing or malformed configuration (credentials). Names the variable, never its value."""


class KISSubscriptionLimit(KISError):
    """A WebSocket subscription beyond the client's registration budget (PROTOCOL §4.7)."""


def error_from_reply(status: int, body: Mapping[str, Any] | None, tr_id: str = "") -> KISError | None:
    """The typed error a KIS reply stands for, or ``None`` for a success.

    Handles both envelopes: the ``rt_cd``/``msg_cd``/``msg1`` one of ``/uapi`` (business errors on
    HTTP 200, gateway errors on HTTP 500 — §1.4) and the flat ``error_code``/``error_description``
    one of the OAuth endpoints (§2.1). ``body=None`` means the body was not a JSON object.
    """
    if body is None:
        return KISServerError("unparseable reply", http_status=status, tr_id=tr_id)
    code = str(body.get("msg_cd") or body.get("error_code") or "").strip()
    text = clean_msg1(body.get("msg1") or body.get("error_description") or "")
    rt_cd = str(body.get("rt_cd", "")).strip()
    kw: dict[str, Any] = {"msg_cd": code, "msg1": text, "http_status": status, "tr_id": tr_id}
    if code in RATE_LIMIT_CODES:
        return KISRateLimited(**kw)
    if code in AUTH_CODES:
        return KISAuthError(**kw)
    if code in PERMANENT_GATEWAY_CODES:
        return KISRejected(**kw)
    if status >= 500:
        return KISServerError(**kw)
    if "error_code" in body:
        return KISAuthError(**kw)  # OAuth endpoints: every error is about keys or tokens
    if status != 200:
        # 4xx without a known code: not transient, not a business answer either
        return KISRejected(f"HTTP {status}", **kw)
    if "rt_cd" in body:
        return None if rt_cd == "0" else KISRejected(**kw)
    return None

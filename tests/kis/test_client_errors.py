"""Typed errors, retries under faults (rate-limit storm, HTTP 500, timeouts), no double orders, no secrets."""

from __future__ import annotations

import socket
import threading
from datetime import datetime
from pathlib import Path

import pytest

from brokers.kis import protocol as P
from brokers.kis.client import KISClient
from brokers.kis.errors import (
    KISAuthError, KISError, KISRateLimited, KISRejected, KISServerError, KISTimeout, KISTransportError,
    error_from_reply,
)
from brokers.kis.ratelimit import TokenBucket, bucket_for
from market.calendar import KST

ENVS = ["paper", "real"]


def _expect(exc: KISError, key: str, env: str) -> None:
    m = P.message(key)
    assert isinstance(exc, KISRejected), exc
    assert exc.msg_cd == m.code(env) and exc.msg1 == m.text(env)  # msg1 arrives padded to 80 chars
    assert exc.http_status == 200 and exc.tr_id and not exc.ambiguous
    assert m.code(env) in str(exc)


@pytest.mark.parametrize("env", ENVS)
def test_business_rejections_are_typed(kit, client_factory, emu, env: str) -> None:
    c = client_factory(env)
    q = c.quote(kit.MAIN)
    with pytest.raises(KISRejected) as ei:
        c.order_cash("buy", kit.MAIN, 1, q.price + 1)  # off the 100-won grid
    _expect(ei.value, "tick_error", env)
    with pytest.raises(KISRejected) as ei:
        c.order_cash("buy", kit.MAIN, 1, q.upper_limit + q.tick)
    _expect(ei.value, "band_error", env)
    with pytest.raises(KISRejected) as ei:
        c.order_cash("buy", kit.MAIN, 10_000, q.price)
    _expect(ei.value, "insufficient_cash", env)
    r = c.order_cash("buy", kit.MAIN, 1, q.lower_limit + q.tick)
    c.cancel(r.branch, r.odno)
    with pytest.raises(KISRejected) as ei:
        c.cancel(r.branch, r.odno)
    _expect(ei.value, "nothing_to_revise", env)
    emu.advance_to(datetime(2025, 6, 2, 15, 31, tzinfo=KST))
    with pytest.raises(KISRejected) as ei:
        c.order_cash("buy", kit.MAIN, 1, q.price)
    _expect(ei.value, "market_closed", env)
    assert len(kit.orders_at(emu, env)) == 2  # the resting order and its cancel, nothing else


def test_rate_limit_storm_is_absorbed(kit, client_factory, emu) -> None:
    c = client_factory("paper")
    emu.faults.rate_storm(count=3, path="inquire-price")
    assert c.quote(kit.MAIN).price > 0  # no EGW00201 leaks out
    assert c.stats.rate_limited == 3 and c.stats.retries == 3
    emu.faults.rate_storm(count=2, path="order-cash")
    q = c.quote(kit.MAIN)
    r = c.order_cash("buy", kit.MAIN, 1, q.lower_limit + q.tick)  # refused before processing: safe to retry
    orders = kit.orders_at(emu, "paper")
    assert len(orders) == 1 and P.same_order_number(orders[0]["odno"], r.odno)


def test_real_rate_limit_backoff(kit, client_factory, emu) -> None:
    """Pacing set far above the paper limit (1/s): the emulator's own bucket answers EGW00201,
    the client backs off in (virtual) time and every call succeeds."""
    c = client_factory("paper", requests_per_second=50)
    prices = [c.quote(kit.MAIN).price for _ in range(5)]
    assert all(p > 0 for p in prices)
    assert c.stats.rate_limited > 0


def test_rate_limit_retries_run_out(kit, client_factory, emu) -> None:
    c = client_factory("paper", max_retries=2)
    emu.faults.rate_storm(count=5, path="inquire-price")
    with pytest.raises(KISRateLimited) as ei:
        c.quote(kit.MAIN)
    assert ei.value.msg_cd == P.message("rate_limited").code("paper") and ei.value.http_status == 500


def test_http_500_burst_on_a_query_is_retried(kit, client_factory, emu, vt) -> None:
    c = client_factory("paper")
    c.access_token()
    emu.faults.http500(count=3, path="inquire-balance")
    before = len(vt.sleeps)
    assert c.balance().holdings
    assert c.stats.retries == 3 and len(vt.sleeps) > before


def test_http_500_on_an_order_is_not_resent(kit, client_factory, emu) -> None:
    c = client_factory("real")
    emu.faults.http500(count=1, path="order-cash")
    with pytest.raises(KISServerError) as ei:
        c.order_cash("buy", kit.MAIN, 1, 60_000)
    assert ei.value.ambiguous and ei.value.http_status == 500 and "ambiguous" in str(ei.value)
    assert c.stats.retries == 0 and kit.orders_at(emu, "real") == []


@pytest.mark.parametrize("after_accept", [True, False])
def test_order_timeout_is_ambiguous_and_not_resent(kit, client_factory, emu, emu_log, after_accept: bool) -> None:
    c = client_factory("paper", order_timeout=0.4)
    q = c.quote(kit.MAIN)
    emu.faults.timeout(count=1, path="order-cash", after_accept=after_accept, hold_s=3.0)
    sent = c.stats.requests
    with pytest.raises(KISTimeout) as ei:
        c.order_cash("buy", kit.MAIN, 2, q.lower_limit + q.tick)
    assert ei.value.ambiguous and ei.value.http_status is None
    assert c.stats.requests == sent + 1 and c.stats.retries == 0
    assert len(emu_log.settled(emu, "order-cash")) == 1  # the emulator saw exactly one order request
    orders = kit.orders_at(emu, "paper")
    assert len(orders) == (1 if after_accept else 0)
    # what the broker does next: look the order up instead of re-sending
    today = emu.now().date()
    assert len(c.daily_orders(today, today, code=kit.MAIN)) == len(orders)


def test_query_timeout_is_retried(kit, client_factory, emu) -> None:
    c = client_factory("real", timeout=0.4)
    c.access_token()
    emu.faults.timeout(count=1, path="inquire-price", hold_s=3.0)
    assert c.quote(kit.MAIN).price > 0
    assert c.stats.retries == 1


def test_connection_refused_is_a_transport_error(kit, emu, vt) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    creds = kit.creds_of(emu, "paper")
    c = KISClient(creds, "paper", f"http://127.0.0.1:{port}", clock=vt.monotonic, wallclock=vt.wallclock,
                  sleep=vt.sleep, max_retries=2)
    with pytest.raises(KISTransportError) as ei:
        c.approval_key()
    assert not ei.value.ambiguous and str(port) not in str(ei.value)
    assert c.stats.retries == 2


def test_wrong_key_for_host_is_an_auth_error(kit, emu, vt) -> None:
    creds = kit.creds_of(emu, "paper")
    c = KISClient(creds, "real", emu.rest_url("real"), clock=vt.monotonic, wallclock=vt.wallclock, sleep=vt.sleep)
    with pytest.raises(KISAuthError) as ei:
        c.access_token()
    assert ei.value.http_status == 403 and ei.value.msg_cd


def test_real_only_tr_on_paper_is_rejected_not_retried(kit, client_factory) -> None:
    c = client_factory("paper")
    with pytest.raises(KISRejected):
        c.tr_id("inquire_psbl_rvsecncl")
    err = error_from_reply(500, P.message("not_paper_tr").envelope("paper"), "TTTC0084R")
    assert isinstance(err, KISRejected) and err.http_status == 500


def test_error_mapping_table() -> None:
    env = "real"
    cases = [
        (500, P.message("rate_limited").envelope(env), KISRateLimited),
        (500, P.message("ledger_rate_limited").envelope(env), KISRateLimited),
        (500, P.message("token_expired").envelope(env), KISAuthError),
        (200, P.message("token_expired").envelope(env), KISAuthError),  # the official sample checks 200 too
        (403, P.oauth_error(*P.OAUTH_TOKEN_THROTTLED), KISAuthError),
        (500, P.message("gateway_error").envelope(env), KISServerError),
        (200, P.message("tick_error").envelope(env), KISRejected),
        (200, P.input_invalid("INQR_DVSN"), KISRejected),
        (200, None, KISServerError),
    ]
    for status, body, cls in cases:
        assert type(error_from_reply(status, body, "X")) is cls, (status, body)
    assert error_from_reply(200, P.message("quote_ok").envelope(env), "X") is None
    assert error_from_reply(200, dict(P.REVOKE_OK), "revokeP") is None
    throttled = error_from_reply(403, P.oauth_error(*P.OAUTH_TOKEN_THROTTLED), "tokenP")
    assert isinstance(throttled, KISAuthError) and throttled.throttled and not throttled.token_problem


def test_secrets_never_in_logs_or_errors(kit, client_factory, emu, debug_logs, tmp_path: Path) -> None:
    c = client_factory("paper", order_timeout=0.4)
    secrets = [c.creds.app_key, c.creds.app_secret, c.creds.cano]
    errors: list[BaseException] = []
    q = c.quote(kit.MAIN)
    c.balance()
    c.buying_power(kit.MAIN, q.price)
    today = emu.now().date()
    c.daily_orders(today, today)
    secrets.append(c.access_token())
    secrets.append(c.approval_key())
    for fault in (lambda: emu.faults.timeout(count=1, path="order-cash", hold_s=3.0),
                  lambda: emu.faults.http500(count=1, path="order-cash"),
                  lambda: None):
        fault()
        try:
            c.order_cash("buy", kit.MAIN, 1, q.price + 1)
        except KISError as e:
            errors.append(e)
    emu.expire_tokens()
    c.balance()
    secrets.append(c.access_token())
    assert len(errors) == 3
    text = debug_logs.text + "".join(str(e) + repr(e) for e in errors) + repr(c) + repr(c.creds)
    assert "CANO=****" in debug_logs.text  # urllib3's debug line was redacted, not silent
    for s in secrets:
        assert s not in text


# ---- token bucket ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        with self.lock:
            self.slept.append(s)


def test_token_bucket_paces_and_is_thread_safe() -> None:
    fc = FakeClock()
    b = TokenBucket(2.0, 1.0, fc.now, fc.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        w = b.acquire()
        with lock:
            waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(round(w, 6) for w in waits) == [k * 0.5 for k in range(10)]  # every slot taken once
    fc.t = 100.0
    assert b.acquire() == 0.0  # refilled (capped at burst 1)
    assert b.acquire() == pytest.approx(0.5)
    b.penalize()


def test_bucket_registry_shares_per_app_key() -> None:
    fc = FakeClock()
    a = bucket_for("PS" + "x" * 34, 18.0, clock=fc.now, sleep=fc.sleep)
    assert bucket_for("PS" + "x" * 34, 18.0) is a
    assert bucket_for("PS" + "x" * 34, 5.0) is a and a.rate == 5.0  # the most conservative rate wins
    assert bucket_for("PS" + "y" * 34, 18.0) is not a

"""Alerts to Telegram, Slack and a generic webhook — delivered to a local receiver over HTTP."""

from __future__ import annotations


import pytest

from analysis.alerts import Alert, AlertRouter, SlackSink, TelegramSink, WebhookSink, router_from_config
from configs.schema import AlertsConfig
from receiver import Receiver

SECRET_KEY = "PSabcdefghijklmnopqrstuvwxyz01234567"   # 36 chars, like a KIS app key
ACCOUNT = "50000001"


def test_each_sink_posts_its_own_shape(receiver):
    router = AlertRouter([WebhookSink(receiver.url + "/hook"), SlackSink(receiver.url + "/slack"),
                          TelegramSink("BOTTOKEN", "42", base_url=receiver.url)])
    router.notify(Alert("fill", "fill buy 005930", "10 sh @ 71,900 KRW"))
    assert router.flush()
    got = {path: body for path, body in (receiver.get(), receiver.get(), receiver.get())}
    assert got["/hook"]["kind"] == "fill" and "10 sh @ 71,900 KRW" in got["/hook"]["text"]
    assert got["/slack"] == {"text": "fill buy 005930: 10 sh @ 71,900 KRW"}
    assert got["/botBOTTOKEN/sendMessage"] == {"chat_id": "42", "text": "fill buy 005930: 10 sh @ 71,900 KRW"}
    router.close()


def test_rate_limit_per_kind_then_summary():
    now = [0.0]
    r = Receiver()
    try:
        router = AlertRouter([WebhookSink(r.url)], max_per_minute=2, clock=lambda: now[0])
        sent = [router.notify(Alert("fill", "fill", f"#{i}")) for i in range(5)]
        assert sent == [True, True, False, False, False]
        assert router.notify(Alert("rejection", "rejected", "other kinds have their own budget"))
        now[0] = 61.0
        assert router.notify(Alert("fill", "fill", "#5"))
        assert router.flush()
        texts = [body["text"] for _, body in r.drain()]
        assert texts[-1] == "fill: #5 (+3 more fill alert(s) suppressed by the rate limit)"
        assert len(texts) == 4
        router.close()
    finally:
        r.close()


def test_secrets_never_leave(receiver, caplog):
    router = AlertRouter([WebhookSink(receiver.url)], secrets=[ACCOUNT, "topsecret-value"])
    router.notify(Alert("error", "oops", f"account {ACCOUNT}-01 key {SECRET_KEY} secret topsecret-value"))
    assert router.flush()
    _, body = receiver.get()
    assert ACCOUNT not in body["text"] and SECRET_KEY not in body["text"] and "topsecret" not in body["text"]
    assert ACCOUNT not in caplog.text and SECRET_KEY not in caplog.text
    router.close()


def test_failing_sink_is_logged_without_its_url_and_others_still_deliver(receiver, caplog):
    bad = Receiver(status=500)
    try:
        router = AlertRouter([TelegramSink("SECRETBOTTOKEN", "1", base_url=bad.url), WebhookSink(receiver.url)])
        router.notify(Alert("kill_switch", "kill switch", "trading stopped"))
        assert router.flush()
        assert receiver.get()[1]["kind"] == "kill_switch"
        assert router.failed == 1
        assert "telegram" in caplog.text and "HTTP 500" in caplog.text
        assert "SECRETBOTTOKEN" not in caplog.text
        router.close()
    finally:
        bad.close()


def test_router_from_config_reads_secrets_from_the_environment(receiver):
    cfg = AlertsConfig(webhook_url_env="HOOK", telegram_bot_token_env="TG", telegram_chat_id="7",
                       telegram_api_url=receiver.url, kinds=["fill"])
    router = router_from_config(cfg, environ={"HOOK": receiver.url + "/h", "TG": "T0KEN"})
    assert not router.notify(Alert("error", "x", "kind switched off"))
    assert router.notify(Alert("fill", "fill", "ok"))
    assert router.flush()
    paths = sorted(p for p, _ in (receiver.get(), receiver.get()))
    assert paths == ["/botT0KEN/sendMessage", "/h"]
    router.close()
    with pytest.raises(ValueError, match="environment variable HOOK2 is not set"):
        router_from_config(AlertsConfig(webhook_url_env="HOOK2"), environ={})

"""Alerts to the log and, when configured, to Telegram, Slack or a generic webhook.

What a trader wants on the phone: fills, rejections, reconciliation mismatches, the kill switch,
a WebSocket down for longer than N seconds, and errors. ``AlertRouter.notify`` takes an alert from
any thread and returns at once; a sender thread delivers it, so a slow webhook never delays the
strategy.

* **Rate limiting** per kind (``max_per_minute``): a fill storm becomes a few messages and a
  "+N more suppressed" note on the next one that is allowed, never a flood and never silence.
* **No secrets**: every text passes through a scrubber that replaces the app key, app secret and
  account numbers it was given (and anything shaped like a 36-character app key); the Telegram
  bot token and webhook URLs come from environment variables and are never logged — delivery
  errors are logged with the sink's name and the HTTP status only.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

import requests

from configs.errors import InputError

log = logging.getLogger("krx.alerts")

KINDS = ("fill", "rejection", "reconcile_mismatch", "kill_switch", "disconnect", "error")
_APPKEY_LIKE = re.compile(r"\b[A-Za-z0-9]{36}\b")


@dataclass(frozen=True)
class Alert:
    kind: str
    title: str
    message: str
    at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        stamp = f"[{self.at:%H:%M:%S}] " if self.at else ""
        return f"{stamp}{self.title}: {self.message}"


class Scrubber:
    """Removes known secrets (and app-key-shaped tokens) from text before it leaves the process."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return _APPKEY_LIKE.sub("***", text)


class Sink:
    """Delivers one text; raises on failure (the router logs it without the sink's secrets)."""

    name = "sink"

    def send(self, alert: Alert, text: str) -> None:
        raise NotImplementedError


class LogSink(Sink):
    name = "log"

    def send(self, alert: Alert, text: str) -> None:
        level = logging.ERROR if alert.kind in ("reconcile_mismatch", "kill_switch", "error", "disconnect") \
            else logging.INFO
        log.log(level, "ALERT %s", text)


class WebhookSink(Sink):
    """Generic JSON webhook: ``{"kind", "title", "message", "text", "at"}``."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0, post: Callable[..., Any] = requests.post) -> None:
        self._url, self.timeout, self._post = url, timeout, post

    def send(self, alert: Alert, text: str) -> None:
        body = {"kind": alert.kind, "title": alert.title, "message": text, "text": text,
                "at": alert.at.isoformat() if alert.at else None}
        r = self._post(self._url, json=body, timeout=self.timeout)
        if r.status_code >= 300:
            raise RuntimeError(f"HTTP {r.status_code}")


class SlackSink(WebhookSink):
    """Slack incoming webhook: ``{"text": ...}``."""

    name = "slack"

    def send(self, alert: Alert, text: str) -> None:
        r = self._post(self._url, json={"text": text}, timeout=self.timeout)
        if r.status_code >= 300:
            raise RuntimeError(f"HTTP {r.status_code}")


class TelegramSink(Sink):
    """Telegram Bot API ``sendMessage`` (``base_url`` is overridable for tests and proxies)."""

    name = "telegram"

    def __init__(self, bot_token: str, chat_id: str, base_url: str = "https://api.telegram.org",
                 timeout: float = 5.0, post: Callable[..., Any] = requests.post) -> None:
        self._url = f"{base_url.rstrip('/')}/bot{bot_token}/sendMessage"
        self.chat_id, self.timeout, self._post = chat_id, timeout, post

    def send(self, alert: Alert, text: str) -> None:
        r = self._post(self._url, json={"chat_id": self.chat_id, "text": text}, timeout=self.timeout)
        if r.status_code >= 300:
            raise RuntimeError(f"HTTP {r.status_code}")


class AlertRouter:
    """Rate-limited, scrubbed fan-out of alerts to sinks on a background thread."""

    def __init__(self, sinks: Iterable[Sink] = (), *, kinds: Iterable[str] = KINDS, max_per_minute: int = 6,
                 secrets: Iterable[str] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks = [LogSink(), *sinks]
        self.kinds = set(kinds)
        self.max_per_minute = max_per_minute
        self.scrub = Scrubber(secrets)
        self.clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._suppressed: dict[str, int] = {}
        self._queue: "queue.Queue[tuple[Alert, str] | None]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self._thread.start()
        self.delivered = 0
        self.failed = 0
        self._idle = threading.Condition()
        self._pending = 0

    def notify(self, alert: Alert) -> bool:
        """Queue an alert; False when its kind is off or it was rate-limited (counted for later)."""
        if alert.kind not in self.kinds:
            return False
        now = self.clock()
        sent = self._sent.setdefault(alert.kind, deque())
        while sent and now - sent[0] >= 60.0:
            sent.popleft()
        if len(sent) >= self.max_per_minute:
            self._suppressed[alert.kind] = self._suppressed.get(alert.kind, 0) + 1
            return False
        sent.append(now)
        text = alert.text()
        extra = self._suppressed.pop(alert.kind, 0)
        if extra:
            text += f" (+{extra} more {alert.kind} alert(s) suppressed by the rate limit)"
        with self._idle:
            self._pending += 1
        self._queue.put((alert, self.scrub(text)))
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            alert, text = item
            for sink in self.sinks:
                try:
                    sink.send(alert, text)
                    self.delivered += 1
                except Exception as exc:  # noqa: BLE001 - one failing sink must not stop the others
                    self.failed += 1
                    log.warning("alert delivery to %s failed: %s", sink.name, self.scrub(str(exc))[:200])
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued was handed to the sinks."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(5)


def router_from_config(cfg, secrets: Iterable[str] = (), environ: dict[str, str] | None = None) -> AlertRouter:
    """An ``AlertRouter`` for a ``configs.schema.AlertsConfig`` (secrets read from the environment)."""
    import os

    env = environ if environ is not None else os.environ
    sinks: list[Sink] = []
    if cfg.telegram_bot_token_env and cfg.telegram_chat_id:
        token = env.get(cfg.telegram_bot_token_env)
        if not token:
            raise InputError(f"monitor.alerts.telegram_bot_token_env: environment variable "
                             f"{cfg.telegram_bot_token_env} is not set")
        sinks.append(TelegramSink(token, cfg.telegram_chat_id, base_url=cfg.telegram_api_url))
    if cfg.slack_webhook_env:
        url = env.get(cfg.slack_webhook_env)
        if not url:
            raise InputError(f"monitor.alerts.slack_webhook_env: environment variable {cfg.slack_webhook_env} is not set")
        sinks.append(SlackSink(url))
    if cfg.webhook_url_env:
        url = env.get(cfg.webhook_url_env)
        if not url:
            raise InputError(f"monitor.alerts.webhook_url_env: environment variable {cfg.webhook_url_env} is not set")
        sinks.append(WebhookSink(url))
    return AlertRouter(sinks, kinds=cfg.kinds, max_per_minute=cfg.max_per_minute, secrets=secrets)


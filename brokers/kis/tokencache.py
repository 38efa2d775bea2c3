"""Access-token cache: a 0600 JSON file shared by the processes of one user, plus a memory fallback.

Why on disk and shared: KIS allows one token issuance per minute per app key (``EGW00133``) and
sends the account holder a KakaoTalk alert for every issuance (PROTOCOL §2.1, §7.2). A bot that
re-issues on every start, or several processes that each issue their own, hit both. So every
process of the user reads the same file and only one of them issues, under an exclusive file lock
(``fcntl.flock`` on a sibling ``.lock`` file, so the atomic replace of the data file never breaks
the lock).

The file holds tokens (secrets): it is created ``0600`` inside a ``0700`` directory, written
atomically (temp file + ``os.replace``), and entries are keyed by a digest of (environment, REST
URL, app key) — never by the key itself. Besides the token it records ``last_issue_at``, the
moment of the last issuance *attempt*, so the one-per-minute rule is honoured across processes.

``path=None`` keeps the entries in a process-wide dictionary instead (tests, throw-away runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("krx_trader.kis.tokencache")

__all__ = ["CachedToken", "CacheEntry", "TokenCache", "cache_key"]

FILE_VERSION = 1


@dataclass(frozen=True)
class CachedToken:
    """An access token and its validity (aware datetimes on the client's wall clock)."""

    access_token: str
    expires_at: datetime
    issued_at: datetime

    def seconds_left(self, now: datetime) -> float:
        return (self.expires_at - now).total_seconds()

    def __repr__(self) -> str:  # never print the token itself
        return f"CachedToken(access_token='***', expires_at={self.expires_at.isoformat()!r})"


@dataclass(frozen=True)
class CacheEntry:
    token: CachedToken | None
    last_issue_at: datetime | None


def cache_key(env: str, rest_url: str, app_key: str) -> str:
    """Entry key: a digest, so the file never names the app key."""
    return hashlib.sha256(f"{env}|{rest_url.rstrip('/')}|{app_key}".encode("utf-8")).hexdigest()[:32]


_MEMORY: dict[str, dict[str, Any]] = {}
_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(name: str) -> threading.RLock:
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.get(name)
        if lock is None:
            lock = _THREAD_LOCKS[name] = threading.RLock()
        return lock


def _dt(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        d = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return d if d.tzinfo is not None else None


class TokenCache:
    """Entries ``{key: {access_token, expires_at, issued_at, last_issue_at}}`` in one JSON file."""

    def __init__(self, path: Path | str | None) -> None:
        self.path: Path | None = Path(path).expanduser() if path is not None else None
        self._tlock = _thread_lock(str(self.path) if self.path else "<memory>")
        self._depth = threading.local()

    # ---- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across threads (RLock) and processes (flock). Re-entrant within a thread."""
        with self._tlock:
            depth = getattr(self._depth, "n", 0)
            if self.path is None or depth > 0:
                self._depth.n = depth + 1
                try:
                    yield
                finally:
                    self._depth.n = depth
                return
            self._ensure_dir()
            lock_path = self.path.with_name(self.path.name + ".lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth.n = 1
                try:
                    yield
                finally:
                    self._depth.n = 0
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _ensure_dir(self) -> None:
        assert self.path is not None
        d = self.path.parent
        if not d.exists():
            d.mkdir(parents=True, mode=0o700, exist_ok=True)

    # ---- raw file ------------------------------------------------------------------------

    def _read_all(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {k: dict(v) for k, v in _MEMORY.items()}
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("token cache unreadable (%s): ignoring it", type(exc).__name__)
            return {}
        try:
            data = json.loads(raw)
            entries = data.get("tokens", {}) if isinstance(data, dict) else {}
            return {str(k): dict(v) for k, v in entries.items() if isinstance(v, dict)}
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            log.warning("token cache is not valid JSON: ignoring it")
            return {}

    def _write_all(self, entries: dict[str, dict[str, Any]]) -> None:
        if self.path is None:
            _MEMORY.clear()
            _MEMORY.update(entries)
            return
        self._ensure_dir()
        text = json.dumps({"version": FILE_VERSION, "tokens": entries}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=str(self.path.parent))
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            os.chmod(self.path, 0o600)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ---- entries -------------------------------------------------------------------------

    def load(self, key: str) -> CacheEntry:
        e = self._read_all().get(key) or {}
        token = None
        exp, iss = _dt(e.get("expires_at")), _dt(e.get("issued_at"))
        if e.get("access_token") and exp is not None:
            token = CachedToken(str(e["access_token"]), exp, iss or exp)
        return CacheEntry(token, _dt(e.get("last_issue_at")))

    def save(self, key: str, token: CachedToken | None, last_issue_at: datetime | None) -> None:
        """Replace one entry (call under ``locked()``)."""
        entries = self._read_all()
        e: dict[str, Any] = {}
        if token is not None:
            e.update(access_token=token.access_token, expires_at=token.expires_at.isoformat(),
                     issued_at=token.issued_at.isoformat())
        if last_issue_at is not None:
            e["last_issue_at"] = last_issue_at.isoformat()
        if e:
            entries[key] = e
        else:
            entries.pop(key, None)
        self._write_all(entries)

    def forget_token(self, key: str, token: str | None = None) -> None:
        """Drop the entry's token (only if it is still ``token``), keeping ``last_issue_at``."""
        with self.locked():
            cur = self.load(key)
            if cur.token is None or (token is not None and cur.token.access_token != token):
                return
            self.save(key, None, cur.last_issue_at)


def clear_memory() -> None:
    """Forget the in-memory entries (tests)."""
    _MEMORY.clear()

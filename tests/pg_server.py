"""A throw-away PostgreSQL server for tests and benchmarks: ``initdb`` + ``pg_ctl`` into a temp folder.

Why not a mock or SQLite alone: the reported bug (``function max(boolean) does not exist``) is SQL that
only SQLite accepts; only a real server proves every query portable. The server listens on a unix
socket inside its own folder (no TCP port to race for), runs with durability switched off (tests do
not need crash safety) and is stopped and deleted at the end.

``initdb`` refuses to run as root (CI runs as root): the server then runs as an unprivileged user —
Debian's ``postgres`` (created by the ``postgresql`` package), else ``nobody`` — via ``runuser``.
Every reason a server cannot be started (no binaries, no unprivileged user, initdb failing) is a
``PgUnavailable`` with the reason, so tests can skip cleanly with it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

BIN_GLOB = "/usr/lib/postgresql/*/bin"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    dirs = sorted(glob.glob(BIN_GLOB), key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")])
    for d in reversed(dirs):
        if (Path(d) / "pg_ctl").exists() and (Path(d) / "initdb").exists():
            return Path(d)
    raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                        f"{BIN_GLOB} (Debian: apt-get install postgresql)")


def _run_as() -> str | None:
    """The user to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PgUnavailable("running as root and no unprivileged user (postgres, nobody) to run the server as")


class PgServer:
    """``PgServer().start()`` → ``url(db)`` gives SQLAlchemy URLs; ``create_database()`` a fresh one."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="krx-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            runuser = shutil.which("runuser") or shutil.which("setpriv")
            if runuser is None:
                raise PgUnavailable("running as root and neither runuser nor setpriv is available")
            if runuser.endswith("runuser"):
                return [runuser, "-u", self.user, "--", *cmd]
            return [runuser, f"--reuid={self.user}", f"--regid={pwd.getpwnam(self.user).pw_gid}", "--init-groups", *cmd]
        return cmd

    def _call(self, *args: str, timeout: float = 120) -> None:
        try:
            out = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgUnavailable(f"{args[0]} failed: {exc}") from None
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
            raise PgUnavailable(f"{args[0]} exited {out.returncode}: {' | '.join(tail)}")

    def start(self) -> "PgServer":
        try:
            if self.user is not None:
                pw = pwd.getpwnam(self.user)
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._call("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                       "--locale=C", "--no-sync")
            opts = (f"-c listen_addresses='' -k {self.root} -c fsync=off -c synchronous_commit=off "
                    "-c full_page_writes=off -c max_connections=60 -c shared_buffers=64MB")
            self._call("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
        except PgUnavailable:
            self.stop()
            raise
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.root), user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            try:
                self._call("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
            except PgUnavailable:
                pass
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PgServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

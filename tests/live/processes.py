"""A paper trader in its own process (``trader_process.py``) and the spec it runs from, for the tests
that kill it (-9), interrupt it (Ctrl-C) and restart it. Its status lines (one per broker turn) are
read from a pipe: the tests wait on what the trader reports, never on time."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from childproc import Child

HERE = Path(__file__).resolve().parent
WAIT = 60.0


def trader_spec(emu, tmp_path: Path, strategy: dict[str, Any], codes: list[str], until, journal_url: str | None = None,
                **kis: Any) -> Path:
    creds = emu.credentials("paper")
    spec = {"rest_url": creds.rest_url, "ws_url": creds.ws_url, "admin_url": emu.admin_url,
            "credentials": creds.as_dict(), "journal_url": journal_url or f"sqlite:///{tmp_path / 'journal.sqlite'}",
            "token_cache": str(tmp_path / "token.json"), "until": until.isoformat(),
            "client": {"order_timeout": 10.0},
            "config": {"name": "crash", "broker": {"mode": "paper", "kis": {"bar": "1min", "order_window": "extended",
                                                                           "reconcile_every_s": 3600, **kis}},
                       "data": {"universe": codes}, "strategy": strategy,
                       "risk": {"limits": {"max_position_pct": 100}}}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


class TraderProc:
    """A trader process and its status lines (read through ``childproc.Child``: both pipes drained)."""

    def __init__(self, spec_path: Path) -> None:
        self.child = Child([sys.executable, str(HERE / "trader_process.py"), str(spec_path)], HERE)
        self.p = self.child.p
        self.last: dict = {}

    def read(self, until, what: str) -> dict:
        """Read status lines until ``until(status)`` holds."""
        def matches(line: str) -> bool:
            try:
                self.last = json.loads(line)
            except json.JSONDecodeError:
                return False
            return until(self.last)

        self.child.until(matches, what)
        return self.last

    def settle(self, emu) -> dict:
        """Ping barrier, then idle for two turns with no new journal entries."""
        for _ in range(30):
            pings = self.last.get("pings", 0)
            emu.ping_websockets(wait_echo=WAIT)
            events = self.last.get("journal_events")
            target = emu.now().isoformat()
            # a turn that began after the echo has applied everything sent before the ping, and the trader's
            # clock (the emulator's, cached a few ms) has reached the step: bars due by the clock are out too
            st = self.read(lambda s: s["done_pings"] > pings and s["idle"] and s["now"] >= target, "the ping barrier")
            st = self.read(lambda s: True, "one more turn")
            if st["idle"] and st["journal_events"] == events:
                return st
        raise AssertionError("the trader never settled")

    def kill(self) -> None:
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(WAIT)

    def interrupt(self) -> int:
        os.kill(self.p.pid, signal.SIGINT)
        return self.p.wait(WAIT)

    def stop(self) -> None:
        self.child.stop()

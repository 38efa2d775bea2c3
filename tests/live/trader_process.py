"""A paper trader in its own process, for the kill -9 test (tests/live/test_live_crash.py).

Usage: python trader_process.py SPEC.json — SPEC holds the emulator's URLs and credentials, the
journal URL, the token cache and the session's end. Time comes from the emulator's admin clock.
Every broker turn prints one JSON status line on stdout, which the test reads to know what the
trader has done (a pipe, not a sleep).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from brokers.kis.client import Credentials, KISClient  # noqa: E402
from brokers.kis.clock import AdminClock  # noqa: E402
from brokers.kis.journal import Journal  # noqa: E402
from brokers.kis.ws import KISWebSocket  # noqa: E402
from configs.schema import parse_config  # noqa: E402
from engine.live import build_live_session, run_until_signal  # noqa: E402


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    creds = Credentials.from_mapping(spec["credentials"])
    admin = KISClient(creds, "paper", spec["rest_url"], admin_url=spec["admin_url"],
                      token_cache=Path(spec["token_cache"]), requests_per_second=1000)
    now = AdminClock(admin.server_clock, ttl=0.01)
    client = KISClient(creds, "paper", spec["rest_url"], token_cache=Path(spec["token_cache"]), wallclock=now,
                       requests_per_second=1000, **spec.get("client", {}))

    def ws_factory(**callbacks):
        return KISWebSocket(spec["ws_url"], client.approval_key, "paper", creds.hts_id, wallclock=now,
                            account_filter=creds.account, backoff=(0.05, 0.2), **callbacks)

    cfg = parse_config(spec["config"])
    journal = Journal(spec["journal_url"], now=now)
    session = build_live_session(cfg, client=client, ws_factory=ws_factory, now=now, journal=journal,
                                 credentials=creds, until=datetime.fromisoformat(spec["until"]))
    for data in session.cerebro.datas:
        data.p.qcheck = 0.02
    store, broker = session.store, session.broker
    mark = store.mark_loop

    def mark_and_report() -> None:
        mark()
        status = {"loops": store.loops, "pings": store.pings, "idle": store.idle(), "reconnects": store.reconnects, "done_pings": store.done_pings, "now": store.now().isoformat(),
                  "position": {c: int(p.size) for c, p in broker.positions.items() if p.size},
                  "open": sorted(int(lo.odno or 0) for lo in broker.open_live_orders()),
                  "journal_events": journal.event_count()}
        print(json.dumps(status), flush=True)

    store.mark_loop = mark_and_report
    run_until_signal(session)            # as run.py: Ctrl-C / SIGTERM stop it cleanly
    print(json.dumps({"finished": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""kill -9 of a paper trader mid-session, then a restart: positions and open orders are rebuilt
from KIS and the journal, nothing is re-sent, nothing is counted twice.

The trader runs in its own process (``trader_process.py``) against the in-process emulator; the
test reads its status lines from a pipe (no sleeps) and sends it SIGKILL while its market order
is still partly unfilled and its limit order rests.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from configs.schema import DemoDataConfig
from brokers.kis.journal import Journal
from feeds.demo import generate_demo_market
from processes import TraderProc
from harness import at, make_emulator

DAY = date(2025, 3, 5)
CODE = "990001"
HERE = Path(__file__).resolve().parent
WAIT = 60.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


Proc = TraderProc


def test_kill9_then_restart_rebuilds_and_continues(tmp_path):
    demo = generate_demo_market(DemoDataConfig(codes=2, start=date(2024, 9, 2), end=DAY, seed=11))
    emu = make_emulator(demo.bars, demo.markets, at(DAY, 8, 50), matching={"participation": 0.002})
    procs: list[Proc] = []
    try:
        creds = emu.credentials("paper")
        journal_url = f"sqlite:///{tmp_path / 'journal.sqlite'}"
        spec = {"rest_url": creds.rest_url, "ws_url": creds.ws_url, "admin_url": emu.admin_url,
                "credentials": creds.as_dict(), "journal_url": journal_url,
                "token_cache": str(tmp_path / "token.json"), "until": at(DAY, 15, 40).isoformat(),
                "config": {"name": "crash", "broker": {"mode": "paper", "kis": {"bar": "1min",
                                                                               "order_window": "extended",
                                                                               "reconcile_every_s": 3600}},
                           "data": {"universe": [CODE]},
                           "strategy": {"name": "once:BuyOnce", "params": {"code": CODE, "qty": 3_000}},
                           "risk": {"limits": {"max_position_pct": 100}}}}
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))

        t = at(DAY, 9, 1)
        emu.advance_to(t)
        a = Proc(spec_path)
        procs.append(a)
        a.read(lambda s: "loops" in s, "the first broker turn")
        a.settle(emu)
        for _ in range(3):                      # first live bar: the two orders go out, fills start
            t += timedelta(minutes=1)
            emu.advance_to(t)
            st = a.settle(emu)
        held = st["position"].get(CODE, 0)
        assert 0 < held < 3_000, f"the market order should be partly filled, position {held}"
        assert len(st["open"]) == 2
        a.kill()                                 # kill -9: no shutdown code runs

        t += timedelta(minutes=2)                # the market keeps filling while nobody listens
        emu.advance_to(t)
        kis_before = emu.account_summary("paper")
        assert kis_before["positions"][CODE]["qty"] > held

        b = Proc(spec_path)
        procs.append(b)
        b.read(lambda s: "loops" in s, "the restarted trader's first turn")
        for _ in range(3):
            st = b.settle(emu)
            t += timedelta(minutes=1)
            emu.advance_to(t)
        st = b.settle(emu)

        kis = emu.account_summary("paper")
        new_orders = [o for o in kis["orders"] if o["kind"] == "new"]
        assert len(new_orders) == 2, f"nothing re-sent after the restart: {new_orders}"
        assert st["position"].get(CODE, 0) == kis["positions"][CODE]["qty"], "book rebuilt from KIS"
        still_open = sorted(int(o["odno"]) for o in new_orders if o["open"] > 0)
        assert st["open"] == still_open, "open orders adopted, none lost, none invented"

        journal = Journal(journal_url)
        fills = sum(f["qty"] for f in journal.all_fills() if f["code"] == CODE)
        assert fills == kis["positions"][CODE]["qty"], "journal fills = KIS position: none lost, none doubled"
        intents = journal.intents_for_day(DAY)
        assert len(intents) == 2 and {i.odno is not None for i in intents} == {True}
        assert not [e for e in journal.events(kinds=["alert"]) if "foreign" in e["message"]]
    finally:
        for p in procs:
            p.stop()
        emu.stop()

"""Alerts from a running paper trader to a local webhook: a disconnect longer than N seconds, an
order from another app (reconciliation mismatch), a rejection."""

from __future__ import annotations

from datetime import date

import backtrader as bt

from analysis.alerts import AlertRouter, WebhookSink
from configs.schema import DemoDataConfig
from engine.monitoring import LiveSource
from feeds.demo import generate_demo_market
from harness import at, make_emulator, start_scripted

DAY = date(2025, 3, 5)
CODE = "990001"


def kinds_until(receiver, wanted: str, limit: int = 20) -> list[dict]:
    seen = []
    for _ in range(limit):
        _, body = receiver.get(timeout=20)
        seen.append(body)
        if body["kind"] == wanted:
            return seen
    raise AssertionError(f"no {wanted} alert in {seen}")


def test_disconnect_mismatch_and_rejection_alerts(tmp_path, receiver):
    demo = generate_demo_market(DemoDataConfig(codes=2, start=date(2024, 9, 2), end=DAY, seed=11))
    emu = make_emulator(demo.bars, demo.markets, at(DAY, 8, 50))
    try:
        s = start_scripted(emu, tmp_path, [CODE], DAY)
        router = AlertRouter([WebhookSink(receiver.url)], secrets=[emu.credentials("paper").appkey])
        LiveSource(s.trader.session, router, disconnect_after_s=0.3)
        s.trader.session.store.ws.backoff = (1.5, 2.0)       # stay down long enough to be noticed
        emu.drop_websockets()
        down = kinds_until(receiver, "disconnect")
        assert "no connection to KIS" in down[-1]["text"]
        back = kinds_until(receiver, "disconnect")
        assert "reconnected after" in back[-1]["text"]

        s.trader.broker.p.hold_notice_s = 0.0
        s.trader.broker.p.reconcile_debounce_s = 0.0
        emu.hts_order(CODE, "buy", 3)
        s.tick()
        s.tick()
        mismatch = kinds_until(receiver, "reconcile_mismatch")
        assert any("another app" in b["text"] or "local 0 sh vs KIS 3 sh" in b["text"] for b in mismatch)

        s.do(lambda st: st.buy(data=CODE, size=1, price=10, exectype=bt.Order.Limit))   # far below the band
        rejected = kinds_until(receiver, "rejection")
        assert "below the lower limit" in rejected[-1]["text"]
        assert router.flush()
        router.close()
    finally:
        for t in list(__import__("harness").RUNNING):
            t.close()
        emu.stop()

"""WebSocket: subscribe acks, multi-record trade frames, books, PINGPONG, budget, callback safety."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from websockets.sync.client import connect as sync_connect

from brokers.kis import protocol as P
from brokers.kis.errors import KISSubscriptionLimit
from brokers.kis.ws import BookUpdate, ConnectionState, KISWebSocket, Trade
from brokers.kis.ws_events import parse_book, parse_trade
from market.calendar import KST


def _ok(code: str, tr: str) -> Any:
    return lambda a: a.tr_id == tr and a.tr_key == code and a.ok


def test_trades_and_books_with_multi_record_frames(kit, emu, ws_factory, collector) -> None:
    ws = ws_factory("paper")
    ws.subscribe_trades(kit.MAIN)
    ws.subscribe_trades(kit.MAIN)  # idempotent: one registration
    ws.subscribe_book(kit.MAIN)
    a1 = collector.wait("ack", _ok(kit.MAIN, P.WS_TR_TRADE))
    collector.wait("ack", _ok(kit.MAIN, P.WS_TR_BOOK))
    assert a1.msg_cd == P.WS_SUBSCRIBED.code and a1.subscribe is True
    assert ws.subscriptions == [(P.WS_TR_TRADE, kit.MAIN), (P.WS_TR_BOOK, kit.MAIN)]
    emu.advance(timedelta(minutes=5))  # 15 prints at one per 20 s, sent 10 to a frame
    trades: list[Trade] = collector.take("trade", 15)
    assert ws.stats.multi_record_frames >= 1 and ws.stats.records >= 15
    assert all(t.code == kit.MAIN and t.price > 0 and t.time.tzinfo is not None for t in trades)
    assert all(datetime(2025, 6, 2, 10, 0, tzinfo=KST) < t.time <= emu.now() for t in trades)
    assert [t.cum_volume for t in trades] == sorted(t.cum_volume for t in trades)
    assert all(t.low <= t.price <= t.high and t.ask1 > t.bid1 > 0 for t in trades)
    with emu.engine.lock:
        last = emu.engine.quote(kit.MAIN).last
    assert trades[-1].price == last
    book: BookUpdate = collector.wait("book")
    assert len(book.asks) == len(book.bids) == 10 and book.asks[0][0] > book.bids[0][0] > 0
    assert book.time.date() == emu.now().date()
    ws.unsubscribe_trades(kit.MAIN)
    un = collector.wait("ack", lambda a: a.tr_id == P.WS_TR_TRADE and a.msg_cd == P.WS_UNSUBSCRIBED.code)
    assert un.subscribe is False and ws.subscriptions == [(P.WS_TR_BOOK, kit.MAIN)]


def test_pingpong_is_echoed_and_keeps_the_session(kit, emu, ws_factory, collector) -> None:
    ws = ws_factory("paper")
    for i, code in enumerate((kit.MAIN, kit.SECOND, kit.HOLDING_CODES[0])):
        assert emu.ping_websockets("paper") == 0  # nobody dropped
        stamp = collector.wait("ping")
        assert stamp == emu.now().strftime("%Y%m%d%H%M%S")
        ws.subscribe_trades(code)  # its ack proves the server read our echo (one ordered stream)
        collector.wait("ack", _ok(code, P.WS_TR_TRADE))
    assert emu.ping_websockets("paper") == 0
    assert ws.state is ConnectionState.CONNECTED and ws.stats.pings >= 3
    assert not [s for s in collector.drain("state") if s[0] is ConnectionState.DISCONNECTED]


def test_emulator_drops_a_client_that_ignores_pingpong(kit, emu, vt) -> None:
    """Control for the test above: the emulator does enforce the echo."""
    client = kit.make_client(emu, "paper", vt)
    with sync_connect(emu.ws_url("paper")) as raw:
        raw.send(json.dumps(P.subscribe_request(client.approval_key(), P.WS_TR_TRADE, kit.MAIN)))
        assert json.loads(raw.recv(timeout=5))["body"]["msg_cd"] == P.WS_SUBSCRIBED.code
        assert emu.ping_websockets("paper") == 0
        assert emu.ping_websockets("paper") == 1


def test_registration_budget(kit, emu, vt) -> None:
    client = kit.make_client(emu, "paper", vt)
    ws = KISWebSocket(emu.ws_url("paper"), client.approval_key, "paper", "emupaper")
    ws.subscribe_notices()
    for k in range(P.WS_CLIENT_REGISTRATION_BUDGET - 1):
        ws.subscribe_trades(f"{k:06d}")
    ws.subscribe_trades("000000")  # already there: no error
    with pytest.raises(KISSubscriptionLimit) as ei:
        ws.subscribe_book(kit.MAIN)
    assert str(P.WS_CLIENT_REGISTRATION_BUDGET) in str(ei.value)
    ws.unsubscribe_trades("000000")
    ws.subscribe_book(kit.MAIN)
    assert len(ws.subscriptions) == P.WS_CLIENT_REGISTRATION_BUDGET


def test_callback_errors_are_not_fatal(kit, emu, ws_factory, collector, caplog) -> None:
    def boom(_: Trade) -> None:
        raise RuntimeError("strategy bug")

    ws = ws_factory("real", on_trade=boom)
    ws.subscribe_trades(kit.MAIN)
    ws.subscribe_book(kit.MAIN)
    collector.wait("ack", _ok(kit.MAIN, P.WS_TR_BOOK))
    emu.advance(timedelta(minutes=1))
    collector.wait("book")  # the book callback still runs after the trade callback raised
    assert ws.stats.callback_errors >= 1 and ws.state is ConnectionState.CONNECTED
    assert "strategy bug" in caplog.text


def test_parsers_tolerate_layout_variants() -> None:
    today = datetime(2025, 6, 2).date()
    rec = ["005930", "093354", "71900", "5", "-100"] + ["0"] * 41
    rec[P.H0STCNT0_FIELDS.index("BSOP_DATE")] = "20250602"
    rec[P.H0STCNT0_FIELDS.index("CNTG_VOL")] = "12"
    t = parse_trade(rec, today)
    assert (t.price, t.volume, t.time) == (71900, 12, datetime(2025, 6, 2, 9, 33, 54, tzinfo=KST))
    book = ["005930", "093354", "0"] + [str(70000 + 100 * i) for i in range(1, 11)] + \
           [str(70000 - 100 * i) for i in range(10)] + ["5"] * 20 + ["0"] * 16 + ["70050", "3", "1"]  # 62 fields
    b = parse_book(book, today)
    assert b.asks[0] == (70100, 5) and b.bids[0] == (70000, 5) and b.raw["KMID_PRC"] == "70050"


def test_stop_from_inside_a_callback(kit, emu, ws_factory, collector) -> None:
    holder: dict[str, Any] = {}

    def on_ack(ack: Any) -> None:
        collector.q.put(("ack", ack))
        holder["ws"].stop()  # must not deadlock by joining its own thread

    ws = ws_factory("paper", on_ack=on_ack)
    holder["ws"] = ws
    ws.subscribe_trades(kit.MAIN)
    collector.wait("ack")
    collector.wait("state", lambda s: s[0] is ConnectionState.STOPPED)


def test_stop_while_frames_are_buffered(kit, emu, ws_factory, collector) -> None:
    """``stop()`` ends the session even when its cancellation lands while ``recv()`` already holds a frame
    (Python 3.11's ``wait_for`` then swallows the cancel): before the fix the thread read on until the
    server closed, and every paper/live shutdown waited out the 10 s join."""
    ws_box: list[KISWebSocket] = []
    stopper: list[threading.Thread] = []
    stopping = threading.Event()

    def on_trade(trade: Trade) -> None:
        if not stopper:   # first trade, on the ws thread: stop from outside while more frames are queued
            ws = ws_box[0]
            t = threading.Thread(target=ws.stop, kwargs={"timeout": 5.0})
            stopper.append(t)
            t.start()
            while not ws._stopping:      # the flag is set before the cancel is scheduled
                pass
            stopping.set()

    ws = ws_factory("paper", on_trade=on_trade)
    ws_box.append(ws)
    thread = ws._thread
    ws.subscribe_trades(kit.MAIN)
    collector.wait("ack", _ok(kit.MAIN, P.WS_TR_TRADE))
    emu.advance(timedelta(minutes=30))   # ~90 prints in several frames, sent at once
    assert stopping.wait(5.0)
    stopper[0].join(10.0)
    assert not thread.is_alive(), "the ws thread outlived stop()'s 5 s join"
    collector.wait("state", lambda s: s[0] is ConnectionState.STOPPED)

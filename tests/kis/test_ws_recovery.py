"""WebSocket recovery: dropped socket, expired approval key, second session on one key, idle watchdog."""

from __future__ import annotations

from datetime import timedelta

from brokers.kis import protocol as P
from brokers.kis.ws import ConnectionState


def _state(kind: ConnectionState, text: str = ""):
    return lambda s: s[0] is kind and text in s[1]


def test_drop_reconnect_resubscribe_and_on_reconnected(kit, emu, vt, ws_factory, collector) -> None:
    client = kit.make_client(emu, "paper", vt)
    ws = ws_factory("paper", client=client)
    ws.subscribe_trades(kit.MAIN)
    ws.subscribe_notices()
    collector.take("ack", 2, lambda a: a.ok)
    assert collector.drain("reconnected") == []  # not on the first connection
    assert emu.drop_websockets("paper") == 1  # TCP reset, no close frame (a KIS restart)
    reason = collector.wait("state", _state(ConnectionState.DISCONNECTED))[1]
    assert reason
    collector.wait("state", _state(ConnectionState.CONNECTED))
    acks = collector.take("ack", 2, lambda a: a.ok)
    assert {a.tr_id for a in acks} == {P.WS_TR_TRADE, P.notice_tr_for("paper")}
    collector.wait("reconnected")
    assert ws.stats.connects == 2 and ws.state is ConnectionState.CONNECTED
    assert not [x for x in collector.seen if x[0] == "reconnected"]  # exactly once
    # both streams work again, notices decrypted with the new session's key
    emu.advance(timedelta(minutes=1))
    collector.wait("trade")
    q = client.quote(kit.MAIN)
    r = client.order_cash("buy", kit.MAIN, 1, q.lower_limit + q.tick)
    n = collector.wait("notice")
    assert P.same_order_number(n.odno, r.odno) and ws.stats.decrypt_errors == 0


def test_expired_approval_key_is_refreshed(kit, make_emulator, collector) -> None:
    emu = make_emulator(token={"approval_lifetime_s": 600})
    vt = kit.VirtualTime(emu)
    client = kit.make_client(emu, "real", vt)
    c = emu.credentials("real")
    from brokers.kis.ws import KISWebSocket

    ws = KISWebSocket(c.ws_url, client.approval_key, "real", c.hts_id, on_state=collector.cb("state"),
                      on_ack=collector.cb("ack"), on_reconnected=lambda: collector.q.put(("reconnected", None)),
                      backoff=(0.05, 0.2), wallclock=vt.wallclock)
    try:
        ws.start()
        ws.subscribe_trades(kit.MAIN)
        collector.wait("ack", lambda a: a.ok)
        first_key = client.approval_key()
        emu.advance(timedelta(minutes=11))  # the approval key is now unknown to the server
        emu.drop_websockets("real")
        collector.wait("ack", lambda a: a.msg_cd == P.WS_INVALID_APPROVAL.code)
        collector.wait("state", _state(ConnectionState.DISCONNECTED, P.WS_INVALID_APPROVAL.code))
        collector.wait("ack", lambda a: a.ok and a.tr_key == kit.MAIN)
        collector.wait("reconnected")
        assert ws.stats.approval_refreshes == 1 and client.approval_key() != first_key
    finally:
        ws.stop()


def test_second_session_for_the_same_key(kit, emu, vt, ws_factory, collector) -> None:
    client = kit.make_client(emu, "paper", vt)
    first = ws_factory("paper", client=client)
    first.subscribe_trades(kit.MAIN)
    collector.wait("ack", lambda a: a.ok)
    other = kit.Collector()
    second = ws_factory("paper", client=client, sink=other)
    second.subscribe_trades(kit.SECOND)
    busy = other.wait("ack", lambda a: a.msg_cd == P.WS_APPKEY_IN_USE.code)
    assert not busy.ok
    other.wait("state", _state(ConnectionState.DISCONNECTED, P.WS_APPKEY_IN_USE.code))
    # the first session is untouched and keeps streaming
    emu.advance(timedelta(minutes=1))
    t = collector.wait("trade")
    assert t.code == kit.MAIN and first.state is ConnectionState.CONNECTED
    # when the first goes away, the second (retrying with backoff) takes over
    first.stop()
    assert first.state is ConnectionState.STOPPED
    other.wait("ack", lambda a: a.ok and a.tr_key == kit.SECOND)
    emu.advance(timedelta(minutes=1))
    assert other.wait("trade").code == kit.SECOND


def test_idle_watchdog_reconnects(kit, emu, ws_factory, collector) -> None:
    ws = ws_factory("paper", idle_timeout=0.3)
    collector.wait("state", _state(ConnectionState.DISCONNECTED, "idle"))
    collector.wait("state", _state(ConnectionState.CONNECTED))
    collector.wait("reconnected")
    ws.stop()
    collector.wait("state", _state(ConnectionState.STOPPED))
    assert ws.state is ConnectionState.STOPPED
    ws.stop()  # idempotent

"""The client's reference, book, tick, calendar, finance and ranking methods and the WebSocket's market
status and PINGPONG answer, against the emulator over real sockets.

Each method's parsed result is checked against the raw wire answer fetched separately (so a unit slip —
억원 vs KRW, a mixed-up field — shows), and real-only TRs are refused on paper before any request."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import requests

from brokers.kis.errors import KISRejected
from brokers.kis.info import CalendarMismatch
from brokers.kis.ws import KISWebSocket


def raw_get(client, path: str, tr_id: str, params: dict[str, str]) -> dict:
    c = client.creds
    r = requests.get(client.rest_url + path, params=params, timeout=10, headers={
        "authorization": f"Bearer {client.access_token()}", "appkey": c.app_key, "appsecret": c.app_secret,
        "tr_id": tr_id})
    assert r.status_code == 200, r.text
    return r.json()


def test_product_and_stock_info(kit, client_factory) -> None:
    c = client_factory("real")
    p = c.product_info(kit.MAIN)
    assert p.code == kit.MAIN and p.isin.startswith("KR7" + kit.MAIN) and p.name == "삼성전자" and p.listed_on
    s = c.stock_info(kit.MAIN)
    wire = raw_get(c, "/uapi/domestic-stock/v1/quotations/search-stock-info", "CTPF1002R",
                   {"PRDT_TYPE_CD": "300", "PDNO": kit.MAIN})["output"]
    assert s.shares_listed == int(wire["lstg_stqt"]) > 0 and s.par_value == int(wire["papr"])
    assert s.market == "KOSPI" and s.group == "ST" and not s.halted and not s.preferred
    with pytest.raises(KISRejected):
        c.product_info("999999")                                     # rt_cd 7: no such product


def test_real_only_trs_are_refused_on_paper_without_a_request(client_factory, emu_log, emu) -> None:
    c = client_factory("paper")
    for call in (lambda: c.stock_info("005930"), lambda: c.holidays(date(2025, 6, 1)),
                 lambda: c.balance_sheet("005930"), lambda: c.market_cap_rank()):
        with pytest.raises(KISRejected, match="not offered on the paper"):
            call()
    assert c.confirm_calendar(date(2025, 6, 1)) == []                 # paper keeps the local calendar
    assert not emu_log.settled(emu, "CTPF1002R") and not emu_log.settled(emu, "CTCA0903R")


def test_order_book_and_recent_trades(kit, client_factory, vt) -> None:
    c = client_factory("paper")
    book = c.order_book(kit.MAIN)
    assert len(book.asks) == len(book.bids) == 10 and book.asks[0][0] > book.bids[0][0] > 0
    assert book.total_ask_qty == sum(q for _, q in book.asks)
    ticks = c.recent_trades(kit.MAIN)
    assert list(ticks.columns) == ["time", "price", "change", "volume", "strength"]
    assert 0 < len(ticks) <= 30 and ticks["time"].is_monotonic_increasing
    assert ticks["time"].iloc[-1].date() == vt.wallclock().date() and (ticks["price"] > 0).all()


def test_calendar_confirmation(client_factory, emu_log, emu) -> None:
    c = client_factory("real")
    rows = {h.day: h for h in c.holidays(date(2025, 6, 1))}
    assert rows[date(2025, 6, 3)].open_day is False and rows[date(2025, 6, 2)].open_day is True
    assert c.confirm_calendar(date(2025, 6, 1)) == []                 # KIS and market.calendar agree
    assert c.confirm_calendar(date(2025, 6, 1)) == []                 # cached: one call per start day
    assert len(emu_log.settled(emu, "CTCA0903R")) == 2                # holidays() + the first confirmation


def test_confirm_calendar_reports_disagreement(client_factory, monkeypatch) -> None:
    import market.calendar as mc

    c = client_factory("real")
    real_cal = mc.krx_calendar()

    class Stale:                                                      # a local calendar missing the election
        def is_trading_day(self, d: date) -> bool:
            return True if d == date(2025, 6, 3) else real_cal.is_trading_day(d)

    monkeypatch.setattr(mc, "krx_calendar", lambda: Stale())
    assert c.confirm_calendar(date(2025, 6, 1)) == [CalendarMismatch(date(2025, 6, 3), False, True)]
    assert c.is_trading_day(date(2025, 6, 3)) is False               # real: KIS's answer wins
    paper = client_factory("paper")
    assert paper.is_trading_day(date(2025, 6, 3)) is True            # paper: only the local calendar


def test_live_start_refuses_a_calendar_kis_contradicts_today(client_factory, monkeypatch) -> None:
    """``run.py live`` asks KIS before the first order: a closure the local calendar misses stops it."""
    import market.calendar as mc
    from configs.errors import InputError
    from engine.live import check_calendar_with_kis

    real_cal = mc.krx_calendar()

    class Stale:                                                      # misses the 2025-06-03 election
        def is_trading_day(self, d: date) -> bool:
            return True if d == date(2025, 6, 3) else real_cal.is_trading_day(d)

    c = client_factory("real")
    check_calendar_with_kis(c, date(2025, 6, 2))                      # calendars agree: no complaint
    monkeypatch.setattr(mc, "krx_calendar", lambda: Stale())
    check_calendar_with_kis(client_factory("real"), date(2025, 6, 2))  # disagreement tomorrow: a warning only
    with pytest.raises(InputError, match=r"KIS says KRX is closed today \(2025-06-03\).*says open"):
        check_calendar_with_kis(client_factory("real"), date(2025, 6, 3))
    check_calendar_with_kis(client_factory("paper"), date(2025, 6, 3))  # paper: no chk-holiday, local rules


def test_finance_frames_are_in_krw(kit, client_factory) -> None:
    c = client_factory("real")
    bs = c.balance_sheet(kit.MAIN)
    wire = raw_get(c, "/uapi/domestic-stock/v1/finance/balance-sheet", "FHKST66430100",
                   {"FID_DIV_CLS_CODE": "0", "FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": kit.MAIN})["output"]
    newest = wire[0]
    assert bs.index.is_monotonic_increasing and bs.index[-1].strftime("%Y%m") == newest["stac_yymm"]
    assert bs["total_assets"].iloc[-1] == round(float(newest["total_aset"]) * 100_000_000)
    unit = 1_000_000                                                  # 0.01 억원: the wire's resolution
    assert abs(bs["total_assets"].iloc[-1] - bs["total_liabilities"].iloc[-1] - bs["total_equity"].iloc[-1]) <= unit
    inc = c.income_statement(kit.MAIN, quarterly=True)
    assert {"revenue", "operating_income", "net_income"} <= set(inc.columns) and len(inc) >= 4
    ratios = c.financial_ratios(kit.MAIN)
    assert ratios["eps"].iloc[-1] != 0 and ratios["debt_ratio_pct"].iloc[-1] > 0


def test_rankings(kit, client_factory) -> None:
    c = client_factory("real")
    vol = c.volume_rank()
    assert list(vol["rank"]) == list(range(1, len(vol) + 1)) and vol["volume"].is_monotonic_decreasing
    cap = c.market_cap_rank("kospi")
    assert cap["market_cap"].is_monotonic_decreasing and (cap["market_cap"] % 100_000_000 == 0).all()
    assert abs(cap["market_share_pct"].sum() - 100.0) < 0.1
    up, down = c.fluctuation_rank("rise"), c.fluctuation_rank("fall", days=5)
    assert up["change_pct"].is_monotonic_decreasing and down["change_pct"].is_monotonic_increasing
    assert "period_change_pct" in down.columns
    with pytest.raises(ValueError):
        c.volume_rank(market="nasdaq")


def _halt_reference(path: Path, code: str, day: date) -> Path:
    path.write_text(json.dumps({"format": "krx-trader/reference", "version": 1, "securities": [
        {"code": code, "name": "삼성전자", "market": "KOSPI", "shares_listed": 5_969_782_550, "par_value": 100,
         "listing_date": "1975-06-11",
         "designations": [{"kind": "halted", "from": day.isoformat(), "to": day.isoformat(), "reason": "test"}]}]}),
        encoding="utf-8")
    return path


def test_websocket_market_status_and_pong_answer(kit, make_emulator, vt, collector, tmp_path: Path) -> None:
    emu = make_emulator(reference_file=str(_halt_reference(tmp_path / "ref.json", kit.SECOND, kit.START.date())))
    vt.emu = emu
    client = kit.make_client(emu, "real", vt)
    c = emu.credentials("real")
    ws = KISWebSocket(c.ws_url, client.approval_key, "real", c.hts_id, wallclock=vt.wallclock,
                      on_status=collector.cb("status"), on_ack=collector.cb("ack"), on_ping=collector.cb("ping"))
    ws.start()
    try:
        assert ws.wait_connected(5.0)
        ws.subscribe_market_status(kit.SECOND)
        status = collector.wait("status")
        assert (status.code, status.halted, status.halt_reason, status.vi_active) == (kit.SECOND, True, "test", False)
        for _ in range(3):
            assert emu.ping_websockets("real", wait_echo=5.0) == 0
        collector.take("ping", 3)                                   # on_ping fires after the pong was sent
        w = emu.status()["ws"]["real"]
        assert w["pong_frames"] == 3 and w["text_echoes"] == 0 and w["sessions_opened"] == 1
        assert ws.stats.pongs_sent == 3
    finally:
        ws.stop()
    paper = KISWebSocket(emu.ws_url("paper"), lambda: "x", "paper", "h")
    with pytest.raises(ValueError, match="real environment only"):
        paper.subscribe_market_status(kit.MAIN)

"""python-kis 2.1.6 (from PyPI, pinned in the test extra), a client written for the real KIS, against the
emulator over real sockets with nothing changed but its domain constants.

Two facts of python-kis 2.1.6 decide the emulator settings, both user-reported against *real* KIS:

* ``account.balance()`` sends ``INQR_DVSN=02``, which KIS refuses since its notice of 2026-02-10
  (python-kis issue #81, PR #82: ``OPSQ2001 INPUT INVALID_CHECK_INQR_DVSN``);
* its execution-notice parser wants the old 23-field layout and fails on real KIS's 26 fields
  (python-kis issue #68: ``Invalid data length: 26``).

``test_defaults_fail_python_kis_where_real_kis_does`` shows the emulator's defaults reproduce both
reports exactly; ``test_python_kis_full_flow`` then runs the whole flow against the gateway as python-kis
was written for it (``rest.balance_by_stock`` and ``real.notice_fields: 23``, documented knobs).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any, Iterator

import pandas as pd
import pytest

pykis = pytest.importorskip("pykis")

import pykis.client.websocket as pykis_ws  # noqa: E402
import pykis.kis as pykis_kis  # noqa: E402

from brokers.kis.emulator.clock import SteppedClock  # noqa: E402
from brokers.kis.emulator.server import Emulator  # noqa: E402
from configs.emulator_schema import EmulatorConfig  # noqa: E402
from kis_emu_helpers import KST  # noqa: E402
from market.calendar import krx_calendar  # noqa: E402

START = datetime(2025, 6, 2, 9, 30, tzinfo=KST)
CODE = "005930"


def _bars() -> dict[str, pd.DataFrame]:
    """A year of daily bars for one code (python-kis pages its daily chart back 100 rows a call)."""
    cal = krx_calendar()
    days = [d for d in cal.trading_days(START.date() - timedelta(days=400), START.date())]
    rows, p = [], 60_000
    for i, d in enumerate(days):
        p += 300 if i % 3 else -500
        rows.append((pd.Timestamp(d), p, p + 1_000, p - 1_000, p + 200, 900_000 + 1_000 * (i % 7)))
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"]).set_index("date")
    return {CODE: frame.astype("int64")}


def _emulator(**overrides: Any) -> Emulator:
    raw: dict[str, Any] = {"env": "real", "ws": {"ping_interval_s": None}, "matching": {"tick_interval_s": 20},
                           # python-kis paces itself on the wall clock at 19/s; the real gateway allows 18/s
                           "rate_limit": {"time_base": "wall"},
                           "real": {"account": {"cano": "63000001", "hts_id": "pykisuser", "cash": 50_000_000}}}
    for k, v in overrides.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return Emulator(EmulatorConfig.model_validate(raw), bars=_bars(), names={CODE: "삼성전자"},
                    clock=SteppedClock(START)).start()


@pytest.fixture
def pykis_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``pykis_on(**emulator_overrides)`` → (emulator, PyKis bound to it with its four domain constants
    patched, nothing else). Teardown closes python-kis's WebSocket thread first, then the emulator."""
    made: list[tuple[Emulator, Any]] = []

    def make(**overrides: Any) -> tuple[Emulator, Any]:
        emu = _emulator(**overrides)
        c = emu.credentials()
        monkeypatch.setattr(pykis_kis, "REAL_DOMAIN", c.rest_url)
        monkeypatch.setattr(pykis_kis, "VIRTUAL_DOMAIN", c.rest_url)
        monkeypatch.setattr(pykis_ws, "WEBSOCKET_REAL_DOMAIN", c.ws_url)
        monkeypatch.setattr(pykis_ws, "WEBSOCKET_VIRTUAL_DOMAIN", c.ws_url)
        kis = pykis.PyKis(id=c.hts_id, account=c.account, appkey=c.appkey, secretkey=c.appsecret, keep_token=False)
        made.append((emu, kis))
        return emu, kis

    yield make
    for emu, kis in made:
        ws = kis.websocket
        thread = ws.thread if ws is not None else None
        if ws is not None:
            ws.reconnect = False
            ws.disconnect()
        if thread is not None:
            thread.join(10)
        emu.stop()


class Executions:
    """python-kis execution events, with a condition to wait on (no sleeps)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.cond = threading.Condition()

    def on_event(self, sender: Any, e: Any) -> None:
        with self.cond:
            self.items.append(e.response)
            self.cond.notify_all()

    def wait(self, pred: Any, timeout: float = 10.0) -> Any:
        with self.cond:
            assert self.cond.wait_for(lambda: any(pred(x) for x in self.items), timeout), self.items
            return next(x for x in self.items if pred(x))


def _subscribed(kis: Any, tr_id: str) -> threading.Event:
    done = threading.Event()

    def on_sub(sender: Any, e: Any) -> None:
        if e.tr.id == tr_id:
            done.set()

    kis.websocket.subscribed_event += on_sub
    return done


def _ping_rounds(emu: Emulator, n: int) -> None:
    """``n`` PINGPONG rounds, each returning once python-kis answered (its text echo): a silent client
    would be dropped by the next round."""
    for _ in range(n):
        assert emu.ping_websockets(wait_echo=10.0) == 0


def test_python_kis_full_flow(pykis_on, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="krx_trader.emulator")
    emu, kis = pykis_on(rest={"balance_by_stock": True}, real={"notice_fields": 23})
    stock = kis.stock(CODE)                                        # inquire-price + search-info (CTPF1604R)
    assert stock.symbol == CODE and stock.market == "KRX"
    assert stock.info.name_kor == "삼성전자" and stock.info.std_code.startswith("KR7005930")
    quote = stock.quote()
    assert quote.price > 0 and quote.name == "삼성전자"
    assert quote.indicator.week52_high_date and quote.indicator.week52_low_date   # parsed dates
    assert quote.indicator.eps != 0 and quote.indicator.per != 0 and quote.market_cap > 0
    account = kis.account()
    balance = account.balance("KR")
    assert balance.deposits["KRW"].amount == 50_000_000

    executions = Executions()
    subscribed = _subscribed(kis, "H0STCNI0")
    ticket = account.on("execution", executions.on_event)
    assert subscribed.wait(10.0), "python-kis never got the H0STCNI0 acknowledgement"
    _ping_rounds(emu, 2)

    order = stock.buy(qty=1)                                       # market buy (TTTC0802U)
    emu.advance(timedelta(seconds=30))                             # the next print fills it
    fill = executions.wait(lambda x: int(x.order_number.number) == int(order.number) and x.executed_qty > 0)
    assert fill.executed_qty == 1 and fill.price > 0
    _ping_rounds(emu, 1)

    limit_price = int(quote.price) * 9 // 10 // 100 * 100          # tick 100 at 50,000–200,000
    limit = stock.buy(price=limit_price, qty=1)
    pending = account.pending_orders(country="KR")                 # inquire-psbl-rvsecncl (TTTC8036R)
    assert [int(o.order_number.number) for o in pending] == [int(limit.number)]
    limit.cancel()                                                 # order-rvsecncl (TTTC0803U)
    assert account.pending_orders(country="KR").orders == []
    _ping_rounds(emu, 1)

    daily = stock.daily_chart()                                    # FID_INPUT_DATE_1=00000101, pages back
    assert len(daily.bars) == len(_bars()[CODE]) and daily.bars[-1].time.date() == START.date()
    intraday = stock.day_chart()                                   # FID_INPUT_HOUR_1=000000 first
    assert len(intraday.bars) >= 30 and intraday.bars[-1].time.date() == START.date()
    _ping_rounds(emu, 1)
    ticket.unsubscribe()

    ws = emu.status()["ws"]["real"]
    assert ws["sessions_opened"] == 1 and ws["ping_rounds"] == 5 and ws["text_echoes"] == 5
    trs = " ".join(r.getMessage() for r in caplog.records)
    for tr in ("CTPF1604R", "FHKST01010100", "TTTC8434R", "TTTC0802U", "TTTC8036R", "TTTC0803U", "FHKST03010100",
               "FHKST03010200"):
        assert f"tr_id={tr}" in trs, tr
    assert " 403 " not in trs and "EGW00133" not in trs            # one token, reused: wall-clock expiry


def test_defaults_fail_python_kis_where_real_kis_does(pykis_on, caplog: pytest.LogCaptureFixture) -> None:
    """Fidelity control: python-kis 2.1.6 breaks on the default (2026) gateway as its users report."""
    emu, kis = pykis_on()
    with pytest.raises(pykis.KisAPIError) as ei:                  # python-kis #81
        kis.account().balance("KR")
    assert ei.value.msg_cd == "OPSQ2001" and "INQR_DVSN" in str(ei.value)
    caplog.set_level(logging.ERROR, logger="pykis")
    executions = Executions()
    subscribed = _subscribed(kis, "H0STCNI0")
    ticket = kis.account().on("execution", executions.on_event)   # keep it: dropping it unsubscribes
    assert subscribed.wait(10.0)
    kis.stock(CODE).buy(qty=1)
    with caplog.at_level(logging.ERROR, logger="pykis"):
        emu.advance(timedelta(seconds=30))
        _ping_rounds(emu, 1)                                       # notices were written before the ping
    assert "Invalid data length: 26" in caplog.text                 # python-kis #68
    assert executions.items == []
    ticket.unsubscribe()

"""Assemble a paper (모의투자) or live (실전) run: the same strategy, sizer, limits and recorder as a
backtest, on ``KISBroker`` and ``KISData`` instead of the simulator and history feeds.

Only this module and ``engine.backtest`` know which mode runs. ``broker.mode`` picks the KIS
environment (paper → 모의투자 TR ids and host, live → 실전); ``broker.kis.rest_url``/``ws_url``
point it at the project's emulator with no other change. Live trading needs, beyond the config
switch, an explicit ``confirm_live=True`` (``run.py live --confirm-live``).
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

import backtrader as bt
import pandas as pd

from analysis.record import RunRecord
from analysis.recorders import RunRecorder, events_frame
from brokers.kis.broker import KISBroker
from brokers.kis.errors import KISError
from brokers.kis.journal import Journal, JournalScope
from brokers.kis.protocol import Env
from brokers.kis.store import KISStore
from configs.errors import InputError
from configs.schema import AppConfig
from engine.backtest import check_strategy_params, required_indicators, resolve_strategy
from feeds.history import read_markets_file
from feeds.kis_live import KISData  # noqa: F401 - registers the live feed with KISStore
from market.calendar import KST
from market.costs import CostModel
from market.ticks import Market
from risk.limits import RiskLimits
from risk.sizing import sizer_from_config
from strategies.base import TargetStrategy
from strategies.targets import TargetBook, load_targets

log = logging.getLogger("krx.engine.live")


class LiveNotConfirmed(InputError):
    """A live (실전) run without the explicit confirmation."""


@dataclass
class LiveSession:
    """Everything a paper/live run is made of; ``run()`` blocks until the feeds end or ``stop()``."""

    cfg: AppConfig
    cerebro: bt.Cerebro
    store: KISStore
    broker: KISBroker
    codes: list[str]
    markets: dict[str, Market]
    strategy: TargetStrategy | None = None

    def run(self) -> TargetStrategy:
        bt.order.OrderBase.refbasis = itertools.count(1)
        self.strategy = self.cerebro.run()[0]
        return self.strategy

    def stop(self) -> None:
        """Stop (safe from another thread or a signal handler): no order POST leaves from this moment —
        queued ones end unsent — then cerebro ends its loop and the broker journals what was in flight."""
        self.store.halt()
        self.cerebro.runstop()

    def record(self) -> RunRecord:
        """The run as a ``RunRecord`` (same report as a backtest)."""
        strat = self.strategy
        if strat is None:
            raise RuntimeError("the session has not run")
        rec: RunRecorder = strat.analyzers.recorder
        prices = {}
        for code, data in strat.data_by_code.items():
            frame = getattr(data, "_frame", pd.DataFrame())
            frame = frame.copy()
            if len(frame):
                frame.index = pd.DatetimeIndex(frame.index).tz_localize(KST)
            prices[code] = frame
        env = "paper (모의투자)" if self.cfg.broker.mode == "paper" else "live (실전)"
        return RunRecord(
            name=self.cfg.name, mode=self.cfg.broker.mode, strategy=self.cfg.strategy.name,
            data_label=f"KIS {env} real-time trades ({self.cfg.broker.kis.bar} bars)", synthetic=False,
            initial_cash=int(round(self.broker.startingcash)), equity=rec.equity_frame(), trades=rec.trades_frame(),
            orders=rec.orders_frame(strat.refusals), prices=prices, progress=strat.update_progress(),
            events=events_frame(strat.events), markets={c: m.value for c, m in self.markets.items()},
            config=self.cfg.model_dump(mode="json"), risk_free_pct=self.cfg.report.risk_free_pct)


def _markets(cfg: AppConfig, codes: list[str]) -> dict[str, Market]:
    known: dict[str, Market] = {}
    if cfg.data.markets_file is not None:
        known, _names = read_markets_file(cfg.data.markets_file)
    return {c: known.get(c, cfg.data.default_market) for c in codes}


def check_calendar_with_kis(client: Any, today: date) -> None:
    """Live (real env) only: KIS's 휴장일 list (``chk-holiday``) against the local KRX calendar before the
    first order. The session schedule, the order window and DAY expiry all follow ``market.calendar``;
    an ad-hoc closure it does not know (an election day) would have the trader wait for an opening that
    never comes, and a day it wrongly closes would never trade. KIS disagreeing about *today* stops the
    start with the reason; a later day only warns (``confirm_calendar`` logs it), since the local
    calendar may be updated before then. If KIS cannot be asked, the local calendar rules (logged).
    Paper has no such TR and always keeps the local calendar."""
    try:
        mismatches = client.confirm_calendar(today)
    except KISError as exc:
        log.warning("chk-holiday (KRX holidays at KIS) failed: %s; trading on the local KRX calendar", exc)
        return
    for m in mismatches:
        if m.day == today:
            raise InputError(
                f"KIS says KRX is {'open' if m.kis_open else 'closed'} today ({today:%Y-%m-%d}) but the local KRX "
                f"calendar (exchange_calendars XKRX) says {'open' if m.local_open else 'closed'}: not trading on a "
                "calendar that disagrees with the exchange; update exchange_calendars (pip install -U "
                "exchange_calendars) or wait for the next session")


def build_live_session(cfg: AppConfig, *, confirm_live: bool = False, client: Any = None,
                       ws_factory: Callable[..., Any] | None = None, now: Callable[[], datetime] | None = None,
                       journal: Journal | None = None, credentials: Any = None, until: datetime | None = None,
                       history: dict[str, pd.DataFrame] | None = None) -> LiveSession:
    """A ready-to-run paper/live session. Tests pass the emulator's client pieces and clock."""
    mode = cfg.broker.mode
    if mode not in ("paper", "live"):
        raise InputError(f"broker.mode is {mode!r}; a KIS session needs 'paper' or 'live'")
    if mode == "live" and not confirm_live:
        raise LiveNotConfirmed("broker.mode is 'live' (real money, 실전): rerun with --confirm-live to trade live")
    env = Env.PAPER if mode == "paper" else Env.REAL
    kis = cfg.broker.kis
    from brokers.kis.client import Credentials, KISClient
    from brokers.kis.ws import KISWebSocket

    creds = credentials or Credentials.from_env(kis.env_file)
    if now is None and kis.clock == "emulator":
        from brokers.kis.clock import AdminClock

        admin = KISClient(creds, env, kis.rest_url, admin_url=kis.admin_url, token_cache=kis.token_cache,
                          requests_per_second=kis.requests_per_second)
        now = AdminClock(admin.server_clock)
    clock_kw = {"wallclock": now} if now else {}
    if client is None:
        client = KISClient(creds, env, kis.rest_url, token_cache=kis.token_cache,
                           requests_per_second=kis.requests_per_second, use_old_tr_ids=kis.use_old_tr_ids,
                           order_timeout=kis.order_timeout_s, **clock_kw)
    if env is Env.REAL:
        check_calendar_with_kis(client, (now() if now else datetime.now(KST)).astimezone(KST).date())
    if ws_factory is None:
        from brokers.kis.protocol import WS_BASE_URL
        ws_url = kis.ws_url or WS_BASE_URL[env]

        def ws_factory(**callbacks):
            return KISWebSocket(ws_url, client.approval_key, env, creds.hts_id,
                                account_filter=f"{creds.cano}{creds.product_code}", **clock_kw, **callbacks)

    cls = resolve_strategy(cfg.strategy.name)
    check_strategy_params(cfg, cls)
    targets: TargetBook | None = load_targets(cfg.strategy.targets) if cfg.strategy.targets else None
    codes = list(cfg.data.universe or (targets.codes if targets else []))
    if not codes:
        raise InputError("data.universe: a paper/live run needs the codes to trade (or strategy.targets)")
    from brokers.kis.protocol import WS_CLIENT_REGISTRATION_BUDGET

    if len(codes) + 1 > WS_CLIENT_REGISTRATION_BUDGET:
        raise InputError(f"data.universe: {len(codes)} codes need {len(codes) + 1} WebSocket registrations "
                         f"(one per code plus the execution notices); the client keeps to "
                         f"{WS_CLIENT_REGISTRATION_BUDGET} of KIS's 41 per session, so trade at most "
                         f"{WS_CLIENT_REGISTRATION_BUDGET - 1} codes per process")
    markets = _markets(cfg, codes)
    journal = journal or Journal(kis.journal_url)
    # every journal row names its environment, account and app key: paper and live never cross-match
    journal.bind(JournalScope.of(env.value, creds.cano, creds.product_code, creds.app_key))
    store = KISStore(client, ws_factory, journal, order_workers=kis.order_workers, **({"now": now} if now else {}))
    store.account.cash_tolerance_krw = kis.cash_tolerance_krw
    b = cfg.broker
    commission = CostModel(commission_rate=b.commission_pct / 100)
    broker = store.getbroker(cost_model=commission, markets=markets, price_rounding=b.price_rounding,
                             order_window=kis.order_window, reconcile_every_s=kis.reconcile_every_s,
                             stop_on_mismatch=kis.stop_on_mismatch,
                             unknown_order_timeout_s=kis.unknown_order_timeout_s)
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1, quicknotify=True)
    cerebro.setbroker(broker)
    specs = required_indicators(cfg, cls)
    for code in codes:
        data = store.getdata(code, bar=kis.bar, indicators=specs, end=until, close_grace=kis.bar_close_grace_s,
                             history=(history or {}).get(code))
        cerebro.adddata(data, name=code)
        broker.add_data(data, markets[code])
    sizer_cls, sizer_params = sizer_from_config(cfg.risk.sizer)
    cerebro.addsizer(sizer_cls, **sizer_params)
    cerebro.addstrategy(cls, targets=targets, limits=RiskLimits.from_config(cfg.risk.limits), **cfg.strategy.params)
    cerebro.addanalyzer(RunRecorder, _name="recorder")
    return LiveSession(cfg, cerebro, store, broker, codes, markets)


def run_until_signal(session: LiveSession) -> TargetStrategy:
    """Run in the foreground; Ctrl-C / SIGTERM stop it cleanly (the report is still written)."""
    stopping = threading.Event()

    def _stop(signum, _frame):
        if not stopping.is_set():
            stopping.set()
            log.warning("signal %s: stopping after the current step", signum)
            session.stop()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return session.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)

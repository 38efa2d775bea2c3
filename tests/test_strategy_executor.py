"""TargetStrategy's Trade Executor verbs, risk refusals, kill switch and checker, on the KRX simulator."""

import backtrader as bt

from risk.limits import RiskLimits
from risk.sizing import FixedFractionSizer
from simkit import bars, run
from strategies.base import TargetStrategy
from strategies.targets import TargetBook, TradeTarget

DAYS = bars([
    ("2024-03-04", 10_000, 10_100, 9_900, 10_000, 100_000),
    ("2024-03-05", 10_000, 10_200, 9_900, 10_100, 100_000),
    ("2024-03-06", 10_100, 10_300, 10_000, 10_200, 100_000),
    ("2024-03-07", 10_200, 10_400, 10_100, 10_300, 100_000),
    ("2024-03-08", 10_300, 10_500, 10_200, 10_400, 100_000),
    ("2024-03-11", 10_400, 10_600, 10_300, 10_500, 100_000),
])


class Script(TargetStrategy):
    """Runs ``script[bar]`` callables with the strategy as argument."""

    params = (("script", None),)

    def __init__(self):
        super().__init__()
        self.results = {}

    def on_bar(self):
        step = (self.p.script or {}).get(len(self))
        if step:
            self.results[len(self)] = step(self)


def statuses(strategy):
    return [e["kind"] for e in strategy.events]


def test_cancel_buy_and_cancel_sell_only_touch_their_side():
    def setup(s):
        s.buy(size=10)                                                  # fills on bar 2
    def place(s):
        s.buy(size=5, price=9_000, exectype=bt.Order.Limit)
        s.sell(size=10, price=12_000, exectype=bt.Order.Limit)
    def cancel(s):
        return [o.ref for o in s.cancel_buy()]
    s, broker = run(Script, {"005930": DAYS}, order_validity="gtc",
                    strategy_kwargs={"script": {1: setup, 2: place, 3: cancel}})
    open_sides = sorted("buy" if o.isbuy() else "sell" for o in s.open_orders.values())
    assert open_sides == ["sell"]                       # the buy is gone, the sell still works
    assert len(s.results[3]) == 1
    assert not s.check_failures


def test_stop_trading_cancels_everything_and_refuses_entries_but_allows_exits():
    def setup(s):
        s.buy(size=10)
    def place(s):
        s.buy(size=5, price=9_000, exectype=bt.Order.Limit)
        s.sell(size=5, price=12_000, exectype=bt.Order.Limit)
    def kill(s):
        s.stop_trading("operator pressed stop")
        return s.buy(size=1), s.sell(size=5)
    s, broker = run(Script, {"005930": DAYS}, order_validity="gtc",
                    strategy_kwargs={"script": {1: setup, 2: place, 3: kill}})
    refused_buy, exit_sell = s.results[3]
    assert refused_buy is None and exit_sell is not None
    assert s.trading_stopped and "kill_switch" in statuses(s)
    assert any("trading stopped: operator pressed stop" in r["reason"] for r in s.refusals)
    assert broker.getposition(s.datas[0]).size == 5       # the exit filled
    assert not [o for o in s.open_orders.values() if o.isbuy()]
    assert not s.check_failures                            # cancel-all left nothing open


def test_sell_more_than_held_is_refused_before_reaching_the_broker():
    s, _ = run(Script, {"005930": DAYS}, strategy_kwargs={"script": {1: lambda s: s.sell(size=3)}})
    assert s.results[1] is None
    assert "exceeds sellable 0 sh" in s.refusals[0]["reason"] or "nothing to sell" in s.refusals[0]["reason"]


def test_position_limit_refuses_explicit_size_and_trims_sizer_size():
    limits = RiskLimits(max_position_pct=10, max_exposure_pct=100)
    s, _ = run(Script, {"005930": DAYS}, cash=1_000_000, sizer=(FixedFractionSizer, {"fraction": 0.5}),
               strategy_kwargs={"limits": limits, "script": {1: lambda s: (s.buy(size=20), s.buy())}})
    explicit, sized = s.results[1]
    assert explicit is None and "above max_position_pct 10%" in s.refusals[0]["reason"]
    assert sized is not None and sized.created.size == 10      # sizer wants 50; 10 % of 1,000,000 at 10,000


def test_target_allocation_caps_buys():
    book = TargetBook([TradeTarget(code="005930", target_buy_price=10_000, target_return_pct=5, max_capital=55_000)])
    s, _ = run(Script, {"005930": DAYS}, strategy_kwargs={
        "targets": book, "script": {1: lambda s: (s.buy(size=6), s.buy(size=5))}})
    too_many, ok = s.results[1]
    assert too_many is None and "remaining allocation 55,000" in s.refusals[0]["reason"]
    assert ok is not None


def test_checker_reports_a_rejected_order():
    # a limit far above the band is rejected by the broker: the action did not do what was intended
    s, _ = run(Script, {"005930": DAYS}, strategy_kwargs={
        "script": {1: lambda s: s.buy(size=1, price=20_000, exectype=bt.Order.Limit)}})
    assert s.check_failures and "Rejected" in s.check_failures[0]["message"]
    assert "above the upper limit" in s.check_failures[0]["message"]


def test_checker_catches_a_book_that_disagrees_with_the_broker():
    class Forgetful(Script):
        def on_fill(self, code, qty, price):
            self.progress.row(code).shares -= 1          # a bug in the strategy's own book

    s, _ = run(Forgetful, {"005930": DAYS}, strategy_kwargs={"script": {1: lambda s: s.buy(size=10)}})
    assert any("shares mismatch: strategy book 9, broker position 10" in f["message"] for f in s.check_failures)


def test_daily_loss_limit_trips_the_kill_switch():
    crash = DAYS.copy()
    crash.loc[crash.index[3], ["open", "high", "low", "close"]] = [8_000, 8_100, 7_200, 7_200]  # -30 % day
    limits = RiskLimits(max_position_pct=100, daily_loss_limit_pct=5)
    s, _ = run(Script, {"005930": crash}, cash=1_000_000, strategy_kwargs={
        "limits": limits, "script": {1: lambda s: s.buy(size=70)}})
    assert s.trading_stopped and "daily loss" in s.stop_reason


def test_stop_loss_sells_at_market_next_bar():
    falling = DAYS.copy()
    falling.loc[falling.index[2], ["open", "high", "low", "close"]] = [9_500, 9_500, 8_500, 8_600]
    book = TargetBook([TradeTarget(code="005930", target_buy_price=10_000, target_return_pct=20,
                                   max_capital=10**7, stop_loss_pct=10)])
    s, broker = run(Script, {"005930": falling}, strategy_kwargs={
        "targets": book, "script": {1: lambda s: s.buy(size=10)}})
    assert "stop_loss" in statuses(s)
    assert broker.getposition(s.datas[0]).size == 0
    assert s.progress.status("005930").value == "stopped"

"""brokers.sim.KRXBroker: fills, DAY expiry, band and tick rules, buying power, costs (hand-made bars)."""

from datetime import date

import backtrader as bt

from brokers.sim import KRXCommInfo
from market.costs import CostModel
from simkit import Scripted, bars, run

# five sessions of a 10,000-KRW stock, 2024-01-02 .. 2024-01-08
FIVE_DAYS = bars([
    ("2024-01-02", 10_000, 10_200, 9_900, 10_100, 100_000),
    ("2024-01-03", 10_150, 10_300, 10_000, 10_200, 100_000),
    ("2024-01-04", 10_200, 10_400, 10_100, 10_300, 100_000),
    ("2024-01-05", 10_300, 10_500, 10_200, 10_400, 100_000),
    ("2024-01-08", 10_400, 10_600, 10_300, 10_500, 100_000),
])
DATA = {"005930": FIVE_DAYS}


def test_market_order_fills_at_next_bar_open():
    s, _ = run(Scripted, DATA, strategy_kwargs={"script": {1: {"b": ("buy", {"size": 10})}}})
    done = s.final("b")
    assert done["status"] == "Completed"
    assert done["date"] == date(2024, 1, 3) and done["price"] == 10_150


def test_day_limit_order_expires_at_the_close_of_its_session():
    # placed after the 01-02 close, works on 01-03 (low 10,000) and expires at 01-03's close
    s, _ = run(Scripted, DATA, strategy_kwargs={"script": {1: {"b": ("buy", {
        "size": 10, "price": 9_950, "exectype": bt.Order.Limit})}}})
    final = s.final("b")
    assert final["status"] == "Expired"
    assert final["date"] == date(2024, 1, 3)
    assert "unfilled at the close of 2024-01-03" in final["reason"]


def test_gtc_limit_order_keeps_working():
    s, _ = run(Scripted, DATA, order_validity="gtc", strategy_kwargs={"script": {1: {"b": ("buy", {
        "size": 10, "price": 9_950, "exectype": bt.Order.Limit})}}})
    assert s.final("b")["status"] == "Accepted"       # still open at the end, never expired


def test_limit_fills_at_limit_when_touched_and_at_open_when_gapped():
    s, _ = run(Scripted, DATA, strategy_kwargs={"script": {1: {
        "touch": ("buy", {"size": 5, "price": 10_050, "exectype": bt.Order.Limit}),
        "gap": ("buy", {"size": 5, "price": 10_180, "exectype": bt.Order.Limit})}}})
    assert s.final("touch")["price"] == 10_050
    assert s.final("gap")["price"] == 10_150                 # open below the limit: buy the open


def test_limit_outside_band_is_rejected_with_reason():
    # base 10,100 on 01-02 -> 01-03 band 7,070 .. 13,130 (unified table)
    s, _ = run(Scripted, DATA, strategy_kwargs={"script": {1: {
        "hi": ("buy", {"size": 1, "price": 13_200, "exectype": bt.Order.Limit}),
        "lo": ("sell", {"size": 1, "price": 7_000, "exectype": bt.Order.Limit})}}})
    hi = s.final("hi")
    assert hi["status"] == "Rejected"
    assert "above the upper limit of 2024-01-03" in hi["reason"] and "13,130" in hi["reason"]


def test_off_grid_prices_round_buy_down_sell_up_or_reject():
    script = {1: {"b": ("buy", {"size": 10, "price": 10_057, "exectype": bt.Order.Limit})},
              3: {"s": ("sell", {"size": 10, "price": 10_311, "exectype": bt.Order.Limit})}}
    s, _ = run(Scripted, DATA, strategy_kwargs={"script": script})
    assert s.orders["b"].created.price == 10_050
    assert s.orders["s"].created.price == 10_320
    s2, _ = run(Scripted, DATA, price_rounding="reject", strategy_kwargs={"script": {1: {
        "b": ("buy", {"size": 10, "price": 10_057, "exectype": bt.Order.Limit})}}})
    assert s2.final("b")["status"] == "Rejected" and "not on the tick grid" in s2.final("b")["reason"]


def test_market_buy_reserves_cash_at_the_upper_limit():
    # 1,000,000 KRW: at the 13,130 upper limit only 76 shares are coverable (76 x 13,130 = 997,880)
    ok, _ = run(Scripted, DATA, cash=1_000_000, strategy_kwargs={"script": {1: {"b": ("buy", {"size": 76})}}})
    assert ok.final("b")["status"] == "Completed"
    s, _ = run(Scripted, DATA, cash=1_000_000, strategy_kwargs={"script": {1: {"b": ("buy", {"size": 80})}}})
    final = s.final("b")
    assert final["status"] == "Rejected" and "insufficient buying power" in final["reason"]
    # a plain close-price reservation would have accepted it
    s3, _ = run(Scripted, DATA, cash=1_000_000, market_buy_reserve="last_close",
                strategy_kwargs={"script": {1: {"b": ("buy", {"size": 80})}}})
    assert s3.final("b")["status"] == "Completed"


def test_pending_buys_keep_their_reservation():
    script = {1: {"a": ("buy", {"size": 60, "price": 10_000, "exectype": bt.Order.Limit}),
                  "b": ("buy", {"size": 60, "price": 10_000, "exectype": bt.Order.Limit})}}
    s, _ = run(Scripted, DATA, cash=1_000_000, strategy_kwargs={"script": script})
    assert s.notes[0]["status"] != "Rejected"
    assert s.final("b")["status"] == "Rejected" and "available" in s.final("b")["reason"]


def test_no_short_selling():
    s, _ = run(Scripted, DATA, strategy_kwargs={"script": {1: {"s": ("sell", {"size": 1})}}})
    assert s.final("s")["status"] == "Rejected" and "short selling" in s.final("s")["reason"]


def test_round_trip_costs_by_hand():
    """Buy 100 at 10,150 (01-03 open), sell 100 at 10,300 (01-05 open); KOSPI, 2024 tax 0.18 %."""
    script = {1: {"b": ("buy", {"size": 100})}, 3: {"s": ("sell", {"size": 100})}}
    s, broker = run(Scripted, DATA, cash=10_000_000, strategy_kwargs={"script": script})
    buy_comm = 1_015_000 * 0.000140527           # 142.63 -> 142
    sell_comm = 1_030_000 * 0.000140527          # 144.74 -> 144
    tax = 1_030_000 * 0.0018                     # 1,854
    assert s.final("b")["comm"] == 142 and s.final("s")["comm"] == 144 + 1_854
    assert int(buy_comm) == 142 and int(sell_comm) == 144 and int(tax) == 1_854
    assert broker.getcash() == 10_000_000 - 1_015_000 - 142 + 1_030_000 - 144 - 1_854


def test_commission_info_breakdown_splits_tax_from_commission():
    ci = KRXCommInfo(cost_model=CostModel(), market="KOSDAQ")
    assert ci.breakdown(-100, 10_300, date(2024, 1, 5)) == (144, 1_854)
    assert ci.breakdown(100, 10_300, date(2024, 1, 5)) == (144, 0)


def test_volume_cap_gives_partial_fills_and_the_rest_expires():
    thin = FIVE_DAYS.copy()
    thin["volume"] = 1_000                                    # 10 % cap -> 100 shares a bar
    s, _ = run(Scripted, {"005930": thin}, volume_cap_pct=10,
               strategy_kwargs={"script": {1: {"b": ("buy", {"size": 250, "price": 10_300,
                                                               "exectype": bt.Order.Limit})}}})
    final = s.final("b")
    assert final["size"] == 100                               # one session: one bar of 100
    assert final["status"] == "Expired"
    gtc, _ = run(Scripted, {"005930": thin}, volume_cap_pct=10, order_validity="gtc",
                 strategy_kwargs={"script": {1: {"b": ("buy", {"size": 250, "price": 10_300,
                                                                 "exectype": bt.Order.Limit})}}})
    fills = [bit for n in gtc.notes if n["ref"] == gtc.orders["b"].ref for bit in n["bits"]]
    assert [size for size, _ in fills] == [100, 100, 50]


def test_slippage_in_ticks_on_market_orders():
    s, _ = run(Scripted, DATA, slippage_ticks=2, strategy_kwargs={"script": {
        1: {"b": ("buy", {"size": 10})}, 3: {"s": ("sell", {"size": 10})}}})
    assert s.final("b")["price"] == 10_150 + 2 * 10          # two 10-KRW ticks worse
    assert s.final("s")["price"] == 10_300 - 2 * 10


def test_limit_order_does_not_fill_on_a_halted_codes_stale_bar():
    halted = FIVE_DAYS.drop(index=FIVE_DAYS.index[1:4])     # 005380 trades 01-02 and 01-08 only
    frames = {"005930": FIVE_DAYS, "005380": halted}
    s, _ = run(Scripted, frames, strategy_kwargs={"script": {1: {"b": ("buy", {
        "code": "005380", "size": 10, "price": 10_100, "exectype": bt.Order.Limit})}}})
    final = s.final("b")
    assert final["status"] == "Expired" and final["size"] == 0   # the 01-02 bar is never re-matched


def test_revise_is_cancel_plus_new_order_for_the_unfilled_rest():
    from strategies.base import TargetStrategy

    class Reviser(TargetStrategy):
        def on_bar(self):
            if len(self) == 1:
                self.first = self.buy(size=10, price=9_500, exectype=bt.Order.Limit)
        def on_order_update(self, order):
            if order.ref == self.first.ref and order.status == bt.Order.Accepted and not hasattr(self, "second"):
                self.second = self.revise(self.first, price=10_160)

    s, broker = run(Reviser, DATA, order_validity="gtc")
    assert s.first.status == bt.Order.Canceled
    assert s.first.info.get("replaced_by") == s.second.ref
    assert s.second.info.get("replaces") == s.first.ref
    assert s.second.status == bt.Order.Completed and s.second.executed.price == 10_160
    assert broker.getposition(s.datas[0]).size == 10


class _CrossWithRecord(bt.Strategy):
    """Buys on a 3/8 close crossover and sells on the cross back, in odd sizes and at limits, and
    records the broker's books after every bar."""

    def __init__(self) -> None:
        self.fast = {d: bt.indicators.SMA(d.close, period=3) for d in self.datas}
        self.slow = {d: bt.indicators.SMA(d.close, period=8) for d in self.datas}
        self.books: list[tuple] = []
        self.fills: list[tuple] = []

    def notify_order(self, order: bt.Order) -> None:
        self.fills += [(order.data._name, bit.size, bit.price) for bit in order.executed.iterpending()]

    def next(self) -> None:
        b = self.broker
        self.books.append((b._value, b.cash, b._valuelever, b._valuemkt, b._unrealized, b._leverage,
                           b._fundval))
        for i, d in enumerate(self.datas):
            if len(d) < 9 or d.datetime[0] != self.datetime[0]:
                continue
            pos = self.getposition(d).size
            if self.fast[d][0] > self.slow[d][0] and self.fast[d][-1] <= self.slow[d][-1]:
                self.buy(data=d, size=7 + i, price=d.close[0] * 0.99, exectype=bt.Order.Limit)
            elif 0 < pos < 12 and self.fast[d][0] > self.slow[d][0]:
                self.buy(data=d, size=3)          # a second lot at another price: a fractional average
            elif pos and self.fast[d][0] < self.slow[d][0]:
                self.sell(data=d, size=pos)


def test_lean_broker_cycle_gives_backtraders_cash_and_value_to_the_last_bit(monkeypatch):
    """The KRX broker's own cycle (no interest, no futures adjustment, held positions only) against
    backtrader's generic ``BackBroker.next`` on the same run: every bar's books are the same floats."""
    from brokers.sim import KRXBroker
    from configs.schema import DemoDataConfig
    from feeds.demo import generate_demo_market

    market = generate_demo_market(DemoDataConfig(codes=6, start=date(2024, 1, 2), end=date(2024, 6, 28)))
    frames = {code: frame[["open", "high", "low", "close", "volume"]] for code, frame in market.bars.items()}
    kwargs = dict(cash=5_000_000, markets={c: m.value for c, m in market.markets.items()}, volume_cap_pct=2)
    lean, lean_broker = run(_CrossWithRecord, frames, **kwargs)
    assert lean_broker._lean                              # the lean cycle really ran
    monkeypatch.setattr(KRXBroker, "_generic_cycle", lambda self: True)
    generic, _ = run(_CrossWithRecord, frames, **kwargs)
    assert len(lean.books) > 100
    assert len(lean.fills) > 10 and any(size < 0 for _, size, _ in lean.fills)
    assert lean.fills == generic.fills
    assert lean.books == generic.books


def test_lean_broker_cycle_steps_aside_for_a_feed_without_krx_costs():
    """A feed added without ``add_code`` has backtrader's default scheme, which the lean cycle does
    not model: the broker keeps backtrader's own cycle for the whole run."""
    from brokers.sim import make_broker

    cerebro = bt.Cerebro(stdstats=False)
    broker = make_broker(1_000_000)
    cerebro.setbroker(broker)
    cerebro.adddata(bt.feeds.PandasData(dataname=FIVE_DAYS, name="005930"), name="005930")
    cerebro.addstrategy(Scripted, script={1: {"b": ("buy", {"size": 3})}})
    cerebro.run()
    assert broker.getposition(cerebro.datas[0]).size == 3
    assert broker._lean is False

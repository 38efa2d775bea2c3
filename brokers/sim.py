"""backtrader's simulator made Korean: KRX costs, tick grid, price band, DAY expiry, volume cap.

``KRXBroker`` subclasses ``bt.brokers.BackBroker`` and changes only what KRX and KIS do
differently, so every backtrader strategy keeps working and the same strategy later runs on the
KIS broker unchanged:

* ``KRXCommInfo`` charges commission on both sides and the sell tax of the *settlement* year
  (``market.costs``), in whole KRW.
* Limit and stop prices are moved onto the tick grid (buys down, sells up) or rejected, as
  configured; limit prices outside the working session's ±30 % band are rejected with a reason.
* Orders are DAY orders by default: an order placed after a daily bar's close works during the
  next session and expires at that session's close, exactly as KIS cancels unfilled orders
  overnight. (backtrader's own ``Order.DAY`` ends with the *creation* bar's day, which on daily
  bars would expire every order before it could trade.)
* Buying power is checked at submission the way KIS does it: a market buy reserves cash at the
  upper-limit price, pending buys keep their reservation, and a sale may not exceed the shares
  held minus pending sells (no short selling in a cash account).
* An order never fills on a bar it has already seen: a limit order on a halted code waits for
  the next real bar instead of re-matching the stale one.
* Optional: at most ``volume_cap_pct`` of a bar's volume per order (partial fills, the remainder
  stays working until it expires) and ``slippage_ticks`` of adverse slippage on market fills.

Every rejection carries ``order.info.reason`` for orders.csv and the strategy's event log.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import backtrader as bt

from market.acceptance import (Refusal, band_refusal, buying_power_refusal, quantity_refusal, sellable_refusal,
                               tick_refusal)
from market.calendar import krx_calendar
from market.costs import CostModel
from market.limits import PriceBand, price_band
from market.ticks import Market, round_to_tick, shift_ticks

ORDER_REASON = "reason"


class KRXCommInfo(bt.CommInfoBase):
    """Commission on both sides plus the dated sell tax, truncated to whole KRW per fill.

    One instance per code: it knows the code's market (tax rate, tick table) and its data feed, whose
    current bar date is the trade date that decides the settlement year of the tax.
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_FIXED),
        ("percabs", True),
        ("cost_model", None),
        ("market", Market.KOSPI),
    )

    def __init__(self) -> None:
        super().__init__()
        self.cost_model: CostModel = self.p.cost_model or CostModel()
        self.market = Market(self.p.market)
        self.data = None  # set by KRXBroker.attach; the feed whose bar date is the trade date
        self._recent: dict[tuple, tuple[int, int]] = {}

    def trade_date(self) -> date:
        if self.data is None or not len(self.data):
            raise RuntimeError("KRXCommInfo has no data feed attached; use KRXBroker.add_code()")
        return self.data.datetime.date(0)

    def breakdown(self, size: float, price: float, trade_date: date) -> tuple[int, int]:
        """(commission, tax) of one fill; ``size`` < 0 is a sale.

        Remembered for the last few fills: the broker charges a fill and the recorder itemises the
        same fill right after, and the Decimal arithmetic is the costly part of a fill.
        """
        key = (size, price, trade_date)
        hit = self._recent.get(key)
        if hit is None:
            if len(self._recent) > 64:
                self._recent.clear()
            value = abs(size) * price
            hit = self._recent[key] = self.cost_model.costs(value, size < 0, trade_date, self.market)
        return hit

    def _getcommission(self, size, price, pseudoexec):
        commission, tax = self.breakdown(size, price, self.trade_date())
        return commission + tax


class VolumeShareFiller:
    """Caps each fill at ``pct`` % of the bar's volume, in whole shares (backtrader's own fillers
    return fractional shares)."""

    def __init__(self, pct: float) -> None:
        if not 0 < pct <= 100:
            raise ValueError(f"volume cap must be in (0, 100] percent, got {pct}")
        self.pct = pct

    def __call__(self, order: bt.Order, price: float, ago: int) -> int:
        allowed = int(order.data.volume[ago] * self.pct // 100)
        return max(0, min(allowed, int(abs(order.executed.remsize))))


class KRXBroker(bt.brokers.BackBroker):
    """``BackBroker`` with KRX/KIS order rules. Use ``add_code`` for every feed (sets its costs)."""

    params = (
        ("price_rounding", "round"),          # round | reject
        ("market_buy_reserve", "upper_limit"),  # upper_limit | last_close
        ("volume_cap_pct", None),
        ("slippage_ticks", 0),
        ("order_validity", "day"),            # day | gtc
        ("cost_model", None),
    )

    def __init__(self) -> None:
        super().__init__()
        self.p.checksubmit = False  # KIS-style checks happen in submit(); see _check_buying_power
        self.p.slip_open = True
        if self.p.volume_cap_pct:
            self.p.filler = VolumeShareFiller(self.p.volume_cap_pct)
        self.cost_model: CostModel = self.p.cost_model or CostModel()
        self._session_of: dict[int, date] = {}      # order ref -> working session (DAY orders)
        self._reserved: dict[int, float] = {}       # order ref -> price per share reserved (buys)
        self._seen_len: dict[int, int] = {}         # order ref -> len(data) at the last match try
        self._slip_data: bt.AbstractDataBase | None = None
        self._next_session: dict[int, date] = {}    # bar date (ordinal) -> next trading day
        self._band_of: dict[bt.AbstractDataBase, tuple[float, PriceBand]] = {}  # feed -> (bar time, band)
        self._bands: dict[tuple[int, date, Market], PriceBand] = {}             # price_band() results
        self._vetted_positions = -1                 # positions whose schemes _generic_cycle checked
        self._lean = False

    # ------------------------------------------------------------------ set-up
    def add_code(self, data: bt.AbstractDataBase, market: Market | str) -> KRXCommInfo:
        """Register a feed: its commission scheme knows the code's market and trade dates."""
        ci = KRXCommInfo(cost_model=self.cost_model, market=Market(market))
        ci.data = data
        self.addcommissioninfo(ci, name=data._name)
        return ci

    def market_of(self, data: bt.AbstractDataBase) -> Market:
        ci = self.getcommissioninfo(data)
        return ci.market if isinstance(ci, KRXCommInfo) else Market.KOSPI

    # ------------------------------------------------------------------ session helpers
    @staticmethod
    def _is_daily(data: bt.AbstractDataBase) -> bool:
        return data._timeframe >= bt.TimeFrame.Days

    def working_session(self, data: bt.AbstractDataBase) -> date:
        """The session an order placed now would trade in.

        Daily bars are complete at the close, so an order placed on them works in the next
        session; intraday orders work in the current one.
        """
        if not self._is_daily(data):
            return data.datetime.date(0)
        day = int(data.lines.datetime[0])          # the bar's date as a proleptic ordinal
        nxt = self._next_session.get(day)
        if nxt is None:
            nxt = self._next_session[day] = krx_calendar().next_trading_day(date.fromordinal(day))
        return nxt

    def session_band(self, data: bt.AbstractDataBase) -> PriceBand:
        """The price band of the working session (base = the last close before it).

        Kept per feed for its current bar: the strategy's band check, the reservation of a market
        buy and the limit check of the same order all ask for it.
        """
        key = data.lines.datetime[0]
        cached = self._band_of.get(data)
        if cached is not None and cached[0] == key:
            return cached[1]
        band = self._session_band(data)
        self._band_of[data] = (key, band)
        return band

    def _session_band(self, data: bt.AbstractDataBase) -> PriceBand:
        session = self.working_session(data)
        if self._is_daily(data):
            base = data.close[0]
        else:
            base = self._previous_session_close(data)
        key = (max(1, int(round(base))), session, self.market_of(data))
        band = self._bands.get(key)
        if band is None:                      # bands repeat: the same base price on the same day
            if len(self._bands) > 4096:
                self._bands.clear()
            band = self._bands[key] = price_band(*key)
        return band

    @staticmethod
    def _previous_session_close(data: bt.AbstractDataBase) -> float:
        """Close of the last bar before today's first bar (intraday base price)."""
        today = data.datetime.date(0)
        for ago in range(1, len(data)):
            if data.datetime.date(-ago) != today:
                return data.close[-ago]
        return data.open[0]  # first day of the feed: no earlier close is known

    def reserve_price(self, data: bt.AbstractDataBase, exectype: int | None, price: float | None) -> float:
        """Price per share a buy must be covered at when submitted (KIS: market buys at 상한가)."""
        if exectype in (None, bt.Order.Market, bt.Order.Close) or price is None:
            if self.p.market_buy_reserve == "upper_limit":
                return float(self.session_band(data).upper)
            return float(data.close[0])
        return float(price)

    def available_cash(self) -> float:
        """Cash not reserved by pending buy orders (what KIS would let a new buy use)."""
        reserved = 0.0
        for order in self.pending:
            if order is not None and order.isbuy() and order.alive():
                per_share = self._reserved.get(order.ref, 0.0)
                reserved += abs(order.executed.remsize) * per_share * (1 + float(self.cost_model.commission_rate))
        return self.cash - reserved

    def pending_sell_qty(self, data: bt.AbstractDataBase) -> int:
        return int(sum(abs(o.executed.remsize) for o in self.pending
                       if o is not None and o.data is data and o.issell() and o.alive()))

    # ------------------------------------------------------------------ submission checks
    def _reject(self, order: bt.Order, reason: str | Refusal) -> bt.Order:
        order.addinfo(**{ORDER_REASON: str(reason)})
        order.reject(self)
        self.notify(order)
        self._ococheck(order)
        self._bracketize(order, cancel=True)
        return order

    def _grid_price(self, order: bt.Order, price: float, label: str, on: date, market: Market) -> float | None:
        """The on-grid price for ``price`` or None after rejecting ``order``."""
        refusal = tick_refusal(price, on, market, label)
        if refusal is None:
            return price
        if self.p.price_rounding == "reject":
            self._reject(order, refusal)
            return None
        return float(round_to_tick(price, on, market, "down" if order.isbuy() else "up"))

    def submit(self, order: bt.Order, check: bool = True) -> bt.Order:
        data = order.data
        size = abs(order.created.size)
        refusal = quantity_refusal(size)
        if refusal is not None:
            return self._reject(order, refusal)
        session = self.working_session(data)
        market = self.market_of(data)
        band = self.session_band(data)

        if order.exectype in (bt.Order.Limit, bt.Order.Stop, bt.Order.StopLimit,
                              bt.Order.StopTrail, bt.Order.StopTrailLimit) and order.created.price:
            p = self._grid_price(order, order.created.price, "price", session, market)
            if p is None:
                return order
            order.created.price = order.price = p
            if order.exectype == bt.Order.StopLimit and order.created.pricelimit:
                pl = self._grid_price(order, order.created.pricelimit, "limit price", session, market)
                if pl is None:
                    return order
                order.created.pricelimit = order.pricelimit = pl
            limit = order.created.pricelimit if order.exectype == bt.Order.StopLimit else order.created.price
            refusal = band_refusal(limit, band, session)
            if order.exectype in (bt.Order.Limit, bt.Order.StopLimit) and refusal is not None:
                return self._reject(order, refusal)

        if order.isbuy():
            per_share = self.reserve_price(data, order.exectype,
                                           order.created.pricelimit if order.exectype == bt.Order.StopLimit
                                           else (order.created.price if order.exectype != bt.Order.Market else None))
            rate = float(self.cost_model.commission_rate)
            refusal = buying_power_refusal(size, per_share, self.available_cash(), lambda value: value * rate)
            if refusal is not None:
                return self._reject(order, refusal)
            self._reserved[order.ref] = per_share
        else:
            refusal = sellable_refusal(size, self.getposition(data).size, self.pending_sell_qty(data))
            if refusal is not None:
                return self._reject(order, refusal)

        if self.p.order_validity == "day" and order.valid is None:
            self._session_of[order.ref] = session
        return super().submit(order, check)

    # ------------------------------------------------------------------ matching
    def _try_exec(self, order: bt.Order) -> None:
        data = order.data
        n = len(data)
        if self._seen_len.get(order.ref) == n or data.datetime[0] <= order.created.dt:
            return  # no new bar for this code since the last try (halt) or since creation
        self._seen_len[order.ref] = n
        session = self._session_of.get(order.ref)
        # backtrader's date numbers are proleptic ordinals plus the time of day: comparing whole days
        # as integers spares a datetime conversion on every matching try
        if session is not None and int(data.lines.datetime[0]) != session.toordinal():
            return  # the order's session has no bar for this code (halted that day)
        self._slip_data = data  # backtrader's _slip_up/_slip_down do not receive the order
        super()._try_exec(order)
        if order.status == bt.Order.Margin and ORDER_REASON not in order.info:
            order.addinfo(**{ORDER_REASON: "not enough cash at execution"})

    def _slip(self, price: float, bound: float, up: bool, doslip: bool) -> float:
        if not doslip or not self.p.slippage_ticks:
            return price
        data = self._slip_data
        on, market = data.datetime.date(0), self.market_of(data)
        base = round_to_tick(price, on, market, "up" if up else "down")
        moved = shift_ticks(base, self.p.slippage_ticks if up else -self.p.slippage_ticks, on, market)
        return min(moved, bound) if up else max(moved, bound)

    def _slip_up(self, pmax, price, doslip=True, lim=False):
        return self._slip(price, pmax, True, doslip)

    def _slip_down(self, pmin, price, doslip=True, lim=False):
        return self._slip(price, pmin, False, doslip)

    # ------------------------------------------------------------------ DAY expiry
    def _expire(self, order: bt.Order, reason: str) -> None:
        self.pending.remove(order)
        order.status = bt.Order.Expired
        order.executed.dt = order.data.datetime[0]
        order.addinfo(**{ORDER_REASON: reason})
        self.notify(order)
        self._ococheck(order)
        self._bracketize(order, cancel=True)
        self._forget(order)

    def _forget(self, order: bt.Order) -> None:
        for book in (self._session_of, self._reserved, self._seen_len):
            book.pop(order.ref, None)

    def _expire_finished_sessions(self, after_matching: bool, now: date) -> None:
        for order in list(self.pending):
            if order is None or not order.alive():
                continue
            session = self._session_of.get(order.ref)
            if session is None:
                continue
            over = session < now or (after_matching and session == now and self._is_daily(order.data))
            if over:
                self._expire(order, f"DAY order unfilled at the close of {session}")

    def _current_date(self) -> date:
        """The date of the cycle being processed: the latest bar any feed has delivered.

        (cerebro only records a master datetime in its event-driven loop, not in runonce mode.)
        """
        latest = max([d.lines.datetime[0] for d in self.cerebro.datas if len(d)])
        return bt.num2date(latest).date()

    def next(self) -> None:
        if not self._session_of:
            self._next_cycle()
            return
        now = self._current_date()
        self._expire_finished_sessions(False, now)
        self._next_cycle()
        self._expire_finished_sessions(True, now)
        if len(self._seen_len) > len(self.pending):  # completed/margin orders leave the books here
            alive = {o.ref for o in self.pending if o is not None}
            for book in (self._session_of, self._reserved, self._seen_len):
                for ref in [r for r in book if r not in alive]:
                    del book[ref]

    def _next_cycle(self) -> None:
        """``BackBroker.next`` for a KRX cash account, which is most of a backtest's broker time.

        backtrader's generic cycle also charges credit interest on every open position and
        settles futures-style cash adjustments, then values every position the broker has ever
        seen. A KRX cash account holds long stock positions only (no short selling, no margin), so
        interest and adjustments are exactly zero and flat positions add exactly 0.0: this cycle
        skips them and gives the same cash and value to the last bit. Anything outside that case
        (another commission scheme, fund mode, ``checksubmit``) takes backtrader's own cycle.
        """
        if self._generic_cycle():
            super().next()
            return
        while self._toactivate:
            self._toactivate.popleft().activate()
        self._process_order_history()
        pending = self.pending
        pending.append(None)          # one pass over the queue, as backtrader does it
        while True:
            order = pending.popleft()
            if order is None:
                break
            if order.expire():
                self.notify(order)
                self._ococheck(order)
                self._bracketize(order, cancel=True)
            elif not order.active():
                pending.append(order)
            else:
                self._try_exec(order)
                if order.alive():
                    pending.append(order)
                elif order.status == bt.Order.Completed:
                    self._bracketize(order)
        self._value_long_only()

    def _generic_cycle(self) -> bool:
        """True when the lean cycle's premises do not hold and backtrader's own must run.

        The commission schemes are vetted once per new position (positions only ever grow).
        """
        if self._fundhist or self.p.checksubmit or not self.p.shortcash:
            return True
        if len(self.positions) != self._vetted_positions:
            self._vetted_positions = len(self.positions)
            self._lean = all(self._lean_scheme(self.getcommissioninfo(data)) for data in self.positions)
        return not self._lean

    def addcommissioninfo(self, comminfo: bt.CommInfoBase, name: str | None = None) -> None:
        super().addcommissioninfo(comminfo, name)
        self._vetted_positions = -1     # a scheme changed: vet the positions again

    @staticmethod
    def _lean_scheme(ci: bt.CommInfoBase) -> bool:
        """A KRX stock scheme: no interest, no multiplier, no leverage (what ``add_code`` sets)."""
        return (isinstance(ci, KRXCommInfo) and ci._stocklike and not ci.p.interest
                and ci.p.mult == 1.0 and ci.get_leverage() == 1.0)

    def _value_long_only(self) -> None:
        """``BackBroker._get_value`` over the positions actually held, with its arithmetic, so the
        value is the same float backtrader's cycle computes."""
        while self._cash_addition:
            c = self._cash_addition.popleft()
            self._fundshares += c / self._fundval
            self.cash += c
        pos_value = pos_value_unlever = unrealized = 0.0
        for data, position in self.positions.items():
            size = position.size
            if not size:
                continue                 # a flat position adds exactly 0.0 to every sum
            close = data.close[0]
            dvalue = size * close
            dunrealized = size * (close - position.price) * 1.0
            pos_value += dvalue
            unrealized += dunrealized
            if dvalue > 0:
                pos_value_unlever += (dvalue - dunrealized) / 1.0
                pos_value_unlever += dunrealized
            else:
                pos_value_unlever += dvalue
        self._value = self.cash + pos_value_unlever
        self._fundval = self._value / self._fundshares
        self._valuemkt = pos_value_unlever
        self._valuelever = self.cash + pos_value
        self._valuemktlever = pos_value
        self._leverage = pos_value / (pos_value_unlever or 1.0)
        self._unrealized = unrealized

    def revise(self, order: bt.Order, price: float | None = None, size: int | None = None) -> bt.Order | None:
        """Cancel + new order for the unfilled rest, as KIS revises (a new order number there, a new
        ref here). Returns the new order, or None when nothing was left to revise."""
        remaining = int(abs(order.executed.remsize)) if order.executed.remsize else int(abs(order.created.size))
        new_size = int(size) if size is not None else remaining
        if not 0 < new_size <= remaining:
            raise ValueError(f"revised size must be 1..{remaining} (the unfilled rest), got {size}")
        if not self.cancel(order):
            return None
        order.addinfo(**{ORDER_REASON: "replaced by a revision"})
        exectype = order.exectype if price is None or order.exectype != bt.Order.Market else bt.Order.Limit
        make = self.buy if order.isbuy() else self.sell
        new = make(order.owner, order.data, new_size, price=price if price is not None else order.created.price,
                   exectype=exectype, replaces=order.ref)
        order.addinfo(replaced_by=new.ref)
        return new

    def cancel(self, order: bt.Order, bracket: bool = False) -> bool:
        done = super().cancel(order, bracket)
        if done:
            self._forget(order)
        return done


def make_broker(cash: int, commission_pct: Decimal | float = Decimal("0.0140527"),
                sell_tax_pct: Decimal | float | None = None, **params) -> KRXBroker:
    """A configured ``KRXBroker``; ``commission_pct`` is in percent (0.0140527 = KIS default)."""
    from market.costs import SELL_TAX_SCHEDULE

    schedule = SELL_TAX_SCHEDULE
    if sell_tax_pct is not None:
        flat = Decimal(str(sell_tax_pct)) / 100
        schedule = ((date(1900, 1, 1), {m: flat for m in (Market.KOSPI, Market.KOSDAQ, Market.KONEX)}),)
    cost_model = CostModel(commission_rate=Decimal(str(commission_pct)) / 100, tax_schedule=schedule)
    broker = KRXBroker(cost_model=cost_model, **params)
    broker.set_cash(cash)
    return broker

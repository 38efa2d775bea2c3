"""Accounts, orders and the matching engine of the emulator: the one piece of mutable state.

Every public method must be called with ``Engine.lock`` held (the server does that); the engine
itself never blocks, sleeps or does I/O. Events it produces (trade prints for streamed codes,
execution-notice events) go to one ``sink`` callable; the server decides when they reach the
WebSocket (e.g. after the REST reply, or before it under the "notice first" fault).

Matching rules (the replayed tape is the market; our orders never move it)
-------------------------------------------------------------------------
* An order only interacts with prints strictly *after* the emulated moment it was accepted.
* Market orders (``01``, ``13``/``14``) fill at the price of the next print(s).
* ``03`` best limit (최유리) becomes a limit at the best opposite price at entry (so it is
  marketable); ``04`` top priority (최우선) a limit at the best same-side price (so it rests).
* A limit order's **first** print after acceptance is its arrival: a buy fills at that print's
  price p if p ≤ limit (sell: p ≥ limit) — a marketable limit takes liquidity at the market price.
* Afterwards the order rests at its limit and fills **at the limit** only when a print trades
  **through** it: p < limit for a buy, p > limit for a sell. A print exactly at the limit is not
  enough because the queue position is unknown (``limit_fill="touch"`` makes p = limit enough).
* Call-auction prints (the 09:00 open and 15:30 close) fill every order that crosses them
  (buy limit ≥ p, sell limit ≤ p, market) at p. ``02`` 조건부지정가 becomes a market order at the
  closing auction.
* Volume: each print's volume × ``participation`` is the liquidity available to all of the
  account's orders at that print, shared in price-time priority; the rest stays working
  (partial fills, one notice per fill).
* IOC (``11``/``13``/``15``) fills what its first print allows and kills the rest; FOK
  (``12``/``14``/``16``) fills completely on its first print or is killed whole.
* At the close (15:30) unfilled day orders expire (optional notice, ``expiry_notice``).

Cash and positions: a fill books commission (``CostModel.commission``) and, for sells, the dated
sell tax (``CostModel.sell_tax``) and creates a settlement on ``settlement_date`` (T+2). D+0 cash
(``dnca_tot_amt``) counts settlements due by today, D+1 by the next trading day, D+2 all of them.
Buying power = D+2 cash − reservations of working buy orders (market buys reserve at the upper
limit), so sale proceeds are reusable at once, as on KIS.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable, Iterable, Literal

from brokers.kis.protocol import BUY, ORD_DVSN, PAPER_EXCHANGES, PAPER_ORD_DVSN, Env
from brokers.kis.emulator.marketdata import BarStore, DayTape, Quote, book_levels
from market.acceptance import (band_refusal, buying_power_refusal, reserve_price, sellable_refusal, tick_refusal,
                               window_refusal)
from market.calendar import KST, krx_calendar, settlement_date
from market.costs import CostModel
from market.sessions import schedule
from market.ticks import Market

OrderKind = Literal["new", "revise", "cancel"]
NoticeKind = Literal["ack", "confirm", "fill", "reject", "kill"]

MARKET_TYPES = frozenset({"01", "13", "14", "05", "06"})
BEST_TYPES = frozenset({"03", "15", "16"})
IOC_TYPES = frozenset({"11", "13", "15"})
FOK_TYPES = frozenset({"12", "14", "16"})
SUPPORTED_TYPES = frozenset({"00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16"})


class OrderError(Exception):
    """A business rejection; ``key`` names the message in ``protocol.MESSAGES`` (or ``input:<FIELD>``)."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(detail or key)
        self.key = key


@dataclass
class Order:
    """One order row as KIS numbers it: new orders, revise rows and cancel rows all get a number."""

    no: int
    env: Env
    account: "Account"
    code: str
    side: str                     # "01" sell, "02" buy
    ord_dvsn: str
    qty: int
    price: int                    # order price as sent (0 for market types)
    placed_at: datetime
    kind: OrderKind = "new"
    orig_no: int | None = None
    source: str = "api"           # "api" or "hts" (placed by another app)
    exchange: str = "KRX"
    limit: int | None = None      # effective limit; None = market
    reserve_px: int = 0           # buys: cash reserved per share (limit or upper limit)
    filled_qty: int = 0
    filled_value: int = 0
    cancelled_qty: int = 0        # moved away by a cancel or revise
    killed_qty: int = 0           # IOC/FOK remainder
    expired_qty: int = 0          # day-end expiry (still shown as rmn_qty, no longer working)
    rejected_qty: int = 0
    fees: int = 0                 # commission + tax booked on this order's fills
    working: bool = True
    arrived: bool = False         # has seen its first print (see module rules)
    name: str = ""

    @property
    def trade_date(self) -> date:
        return self.placed_at.astimezone(KST).date()

    @property
    def is_buy(self) -> bool:
        return self.side == BUY

    @property
    def open_qty(self) -> int:
        """Quantity still able to fill (0 once expired, killed, rejected or cancelled)."""
        if self.kind == "cancel" or not self.working:
            return 0
        return self.qty - self.filled_qty - self.cancelled_qty - self.killed_qty - self.rejected_qty

    @property
    def unfilled_qty(self) -> int:
        """``rmn_qty``: not filled and not cancelled/rejected (expired orders keep it)."""
        if self.kind == "cancel":
            return 0
        return self.qty - self.filled_qty - self.cancelled_qty - self.killed_qty - self.rejected_qty

    @property
    def avg_price(self) -> int:
        return self.filled_value // self.filled_qty if self.filled_qty else 0

    @property
    def condition(self) -> str:
        return ORD_DVSN[self.ord_dvsn].condition if self.ord_dvsn in ORD_DVSN else "0"


@dataclass
class Position:
    code: str
    qty: int = 0
    cost: int = 0                 # pchs_amt: sum of fill values of the shares held (fees excluded)
    bfdy_buy_qty: int = 0
    bfdy_sll_qty: int = 0
    thdt_buy_qty: int = 0
    thdt_sll_qty: int = 0
    listed_until: date | None = None  # a sold-out row stays visible until the sale settles (D+2)

    @property
    def avg_price(self) -> float:
        return self.cost / self.qty if self.qty else 0.0


@dataclass
class Settlement:
    trade_date: date
    settles_on: date
    amount: int                   # + cash in (sells), − cash out (buys)


@dataclass
class Account:
    """One KIS account (CANO + product code) with its HTS id; owned by one environment."""

    env: Env
    cano: str
    prdt: str
    hts_id: str
    holder: str
    branch: str
    cash: int                     # settled cash (D+0 예수금) before pending settlements
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    pending: list[Settlement] = field(default_factory=list)
    thdt_buy_amt: int = 0
    thdt_sll_amt: int = 0
    thdt_tlex_amt: int = 0
    bfdy_buy_amt: int = 0
    bfdy_sll_amt: int = 0
    bfdy_tlex_amt: int = 0
    bfdy_total: int | None = None

    @property
    def number(self) -> str:
        """``ACNT_NO`` of notices: CANO + product code (10 digits)."""
        return self.cano + self.prdt

    def cash_due_by(self, d: date) -> int:
        return self.cash + sum(s.amount for s in self.pending if s.settles_on <= d)

    def cash_all(self) -> int:
        return self.cash + sum(s.amount for s in self.pending)

    def reusable_proceeds(self) -> int:
        return sum(s.amount for s in self.pending if s.amount > 0)

    def working_orders(self, code: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.open_qty > 0 and (code is None or o.code == code)]


@dataclass(frozen=True)
class TradeEvent:
    """Prints ``first..last`` (inclusive indices) of one code's tape, for ``H0STCNT0``/``H0STASP0``."""

    code: str
    tape: DayTape
    first: int
    last: int


@dataclass(frozen=True)
class NoticeEvent:
    """One execution-notice occurrence (formatted into H0STCNI0/9 by the WS layer)."""

    account: Account
    order: Order
    kind: NoticeKind
    qty: int
    price: int
    at: datetime
    rctf: str = "0"               # 0 normal, 1 revise, 2 cancel
    seq: int = 0


Event = TradeEvent | NoticeEvent
Sink = Callable[[list[Event]], None]


@dataclass
class MatchingRules:
    limit_fill: Literal["through", "touch"] = "through"
    participation: float = 1.0
    expiry_notice: bool = False
    revise_confirm_notice: bool = True
    order_window: dict[Env, Literal["order_entry", "regular"]] = field(
        default_factory=lambda: {Env.REAL: "order_entry", Env.PAPER: "regular"})
    first_order_no: int = 10_001


class Engine:
    """Replays the tape up to the clock and matches the accounts' orders against it."""

    def __init__(self, store: BarStore, start: datetime, *, costs: CostModel | None = None,
                 rules: MatchingRules | None = None) -> None:
        self.lock = threading.RLock()
        self.store = store
        self.costs = costs or CostModel()
        self.rules = rules or MatchingRules()
        self.sink: Sink = lambda events: None
        self.accounts: dict[tuple[Env, str], Account] = {}
        self._next_no: dict[Env, int] = {Env.REAL: self.rules.first_order_no, Env.PAPER: self.rules.first_order_no}
        self._notice_seq = 0
        self.now = start.astimezone(KST)
        cal = krx_calendar()
        d = self.now.date()
        self.day = d if cal.is_trading_day(d) else cal.previous_trading_day(d)
        self._closed = self.now >= schedule(self.day).close
        self._cursor: dict[str, int] = {}        # code -> prints of today already processed
        self.streamed: set[str] = set()           # codes the WS layer wants prints for
        self._book: dict[str, list[Order]] = {}   # code -> orders that may still fill
        self.ticks_processed = 0

    # ---- accounts ----------------------------------------------------------------------------

    def add_account(self, account: Account) -> Account:
        self.accounts[(account.env, account.number)] = account
        for pos in account.positions.values():
            pos.listed_until = None
        return account

    def account(self, env: Env, cano: str, prdt: str) -> Account | None:
        return self.accounts.get((env, cano + prdt))

    # ---- clock -------------------------------------------------------------------------------

    def quote(self, code: str) -> Quote:
        return self.store.quote(code, self.now)

    def advance_to(self, moment: datetime) -> list[Event]:
        """Replay every print up to ``moment`` (inclusive), roll days, expire at the close."""
        moment = moment.astimezone(KST)
        if moment <= self.now:
            return []
        events: list[Event] = []
        cal = krx_calendar()
        while True:
            sched = schedule(self.day)
            horizon = min(moment, sched.close)
            events.extend(self._replay(horizon))
            if moment >= sched.close and not self._closed:
                events.extend(self._close_day(sched.close))
                self._closed = True
            nxt = cal.next_trading_day(self.day)
            if moment >= datetime.combine(nxt, datetime.min.time(), KST):
                self._roll_day(nxt)
                continue
            break
        self.now = moment
        if events:
            self.sink(events)
        return events

    def _active_codes(self) -> set[str]:
        codes = set(self.streamed)
        for code, orders in list(self._book.items()):
            live = [o for o in orders if o.open_qty > 0]
            if live:
                self._book[code] = live
                codes.add(code)
            else:
                del self._book[code]
        return {c for c in codes if self.store.knows(c)}

    def _replay(self, horizon: datetime) -> list[Event]:
        """Process every print of the active codes in ``(now, horizon]`` in time order."""
        events: list[Event] = []
        active = self._active_codes()
        for code in [c for c in self._cursor if c not in active]:
            del self._cursor[code]  # re-activation starts from "now", never replays old prints
        batch: list[tuple[float, str, int]] = []
        tapes: dict[str, DayTape] = {}
        for code in active:
            tape = self.store.tape(code, self.day)
            start = self._cursor.get(code)
            if start is None:
                start = tape.index_at(self.now)
            end = max(start, tape.index_at(horizon))
            self._cursor[code] = end
            if end > start:
                tapes[code] = tape
                batch.extend((float(tape.times[i]), code, i) for i in range(start, end))
        if not batch:
            return events
        batch.sort()
        runs: dict[str, list[int]] = {}

        def flush() -> None:
            for c, (a, b) in runs.items():
                events.append(TradeEvent(c, tapes[c], a, b))
            runs.clear()

        for _, code, i in batch:
            self.ticks_processed += 1
            if code in self.streamed:
                run = runs.get(code)
                if run is None:
                    runs[code] = [i, i]
                else:
                    run[1] = i
            if code in self._book:
                produced: list[Event] = []
                self._match_print(code, tapes[code], i, produced)
                if produced:
                    flush()  # the print that caused a fill goes out before its notice
                    events.extend(produced)
        flush()
        return events

    def _roll_day(self, nxt: date) -> None:
        """Start trading day ``nxt``: today's counters become yesterday's, settled cash is folded."""
        for acct in self.accounts.values():
            acct.bfdy_total = self.total_value(acct)
            acct.bfdy_buy_amt, acct.bfdy_sll_amt, acct.bfdy_tlex_amt = (
                acct.thdt_buy_amt, acct.thdt_sll_amt, acct.thdt_tlex_amt)
            acct.thdt_buy_amt = acct.thdt_sll_amt = acct.thdt_tlex_amt = 0
            due = [s for s in acct.pending if s.settles_on <= nxt]
            acct.cash += sum(s.amount for s in due)
            acct.pending = [s for s in acct.pending if s.settles_on > nxt]
            for code, pos in list(acct.positions.items()):
                pos.bfdy_buy_qty, pos.bfdy_sll_qty = pos.thdt_buy_qty, pos.thdt_sll_qty
                pos.thdt_buy_qty = pos.thdt_sll_qty = 0
                if pos.qty == 0 and (pos.listed_until is None or pos.listed_until < nxt):
                    del acct.positions[code]
        self.day = nxt
        self._closed = False
        self._cursor.clear()
        self.store.forget_before(nxt)

    def _close_day(self, at: datetime) -> list[Event]:
        events: list[Event] = []
        for acct in self.accounts.values():
            for o in acct.working_orders():
                qty = o.open_qty
                o.expired_qty += qty
                o.working = False
                if self.rules.expiry_notice:
                    events.append(self._notice(o, "kill", qty, o.price, at))
        return events

    # ---- matching ----------------------------------------------------------------------------

    def _match_print(self, code: str, tape: DayTape, i: int, events: list[Event]) -> None:
        p = int(tape.prices[i])
        at_ts = float(tape.times[i])
        auction = bool(tape.auction[i])
        is_close = auction and i == len(tape) - 1 and i > 0
        avail = int(int(tape.volumes[i]) * self.rules.participation)
        orders = [o for o in self._book.get(code, ()) if o.open_qty > 0 and o.placed_at.timestamp() < at_ts]
        if not orders:
            return
        # price-time priority: better limits first (market first), then time, then number
        def priority(o: Order) -> tuple[int, float, int]:
            lim = o.limit
            if o.ord_dvsn == "02" and is_close:
                lim = None
            rank = 0 if lim is None else (-lim if o.is_buy else lim)
            return (rank, o.placed_at.timestamp(), o.no)

        at = tape.time_of(i)
        for o in sorted(orders, key=priority):
            first = not o.arrived
            o.arrived = True
            lim = None if (o.ord_dvsn == "02" and is_close) else o.limit
            crosses = self._crosses(o.is_buy, lim, p, auction or first)
            want = o.open_qty
            if not crosses or avail <= 0:
                if first and (o.ord_dvsn in IOC_TYPES or o.ord_dvsn in FOK_TYPES):
                    self._kill(o, at, events)
                continue
            if o.ord_dvsn in FOK_TYPES and avail < want:
                self._kill(o, at, events)
                continue
            q = min(want, avail)
            fill_px = p if (lim is None or auction or first) else lim
            avail -= q
            self._fill(o, q, fill_px, at, events)
            if first and o.ord_dvsn in IOC_TYPES and o.open_qty > 0:
                self._kill(o, at, events)

    def _crosses(self, is_buy: bool, limit: int | None, p: int, aggressive: bool) -> bool:
        if limit is None:
            return True
        if aggressive or self.rules.limit_fill == "touch":
            return p <= limit if is_buy else p >= limit
        return p < limit if is_buy else p > limit

    def _kill(self, o: Order, at: datetime, events: list[Event]) -> None:
        qty = o.open_qty
        if qty <= 0:
            return
        o.killed_qty += qty
        o.working = False
        events.append(self._notice(o, "kill", qty, o.price, at))

    def _fill(self, o: Order, q: int, px: int, at: datetime, events: list[Event]) -> None:
        acct = o.account
        value = q * px
        trade_day = at.date()
        market = self.store.markets.get(o.code, Market.KOSPI)
        commission, tax = self.costs.costs(value, not o.is_buy, trade_day, market)
        o.filled_qty += q
        o.filled_value += value
        o.fees += commission + tax
        pos = acct.positions.setdefault(o.code, Position(o.code))
        settles = settlement_date(trade_day)
        if o.is_buy:
            pos.qty += q
            pos.cost += value
            pos.thdt_buy_qty += q
            acct.thdt_buy_amt += value
            acct.pending.append(Settlement(trade_day, settles, -(value + commission)))
        else:
            pos.cost = pos.cost * (pos.qty - q) // pos.qty if pos.qty else 0
            pos.qty -= q
            pos.thdt_sll_qty += q
            acct.thdt_sll_amt += value
            acct.pending.append(Settlement(trade_day, settles, value - commission - tax))
            if pos.qty == 0:
                pos.listed_until = settles
        acct.thdt_tlex_amt += commission + tax
        if o.open_qty == 0:
            o.working = False
        events.append(self._notice(o, "fill", q, px, at))

    def _notice(self, o: Order, kind: NoticeKind, qty: int, price: int, at: datetime, rctf: str | None = None
                ) -> NoticeEvent:
        self._notice_seq += 1
        if rctf is None:
            rctf = {"revise": "1", "cancel": "2"}.get(o.kind, "0") if kind in ("ack", "confirm") else "0"
        return NoticeEvent(o.account, o, kind, qty, price, at, rctf, self._notice_seq)

    # ---- order entry -------------------------------------------------------------------------

    def _allocate_no(self, env: Env) -> int:
        n = self._next_no[env]
        self._next_no[env] = n + 1
        return n

    def _check_window(self, env: Env) -> None:
        window = "extended" if self.rules.order_window.get(env) == "order_entry" else "regular"
        refusal = window_refusal(self.now, window)
        if refusal is not None:
            raise OrderError(refusal.key)

    def _check_type(self, env: Env, ord_dvsn: str, exchange: str) -> None:
        if ord_dvsn not in ORD_DVSN:
            raise OrderError("input:ORD_DVSN")
        if env is Env.PAPER and ord_dvsn not in PAPER_ORD_DVSN:
            raise OrderError("paper_unsupported")
        ex = (exchange or "KRX").upper()
        if ex not in ("KRX", "NXT", "SOR"):
            raise OrderError("input:EXCG_ID_DVSN_CD")
        if env is Env.PAPER and ex not in PAPER_EXCHANGES:
            raise OrderError("paper_unsupported")
        if ex == "NXT" or ord_dvsn not in SUPPORTED_TYPES:
            raise OrderError("ord_dvsn_unsupported")

    def _effective_limit(self, code: str, side: str, ord_dvsn: str, price: int, q: Quote) -> int | None:
        """The limit an order works at; validates tick grid and band for priced types."""
        if ord_dvsn in MARKET_TYPES:
            return None
        if ord_dvsn in BEST_TYPES or ord_dvsn == "04":
            market = self.store.markets[code]
            asks, bids = book_levels(q.last, True, q.day, market, q.band.lower, q.band.upper)
            best_opp = asks[0] if side == BUY else bids[0]
            best_same = bids[0] if side == BUY else asks[0]
            lim = best_opp if ord_dvsn in BEST_TYPES else best_same
            return lim or q.last
        market = self.store.markets[code]
        refusal = tick_refusal(price, q.day, market) or band_refusal(price, q.band, q.day)
        if refusal is not None:
            raise OrderError(refusal.key)
        return price

    def _buying_power(self, acct: Account) -> int:
        reserved = sum(self._reservation(o, o.open_qty) for o in acct.working_orders() if o.is_buy)
        return acct.cash_all() - reserved

    def _reservation(self, o: Order, qty: int) -> int:
        value = qty * o.reserve_px
        return value + self.costs.commission(value)

    @staticmethod
    def held_qty(acct: Account, code: str) -> int:
        pos = acct.positions.get(code)
        return pos.qty if pos else 0

    def sellable_qty(self, acct: Account, code: str) -> int:
        return self.held_qty(acct, code) - sum(o.open_qty for o in acct.working_orders(code) if not o.is_buy)

    def buying_power(self, acct: Account) -> int:
        return self._buying_power(acct)

    def max_buy_qty(self, acct: Account, px: int) -> tuple[int, int]:
        """(amount, qty) buyable at ``px`` per share, commission included."""
        bp = max(self._buying_power(acct), 0)
        if px <= 0:
            return bp, 0
        q = bp // px
        while q > 0 and q * px + self.costs.commission(q * px) > bp:
            q -= 1
        return q * px, q

    def place_order(self, acct: Account, code: str, side: str, ord_dvsn: str, qty: int, price: int, *,
                    exchange: str = "KRX", source: str = "api", reject: bool = False) -> tuple[Order, list[Event]]:
        """Validate and book a new order; returns it with its acknowledgement notice event(s).

        ``reject=True`` (fault) books the order, then has the "exchange" refuse it: the REST call
        succeeds but the notice stream carries a rejection (``RFUS_YN=1``) instead of an ack.
        """
        env = acct.env
        self._check_type(env, ord_dvsn, exchange)
        if not self.store.knows(code) or not self.store.listed_on(code, self.now.date()):
            raise OrderError("stock_not_found")
        if qty <= 0:
            raise OrderError("bad_quantity")
        self._check_window(env)
        q = self.quote(code)
        limit = self._effective_limit(code, side, ord_dvsn, price, q)
        if side == BUY:
            reserve_px = int(reserve_price(limit, q.band))
            refusal = buying_power_refusal(qty, reserve_px, self._buying_power(acct), self.costs.commission)
        else:
            reserve_px = 0
            held = self.held_qty(acct, code)
            refusal = sellable_refusal(qty, held, held - self.sellable_qty(acct, code))
        if refusal is not None:
            raise OrderError(refusal.key)
        o = Order(self._allocate_no(env), env, acct, code, side, ord_dvsn, qty,
                  0 if ORD_DVSN[ord_dvsn].market_price else (limit or 0), self.now,
                  source=source, exchange="KRX", limit=limit, reserve_px=reserve_px,
                  name=self.store.names.get(code, code))
        acct.orders[o.no] = o
        if reject:
            o.rejected_qty = qty
            o.working = False
            return o, [self._notice(o, "reject", qty, o.price, self.now)]
        self._book.setdefault(code, []).append(o)
        return o, [self._notice(o, "ack", qty, o.price, self.now)]

    def revise_cancel(self, acct: Account, orig_no: int, cancel: bool, ord_dvsn: str, qty: int, price: int,
                      all_qty: bool, *, exchange: str = "KRX") -> tuple[Order, list[Event]]:
        """``order-rvsecncl``: a NEW order number for the revise/cancel row; remainder only."""
        env = acct.env
        orig = acct.orders.get(orig_no)
        if orig is None or orig.kind == "cancel" or orig.open_qty <= 0:
            raise OrderError("nothing_to_revise")
        if not cancel:
            self._check_type(env, ord_dvsn, exchange)
        elif env is Env.PAPER and (exchange or "KRX").upper() not in PAPER_EXCHANGES:
            raise OrderError("paper_unsupported")
        self._check_window(env)
        q_all = orig.open_qty
        q = q_all if all_qty or qty == 0 else qty
        if q <= 0:
            raise OrderError("bad_quantity")
        if q > q_all:
            raise OrderError("rvsecncl_qty_exceeded")
        if cancel:
            orig.cancelled_qty += q
            if orig.open_qty == 0:
                orig.working = False
            row = Order(self._allocate_no(env), env, acct, orig.code, orig.side, orig.ord_dvsn, q, orig.price,
                        self.now, kind="cancel", orig_no=orig.no, source="api", limit=orig.limit,
                        name=orig.name, working=False)
            row.cancelled_qty = q
            acct.orders[row.no] = row
            events: list[Event] = [self._notice(row, "ack", q, orig.price, self.now)]
            if self.rules.revise_confirm_notice:
                events.append(self._notice(row, "confirm", q, orig.price, self.now))
            return row, events
        quote = self.quote(orig.code)
        limit = self._effective_limit(orig.code, orig.side, ord_dvsn, price, quote)
        reserve_px = 0
        if orig.is_buy:
            reserve_px = int(reserve_price(limit, quote.band))
            released = self._reservation(orig, q)
            refusal = buying_power_refusal(q, reserve_px, self._buying_power(acct) + released, self.costs.commission)
            if refusal is not None:
                raise OrderError(refusal.key)
        orig.cancelled_qty += q
        if orig.open_qty == 0:
            orig.working = False
        row = Order(self._allocate_no(env), env, acct, orig.code, orig.side, ord_dvsn, q,
                    0 if ORD_DVSN[ord_dvsn].market_price else (limit or 0), self.now,
                    kind="revise", orig_no=orig.no, limit=limit, reserve_px=reserve_px, name=orig.name)
        acct.orders[row.no] = row
        self._book.setdefault(row.code, []).append(row)
        events = [self._notice(row, "ack", q, row.price, self.now)]
        if self.rules.revise_confirm_notice:
            events.append(self._notice(row, "confirm", q, row.price, self.now))
        return row, events

    # ---- valuation ---------------------------------------------------------------------------

    def total_value(self, acct: Account) -> int:
        return self.securities_value(acct) + acct.cash_all()

    def securities_value(self, acct: Account) -> int:
        return sum(pos.qty * self.quote(code).last for code, pos in acct.positions.items()
                   if pos.qty and self.store.knows(code))

    def orders_between(self, acct: Account, start: date, end: date) -> list[Order]:
        return [o for o in sorted(acct.orders.values(), key=lambda o: o.no) if start <= o.trade_date <= end]

    def emit(self, events: Iterable[Event]) -> None:
        """Hand events produced outside ``advance_to`` (order entry) to the sink."""
        events = list(events)
        if events:
            self.sink(events)



__all__ = ["Account", "Engine", "Event", "MatchingRules", "NoticeEvent", "Order", "OrderError", "Position",
           "Settlement", "TradeEvent"]

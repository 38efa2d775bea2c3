"""Market data for the emulator: bars in, a deterministic intrabar tick tape out.

The emulator replays history (demo market, CSV folder or bar cache; daily or intraday bars) as a
stream of trades. No randomness is involved: the same bars always give the same ticks, so a test
that steps the clock to 10:15 always sees the same prints and fills.

Tick path rule (documented here because fills depend on it)
-------------------------------------------------------------
For each bar with open O, high H, low L, close C (first moved onto the KRX tick grid with
``market.ticks.round_to_tick(..., "nearest")``, then H raised / L lowered to cover O and C, and
everything clamped into the day's ±30 % band from ``market.limits.price_band``):

1. anchors: a bar that closes at or above its open goes **O → L → H → C** (it dips first, then
   rallies); a bar that closes below its open goes **O → H → L → C**;
2. each leg between anchors walks the tick grid one tick at a time (``tick_size`` of the price
   level, so legs cross band bounds like 1,999 → 2,000 → 2,005 correctly); every anchor is printed,
   so the bar's exact high and low trade;
3. if the walk has fewer points than the bar needs for its time span (one print per
   ``tick_interval_s``), each point is repeated in place (the price "dwells"); if it has more than
   ``max_ticks_per_bar``, points are thinned evenly but anchors are always kept;
4. prints are spaced evenly in time across the bar.

Daily bars: the first print is the opening call auction (시가 단일가) at the session open (09:00)
at O; the walk fills the continuous session up to the closing auction (15:20); the last print is
the closing call auction (종가 단일가) at the close (15:30) at C. Intraday bars (index = bar start,
naive KST): each bar's walk fills ``[start, start + bar length)``; the first print at the open is
the opening auction; bars starting at or after 15:20 collapse into one closing-auction print at
15:30 at the last such bar's close.

Volume: the bar's volume is split evenly over its prints (integer shares, the remainder going to
the earliest prints). Prints with zero volume can still move the price but cannot fill orders.

Base price (기준가) of a day = the previous trading day's close in the data (or the day's open when
there is none); the price band and the ``prdy_*`` fields derive from it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Mapping

import numpy as np
import pandas as pd

from market.calendar import KST, krx_calendar
from market.limits import PriceBand, price_band
from market.sessions import DaySchedule, schedule
from market.ticks import Market, round_to_tick, tick_size

DEFAULT_TICK_INTERVAL_S = 20.0
DEFAULT_MAX_TICKS_PER_BAR = 4000


def grid_walk(a: int, b: int, on: date, market: Market) -> list[int]:
    """Grid prices from ``a`` (exclusive) to ``b`` (inclusive), one tick at a time."""
    out: list[int] = []
    p = a
    if b > a:
        while p < b:
            p = min(p + tick_size(p, on, market), b)
            out.append(p)
    elif b < a:
        while p > b:
            p = max(p - tick_size(max(p - 1, 1), on, market), b)
            out.append(p)
    return out


def bar_anchors(o: int, h: int, l: int, c: int) -> list[int]:
    """O→L→H→C for a bar closing at/above its open, else O→H→L→C (rule 1 above)."""
    return [o, l, h, c] if c >= o else [o, h, l, c]


def bar_path(o: float, h: float, l: float, c: float, on: date, market: Market, *, band: PriceBand | None = None,
             min_points: int = 1, max_points: int = DEFAULT_MAX_TICKS_PER_BAR) -> list[int]:
    """The bar's price path on the tick grid (rules 1–3 above); always starts at O and ends at C."""
    def grid(x: float) -> int:
        p = round_to_tick(max(float(x), 1.0), on, market, "nearest")
        if band is not None:
            p = min(max(p, band.lower), band.upper)
        return p

    go, gh, gl, gc = grid(o), grid(h), grid(l), grid(c)
    gh = max(gh, go, gc)
    gl = min(gl, go, gc)
    path = [go]
    anchors = [0]
    for target in bar_anchors(go, gh, gl, gc)[1:]:
        path.extend(grid_walk(path[-1], target, on, market))
        anchors.append(len(path) - 1)
    n = len(path)
    if n < min_points:
        return [path[i * n // min_points] for i in range(min_points)]
    if n > max_points > 1:
        keep = {round(i * (n - 1) / (max_points - 1)) for i in range(max_points)} | set(anchors)
        return [path[i] for i in sorted(keep)]
    return path


def split_volume(total: int, n: int) -> list[int]:
    """``total`` shares over ``n`` prints, remainder to the earliest (rule "Volume" above)."""
    if n <= 0:
        return []
    base, rem = divmod(max(int(total), 0), n)
    return [base + (1 if i < rem else 0) for i in range(n)]


@dataclass
class DayTape:
    """All prints of one code on one trading day, with prefix aggregates for O(log n) snapshots."""

    code: str
    day: date
    market: Market
    base: int
    band: PriceBand
    prev_volume: int
    times: np.ndarray          # float epoch seconds, ascending
    prices: np.ndarray         # int64
    volumes: np.ndarray        # int64
    auction: np.ndarray        # bool: single-price call auction print
    cum_vol: np.ndarray = field(init=False)
    cum_value: np.ndarray = field(init=False)
    run_high: np.ndarray = field(init=False)
    run_low: np.ndarray = field(init=False)
    high_idx: np.ndarray = field(init=False)
    low_idx: np.ndarray = field(init=False)
    buy_init: np.ndarray = field(init=False)   # True: print classified buyer-initiated (uptick rule)
    cum_buy_cnt: np.ndarray = field(init=False)
    cum_sell_cnt: np.ndarray = field(init=False)
    cum_buy_vol: np.ndarray = field(init=False)
    cum_sell_vol: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.prices)
        self.cum_vol = np.cumsum(self.volumes)
        self.cum_value = np.cumsum(self.prices * self.volumes)
        self.run_high = np.maximum.accumulate(self.prices) if n else self.prices.copy()
        self.run_low = np.minimum.accumulate(self.prices) if n else self.prices.copy()
        idx = np.arange(n, dtype=np.int64)
        if n:
            # index of the print that set the running high/low so far
            new_high = np.concatenate(([True], self.prices[1:] > self.run_high[:-1]))
            new_low = np.concatenate(([True], self.prices[1:] < self.run_low[:-1]))
            hi = np.maximum.accumulate(np.where(new_high, idx, 0))
            lo = np.maximum.accumulate(np.where(new_low, idx, 0))
            # tick rule: an uptick is buyer-initiated, a downtick seller-initiated, an unchanged
            # print keeps the previous direction; the first print compares with the base price
            step = np.concatenate(([1 if self.prices[0] >= self.base else -1], np.sign(np.diff(self.prices))))
            last_move = np.maximum.accumulate(np.where(step != 0, idx, 0))
            buy = step[last_move] > 0
        else:
            hi = lo = idx
            buy = np.zeros(0, dtype=bool)
        self.high_idx, self.low_idx, self.buy_init = hi, lo, buy
        self.cum_buy_cnt = np.cumsum(buy.astype(np.int64))
        self.cum_sell_cnt = np.cumsum((~buy).astype(np.int64))
        self.cum_buy_vol = np.cumsum(np.where(buy, self.volumes, 0))
        self.cum_sell_vol = np.cumsum(np.where(buy, 0, self.volumes))

    def __len__(self) -> int:
        return len(self.prices)

    def index_at(self, moment: datetime) -> int:
        """Number of prints that happened at or before ``moment``."""
        return int(np.searchsorted(self.times, moment.timestamp(), side="right"))

    def time_of(self, i: int) -> datetime:
        return datetime.fromtimestamp(float(self.times[i]), KST)


@dataclass(frozen=True)
class Quote:
    """The state of one code at a moment: what ``inquire-price`` and the WS frames report."""

    code: str
    day: date
    base: int
    band: PriceBand
    last: int
    open: int
    high: int
    low: int
    volume: int
    value: int
    prints: int
    prev_volume: int
    tick: int
    listed: bool = True


def _daily_of(df: pd.DataFrame) -> pd.DataFrame:
    """Daily OHLCV from bars of any timeframe (identity for daily bars)."""
    days = df.index.normalize()
    if len(days) == len(set(days)):
        out = df[["open", "high", "low", "close", "volume"]].copy()
        out.index = days
        return out
    g = df.groupby(days)
    return pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                         "close": g["close"].last(), "volume": g["volume"].sum()})


class BarStore:
    """Bars of every code plus the tapes built from them (lazily, one code-day at a time).

    ``bars``: ``{code: DataFrame}`` indexed by naive KST datetimes with int columns
    open/high/low/close/volume — the shape ``feeds.history.load_market_data`` returns, or small
    hand-made frames in tests. Intraday frames are recognised by more than one row per date.
    """

    def __init__(self, bars: Mapping[str, pd.DataFrame], markets: Mapping[str, Market] | None = None,
                 names: Mapping[str, str] | None = None, *, tick_interval_s: float = DEFAULT_TICK_INTERVAL_S,
                 max_ticks_per_bar: int = DEFAULT_MAX_TICKS_PER_BAR) -> None:
        self.tick_interval_s = float(tick_interval_s)
        self.max_ticks_per_bar = int(max_ticks_per_bar)
        self.bars: dict[str, pd.DataFrame] = {}
        self.daily: dict[str, pd.DataFrame] = {}
        self._daily_days: dict[str, list[date]] = {}
        self._intraday: dict[str, bool] = {}
        for code, df in bars.items():
            df = df.sort_index()
            if df.index.tz is not None:
                df = df.tz_convert(KST).tz_localize(None)
            self.bars[code] = df
            daily = _daily_of(df)
            self.daily[code] = daily
            self._daily_days[code] = [ts.date() for ts in daily.index]
            self._intraday[code] = len(daily) != len(df)
        self.markets: dict[str, Market] = {c: Market((markets or {}).get(c, Market.KOSPI)) for c in self.bars}
        self.names: dict[str, str] = {c: (names or {}).get(c, c) for c in self.bars}
        self._tapes: dict[tuple[str, date], DayTape] = {}

    @property
    def codes(self) -> list[str]:
        return sorted(self.bars)

    def knows(self, code: str) -> bool:
        return code in self.bars

    def is_intraday(self, code: str) -> bool:
        return self._intraday.get(code, False)

    def first_day(self, code: str) -> date | None:
        days = self._daily_days.get(code)
        return days[0] if days else None

    def last_day(self, code: str) -> date | None:
        days = self._daily_days.get(code)
        return days[-1] if days else None

    def daily_row(self, code: str, d: date) -> pd.Series | None:
        days = self._daily_days[code]
        i = bisect.bisect_left(days, d)
        if i < len(days) and days[i] == d:
            return self.daily[code].iloc[i]
        return None

    def previous_close(self, code: str, d: date) -> tuple[int, int] | None:
        """(close, volume) of the last data day strictly before ``d``."""
        days = self._daily_days[code]
        i = bisect.bisect_left(days, d) - 1
        if i < 0:
            return None
        row = self.daily[code].iloc[i]
        return int(row["close"]), int(row["volume"])

    def daily_until(self, code: str, d: date) -> pd.DataFrame:
        """Complete daily bars strictly before ``d`` (today's bar is built from the tape, no lookahead)."""
        days = self._daily_days[code]
        return self.daily[code].iloc[:bisect.bisect_left(days, d)]

    def listed_on(self, code: str, d: date) -> bool:
        first = self.first_day(code)
        return first is not None and first <= d

    def base_price(self, code: str, d: date) -> int | None:
        prev = self.previous_close(code, d)
        if prev is not None:
            return prev[0]
        row = self.daily_row(code, d)
        if row is None:
            return None
        return round_to_tick(max(float(row["open"]), 1.0), d, self.markets[code], "nearest")

    def tape(self, code: str, d: date) -> DayTape:
        """The code's prints on trading day ``d`` (empty when the data has no bar that day)."""
        key = (code, d)
        tape = self._tapes.get(key)
        if tape is None:
            tape = self._build(code, d)
            if len(self._tapes) > 4096:
                self._tapes.clear()
            self._tapes[key] = tape
        return tape

    def forget_before(self, d: date) -> None:
        """Drop cached tapes of earlier days (the engine calls this at each day roll)."""
        for key in [k for k in self._tapes if k[1] < d]:
            del self._tapes[key]

    def _build(self, code: str, d: date) -> DayTape:
        market = self.markets[code]
        base = self.base_price(code, d) or 1
        band = price_band(base, d, market)
        prev = self.previous_close(code, d)
        prev_volume = prev[1] if prev else 0
        sched = schedule(d)
        times: list[float] = []
        prices: list[int] = []
        vols: list[int] = []
        auction: list[bool] = []
        if self.daily_row(code, d) is not None:
            if self.is_intraday(code):
                self._intraday_prints(code, d, sched, band, market, times, prices, vols, auction)
            else:
                self._daily_prints(code, d, sched, band, market, times, prices, vols, auction)
        return DayTape(code, d, market, base, band, prev_volume, np.array(times, dtype=float),
                       np.array(prices, dtype=np.int64), np.array(vols, dtype=np.int64), np.array(auction, dtype=bool))

    def _daily_prints(self, code: str, d: date, sched: DaySchedule, band: PriceBand, market: Market,
                      times: list[float], prices: list[int], vols: list[int], auction: list[bool]) -> None:
        row = self.daily_row(code, d)
        assert row is not None
        span = (sched.closing_auction - sched.open).total_seconds()
        need = max(2, int(span // self.tick_interval_s))
        path = bar_path(row["open"], row["high"], row["low"], row["close"], d, market, band=band,
                        min_points=need, max_points=max(need, self.max_ticks_per_bar))
        m = len(path)
        volumes = split_volume(int(row["volume"]), m + 1)
        t0 = sched.open.timestamp()
        for j, p in enumerate(path):
            times.append(t0 + j * span / m)
            prices.append(p)
            vols.append(volumes[j])
            auction.append(j == 0)
        times.append(sched.close.timestamp())
        prices.append(path[-1])
        vols.append(volumes[-1])
        auction.append(True)

    def _intraday_prints(self, code: str, d: date, sched: DaySchedule, band: PriceBand, market: Market,
                         times: list[float], prices: list[int], vols: list[int], auction: list[bool]) -> None:
        df = self.bars[code]
        start = pd.Timestamp(datetime.combine(d, datetime.min.time()))
        day = df.loc[(df.index >= start) & (df.index < start + pd.Timedelta(days=1))]
        if day.empty:
            return
        steps = np.diff(df.index.asi8) if len(df) > 1 else np.array([60_000_000_000])
        positive = steps[steps > 0]
        bar_len = timedelta(microseconds=int(positive.min() // 1000)) if len(positive) else timedelta(minutes=1)
        bar_len = min(bar_len, timedelta(hours=1))
        close_price: int | None = None
        close_volume = 0
        open_naive = sched.open.replace(tzinfo=None)
        auction_naive = sched.closing_auction.replace(tzinfo=None)
        first = True
        for ts, row in day.iterrows():
            start_dt = ts.to_pydatetime()
            if start_dt >= auction_naive:
                close_price = bar_path(row["open"], row["high"], row["low"], row["close"], d, market, band=band)[-1]
                close_volume += int(row["volume"])
                continue
            if start_dt + bar_len <= open_naive:
                continue  # pre-open bars are not replayed (orders only fill from the open)
            begin = max(start_dt, open_naive)
            end = min(start_dt + bar_len, auction_naive)
            span = (end - begin).total_seconds()
            need = max(1, int(span // self.tick_interval_s))
            path = bar_path(row["open"], row["high"], row["low"], row["close"], d, market, band=band,
                            min_points=need, max_points=max(need, self.max_ticks_per_bar))
            volumes = split_volume(int(row["volume"]), len(path))
            t0 = begin.replace(tzinfo=KST).timestamp()
            for j, p in enumerate(path):
                times.append(t0 + j * span / len(path))
                prices.append(p)
                vols.append(volumes[j])
                auction.append(first and j == 0 and begin == open_naive)
            first = False
        if close_price is not None:
            times.append(sched.close.timestamp())
            prices.append(close_price)
            vols.append(close_volume)
            auction.append(True)

    def quote(self, code: str, moment: datetime) -> Quote:
        """Snapshot of ``code`` at ``moment`` (a trading day's state; the last close on closed days)."""
        d = moment.astimezone(KST).date()
        market = self.markets[code]
        if not self.listed_on(code, d):
            band = PriceBand(0, 0, 0)
            return Quote(code, d, 0, band, 0, 0, 0, 0, 0, 0, 0, 0, 1, listed=False)
        cal = krx_calendar()
        if not cal.is_trading_day(d):
            d = cal.previous_trading_day(d)
            moment = datetime.combine(d, datetime.max.time(), KST)
        tape = self.tape(code, d)
        n = tape.index_at(moment)
        if n == 0:
            last = tape.base
            return Quote(code, d, tape.base, tape.band, last, 0, 0, 0, 0, 0, 0, tape.prev_volume,
                         tick_size(last, d, market))
        i = n - 1
        last = int(tape.prices[i])
        return Quote(code, d, tape.base, tape.band, last, int(tape.prices[0]), int(tape.run_high[i]),
                     int(tape.run_low[i]), int(tape.cum_vol[i]), int(tape.cum_value[i]), n, tape.prev_volume,
                     tick_size(last, d, market))


@lru_cache(maxsize=4096)
def book_levels(last: int, buy_initiated: bool, on: date, market: Market, lower: int, upper: int
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Ten ask and ten bid prices around the last print (0 beyond the band).

    The last print sits on the side that was hit: after a buyer-initiated print it is the best
    ask (ask1 = last, bid1 = one tick below); after a seller-initiated print it is the best bid.
    """
    from market.ticks import shift_ticks

    if buy_initiated:
        ask1, bid1 = last, shift_ticks(last, -1, on, market)
    else:
        ask1, bid1 = shift_ticks(last, 1, on, market), last
    asks, bids = [], []
    a, b = ask1, bid1
    for _ in range(10):
        asks.append(a if lower <= a <= upper else 0)
        bids.append(b if lower <= b <= upper and b > 0 else 0)
        a = shift_ticks(a, 1, on, market)
        b = shift_ticks(b, -1, on, market) if b > 1 else 0
    return tuple(asks), tuple(bids)


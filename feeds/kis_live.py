"""``KISData``: a live backtrader data feed built from KIS real-time trades (``H0STCNT0``).

Shaped like backtrader's ``IBData``/``OandaData``: the store's WebSocket thread puts ticks on a
queue, ``_load`` (cerebro's thread) turns them into bars and returns ``None`` while nothing is
ready, so cerebro's live loop keeps the broker turning.

Latency: cerebro asks every feed in turn, each with a ``qcheck`` wait. If each feed waited on its
own queue, a tick for the 39th code would sit until the first 38 waits ran out. Instead the first
feed of a loop turn waits on the store's one input signal (any tick, any broker event) and the
others only look (``KISStore.wait_input``): the loop wakes at once for any input and never spins.
Finished bars are kept as plain rows; a DataFrame is built only when indicators need one.

* **History first**: ``history`` (a DataFrame, e.g. from the bar cache) or KIS's chart TRs
  (``inquire-daily-itemchartprice`` for daily bars, ``inquire-time-itemchartprice`` for today's
  minutes) are delivered first, with status DELAYED; then LIVE.
* **Bars**: ``bar="1min"`` (default) … ``"60min"`` bucket ticks by their exchange time (bars are
  labelled by their start, like the CSV data); ``bar="daily"`` makes one bar per session. A bar
  closes when a tick of a later bucket arrives or when the exchange clock (``store.now``) passes
  its end, so a quiet code still gets its bar. With ``repair_daily=True`` a daily bar is rebuilt
  from ``inquire-price`` at the close (the official open/high/low/close/volume), so ticks missed
  during a disconnect do not distort it.
* **Indicators**: the same indicator lines as in a backtest (``sma_20``, ``rsi_14``...), computed
  with ``feeds.indicators`` on a trailing window each time a bar closes, so a strategy runs
  unchanged.
* **Status**: DELAYED during history, LIVE on live bars, CONNBROKEN while the WebSocket is down
  (then LIVE again on reconnect), DISCONNECTED when the feed ends (``end``).
"""

from __future__ import annotations

import keyword
import logging
import math
import queue
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any, Iterable

import backtrader as bt
import pandas as pd

from brokers.kis.store import KISStore
from feeds.indicators import add_indicators, indicator_columns, parse_indicator_specs
from market.calendar import KST, krx_calendar
from market.sessions import schedule

log = logging.getLogger("krx.feeds.kis_live")

OHLCV = ("open", "high", "low", "close", "volume")


def bar_minutes(bar: str) -> int | None:
    """Minutes per bar for ``"5min"``-style names; ``None`` for ``"daily"``."""
    if bar == "daily":
        return None
    if bar.endswith("min") and bar[:-3].isdigit() and 1 <= int(bar[:-3]) <= 60:
        return int(bar[:-3])
    raise ValueError(f"bar must be 'daily' or '<N>min' with N in 1..60, got {bar!r}")


class BarBuilder:
    """Ticks in, finished bars out; pure (no queues, no clock of its own)."""

    def __init__(self, minutes: int | None, daily_grace: timedelta = timedelta(seconds=60),
                 close_grace: timedelta = timedelta(0)) -> None:
        self.minutes = minutes
        self.daily_grace = daily_grace
        # an intraday bar the clock closes can wait this long past its end: a tick stamped 09:07:59 may
        # still be on its way at 09:08:00 (KIS stamps whole seconds), and once the bar is closed it is
        # dropped as late. A tick of the next bar closes it at once (one connection keeps order). The
        # default is no grace: a grace splits a minute's bars into two deliveries (bench/live.py).
        self.close_grace = close_grace
        self.current: dict[str, Any] | None = None
        self.last_closed: datetime | None = None   # ticks for this bucket or earlier are late: ignored

    def bucket(self, when: datetime) -> datetime:
        local = when.astimezone(KST).replace(tzinfo=None)
        if self.minutes is None:
            return datetime(local.year, local.month, local.day)
        minute = (local.hour * 60 + local.minute) // self.minutes * self.minutes
        return datetime(local.year, local.month, local.day, minute // 60, minute % 60)

    def bar_end(self, start: datetime) -> datetime:
        """Aware end of a bar (daily: the session close)."""
        if self.minutes is None:
            # the closing auction prints at 15:30 plus a random end of up to 30 s (RULES.md §3)
            return schedule(start.date()).close + self.daily_grace if krx_calendar().is_trading_day(start.date()) \
                else datetime.combine(start.date(), datetime.max.time(), KST)
        return (start + timedelta(minutes=self.minutes)).replace(tzinfo=KST)

    def add(self, when: datetime, price: float, volume: int) -> dict[str, Any] | None:
        """Add a tick; returns the bar it closed, if any."""
        b = self.bucket(when)
        if self.last_closed is not None and b <= self.last_closed:
            return None  # a late tick of a bar already closed (e.g. after a reconnect)
        done = None
        if self.current is not None and b > self.current["datetime"]:
            done, self.current = self.current, None
            self.last_closed = done["datetime"]
        if self.current is None:
            self.current = {"datetime": b, "open": price, "high": price, "low": price, "close": price,
                            "volume": int(volume)}
        elif b == self.current["datetime"]:
            c = self.current
            c["high"], c["low"], c["close"] = max(c["high"], price), min(c["low"], price), price
            c["volume"] += int(volume)
        return done

    def due(self, start: datetime) -> datetime:
        """When the clock closes the bar that began at ``start`` (its end, plus the grace intraday)."""
        end = self.bar_end(start)
        return end if self.minutes is None else end + self.close_grace

    def close_if_due(self, now: datetime) -> dict[str, Any] | None:
        if self.current is not None and now >= self.due(self.current["datetime"]):
            done, self.current = self.current, None
            self.last_closed = done["datetime"]
            return done
        return None


class KISData(bt.feed.DataBase):
    """Live bars for one code. Create through ``KISStore.getdata(code, ...)`` or ``live_data_class``."""

    params = (
        ("store", None),
        ("bar", "1min"),
        ("indicators", ()),          # indicator specs, as in the backtest
        ("history", None),           # DataFrame of past bars (index naive KST datetime, OHLCV)
        ("backfill_days", 400),      # calendar days of daily history from the chart TR (bar="daily")
        ("backfill", True),
        ("repair_daily", True),
        ("qcheck", 0.5),             # seconds _load waits for a tick before giving cerebro a turn
        ("close_grace", 0.0),        # exchange seconds a bar nobody traded into waits past its end
        ("end", None),               # aware datetime: the feed ends once the exchange clock passes it
        # bars kept for live indicators: SMAs are exact once window >= period, and the recursive ones
        # (EMA, Wilder's RSI/ATR) forget their start as (1 - 1/period)^window: ~1e-10 for period 14
        ("window", 300),
    )

    _ST_HISTORY, _ST_LIVE, _ST_OVER = range(3)

    def islive(self) -> bool:
        return True

    def haslivedata(self) -> bool:
        """Input is waiting for this feed or for the broker (cerebro asks every feed, so together they
        cover all input): cerebro then does not block this turn (``do_qcheck``)."""
        return bool(self._pending) or (self._ticks is not None and not self._ticks.empty()) \
            or not self.store.inbox.empty()

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.store = self.p.store
        self.code = self.p.dataname
        self._minutes = bar_minutes(self.p.bar)
        self._builder = BarBuilder(self._minutes, close_grace=timedelta(seconds=float(self.p.close_grace)))
        self._specs = [s.spec for s in parse_indicator_specs(self.p.indicators)]
        self._columns = indicator_columns(self._specs)
        self._pending: deque[dict[str, Any]] = deque()
        self._rows: deque[tuple[datetime, float, float, float, float, float]] = deque()
        self._ticks: "queue.SimpleQueue[Any] | None" = None
        self._state = self._ST_HISTORY
        self._last_delivered: datetime | None = None
        self.bars_live = 0
        self.bar_closed_at: float | None = None   # time.perf_counter() when the latest live bar completed
        self.input_at: float | None = None        # ... and when its input came: the tick that completed it
                                                  # (ws thread) or the moment the clock made it due
        self._last_arrival: float | None = None
        self._due_at: float | None = None         # ... or when the bar the clock closed fell due
        self.closed_by_clock = False              # the latest live bar: closed by the clock, not by a tick
        if self._minutes is None:
            self._timeframe, self._compression = bt.TimeFrame.Days, 1
        else:
            self._timeframe, self._compression = bt.TimeFrame.Minutes, self._minutes

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        super().start()
        self._rows = deque(maxlen=self.p.window)
        self._ticks = self.store.register_data(self)
        self.store.start()
        history = self._history()
        if len(history):
            frame = history[list(OHLCV)].astype("float64")
            for ts, row in frame.iterrows():
                self._rows.append((ts.to_pydatetime(), *(float(row[k]) for k in OHLCV)))
            enriched = add_indicators(frame, self._specs) if self._specs else frame
            for ts, row in enriched.iterrows():
                self._pending.append({"datetime": ts.to_pydatetime(), **row.to_dict()})
            self.put_notification(self.DELAYED)
        else:
            self._state = self._ST_LIVE
            self.put_notification(self.LIVE)

    def _history(self) -> pd.DataFrame:
        if self.p.history is not None:
            return self.p.history
        if not self.p.backfill:
            return pd.DataFrame(columns=list(OHLCV))
        today = self.store.today()
        try:
            if self._minutes is None:
                frame = self.store.client.daily_bars(self.code, today - timedelta(days=self.p.backfill_days),
                                                     today - timedelta(days=1))
            else:
                frame = self.store.client.minute_bars(self.code)
                if self._minutes > 1 and len(frame):
                    frame = frame.resample(f"{self._minutes}min", label="left", closed="left").agg(
                        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
        except Exception as exc:  # noqa: BLE001 - no history is not fatal for a live feed
            log.warning("%s: history backfill failed: %s", self.code, exc)
            return pd.DataFrame(columns=list(OHLCV))
        frame.index = pd.DatetimeIndex(frame.index)
        if self._minutes is not None and len(frame):
            # the chart includes the minute in progress: that bar is not finished, the live ticks finish it
            current = self._builder.bucket(self.store.now())
            frame = frame[frame.index < pd.Timestamp(current)]
        return frame

    # ------------------------------------------------------------------ bars
    def _load(self):
        if self._pending:
            return self._deliver(self._pending.popleft())
        if self._state == self._ST_HISTORY:
            self._state = self._ST_LIVE
            self.put_notification(self.LIVE)
        if self._state == self._ST_OVER:
            return False
        now = self.store.now()
        bar = self._drain() or self._due(now)
        if bar is None and self.p.end is not None and now >= self.p.end:
            self._state = self._ST_OVER
            self.put_notification(self.DISCONNECTED)
            return False
        if bar is None:
            # cerebro shares one qcheck wait among the live feeds of a loop turn (Data.do_qcheck sets _qcheck)
            self.store.wait_input(max(0.0, float(getattr(self, "_qcheck", self.p.qcheck))))
            bar = self._drain() or self._due(self.store.now())
        if bar is None:
            return None
        if self._last_delivered is not None and bar["datetime"] <= self._last_delivered:
            return None  # never deliver time backwards (history already covered this bucket)
        self.bar_closed_at = time.perf_counter()
        self.closed_by_clock = self._last_arrival is None
        self.input_at = self._due_at if self.closed_by_clock else self._last_arrival
        return self._deliver(self._finish_bar(bar))

    def _drain(self):
        """Feed queued ticks to the builder; the first finished bar, if any (never blocks)."""
        self._last_arrival = None
        while True:
            try:
                item = self._ticks.get_nowait()
            except queue.Empty:
                return None
            if item[0] == "state":
                self._on_state(item[1])
                continue
            arrived, trade = item
            done = self._builder.add(trade.time, float(trade.price), int(trade.volume))
            if done is not None:
                self._last_arrival = arrived
                return done

    def _due(self, now: datetime):
        bar = self._builder.close_if_due(now)
        if bar is not None:   # when it fell due, in perf_counter time: the input of a bar the clock closed
            late = self.store.wall_seconds((now - self._builder.due(bar["datetime"])).total_seconds())
            self._due_at = time.perf_counter() - (late or 0.0)
        return bar

    def next_due(self) -> datetime | None:
        """When the bar being built falls due on the exchange clock (None: no bar open, or the feed
        is not live — an ended feed keeps its last bar open, and a past due moment would spin the loop)."""
        current = self._builder.current
        if current is None or self._state != self._ST_LIVE:
            return None
        return self._builder.due(current["datetime"])

    def _on_state(self, name: str) -> None:
        if name == "DISCONNECTED":
            self.put_notification(self.CONNBROKEN)
        elif name == "CONNECTED" and self._state == self._ST_LIVE:
            self.put_notification(self.LIVE)

    def _finish_bar(self, bar: dict[str, Any]) -> dict[str, Any]:
        if self._minutes is None and self.p.repair_daily:
            try:
                q = self.store.client.quote(self.code)
                if q.open and q.high and q.low and q.price:
                    bar.update(open=float(q.open), high=float(q.high), low=float(q.low), close=float(q.price),
                               volume=int(q.volume))
            except Exception as exc:  # noqa: BLE001 - the tick-built bar stays
                log.warning("%s: daily bar repair from inquire-price failed: %s", self.code, exc)
        self._rows.append((bar["datetime"], *(float(bar[k]) for k in OHLCV)))
        if self._specs:
            values = add_indicators(self.frame(), self._specs).iloc[-1]
            bar.update({c: float(values[c]) for c in self._columns})
        self.bars_live += 1
        return bar

    def frame(self) -> pd.DataFrame:
        """The bars kept (history and live), oldest first: index naive KST datetimes, OHLCV floats."""
        if not self._rows:
            return pd.DataFrame(columns=list(OHLCV), dtype="float64")
        ts, *cols = zip(*self._rows)
        return pd.DataFrame(dict(zip(OHLCV, cols)), index=pd.DatetimeIndex(ts))

    @property
    def _frame(self) -> pd.DataFrame:   # the run record reads the bars under this name
        return self.frame()

    def _deliver(self, bar: dict[str, Any]) -> bool:
        ts = bar["datetime"]
        self._last_delivered = ts
        self.lines.datetime[0] = bt.date2num(ts)
        for name in OHLCV:
            getattr(self.lines, name)[0] = float(bar[name])
        self.lines.openinterest[0] = 0.0
        for c in self._columns:
            v = bar.get(c, math.nan)
            getattr(self.lines, c)[0] = float(v) if v is not None else math.nan
        return True


_CLASSES: dict[tuple[str, ...], type[KISData]] = {}


def live_data_class(indicator_specs: Iterable[str]) -> type[KISData]:
    """``KISData`` with one extra line per indicator column (built once per set of columns)."""
    columns = tuple(indicator_columns(list(indicator_specs)))
    for c in columns:
        if not c.isidentifier() or keyword.iskeyword(c):
            raise ValueError(f"indicator column {c!r} cannot be a line name")
    cls = _CLASSES.get(columns)
    if cls is None:
        cls = type(f"_KISData{len(_CLASSES)}", (KISData,), {"lines": columns})
        _CLASSES[columns] = cls
    return cls


KISStore.DataCls = staticmethod(live_data_class)

"""backtrader Analyzers that write down what happened, for the report and the monitor.

``RunRecorder`` keeps one row per fill (with commission and tax apart), one row per order with
its final status and reason, and the equity curve. It works the same on the simulator and on the
KIS broker: it only listens to order notifications and reads ``broker.getvalue()/getcash()``.
Per-bar cost is one tuple append; rows become DataFrames only at the end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import backtrader as bt
import pandas as pd

from analysis.record import EVENT_COLUMNS, ORDER_COLUMNS, TRADE_COLUMNS

KST = "Asia/Seoul"


def _aware(dt: datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    """backtrader datetimes are naive Seoul wall time; reports carry the zone explicitly."""
    if dt is None:
        return None
    ts = pd.Timestamp(dt)
    return ts.tz_localize(KST) if ts.tzinfo is None else ts.tz_convert(KST)


class RunRecorder(bt.Analyzer):
    """Fills, orders and equity of a run."""

    params = (("progress", None),)   # callable(bars_done) called every 50 bars

    def start(self) -> None:
        self._equity: list[tuple[float, float, float]] = []
        self._fills: list[dict[str, Any]] = []
        self._orders: dict[int, dict[str, Any]] = {}
        self._progress: Callable[[int], None] | None = self.p.progress

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        self._equity.append((self.strategy.datetime[0], self.strategy.broker.getvalue(),
                             self.strategy.broker.getcash()))
        if self._progress is not None and len(self._equity) % 50 == 0:
            self._progress(len(self._equity))

    def notify_order(self, order: bt.Order) -> None:
        code = order.data._name
        row = self._orders.get(order.ref)
        if row is None:
            price = order.created.price if order.exectype != bt.Order.Market else None
            row = self._orders[order.ref] = {
                "ref": order.ref, "created": order.created.dt, "code": code,
                "side": "BUY" if order.isbuy() else "SELL", "type": order.getordername(),
                "qty": int(abs(order.created.size)), "price": price,
                "status": "", "filled_qty": 0, "avg_price": None, "reason": "", "updated": None,
            }
        row["status"] = order.getstatusname()
        row["reason"] = order.info.get("reason", "") or ""
        row["updated"] = order.data.datetime[0] if len(order.data) else row["created"]
        if order.executed.size:
            row["filled_qty"] = int(abs(order.executed.size))
            row["avg_price"] = float(order.executed.price)
        ci = self.strategy.broker.getcommissioninfo(order.data)
        for bit in order.executed.iterpending():
            when = bt.num2date(bit.dt)
            breakdown = getattr(ci, "breakdown", None)
            if breakdown is not None:
                commission, tax = breakdown(bit.size, bit.price, when.date())
            else:
                commission, tax = int(round(bit.comm)), 0
            self._fills.append({
                "datetime": when, "code": code, "side": "BUY" if bit.size > 0 else "SELL",
                "qty": int(abs(bit.size)), "price": bit.price, "value": int(round(abs(bit.size) * bit.price)),
                "commission": int(commission), "tax": int(tax), "order_ref": order.ref,
            })

    # ------------------------------------------------------------------ results
    def equity_frame(self) -> pd.DataFrame:
        if not self._equity:
            return pd.DataFrame(columns=["value", "cash"], index=pd.DatetimeIndex([], name="datetime", tz=KST))
        nums, values, cash = zip(*self._equity)
        index = pd.DatetimeIndex([bt.num2date(n) for n in nums], name="datetime").tz_localize(KST)
        frame = pd.DataFrame({"value": values, "cash": cash}, index=index).round().astype("int64")
        return frame[~frame.index.duplicated(keep="last")]

    def trades_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self._fills, columns=TRADE_COLUMNS)
        if len(frame):
            frame["datetime"] = frame["datetime"].map(_aware)
        return frame

    def orders_frame(self, refusals: list[dict[str, Any]] = ()) -> pd.DataFrame:
        rows = []
        for row in self._orders.values():
            r = dict(row)
            r["created"] = _aware(bt.num2date(r["created"])) if r["created"] else None
            r["updated"] = _aware(bt.num2date(r["updated"])) if r["updated"] else None
            rows.append(r)
        for ref in refusals:
            rows.append({"ref": None, "created": _aware(ref["datetime"]), "code": ref["code"],
                         "side": ref["side"].upper(), "type": "", "qty": ref["qty"], "price": ref["price"],
                         "status": "Refused", "filled_qty": 0, "avg_price": None, "reason": ref["reason"],
                         "updated": _aware(ref["datetime"])})
        frame = pd.DataFrame(rows, columns=ORDER_COLUMNS)
        return frame.sort_values(["created", "ref"], kind="stable", na_position="last").reset_index(drop=True) \
            if len(frame) else frame

    def get_analysis(self) -> dict[str, Any]:
        return {"fills": len(self._fills), "orders": len(self._orders), "bars": len(self._equity)}


def events_frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(events, columns=EVENT_COLUMNS)
    if len(frame):
        frame["datetime"] = frame["datetime"].map(_aware)
    return frame

"""Small helpers for broker/strategy tests: hand-made bars and a one-call cerebro run."""

from __future__ import annotations

from typing import Any

import backtrader as bt
import pandas as pd

from brokers.sim import make_broker


def bars(rows: list[tuple], start_dates: list[str] | None = None) -> pd.DataFrame:
    """rows of (date, open, high, low, close, volume) -> a frame indexed by naive datetime."""
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="datetime")
    return frame


def run(strategy: type[bt.Strategy], frames: dict[str, pd.DataFrame], cash: int = 10_000_000,
        markets: dict[str, str] | None = None, strategy_kwargs: dict[str, Any] | None = None,
        sizer: tuple[type, dict[str, Any]] | None = None, **broker_params) -> tuple[bt.Strategy, Any]:
    cerebro = bt.Cerebro(stdstats=False)
    broker = make_broker(cash, **broker_params)
    cerebro.setbroker(broker)
    for code, frame in frames.items():
        feed = bt.feeds.PandasData(dataname=frame, name=code)
        cerebro.adddata(feed, name=code)
        broker.add_code(feed, (markets or {}).get(code, "KOSPI"))
    if sizer is not None:
        cerebro.addsizer(sizer[0], **sizer[1])
    cerebro.addstrategy(strategy, **(strategy_kwargs or {}))
    strat = cerebro.run()[0]
    return strat, broker


class Scripted(bt.Strategy):
    """Places the orders of ``script[bar_number]`` (1-based) and records every notification."""

    params = (("script", None),)

    def __init__(self) -> None:
        self.notes: list[dict[str, Any]] = []
        self.orders: dict[str, bt.Order] = {}

    def next(self) -> None:
        for name, action in (self.p.script or {}).get(len(self), {}).items():
            kind, kwargs = action
            data = self.getdatabyname(kwargs.pop("code")) if "code" in kwargs else self.datas[0]
            if kind == "cancel":
                self.cancel(self.orders[kwargs["name"]])
                continue
            self.orders[name] = getattr(self, kind)(data=data, **kwargs)

    def notify_order(self, order: bt.Order) -> None:
        self.notes.append({
            "ref": order.ref, "status": order.getstatusname(), "date": self.datas[0].datetime.date(0),
            "size": order.executed.size, "price": order.executed.price, "comm": order.executed.comm,
            "reason": order.info.get("reason"), "bits": [(b.size, b.price) for b in order.executed.iterpending()],
        })

    def final(self, name: str) -> dict[str, Any]:
        ref = self.orders[name].ref
        return [n for n in self.notes if n["ref"] == ref][-1]

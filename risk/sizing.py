"""backtrader Sizers that size in whole shares the way a KIS account can actually pay for them.

Every sizer here answers "how many shares" in two steps:

1. what it *wants*: a fraction of equity, an equal slot of equity, or the shares whose stop
   distance (a multiple of ATR) risks a fixed fraction of equity;
2. what is *allowed*: never more than the cash not reserved by pending buys at the price the
   broker reserves (KIS reserves a market buy at the day's upper limit), never more than the
   Trade Target's remaining allocation for the code, always whole shares.

``size_for(data, price, exectype)`` takes the intended limit price, which backtrader's own
``getsizing`` cannot; ``TargetStrategy.buy`` calls it. Used as plain backtrader sizers they size
market orders at the last close.
"""

from __future__ import annotations

import math

import backtrader as bt


def affordable_shares(broker, data: bt.AbstractDataBase, price: float | None = None,
                      exectype: int | None = None) -> float:
    """Shares the free cash pays for, at the broker's reservation price plus commission.

    Works with any broker: the KRX simulator and the KIS broker offer ``available_cash`` (cash
    not reserved by pending buys), ``reserve_price`` (KIS reserves market buys at the upper limit)
    and ``cost_model``; a plain backtrader broker falls back to cash and the given price.
    """
    available = getattr(broker, "available_cash", None)
    free = float(available() if available else broker.getcash())
    reserve = getattr(broker, "reserve_price", None)
    per_share = float(reserve(data, exectype, price)) if reserve else float(price or data.close[0])
    model = getattr(broker, "cost_model", None)
    fee = float(model.commission_rate) if model is not None else 0.0
    return free / (per_share * (1 + fee)) if per_share > 0 else 0.0


class KRXSizer(bt.Sizer):
    """Base class: subclasses implement ``wanted_shares``; this class applies the caps."""

    def wanted_shares(self, data: bt.AbstractDataBase, price: float) -> float:
        raise NotImplementedError

    def _equity(self) -> float:
        return float(self.broker.getvalue())

    def size_for(self, data: bt.AbstractDataBase, price: float | None = None,
                 exectype: int | None = None) -> int:
        """Whole shares to buy of ``data`` at ``price`` (None: market order at the last close)."""
        expected = float(price or data.close[0])
        if not expected > 0 or math.isnan(expected):
            return 0
        wanted = self.wanted_shares(data, expected)
        if not wanted > 0:
            return 0
        caps = [wanted, affordable_shares(self.broker, data, price, exectype)]
        left = getattr(self.strategy, "capital_left", None)
        if left is not None:
            allowed = left(data._name)
            if allowed is not None:
                caps.append(allowed / expected)
        return max(0, int(math.floor(min(caps) + 1e-9)))

    def _getsizing(self, comminfo, cash, data, isbuy):
        if isbuy:
            return self.size_for(data)
        held = self.broker.getposition(data).size
        pending = getattr(self.broker, "pending_sell_qty", None)
        return max(0, int(held - (pending(data) if pending else 0)))


class FixedFractionSizer(KRXSizer):
    """Each entry uses ``fraction`` of current equity."""

    params = (("fraction", 0.1),)

    def wanted_shares(self, data, price):
        return self._equity() * self.p.fraction / price


class EqualWeightSizer(KRXSizer):
    """Equity split into ``slots`` equal parts (default: one per data feed)."""

    params = (("slots", None),)

    def wanted_shares(self, data, price):
        slots = self.p.slots or len(self.strategy.datas)
        return self._equity() / slots / price


class ATRSizer(KRXSizer):
    """Volatility sizing: shares whose stop ``atr_multiple`` × ATR away risks ``risk_fraction`` of equity.

    Reads the precomputed ``atr_<period>`` line of the feed (see feeds.indicators); with no ATR yet
    (warm-up) it sizes nothing rather than guessing.
    """

    params = (("risk_fraction", 0.01), ("atr_multiple", 2.0), ("atr_period", 14))

    def wanted_shares(self, data, price):
        line = getattr(data.lines, f"atr_{self.p.atr_period}", None)
        if line is None:
            raise AttributeError(f"ATRSizer needs indicator 'atr_{self.p.atr_period}' on feed {data._name}")
        atr = line[0]
        if not atr > 0:
            return 0.0
        return self._equity() * self.p.risk_fraction / (self.p.atr_multiple * atr)


class FixedSizeSizer(KRXSizer):
    """Always ``size`` shares (still capped by cash and allocation)."""

    params = (("size", 1),)

    def wanted_shares(self, data, price):
        return float(self.p.size)


def sizer_from_config(cfg) -> tuple[type[KRXSizer], dict]:
    """(class, params) for a ``configs.schema.SizerConfig``."""
    if cfg.kind == "fixed_fraction":
        return FixedFractionSizer, {"fraction": cfg.fraction}
    if cfg.kind == "equal_weight":
        return EqualWeightSizer, {"slots": cfg.slots}
    if cfg.kind == "atr":
        return ATRSizer, {"risk_fraction": cfg.risk_fraction, "atr_multiple": cfg.atr_multiple,
                          "atr_period": cfg.atr_period}
    if cfg.kind == "fixed_size":
        return FixedSizeSizer, {"size": cfg.size}
    raise ValueError(f"unknown sizer kind {cfg.kind!r}")


def sizer_indicators(cfg) -> list[str]:
    """Indicator specs a sizer config needs on every feed."""
    return [f"atr_{cfg.atr_period}"] if cfg.kind == "atr" else []

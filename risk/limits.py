"""Pre-trade limits and the rules that trip the kill switch; pure arithmetic on numbers.

The strategy gathers the numbers (equity, the code's position and pending buys, total invested)
from whichever broker it runs on and asks these rules; every "no" comes back as a sentence that
goes into the log and the run's event list, so a refused order is never a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RiskLimits:
    """All limits in percent; ``None`` switches a limit off."""

    max_position_pct: float | None = 25.0
    max_exposure_pct: float | None = 100.0
    daily_loss_limit_pct: float | None = None
    stop_loss_pct: float | None = None

    @classmethod
    def from_config(cls, cfg) -> "RiskLimits":
        return cls(max_position_pct=cfg.max_position_pct, max_exposure_pct=cfg.max_exposure_pct,
                   daily_loss_limit_pct=cfg.daily_loss_limit_pct, stop_loss_pct=cfg.stop_loss_pct)

    def check_buy(self, code: str, order_value: float, equity: float, code_value: float,
                  invested: float) -> str | None:
        """Reason to refuse a buy of ``order_value`` KRW, or None.

        ``code_value``: the code's position plus pending buys; ``invested``: all positions plus all
        pending buys, both in KRW.
        """
        if equity <= 0:
            return f"equity is {equity:,.0f} KRW; no new entries"
        if self.max_position_pct is not None:
            after = code_value + order_value
            cap = equity * self.max_position_pct / 100
            if after > cap + 1e-6:
                return (f"{code}: position would be {after:,.0f} KRW = {after / equity * 100:.1f}% of equity, "
                        f"above max_position_pct {self.max_position_pct:g}% ({cap:,.0f} KRW)")
        if self.max_exposure_pct is not None:
            after = invested + order_value
            cap = equity * self.max_exposure_pct / 100
            if after > cap + 1e-6:
                return (f"{code}: exposure would be {after:,.0f} KRW = {after / equity * 100:.1f}% of equity, "
                        f"above max_exposure_pct {self.max_exposure_pct:g}%")
        return None

    def max_buy_value(self, equity: float, code_value: float, invested: float) -> float:
        """The largest buy (KRW) the position and exposure limits still allow (inf: no limit)."""
        room = float("inf")
        if self.max_position_pct is not None:
            room = min(room, equity * self.max_position_pct / 100 - code_value)
        if self.max_exposure_pct is not None:
            room = min(room, equity * self.max_exposure_pct / 100 - invested)
        return max(0.0, room)

    def daily_loss_breached(self, day_start_equity: float, equity: float) -> str | None:
        """Reason to trip the kill switch, or None."""
        if self.daily_loss_limit_pct is None or day_start_equity <= 0:
            return None
        loss_pct = (day_start_equity - equity) / day_start_equity * 100
        if loss_pct >= self.daily_loss_limit_pct:
            return (f"daily loss {loss_pct:.2f}% (from {day_start_equity:,.0f} to {equity:,.0f} KRW) "
                    f"reached daily_loss_limit_pct {self.daily_loss_limit_pct:g}%")
        return None

    def stop_price(self, avg_price: float, stop_loss_pct: float | None = None) -> float | None:
        """Price at or below which a position is stopped out (target's own stop wins)."""
        pct = stop_loss_pct if stop_loss_pct is not None else self.stop_loss_pct
        if pct is None or avg_price <= 0:
            return None
        return avg_price * (1 - pct / 100)

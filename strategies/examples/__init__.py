"""Example strategies, selectable by name in a config's ``strategy.name``."""

from strategies.examples.buy_and_hold import BuyAndHold
from strategies.examples.screen_momentum import ScreenMomentum
from strategies.examples.sma_cross import SmaCross
from strategies.examples.target_buy import TargetBuy

EXAMPLES = {"buy_and_hold": BuyAndHold, "target_buy": TargetBuy, "screen_momentum": ScreenMomentum,
            "sma_cross": SmaCross}

__all__ = ["EXAMPLES", "BuyAndHold", "TargetBuy", "ScreenMomentum", "SmaCross"]

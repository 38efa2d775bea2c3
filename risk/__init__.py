"""How much to trade, and whether to trade at all: sizers, pre-trade limits, the kill switch rules.

Only backtrader's API is used here, so the same rules apply in backtests and on KIS.
"""

"""Composition roots: turn a validated config into a running cerebro (backtest now; paper/live next).

Kept apart from ``run.py`` so tests and benchmarks can run exactly what the CLI runs, and apart
from ``strategies``/``risk``/``analysis`` so those keep depending on backtrader's API only.
"""

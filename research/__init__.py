"""Research on the whole market: the fast engine and parameter sweeps.

* ``panel`` / ``store`` — every code of a source as day × code arrays, cached as one Parquet file;
* ``indicators`` — the ``feeds.indicators`` specs over the whole panel, equal to ``ta`` bit for bit;
* ``rules`` / ``kernel`` — a declared strategy (``strategies.spec``) compiled to arrays and run by a
  numba simulator that reproduces ``brokers.sim.KRXBroker`` fill for fill;
* ``engine`` — ``run_fast_backtest(cfg)``: the same ``RunRecord`` and run folder as the event path;
* ``sweep`` / ``sweep_report`` — grids on Ray with resume, walk-forward and heat maps.

The event-driven path (backtrader) stays the reference and the only path to paper and live trading;
the fast engine refuses, by name, anything it cannot reproduce exactly.
"""

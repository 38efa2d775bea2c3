"""Bars in, for backtest and (later) live.

* ``feeds.history`` — ``load_market_data(cfg.data)`` (demo | csv | cache) and ``make_feed``
  (backtrader ``PandasData`` with indicator lines); the runner's only entry point.
* ``feeds.demo`` — deterministic synthetic KRX-like market (offline default, labelled SYNTHETIC).
* ``feeds.csv_folder`` — strict loader for folders of CODE.csv files.
* ``feeds.cache`` — SQLAlchemy bar cache with all-or-nothing CSV import.
* ``feeds.indicators`` — indicator columns from spec strings (sma_20, macd_12_26_9, ...).
* ``feeds.timeframes`` — timeframe names, inference and window slicing.

Submodules are imported explicitly (``from feeds.history import load_market_data``) so that
importing one does not pull in backtrader or SQLAlchemy for the others.
"""

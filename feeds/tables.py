"""The market-data schema (bar cache, stock master, fundamentals) as SQLAlchemy tables: the *current*
shape, which the Alembic migrations in ``migrations/data`` build step by step.

Never ``create_all`` these: a database is created and upgraded only by the migrations
(``migrations.migrate.upgrade``), so an existing cache upgrades in place and SQLite and PostgreSQL get the
same schema. ``tests/test_db_migrations.py`` checks that the migrated schema equals these
definitions on both.

Portability rules (the reason ``function max(boolean) does not exist`` was possible): no aggregate on
a boolean, no ``date()``/``strftime()`` in SQL, no SQLite-only upsert; dates are computed in Python.
Datetimes are naive KST wall time, money integer KRW, shares integers; fundamentals are floats
(double precision: integer KRW up to 2^53 stays exact).

Seed data model → this schema (README "Data model"): ``stocks`` → ``stocks`` (+ ``stock_flags`` for
dated designations); ``prices`` → ``bars`` (one series per code, timeframe and adjustment);
``indicators`` → computed on load, never stored; ``financial metrics`` → ``fundamentals``;
``trades``/``portfolios`` → the trading journal (``brokers/kis/journal.py``).
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Float, Index, MetaData, PrimaryKeyConstraint,
                        SmallInteger, String, Table)

metadata = MetaData()

bars = Table(
    "bars", metadata,
    Column("code", String(16), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("adjusted", Boolean, nullable=False),
    Column("datetime", DateTime, nullable=False),
    Column("open", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    Column("low", BigInteger, nullable=False),
    Column("close", BigInteger, nullable=False),
    Column("volume", BigInteger, nullable=False),
    Column("source", String(255), nullable=False),
    PrimaryKeyConstraint("code", "timeframe", "adjusted", "datetime", name="pk_bars"),
)
"""One row per bar of one *series* (code, timeframe, adjusted): back-adjusted and original prices of a
code are two series side by side, never mixed."""

bar_coverage = Table(
    "bar_coverage", metadata,
    Column("code", String(16), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("adjusted", Boolean, nullable=False),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("source", String(255), nullable=False),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("code", "timeframe", "adjusted", "first_day", name="pk_bar_coverage"),
)
"""Day ranges of a series that were fetched (or imported) completely: what a download skips. A range
is covered even where it has no bars (before a listing, during a halt): KIS was asked and answered."""

stocks = Table(
    "stocks", metadata,
    Column("code", String(16), nullable=False),
    Column("isin", String(12), nullable=False),
    Column("name", String(200), nullable=False),
    Column("market", String(8), nullable=False),                 # KOSPI / KOSDAQ / KONEX
    Column("group_code", String(2), nullable=False),             # 증권그룹구분코드: ST, EF, EN, RT, MF, ...
    Column("kind", String(16), nullable=False),                  # stock, preferred, etf, etn, spac, reit, ...
    Column("sector_large", String(4), nullable=False),
    Column("sector_medium", String(4), nullable=False),
    Column("sector_small", String(4), nullable=False),
    Column("listing_date", Date, nullable=True),
    Column("delisting_date", Date, nullable=True),               # set when a later master no longer lists it
    Column("par_value", BigInteger, nullable=False),
    Column("shares_listed", BigInteger, nullable=False),
    Column("capital", BigInteger, nullable=False),
    Column("fiscal_month", SmallInteger, nullable=True),
    Column("ipo_price", BigInteger, nullable=True),
    Column("base_price", BigInteger, nullable=False),            # 기준가 of the master's day
    Column("prev_volume", BigInteger, nullable=False),
    Column("market_cap", BigInteger, nullable=False),            # KRW (the file has 억원)
    Column("halted", Boolean, nullable=False),                   # 거래정지
    Column("admin_issue", Boolean, nullable=False),              # 관리종목
    Column("liquidation", Boolean, nullable=False),              # 정리매매
    Column("market_warning", String(2), nullable=False),         # 00 none, 01 투자주의, 02 투자경고, 03 투자위험
    Column("unfaithful_disclosure", Boolean, nullable=False),    # 불성실공시
    Column("overheated", Boolean, nullable=False),               # 단기과열 (designated or extended)
    Column("spac", Boolean, nullable=False),
    Column("preferred", Boolean, nullable=False),
    Column("as_of", Date, nullable=False),                       # the master snapshot this row comes from
    Column("first_seen", Date, nullable=False),
    Column("source", String(255), nullable=False),
    PrimaryKeyConstraint("code", name="pk_stocks"),
)
"""The stock master (KIS's ``*_code.mst`` files): what each code is, as of the latest snapshot."""

stock_flags = Table(
    "stock_flags", metadata,
    Column("code", String(16), nullable=False),
    Column("flag", String(32), nullable=False),                  # halted, admin_issue, liquidation, warning, ...
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=True),                     # null: still in force
    Column("source", String(255), nullable=False),
    PrimaryKeyConstraint("code", "flag", "first_day", name="pk_stock_flags"),
)
"""Designations as dated intervals: from successive master snapshots (a flag seen on day A and gone on
day B closes on the day before B) or from a reference file's dated designations."""

fundamentals = Table(
    "fundamentals", metadata,
    Column("code", String(16), nullable=False),
    Column("period", String(8), nullable=False),                 # annual | quarter | snapshot
    Column("period_end", Date, nullable=False),
    Column("item", String(40), nullable=False),                  # revenue, net_income, eps, bps, roe_pct, ...
    Column("known_from", Date, nullable=False),                  # the first day the figure was public
    Column("value", Float(precision=53), nullable=True),
    Column("basis", String(8), nullable=False),                  # report | lag | seen
    Column("source", String(255), nullable=False),
    PrimaryKeyConstraint("code", "period", "period_end", "item", "known_from", name="pk_fundamentals"),
)
"""Point-in-time figures: one row per (figure, version). A restated figure is a new row with a later
``known_from``; a backtest on day D reads, per figure, the newest version with ``known_from <= D``."""

Index("ix_fundamentals_item", fundamentals.c.item, fundamentals.c.code)

__all__ = ["bar_coverage", "bars", "fundamentals", "metadata", "stock_flags", "stocks"]

"""Alembic scripts of the trading journal's schema (``brokers/kis/journal.py``; version table
``krx_journal_version``)."""

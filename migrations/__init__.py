"""Alembic migrations of the project's databases, one script directory per schema, each with its own
version table so they can share a database: ``data`` (bar cache, stock master, fundamentals;
``krx_data_version``) and ``journal`` (the trading journal; ``krx_journal_version``).

``migrations.migrate.upgrade(engine, schema)`` runs them whenever a store or a journal opens a
database; tables are never created any other way. A new revision: copy the newest file of
``<schema>/versions``, bump ``revision``/``down_revision``, write ``upgrade``/``downgrade`` with
``alembic.op`` (SQLite runs in batch mode), and update the tables the code declares
(``feeds/tables.py``, ``brokers/kis/journal.py``): the tests compare the two on SQLite and PostgreSQL.
"""

"""Alembic migrations of the project's databases (``data``: bar cache, stock master, fundamentals).

Run by ``feeds.migrate.upgrade`` whenever a store opens a database; see migrations/README.md.
"""

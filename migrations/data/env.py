"""Alembic environment of the market-data schema (``migrations/_env.py``)."""

from migrations._env import run

run()

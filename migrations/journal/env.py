"""Alembic environment of the trading journal's schema (``migrations/_env.py``)."""

from migrations._env import run

run()

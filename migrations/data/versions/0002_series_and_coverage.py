"""Adjusted and original prices become separate series; ``bar_coverage`` records what was fetched.

* ``bars``' primary key gains ``adjusted``: a code's back-adjusted and unadjusted bars of a day live
  side by side (before, importing one replaced the other);
* ``bar_coverage``: the day ranges of each series that were fetched or imported completely, so a
  download skips them and resumes after an interruption. Existing bars count as covered from their
  first to their last day (computed in Python: no date function is portable across SQLite and
  PostgreSQL).

Revision ID: 0002
Revises: 0001
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _bars_key(["code", "timeframe", "adjusted", "datetime"])
    coverage = op.create_table(
        "bar_coverage",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("adjusted", sa.Boolean, nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("last_day", sa.Date, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("code", "timeframe", "adjusted", "first_day", name="pk_bar_coverage"),
    )
    bars = sa.table("bars", sa.column("code"), sa.column("timeframe"), sa.column("adjusted"),
                    sa.column("datetime"), sa.column("source"))
    rows = op.get_bind().execute(
        sa.select(bars.c.code, bars.c.timeframe, bars.c.adjusted, sa.func.min(bars.c.datetime),
                  sa.func.max(bars.c.datetime), sa.func.max(bars.c.source))
        .group_by(bars.c.code, bars.c.timeframe, bars.c.adjusted)).all()
    now = datetime.now().replace(microsecond=0)
    if rows:
        op.bulk_insert(coverage, [
            {"code": code, "timeframe": tf, "adjusted": bool(adj), "first_day": _day(first),
             "last_day": _day(last), "source": src, "updated_at": now}
            for code, tf, adj, first, last, src in rows])


_BAR_COLUMNS = ("code", "timeframe", "datetime", "open", "high", "low", "close", "volume", "source", "adjusted")


def _bars_key(key: list[str]) -> None:
    """Give ``bars`` a new primary key. PostgreSQL alters it in place; SQLite cannot alter a primary key,
    so the table is rebuilt: a new table, the rows copied in one statement, the old one dropped."""
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("pk_bars", "bars", type_="primary")
        op.create_primary_key("pk_bars", "bars", key)
        return
    op.create_table(
        "_bars_rebuild",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("adjusted", sa.Boolean, nullable=False),
        sa.Column("datetime", sa.DateTime, nullable=False),
        *(sa.Column(c, sa.BigInteger, nullable=False) for c in ("open", "high", "low", "close", "volume")),
        sa.Column("source", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint(*key, name="pk_bars"),
    )
    cols = ", ".join(_BAR_COLUMNS)
    op.execute(f"INSERT INTO _bars_rebuild ({cols}) SELECT {cols} FROM bars")
    op.drop_table("bars")
    op.rename_table("_bars_rebuild", "bars")


def _day(value: object):
    """A datetime from either driver (SQLite may hand back text) as a date."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.date()


def downgrade() -> None:
    op.drop_table("bar_coverage")
    _bars_key(["code", "timeframe", "datetime"])

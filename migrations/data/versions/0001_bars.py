"""The bar cache as the project first created it (one ``bars`` table).

A cache made before migrations existed has exactly this table and no version table: ``migrations.migrate``
stamps it with this revision and upgrades it from here, in place.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("datetime", sa.DateTime, nullable=False),
        sa.Column("open", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("close", sa.BigInteger, nullable=False),
        sa.Column("volume", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("adjusted", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("code", "timeframe", "datetime", name="pk_bars"),
    )


def downgrade() -> None:
    op.drop_table("bars")

"""Point-in-time fundamentals: one row per figure and version, stamped with the day it became public.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fundamentals",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("item", sa.String(40), nullable=False),
        sa.Column("known_from", sa.Date, nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.Column("basis", sa.String(8), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("code", "period", "period_end", "item", "known_from", name="pk_fundamentals"),
    )
    op.create_index("ix_fundamentals_item", "fundamentals", ["item", "code"])


def downgrade() -> None:
    op.drop_index("ix_fundamentals_item", "fundamentals")
    op.drop_table("fundamentals")

"""The stock master: ``stocks`` (one row per code, the latest master snapshot) and ``stock_flags``
(designations as dated intervals).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stocks",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("isin", sa.String(12), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("market", sa.String(8), nullable=False),
        sa.Column("group_code", sa.String(2), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sector_large", sa.String(4), nullable=False),
        sa.Column("sector_medium", sa.String(4), nullable=False),
        sa.Column("sector_small", sa.String(4), nullable=False),
        sa.Column("listing_date", sa.Date, nullable=True),
        sa.Column("delisting_date", sa.Date, nullable=True),
        sa.Column("par_value", sa.BigInteger, nullable=False),
        sa.Column("shares_listed", sa.BigInteger, nullable=False),
        sa.Column("capital", sa.BigInteger, nullable=False),
        sa.Column("fiscal_month", sa.SmallInteger, nullable=True),
        sa.Column("ipo_price", sa.BigInteger, nullable=True),
        sa.Column("base_price", sa.BigInteger, nullable=False),
        sa.Column("prev_volume", sa.BigInteger, nullable=False),
        sa.Column("market_cap", sa.BigInteger, nullable=False),
        sa.Column("halted", sa.Boolean, nullable=False),
        sa.Column("admin_issue", sa.Boolean, nullable=False),
        sa.Column("liquidation", sa.Boolean, nullable=False),
        sa.Column("market_warning", sa.String(2), nullable=False),
        sa.Column("unfaithful_disclosure", sa.Boolean, nullable=False),
        sa.Column("overheated", sa.Boolean, nullable=False),
        sa.Column("spac", sa.Boolean, nullable=False),
        sa.Column("preferred", sa.Boolean, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("first_seen", sa.Date, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_stocks"),
    )
    op.create_table(
        "stock_flags",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("flag", sa.String(32), nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("last_day", sa.Date, nullable=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("code", "flag", "first_day", name="pk_stock_flags"),
    )


def downgrade() -> None:
    op.drop_table("stock_flags")
    op.drop_table("stocks")

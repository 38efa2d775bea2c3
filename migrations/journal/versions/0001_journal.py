"""The trading journal as the project first created it: intents, fills, fill_notices, events.

Every row carries its scope (env, account, app key as ids); a booking (``fills``) and a notice
(``fill_notices``) are unique per environment, account and key, so each is recorded once by
construction. A journal made before migrations existed (``metadata.create_all`` of
``brokers/kis/journal.py``) has exactly these tables and no version table: ``migrations.migrate``
stamps it with this revision. An older journal still (no env/account columns) is refused by the
journal before it gets here.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_INDEXED_SCOPE = ("env", "account")


def _scope(nullable: bool = False) -> list[sa.Column]:
    return [sa.Column("env", sa.String(8), nullable=nullable),
            sa.Column("account", sa.String(24), nullable=nullable),
            sa.Column("app_key", sa.String(24), nullable=nullable)]


def _indexes(table: str, *columns: str) -> None:
    for c in (*_INDEXED_SCOPE, *columns):
        op.create_index(f"ix_{table}_{c}", table, [c])


def upgrade() -> None:
    op.create_table(
        "intents",
        sa.Column("id", sa.String(36), nullable=False),
        *_scope(),
        sa.Column("session_day", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bt_ref", sa.Integer),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("price", sa.Integer, nullable=False),
        sa.Column("ord_dvsn", sa.String(2), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("odno", sa.String(20)),
        sa.Column("branch", sa.String(10)),
        sa.Column("replaces", sa.String(36)),
        sa.Column("orig_odno", sa.String(20)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("ord_time", sa.String(6)),
        sa.Column("filled_qty", sa.Integer, nullable=False),
        sa.Column("filled_value", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("intents", "session_day", "state", "odno")

    op.create_table(
        "fills",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        *_scope(),
        sa.Column("fill_key", sa.String(120), nullable=False),
        sa.Column("intent_id", sa.String(36)),
        sa.Column("odno", sa.String(20)),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("commission", sa.Integer, nullable=False),
        sa.Column("tax", sa.Integer, nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("env", "account", "fill_key", name="uq_fill_key"),
    )
    _indexes("fills", "intent_id", "odno")

    op.create_table(
        "fill_notices",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        *_scope(),
        sa.Column("notice_key", sa.String(120), nullable=False),
        sa.Column("intent_id", sa.String(36)),
        sa.Column("odno", sa.String(20)),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("env", "account", "notice_key", name="uq_notice_key"),
    )
    _indexes("fill_notices", "intent_id", "odno")

    op.create_table(
        "events",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        *_scope(nullable=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("intent_id", sa.String(36)),
        sa.Column("odno", sa.String(20)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("events", "ts", "kind")


def downgrade() -> None:
    for table in ("events", "fill_notices", "fills", "intents"):
        op.drop_table(table)

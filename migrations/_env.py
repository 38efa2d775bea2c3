"""The one Alembic environment of every schema (each ``migrations/<schema>/env.py`` calls ``run``).

Always run programmatically (``migrations.migrate``), on the connection it passes in
``config.attributes["connection"]`` and with the schema's own version table, so several schemas can
share a database; SQLite gets batch mode (table rebuilds for the ALTERs it lacks)."""

from __future__ import annotations


def run() -> None:
    from alembic import context

    config = context.config
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=None,
                      version_table=config.attributes["version_table"],
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()

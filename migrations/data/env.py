"""Alembic environment of the market-data schema: always run programmatically (``feeds.migrate``), on
the connection it passes in ``config.attributes["connection"]``; SQLite gets batch mode (table
rebuilds for the ALTERs it lacks)."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=None,
                  version_table=config.attributes.get("version_table", "krx_data_version"),
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()

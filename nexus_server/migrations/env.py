"""Alembic environment: the relay passes its own connection in; nothing here opens one."""

from __future__ import annotations

from alembic import context

from nexus_server.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through nexus_server.store.database.Database.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

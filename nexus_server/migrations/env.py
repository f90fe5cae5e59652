"""Alembic environment: the relay passes its own connection in; nothing here opens one."""

from __future__ import annotations

from typing import Any

from alembic import context

from nexus_server.store.schema import is_message_search_object, metadata


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    # The message search index is created by raw DDL (migration 0006), not from metadata.
    return not (type_ in {"table", "index"} and is_message_search_object(name))


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through nexus_server.store.database.Database.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()

"""Audit log entries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import audit_log


async def insert_entry(
    tx: AsyncConnection,
    *,
    entry_id: int,
    guild_id: int,
    user_id: int | None,
    target_id: int | None,
    action_type: int,
    reason: str | None,
    changes: list[dict[str, Any]],
    options: dict[str, str] | None,
) -> None:
    await tx.execute(
        insert(audit_log).values(
            id=entry_id,
            guild_id=guild_id,
            user_id=user_id,
            target_id=target_id,
            action_type=action_type,
            reason=reason,
            changes=changes,
            options=options,
        )
    )


async def list_entries(
    tx: AsyncConnection,
    guild_id: int,
    *,
    user_id: int | None = None,
    action_type: int | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = select(audit_log).where(audit_log.c.guild_id == guild_id)
    if user_id is not None:
        query = query.where(audit_log.c.user_id == user_id)
    if action_type is not None:
        query = query.where(audit_log.c.action_type == action_type)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    if after is not None:
        query = query.where(audit_log.c.id > after)
    rows = await tx.execute(query.order_by(audit_log.c.id.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]

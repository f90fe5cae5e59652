"""Guild bans: who may not (re)join a guild, and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import bans


async def put_ban(tx: AsyncConnection, guild_id: int, user_id: int, reason: str | None) -> bool:
    """Ban ``user_id``; an existing ban keeps its place and takes the new reason.
    True when the ban is new."""
    result = await tx.execute(
        update(bans)
        .where(bans.c.guild_id == guild_id, bans.c.user_id == user_id)
        .values(reason=reason)
    )
    if result.rowcount > 0:
        return False
    await tx.execute(insert(bans).values(guild_id=guild_id, user_id=user_id, reason=reason))
    return True


async def delete_ban(tx: AsyncConnection, guild_id: int, user_id: int) -> bool:
    result = await tx.execute(
        delete(bans).where(bans.c.guild_id == guild_id, bans.c.user_id == user_id)
    )
    return result.rowcount > 0


async def get_ban(tx: AsyncConnection, guild_id: int, user_id: int) -> dict[str, Any] | None:
    row = (
        await tx.execute(select(bans).where(bans.c.guild_id == guild_id, bans.c.user_id == user_id))
    ).first()
    return dict(row._mapping) if row else None


async def list_bans(
    tx: AsyncConnection,
    guild_id: int,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Bans ordered by user id: the ``limit`` just after ``after``, or just before
    ``before`` (still returned in ascending order)."""
    query = select(bans).where(bans.c.guild_id == guild_id)
    if after is not None:
        query = query.where(bans.c.user_id > after)
    if before is not None and after is None:
        query = query.where(bans.c.user_id < before)
        rows = await tx.execute(query.order_by(bans.c.user_id.desc()).limit(limit))
        return [dict(row._mapping) for row in reversed(rows.all())]
    if before is not None:
        query = query.where(bans.c.user_id < before)
    rows = await tx.execute(query.order_by(bans.c.user_id).limit(limit))
    return [dict(row._mapping) for row in rows]

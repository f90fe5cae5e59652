"""Invites to a guild."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import bans, invites


async def insert_invite(tx: AsyncConnection, **values: Any) -> None:
    await tx.execute(insert(invites).values(**values))


async def get_invite(tx: AsyncConnection, code: str) -> dict[str, Any] | None:
    row = (await tx.execute(select(invites).where(invites.c.code == code))).first()
    return dict(row._mapping) if row else None


async def invites_of_guild(tx: AsyncConnection, guild_id: int) -> list[dict[str, Any]]:
    rows = await tx.execute(
        select(invites).where(invites.c.guild_id == guild_id).order_by(invites.c.created_at)
    )
    return [dict(row._mapping) for row in rows]


async def invites_of_channel(tx: AsyncConnection, channel_id: int) -> list[dict[str, Any]]:
    rows = await tx.execute(
        select(invites).where(invites.c.channel_id == channel_id).order_by(invites.c.created_at)
    )
    return [dict(row._mapping) for row in rows]


async def use_invite(tx: AsyncConnection, code: str, now: datetime) -> bool:
    """Count one use, atomically refusing an invite that is used up or expired."""
    invite = await get_invite(tx, code)
    if invite is None:
        return False
    expires_at = invite["expires_at"]
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=now.tzinfo)
    if expires_at is not None and expires_at <= now:
        return False
    query = update(invites).where(invites.c.code == code).values(uses=invites.c.uses + 1)
    if invite["max_uses"]:
        query = query.where(invites.c.uses < invites.c.max_uses)
    return (await tx.execute(query)).rowcount > 0


async def delete_invite(tx: AsyncConnection, code: str) -> None:
    await tx.execute(delete(invites).where(invites.c.code == code))


async def is_banned(tx: AsyncConnection, guild_id: int, user_id: int) -> bool:
    row = (
        await tx.execute(
            select(bans.c.user_id).where(bans.c.guild_id == guild_id, bans.c.user_id == user_id)
        )
    ).first()
    return row is not None

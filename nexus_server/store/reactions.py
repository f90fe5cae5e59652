"""Reactions: one row per (message, emoji, user)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import reactions


async def add_reaction(
    tx: AsyncConnection, message_id: int, emoji: str, user_id: int, created_id: int
) -> bool:
    """False when the user had already reacted with this emoji."""
    exists = (
        await tx.execute(
            select(reactions.c.user_id).where(
                reactions.c.message_id == message_id,
                reactions.c.emoji == emoji,
                reactions.c.user_id == user_id,
            )
        )
    ).first()
    if exists:
        return False
    try:
        async with tx.begin_nested():
            await tx.execute(
                insert(reactions).values(
                    message_id=message_id, emoji=emoji, user_id=user_id, created_id=created_id
                )
            )
    except IntegrityError:
        return False
    return True


async def remove_reaction(tx: AsyncConnection, message_id: int, emoji: str, user_id: int) -> bool:
    result = await tx.execute(
        delete(reactions).where(
            reactions.c.message_id == message_id,
            reactions.c.emoji == emoji,
            reactions.c.user_id == user_id,
        )
    )
    return result.rowcount > 0


async def remove_all(tx: AsyncConnection, message_id: int, emoji: str | None = None) -> int:
    query = delete(reactions).where(reactions.c.message_id == message_id)
    if emoji is not None:
        query = query.where(reactions.c.emoji == emoji)
    return int((await tx.execute(query)).rowcount)


async def count_distinct_emoji(tx: AsyncConnection, message_id: int) -> int:
    return int(
        (
            await tx.execute(
                select(func.count(func.distinct(reactions.c.emoji))).where(
                    reactions.c.message_id == message_id
                )
            )
        ).scalar_one()
    )


async def users_for(
    tx: AsyncConnection, message_id: int, emoji: str, *, after: int = 0, limit: int = 25
) -> list[int]:
    rows = await tx.execute(
        select(reactions.c.user_id)
        .where(
            reactions.c.message_id == message_id,
            reactions.c.emoji == emoji,
            reactions.c.user_id > after,
        )
        .order_by(reactions.c.user_id)
        .limit(limit)
    )
    return list(rows.scalars())


async def summaries(
    tx: AsyncConnection, message_ids: list[int], viewer_id: int
) -> dict[int, list[tuple[str, int, bool]]]:
    """Per message: (emoji, count, viewer reacted) in the order emoji were first used."""
    if not message_ids:
        return {}
    rows = await tx.execute(
        select(
            reactions.c.message_id,
            reactions.c.emoji,
            func.count().label("uses"),
            func.min(reactions.c.created_id).label("first"),
            func.max(case((reactions.c.user_id == viewer_id, 1), else_=0)).label("me"),
        )
        .where(reactions.c.message_id.in_(message_ids))
        .group_by(reactions.c.message_id, reactions.c.emoji)
        .order_by(reactions.c.message_id, "first")
    )
    found: dict[int, list[tuple[str, int, bool]]] = defaultdict(list)
    for row in rows:
        found[row.message_id].append((row.emoji, int(row.uses), bool(row.me)))
    return found

"""Channels and their permission overwrites."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus_protocol.permissions import Overwrite, OverwriteType, Permissions

from .records import ChannelRecord
from .schema import channels, overwrites


def _overwrite(row: Any) -> Overwrite:
    return Overwrite(
        target_id=row.target_id,
        type=OverwriteType(row.type),
        allow=Permissions(row.allow),
        deny=Permissions(row.deny),
    )


async def _with_overwrites(tx: AsyncConnection, rows: list[Any]) -> list[ChannelRecord]:
    if not rows:
        return []
    found: dict[int, list[Overwrite]] = defaultdict(list)
    ow_rows = await tx.execute(
        select(overwrites)
        .where(overwrites.c.channel_id.in_([row.id for row in rows]))
        .order_by(overwrites.c.channel_id, overwrites.c.target_id)
    )
    for row in ow_rows:
        found[row.channel_id].append(_overwrite(row))
    return [ChannelRecord(**row._mapping, overwrites=tuple(found.get(row.id, ()))) for row in rows]


async def insert_channel(tx: AsyncConnection, **values: Any) -> None:
    await tx.execute(insert(channels).values(**values))


async def get_channel(tx: AsyncConnection, channel_id: int) -> ChannelRecord | None:
    rows = (await tx.execute(select(channels).where(channels.c.id == channel_id))).all()
    found = await _with_overwrites(tx, list(rows))
    return found[0] if found else None


async def channels_of_guild(tx: AsyncConnection, guild_id: int) -> list[ChannelRecord]:
    rows = (
        await tx.execute(
            select(channels)
            .where(channels.c.guild_id == guild_id)
            .order_by(channels.c.position, channels.c.id)
        )
    ).all()
    return await _with_overwrites(tx, list(rows))


async def update_channel(tx: AsyncConnection, channel_id: int, changes: dict[str, Any]) -> None:
    if changes:
        await tx.execute(update(channels).where(channels.c.id == channel_id).values(**changes))


async def delete_channel(tx: AsyncConnection, channel_id: int) -> None:
    # Children of a deleted category stay, uncategorised (Discord's behaviour).
    await tx.execute(
        update(channels).where(channels.c.parent_id == channel_id).values(parent_id=None)
    )
    await tx.execute(delete(channels).where(channels.c.id == channel_id))


async def put_overwrite(tx: AsyncConnection, channel_id: int, overwrite: Overwrite) -> None:
    await tx.execute(
        delete(overwrites).where(
            overwrites.c.channel_id == channel_id, overwrites.c.target_id == overwrite.target_id
        )
    )
    await tx.execute(
        insert(overwrites).values(
            channel_id=channel_id,
            target_id=overwrite.target_id,
            type=int(overwrite.type),
            allow=int(overwrite.allow),
            deny=int(overwrite.deny),
        )
    )


async def replace_overwrites(tx: AsyncConnection, channel_id: int, new: list[Overwrite]) -> None:
    await tx.execute(delete(overwrites).where(overwrites.c.channel_id == channel_id))
    for overwrite in new:
        await put_overwrite(tx, channel_id, overwrite)


async def delete_overwrite(tx: AsyncConnection, channel_id: int, target_id: int) -> bool:
    result = await tx.execute(
        delete(overwrites).where(
            overwrites.c.channel_id == channel_id, overwrites.c.target_id == target_id
        )
    )
    return result.rowcount > 0


async def delete_overwrites_for_target(tx: AsyncConnection, target_id: int) -> None:
    await tx.execute(delete(overwrites).where(overwrites.c.target_id == target_id))


async def set_last_message(tx: AsyncConnection, channel_id: int, message_id: int) -> None:
    await tx.execute(
        update(channels).where(channels.c.id == channel_id).values(last_message_id=message_id)
    )

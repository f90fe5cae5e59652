"""Read states: the last message each user has read in each channel, and what is unread."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exists, false, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import message_mentions, message_role_mentions, messages, read_states


async def last_read(
    tx: AsyncConnection, user_id: int, channel_ids: Iterable[int]
) -> dict[int, int]:
    """Per channel, the last message ``user_id`` has read (channels never read are absent)."""
    wanted = list(channel_ids)
    if not wanted:
        return {}
    rows = await tx.execute(
        select(read_states.c.channel_id, read_states.c.last_message_id).where(
            read_states.c.user_id == user_id, read_states.c.channel_id.in_(wanted)
        )
    )
    return {int(channel_id): int(message_id) for channel_id, message_id in rows}


async def advance(tx: AsyncConnection, user_id: int, channel_id: int, message_id: int) -> int:
    """Move the read marker forward to ``message_id`` (never back); the marker after."""
    await tx.execute(
        update(read_states)
        .where(
            read_states.c.user_id == user_id,
            read_states.c.channel_id == channel_id,
            read_states.c.last_message_id < message_id,
        )
        .values(last_message_id=message_id)
    )
    current = (
        await tx.execute(
            select(read_states.c.last_message_id).where(
                read_states.c.user_id == user_id, read_states.c.channel_id == channel_id
            )
        )
    ).scalar_one_or_none()
    if current is not None:
        return int(current)
    try:
        async with tx.begin_nested():
            await tx.execute(
                insert(read_states).values(
                    user_id=user_id, channel_id=channel_id, last_message_id=message_id
                )
            )
    except IntegrityError:
        # Another ack inserted first: fall back to moving it forward.
        return await advance(tx, user_id, channel_id, message_id)
    return message_id


async def unread_counts(
    tx: AsyncConnection,
    user_id: int,
    role_ids: tuple[int, ...],
    after: dict[int, int],
    *,
    cap: int,
    through: dict[int, int] | None = None,
) -> dict[int, tuple[int, int]]:
    """Per channel: (unread messages, of which mention the user) after ``after[channel]``
    and up to ``through[channel]`` when given, each capped at ``cap``. The user's own
    messages are never unread."""
    mentions_user = exists().where(
        message_mentions.c.message_id == messages.c.id,
        message_mentions.c.user_id == user_id,
    )
    mentions_role = (
        exists().where(
            message_role_mentions.c.message_id == messages.c.id,
            message_role_mentions.c.role_id.in_(role_ids),
        )
        if role_ids
        else false()
    )
    found: dict[int, tuple[int, int]] = {}
    for channel_id, since in after.items():
        upto = (through or {}).get(channel_id)
        bounded = messages.c.id <= upto if upto is not None else true()
        if through is not None and upto is None:
            found[channel_id] = (0, 0)  # no messages at all when the bound was read
            continue
        unread = (
            select(messages.c.id)
            .where(
                messages.c.channel_id == channel_id,
                messages.c.id > since,
                bounded,
                messages.c.author_id != user_id,
            )
            .limit(cap)
            .subquery()
        )
        unread_count = (await tx.execute(select(func.count()).select_from(unread))).scalar_one()
        mention_count = 0
        if unread_count:
            mentioned = (
                select(messages.c.id)
                .where(
                    messages.c.channel_id == channel_id,
                    messages.c.id > since,
                    bounded,
                    messages.c.author_id != user_id,
                    or_(messages.c.mention_everyone, mentions_user, mentions_role),
                )
                .limit(cap)
                .subquery()
            )
            mention_count = (
                await tx.execute(select(func.count()).select_from(mentioned))
            ).scalar_one()
        found[channel_id] = (int(unread_count), int(mention_count))
    return found


async def newest_messages(tx: AsyncConnection, channel_ids: list[int]) -> dict[int, int]:
    """Per channel with messages: the id of its newest one."""
    rows = await tx.execute(
        select(messages.c.channel_id, func.max(messages.c.id))
        .where(messages.c.channel_id.in_(channel_ids))
        .group_by(messages.c.channel_id)
    )
    return {int(channel_id): int(newest) for channel_id, newest in rows}

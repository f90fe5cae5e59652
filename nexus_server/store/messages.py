"""Messages and who they mention."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .attachments import attachments_of, insert_attachments
from .records import AttachmentRecord, MessageRecord
from .schema import message_mentions, message_role_mentions, messages

MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.channel_id,
    messages.c.guild_id,
    messages.c.author_id,
    messages.c.content,
    messages.c.type,
    messages.c.flags,
    messages.c.tts,
    messages.c.edited_at,
    messages.c.pinned_at,
    messages.c.nonce,
    messages.c.mention_everyone,
    messages.c.reference_message_id,
    messages.c.reference_channel_id,
)


async def _records(tx: AsyncConnection, rows: list[Any]) -> list[MessageRecord]:
    if not rows:
        return []
    ids = [row.id for row in rows]
    users: dict[int, list[int]] = defaultdict(list)
    for message_id, user_id in await tx.execute(
        select(message_mentions.c.message_id, message_mentions.c.user_id).where(
            message_mentions.c.message_id.in_(ids)
        )
    ):
        users[message_id].append(user_id)
    role_ids: dict[int, list[int]] = defaultdict(list)
    for message_id, role_id in await tx.execute(
        select(message_role_mentions.c.message_id, message_role_mentions.c.role_id).where(
            message_role_mentions.c.message_id.in_(ids)
        )
    ):
        role_ids[message_id].append(role_id)
    files = await attachments_of(tx, ids)
    return [
        MessageRecord(
            **row._mapping,
            mention_ids=tuple(users.get(row.id, ())),
            mention_role_ids=tuple(role_ids.get(row.id, ())),
            attachments=files.get(row.id, ()),
        )
        for row in rows
    ]


async def find_by_nonce(tx: AsyncConnection, author_id: int, nonce: str) -> MessageRecord | None:
    rows = (
        await tx.execute(
            select(*MESSAGE_COLUMNS).where(
                messages.c.author_id == author_id, messages.c.nonce == nonce
            )
        )
    ).all()
    found = await _records(tx, list(rows))
    return found[0] if found else None


async def insert_message(
    tx: AsyncConnection,
    *,
    message_id: int,
    channel_id: int,
    guild_id: int | None,
    author_id: int,
    content: str,
    message_type: int,
    tts: bool,
    nonce: str | None,
    mention_everyone: bool,
    mention_ids: tuple[int, ...],
    mention_role_ids: tuple[int, ...],
    reference_message_id: int | None,
    reference_channel_id: int | None,
    files: Sequence[tuple[AttachmentRecord, bytes]] = (),
) -> MessageRecord:
    await tx.execute(
        insert(messages).values(
            id=message_id,
            channel_id=channel_id,
            guild_id=guild_id,
            author_id=author_id,
            content=content,
            type=message_type,
            tts=tts,
            nonce=nonce,
            mention_everyone=mention_everyone,
            reference_message_id=reference_message_id,
            reference_channel_id=reference_channel_id,
        )
    )
    await _insert_mentions(tx, message_id, channel_id, mention_ids, mention_role_ids)
    await insert_attachments(tx, files)
    return MessageRecord(
        id=message_id,
        channel_id=channel_id,
        guild_id=guild_id,
        author_id=author_id,
        content=content,
        type=message_type,
        flags=0,
        tts=tts,
        edited_at=None,
        pinned_at=None,
        nonce=nonce,
        mention_everyone=mention_everyone,
        reference_message_id=reference_message_id,
        reference_channel_id=reference_channel_id,
        mention_ids=mention_ids,
        mention_role_ids=mention_role_ids,
        attachments=tuple(record for record, _data in files),
    )


async def _insert_mentions(
    tx: AsyncConnection,
    message_id: int,
    channel_id: int,
    mention_ids: tuple[int, ...],
    mention_role_ids: tuple[int, ...],
) -> None:
    if mention_ids:
        await tx.execute(
            insert(message_mentions),
            [
                {"message_id": message_id, "channel_id": channel_id, "user_id": user_id}
                for user_id in mention_ids
            ],
        )
    if mention_role_ids:
        await tx.execute(
            insert(message_role_mentions),
            [
                {"message_id": message_id, "channel_id": channel_id, "role_id": role_id}
                for role_id in mention_role_ids
            ],
        )


async def get_message(
    tx: AsyncConnection, channel_id: int, message_id: int
) -> MessageRecord | None:
    rows = (
        await tx.execute(
            select(*MESSAGE_COLUMNS).where(
                messages.c.channel_id == channel_id, messages.c.id == message_id
            )
        )
    ).all()
    found = await _records(tx, list(rows))
    return found[0] if found else None


async def get_messages_by_id(
    tx: AsyncConnection, channel_id: int, message_ids: set[int]
) -> list[MessageRecord]:
    if not message_ids:
        return []
    rows = (
        await tx.execute(
            select(*MESSAGE_COLUMNS).where(
                messages.c.channel_id == channel_id, messages.c.id.in_(message_ids)
            )
        )
    ).all()
    return await _records(tx, list(rows))


async def list_messages(
    tx: AsyncConnection,
    channel_id: int,
    *,
    before: int | None = None,
    after: int | None = None,
    around: int | None = None,
    limit: int = 50,
) -> list[MessageRecord]:
    """Newest first, as Discord answers; ``after`` alone pages forward from the oldest."""
    base = select(*MESSAGE_COLUMNS).where(messages.c.channel_id == channel_id)
    if around is not None:
        half = limit // 2
        newer = (
            await tx.execute(
                base.where(messages.c.id >= around).order_by(messages.c.id).limit(limit - half)
            )
        ).all()
        older = (
            await tx.execute(
                base.where(messages.c.id < around).order_by(messages.c.id.desc()).limit(half)
            )
        ).all()
        rows = list(reversed(newer)) + list(older)
    elif after is not None and before is None:
        rows = list(
            reversed(
                (
                    await tx.execute(
                        base.where(messages.c.id > after).order_by(messages.c.id).limit(limit)
                    )
                ).all()
            )
        )
    else:
        query = base
        if before is not None:
            query = query.where(messages.c.id < before)
        if after is not None:
            query = query.where(messages.c.id > after)
        rows = list((await tx.execute(query.order_by(messages.c.id.desc()).limit(limit))).all())
    return await _records(tx, rows)


async def update_content(
    tx: AsyncConnection,
    message_id: int,
    *,
    content: str,
    edited_at: datetime,
    mention_everyone: bool,
    mention_ids: tuple[int, ...],
    mention_role_ids: tuple[int, ...],
    channel_id: int,
) -> None:
    await tx.execute(
        update(messages)
        .where(messages.c.id == message_id)
        .values(content=content, edited_at=edited_at, mention_everyone=mention_everyone)
    )
    await tx.execute(delete(message_mentions).where(message_mentions.c.message_id == message_id))
    await tx.execute(
        delete(message_role_mentions).where(message_role_mentions.c.message_id == message_id)
    )
    await _insert_mentions(tx, message_id, channel_id, mention_ids, mention_role_ids)


async def set_flags(tx: AsyncConnection, message_id: int, flags: int) -> None:
    await tx.execute(update(messages).where(messages.c.id == message_id).values(flags=flags))


async def set_pinned(tx: AsyncConnection, message_id: int, pinned_at: datetime | None) -> None:
    await tx.execute(
        update(messages).where(messages.c.id == message_id).values(pinned_at=pinned_at)
    )


async def pinned_messages(tx: AsyncConnection, channel_id: int) -> list[MessageRecord]:
    rows = (
        await tx.execute(
            select(*MESSAGE_COLUMNS)
            .where(messages.c.channel_id == channel_id, messages.c.pinned_at.is_not(None))
            .order_by(messages.c.pinned_at.desc())
        )
    ).all()
    return await _records(tx, list(rows))


async def delete_messages(tx: AsyncConnection, channel_id: int, message_ids: set[int]) -> int:
    result = await tx.execute(
        delete(messages).where(messages.c.channel_id == channel_id, messages.c.id.in_(message_ids))
    )
    return int(result.rowcount)


async def message_ids_by_author_since(
    tx: AsyncConnection, guild_id: int, author_id: int, since_id: int
) -> dict[int, list[int]]:
    """Per channel, the ids of an author's messages newer than ``since_id`` (for bans)."""
    found: dict[int, list[int]] = defaultdict(list)
    for channel_id, message_id in await tx.execute(
        select(messages.c.channel_id, messages.c.id).where(
            messages.c.guild_id == guild_id,
            messages.c.author_id == author_id,
            messages.c.id > since_id,
        )
    ):
        found[channel_id].append(message_id)
    return found

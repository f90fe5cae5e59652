"""DM channels (type 1) and group DMs (type 3), no guild: their recipients, the envelopes
and Megolm ciphertexts of their messages, and group DMs' signed membership log."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus_protocol.models import MessageType

from . import messages as message_store
from .records import MessageRecord
from .schema import (
    channel_recipients,
    dm_pairs,
    group_ciphertexts,
    group_membership,
    members,
    message_envelopes,
)


@dataclass(frozen=True, slots=True)
class EnvelopeRecord:
    message_id: int
    user_id: int
    device_id: str
    type: int
    ciphertext: bytes


async def find_dm(tx: AsyncConnection, user_a: int, user_b: int) -> int | None:
    low, high = sorted((user_a, user_b))
    row = (
        await tx.execute(
            select(dm_pairs.c.channel_id).where(
                dm_pairs.c.low_user_id == low, dm_pairs.c.high_user_id == high
            )
        )
    ).first()
    return None if row is None else int(row[0])


async def insert_dm(tx: AsyncConnection, channel_id: int, user_a: int, user_b: int) -> None:
    """The channels row must exist already (``channels.insert_channel``)."""
    low, high = sorted((user_a, user_b))
    await tx.execute(
        insert(dm_pairs).values(low_user_id=low, high_user_id=high, channel_id=channel_id)
    )
    await tx.execute(
        insert(channel_recipients),
        [{"channel_id": channel_id, "user_id": u} for u in {user_a, user_b}],
    )


async def recipients(tx: AsyncConnection, channel_id: int) -> tuple[int, ...]:
    rows = await tx.execute(
        select(channel_recipients.c.user_id)
        .where(channel_recipients.c.channel_id == channel_id)
        .order_by(channel_recipients.c.user_id)
    )
    return tuple(int(row[0]) for row in rows)


async def dms_of_user(tx: AsyncConnection, user_id: int) -> dict[int, tuple[int, ...]]:
    """Every DM channel ``user_id`` is in, with all of its recipients."""
    mine = select(channel_recipients.c.channel_id).where(channel_recipients.c.user_id == user_id)
    found: dict[int, list[int]] = defaultdict(list)
    for channel_id, member_id in await tx.execute(
        select(channel_recipients.c.channel_id, channel_recipients.c.user_id)
        .where(channel_recipients.c.channel_id.in_(mine))
        .order_by(channel_recipients.c.channel_id, channel_recipients.c.user_id)
    ):
        found[int(channel_id)].append(int(member_id))
    return {channel_id: tuple(users) for channel_id, users in found.items()}


async def share_a_guild(tx: AsyncConnection, user_a: int, user_b: int) -> bool:
    other = members.alias("other")
    row = (
        await tx.execute(
            select(members.c.guild_id)
            .join(other, other.c.guild_id == members.c.guild_id)
            .where(members.c.user_id == user_a, other.c.user_id == user_b)
            .limit(1)
        )
    ).first()
    return row is not None


async def insert_envelopes(tx: AsyncConnection, envelopes: list[EnvelopeRecord]) -> None:
    await tx.execute(
        insert(message_envelopes),
        [
            {
                "message_id": e.message_id,
                "user_id": e.user_id,
                "device_id": e.device_id,
                "type": e.type,
                "ciphertext": e.ciphertext,
            }
            for e in envelopes
        ],
    )


async def envelopes_of(
    tx: AsyncConnection,
    message_ids: list[int],
    *,
    user_id: int | None = None,
    device_id: str | None = None,
) -> list[EnvelopeRecord]:
    query = select(message_envelopes).where(message_envelopes.c.message_id.in_(message_ids))
    if user_id is not None:
        query = query.where(message_envelopes.c.user_id == user_id)
    if device_id is not None:
        query = query.where(message_envelopes.c.device_id == device_id)
    rows = await tx.execute(query.order_by(message_envelopes.c.message_id))
    return [
        EnvelopeRecord(
            message_id=row.message_id,
            user_id=row.user_id,
            device_id=row.device_id,
            type=row.type,
            ciphertext=bytes(row.ciphertext),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    id: int
    channel_id: int
    user_id: int
    device_id: str
    statement: str
    signature: bytes


async def add_recipients(tx: AsyncConnection, channel_id: int, user_ids: list[int]) -> None:
    await tx.execute(
        insert(channel_recipients), [{"channel_id": channel_id, "user_id": u} for u in user_ids]
    )


async def remove_recipient(tx: AsyncConnection, channel_id: int, user_id: int) -> None:
    await tx.execute(
        delete(channel_recipients).where(
            channel_recipients.c.channel_id == channel_id, channel_recipients.c.user_id == user_id
        )
    )


async def share_a_channel(tx: AsyncConnection, user_a: int, user_b: int) -> bool:
    """Both are recipients of one DM or group DM."""
    other = channel_recipients.alias("other")
    row = (
        await tx.execute(
            select(channel_recipients.c.channel_id)
            .join(other, other.c.channel_id == channel_recipients.c.channel_id)
            .where(channel_recipients.c.user_id == user_a, other.c.user_id == user_b)
            .limit(1)
        )
    ).first()
    return row is not None


async def insert_membership(tx: AsyncConnection, record: MembershipRecord) -> None:
    await tx.execute(
        insert(group_membership).values(
            id=record.id,
            channel_id=record.channel_id,
            user_id=record.user_id,
            device_id=record.device_id,
            statement=record.statement,
            signature=record.signature,
        )
    )


async def membership_log(tx: AsyncConnection, channel_id: int) -> list[MembershipRecord]:
    rows = await tx.execute(
        select(group_membership)
        .where(group_membership.c.channel_id == channel_id)
        .order_by(group_membership.c.id)
    )
    return [
        MembershipRecord(
            id=row.id,
            channel_id=row.channel_id,
            user_id=row.user_id,
            device_id=row.device_id,
            statement=row.statement,
            signature=bytes(row.signature),
        )
        for row in rows
    ]


async def insert_group_ciphertext(tx: AsyncConnection, message_id: int, ciphertext: bytes) -> None:
    await tx.execute(insert(group_ciphertexts).values(message_id=message_id, ciphertext=ciphertext))


async def group_ciphertexts_of(tx: AsyncConnection, message_ids: list[int]) -> dict[int, bytes]:
    rows = await tx.execute(
        select(group_ciphertexts.c.message_id, group_ciphertexts.c.ciphertext).where(
            group_ciphertexts.c.message_id.in_(message_ids)
        )
    )
    return {int(row[0]): bytes(row[1]) for row in rows}


async def insert_encrypted_message(
    tx: AsyncConnection,
    *,
    message_id: int,
    channel_id: int,
    guild_id: int | None,
    author_id: int,
    nonce: str | None,
) -> MessageRecord:
    """The message row of an encrypted message: no content, no mentions, no reply the
    relay can see; its envelopes or Megolm ciphertext are stored beside it."""
    return await message_store.insert_message(
        tx,
        message_id=message_id,
        channel_id=channel_id,
        guild_id=guild_id,
        author_id=author_id,
        content="",
        message_type=int(MessageType.DEFAULT),
        tts=False,
        nonce=nonce,
        mention_everyone=False,
        mention_ids=(),
        mention_role_ids=(),
        reference_message_id=None,
        reference_channel_id=None,
    )

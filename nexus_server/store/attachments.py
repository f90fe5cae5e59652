"""Files attached to messages.

Invariant: a row is written in the same transaction as its message and goes with it
(the foreign key cascades), so a message lists exactly the files that are stored.
Metadata and bytes are read apart: history needs the one, downloads the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .records import AttachmentRecord
from .schema import attachments

ATTACHMENT_COLUMNS = (
    attachments.c.id,
    attachments.c.message_id,
    attachments.c.channel_id,
    attachments.c.position,
    attachments.c.filename,
    attachments.c.description,
    attachments.c.content_type,
    attachments.c.size,
    attachments.c.width,
    attachments.c.height,
    attachments.c.sha256,
)


async def insert_attachments(
    tx: AsyncConnection, files: Iterable[tuple[AttachmentRecord, bytes]]
) -> None:
    rows = [
        {
            "id": record.id,
            "message_id": record.message_id,
            "channel_id": record.channel_id,
            "position": record.position,
            "filename": record.filename,
            "description": record.description,
            "content_type": record.content_type,
            "size": record.size,
            "width": record.width,
            "height": record.height,
            "sha256": record.sha256,
            "data": data,
        }
        for record, data in files
    ]
    if rows:
        await tx.execute(insert(attachments), rows)


async def attachments_of(
    tx: AsyncConnection, message_ids: list[int]
) -> dict[int, tuple[AttachmentRecord, ...]]:
    """Each message's files in upload order, for a whole page in one query."""
    if not message_ids:
        return {}
    found: dict[int, list[AttachmentRecord]] = defaultdict(list)
    rows = await tx.execute(
        select(*ATTACHMENT_COLUMNS)
        .where(attachments.c.message_id.in_(message_ids))
        .order_by(attachments.c.message_id, attachments.c.position)
    )
    for row in rows:
        found[row.message_id].append(AttachmentRecord(**row._mapping))
    return {message_id: tuple(files) for message_id, files in found.items()}


async def get_attachment(
    tx: AsyncConnection, channel_id: int, attachment_id: int
) -> AttachmentRecord | None:
    row = (
        await tx.execute(
            select(*ATTACHMENT_COLUMNS).where(
                attachments.c.id == attachment_id, attachments.c.channel_id == channel_id
            )
        )
    ).first()
    return AttachmentRecord(**row._mapping) if row is not None else None


async def attachment_data(tx: AsyncConnection, attachment_id: int) -> bytes | None:
    data = (
        await tx.execute(select(attachments.c.data).where(attachments.c.id == attachment_id))
    ).scalar_one_or_none()
    return bytes(data) if data is not None else None

"""Stored images: avatars, banners and community icons.

Invariant: a row belongs to one slot, its (``owner_id``, ``kind``), and that slot's
column is the only thing that names it. So whoever changes a slot calls
``delete_replaced`` in the same transaction, and no row outlives its use.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .records import MediaRecord
from .schema import media

MEDIA_COLUMNS = (
    media.c.hash,
    media.c.kind,
    media.c.owner_id,
    media.c.content_type,
    media.c.width,
    media.c.height,
)


async def insert_media(
    tx: AsyncConnection,
    *,
    image_hash: str,
    kind: str,
    owner_id: int,
    content_type: str,
    width: int,
    height: int,
    data: bytes,
    created_at: datetime,
) -> None:
    await tx.execute(
        insert(media).values(
            hash=image_hash,
            kind=kind,
            owner_id=owner_id,
            content_type=content_type,
            width=width,
            height=height,
            data=data,
            created_at=created_at,
        )
    )


async def get_media(tx: AsyncConnection, image_hash: str) -> MediaRecord | None:
    row = (await tx.execute(select(*MEDIA_COLUMNS).where(media.c.hash == image_hash))).first()
    return MediaRecord(**row._mapping) if row else None


async def media_bytes(tx: AsyncConnection, image_hash: str) -> bytes | None:
    data = (
        await tx.execute(select(media.c.data).where(media.c.hash == image_hash))
    ).scalar_one_or_none()
    return bytes(data) if data is not None else None


async def delete_replaced(
    tx: AsyncConnection, owner_id: int, kind: str, keep: str | None
) -> list[str]:
    """Delete the slot's images other than ``keep`` (its new value); returns their hashes."""
    condition = (media.c.owner_id == owner_id) & (media.c.kind == kind)
    if keep is not None:
        condition &= media.c.hash != keep
    gone = list((await tx.execute(select(media.c.hash).where(condition))).scalars())
    if gone:
        await tx.execute(delete(media).where(media.c.hash.in_(gone)))
    return gone


async def delete_owned(tx: AsyncConnection, owner_id: int) -> None:
    """Every image of a user or guild that is going away."""
    await tx.execute(delete(media).where(media.c.owner_id == owner_id))

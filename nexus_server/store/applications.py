"""Bot applications: who owns one, and its bot user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .records import ApplicationRecord
from .schema import applications


def application_record(row: Any) -> ApplicationRecord:
    return ApplicationRecord(**row._mapping)


async def insert_application(
    tx: AsyncConnection,
    *,
    application_id: int,
    owner_id: int,
    name: str,
    bot_user_id: int,
    created_at: datetime,
) -> ApplicationRecord:
    record = ApplicationRecord(
        id=application_id,
        owner_id=owner_id,
        name=name,
        bot_user_id=bot_user_id,
        created_at=created_at,
    )
    await tx.execute(
        insert(applications).values(
            id=application_id,
            owner_id=owner_id,
            name=name,
            bot_user_id=bot_user_id,
            created_at=created_at,
        )
    )
    return record


async def get_application(tx: AsyncConnection, application_id: int) -> ApplicationRecord | None:
    row = (
        await tx.execute(select(applications).where(applications.c.id == application_id))
    ).first()
    return application_record(row) if row else None


async def application_of_bot(tx: AsyncConnection, bot_user_id: int) -> ApplicationRecord | None:
    row = (
        await tx.execute(select(applications).where(applications.c.bot_user_id == bot_user_id))
    ).first()
    return application_record(row) if row else None

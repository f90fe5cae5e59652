"""Accounts and their login sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .records import SessionRecord, UserRecord
from .schema import auth_sessions, users

USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.global_name,
    users.c.avatar,
    users.c.banner,
    users.c.bio,
    users.c.pronouns,
    users.c.accent_color,
    users.c.bot,
    users.c.flags,
)


class UsernameTaken(Exception):
    pass


def user_record(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        global_name=row.global_name,
        avatar=row.avatar,
        banner=row.banner,
        bio=row.bio,
        pronouns=row.pronouns,
        accent_color=row.accent_color,
        bot=row.bot,
        flags=row.flags,
    )


async def insert_user(
    tx: AsyncConnection,
    *,
    user_id: int,
    username: str,
    password_hash: str,
    global_name: str | None,
    bot: bool = False,
) -> UserRecord:
    try:
        async with tx.begin_nested():
            await tx.execute(
                insert(users).values(
                    id=user_id,
                    username=username,
                    password_hash=password_hash,
                    global_name=global_name,
                    bot=bot,
                )
            )
    except IntegrityError as exc:
        raise UsernameTaken(username) from exc
    found = await get_user(tx, user_id)
    assert found is not None
    return found


async def get_user(tx: AsyncConnection, user_id: int) -> UserRecord | None:
    row = (await tx.execute(select(*USER_COLUMNS).where(users.c.id == user_id))).first()
    return user_record(row) if row else None


async def get_users(tx: AsyncConnection, user_ids: set[int]) -> dict[int, UserRecord]:
    if not user_ids:
        return {}
    rows = await tx.execute(select(*USER_COLUMNS).where(users.c.id.in_(user_ids)))
    return {row.id: user_record(row) for row in rows}


async def get_credentials(tx: AsyncConnection, username: str) -> tuple[int, str] | None:
    row = (
        await tx.execute(
            select(users.c.id, users.c.password_hash).where(users.c.username == username)
        )
    ).first()
    return (row.id, row.password_hash) if row else None


async def get_password_hash(tx: AsyncConnection, user_id: int) -> str | None:
    return (
        await tx.execute(select(users.c.password_hash).where(users.c.id == user_id))
    ).scalar_one_or_none()


async def set_password_hash(tx: AsyncConnection, user_id: int, password_hash: str) -> None:
    await tx.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


async def update_user(tx: AsyncConnection, user_id: int, changes: dict[str, Any]) -> None:
    if not changes:
        return
    try:
        async with tx.begin_nested():
            await tx.execute(update(users).where(users.c.id == user_id).values(**changes))
    except IntegrityError as exc:
        raise UsernameTaken(str(changes.get("username"))) from exc


async def insert_session(
    tx: AsyncConnection,
    *,
    session_id: int,
    user_id: int,
    token_hash: bytes,
    created_at: datetime,
    user_agent: str,
) -> None:
    await tx.execute(
        insert(auth_sessions).values(
            id=session_id,
            user_id=user_id,
            token_hash=token_hash,
            created_at=created_at,
            last_used_at=created_at,
            user_agent=user_agent,
        )
    )


async def session_by_token(tx: AsyncConnection, token_hash: bytes) -> SessionRecord | None:
    row = (
        await tx.execute(
            select(
                auth_sessions.c.id,
                auth_sessions.c.user_id,
                auth_sessions.c.created_at,
                auth_sessions.c.last_used_at,
                auth_sessions.c.user_agent,
            ).where(auth_sessions.c.token_hash == token_hash)
        )
    ).first()
    return SessionRecord(**row._mapping) if row else None


async def list_sessions(tx: AsyncConnection, user_id: int) -> list[SessionRecord]:
    rows = await tx.execute(
        select(
            auth_sessions.c.id,
            auth_sessions.c.user_id,
            auth_sessions.c.created_at,
            auth_sessions.c.last_used_at,
            auth_sessions.c.user_agent,
        )
        .where(auth_sessions.c.user_id == user_id)
        .order_by(auth_sessions.c.id)
    )
    return [SessionRecord(**row._mapping) for row in rows]


async def delete_session(tx: AsyncConnection, user_id: int, session_id: int) -> bool:
    result = await tx.execute(
        delete(auth_sessions).where(
            auth_sessions.c.user_id == user_id, auth_sessions.c.id == session_id
        )
    )
    return result.rowcount > 0


async def delete_all_sessions(tx: AsyncConnection, user_id: int) -> None:
    await tx.execute(delete(auth_sessions).where(auth_sessions.c.user_id == user_id))


async def delete_other_sessions(tx: AsyncConnection, user_id: int, keep_session_id: int) -> None:
    await tx.execute(
        delete(auth_sessions).where(
            auth_sessions.c.user_id == user_id, auth_sessions.c.id != keep_session_id
        )
    )

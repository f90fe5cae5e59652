"""Guilds (communities), their roles and members, and the permission snapshot."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .channels import channels_of_guild
from .records import GuildRecord, GuildSnapshot, MemberRecord, RoleRecord
from .schema import guilds, member_roles, members, roles

ROLE_COLUMNS = (
    roles.c.id,
    roles.c.guild_id,
    roles.c.name,
    roles.c.color,
    roles.c.hoist,
    roles.c.position,
    roles.c.permissions,
    roles.c.mentionable,
    roles.c.unicode_emoji,
    roles.c.bot_id,
)


def guild_record(row: Any) -> GuildRecord:
    return GuildRecord(**row._mapping)


def role_record(row: Any) -> RoleRecord:
    return RoleRecord(**row._mapping)


async def insert_guild(
    tx: AsyncConnection, *, guild_id: int, name: str, owner_id: int, **extra: Any
) -> None:
    await tx.execute(insert(guilds).values(id=guild_id, name=name, owner_id=owner_id, **extra))


async def get_guild(tx: AsyncConnection, guild_id: int) -> GuildRecord | None:
    row = (await tx.execute(select(guilds).where(guilds.c.id == guild_id))).first()
    return guild_record(row) if row else None


async def update_guild(tx: AsyncConnection, guild_id: int, changes: dict[str, Any]) -> None:
    if changes:
        await tx.execute(update(guilds).where(guilds.c.id == guild_id).values(**changes))


async def delete_guild(tx: AsyncConnection, guild_id: int) -> None:
    await tx.execute(delete(member_roles).where(member_roles.c.guild_id == guild_id))
    await tx.execute(delete(guilds).where(guilds.c.id == guild_id))


async def guilds_of_user(tx: AsyncConnection, user_id: int) -> list[GuildRecord]:
    rows = await tx.execute(
        select(guilds)
        .join(members, members.c.guild_id == guilds.c.id)
        .where(members.c.user_id == user_id)
        .order_by(guilds.c.id)
    )
    return [guild_record(row) for row in rows]


async def count_guilds_of_user(tx: AsyncConnection, user_id: int) -> int:
    return int(
        (
            await tx.execute(
                select(func.count()).select_from(members).where(members.c.user_id == user_id)
            )
        ).scalar_one()
    )


# Roles -------------------------------------------------------------------------------


async def insert_role(tx: AsyncConnection, **values: Any) -> None:
    await tx.execute(insert(roles).values(**values))


async def roles_of_guild(tx: AsyncConnection, guild_id: int) -> list[RoleRecord]:
    rows = await tx.execute(
        select(*ROLE_COLUMNS)
        .where(roles.c.guild_id == guild_id)
        .order_by(roles.c.position, roles.c.id)
    )
    return [role_record(row) for row in rows]


async def get_role(tx: AsyncConnection, guild_id: int, role_id: int) -> RoleRecord | None:
    row = (
        await tx.execute(
            select(*ROLE_COLUMNS).where(roles.c.guild_id == guild_id, roles.c.id == role_id)
        )
    ).first()
    return role_record(row) if row else None


async def update_role(tx: AsyncConnection, role_id: int, changes: dict[str, Any]) -> None:
    if changes:
        await tx.execute(update(roles).where(roles.c.id == role_id).values(**changes))


async def delete_role(tx: AsyncConnection, role_id: int) -> None:
    await tx.execute(delete(member_roles).where(member_roles.c.role_id == role_id))
    await tx.execute(delete(roles).where(roles.c.id == role_id))


# Members -----------------------------------------------------------------------------


async def insert_member(
    tx: AsyncConnection, *, guild_id: int, user_id: int, joined_at: datetime
) -> None:
    await tx.execute(
        insert(members).values(guild_id=guild_id, user_id=user_id, joined_at=joined_at)
    )


async def get_member(tx: AsyncConnection, guild_id: int, user_id: int) -> MemberRecord | None:
    row = (
        await tx.execute(
            select(members).where(members.c.guild_id == guild_id, members.c.user_id == user_id)
        )
    ).first()
    if row is None:
        return None
    role_ids = (
        await tx.execute(
            select(member_roles.c.role_id)
            .where(member_roles.c.guild_id == guild_id, member_roles.c.user_id == user_id)
            .order_by(member_roles.c.role_id)
        )
    ).scalars()
    return MemberRecord(**row._mapping, role_ids=tuple(role_ids))


async def list_members(
    tx: AsyncConnection, guild_id: int, *, after: int = 0, limit: int = 1000
) -> list[MemberRecord]:
    rows = (
        await tx.execute(
            select(members)
            .where(members.c.guild_id == guild_id, members.c.user_id > after)
            .order_by(members.c.user_id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return []
    role_rows = await tx.execute(
        select(member_roles.c.user_id, member_roles.c.role_id).where(
            member_roles.c.guild_id == guild_id,
            member_roles.c.user_id.in_([row.user_id for row in rows]),
        )
    )
    held: dict[int, list[int]] = defaultdict(list)
    for user_id, role_id in role_rows:
        held[user_id].append(role_id)
    return [
        MemberRecord(**row._mapping, role_ids=tuple(sorted(held.get(row.user_id, ()))))
        for row in rows
    ]


async def member_ids(tx: AsyncConnection, guild_id: int) -> list[int]:
    rows = await tx.execute(select(members.c.user_id).where(members.c.guild_id == guild_id))
    return list(rows.scalars())


async def count_members(tx: AsyncConnection, guild_id: int) -> int:
    return int(
        (
            await tx.execute(
                select(func.count()).select_from(members).where(members.c.guild_id == guild_id)
            )
        ).scalar_one()
    )


async def update_member(
    tx: AsyncConnection, guild_id: int, user_id: int, changes: dict[str, Any]
) -> None:
    if changes:
        await tx.execute(
            update(members)
            .where(members.c.guild_id == guild_id, members.c.user_id == user_id)
            .values(**changes)
        )


async def set_member_roles(
    tx: AsyncConnection, guild_id: int, user_id: int, role_ids: set[int]
) -> None:
    await tx.execute(
        delete(member_roles).where(
            member_roles.c.guild_id == guild_id, member_roles.c.user_id == user_id
        )
    )
    if role_ids:
        await tx.execute(
            insert(member_roles),
            [{"guild_id": guild_id, "user_id": user_id, "role_id": r} for r in role_ids],
        )


async def add_member_role(tx: AsyncConnection, guild_id: int, user_id: int, role_id: int) -> None:
    exists = (
        await tx.execute(
            select(member_roles.c.role_id).where(
                and_(
                    member_roles.c.guild_id == guild_id,
                    member_roles.c.user_id == user_id,
                    member_roles.c.role_id == role_id,
                )
            )
        )
    ).first()
    if not exists:
        await tx.execute(
            insert(member_roles).values(guild_id=guild_id, user_id=user_id, role_id=role_id)
        )


async def remove_member_role(
    tx: AsyncConnection, guild_id: int, user_id: int, role_id: int
) -> None:
    await tx.execute(
        delete(member_roles).where(
            member_roles.c.guild_id == guild_id,
            member_roles.c.user_id == user_id,
            member_roles.c.role_id == role_id,
        )
    )


async def delete_member(tx: AsyncConnection, guild_id: int, user_id: int) -> bool:
    await tx.execute(
        delete(member_roles).where(
            member_roles.c.guild_id == guild_id, member_roles.c.user_id == user_id
        )
    )
    result = await tx.execute(
        delete(members).where(members.c.guild_id == guild_id, members.c.user_id == user_id)
    )
    return result.rowcount > 0


# The permission snapshot -------------------------------------------------------------


async def load_snapshot(tx: AsyncConnection, guild_id: int) -> GuildSnapshot | None:
    guild = await get_guild(tx, guild_id)
    if guild is None:
        return None
    held: dict[int, list[int]] = {user_id: [] for user_id in await member_ids(tx, guild_id)}
    rows = await tx.execute(
        select(member_roles.c.user_id, member_roles.c.role_id).where(
            member_roles.c.guild_id == guild_id
        )
    )
    for user_id, role_id in rows:
        held.setdefault(user_id, []).append(role_id)
    return GuildSnapshot(
        guild=guild,
        roles=tuple(await roles_of_guild(tx, guild_id)),
        member_roles={user_id: tuple(ids) for user_id, ids in held.items()},
        channels={channel.id: channel for channel in await channels_of_guild(tx, guild_id)},
    )


async def search_members(
    tx: AsyncConnection, guild_id: int, query: str, *, limit: int = 1
) -> list[MemberRecord]:
    """Members whose username, display name or nickname starts with ``query``, any case."""
    from .schema import users  # appended late; kept local so the imports above stay put

    prefix = query.lower()
    matched = (
        await tx.execute(
            select(members.c.user_id)
            .join(users, users.c.id == members.c.user_id)
            .where(
                members.c.guild_id == guild_id,
                func.lower(users.c.username).startswith(prefix, autoescape=True)
                | func.lower(func.coalesce(members.c.nick, "")).startswith(prefix, autoescape=True)
                | func.lower(func.coalesce(users.c.global_name, "")).startswith(
                    prefix, autoescape=True
                ),
            )
            .order_by(members.c.user_id)
            .limit(limit)
        )
    ).scalars()
    found = []
    for user_id in list(matched):
        member = await get_member(tx, guild_id, user_id)
        if member is not None:
            found.append(member)
    return found

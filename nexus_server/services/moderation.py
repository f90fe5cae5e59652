"""Moderation: kick, ban (with recent-message deletion), unban, and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import BanBody
from nexus_protocol.snowflake import snowflake_at

from ..errors import unknown
from ..events import Event
from ..store import audit as audit_store
from ..store import bans as ban_store
from ..store import guilds as guild_store
from ..store import messages as message_store
from ..store import users as user_store
from ..store.records import GuildSnapshot
from .accounts import Principal
from .audit import record_audit
from .context import Context
from .members import MemberService, user_body

# Discord's audit log action types.
MEMBER_KICK = 20
MEMBER_BAN_ADD = 22
MEMBER_BAN_REMOVE = 23


def _id(value: int | None) -> str | None:
    return str(value) if value is not None else None


class ModerationService:
    def __init__(self, ctx: Context, members: MemberService) -> None:
        self._ctx = ctx
        self._members = members

    def _moderators(self, snapshot: GuildSnapshot) -> frozenset[int]:
        """Members who may see the ban list, and so its events."""
        perms = self._ctx.permissions
        return frozenset(
            user_id
            for user_id in snapshot.member_roles
            if perms.guild_permissions(snapshot, user_id) & Permissions.BAN_MEMBERS
        )

    async def do_kick(
        self, principal: Principal, guild_id: int, user_id: int, reason: str | None
    ) -> None:
        ctx = self._ctx
        snapshot = await ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.KICK_MEMBERS
        )
        if user_id not in snapshot.member_roles:
            raise unknown(ErrorCode.UNKNOWN_MEMBER, "Member")
        ctx.permissions.check_outranks(snapshot, principal.user_id, user_id)
        async with ctx.db.write("kick_member") as tx:
            removed = await guild_store.delete_member(tx, guild_id, user_id)
            if not removed:
                raise unknown(ErrorCode.UNKNOWN_MEMBER, "Member")
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=user_id,
                action_type=MEMBER_KICK,
                reason=reason,
            )
            user = await user_store.get_user(tx, user_id)
        ctx.permissions.invalidate(guild_id)
        await self._members.publish_removal(guild_id, user_id, user_body(user_id, user))

    async def do_ban(
        self,
        principal: Principal,
        guild_id: int,
        user_id: int,
        body: BanBody,
        reason: str | None,
    ) -> None:
        ctx = self._ctx
        snapshot = await ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.BAN_MEMBERS
        )
        # The owner and the actor are members, so this also refuses banning either;
        # a non-member has no rank to check.
        if user_id in snapshot.member_roles:
            ctx.permissions.check_outranks(snapshot, principal.user_id, user_id)
        reason = reason if reason is not None else body.reason
        seconds = body.delete_message_seconds
        if body.delete_message_days is not None and "delete_message_seconds" not in (
            body.model_fields_set
        ):
            seconds = body.delete_message_days * 86400
        since_id = snowflake_at(ctx.clock() - timedelta(seconds=seconds)) if seconds else None
        deleted: dict[int, list[int]] = {}
        async with ctx.db.write("ban_member") as tx:
            user = await user_store.get_user(tx, user_id)
            if user is None:
                raise unknown(ErrorCode.UNKNOWN_USER, "User")
            await ban_store.put_ban(tx, guild_id, user_id, reason)
            was_member = await guild_store.delete_member(tx, guild_id, user_id)
            if since_id is not None:
                found = await message_store.message_ids_by_author_since(
                    tx, guild_id, user_id, since_id - 1
                )
                for channel_id, ids in found.items():
                    await message_store.delete_messages(tx, channel_id, set(ids))
                    deleted[channel_id] = sorted(ids)
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=user_id,
                action_type=MEMBER_BAN_ADD,
                reason=reason,
            )
        ctx.permissions.invalidate(guild_id)
        rendered_user = user_body(user_id, user)
        events = []
        for channel_id, ids in deleted.items():
            audience = await ctx.permissions.channel_audience(guild_id, channel_id)
            events.append(
                Event.of(
                    "MESSAGE_DELETE_BULK",
                    {
                        "ids": [str(i) for i in ids],
                        "channel_id": str(channel_id),
                        "guild_id": str(guild_id),
                    },
                    audience,
                    guild_id,
                )
            )
        after = await ctx.permissions.snapshot(guild_id)
        moderators = self._moderators(after) if after else frozenset()
        events.append(
            Event.of(
                "GUILD_BAN_ADD",
                {"guild_id": str(guild_id), "user": rendered_user},
                moderators,
                guild_id,
            )
        )
        await ctx.publish(events)
        if was_member:
            await self._members.publish_removal(guild_id, user_id, rendered_user)

    async def do_unban(
        self, principal: Principal, guild_id: int, user_id: int, reason: str | None
    ) -> None:
        ctx = self._ctx
        snapshot = await ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.BAN_MEMBERS
        )
        async with ctx.db.write("unban_member") as tx:
            if not await ban_store.delete_ban(tx, guild_id, user_id):
                raise unknown(ErrorCode.UNKNOWN_BAN, "Ban")
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=user_id,
                action_type=MEMBER_BAN_REMOVE,
                reason=reason,
            )
            user = await user_store.get_user(tx, user_id)
        await ctx.publish(
            [
                Event.of(
                    "GUILD_BAN_REMOVE",
                    {"guild_id": str(guild_id), "user": user_body(user_id, user)},
                    self._moderators(snapshot),
                    guild_id,
                )
            ]
        )

    async def list_bans(
        self,
        principal: Principal,
        guild_id: int,
        *,
        limit: int,
        before: int | None,
        after: int | None,
    ) -> list[dict[str, Any]]:
        await self._ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.BAN_MEMBERS
        )
        async with self._ctx.db.read("list_bans") as tx:
            found = await ban_store.list_bans(tx, guild_id, before=before, after=after, limit=limit)
            users = await user_store.get_users(tx, {ban["user_id"] for ban in found})
        return [
            {"reason": ban["reason"], "user": user_body(ban["user_id"], users.get(ban["user_id"]))}
            for ban in found
        ]

    async def get_ban(self, principal: Principal, guild_id: int, user_id: int) -> dict[str, Any]:
        await self._ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.BAN_MEMBERS
        )
        async with self._ctx.db.read("get_ban") as tx:
            ban = await ban_store.get_ban(tx, guild_id, user_id)
            user = await user_store.get_user(tx, user_id) if ban else None
        if ban is None:
            raise unknown(ErrorCode.UNKNOWN_BAN, "Ban")
        return {"reason": ban["reason"], "user": user_body(user_id, user)}

    async def audit_log(
        self,
        principal: Principal,
        guild_id: int,
        *,
        user_id: int | None,
        action_type: int | None,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> dict[str, Any]:
        await self._ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.VIEW_AUDIT_LOG
        )
        async with self._ctx.db.read("audit_log") as tx:
            entries = await audit_store.list_entries(
                tx,
                guild_id,
                user_id=user_id,
                action_type=action_type,
                before=before,
                after=after,
                limit=limit,
            )
            mentioned = {e["user_id"] for e in entries if e["user_id"] is not None}
            mentioned |= {e["target_id"] for e in entries if e["target_id"] is not None}
            users = await user_store.get_users(tx, mentioned)
        return {
            "audit_log_entries": [
                {
                    "id": str(e["id"]),
                    "guild_id": str(e["guild_id"]),
                    "user_id": _id(e["user_id"]),
                    "target_id": _id(e["target_id"]),
                    "action_type": e["action_type"],
                    "reason": e["reason"],
                    "changes": e["changes"] or [],
                    "options": e["options"],
                }
                for e in entries
            ],
            "users": [user_body(u, users[u]) for u in sorted(users)],
            "integrations": [],
            "webhooks": [],
            "threads": [],
            "application_commands": [],
            "auto_moderation_rules": [],
            "guild_scheduled_events": [],
        }

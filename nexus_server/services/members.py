"""Guild members: list, fetch, search, modify (nick, roles, mute, deaf) and leave."""

from __future__ import annotations

from typing import Any

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import ModifyCurrentMemberBody, ModifyMemberBody

from ..errors import BadRequest, InvalidForm, MissingPermissions, unknown
from ..events import Event
from ..store import guilds as guild_store
from ..store import users as user_store
from ..store.records import GuildSnapshot, MemberRecord, UserRecord
from .accounts import Principal
from .audit import record_audit
from .context import Context
from .render import deleted_user_json, member_json, user_json

# Discord's audit log action types.
MEMBER_UPDATE = 24
MEMBER_ROLE_UPDATE = 25


class MemberService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def _render(self, members: list[MemberRecord]) -> list[dict[str, Any]]:
        async with self._ctx.db.read("render_members") as tx:
            users = await user_store.get_users(tx, {m.user_id for m in members})
        return [member_json(m, users.get(m.user_id)) for m in members]

    async def list_members(
        self, principal: Principal, guild_id: int, *, limit: int, after: int
    ) -> list[dict[str, Any]]:
        await self._ctx.permissions.require_snapshot(guild_id, principal.user_id)
        async with self._ctx.db.read("list_members") as tx:
            found = await guild_store.list_members(tx, guild_id, after=after, limit=limit)
        return await self._render(found)

    async def get_member(self, principal: Principal, guild_id: int, user_id: int) -> dict[str, Any]:
        await self._ctx.permissions.require_snapshot(guild_id, principal.user_id)
        async with self._ctx.db.read("get_member") as tx:
            member = await guild_store.get_member(tx, guild_id, user_id)
        if member is None:
            raise unknown(ErrorCode.UNKNOWN_MEMBER, "Member")
        return (await self._render([member]))[0]

    async def search_members(
        self, principal: Principal, guild_id: int, query: str, limit: int
    ) -> list[dict[str, Any]]:
        await self._ctx.permissions.require_snapshot(guild_id, principal.user_id)
        async with self._ctx.db.read("search_members") as tx:
            found = await guild_store.search_members(tx, guild_id, query, limit=limit)
        return await self._render(found)

    # Changing members ---------------------------------------------------------------

    def check_modify(
        self, snapshot: GuildSnapshot, actor_id: int, target_id: int, changes: dict[str, Any]
    ) -> None:
        """What the actor may change on the target; raises 403 for the first refusal."""
        perms = self._ctx.permissions
        granted = perms.guild_permissions(snapshot, actor_id)
        if "nick" in changes:
            if target_id == actor_id:
                if not granted & (Permissions.CHANGE_NICKNAME | Permissions.MANAGE_NICKNAMES):
                    raise MissingPermissions()
            else:
                if not granted & Permissions.MANAGE_NICKNAMES:
                    raise MissingPermissions()
                perms.check_outranks(snapshot, actor_id, target_id)
        if "mute" in changes and not granted & Permissions.MUTE_MEMBERS:
            raise MissingPermissions()
        if "deaf" in changes and not granted & Permissions.DEAFEN_MEMBERS:
            raise MissingPermissions()
        if "roles" in changes:
            if not granted & Permissions.MANAGE_ROLES:
                raise MissingPermissions()
            by_id = {role.id: role for role in snapshot.roles}
            wanted: set[int] = changes["roles"]
            for index, role_id in enumerate(sorted(wanted)):
                if role_id not in by_id or role_id == snapshot.guild.id:
                    raise InvalidForm.field(
                        ("roles", index), "UNKNOWN_ROLE", f"Unknown role {role_id}"
                    )
            current = set(snapshot.member_roles.get(target_id, ()))
            for role_id in wanted ^ current:
                if role_id in by_id:
                    perms.check_hierarchy(snapshot, actor_id, by_id[role_id].position)

    async def do_modify_member(
        self,
        principal: Principal,
        guild_id: int,
        user_id: int,
        body: ModifyMemberBody | ModifyCurrentMemberBody,
        reason: str | None,
    ) -> dict[str, Any]:
        ctx = self._ctx
        snapshot = await ctx.permissions.require_snapshot(guild_id, principal.user_id)
        if user_id not in snapshot.member_roles:
            raise unknown(ErrorCode.UNKNOWN_MEMBER, "Member")
        changes = body.model_dump(exclude_unset=True)
        changes.pop("channel_id", None)  # a voice move: VoiceService.do_move
        if "nick" in changes and not changes["nick"]:
            changes["nick"] = None
        for key in ("mute", "deaf"):
            if key in changes and changes[key] is None:
                del changes[key]
        if "roles" in changes:
            # The dump renders snowflakes as strings; the model holds them as ints.
            roles = getattr(body, "roles", None)
            if roles is None:
                del changes["roles"]
            else:
                changes["roles"] = set(roles)
        self.check_modify(snapshot, principal.user_id, user_id, changes)
        new_roles: set[int] | None = changes.pop("roles", None)
        async with ctx.db.write("modify_member") as tx:
            before = await guild_store.get_member(tx, guild_id, user_id)
            if before is None:
                raise unknown(ErrorCode.UNKNOWN_MEMBER, "Member")
            await guild_store.update_member(tx, guild_id, user_id, changes)
            audit_changes = [
                {"key": key, "old_value": getattr(before, key), "new_value": value}
                for key, value in changes.items()
                if getattr(before, key) != value
            ]
            if audit_changes:
                await record_audit(
                    tx,
                    ctx,
                    guild_id=guild_id,
                    user_id=principal.user_id,
                    target_id=user_id,
                    action_type=MEMBER_UPDATE,
                    reason=reason,
                    changes=audit_changes,
                )
            if new_roles is not None and new_roles != set(before.role_ids):
                await guild_store.set_member_roles(tx, guild_id, user_id, new_roles)
                by_id = {role.id: role for role in snapshot.roles}
                added = new_roles - set(before.role_ids)
                removed = set(before.role_ids) - new_roles
                role_changes = [
                    {
                        "key": key,
                        "new_value": [
                            {"id": str(r), "name": by_id[r].name if r in by_id else ""}
                            for r in sorted(ids)
                        ],
                    }
                    for key, ids in (("$add", added), ("$remove", removed))
                    if ids
                ]
                await record_audit(
                    tx,
                    ctx,
                    guild_id=guild_id,
                    user_id=principal.user_id,
                    target_id=user_id,
                    action_type=MEMBER_ROLE_UPDATE,
                    reason=reason,
                    changes=role_changes,
                )
            member = await guild_store.get_member(tx, guild_id, user_id)
            user = await user_store.get_user(tx, user_id)
        assert member is not None
        ctx.permissions.invalidate(guild_id)
        rendered = member_json(member, user)
        audience = await ctx.permissions.guild_audience(guild_id)
        await ctx.publish(
            [
                Event.of(
                    "GUILD_MEMBER_UPDATE",
                    rendered | {"guild_id": str(guild_id)},
                    audience,
                    guild_id,
                )
            ]
        )
        return rendered

    async def do_modify_current_member(
        self,
        principal: Principal,
        guild_id: int,
        body: ModifyCurrentMemberBody,
        reason: str | None,
    ) -> dict[str, Any]:
        return await self.do_modify_member(principal, guild_id, principal.user_id, body, reason)

    async def do_leave_guild(self, principal: Principal, guild_id: int) -> None:
        ctx = self._ctx
        snapshot = await ctx.permissions.require_snapshot(guild_id, principal.user_id)
        if snapshot.guild.owner_id == principal.user_id:
            raise BadRequest(ErrorCode.CANNOT_LEAVE_OWNED_GUILD, "Invalid Guild")
        async with ctx.db.write("leave_guild") as tx:
            removed = await guild_store.delete_member(tx, guild_id, principal.user_id)
            user = await user_store.get_user(tx, principal.user_id)
        ctx.permissions.invalidate(guild_id)
        if removed:
            await self.publish_removal(
                guild_id, principal.user_id, user_body(principal.user_id, user)
            )

    async def publish_removal(self, guild_id: int, user_id: int, user: dict[str, Any]) -> None:
        """After a member left or was removed: the rest of the guild learns it, and the
        removed user's own sessions drop the guild."""
        ctx = self._ctx
        audience = await ctx.permissions.guild_audience(guild_id)
        await ctx.publish(
            [
                Event.of(
                    "GUILD_MEMBER_REMOVE",
                    {"guild_id": str(guild_id), "user": user},
                    audience - {user_id},
                    guild_id,
                ),
                Event.of("GUILD_DELETE", {"id": str(guild_id)}, frozenset({user_id}), guild_id),
            ]
        )


def user_body(user_id: int, user: UserRecord | None) -> dict[str, Any]:
    return user_json(user) if user is not None else deleted_user_json(user_id)

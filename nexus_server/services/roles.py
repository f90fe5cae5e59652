"""Roles: create, modify, delete, reorder, and grant to or take from members.

Every operation needs MANAGE_ROLES and respects the hierarchy: nobody touches a role at
or above their own highest role, and nobody hands out a permission they do not hold
(the owner and administrators hold them all). The ``@everyone`` role shares the guild's
id, sits at position 0 and cannot be deleted, granted or moved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import PositionBody, RoleBody

from ..errors import BadRequest, InvalidForm, MissingPermissions, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store import guilds as guild_store
from ..store import users as user_store
from ..store.records import GuildSnapshot, RoleRecord
from .accounts import Principal
from .audit import record_audit
from .context import Context
from .render import member_json, role_json

MAX_ROLES = 250

# Discord's audit log action types.
ROLE_CREATE, ROLE_UPDATE, ROLE_DELETE, MEMBER_ROLE_UPDATE = 30, 31, 32, 25

# RoleBody field -> roles column, for fields stored as given.
_ROLE_FIELDS = ("name", "color", "hoist", "mentionable", "unicode_emoji")


class RoleService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # Checks ----------------------------------------------------------------------------

    async def check_manage_roles(self, principal: Principal, guild_id: int) -> GuildSnapshot:
        return await self._ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.MANAGE_ROLES
        )

    @staticmethod
    def check_role(snapshot: GuildSnapshot, role_id: int) -> RoleRecord:
        for role in snapshot.roles:
            if role.id == role_id:
                return role
        raise unknown(ErrorCode.UNKNOWN_ROLE, "Role")

    def check_manageable(self, snapshot: GuildSnapshot, actor_id: int, role: RoleRecord) -> None:
        # @everyone is below everyone: anyone with MANAGE_ROLES may edit it.
        if role.id != snapshot.guild.id:
            self._ctx.permissions.check_hierarchy(snapshot, actor_id, role.position)

    # Create, modify, delete -------------------------------------------------------------

    async def do_create_role(
        self, principal: Principal, guild_id: int, body: RoleBody, reason: str | None
    ) -> dict[str, Any]:
        """A new role at position 1, just above @everyone; the others move up one."""
        ctx = self._ctx
        snapshot = await self.check_manage_roles(principal, guild_id)
        if len(snapshot.roles) >= MAX_ROLES:
            raise BadRequest(
                ErrorCode.MAX_ROLES, f"Maximum number of server roles reached ({MAX_ROLES})"
            )
        everyone = self.check_role(snapshot, guild_id)
        permissions = (
            body.permissions if body.permissions is not None else Permissions(everyone.permissions)
        )
        self._ctx.permissions.check_grantable(
            snapshot, principal.user_id, Permissions(0), permissions
        )
        role_id = ctx.ids.next_id()
        values: dict[str, Any] = {
            "name": body.name or "new role",
            "color": body.color or 0,
            "hoist": bool(body.hoist),
            "mentionable": bool(body.mentionable),
            "unicode_emoji": body.unicode_emoji,
            "permissions": int(permissions),
        }
        async with ctx.db.write("create_role") as tx:
            shifted = await self._shift_up(tx, guild_id)
            await guild_store.insert_role(tx, id=role_id, guild_id=guild_id, position=1, **values)
            role = await guild_store.get_role(tx, guild_id, role_id)
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=role_id,
                action_type=ROLE_CREATE,
                reason=reason,
                changes=[{"key": k, "new_value": _audit_value(k, v)} for k, v in values.items()],
            )
        assert role is not None
        ctx.permissions.invalidate(guild_id)
        audience = await ctx.permissions.guild_audience(guild_id)
        payload = role_json(role)
        await ctx.publish(
            [Event.of("GUILD_ROLE_CREATE", _role_event(guild_id, role), audience, guild_id)]
            + [
                Event.of("GUILD_ROLE_UPDATE", _role_event(guild_id, r), audience, guild_id)
                for r in shifted
            ]
        )
        return payload

    async def _shift_up(self, tx: AsyncConnection, guild_id: int) -> list[RoleRecord]:
        """Move every role above @everyone up one position; the moved roles, as now."""
        moved = []
        for role in await guild_store.roles_of_guild(tx, guild_id):
            if role.id != guild_id and role.position >= 1:
                await guild_store.update_role(tx, role.id, {"position": role.position + 1})
                moved.append(replace(role, position=role.position + 1))
        return moved

    async def do_modify_role(
        self, principal: Principal, guild_id: int, role_id: int, body: RoleBody, reason: str | None
    ) -> dict[str, Any]:
        ctx = self._ctx
        snapshot = await self.check_manage_roles(principal, guild_id)
        role = self.check_role(snapshot, role_id)
        self.check_manageable(snapshot, principal.user_id, role)
        changes: dict[str, Any] = {
            name: getattr(body, name) for name in _ROLE_FIELDS if name in body.model_fields_set
        }
        if role.id == guild_id:
            changes.pop("name", None)  # @everyone keeps its name, as on Discord
        for flag in ("hoist", "mentionable", "color"):
            if flag in changes and changes[flag] is None:
                del changes[flag]
        if "name" in changes and changes["name"] is None:
            del changes["name"]
        if "permissions" in body.model_fields_set and body.permissions is not None:
            self._ctx.permissions.check_grantable(
                snapshot, principal.user_id, Permissions(role.permissions), body.permissions
            )
            changes["permissions"] = int(body.permissions)
        async with ctx.db.write("modify_role") as tx:
            await guild_store.update_role(tx, role_id, changes)
            updated = await guild_store.get_role(tx, guild_id, role_id)
            if changes:
                await record_audit(
                    tx,
                    ctx,
                    guild_id=guild_id,
                    user_id=principal.user_id,
                    target_id=role_id,
                    action_type=ROLE_UPDATE,
                    reason=reason,
                    changes=[
                        {
                            "key": k,
                            "old_value": _audit_value(k, getattr(role, k)),
                            "new_value": _audit_value(k, v),
                        }
                        for k, v in changes.items()
                    ],
                )
        assert updated is not None
        ctx.permissions.invalidate(guild_id)
        if changes:
            audience = await ctx.permissions.guild_audience(guild_id)
            await ctx.publish(
                [Event.of("GUILD_ROLE_UPDATE", _role_event(guild_id, updated), audience, guild_id)]
            )
        return role_json(updated)

    async def do_delete_role(
        self, principal: Principal, guild_id: int, role_id: int, reason: str | None
    ) -> None:
        ctx = self._ctx
        snapshot = await self.check_manage_roles(principal, guild_id)
        role = self.check_role(snapshot, role_id)
        if role.id == guild_id:
            raise BadRequest(
                ErrorCode.CANNOT_DELETE_SYSTEM_ROLE, "Cannot delete the @everyone role"
            )
        self.check_manageable(snapshot, principal.user_id, role)
        async with ctx.db.write("delete_role") as tx:
            # Its channel overwrites go with it; its holders simply stop holding it.
            await channel_store.delete_overwrites_for_target(tx, role_id)
            await guild_store.delete_role(tx, role_id)
            # Positions stay 1..n: the roles above close the gap.
            shifted = []
            for other in await guild_store.roles_of_guild(tx, guild_id):
                if other.id != guild_id and other.position > role.position:
                    await guild_store.update_role(tx, other.id, {"position": other.position - 1})
                    shifted.append(replace(other, position=other.position - 1))
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=role_id,
                action_type=ROLE_DELETE,
                reason=reason,
                changes=[
                    {"key": "name", "old_value": role.name},
                    {"key": "permissions", "old_value": str(role.permissions)},
                ],
            )
        ctx.permissions.invalidate(guild_id)
        audience = await ctx.permissions.guild_audience(guild_id)
        payload = {"guild_id": str(guild_id), "role_id": str(role_id)}
        await ctx.publish(
            [Event.of("GUILD_ROLE_DELETE", payload, audience, guild_id)]
            + [
                Event.of("GUILD_ROLE_UPDATE", _role_event(guild_id, r), audience, guild_id)
                for r in shifted
            ]
        )

    # Reorder ---------------------------------------------------------------------------

    async def do_reorder_roles(
        self, principal: Principal, guild_id: int, moves: list[PositionBody], reason: str | None
    ) -> list[dict[str, Any]]:
        """Apply ``{id, position}`` moves, then number the roles 1..n from the bottom.

        Roles keep their relative order except the moved ones, each inserted at its
        requested position. A non-owner may move only roles below their highest role,
        and only to places below it.
        """
        ctx = self._ctx
        perms = ctx.permissions
        snapshot = await self.check_manage_roles(principal, guild_id)
        ordered = [
            r for r in sorted(snapshot.roles, key=lambda r: (r.position, r.id)) if r.id != guild_id
        ]
        by_id = {r.id: r for r in ordered}
        current = {r.id: index + 1 for index, r in enumerate(ordered)}
        # Roles strictly below the actor: the only places a moved role may land.
        is_owner = principal.user_id == snapshot.guild.owner_id
        top = perms.top_position(snapshot, principal.user_id)
        below = len(ordered) if is_owner else sum(1 for r in ordered if r.position < top)
        requested: dict[int, int] = {}
        for index, move in enumerate(moves):
            if move.id == guild_id:
                if not move.position:
                    continue  # @everyone listed where it is: no move
                raise InvalidForm.field(
                    (index, "id"), "ROLE_IMMOVABLE", "The @everyone role cannot be moved"
                )
            role = by_id.get(move.id)
            if role is None:
                raise InvalidForm.field((index, "id"), "UNKNOWN_ROLE", "Unknown role")
            if move.position is None or move.position == current[move.id]:
                continue  # clients often send every role; unchanged ones are no moves
            perms.check_hierarchy(snapshot, principal.user_id, role.position)
            target = max(move.position, 1) - 1
            if target >= below:
                raise MissingPermissions("Missing Permissions: role hierarchy")
            requested[move.id] = target
        # Rebuild only the segment below the actor; everything above keeps its order.
        lower = [r for r in ordered[:below] if r.id not in requested]
        for role_id, target in sorted(requested.items(), key=lambda item: (item[1], item[0])):
            lower.insert(min(target, len(lower)), by_id[role_id])
        order = lower + ordered[below:]
        new_positions = {role.id: index + 1 for index, role in enumerate(order)}
        changed = [r for r in ordered if new_positions[r.id] != r.position]
        async with ctx.db.write("reorder_roles") as tx:
            for role in changed:
                await guild_store.update_role(tx, role.id, {"position": new_positions[role.id]})
                await record_audit(
                    tx,
                    ctx,
                    guild_id=guild_id,
                    user_id=principal.user_id,
                    target_id=role.id,
                    action_type=ROLE_UPDATE,
                    reason=reason,
                    changes=[
                        {
                            "key": "position",
                            "old_value": role.position,
                            "new_value": new_positions[role.id],
                        }
                    ],
                )
            roles = await guild_store.roles_of_guild(tx, guild_id)
        ctx.permissions.invalidate(guild_id)
        if changed:
            audience = await perms.guild_audience(guild_id)
            changed_ids = {r.id for r in changed}
            await ctx.publish(
                [
                    Event.of("GUILD_ROLE_UPDATE", _role_event(guild_id, r), audience, guild_id)
                    for r in roles
                    if r.id in changed_ids
                ]
            )
        return [role_json(r) for r in roles]

    # Grant and remove ------------------------------------------------------------------

    async def do_add_member_role(
        self, principal: Principal, guild_id: int, user_id: int, role_id: int, reason: str | None
    ) -> None:
        await self._change_member_role(principal, guild_id, user_id, role_id, reason, add=True)

    async def do_remove_member_role(
        self, principal: Principal, guild_id: int, user_id: int, role_id: int, reason: str | None
    ) -> None:
        await self._change_member_role(principal, guild_id, user_id, role_id, reason, add=False)

    async def _change_member_role(
        self,
        principal: Principal,
        guild_id: int,
        user_id: int,
        role_id: int,
        reason: str | None,
        *,
        add: bool,
    ) -> None:
        ctx = self._ctx
        snapshot = await self.check_manage_roles(principal, guild_id)
        if role_id == guild_id:
            raise unknown(ErrorCode.UNKNOWN_ROLE, "Role")  # everyone holds @everyone
        role = self.check_role(snapshot, role_id)
        if user_id not in snapshot.member_roles:
            raise unknown(ErrorCode.UNKNOWN_MEMBER, "Member")
        ctx.permissions.check_hierarchy(snapshot, principal.user_id, role.position)
        holds = role_id in snapshot.member_roles[user_id]
        if holds == add:
            return  # already so: idempotent, as on Discord
        async with ctx.db.write("add_member_role" if add else "remove_member_role") as tx:
            if add:
                await guild_store.add_member_role(tx, guild_id, user_id, role_id)
            else:
                await guild_store.remove_member_role(tx, guild_id, user_id, role_id)
            member = await guild_store.get_member(tx, guild_id, user_id)
            user = await user_store.get_user(tx, user_id)
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=user_id,
                action_type=MEMBER_ROLE_UPDATE,
                reason=reason,
                changes=[
                    {
                        "key": "$add" if add else "$remove",
                        "new_value": [{"id": str(role.id), "name": role.name}],
                    }
                ],
            )
        if member is None:  # left while we wrote
            raise unknown(ErrorCode.UNKNOWN_MEMBER, "Member")
        ctx.permissions.invalidate(guild_id)
        audience = await ctx.permissions.guild_audience(guild_id)
        payload = {"guild_id": str(guild_id), **member_json(member, user)}
        await ctx.publish([Event.of("GUILD_MEMBER_UPDATE", payload, audience, guild_id)])


def _role_event(guild_id: int, role: RoleRecord) -> dict[str, Any]:
    return {"guild_id": str(guild_id), "role": role_json(role)}


def _audit_value(key: str, value: Any) -> Any:
    # Permission bitfields travel as strings (they exceed JavaScript's safe integers).
    return str(value) if key == "permissions" and value is not None else value

"""Channel administration: modify, delete, reorder, and permission overwrites.

Who hears about a change: overwrites can hide a channel from some members and show it
to others. After every change the audience is computed before and after the commit;
those who keep sight get CHANNEL_UPDATE, those who gain it get CHANNEL_CREATE (their
client never knew the channel) and those who lose it get CHANNEL_DELETE carrying the
channel as they last saw it, so no one learns anything about a channel hidden from them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from nexus_protocol.errors import ErrorCode
from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import Overwrite, OverwriteType, Permissions
from nexus_protocol.requests import EditOverwriteBody, ModifyChannelBody, PositionBody

from ..errors import InvalidForm, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store import guilds as guild_store
from ..store.records import ChannelRecord, GuildRecord
from .accounts import Principal
from .audit import record_audit
from .channels import ChannelService
from .context import Context
from .render import channel_json, guild_json

# Discord's audit log action types.
CHANNEL_UPDATE, CHANNEL_DELETE = 11, 12
OVERWRITE_CREATE, OVERWRITE_UPDATE, OVERWRITE_DELETE = 13, 14, 15

MAX_POSITION_CHANGES = 500

_SIMPLE_FIELDS = ("name", "topic", "position", "nsfw", "rate_limit_per_user")
_NOT_NULL = {"name", "position", "nsfw", "rate_limit_per_user", "bitrate", "user_limit"}
_VOICE_FIELDS = ("bitrate", "user_limit")


class ChannelAdminService:
    def __init__(self, ctx: Context, channels: ChannelService) -> None:
        self._ctx = ctx
        self._channels = channels

    # Checks ----------------------------------------------------------------------------

    # Modify ----------------------------------------------------------------------------

    async def do_modify_channel(
        self, principal: Principal, channel_id: int, body: ModifyChannelBody, reason: str | None
    ) -> dict[str, Any]:
        ctx = self._ctx
        given = body.model_fields_set
        needed = Permissions.MANAGE_CHANNELS
        if "permission_overwrites" in given and body.permission_overwrites is not None:
            needed |= Permissions.MANAGE_ROLES
        channel, snapshot, granted = await self._channels.check_channel(
            principal, channel_id, needed
        )
        assert channel.guild_id is not None
        guild_id = channel.guild_id
        kind = ChannelType(channel.type)
        fields = _SIMPLE_FIELDS + (_VOICE_FIELDS if kind == ChannelType.GUILD_VOICE else ())
        changes: dict[str, Any] = {
            name: getattr(body, name)
            for name in fields
            if name in given and not (name in _NOT_NULL and getattr(body, name) is None)
        }
        if "parent_id" in given:
            self._channels.check_parent(snapshot, body.parent_id, kind)
            changes["parent_id"] = body.parent_id
        if "e2ee" in given and body.e2ee is not None:
            # One way: an encrypted channel stays encrypted (docs/e2ee.md).
            if not body.e2ee and channel.e2ee:
                raise InvalidForm.field(
                    "e2ee", "E2EE_ONE_WAY", "End-to-end encryption cannot be turned off"
                )
            if body.e2ee and kind not in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT):
                raise InvalidForm.field(
                    "e2ee", "E2EE_CHANNEL_TYPE", "Only text channels can be encrypted"
                )
            if body.e2ee:
                changes["e2ee"] = True
        changes = {k: v for k, v in changes.items() if getattr(channel, k) != v}
        new_overwrites: list[Overwrite] | None = None
        if "permission_overwrites" in given and body.permission_overwrites is not None:
            new_overwrites = [
                Overwrite(o.id, OverwriteType(o.type), o.allow, o.deny)
                for o in body.permission_overwrites
            ]
            self._channels.check_overwrite_targets(snapshot, new_overwrites)
            old_by_target = {o.target_id: o for o in channel.overwrites}
            new_by_target = {o.target_id: o for o in new_overwrites}
            for target in old_by_target.keys() | new_by_target.keys():
                self._ctx.permissions.check_overwrite_change(
                    granted, old_by_target.get(target), new_by_target.get(target)
                )
        before = await ctx.permissions.channel_audience(guild_id, channel_id)
        async with ctx.db.write("modify_channel") as tx:
            await channel_store.update_channel(tx, channel_id, changes)
            if new_overwrites is not None:
                await channel_store.replace_overwrites(tx, channel_id, new_overwrites)
            updated = await channel_store.get_channel(tx, channel_id)
            if changes:
                await record_audit(
                    tx,
                    ctx,
                    guild_id=guild_id,
                    user_id=principal.user_id,
                    target_id=channel_id,
                    action_type=CHANNEL_UPDATE,
                    reason=reason,
                    changes=[
                        {
                            "key": k,
                            "old_value": _audit_value(getattr(channel, k)),
                            "new_value": _audit_value(v),
                        }
                        for k, v in changes.items()
                    ],
                )
            if new_overwrites is not None:
                await self._audit_overwrites(tx, principal, channel, new_overwrites, reason=reason)
        assert updated is not None
        await self._publish_change(channel, updated, before)
        return channel_json(updated)

    async def _audit_overwrites(
        self,
        tx: AsyncConnection,
        principal: Principal,
        channel: ChannelRecord,
        new: list[Overwrite],
        *,
        reason: str | None,
    ) -> None:
        assert channel.guild_id is not None
        old_by_target = {o.target_id: o for o in channel.overwrites}
        new_by_target = {o.target_id: o for o in new}
        for target in sorted(old_by_target.keys() | new_by_target.keys()):
            old, now = old_by_target.get(target), new_by_target.get(target)
            if old == now:
                continue
            action = (
                OVERWRITE_CREATE
                if old is None
                else OVERWRITE_DELETE
                if now is None
                else OVERWRITE_UPDATE
            )
            kind = now.type if now is not None else old.type if old is not None else 0
            await record_audit(
                tx,
                self._ctx,
                guild_id=channel.guild_id,
                user_id=principal.user_id,
                target_id=channel.id,
                action_type=action,
                reason=reason,
                changes=_overwrite_changes(old, now),
                options={"id": str(target), "type": str(int(kind))},
            )

    # Delete ----------------------------------------------------------------------------

    async def do_delete_channel(
        self, principal: Principal, channel_id: int, reason: str | None
    ) -> dict[str, Any]:
        """Delete a channel; the children of a deleted category become uncategorised."""
        ctx = self._ctx
        channel, snapshot, _ = await self._channels.check_channel(
            principal, channel_id, Permissions.MANAGE_CHANNELS
        )
        assert channel.guild_id is not None
        guild_id = channel.guild_id
        before = await ctx.permissions.channel_audience(guild_id, channel_id)
        child_ids = [c.id for c in snapshot.channels.values() if c.parent_id == channel_id]
        children: list[ChannelRecord] = []
        guild: GuildRecord | None = None
        async with ctx.db.write("delete_channel") as tx:
            await channel_store.delete_channel(tx, channel_id)
            for child_id in child_ids:
                child = await channel_store.get_channel(tx, child_id)
                if child is not None:
                    children.append(child)
            if snapshot.guild.system_channel_id == channel_id:
                await guild_store.update_guild(tx, guild_id, {"system_channel_id": None})
                guild = replace(snapshot.guild, system_channel_id=None)
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=channel_id,
                action_type=CHANNEL_DELETE,
                reason=reason,
                changes=[
                    {"key": "name", "old_value": channel.name},
                    {"key": "type", "old_value": channel.type},
                ],
            )
        payload = channel_json(channel)
        ctx.permissions.invalidate(guild_id)
        events = [Event.of("CHANNEL_DELETE", payload, before, guild_id)]
        for child in children:
            audience = await ctx.permissions.channel_audience(guild_id, child.id)
            events.append(Event.of("CHANNEL_UPDATE", channel_json(child), audience, guild_id))
        if guild is not None:
            events.append(
                Event.of(
                    "GUILD_UPDATE",
                    guild_json(guild, snapshot.roles),
                    await ctx.permissions.guild_audience(guild_id),
                    guild_id,
                )
            )
        await ctx.publish(events)
        return payload

    # Reorder ---------------------------------------------------------------------------

    async def do_reorder_channels(
        self, principal: Principal, guild_id: int, moves: list[PositionBody]
    ) -> None:
        """Set positions and parents of several channels at once. ``lock_permissions``
        copies the new parent's overwrites onto the channel (needs MANAGE_ROLES there)."""
        ctx = self._ctx
        perms = ctx.permissions
        snapshot = await perms.check_guild(guild_id, principal.user_id, Permissions.MANAGE_CHANNELS)
        if len(moves) > MAX_POSITION_CHANGES:
            raise InvalidForm.field("_body", "TOO_MANY", "Too many channels in one request")
        planned: list[tuple[ChannelRecord, dict[str, Any], list[Overwrite] | None]] = []
        for index, move in enumerate(moves):
            channel = snapshot.channels.get(move.id)
            if channel is None or not (
                perms.in_channel(snapshot, channel, principal.user_id) & Permissions.VIEW_CHANNEL
            ):
                raise InvalidForm.field((index, "id"), "UNKNOWN_CHANNEL", "Unknown channel")
            changes: dict[str, Any] = {}
            if move.position is not None and move.position != channel.position:
                changes["position"] = move.position
            parent_id = channel.parent_id
            if "parent_id" in move.model_fields_set:
                self._channels.check_parent(snapshot, move.parent_id, ChannelType(channel.type))
                parent_id = move.parent_id
                if parent_id != channel.parent_id:
                    changes["parent_id"] = parent_id
            synced: list[Overwrite] | None = None
            if move.lock_permissions and parent_id is not None:
                _, granted = await perms.check_channel(
                    channel, principal.user_id, Permissions.MANAGE_ROLES
                )
                synced = list(snapshot.channels[parent_id].overwrites)
                old_by_target = {o.target_id: o for o in channel.overwrites}
                new_by_target = {o.target_id: o for o in synced}
                for target in old_by_target.keys() | new_by_target.keys():
                    self._ctx.permissions.check_overwrite_change(
                        granted, old_by_target.get(target), new_by_target.get(target)
                    )
            if changes or synced is not None:
                planned.append((channel, changes, synced))
        if not planned:
            return
        before = {
            channel.id: await perms.channel_audience(guild_id, channel.id)
            for channel, _, _ in planned
        }
        updated: dict[int, ChannelRecord] = {}
        async with ctx.db.write("reorder_channels") as tx:
            for channel, changes, synced in planned:
                await channel_store.update_channel(tx, channel.id, changes)
                if synced is not None:
                    await channel_store.replace_overwrites(tx, channel.id, synced)
                    await self._audit_overwrites(tx, principal, channel, synced, reason=None)
                if "parent_id" in changes:
                    await record_audit(
                        tx,
                        ctx,
                        guild_id=guild_id,
                        user_id=principal.user_id,
                        target_id=channel.id,
                        action_type=CHANNEL_UPDATE,
                        reason=None,
                        changes=[
                            {
                                "key": "parent_id",
                                "old_value": _audit_value(channel.parent_id),
                                "new_value": _audit_value(changes["parent_id"]),
                            }
                        ],
                    )
                now = await channel_store.get_channel(tx, channel.id)
                assert now is not None
                updated[channel.id] = now
        perms.invalidate(guild_id)
        events: list[Event] = []
        for channel, _, _ in planned:
            events += await self._change_events(channel, updated[channel.id], before[channel.id])
        await ctx.publish(events)

    # Overwrites ------------------------------------------------------------------------

    async def do_edit_overwrite(
        self,
        principal: Principal,
        channel_id: int,
        target_id: int,
        body: EditOverwriteBody,
        reason: str | None,
    ) -> None:
        ctx = self._ctx
        channel, snapshot, granted = await self._channels.check_channel(
            principal, channel_id, Permissions.MANAGE_ROLES
        )
        assert channel.guild_id is not None
        new = Overwrite(
            target_id,
            OverwriteType(body.type),
            body.allow if body.allow is not None else Permissions(0),
            body.deny if body.deny is not None else Permissions(0),
        )
        self._channels.check_overwrite_targets(snapshot, [new])
        old = next((o for o in channel.overwrites if o.target_id == target_id), None)
        self._ctx.permissions.check_overwrite_change(granted, old, new)
        if old == new:
            return
        before = await ctx.permissions.channel_audience(channel.guild_id, channel_id)
        async with ctx.db.write("edit_overwrite") as tx:
            await channel_store.put_overwrite(tx, channel_id, new)
            # Audit only this target: the channel as if it held just the old overwrite.
            just_old = replace(channel, overwrites=(old,) if old else ())
            await self._audit_overwrites(tx, principal, just_old, [new], reason=reason)
            updated = await channel_store.get_channel(tx, channel_id)
        assert updated is not None
        await self._publish_change(channel, updated, before)

    async def do_delete_overwrite(
        self, principal: Principal, channel_id: int, target_id: int, reason: str | None
    ) -> None:
        ctx = self._ctx
        channel, _, granted = await self._channels.check_channel(
            principal, channel_id, Permissions.MANAGE_ROLES
        )
        assert channel.guild_id is not None
        old = next((o for o in channel.overwrites if o.target_id == target_id), None)
        if old is None:
            raise unknown(ErrorCode.UNKNOWN_OVERWRITE, "Overwrite")
        self._ctx.permissions.check_overwrite_change(granted, old, None)
        before = await ctx.permissions.channel_audience(channel.guild_id, channel_id)
        async with ctx.db.write("delete_overwrite") as tx:
            await channel_store.delete_overwrite(tx, channel_id, target_id)
            await self._audit_overwrites(
                tx, principal, replace(channel, overwrites=(old,)), [], reason=reason
            )
            updated = await channel_store.get_channel(tx, channel_id)
        assert updated is not None
        await self._publish_change(channel, updated, before)

    # Fan-out ---------------------------------------------------------------------------

    async def _publish_change(
        self, old: ChannelRecord, new: ChannelRecord, before: frozenset[int]
    ) -> None:
        assert new.guild_id is not None
        self._ctx.permissions.invalidate(new.guild_id)
        await self._ctx.publish(await self._change_events(old, new, before))

    async def _change_events(
        self, old: ChannelRecord, new: ChannelRecord, before: frozenset[int]
    ) -> list[Event]:
        """UPDATE to who keeps sight, CREATE to who gains it, DELETE to who loses it.
        Call after ``invalidate``."""
        guild_id = new.guild_id
        assert guild_id is not None
        after = await self._ctx.permissions.channel_audience(guild_id, new.id)
        payload = channel_json(new)
        return [
            Event.of("CHANNEL_UPDATE", payload, before & after, guild_id),
            Event.of("CHANNEL_CREATE", payload, after - before, guild_id),
            Event.of("CHANNEL_DELETE", channel_json(old), before - after, guild_id),
        ]


def _audit_value(value: Any) -> Any:
    # Snowflakes as strings, as everywhere on the wire.
    return str(value) if isinstance(value, int) and value > 1 << 32 else value


def _overwrite_changes(old: Overwrite | None, new: Overwrite | None) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    for key in ("allow", "deny"):
        change: dict[str, Any] = {"key": key}
        if old is not None:
            change["old_value"] = str(int(getattr(old, key)))
        if new is not None:
            change["new_value"] = str(int(getattr(new, key)))
        changes.append(change)
    if old is None and new is not None:
        changes += [
            {"key": "id", "new_value": str(new.target_id)},
            {"key": "type", "new_value": int(new.type)},
        ]
    if new is None and old is not None:
        changes += [
            {"key": "id", "old_value": str(old.target_id)},
            {"key": "type", "old_value": int(old.type)},
        ]
    return changes

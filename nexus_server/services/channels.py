"""Guild channels: create, read, list. (Modify, delete, reorder and overwrites live in
``channel_admin``.)"""

from __future__ import annotations

from typing import Any

from nexus_protocol.errors import ErrorCode
from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import NONE, Overwrite, OverwriteType, Permissions
from nexus_protocol.requests import CreateChannelBody

from ..errors import BadRequest, InvalidForm, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store.records import ChannelRecord, GuildSnapshot
from .accounts import Principal
from .audit import record_audit
from .context import Context
from .render import channel_json

MAX_CHANNELS = 500


class ChannelService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def channel(self, channel_id: int) -> ChannelRecord:
        cached = await self._ctx.permissions.cached_channel(channel_id)
        if cached is not None:
            return cached
        async with self._ctx.db.read("get_channel") as tx:
            channel = await channel_store.get_channel(tx, channel_id)
        if channel is None or channel.guild_id is None:
            raise unknown(ErrorCode.UNKNOWN_CHANNEL, "Channel")
        return channel

    async def check_channel(
        self, principal: Principal, channel_id: int, needed: Permissions = NONE
    ) -> tuple[ChannelRecord, GuildSnapshot, Permissions]:
        """The channel, if the caller may see it and holds ``needed`` there."""
        channel = await self.channel(channel_id)
        snapshot, granted = await self._ctx.permissions.check_channel(
            channel, principal.user_id, needed
        )
        return snapshot.channels.get(channel.id, channel), snapshot, granted

    async def get_channel(self, principal: Principal, channel_id: int) -> dict[str, Any]:
        channel, _, _ = await self.check_channel(principal, channel_id)
        return channel_json(channel)

    async def list_channels(self, principal: Principal, guild_id: int) -> list[dict[str, Any]]:
        perms = self._ctx.permissions
        snapshot = await perms.require_snapshot(guild_id, principal.user_id)
        return [
            channel_json(channel)
            for channel in sorted(snapshot.channels.values(), key=lambda c: (c.position, c.id))
            if perms.in_channel(snapshot, channel, principal.user_id) & Permissions.VIEW_CHANNEL
        ]

    def check_parent(
        self, snapshot: GuildSnapshot, parent_id: int | None, kind: ChannelType
    ) -> None:
        if parent_id is None:
            return
        parent = snapshot.channels.get(parent_id)
        if parent is None or parent.type != ChannelType.GUILD_CATEGORY:
            raise InvalidForm.field("parent_id", "CHANNEL_PARENT_INVALID", "Not a category")
        if kind == ChannelType.GUILD_CATEGORY:
            raise InvalidForm.field("parent_id", "CHANNEL_PARENT_INVALID", "Categories cannot nest")

    def check_overwrite_targets(self, snapshot: GuildSnapshot, overwrites: list[Overwrite]) -> None:
        role_ids = {role.id for role in snapshot.roles}
        for index, overwrite in enumerate(overwrites):
            known = (
                overwrite.target_id in role_ids
                if overwrite.type is OverwriteType.ROLE
                else overwrite.target_id in snapshot.member_roles
            )
            if not known:
                raise InvalidForm.field(
                    ("permission_overwrites", index, "id"),
                    "UNKNOWN_TARGET",
                    "Overwrite target is not a role or member of this guild",
                )

    async def do_create_channel(
        self, principal: Principal, guild_id: int, body: CreateChannelBody, reason: str | None
    ) -> dict[str, Any]:
        ctx = self._ctx
        snapshot = await ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.MANAGE_CHANNELS
        )
        if body.type not in {
            ChannelType.GUILD_TEXT,
            ChannelType.GUILD_VOICE,
            ChannelType.GUILD_CATEGORY,
            ChannelType.GUILD_ANNOUNCEMENT,
        }:
            raise InvalidForm.field("type", "CHANNEL_TYPE_INVALID", "Not a guild channel type")
        if len(snapshot.channels) >= MAX_CHANNELS:
            raise BadRequest(
                ErrorCode.MAX_CHANNELS, f"Maximum number of guild channels reached ({MAX_CHANNELS})"
            )
        self.check_parent(snapshot, body.parent_id, body.type)
        new_overwrites = [
            Overwrite(o.id, OverwriteType(o.type), o.allow, o.deny)
            for o in body.permission_overwrites
        ]
        self.check_overwrite_targets(snapshot, new_overwrites)
        channel_id = ctx.ids.next_id()
        voice = body.type == ChannelType.GUILD_VOICE
        position = body.position
        if position is None:
            siblings = [
                c.position for c in snapshot.channels.values() if c.parent_id == body.parent_id
            ]
            position = max(siblings, default=-1) + 1
        async with ctx.db.write("create_channel") as tx:
            await channel_store.insert_channel(
                tx,
                id=channel_id,
                guild_id=guild_id,
                type=int(body.type),
                name=body.name,
                topic=body.topic,
                position=position,
                parent_id=body.parent_id,
                nsfw=body.nsfw,
                rate_limit_per_user=body.rate_limit_per_user,
                bitrate=(body.bitrate or 64000) if voice else None,
                user_limit=(body.user_limit or 0) if voice else None,
            )
            for overwrite in new_overwrites:
                await channel_store.put_overwrite(tx, channel_id, overwrite)
            channel = await channel_store.get_channel(tx, channel_id)
            await record_audit(
                tx,
                ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=channel_id,
                action_type=10,
                reason=reason,
                changes=[
                    {"key": "name", "new_value": body.name},
                    {"key": "type", "new_value": int(body.type)},
                ],
            )
        assert channel is not None
        payload = channel_json(channel)
        ctx.permissions.invalidate(guild_id)
        audience = await ctx.permissions.channel_audience(guild_id, channel_id)
        await ctx.publish([Event.of("CHANNEL_CREATE", payload, audience, guild_id)])
        return payload

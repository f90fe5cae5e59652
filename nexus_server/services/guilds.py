"""Communities: create, read, modify, delete, transfer; joining and leaving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nexus_protocol.errors import ErrorCode
from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import DEFAULT_EVERYONE, Permissions
from nexus_protocol.requests import CreateGuildBody, ModifyGuildBody

from ..errors import BadRequest, Forbidden, InvalidForm, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store import guilds as guild_store
from ..store import media as media_store
from ..store import users as user_store
from ..store.records import GuildRecord
from .accounts import Principal
from .audit import record_audit
from .context import Context
from .media import MediaKind, MediaService
from .presence import PresenceService
from .render import channel_json, guild_json, member_json, role_json, user_json

MAX_GUILDS_PER_USER = 200
GUILD_IMAGES: dict[str, MediaKind] = {"icon": "icon", "banner": "guild_banner"}


class GuildService:
    def __init__(self, ctx: Context, presence: PresenceService, media: MediaService) -> None:
        self._ctx = ctx
        self._presence = presence
        self._media = media
        # Who is in the guild's voice channels, for GUILD_CREATE (set by the relay).
        self.voice_states_of: Callable[[int], list[dict[str, Any]]] = lambda guild_id: []

    async def do_create_guild(self, principal: Principal, body: CreateGuildBody) -> dict[str, Any]:
        ctx = self._ctx
        guild_id = ctx.ids.next_id()
        category_id, general_id, voice_category_id, voice_id = (ctx.ids.next_id() for _ in range(4))
        images = await self._media.check_image_fields(
            body.model_dump(include={"icon"}, exclude_none=True), GUILD_IMAGES
        )
        async with ctx.db.write("create_guild") as tx:
            if await guild_store.count_guilds_of_user(tx, principal.user_id) >= MAX_GUILDS_PER_USER:
                raise BadRequest(ErrorCode.MAX_GUILDS, "Maximum number of guilds reached (200)")
            icon = (await self._media.write_images(tx, guild_id, images, {})).get("icon")
            await guild_store.insert_guild(
                tx,
                guild_id=guild_id,
                name=body.name,
                owner_id=principal.user_id,
                icon=icon,
                description=body.description,
                system_channel_id=general_id,
            )
            # The @everyone role shares the guild's id, as on Discord.
            await guild_store.insert_role(
                tx,
                id=guild_id,
                guild_id=guild_id,
                name="@everyone",
                position=0,
                permissions=int(DEFAULT_EVERYONE),
            )
            for channel_id, kind, name, parent, position in (
                (category_id, ChannelType.GUILD_CATEGORY, "Text Channels", None, 0),
                (general_id, ChannelType.GUILD_TEXT, "general", category_id, 0),
                (voice_category_id, ChannelType.GUILD_CATEGORY, "Voice Channels", None, 1),
                (voice_id, ChannelType.GUILD_VOICE, "General", voice_category_id, 0),
            ):
                await channel_store.insert_channel(
                    tx,
                    id=channel_id,
                    guild_id=guild_id,
                    type=int(kind),
                    name=name,
                    parent_id=parent,
                    position=position,
                    bitrate=64000 if kind == ChannelType.GUILD_VOICE else None,
                    user_limit=0 if kind == ChannelType.GUILD_VOICE else None,
                )
            await guild_store.insert_member(
                tx, guild_id=guild_id, user_id=principal.user_id, joined_at=ctx.clock()
            )
        payload = await self.guild_create_payload(guild_id, principal.user_id)
        await ctx.publish(
            [Event.of("GUILD_CREATE", payload, frozenset({principal.user_id}), guild_id)]
        )
        async with ctx.db.read("created_guild") as tx:
            guild = await guild_store.get_guild(tx, guild_id)
            roles = await guild_store.roles_of_guild(tx, guild_id)
        assert guild is not None
        return guild_json(guild, roles)

    async def guild_create_payload(self, guild_id: int, user_id: int) -> dict[str, Any]:
        """GUILD_CREATE as the gateway sends it: the guild with the channels the user may
        see, every role, the members (with users) and the member count."""
        snapshot = await self._ctx.permissions.require_snapshot(guild_id, user_id)
        perms = self._ctx.permissions
        async with self._ctx.db.read("guild_create_payload") as tx:
            members = await guild_store.list_members(tx, guild_id, limit=1000)
            users = await user_store.get_users(tx, {m.user_id for m in members})
            joined = next((m for m in members if m.user_id == user_id), None)
            if joined is None:
                joined = await guild_store.get_member(tx, guild_id, user_id)
        payload = guild_json(
            snapshot.guild, snapshot.roles, member_count=len(snapshot.member_roles)
        )
        payload["channels"] = [
            channel_json(channel)
            for channel in sorted(snapshot.channels.values(), key=lambda c: (c.position, c.id))
            if perms.in_channel(snapshot, channel, user_id) & Permissions.VIEW_CHANNEL
        ]
        payload["members"] = [member_json(m, users.get(m.user_id)) for m in members]
        payload["member_count"] = len(snapshot.member_roles)
        payload["joined_at"] = joined.joined_at.isoformat() if joined else None
        payload["large"] = len(snapshot.member_roles) > 250
        payload["unavailable"] = False
        payload["lazy"] = True
        payload["voice_states"] = self.voice_states_of(guild_id)
        payload["presences"] = self._presence.presences({m.user_id for m in members})
        payload["threads"] = []
        payload["stage_instances"] = []
        payload["guild_scheduled_events"] = []
        payload["soundboard_sounds"] = []
        return payload

    async def get_guild(
        self, principal: Principal, guild_id: int, with_counts: bool
    ) -> dict[str, Any]:
        snapshot = await self._ctx.permissions.require_snapshot(guild_id, principal.user_id)
        return guild_json(
            snapshot.guild,
            snapshot.roles,
            member_count=len(snapshot.member_roles) if with_counts else None,
        )

    async def list_my_guilds(self, principal: Principal) -> list[dict[str, Any]]:
        async with self._ctx.db.read("list_my_guilds") as tx:
            found = await guild_store.guilds_of_user(tx, principal.user_id)
        out: list[dict[str, Any]] = []
        for guild in found:
            snapshot = await self._ctx.permissions.snapshot(guild.id)
            permissions = (
                self._ctx.permissions.guild_permissions(snapshot, principal.user_id)
                if snapshot
                else Permissions(0)
            )
            out.append(
                {
                    "id": str(guild.id),
                    "name": guild.name,
                    "icon": guild.icon,
                    "banner": guild.banner,
                    "owner": guild.owner_id == principal.user_id,
                    "permissions": str(int(permissions)),
                    "features": [],
                }
            )
        return out

    async def do_modify_guild(
        self, principal: Principal, guild_id: int, body: ModifyGuildBody, reason: str | None
    ) -> dict[str, Any]:
        snapshot = await self._ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.MANAGE_GUILD
        )
        changes = body.model_dump(exclude_unset=True)
        new_owner = changes.pop("owner_id", None)
        if new_owner is not None and new_owner != snapshot.guild.owner_id:
            if principal.user_id != snapshot.guild.owner_id:
                raise Forbidden(
                    ErrorCode.MISSING_PERMISSIONS, "Only the owner can transfer ownership"
                )
            if new_owner not in snapshot.member_roles:
                raise InvalidForm.field(
                    "owner_id", "UNKNOWN_MEMBER", "The new owner must be a member"
                )
            changes["owner_id"] = new_owner
        system_channel = changes.get("system_channel_id")
        if system_channel is not None and system_channel not in snapshot.channels:
            raise InvalidForm.field("system_channel_id", "UNKNOWN_CHANNEL", "Unknown channel")
        # Only once permissions are checked: processing an image costs real CPU.
        images = await self._media.check_image_fields(changes, GUILD_IMAGES)
        for image in images:
            del changes[image.field]
        async with self._ctx.db.write("modify_guild") as tx:
            if images:
                before = await guild_store.get_guild(tx, guild_id)
                if before is None:
                    raise unknown(ErrorCode.UNKNOWN_GUILD, "Guild")
                current = {"icon": before.icon, "banner": before.banner}
                changes |= await self._media.write_images(tx, guild_id, images, current)
            await guild_store.update_guild(tx, guild_id, changes)
            guild = await guild_store.get_guild(tx, guild_id)
            roles = await guild_store.roles_of_guild(tx, guild_id)
            await record_audit(
                tx,
                self._ctx,
                guild_id=guild_id,
                user_id=principal.user_id,
                target_id=guild_id,
                action_type=1,
                reason=reason,
                changes=[
                    {"key": k, "new_value": str(v) if isinstance(v, int) else v}
                    for k, v in changes.items()
                ],
            )
        assert guild is not None
        payload = guild_json(guild, roles)
        audience = frozenset(snapshot.member_roles)
        await self._ctx.publish([Event.of("GUILD_UPDATE", payload, audience, guild_id)])
        return payload

    async def do_delete_guild(self, principal: Principal, guild_id: int) -> None:
        snapshot = await self._ctx.permissions.require_snapshot(guild_id, principal.user_id)
        if snapshot.guild.owner_id != principal.user_id:
            raise Forbidden(ErrorCode.MISSING_PERMISSIONS, "Only the owner can delete a guild")
        async with self._ctx.db.write("delete_guild") as tx:
            await guild_store.delete_guild(tx, guild_id)
            await media_store.delete_owned(tx, guild_id)
        await self._ctx.publish(
            [
                Event.of(
                    "GUILD_DELETE",
                    {"id": str(guild_id), "unavailable": False},
                    frozenset(snapshot.member_roles),
                    guild_id,
                )
            ]
        )

    async def get_guild_record(self, guild_id: int) -> GuildRecord:
        async with self._ctx.db.read("get_guild") as tx:
            guild = await guild_store.get_guild(tx, guild_id)
        if guild is None:
            raise unknown(ErrorCode.UNKNOWN_GUILD, "Guild")
        return guild

    async def list_roles(self, principal: Principal, guild_id: int) -> list[dict[str, Any]]:
        snapshot = await self._ctx.permissions.require_snapshot(guild_id, principal.user_id)
        return [role_json(r) for r in snapshot.roles]

    async def user_payload(self, user_id: int) -> dict[str, Any]:
        async with self._ctx.db.read("user_payload") as tx:
            user = await user_store.get_user(tx, user_id)
        if user is None:
            raise unknown(ErrorCode.UNKNOWN_USER, "User")
        return user_json(user)

"""Invites: create with max uses and expiry, preview without joining, accept, list, revoke."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import CreateInviteBody

from ..errors import Forbidden, MissingPermissions, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store import guilds as guild_store
from ..store import invites as invite_store
from ..store import users as user_store
from .accounts import Principal
from .audit import record_audit
from .context import Context
from .guilds import GuildService
from .presence import PresenceService
from .render import channel_json, guild_json, iso, member_json, user_json

INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def new_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(10))


class InviteService:
    def __init__(self, ctx: Context, guilds: GuildService, presence: PresenceService) -> None:
        self._ctx = ctx
        self._guilds = guilds
        self._presence = presence

    async def _render(self, invite: dict[str, Any], *, with_meta: bool) -> dict[str, Any]:
        async with self._ctx.db.read("render_invite") as tx:
            guild = await guild_store.get_guild(tx, invite["guild_id"])
            channel = await channel_store.get_channel(tx, invite["channel_id"])
            inviter = (
                await user_store.get_user(tx, invite["inviter_id"])
                if invite["inviter_id"]
                else None
            )
            member_count = await guild_store.count_members(tx, invite["guild_id"])
        assert guild is not None and channel is not None
        members = await self._ctx.permissions.guild_audience(guild.id)
        # Approximate, as the name says: those this node sees online (invisible ones not).
        online = len(self._presence.presences(set(members)))
        guild_body = guild_json(guild, [])
        body: dict[str, Any] = {
            "type": 0,
            "code": invite["code"],
            "guild": {
                k: guild_body[k]
                for k in ("id", "name", "icon", "banner", "description", "features")
            },
            "channel": {k: channel_json(channel)[k] for k in ("id", "name", "type")},
            "inviter": user_json(inviter) if inviter else None,
            "expires_at": iso(invite["expires_at"]),
            "approximate_member_count": member_count,
            "approximate_presence_count": online,
        }
        if with_meta:
            body |= {
                "uses": invite["uses"],
                "max_uses": invite["max_uses"],
                "max_age": invite["max_age"],
                "temporary": invite["temporary"],
                "created_at": iso(invite["created_at"]),
            }
        return body

    async def do_create_invite(
        self, principal: Principal, channel_id: int, body: CreateInviteBody
    ) -> dict[str, Any]:
        ctx = self._ctx
        async with ctx.db.read("invite_channel") as tx:
            channel = await channel_store.get_channel(tx, channel_id)
        if channel is None or channel.guild_id is None:
            raise unknown(ErrorCode.UNKNOWN_CHANNEL, "Channel")
        await ctx.permissions.check_channel(
            channel, principal.user_id, Permissions.CREATE_INSTANT_INVITE
        )
        now = ctx.clock()
        code = new_code()
        values = {
            "code": code,
            "guild_id": channel.guild_id,
            "channel_id": channel.id,
            "inviter_id": principal.user_id,
            "uses": 0,
            "max_uses": body.max_uses,
            "max_age": body.max_age,
            "temporary": body.temporary,
            "created_at": now,
            "expires_at": now + timedelta(seconds=body.max_age) if body.max_age else None,
        }
        async with ctx.db.write("create_invite") as tx:
            await invite_store.insert_invite(tx, **values)
            await record_audit(
                tx,
                ctx,
                guild_id=channel.guild_id,
                user_id=principal.user_id,
                action_type=40,
                changes=[{"key": "code", "new_value": code}],
            )
        rendered = await self._render(values, with_meta=True)
        audience = await ctx.permissions.channel_audience(
            channel.guild_id, channel.id, Permissions.VIEW_CHANNEL | Permissions.MANAGE_CHANNELS
        )
        await ctx.publish(
            [
                Event.of(
                    "INVITE_CREATE",
                    rendered | {"channel_id": str(channel.id), "guild_id": str(channel.guild_id)},
                    audience,
                    channel.guild_id,
                )
            ]
        )
        return rendered

    async def demo_invite(self, principal: Principal, guild_id: int, channel_id: int) -> str:
        """A never-expiring invite for the demo community, made once and then reused."""
        async with self._ctx.db.read("demo_invites") as tx:
            existing = await invite_store.invites_of_guild(tx, guild_id)
        for invite in existing:
            if not invite["max_uses"] and invite["expires_at"] is None:
                return str(invite["code"])
        created = await self.do_create_invite(principal, channel_id, CreateInviteBody(max_age=0))
        return str(created["code"])

    async def preview(self, code: str) -> dict[str, Any]:
        async with self._ctx.db.read("preview_invite") as tx:
            invite = await invite_store.get_invite(tx, code)
        if invite is None or _expired(invite, self._ctx.clock()):
            raise unknown(ErrorCode.UNKNOWN_INVITE, "Invite")
        return await self._render(invite, with_meta=False)

    async def do_accept(self, principal: Principal, code: str) -> dict[str, Any]:
        ctx = self._ctx
        now = ctx.clock()
        joined = False
        async with ctx.db.write("accept_invite") as tx:
            invite = await invite_store.get_invite(tx, code)
            if invite is None:
                raise unknown(ErrorCode.UNKNOWN_INVITE, "Invite")
            guild_id = invite["guild_id"]
            if await invite_store.is_banned(tx, guild_id, principal.user_id):
                raise Forbidden(ErrorCode.MISSING_ACCESS, "You are banned from this guild")
            if await guild_store.get_member(tx, guild_id, principal.user_id) is None:
                if not await invite_store.use_invite(tx, code, now):
                    raise unknown(ErrorCode.UNKNOWN_INVITE, "Invite")
                await guild_store.insert_member(
                    tx, guild_id=guild_id, user_id=principal.user_id, joined_at=now
                )
                joined = True
            member = await guild_store.get_member(tx, guild_id, principal.user_id)
            user = await user_store.get_user(tx, principal.user_id)
        rendered = await self._render(invite, with_meta=False)
        if joined:
            ctx.permissions.invalidate(guild_id)
            assert member is not None
            audience = await ctx.permissions.guild_audience(guild_id)
            member_body = member_json(member, user) | {"guild_id": str(guild_id)}
            await ctx.publish([Event.of("GUILD_MEMBER_ADD", member_body, audience, guild_id)])
            # The newcomer's own sessions learn the whole guild, as on Discord.
            payload = await self._guilds.guild_create_payload(guild_id, principal.user_id)
            await ctx.publish(
                [Event.of("GUILD_CREATE", payload, frozenset({principal.user_id}), guild_id)]
            )
            rendered["new_member"] = True
        return rendered

    async def list_for_guild(self, principal: Principal, guild_id: int) -> list[dict[str, Any]]:
        await self._ctx.permissions.check_guild(
            guild_id, principal.user_id, Permissions.MANAGE_GUILD
        )
        async with self._ctx.db.read("list_invites") as tx:
            found = await invite_store.invites_of_guild(tx, guild_id)
        return [await self._render(i, with_meta=True) for i in found]

    async def list_for_channel(self, principal: Principal, channel_id: int) -> list[dict[str, Any]]:
        async with self._ctx.db.read("invite_channel") as tx:
            channel = await channel_store.get_channel(tx, channel_id)
        if channel is None or channel.guild_id is None:
            raise unknown(ErrorCode.UNKNOWN_CHANNEL, "Channel")
        await self._ctx.permissions.check_channel(
            channel, principal.user_id, Permissions.MANAGE_CHANNELS
        )
        async with self._ctx.db.read("list_channel_invites") as tx:
            found = await invite_store.invites_of_channel(tx, channel_id)
        return [await self._render(i, with_meta=True) for i in found]

    async def do_revoke(self, principal: Principal, code: str) -> dict[str, Any]:
        ctx = self._ctx
        async with ctx.db.read("revoke_lookup") as tx:
            invite = await invite_store.get_invite(tx, code)
        if invite is None:
            raise unknown(ErrorCode.UNKNOWN_INVITE, "Invite")
        snapshot = await ctx.permissions.require_snapshot(invite["guild_id"], principal.user_id)
        channel = snapshot.channels.get(invite["channel_id"])
        allowed = (
            ctx.permissions.guild_permissions(snapshot, principal.user_id)
            & Permissions.MANAGE_GUILD
        )
        if not allowed and channel is not None:
            allowed = (
                ctx.permissions.in_channel(snapshot, channel, principal.user_id)
                & Permissions.MANAGE_CHANNELS
            )
        if not allowed:
            raise MissingPermissions()
        rendered = await self._render(invite, with_meta=True)
        async with ctx.db.write("revoke_invite") as tx:
            await invite_store.delete_invite(tx, code)
            await record_audit(
                tx,
                ctx,
                guild_id=invite["guild_id"],
                user_id=principal.user_id,
                action_type=42,
                changes=[{"key": "code", "old_value": code}],
            )
        audience = await ctx.permissions.channel_audience(
            invite["guild_id"],
            invite["channel_id"],
            Permissions.VIEW_CHANNEL | Permissions.MANAGE_CHANNELS,
        )
        await ctx.publish(
            [
                Event.of(
                    "INVITE_DELETE",
                    {
                        "code": code,
                        "channel_id": str(invite["channel_id"]),
                        "guild_id": str(invite["guild_id"]),
                    },
                    audience,
                    invite["guild_id"],
                )
            ]
        )
        return rendered


def _expired(invite: dict[str, Any], now: Any) -> bool:
    expires_at = invite["expires_at"]
    if expires_at is None:
        return False
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=now.tzinfo)
    return bool(expires_at <= now)

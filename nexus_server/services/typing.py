"""Typing indicators: nothing is stored, the channel just hears who is typing."""

from __future__ import annotations

from typing import Any

from nexus_protocol.permissions import Permissions

from ..events import Event
from ..store import guilds as guild_store
from ..store import users as user_store
from .accounts import Principal
from .channels import ChannelService
from .context import Context
from .render import member_json


class TypingService:
    def __init__(self, ctx: Context, channels: ChannelService) -> None:
        self._ctx = ctx
        self._channels = channels

    async def do_start_typing(self, principal: Principal, channel_id: int) -> None:
        ctx = self._ctx
        channel, snapshot, _ = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
        )
        async with ctx.db.read("typing_member") as tx:
            member = await guild_store.get_member(tx, snapshot.guild.id, principal.user_id)
            user = await user_store.get_user(tx, principal.user_id)
        payload: dict[str, Any] = {
            "channel_id": str(channel.id),
            "guild_id": str(snapshot.guild.id),
            "user_id": str(principal.user_id),
            "timestamp": int(ctx.clock().timestamp()),
        }
        if member is not None:
            payload["member"] = member_json(member, user)
        audience = await ctx.permissions.channel_audience(snapshot.guild.id, channel.id)
        others = audience - {principal.user_id}
        await ctx.publish([Event.of("TYPING_START", payload, others, snapshot.guild.id)])

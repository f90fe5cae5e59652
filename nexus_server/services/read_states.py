"""Read states (a Nexus extension in the shape of Discord's user client): what each user
has read, how much is unread and how often they were mentioned since."""

from __future__ import annotations

from typing import Any

from nexus_protocol.errors import ErrorCode
from nexus_protocol.models import ChannelType
from nexus_protocol.permissions import Permissions

from ..errors import unknown
from ..events import Event
from ..store import guilds as guild_store
from ..store import messages as message_store
from ..store import read_states as read_state_store
from .accounts import Principal
from .channels import ChannelService
from .context import Context

# Counting unread messages stops here: past it a client only shows "lots".
UNREAD_CAP = 1000


class ReadStateService:
    def __init__(self, ctx: Context, channels: ChannelService) -> None:
        self._ctx = ctx
        self._channels = channels

    async def do_ack(self, principal: Principal, channel_id: int, message_id: int) -> int:
        """Mark ``message_id`` (and everything before it) read; tell the user's sessions."""
        ctx = self._ctx
        channel, _, _ = await self._channels.check_channel(principal, channel_id)
        async with ctx.db.write("ack_message") as tx:
            if await message_store.get_message(tx, channel.id, message_id) is None:
                raise unknown(ErrorCode.UNKNOWN_MESSAGE, "Message")
            last = await read_state_store.advance(tx, principal.user_id, channel.id, message_id)
        # Snowflakes only grow, so a fresh one orders this ack after every earlier one.
        version = ctx.ids.next_id()
        await ctx.publish(
            [
                Event.of(
                    "MESSAGE_ACK",
                    {"channel_id": str(channel.id), "message_id": str(last), "version": version},
                    frozenset({principal.user_id}),
                )
            ]
        )
        return last

    async def read_states(self, user_id: int) -> list[dict[str, Any]]:
        """One entry for every text channel ``user_id`` can see, in all their guilds."""
        perms = self._ctx.permissions
        async with self._ctx.db.read("read_state_guilds") as tx:
            guilds = await guild_store.guilds_of_user(tx, user_id)
        visible: dict[int, tuple[int, ...]] = {}  # channel -> the roles the user holds
        for guild in guilds:
            snapshot = await perms.snapshot(guild.id)
            if snapshot is None or user_id not in snapshot.member_roles:
                continue
            role_ids = snapshot.member_roles[user_id]
            for channel in sorted(snapshot.channels.values(), key=lambda c: (c.position, c.id)):
                if channel.type == ChannelType.GUILD_CATEGORY:
                    continue
                if perms.in_channel(snapshot, channel, user_id) & Permissions.VIEW_CHANNEL:
                    visible[channel.id] = role_ids
        if not visible:
            return []
        async with self._ctx.db.read("read_states") as tx:
            last = await read_state_store.last_read(tx, user_id, visible)
            entries: list[dict[str, Any]] = []
            # Channels share the user's roles only within a guild, so count per guild.
            by_roles: dict[tuple[int, ...], dict[int, int]] = {}
            for channel_id, role_ids in visible.items():
                by_roles.setdefault(role_ids, {})[channel_id] = last.get(channel_id, 0)
            # The counts stop at each channel's newest message as read here, and say
            # which that is: a client then knows which messages it receives live they
            # already include, whatever is posted while they are counted.
            newest = await read_state_store.newest_messages(tx, list(visible))
            counts: dict[int, tuple[int, int]] = {}
            for role_ids, after in by_roles.items():
                counts.update(
                    await read_state_store.unread_counts(
                        tx, user_id, role_ids, after, cap=UNREAD_CAP, through=newest
                    )
                )
        for channel_id in visible:
            unread, mentions = counts.get(channel_id, (0, 0))
            last_id = last.get(channel_id)
            entries.append(
                {
                    "id": str(channel_id),
                    "channel_id": str(channel_id),
                    "last_message_id": str(last_id) if last_id is not None else None,
                    "mention_count": mentions,
                    "unread_count": unread,
                    # Nexus: the counts cover the channel's messages up to this one.
                    "counted_through_id": str(newest[channel_id]) if channel_id in newest else None,
                }
            )
        return entries

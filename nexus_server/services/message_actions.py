"""What happens to a message after it is sent: edits, deletes, reactions and pins.

Creation and rendering live in ``messages``; this module reuses both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from nexus_protocol.errors import ErrorCode
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import BulkDeleteBody, EditMessageBody
from nexus_protocol.snowflake import snowflake_time

from ..errors import BadRequest, Forbidden, MissingPermissions, unknown
from ..events import Event
from ..store import guilds as guild_store
from ..store import messages as message_store
from ..store import reactions as reaction_store
from ..store import users as user_store
from ..store.records import ChannelRecord, GuildSnapshot, MessageRecord
from .accounts import Principal
from .audit import record_audit
from .channels import ChannelService
from .context import Context
from .messages import MessageService
from .render import emoji_json, iso, member_json, user_json

MAX_DISTINCT_REACTIONS = 20
MAX_PINS = 50
BULK_DELETE_MAX_AGE = timedelta(days=14)
SUPPRESS_EMBEDS = 1 << 2  # the one flag an author may change on an edit

# Audit log action types (Discord's numbers).
AUDIT_MESSAGE_DELETE = 72
AUDIT_MESSAGE_BULK_DELETE = 73
AUDIT_MESSAGE_PIN = 74
AUDIT_MESSAGE_UNPIN = 75

_CUSTOM_EMOJI = re.compile(r"[A-Za-z0-9_~]{1,32}:[0-9]{1,20}")
_ZERO_WIDTH_JOINER = "\u200d"
_KEYCAP_BASES = frozenset("0123456789#*")


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def check_emoji(raw: str) -> str:
    """The stored form of a reaction emoji: a unicode emoji as itself, a custom one as
    ``name:id``. Anything else is 400 Unknown Emoji (10014)."""
    if 0 < len(raw) <= 64:
        if _CUSTOM_EMOJI.fullmatch(raw):
            return raw
        if any(ord(c) > 127 for c in raw) and all(
            (ord(c) > 127 and (c.isprintable() or c == _ZERO_WIDTH_JOINER) and not c.isspace())
            or c in _KEYCAP_BASES
            for c in raw
        ):
            return raw
    raise BadRequest(ErrorCode.UNKNOWN_EMOJI, "Unknown Emoji")


class MessageActionService:
    def __init__(self, ctx: Context, channels: ChannelService, messages: MessageService) -> None:
        self._ctx = ctx
        self._channels = channels
        self._messages = messages

    # Shared helpers ---------------------------------------------------------------------

    async def _message(
        self, tx: AsyncConnection, channel_id: int, message_id: int
    ) -> MessageRecord:
        record = await message_store.get_message(tx, channel_id, message_id)
        if record is None:
            raise unknown(ErrorCode.UNKNOWN_MESSAGE, "Message")
        return record

    async def _render_with_member(
        self, tx: AsyncConnection, record: MessageRecord, viewer_id: int
    ) -> dict[str, Any]:
        rendered = (await self._messages.render(tx, [record], viewer_id))[0]
        if record.guild_id is not None:
            member = await guild_store.get_member(tx, record.guild_id, record.author_id)
            if member is not None:
                rendered["member"] = member_json(member, None)
        return rendered

    async def _publish(
        self, snapshot: GuildSnapshot, channel: ChannelRecord, events: list[tuple[str, Any]]
    ) -> None:
        audience = await self._ctx.permissions.channel_audience(snapshot.guild.id, channel.id)
        await self._ctx.publish(
            [Event.of(name, payload, audience, snapshot.guild.id) for name, payload in events]
        )

    @staticmethod
    def _ids(snapshot: GuildSnapshot, channel: ChannelRecord, message_id: int) -> dict[str, str]:
        return {
            "channel_id": str(channel.id),
            "message_id": str(message_id),
            "guild_id": str(snapshot.guild.id),
        }

    # Edit and delete --------------------------------------------------------------------

    async def do_edit_message(
        self, principal: Principal, channel_id: int, message_id: int, body: EditMessageBody
    ) -> dict[str, Any]:
        """Only the author edits a message's content; mentions are found afresh."""
        ctx = self._ctx
        channel, snapshot, granted = await self._channels.check_channel(principal, channel_id)
        async with ctx.db.read("edit_target") as tx:
            record = await self._message(tx, channel.id, message_id)
            replied_author: int | None = None
            if record.reference_message_id is not None:
                replied = await message_store.get_message(
                    tx, channel.id, record.reference_message_id
                )
                # A reply keeps pinging its target only if it did so when sent.
                if replied is not None and replied.author_id in record.mention_ids:
                    replied_author = replied.author_id
        if record.author_id != principal.user_id:
            raise Forbidden(
                ErrorCode.CANNOT_EDIT_OTHERS_MESSAGE,
                "Cannot edit a message authored by another user",
            )
        if body.content is not None and not body.content.strip():
            raise BadRequest(ErrorCode.EMPTY_MESSAGE, "Cannot send an empty message")
        if body.content is not None and channel.e2ee:
            raise BadRequest(
                ErrorCode.CANNOT_EXECUTE_ON_DM,
                "This channel is end-to-end encrypted: edits travel encrypted",
            )
        async with ctx.db.write("edit_message") as tx:
            await self._message(tx, channel.id, message_id)  # still there?
            if body.content is not None:
                mention_ids, role_ids, everyone = self._messages.resolve_mentions(
                    snapshot, body.content, granted, body.allowed_mentions, replied_author
                )
                await message_store.update_content(
                    tx,
                    message_id,
                    content=body.content,
                    edited_at=ctx.clock(),
                    mention_everyone=everyone,
                    mention_ids=mention_ids,
                    mention_role_ids=role_ids,
                    channel_id=channel.id,
                )
            if body.flags is not None:
                flags = (record.flags & ~SUPPRESS_EMBEDS) | (body.flags & SUPPRESS_EMBEDS)
                await message_store.set_flags(tx, message_id, flags)
            updated = await self._message(tx, channel.id, message_id)
            rendered = await self._render_with_member(tx, updated, principal.user_id)
        await self._publish(snapshot, channel, [("MESSAGE_UPDATE", rendered)])
        return rendered

    async def do_delete_message(
        self, principal: Principal, channel_id: int, message_id: int, reason: str | None
    ) -> None:
        """The author deletes their own message; MANAGE_MESSAGES deletes anyone's."""
        ctx = self._ctx
        channel, snapshot, granted = await self._channels.check_channel(principal, channel_id)
        async with ctx.db.write("delete_message") as tx:
            record = await self._message(tx, channel.id, message_id)
            own = record.author_id == principal.user_id
            if not own and not granted & Permissions.MANAGE_MESSAGES:
                raise MissingPermissions()
            await message_store.delete_messages(tx, channel.id, {message_id})
            if not own:
                await record_audit(
                    tx,
                    ctx,
                    guild_id=snapshot.guild.id,
                    user_id=principal.user_id,
                    target_id=record.author_id,
                    action_type=AUDIT_MESSAGE_DELETE,
                    reason=reason,
                    options={"channel_id": str(channel.id), "count": "1"},
                )
        await self._publish(
            snapshot,
            channel,
            [
                (
                    "MESSAGE_DELETE",
                    {
                        "id": str(message_id),
                        "channel_id": str(channel.id),
                        "guild_id": str(snapshot.guild.id),
                    },
                )
            ],
        )

    async def do_bulk_delete(
        self, principal: Principal, channel_id: int, body: BulkDeleteBody, reason: str | None
    ) -> None:
        ctx = self._ctx
        channel, snapshot, _ = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.MANAGE_MESSAGES
        )
        wanted = set(body.messages)
        oldest_allowed = ctx.clock() - BULK_DELETE_MAX_AGE
        if any(snowflake_time(message_id) < oldest_allowed for message_id in wanted):
            raise BadRequest(
                ErrorCode.BULK_DELETE_TOO_OLD,
                "You can only bulk delete messages that are under 14 days old.",
            )
        async with ctx.db.write("bulk_delete_messages") as tx:
            found = await message_store.get_messages_by_id(tx, channel.id, wanted)
            ids = sorted(record.id for record in found)
            if ids:
                await message_store.delete_messages(tx, channel.id, set(ids))
                await record_audit(
                    tx,
                    ctx,
                    guild_id=snapshot.guild.id,
                    user_id=principal.user_id,
                    target_id=channel.id,
                    action_type=AUDIT_MESSAGE_BULK_DELETE,
                    reason=reason,
                    options={"count": str(len(ids))},
                )
        if ids:
            await self._publish(
                snapshot,
                channel,
                [
                    (
                        "MESSAGE_DELETE_BULK",
                        {
                            "ids": [str(i) for i in ids],
                            "channel_id": str(channel.id),
                            "guild_id": str(snapshot.guild.id),
                        },
                    )
                ],
            )

    # Reactions --------------------------------------------------------------------------

    async def do_add_reaction(
        self, principal: Principal, channel_id: int, message_id: int, emoji: str
    ) -> None:
        """React; a new emoji on the message also needs ADD_REACTIONS and a free slot."""
        ctx = self._ctx
        channel, snapshot, granted = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.READ_MESSAGE_HISTORY
        )
        async with ctx.db.write("add_reaction") as tx:
            record = await self._message(tx, channel.id, message_id)
            if not await reaction_store.users_for(tx, message_id, emoji, limit=1):
                if not granted & Permissions.ADD_REACTIONS:
                    raise MissingPermissions()
                if await reaction_store.count_distinct_emoji(tx, message_id) >= (
                    MAX_DISTINCT_REACTIONS
                ):
                    raise BadRequest(
                        ErrorCode.MAX_REACTIONS,
                        f"Maximum number of reactions reached ({MAX_DISTINCT_REACTIONS})",
                    )
            added = await reaction_store.add_reaction(
                tx, message_id, emoji, principal.user_id, ctx.ids.next_id()
            )
            member = await guild_store.get_member(tx, snapshot.guild.id, principal.user_id)
            user = await user_store.get_user(tx, principal.user_id)
        if not added:
            return
        payload: dict[str, Any] = {
            "user_id": str(principal.user_id),
            **self._ids(snapshot, channel, message_id),
            "emoji": emoji_json(emoji),
            "message_author_id": str(record.author_id),
            "burst": False,
            "type": 0,
        }
        if member is not None:
            payload["member"] = member_json(member, user)
        await self._publish(snapshot, channel, [("MESSAGE_REACTION_ADD", payload)])

    async def do_remove_reaction(
        self,
        principal: Principal,
        channel_id: int,
        message_id: int,
        emoji: str,
        user_id: int | None,
    ) -> None:
        """Remove the caller's reaction (``user_id`` None), or anyone's with MANAGE_MESSAGES."""
        ctx = self._ctx
        channel, snapshot, granted = await self._channels.check_channel(principal, channel_id)
        target = principal.user_id if user_id is None else user_id
        if target != principal.user_id and not granted & Permissions.MANAGE_MESSAGES:
            raise MissingPermissions()
        async with ctx.db.write("remove_reaction") as tx:
            await self._message(tx, channel.id, message_id)
            removed = await reaction_store.remove_reaction(tx, message_id, emoji, target)
        if removed:
            payload = {
                "user_id": str(target),
                **self._ids(snapshot, channel, message_id),
                "emoji": emoji_json(emoji),
                "burst": False,
                "type": 0,
            }
            await self._publish(snapshot, channel, [("MESSAGE_REACTION_REMOVE", payload)])

    async def do_remove_all_reactions(
        self, principal: Principal, channel_id: int, message_id: int, emoji: str | None
    ) -> None:
        """Clear every reaction, or every reaction with one emoji (MANAGE_MESSAGES)."""
        ctx = self._ctx
        channel, snapshot, _ = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.MANAGE_MESSAGES
        )
        async with ctx.db.write("remove_all_reactions") as tx:
            await self._message(tx, channel.id, message_id)
            removed = await reaction_store.remove_all(tx, message_id, emoji)
        if not removed:
            return
        payload: dict[str, Any] = self._ids(snapshot, channel, message_id)
        if emoji is None:
            await self._publish(snapshot, channel, [("MESSAGE_REACTION_REMOVE_ALL", payload)])
        else:
            payload["emoji"] = emoji_json(emoji)
            await self._publish(snapshot, channel, [("MESSAGE_REACTION_REMOVE_EMOJI", payload)])

    async def reaction_users(
        self,
        principal: Principal,
        channel_id: int,
        message_id: int,
        emoji: str,
        *,
        after: int,
        limit: int,
    ) -> list[dict[str, Any]]:
        channel, _, _ = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.READ_MESSAGE_HISTORY
        )
        async with self._ctx.db.read("reaction_users") as tx:
            await self._message(tx, channel.id, message_id)
            user_ids = await reaction_store.users_for(
                tx, message_id, emoji, after=after, limit=limit
            )
            users = await user_store.get_users(tx, set(user_ids))
        return [user_json(users[u]) for u in user_ids if u in users]

    # Pins -------------------------------------------------------------------------------

    async def pins(self, principal: Principal, channel_id: int) -> list[dict[str, Any]]:
        channel, _, granted = await self._channels.check_channel(principal, channel_id)
        if not granted & Permissions.READ_MESSAGE_HISTORY:
            return []
        async with self._ctx.db.read("pinned_messages") as tx:
            records = await message_store.pinned_messages(tx, channel.id)
            return await self._messages.render(tx, records, principal.user_id)

    async def do_set_pinned(
        self,
        principal: Principal,
        channel_id: int,
        message_id: int,
        pinned: bool,
        reason: str | None,
    ) -> None:
        ctx = self._ctx
        channel, snapshot, _ = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.MANAGE_MESSAGES
        )
        async with ctx.db.write("pin_message" if pinned else "unpin_message") as tx:
            record = await self._message(tx, channel.id, message_id)
            if (record.pinned_at is not None) == pinned:
                return  # already as asked: nothing changes, nobody is told
            pins = await message_store.pinned_messages(tx, channel.id)
            if pinned and len(pins) >= MAX_PINS:
                raise BadRequest(ErrorCode.MAX_PINS, f"Maximum number of pins reached ({MAX_PINS})")
            now = ctx.clock()
            await message_store.set_pinned(tx, message_id, now if pinned else None)
            await record_audit(
                tx,
                ctx,
                guild_id=snapshot.guild.id,
                user_id=principal.user_id,
                target_id=record.author_id,
                action_type=AUDIT_MESSAGE_PIN if pinned else AUDIT_MESSAGE_UNPIN,
                reason=reason,
                options={"channel_id": str(channel.id), "message_id": str(message_id)},
            )
            updated = await self._message(tx, channel.id, message_id)
            rendered = await self._render_with_member(tx, updated, principal.user_id)
            remaining = [_utc(p.pinned_at) for p in pins if p.id != message_id and p.pinned_at]
            if pinned:
                remaining.append(_utc(now))
        await self._publish(
            snapshot,
            channel,
            [
                ("MESSAGE_UPDATE", rendered),
                (
                    "CHANNEL_PINS_UPDATE",
                    {
                        "guild_id": str(snapshot.guild.id),
                        "channel_id": str(channel.id),
                        "last_pin_timestamp": iso(max(remaining)) if remaining else None,
                    },
                ),
            ],
        )

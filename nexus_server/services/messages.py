"""Messages: send (exactly once per nonce), read history, and rendering for the wire.

Edits, deletes, reactions and pins live in ``message_actions``; this module owns the
creation path and how messages are shown.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus_protocol.errors import ErrorCode
from nexus_protocol.mentions import find_mentions
from nexus_protocol.models import MessageType
from nexus_protocol.permissions import Permissions
from nexus_protocol.requests import AllowedMentionsBody, CreateMessageBody

from ..errors import BadRequest, InvalidForm, MissingPermissions, RateLimited, unknown
from ..events import Event
from ..store import channels as channel_store
from ..store import guilds as guild_store
from ..store import messages as message_store
from ..store import reactions as reaction_store
from ..store import users as user_store
from ..store.records import GuildSnapshot, MessageRecord
from .accounts import Principal
from .attachments import AttachmentService, Upload
from .channels import ChannelService
from .context import Context
from .render import member_json, message_json, reactions_json


class MessageService:
    def __init__(
        self,
        ctx: Context,
        channels: ChannelService,
        attachments: AttachmentService,
        *,
        base_url: str,
    ) -> None:
        self._ctx = ctx
        self._channels = channels
        self._attachments = attachments
        # Attachment URLs are absolute, as Discord's are: bots download them as given.
        self._base_url = base_url
        # Slow mode: when each (channel, user) last sent. One node's view, kept small.
        self._last_sent: dict[tuple[int, int], float] = {}

    # Rendering ------------------------------------------------------------------------

    async def render(
        self,
        tx: AsyncConnection,
        records: list[MessageRecord],
        viewer_id: int,
        *,
        fresh: bool = False,
    ) -> list[dict[str, Any]]:
        """Wire form of messages, newest first as given, with authors, mentions,
        reactions (``me`` for ``viewer_id``) and the messages they reply to. ``fresh``
        messages were just created: they have no reactions to look up."""
        referenced_ids = {r.reference_message_id for r in records if r.reference_message_id}
        referenced: dict[int, MessageRecord] = {}
        if referenced_ids and records:
            for ref in await message_store.get_messages_by_id(
                tx, records[0].channel_id, referenced_ids
            ):
                referenced[ref.id] = ref
        everyone = records + list(referenced.values())
        user_ids = {r.author_id for r in everyone}
        for r in everyone:
            user_ids.update(r.mention_ids)
        users = await user_store.get_users(tx, user_ids)
        reactions = (
            {} if fresh else await reaction_store.summaries(tx, [r.id for r in records], viewer_id)
        )
        out = []
        for record in records:
            replied_to = referenced.get(record.reference_message_id or 0)
            out.append(
                message_json(
                    record,
                    users=users,
                    reactions=reactions_json(reactions.get(record.id, [])),
                    referenced=(
                        message_json(replied_to, users=users, base_url=self._base_url)
                        if replied_to
                        else None
                    ),
                    base_url=self._base_url,
                )
            )
        return out

    # Reading ---------------------------------------------------------------------------

    async def list_messages(
        self,
        principal: Principal,
        channel_id: int,
        *,
        before: int | None,
        after: int | None,
        around: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        channel, _, granted = await self._channels.check_channel(principal, channel_id)
        if not granted & Permissions.READ_MESSAGE_HISTORY:
            return []
        async with self._ctx.db.read("list_messages") as tx:
            records = await message_store.list_messages(
                tx, channel.id, before=before, after=after, around=around, limit=limit
            )
            return await self.render(tx, records, principal.user_id)

    async def get_message(
        self, principal: Principal, channel_id: int, message_id: int
    ) -> dict[str, Any]:
        channel, _, _ = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.READ_MESSAGE_HISTORY
        )
        async with self._ctx.db.read("get_message") as tx:
            record = await message_store.get_message(tx, channel.id, message_id)
            if record is None:
                raise unknown(ErrorCode.UNKNOWN_MESSAGE, "Message")
            return (await self.render(tx, [record], principal.user_id))[0]

    # Sending ---------------------------------------------------------------------------

    async def _sent_before(self, author_id: int, nonce: str | None) -> dict[str, Any] | None:
        if nonce is None:
            return None
        async with self._ctx.db.read("find_nonce") as tx:
            existing = await message_store.find_by_nonce(tx, author_id, nonce)
            if existing is None:
                return None
            return (await self.render(tx, [existing], author_id))[0]

    def _check_slow_mode(
        self, channel_id: int, user_id: int, seconds: int, granted: Permissions
    ) -> None:
        if seconds <= 0 or granted & (Permissions.MANAGE_MESSAGES | Permissions.MANAGE_CHANNELS):
            return
        now = time.monotonic()
        last = self._last_sent.get((channel_id, user_id))
        if last is not None and now - last < seconds:
            raise RateLimited(
                seconds - (now - last), is_global=False, bucket=f"slowmode:{channel_id}"
            )
        if len(self._last_sent) > 100_000:
            self._last_sent.clear()
        self._last_sent[(channel_id, user_id)] = now

    def resolve_mentions(
        self,
        snapshot: GuildSnapshot,
        content: str,
        granted: Permissions,
        allowed: AllowedMentionsBody | None,
        replied_author: int | None,
    ) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
        found = find_mentions(content)
        parse = set(allowed.parse) if allowed and allowed.parse is not None else None
        users = [u for u in found.user_ids if u in snapshot.member_roles]
        if allowed is not None:
            explicit_users = set(allowed.users or [])
            users = [
                u for u in users if (parse is not None and "users" in parse) or u in explicit_users
            ]
        ping_replied = allowed is None or allowed.replied_user
        if (
            replied_author is not None
            and ping_replied
            and replied_author in snapshot.member_roles
            and replied_author not in users
        ):
            users.append(replied_author)
        can_everyone = bool(granted & Permissions.MENTION_EVERYONE)
        roles_by_id = {role.id: role for role in snapshot.roles}
        roles = [
            r
            for r in found.role_ids
            if r in roles_by_id
            and r != snapshot.guild.id
            and (roles_by_id[r].mentionable or can_everyone)
        ]
        if allowed is not None:
            explicit_roles = set(allowed.roles or [])
            roles = [
                r for r in roles if (parse is not None and "roles" in parse) or r in explicit_roles
            ]
        everyone = (
            found.everyone
            and can_everyone
            and (allowed is None or (parse is not None and "everyone" in parse))
        )
        return tuple(users[:100]), tuple(roles[:100]), everyone

    async def do_send_message(
        self,
        principal: Principal,
        channel_id: int,
        body: CreateMessageBody,
        uploads: list[Upload] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Send, or find the message this (author, nonce) already sent. Returns the
        message and whether it was created now. ``uploads`` need Attach Files; with
        them the message may have no text."""
        ctx = self._ctx
        channel, snapshot, granted = await self._channels.check_channel(
            principal, channel_id, Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
        )
        if channel.e2ee:
            raise BadRequest(
                ErrorCode.CANNOT_EXECUTE_ON_DM,
                "This channel is end-to-end encrypted: send Megolm ciphertext (megolm), not"
                " content",
            )
        if uploads:
            if not granted & Permissions.ATTACH_FILES:
                raise MissingPermissions()
            self._attachments.check_upload_sizes(uploads)
        content = body.content
        if not content.strip() and not uploads:
            raise BadRequest(ErrorCode.EMPTY_MESSAGE, "Cannot send an empty message")
        nonce = str(body.nonce) if body.nonce is not None else None
        # A retry of a message already sent is found by the (author, nonce) unique
        # constraint when the insert fails, so the common path reads nothing first.
        try:
            self._check_slow_mode(
                channel.id, principal.user_id, channel.rate_limit_per_user, granted
            )
        except RateLimited:
            existing_body = await self._sent_before(principal.user_id, nonce)
            if existing_body is None:
                raise
            return existing_body, False

        reference = body.message_reference
        replied: MessageRecord | None = None
        if reference is not None:
            if reference.channel_id is not None and reference.channel_id != channel.id:
                raise InvalidForm.field(
                    ("message_reference", "channel_id"),
                    "REPLIES_CROSS_CHANNEL",
                    "Replies must stay in their channel",
                )
            if not granted & Permissions.READ_MESSAGE_HISTORY:
                raise InvalidForm.field(
                    ("message_reference", "message_id"),
                    "REPLIES_UNKNOWN_MESSAGE",
                    "Unknown message",
                )
            async with ctx.db.read("reply_target") as tx:
                replied = await message_store.get_message(tx, channel.id, reference.message_id)
            if replied is None and reference.fail_if_not_exists:
                raise InvalidForm.field(
                    ("message_reference", "message_id"),
                    "REPLIES_UNKNOWN_MESSAGE",
                    "Unknown message",
                )

        mention_ids, role_ids, everyone = self.resolve_mentions(
            snapshot,
            content,
            granted,
            body.allowed_mentions,
            replied.author_id if replied else None,
        )
        files = await self._attachments.prepare(uploads) if uploads else []
        message_id = ctx.ids.next_id()
        stored_files = [
            (file.record(ctx.ids.next_id(), message_id, channel.id, position), file.data)
            for position, file in enumerate(files)
        ]
        try:
            async with ctx.db.write("send_message") as tx:
                record = await message_store.insert_message(
                    tx,
                    message_id=message_id,
                    channel_id=channel.id,
                    guild_id=channel.guild_id,
                    author_id=principal.user_id,
                    content=content,
                    message_type=int(MessageType.REPLY if replied else MessageType.DEFAULT),
                    tts=body.tts and bool(granted & Permissions.SEND_TTS_MESSAGES),
                    nonce=nonce,
                    mention_everyone=everyone,
                    mention_ids=mention_ids,
                    mention_role_ids=role_ids,
                    reference_message_id=replied.id if replied else None,
                    reference_channel_id=channel.id if replied else None,
                    files=stored_files,
                )
                await channel_store.set_last_message(tx, channel.id, message_id)
                rendered = (await self.render(tx, [record], principal.user_id, fresh=True))[0]
                member = await guild_store.get_member(tx, snapshot.guild.id, principal.user_id)
        except IntegrityError:
            # This (author, nonce) was sent before: answer with that message.
            existing_body = await self._sent_before(principal.user_id, nonce)
            if existing_body is None:
                raise
            return existing_body, False
        if member is not None:
            member_body = member_json(member, None)
            rendered["member"] = member_body
        audience = await ctx.permissions.channel_audience(snapshot.guild.id, channel.id)
        await ctx.publish([Event.of("MESSAGE_CREATE", rendered, audience, snapshot.guild.id)])
        return rendered, True

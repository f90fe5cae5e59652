"""What the client knows of the relay, kept current from gateway events: communities,
channels, roles, members, presences and the latest messages of each channel."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from nexus_protocol import events as ev
from nexus_protocol.models import Channel, Emoji, Guild, Member, Message, Reaction, Role, User

MESSAGES_PER_CHANNEL = 1000

Emitted = list[tuple[str, tuple[Any, ...]]]


class ClientCache:
    def __init__(self, messages_per_channel: int = MESSAGES_PER_CHANNEL) -> None:
        self.user: User | None = None
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.members: dict[int, dict[int, Member]] = {}
        self.presences: dict[int, str] = {}
        self.messages: dict[int, OrderedDict[int, Message]] = {}
        self._limit = messages_per_channel

    # Queries ------------------------------------------------------------------------

    def channels_of(self, guild_id: int) -> list[Channel]:
        return sorted(
            (c for c in self.channels.values() if c.guild_id == guild_id),
            key=lambda c: (c.position, c.id),
        )

    def history(self, channel_id: int) -> list[Message]:
        """Cached messages of a channel, oldest first."""
        return list(self.messages.get(channel_id, {}).values())

    # Messages --------------------------------------------------------------------------

    def remember(self, message: Message) -> None:
        cached = self.messages.setdefault(message.channel_id, OrderedDict())
        cached[message.id] = message
        if len(cached) > 1 and next(reversed(cached)) != message.id:
            # Arrived out of order (a fetched page): keep the dict sorted by id.
            ordered = sorted(cached.items())
            cached.clear()
            cached.update(ordered)
        while len(cached) > self._limit:
            cached.popitem(last=False)

    def _react(self, event: ev.ReactionEvent, delta: int) -> None:
        cached = self.messages.get(event.channel_id)
        message = cached.get(event.message_id) if cached else None
        if message is None or cached is None:
            return
        me = self.user is not None and event.user_id == self.user.id
        key = (event.emoji.id, event.emoji.name)
        reactions: list[Reaction] = []
        found = False
        for reaction in message.reactions:
            if (reaction.emoji.id, reaction.emoji.name) == key:
                found = True
                count = reaction.count + delta
                if count > 0:
                    reactions.append(
                        reaction.model_copy(
                            update={"count": count, "me": (delta > 0) if me else reaction.me}
                        )
                    )
            else:
                reactions.append(reaction)
        if not found and delta > 0:
            reactions.append(
                Reaction(count=1, me=me, emoji=Emoji(id=event.emoji.id, name=event.emoji.name))
            )
        cached[message.id] = message.model_copy(update={"reactions": reactions})

    # Events ------------------------------------------------------------------------------

    def apply(self, name: str, data: Any) -> Emitted:
        """Update the cache from one dispatch; return the events handlers should see."""
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is None:
            return []
        result: Emitted = handler(data)
        return result

    def _on_ready(self, data: Any) -> Emitted:
        ready = ev.Ready.model_validate(data)
        self.user = ready.user
        return [("ready", ())]

    def _on_resumed(self, _data: Any) -> Emitted:
        return [("resumed", ())]

    def _on_guild_create(self, data: Any) -> Emitted:
        created = ev.GuildCreate.model_validate(data)
        guild = Guild.model_validate(data)
        self.guilds[guild.id] = guild
        for channel in created.channels:
            self.channels[channel.id] = channel.model_copy(update={"guild_id": guild.id})
        self.members[guild.id] = {m.user.id: m for m in created.members if m.user is not None}
        for presence in created.presences:
            self.presences[presence.user.id] = presence.status
        return [("guild_available", (guild,))]

    def _on_guild_update(self, data: Any) -> Emitted:
        guild = Guild.model_validate(data)
        self.guilds[guild.id] = guild
        return [("guild_update", (guild,))]

    def _on_guild_delete(self, data: Any) -> Emitted:
        gone = ev.GuildDelete.model_validate(data)
        guild = self.guilds.pop(gone.id, None)
        for channel_id in [c.id for c in self.channels.values() if c.guild_id == gone.id]:
            del self.channels[channel_id]
            self.messages.pop(channel_id, None)
        self.members.pop(gone.id, None)
        return [("guild_remove", (guild or gone,))]

    def _on_channel_create(self, data: Any) -> Emitted:
        channel = Channel.model_validate(data)
        self.channels[channel.id] = channel
        return [("channel_create", (channel,))]

    def _on_channel_update(self, data: Any) -> Emitted:
        channel = Channel.model_validate(data)
        self.channels[channel.id] = channel
        return [("channel_update", (channel,))]

    def _on_channel_delete(self, data: Any) -> Emitted:
        channel = Channel.model_validate(data)
        self.channels.pop(channel.id, None)
        self.messages.pop(channel.id, None)
        return [("channel_delete", (channel,))]

    def _set_role(self, guild_id: int, role: Role | None, role_id: int) -> None:
        guild = self.guilds.get(guild_id)
        if guild is None:
            return
        roles = [r for r in guild.roles if r.id != role_id]
        if role is not None:
            roles.append(role)
        roles.sort(key=lambda r: (r.position, r.id))
        self.guilds[guild_id] = guild.model_copy(update={"roles": roles})

    def _on_guild_role_create(self, data: Any) -> Emitted:
        event = ev.GuildRoleEvent.model_validate(data)
        self._set_role(event.guild_id, event.role, event.role.id)
        return [("role_create", (event.role,))]

    def _on_guild_role_update(self, data: Any) -> Emitted:
        event = ev.GuildRoleEvent.model_validate(data)
        self._set_role(event.guild_id, event.role, event.role.id)
        return [("role_update", (event.role,))]

    def _on_guild_role_delete(self, data: Any) -> Emitted:
        event = ev.GuildRoleDelete.model_validate(data)
        self._set_role(event.guild_id, None, event.role_id)
        return [("role_delete", (event,))]

    def _on_guild_member_add(self, data: Any) -> Emitted:
        member = ev.GuildMemberEvent.model_validate(data)
        if member.user is not None:
            self.members.setdefault(member.guild_id, {})[member.user.id] = member
        return [("member_join", (member,))]

    def _on_guild_member_update(self, data: Any) -> Emitted:
        member = ev.GuildMemberEvent.model_validate(data)
        if member.user is not None:
            self.members.setdefault(member.guild_id, {})[member.user.id] = member
        return [("member_update", (member,))]

    def _on_guild_member_remove(self, data: Any) -> Emitted:
        event = ev.GuildMemberRemove.model_validate(data)
        self.members.get(event.guild_id, {}).pop(event.user.id, None)
        return [("member_remove", (event,))]

    def _on_presence_update(self, data: Any) -> Emitted:
        event = ev.PresenceUpdate.model_validate(data)
        self.presences[event.user.id] = event.status
        return [("presence_update", (event,))]

    def _on_user_update(self, data: Any) -> Emitted:
        """Someone's profile changed (ours, or anyone's we share a community with): every
        cached copy of them follows, so handlers already read the new name and avatar."""
        user = User.model_validate(data)
        if self.user is not None and user.id == self.user.id:
            self.user = user
        for in_guild in self.members.values():
            member = in_guild.get(user.id)
            if member is not None:
                in_guild[user.id] = member.model_copy(update={"user": user})
        for cached in self.messages.values():
            changed = {}
            for message_id, message in cached.items():
                # Most messages hold only their author: skip other people's without a call.
                if message.author.id == user.id or message.mentions or message.referenced_message:
                    updated = _with_user(message, user)
                    if updated is not message:
                        changed[message_id] = updated
            cached.update(changed)
        return [("user_update", (user,))]

    def _on_message_create(self, data: Any) -> Emitted:
        message = Message.model_validate(data)
        self.remember(message)
        channel = self.channels.get(message.channel_id)
        if channel is not None:
            self.channels[channel.id] = channel.model_copy(update={"last_message_id": message.id})
        return [("message", (message,))]

    def _on_message_update(self, data: Any) -> Emitted:
        message = Message.model_validate(data)
        cached = self.messages.get(message.channel_id)
        if cached is not None and message.id in cached:
            cached[message.id] = message
        return [("message_edit", (message,))]

    def _on_message_delete(self, data: Any) -> Emitted:
        event = ev.MessageDelete.model_validate(data)
        cached = self.messages.get(event.channel_id)
        if cached is not None:
            cached.pop(event.id, None)
        return [("message_delete", (event,))]

    def _on_message_delete_bulk(self, data: Any) -> Emitted:
        event = ev.MessageDeleteBulk.model_validate(data)
        cached = self.messages.get(event.channel_id)
        if cached is not None:
            for message_id in event.ids:
                cached.pop(message_id, None)
        return [("bulk_message_delete", (event,))]

    def _on_message_reaction_add(self, data: Any) -> Emitted:
        event = ev.ReactionEvent.model_validate(data)
        self._react(event, +1)
        return [("reaction_add", (event,))]

    def _on_message_reaction_remove(self, data: Any) -> Emitted:
        event = ev.ReactionEvent.model_validate(data)
        self._react(event, -1)
        return [("reaction_remove", (event,))]

    def _on_message_reaction_remove_all(self, data: Any) -> Emitted:
        event = ev.ReactionRemoveAll.model_validate(data)
        cached = self.messages.get(event.channel_id)
        if cached is not None and event.message_id in cached:
            cached[event.message_id] = cached[event.message_id].model_copy(update={"reactions": []})
        return [("reaction_clear", (event,))]

    def _on_typing_start(self, data: Any) -> Emitted:
        return [("typing", (ev.TypingStart.model_validate(data),))]


def _with_user(message: Message, user: User) -> Message:
    """``message`` with its copies of ``user`` (author, member, mentions, the replied-to
    message's) replaced; the same object when it holds none."""
    changes: dict[str, Any] = {}
    if message.author.id == user.id:
        changes["author"] = user
    member = message.member
    if member is not None and member.user is not None and member.user.id == user.id:
        changes["member"] = member.model_copy(update={"user": user})
    if any(m.id == user.id for m in message.mentions):
        changes["mentions"] = [user if m.id == user.id else m for m in message.mentions]
    replied = message.referenced_message
    if replied is not None:
        updated = _with_user(replied, user)
        if updated is not replied:
            changes["referenced_message"] = updated
    return message.model_copy(update=changes) if changes else message

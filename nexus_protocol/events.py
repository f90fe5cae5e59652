"""Gateway dispatch payloads (the ``d`` of op 0) in Discord v10's shape.

Resource events (MESSAGE_CREATE, CHANNEL_UPDATE, GUILD_CREATE…) carry the resource
models of ``models``; the others have their own small models here.
"""

from __future__ import annotations

from datetime import datetime

from .models import Channel, Emoji, Guild, Member, Model, Role, Snowflake, User


class Ready(Model):
    v: int
    user: User
    guilds: list[dict[str, object]]
    session_id: str
    resume_gateway_url: str | None = None


class GuildCreate(Guild):
    channels: list[Channel] = []
    members: list[Member] = []
    member_count: int = 0
    joined_at: datetime | None = None
    presences: list[PresenceUpdate] = []


class GuildDelete(Model):
    id: Snowflake
    unavailable: bool | None = None


class GuildRoleEvent(Model):
    guild_id: Snowflake
    role: Role


class GuildRoleDelete(Model):
    guild_id: Snowflake
    role_id: Snowflake


class GuildMemberEvent(Member):
    guild_id: Snowflake


class GuildMemberRemove(Model):
    guild_id: Snowflake
    user: User


class MessageDelete(Model):
    id: Snowflake
    channel_id: Snowflake
    guild_id: Snowflake | None = None


class MessageDeleteBulk(Model):
    ids: list[Snowflake]
    channel_id: Snowflake
    guild_id: Snowflake | None = None


class ReactionEvent(Model):
    user_id: Snowflake
    channel_id: Snowflake
    message_id: Snowflake
    guild_id: Snowflake | None = None
    emoji: Emoji
    member: Member | None = None
    message_author_id: Snowflake | None = None


class ReactionRemoveAll(Model):
    channel_id: Snowflake
    message_id: Snowflake
    guild_id: Snowflake | None = None


class TypingStart(Model):
    channel_id: Snowflake
    guild_id: Snowflake | None = None
    user_id: Snowflake
    timestamp: int
    member: Member | None = None


class PresenceUser(Model):
    id: Snowflake


class PresenceUpdate(Model):
    user: PresenceUser
    guild_id: Snowflake | None = None
    status: str
    activities: list[dict[str, object]] = []


class ChannelPinsUpdate(Model):
    guild_id: Snowflake | None = None
    channel_id: Snowflake
    last_pin_timestamp: datetime | None = None


class MessageAck(Model):
    channel_id: Snowflake
    message_id: Snowflake


GuildCreate.model_rebuild()

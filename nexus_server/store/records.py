"""Rows as frozen values: what the store hands to services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from nexus_protocol.permissions import Overwrite, Permissions, RoleGrant


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    global_name: str | None
    avatar: str | None
    banner: str | None
    bio: str
    pronouns: str
    accent_color: int | None
    bot: bool
    flags: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    user_id: int
    created_at: datetime
    last_used_at: datetime | None
    user_agent: str


@dataclass(frozen=True, slots=True)
class RoleRecord:
    id: int
    guild_id: int
    name: str
    color: int
    hoist: bool
    position: int
    permissions: int
    mentionable: bool
    unicode_emoji: str | None
    bot_id: int | None = None

    def grant(self) -> RoleGrant:
        return RoleGrant(self.id, self.position, Permissions(self.permissions))


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    id: int
    guild_id: int | None
    type: int
    name: str | None
    topic: str | None
    position: int
    parent_id: int | None
    nsfw: bool
    rate_limit_per_user: int
    bitrate: int | None
    user_limit: int | None
    last_message_id: int | None
    overwrites: tuple[Overwrite, ...] = ()
    e2ee: bool = False  # Nexus: end-to-end encrypted channel (one way)
    owner_id: int | None = None  # a group DM's owner


@dataclass(frozen=True, slots=True)
class MemberRecord:
    guild_id: int
    user_id: int
    nick: str | None
    joined_at: datetime
    mute: bool
    deaf: bool
    role_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GuildRecord:
    id: int
    name: str
    icon: str | None
    banner: str | None
    description: str | None
    owner_id: int
    system_channel_id: int | None


@dataclass(frozen=True, slots=True)
class GuildSnapshot:
    """Everything permission computation needs about one guild, loaded in one read."""

    guild: GuildRecord
    roles: tuple[RoleRecord, ...]
    member_roles: dict[int, tuple[int, ...]] = field(default_factory=dict)
    channels: dict[int, ChannelRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """A message's file without its bytes (those are read only to serve it)."""

    id: int
    message_id: int
    channel_id: int
    position: int
    filename: str
    description: str | None
    content_type: str
    size: int
    width: int | None
    height: int | None
    sha256: str

    @property
    def is_image(self) -> bool:
        return self.width is not None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str
    type: int
    flags: int
    tts: bool
    edited_at: datetime | None
    pinned_at: datetime | None
    nonce: str | None
    mention_everyone: bool
    reference_message_id: int | None
    reference_channel_id: int | None
    mention_ids: tuple[int, ...] = ()
    mention_role_ids: tuple[int, ...] = ()
    attachments: tuple[AttachmentRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    id: int
    owner_id: int
    name: str
    bot_user_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """A stored image without its bytes: enough to answer a request or a 304."""

    hash: str
    kind: str
    owner_id: int
    content_type: str
    width: int
    height: int

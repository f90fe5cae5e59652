"""Resource objects in Discord v10's shape: what the relay sends and the client reads.

Ids travel as strings and are accepted as strings or integers; permission bitfields
travel as strings. Unknown fields are ignored when reading, so a newer relay never
breaks an older client.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from .permissions import Permissions, parse_permissions
from .snowflake import parse_snowflake

Snowflake = Annotated[int, BeforeValidator(parse_snowflake), PlainSerializer(str, return_type=str)]
PermissionBits = Annotated[
    Permissions,
    BeforeValidator(parse_permissions),
    PlainSerializer(lambda p: str(int(p)), return_type=str),
]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready form sent on the wire."""
        return self.model_dump(mode="json")


class ChannelType(IntEnum):
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GROUP_DM = 3
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5


GUILD_CHANNEL_TYPES = frozenset(
    {
        ChannelType.GUILD_TEXT,
        ChannelType.GUILD_VOICE,
        ChannelType.GUILD_CATEGORY,
        ChannelType.GUILD_ANNOUNCEMENT,
    }
)
TEXT_CHANNEL_TYPES = frozenset({ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT})


class MessageType(IntEnum):
    DEFAULT = 0
    GUILD_MEMBER_JOIN = 7
    REPLY = 19


class PresenceStatus(StrEnum):
    ONLINE = "online"
    IDLE = "idle"
    DND = "dnd"
    INVISIBLE = "invisible"
    OFFLINE = "offline"


class User(Model):
    id: Snowflake
    username: str
    global_name: str | None = None
    discriminator: str = "0"
    avatar: str | None = None
    banner: str | None = None
    accent_color: int | None = None
    bio: str = ""
    pronouns: str = ""
    bot: bool = False
    system: bool = False
    public_flags: int = 0
    flags: int = 0


class Role(Model):
    id: Snowflake
    name: str
    color: int = 0
    hoist: bool = False
    position: int = 0
    permissions: PermissionBits
    managed: bool = False
    mentionable: bool = False
    icon: str | None = None
    unicode_emoji: str | None = None
    flags: int = 0


class PermissionOverwrite(Model):
    id: Snowflake
    type: int = Field(ge=0, le=1)
    allow: PermissionBits
    deny: PermissionBits


class Channel(Model):
    id: Snowflake
    type: ChannelType
    guild_id: Snowflake | None = None
    name: str | None = None
    topic: str | None = None
    position: int = 0
    parent_id: Snowflake | None = None
    nsfw: bool = False
    rate_limit_per_user: int = 0
    bitrate: int | None = None
    user_limit: int | None = None
    last_message_id: Snowflake | None = None
    permission_overwrites: list[PermissionOverwrite] = []
    flags: int = 0
    e2ee: bool = False  # Nexus: end-to-end encrypted (one way; see docs/e2ee.md)


class Member(Model):
    user: User | None = None
    nick: str | None = None
    avatar: str | None = None
    roles: list[Snowflake] = []
    joined_at: datetime
    premium_since: datetime | None = None
    deaf: bool = False
    mute: bool = False
    pending: bool = False
    flags: int = 0
    communication_disabled_until: datetime | None = None
    permissions: PermissionBits | None = None


class Guild(Model):
    id: Snowflake
    name: str
    icon: str | None = None
    splash: str | None = None
    banner: str | None = None
    description: str | None = None
    owner_id: Snowflake
    afk_channel_id: Snowflake | None = None
    afk_timeout: int = 300
    verification_level: int = 0
    default_message_notifications: int = 0
    explicit_content_filter: int = 0
    roles: list[Role] = []
    emojis: list[dict[str, Any]] = []
    features: list[str] = []
    mfa_level: int = 0
    system_channel_id: Snowflake | None = None
    system_channel_flags: int = 0
    rules_channel_id: Snowflake | None = None
    vanity_url_code: str | None = None
    premium_tier: int = 0
    preferred_locale: str = "en-US"
    public_updates_channel_id: Snowflake | None = None
    nsfw_level: int = 0
    premium_progress_bar_enabled: bool = False
    stickers: list[dict[str, Any]] = []
    max_members: int | None = None
    approximate_member_count: int | None = None
    approximate_presence_count: int | None = None


class Emoji(Model):
    id: Snowflake | None = None
    name: str


class Reaction(Model):
    count: int
    me: bool
    emoji: Emoji
    burst_colors: list[str] = []
    count_details: dict[str, int] = {}
    me_burst: bool = False
    burst_count: int = 0


class MessageReference(Model):
    message_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    guild_id: Snowflake | None = None
    fail_if_not_exists: bool = True


class Attachment(Model):
    """A file carried by a message; `url` and `proxy_url` are absolute relay URLs.

    Discord marks a spoiler by the `SPOILER_` filename prefix; `spoiler` states it
    outright so readers need not parse names.
    """

    id: Snowflake
    filename: str
    size: int
    url: str
    proxy_url: str
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    description: str | None = None
    spoiler: bool = False


class Message(Model):
    id: Snowflake
    channel_id: Snowflake
    guild_id: Snowflake | None = None
    author: User
    member: Member | None = None
    content: str
    timestamp: datetime
    edited_timestamp: datetime | None = None
    tts: bool = False
    mention_everyone: bool = False
    mentions: list[User] = []
    mention_roles: list[Snowflake] = []
    attachments: list[Attachment] = []
    embeds: list[dict[str, Any]] = []
    reactions: list[Reaction] = []
    nonce: str | None = None
    pinned: bool = False
    type: MessageType = MessageType.DEFAULT
    flags: int = 0
    message_reference: MessageReference | None = None
    referenced_message: Message | None = None


class PartialGuild(Model):
    """What an invite shows of a community before joining it."""

    id: Snowflake
    name: str
    icon: str | None = None
    banner: str | None = None
    description: str | None = None
    features: list[str] = []


class PartialChannel(Model):
    id: Snowflake
    name: str | None = None
    type: ChannelType


class Invite(Model):
    code: str
    type: int = 0
    guild: PartialGuild | None = None
    channel: PartialChannel | None = None
    inviter: User | None = None
    uses: int | None = None
    max_uses: int | None = None
    max_age: int | None = None
    temporary: bool = False
    created_at: datetime | None = None
    expires_at: datetime | None = None
    approximate_member_count: int | None = None
    approximate_presence_count: int | None = None


class ReadState(Model):
    """Nexus extension: how far a user has read a channel, with what is still unread."""

    channel_id: Snowflake
    last_message_id: Snowflake | None = None
    mention_count: int = 0
    unread_count: int = 0


class Ban(Model):
    reason: str | None = None
    user: User


class AuditLogEntry(Model):
    id: Snowflake
    guild_id: Snowflake | None = None
    user_id: Snowflake | None = None
    target_id: Snowflake | None = None
    action_type: int
    reason: str | None = None
    changes: list[dict[str, Any]] = []
    options: dict[str, str] | None = None


class AuditLogEvent(IntEnum):
    GUILD_UPDATE = 1
    CHANNEL_CREATE = 10
    CHANNEL_UPDATE = 11
    CHANNEL_DELETE = 12
    CHANNEL_OVERWRITE_CREATE = 13
    CHANNEL_OVERWRITE_UPDATE = 14
    CHANNEL_OVERWRITE_DELETE = 15
    MEMBER_KICK = 20
    MEMBER_BAN_ADD = 22
    MEMBER_BAN_REMOVE = 23
    MEMBER_UPDATE = 24
    MEMBER_ROLE_UPDATE = 25
    BOT_ADD = 28
    ROLE_CREATE = 30
    ROLE_UPDATE = 31
    ROLE_DELETE = 32
    INVITE_CREATE = 40
    INVITE_DELETE = 42
    MESSAGE_DELETE = 72
    MESSAGE_BULK_DELETE = 73
    MESSAGE_PIN = 74
    MESSAGE_UNPIN = 75


class Session(Model):
    """Nexus extension: one logged-in device of the current user."""

    id: Snowflake
    created_at: datetime
    last_used_at: datetime | None = None
    user_agent: str = ""
    current: bool = False


class AuthResponse(Model):
    token: str
    user: User


class ErrorBody(Model):
    code: int
    message: str
    errors: dict[str, Any] | None = None


class RateLimitBody(Model):
    message: str = "You are being rate limited."
    retry_after: float
    global_: bool = Field(alias="global", serialization_alias="global")
    code: int | None = None

"""Request bodies the relay accepts, shared so the SDK builds exactly what the relay checks.

Limits are Discord's where Discord has them. Unknown fields are ignored (Discord's
libraries send a few Nexus does not use); a wrong field is an error naming it.
"""

from __future__ import annotations

import base64
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .e2ee import MAX_CIPHERTEXT_BYTES, MAX_ENVELOPES, EnvelopeBody
from .models import ChannelType, PermissionBits, PresenceStatus, Snowflake
from .permissions import Permissions

MAX_MESSAGE_LENGTH = 4000
MAX_NONCE_LENGTH = 64

Username = Annotated[str, StringConstraints(min_length=2, max_length=32, pattern=r"^[a-z0-9_.]+$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Name100 = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]

# Images (avatars, banners, community icons) travel as Discord does: a data URI such as
# ``data:image/png;base64,iVBOR…`` uploads one, null removes it, and the object then
# carries the image's hash. The relay checks the rest (size, content) and names the field.
IMAGE_CONTENT_TYPES: Final = ("image/png", "image/jpeg", "image/gif", "image/webp")
ImageData = Annotated[
    str,
    Field(
        description="An image as data:image/png;base64,… (PNG, JPEG, GIF or WebP), the "
        "image's current hash to keep it, or null to remove it"
    ),
]

_IMAGE_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_content_type(data: bytes) -> str | None:
    """The type of an image from its first bytes, or None for anything but PNG, JPEG,
    GIF and WebP."""
    for signature, content_type in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_data_uri(data: bytes) -> str:
    """What an avatar, banner or icon field takes: ``data:<type>;base64,<data>``.
    Raises ValueError for bytes that are not a PNG, JPEG, GIF or WebP image."""
    content_type = image_content_type(data)
    if content_type is None:
        raise ValueError("not a PNG, JPEG, GIF or WebP image")
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RegisterBody(Body):
    username: Username
    password: Password
    display_name: Annotated[str, StringConstraints(max_length=32)] | None = None

    @field_validator("username", mode="before")
    @classmethod
    def _fold_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class LoginBody(Body):
    login: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    user_agent: Annotated[str, StringConstraints(max_length=200)] = ""


class ChangePasswordBody(Body):
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


class ModifyUserBody(Body):
    username: Username | None = None
    global_name: Annotated[str, StringConstraints(max_length=32)] | None = None
    avatar: ImageData | None = None
    banner: ImageData | None = None
    bio: Annotated[str, StringConstraints(max_length=190)] | None = None
    pronouns: Annotated[str, StringConstraints(max_length=40)] | None = None
    accent_color: Annotated[int, Field(ge=0, le=0xFFFFFF)] | None = None


class CreateGuildBody(Body):
    name: Annotated[str, StringConstraints(min_length=2, max_length=100, strip_whitespace=True)]
    icon: ImageData | None = None
    description: Annotated[str, StringConstraints(max_length=300)] | None = None


class ModifyGuildBody(Body):
    name: (
        Annotated[str, StringConstraints(min_length=2, max_length=100, strip_whitespace=True)]
        | None
    ) = None
    icon: ImageData | None = None
    banner: ImageData | None = None
    description: Annotated[str, StringConstraints(max_length=300)] | None = None
    system_channel_id: Snowflake | None = None
    owner_id: Snowflake | None = None


class OverwriteBody(Body):
    id: Snowflake
    type: Annotated[int, Field(ge=0, le=1)]
    allow: PermissionBits = Permissions(0)
    deny: PermissionBits = Permissions(0)


class CreateChannelBody(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    type: ChannelType = ChannelType.GUILD_TEXT
    topic: Annotated[str, StringConstraints(max_length=1024)] | None = None
    position: Annotated[int, Field(ge=0)] | None = None
    parent_id: Snowflake | None = None
    nsfw: bool = False
    rate_limit_per_user: Annotated[int, Field(ge=0, le=21600)] = 0
    bitrate: Annotated[int, Field(ge=8000, le=384000)] | None = None
    user_limit: Annotated[int, Field(ge=0, le=99)] | None = None
    permission_overwrites: Annotated[list[OverwriteBody], Field(max_length=100)] = []


class ModifyChannelBody(Body):
    name: (
        Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
        | None
    ) = None
    topic: Annotated[str, StringConstraints(max_length=1024)] | None = None
    position: Annotated[int, Field(ge=0)] | None = None
    parent_id: Snowflake | None = None
    nsfw: bool | None = None
    rate_limit_per_user: Annotated[int, Field(ge=0, le=21600)] | None = None
    bitrate: Annotated[int, Field(ge=8000, le=384000)] | None = None
    user_limit: Annotated[int, Field(ge=0, le=99)] | None = None
    permission_overwrites: Annotated[list[OverwriteBody], Field(max_length=100)] | None = None
    # Nexus extension: end-to-end encryption, one way (it cannot be turned off).
    e2ee: bool | None = None


class PositionBody(Body):
    id: Snowflake
    position: Annotated[int, Field(ge=0)] | None = None
    parent_id: Snowflake | None = None
    lock_permissions: bool | None = None


class EditOverwriteBody(Body):
    type: Annotated[int, Field(ge=0, le=1)]
    allow: PermissionBits | None = None
    deny: PermissionBits | None = None


class RoleBody(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    permissions: PermissionBits | None = None
    color: Annotated[int, Field(ge=0, le=0xFFFFFF)] | None = None
    hoist: bool | None = None
    mentionable: bool | None = None
    unicode_emoji: Annotated[str, StringConstraints(max_length=32)] | None = None


class AllowedMentionsBody(Body):
    parse: list[str] | None = None
    users: list[Snowflake] | None = None
    roles: list[Snowflake] | None = None
    replied_user: bool = True


class MessageReferenceBody(Body):
    message_id: Snowflake
    channel_id: Snowflake | None = None
    guild_id: Snowflake | None = None
    fail_if_not_exists: bool = True


class CreateMessageBody(Body):
    content: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LENGTH)] = ""
    nonce: Annotated[str, StringConstraints(max_length=MAX_NONCE_LENGTH)] | int | None = None
    tts: bool = False
    enforce_nonce: bool = True
    message_reference: MessageReferenceBody | None = None
    allowed_mentions: AllowedMentionsBody | None = None
    embeds: Annotated[list[dict[str, object]], Field(max_length=0)] = []
    sticker_ids: Annotated[list[Snowflake], Field(max_length=0)] = []
    flags: int = 0
    # Nexus extension: in a DM, the message is these ciphertexts and ``content`` is empty.
    envelopes: (
        Annotated[list[EnvelopeBody], Field(min_length=1, max_length=MAX_ENVELOPES)] | None
    ) = None
    # Nexus extension: in a group DM or an encrypted channel, one Megolm ciphertext for
    # everyone (base64; ``envelopes`` then carry the session key to devices that need it).
    megolm: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_CIPHERTEXT_BYTES)] | None
    ) = None


class EditMessageBody(Body):
    content: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LENGTH)] | None = None
    allowed_mentions: AllowedMentionsBody | None = None
    flags: int | None = None


class BulkDeleteBody(Body):
    messages: Annotated[list[Snowflake], Field(min_length=2, max_length=100)]


class CreateInviteBody(Body):
    max_age: Annotated[int, Field(ge=0, le=604800)] = 86400
    max_uses: Annotated[int, Field(ge=0, le=100)] = 0
    temporary: bool = False
    unique: bool = False


class ModifyMemberBody(Body):
    nick: Annotated[str, StringConstraints(max_length=32)] | None = None
    roles: Annotated[list[Snowflake], Field(max_length=250)] | None = None
    mute: bool | None = None
    deaf: bool | None = None
    channel_id: Snowflake | None = None


class ModifyCurrentMemberBody(Body):
    nick: Annotated[str, StringConstraints(max_length=32)] | None = None


class BanBody(Body):
    delete_message_seconds: Annotated[int, Field(ge=0, le=604800)] = 0
    delete_message_days: Annotated[int, Field(ge=0, le=7)] | None = None
    reason: Annotated[str, StringConstraints(max_length=512)] | None = None


class AckBody(Body):
    token: str | None = None


class PresenceBody(Body):
    status: PresenceStatus
    since: int | None = None
    afk: bool = False
    activities: list[dict[str, object]] = []


class CreateApplicationBody(Body):
    """A Nexus extension: Discord creates applications in its developer portal."""

    name: Annotated[str, StringConstraints(min_length=2, max_length=32, strip_whitespace=True)]


class AuthorizeBotBody(Body):
    """What Discord's own client posts to /oauth2/authorize to add a bot to a guild."""

    guild_id: Snowflake
    permissions: PermissionBits | None = None
    authorize: bool = True

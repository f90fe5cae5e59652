"""Permission bits (Discord's values) and the one computation of what a member may do.

The algorithm is Discord's: start from the @everyone role, OR in the member's roles;
ADMINISTRATOR or ownership grants everything; then, in a channel, apply the @everyone
overwrite, the role overwrites (denies then allows, all roles at once), then the
member's own overwrite. Nothing else in Nexus decides permissions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final


class Permissions(IntFlag):
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_GUILD_EXPRESSIONS = 1 << 30
    USE_APPLICATION_COMMANDS = 1 << 31
    REQUEST_TO_SPEAK = 1 << 32
    MANAGE_EVENTS = 1 << 33
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    USE_EXTERNAL_STICKERS = 1 << 37
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EMBEDDED_ACTIVITIES = 1 << 39
    MODERATE_MEMBERS = 1 << 40
    VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41
    USE_SOUNDBOARD = 1 << 42
    CREATE_GUILD_EXPRESSIONS = 1 << 43
    CREATE_EVENTS = 1 << 44
    USE_EXTERNAL_SOUNDS = 1 << 45
    SEND_VOICE_MESSAGES = 1 << 46
    SEND_POLLS = 1 << 49
    USE_EXTERNAL_APPS = 1 << 50


ALL_PERMISSIONS: Final = Permissions(sum(p.value for p in Permissions))
NONE: Final = Permissions(0)

# What @everyone may do in a new community: talk, read, react, join voice, invite.
DEFAULT_EVERYONE: Final = (
    Permissions.CREATE_INSTANT_INVITE
    | Permissions.ADD_REACTIONS
    | Permissions.STREAM
    | Permissions.VIEW_CHANNEL
    | Permissions.SEND_MESSAGES
    | Permissions.EMBED_LINKS
    | Permissions.ATTACH_FILES
    | Permissions.READ_MESSAGE_HISTORY
    | Permissions.USE_EXTERNAL_EMOJIS
    | Permissions.CONNECT
    | Permissions.SPEAK
    | Permissions.USE_VAD
    | Permissions.CHANGE_NICKNAME
    | Permissions.USE_APPLICATION_COMMANDS
    | Permissions.SEND_MESSAGES_IN_THREADS
    | Permissions.CREATE_PUBLIC_THREADS
)

# Channel overwrites can only speak of these; guild-wide powers are not per channel.
CHANNEL_SCOPED: Final = ALL_PERMISSIONS & ~(
    Permissions.KICK_MEMBERS
    | Permissions.BAN_MEMBERS
    | Permissions.ADMINISTRATOR
    | Permissions.MANAGE_GUILD
    | Permissions.VIEW_AUDIT_LOG
    | Permissions.VIEW_GUILD_INSIGHTS
    | Permissions.CHANGE_NICKNAME
    | Permissions.MANAGE_NICKNAMES
    | Permissions.MANAGE_GUILD_EXPRESSIONS
    | Permissions.MODERATE_MEMBERS
    | Permissions.VIEW_CREATOR_MONETIZATION_ANALYTICS
    | Permissions.CREATE_GUILD_EXPRESSIONS
)


def parse_permissions(value: object) -> Permissions:
    """A permission bitfield from the wire (a decimal string, or an int from older bots)."""
    if isinstance(value, bool):
        raise ValueError("must be a permission bitfield")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if not isinstance(value, int) or value < 0 or value >= 1 << 53:
        raise ValueError("must be a permission bitfield")
    if value & ~ALL_PERMISSIONS.value:
        raise ValueError("has undefined permission bits")
    return Permissions(value)


class OverwriteType(IntEnum):
    ROLE = 0
    MEMBER = 1


@dataclass(frozen=True, slots=True)
class Overwrite:
    target_id: int
    type: OverwriteType
    allow: Permissions
    deny: Permissions


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """What computation needs of a role: its id, position and permissions."""

    id: int
    position: int
    permissions: Permissions


def base_permissions(
    *,
    guild_id: int,
    owner_id: int,
    user_id: int,
    roles: Iterable[RoleGrant],
    member_role_ids: Iterable[int],
) -> Permissions:
    """Guild-wide permissions of a member. The @everyone role's id is the guild's id."""
    if user_id == owner_id:
        return ALL_PERMISSIONS
    held = set(member_role_ids)
    held.add(guild_id)
    granted = NONE
    for role in roles:
        if role.id in held:
            granted |= role.permissions
    if granted & Permissions.ADMINISTRATOR:
        return ALL_PERMISSIONS
    return granted


def channel_permissions(
    base: Permissions,
    *,
    guild_id: int,
    user_id: int,
    member_role_ids: Iterable[int],
    overwrites: Iterable[Overwrite],
) -> Permissions:
    """A member's permissions in one channel, from their base permissions."""
    if base & Permissions.ADMINISTRATOR:
        return ALL_PERMISSIONS
    held = set(member_role_ids)
    everyone: Overwrite | None = None
    member: Overwrite | None = None
    role_allow = NONE
    role_deny = NONE
    for overwrite in overwrites:
        if overwrite.type is OverwriteType.ROLE:
            if overwrite.target_id == guild_id:
                everyone = overwrite
            elif overwrite.target_id in held:
                role_allow |= overwrite.allow
                role_deny |= overwrite.deny
        elif overwrite.target_id == user_id:
            member = overwrite
    permissions = base
    if everyone is not None:
        permissions = (permissions & ~everyone.deny) | everyone.allow
    permissions = (permissions & ~role_deny) | role_allow
    if member is not None:
        permissions = (permissions & ~member.deny) | member.allow
    # Without VIEW_CHANNEL nothing else in the channel applies (Discord's implicit rule);
    # without SEND_MESSAGES, mentioning @everyone and sending TTS make no sense either.
    if not permissions & Permissions.VIEW_CHANNEL:
        return NONE
    if not permissions & Permissions.SEND_MESSAGES:
        permissions &= ~(
            Permissions.SEND_TTS_MESSAGES
            | Permissions.MENTION_EVERYONE
            | Permissions.EMBED_LINKS
            | Permissions.ATTACH_FILES
        )
    return permissions


def highest_position(
    roles: Iterable[RoleGrant], member_role_ids: Iterable[int], guild_id: int
) -> int:
    """The position of a member's highest role (0, @everyone's, when they hold none)."""
    held = set(member_role_ids)
    return max((r.position for r in roles if r.id in held and r.id != guild_id), default=0)

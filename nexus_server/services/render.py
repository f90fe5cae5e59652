"""Records to wire JSON in Discord's shape. Pure: the caller fetches what is needed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from nexus_protocol.snowflake import snowflake_time

from ..store.records import (
    ApplicationRecord,
    AttachmentRecord,
    ChannelRecord,
    GuildRecord,
    MemberRecord,
    MessageRecord,
    RoleRecord,
    UserRecord,
)

Json = dict[str, Any]


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def user_json(user: UserRecord) -> Json:
    return {
        "id": str(user.id),
        "username": user.username,
        "global_name": user.global_name,
        "discriminator": "0",
        "avatar": user.avatar,
        "banner": user.banner,
        "accent_color": user.accent_color,
        "bio": user.bio,
        "pronouns": user.pronouns,
        "bot": user.bot,
        "system": False,
        "public_flags": user.flags,
        "flags": user.flags,
    }


def deleted_user_json(user_id: int) -> Json:
    return {"id": str(user_id), "username": "deleted_user", "discriminator": "0", "bot": False}


def role_json(role: RoleRecord) -> Json:
    return {
        "id": str(role.id),
        "name": role.name,
        "color": role.color,
        "hoist": role.hoist,
        "icon": None,
        "unicode_emoji": role.unicode_emoji,
        "position": role.position,
        "permissions": str(role.permissions),
        "managed": role.bot_id is not None,
        "mentionable": role.mentionable,
        "flags": 0,
        **({"tags": {"bot_id": str(role.bot_id)}} if role.bot_id is not None else {}),
    }


def channel_json(channel: ChannelRecord) -> Json:
    body: Json = {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(channel.guild_id) if channel.guild_id is not None else None,
        "name": channel.name,
        "topic": channel.topic,
        "position": channel.position,
        "parent_id": str(channel.parent_id) if channel.parent_id is not None else None,
        "nsfw": channel.nsfw,
        "rate_limit_per_user": channel.rate_limit_per_user,
        "last_message_id": (
            str(channel.last_message_id) if channel.last_message_id is not None else None
        ),
        "permission_overwrites": [
            {
                "id": str(o.target_id),
                "type": int(o.type),
                "allow": str(int(o.allow)),
                "deny": str(int(o.deny)),
            }
            for o in channel.overwrites
        ],
        "flags": 0,
    }
    if channel.e2ee:
        body["e2ee"] = True  # Nexus: end-to-end encrypted (Megolm), for good
    if channel.bitrate is not None or channel.type == 2:
        body["bitrate"] = channel.bitrate or 64000
        body["user_limit"] = channel.user_limit or 0
    return body


def member_json(member: MemberRecord, user: UserRecord | None) -> Json:
    body: Json = {
        "nick": member.nick,
        "avatar": None,
        "roles": [str(r) for r in member.role_ids],
        "joined_at": iso(member.joined_at),
        "premium_since": None,
        "deaf": member.deaf,
        "mute": member.mute,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if user is not None:
        body["user"] = user_json(user)
    return body


def guild_json(
    guild: GuildRecord, roles: Iterable[RoleRecord], *, member_count: int | None = None
) -> Json:
    body: Json = {
        "id": str(guild.id),
        "name": guild.name,
        "icon": guild.icon,
        "icon_hash": guild.icon,
        "splash": None,
        "discovery_splash": None,
        "banner": guild.banner,
        "description": guild.description,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role_json(r) for r in roles],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": (
            str(guild.system_channel_id) if guild.system_channel_id is not None else None
        ),
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "max_members": 250000,
    }
    if member_count is not None:
        body["approximate_member_count"] = member_count
    return body


def reactions_json(
    counts: Iterable[tuple[str, int, bool]],
) -> list[Json]:
    """``counts`` holds (emoji, count, me) in first-reacted order."""
    return [
        {
            "count": count,
            "count_details": {"burst": 0, "normal": count},
            "me": me,
            "me_burst": False,
            "burst_colors": [],
            "burst_count": 0,
            "emoji": emoji_json(emoji),
        }
        for emoji, count, me in counts
    ]


def emoji_json(emoji: str) -> Json:
    # Custom emoji are stored as "name:id"; unicode emoji as themselves.
    name, sep, emoji_id = emoji.rpartition(":")
    if sep and emoji_id.isdigit():
        return {"id": emoji_id, "name": name}
    return {"id": None, "name": emoji}


SPOILER_PREFIX = "SPOILER_"


def attachment_json(attachment: AttachmentRecord, base_url: str) -> Json:
    """Discord's attachment object; ``url`` and ``proxy_url`` both lead to the relay
    (it is its own CDN), with the name percent-encoded for the path."""
    url = (
        f"{base_url}/attachments/{attachment.channel_id}/{attachment.id}/"
        f"{quote(attachment.filename, safe='')}"
    )
    body: Json = {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "size": attachment.size,
        "url": url,
        "proxy_url": url,
        "content_type": attachment.content_type,
        "spoiler": attachment.filename.startswith(SPOILER_PREFIX),
    }
    if attachment.width is not None:
        body["width"] = attachment.width
        body["height"] = attachment.height
    if attachment.description is not None:
        body["description"] = attachment.description
    return body


def message_json(
    message: MessageRecord,
    *,
    users: Mapping[int, UserRecord],
    reactions: list[Json] | None = None,
    referenced: Json | None = None,
    member: Json | None = None,
    base_url: str = "",
) -> Json:
    author = users.get(message.author_id)
    body: Json = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "author": user_json(author) if author else deleted_user_json(message.author_id),
        "content": message.content,
        "timestamp": snowflake_time(message.id).isoformat(),
        "edited_timestamp": iso(message.edited_at),
        "tts": message.tts,
        "mention_everyone": message.mention_everyone,
        "mentions": [user_json(users[u]) for u in message.mention_ids if u in users],
        "mention_roles": [str(r) for r in message.mention_role_ids],
        "attachments": [attachment_json(a, base_url) for a in message.attachments],
        "embeds": [],
        "reactions": reactions or [],
        "nonce": message.nonce,
        "pinned": message.pinned_at is not None,
        "type": message.type,
        "flags": message.flags,
        "components": [],
    }
    if message.guild_id is not None:
        body["guild_id"] = str(message.guild_id)
    if member is not None:
        body["member"] = member
    if message.reference_message_id is not None:
        body["message_reference"] = {
            "type": 0,
            "message_id": str(message.reference_message_id),
            "channel_id": str(message.reference_channel_id or message.channel_id),
            **({"guild_id": str(message.guild_id)} if message.guild_id is not None else {}),
        }
        body["referenced_message"] = referenced
    return body


def application_json(application: ApplicationRecord, *, owner: UserRecord, bot: UserRecord) -> Json:
    """Discord's application object, with what discord.py's ``AppInfo`` requires."""
    return {
        "id": str(application.id),
        "name": application.name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "",
        "flags": 0,
        "owner": user_json(owner),
        "team": None,
        "bot": user_json(bot),
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "tags": [],
        "approximate_guild_count": 0,
        "created_at": iso(application.created_at),
    }

"""The relay's tables, in SQLAlchemy Core. Alembic migrations are generated from this.

Ids are snowflakes (BigInteger). Timestamps are timezone-aware UTC. Times that an id
already carries (a message's creation) are not stored twice.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger
Timestamp = DateTime(timezone=True)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("username", String(32), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("global_name", String(32)),
    Column("avatar", String(256)),
    Column("banner", String(256)),
    Column("bio", String(190), nullable=False, server_default=""),
    Column("pronouns", String(40), nullable=False, server_default=""),
    Column("accent_color", Integer),
    Column("bot", Boolean, nullable=False, server_default="0"),
    Column("flags", Integer, nullable=False, server_default="0"),
)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("last_used_at", Timestamp),
    Column("user_agent", String(200), nullable=False, server_default=""),
    Index(None, "user_id"),
)

guilds = Table(
    "guilds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("icon", String(256)),
    Column("banner", String(256)),
    Column("description", String(300)),
    Column("owner_id", Id, ForeignKey("users.id"), nullable=False),
    Column("system_channel_id", Id),
)

roles = Table(
    "roles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("guild_id", Id, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("color", Integer, nullable=False, server_default="0"),
    Column("hoist", Boolean, nullable=False, server_default="0"),
    Column("position", Integer, nullable=False, server_default="0"),
    Column("permissions", BigInteger, nullable=False),
    Column("mentionable", Boolean, nullable=False, server_default="0"),
    Column("unicode_emoji", String(32)),
    # Set on the role Nexus creates for a bot when it is added ("managed", as on Discord).
    Column("bot_id", Id),
    Index(None, "guild_id"),
)

members = Table(
    "members",
    metadata,
    Column("guild_id", Id, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("nick", String(32)),
    Column("joined_at", Timestamp, nullable=False),
    Column("mute", Boolean, nullable=False, server_default="0"),
    Column("deaf", Boolean, nullable=False, server_default="0"),
    PrimaryKeyConstraint("guild_id", "user_id"),
    Index(None, "user_id"),
)

member_roles = Table(
    "member_roles",
    metadata,
    Column("guild_id", Id, nullable=False),
    Column("user_id", Id, nullable=False),
    Column("role_id", Id, ForeignKey("roles.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("guild_id", "user_id", "role_id"),
    Index(None, "role_id"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("guild_id", Id, ForeignKey("guilds.id", ondelete="CASCADE")),
    Column("type", SmallInteger, nullable=False),
    Column("name", String(100)),
    Column("topic", String(1024)),
    Column("position", Integer, nullable=False, server_default="0"),
    Column("parent_id", Id),
    Column("nsfw", Boolean, nullable=False, server_default="0"),
    Column("rate_limit_per_user", Integer, nullable=False, server_default="0"),
    Column("bitrate", Integer),
    Column("user_limit", Integer),
    Column("last_message_id", Id),
    # Nexus: end-to-end encrypted (one way); a group DM's owner.
    Column("e2ee", Boolean, nullable=False, server_default="0"),
    Column("owner_id", Id),
    Index(None, "guild_id"),
)

overwrites = Table(
    "overwrites",
    metadata,
    Column("channel_id", Id, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("target_id", Id, nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("allow", BigInteger, nullable=False),
    Column("deny", BigInteger, nullable=False),
    PrimaryKeyConstraint("channel_id", "target_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("channel_id", Id, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("guild_id", Id),
    Column("author_id", Id, ForeignKey("users.id"), nullable=False),
    Column("content", Text, nullable=False),
    Column("type", SmallInteger, nullable=False, server_default="0"),
    Column("flags", Integer, nullable=False, server_default="0"),
    Column("tts", Boolean, nullable=False, server_default="0"),
    Column("edited_at", Timestamp),
    Column("pinned_at", Timestamp),
    Column("nonce", String(64)),
    Column("mention_everyone", Boolean, nullable=False, server_default="0"),
    Column("reference_message_id", Id),
    Column("reference_channel_id", Id),
    # Room for the attachments and embeds issues: JSON lists, empty for now.
    Column("attachments", JSON, nullable=False, server_default="[]"),
    Column("embeds", JSON, nullable=False, server_default="[]"),
    UniqueConstraint("author_id", "nonce"),
    Index(None, "channel_id", "id"),
)

message_mentions = Table(
    "message_mentions",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", Id, nullable=False),
    Column("user_id", Id, nullable=False),
    PrimaryKeyConstraint("message_id", "user_id"),
    Index(None, "user_id", "channel_id", "message_id"),
)

message_role_mentions = Table(
    "message_role_mentions",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", Id, nullable=False),
    Column("role_id", Id, nullable=False),
    PrimaryKeyConstraint("message_id", "role_id"),
    Index(None, "role_id", "channel_id", "message_id"),
)

reactions = Table(
    "reactions",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("emoji", String(64), nullable=False),
    Column("user_id", Id, nullable=False),
    Column("created_id", Id, nullable=False),  # snowflake: orders users and first reactions
    PrimaryKeyConstraint("message_id", "emoji", "user_id"),
)

invites = Table(
    "invites",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("guild_id", Id, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", Id, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("inviter_id", Id),
    Column("max_uses", Integer, nullable=False, server_default="0"),
    Column("uses", Integer, nullable=False, server_default="0"),
    Column("max_age", Integer, nullable=False, server_default="0"),
    Column("temporary", Boolean, nullable=False, server_default="0"),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp),
    Index(None, "guild_id"),
)

bans = Table(
    "bans",
    metadata,
    Column("guild_id", Id, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, nullable=False),
    Column("reason", String(512)),
    PrimaryKeyConstraint("guild_id", "user_id"),
)

read_states = Table(
    "read_states",
    metadata,
    Column("user_id", Id, nullable=False),
    Column("channel_id", Id, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("last_message_id", Id, nullable=False),
    PrimaryKeyConstraint("user_id", "channel_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("guild_id", Id, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id),
    Column("target_id", Id),
    Column("action_type", SmallInteger, nullable=False),
    Column("reason", String(512)),
    Column("changes", JSON, nullable=False, server_default="[]"),
    Column("options", JSON),
    Index(None, "guild_id", "id"),
)

applications = Table(
    "applications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("owner_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(32), nullable=False),
    Column("bot_user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "owner_id"),
    Index(None, "bot_user_id", unique=True),
)

# End-to-end encryption (migration 0003). The relay holds public keys and ciphertext only.

devices = Table(
    "devices",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("name", String(64), nullable=False, server_default=""),
    Column("identity_key", LargeBinary(32), nullable=False),
    Column("signed_prekey", LargeBinary(32)),
    Column("signed_prekey_signature", LargeBinary(64)),
    Column("created_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id"),
)

one_time_prekeys = Table(
    "one_time_prekeys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("user_id", Id, nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    UniqueConstraint("user_id", "device_id", "public_key"),
)

# A one-to-one DM is a ``channels`` row of type 1 with no guild; its two recipients are
# here. ``dm_pairs`` makes "the DM between these two" unique (lower user id first).
channel_recipients = Table(
    "channel_recipients",
    metadata,
    Column("channel_id", Id, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("channel_id", "user_id"),
    Index(None, "user_id"),
)

dm_pairs = Table(
    "dm_pairs",
    metadata,
    Column("low_user_id", Id, nullable=False),
    Column("high_user_id", Id, nullable=False),
    Column("channel_id", Id, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("low_user_id", "high_user_id"),
)

message_envelopes = Table(
    "message_envelopes",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    PrimaryKeyConstraint("message_id", "user_id", "device_id"),
    Index(None, "user_id", "device_id", "message_id"),
)

# One Megolm ciphertext per message of a group DM or an encrypted channel (opaque).
group_ciphertexts = Table(
    "group_ciphertexts",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
)

# A group DM's membership changes, each signed by the acting member's device, in order.
group_membership = Table(
    "group_membership",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("channel_id", Id, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("statement", Text, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Index(None, "channel_id", "id"),
)

# Avatars, banners and community icons (migration 0005), processed and re-encoded by the
# relay. Each row fills one slot, (owner, kind), whose column names it by ``hash``:
# ``users.avatar``/``users.banner`` or ``guilds.icon``/``guilds.banner``.
media = Table(
    "media",
    metadata,
    Column("hash", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("owner_id", Id, nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "owner_id", "kind"),
)

# Files attached to messages (migration 0007), with their bytes, in the message's own
# transaction: every relay node sees them, and a message never lists a file that was
# not stored. Deleting the message (or its channel or community) deletes them.
attachments = Table(
    "attachments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", Id, nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("filename", String(255), nullable=False),
    Column("description", String(1024)),
    Column("content_type", String(127), nullable=False),
    Column("size", Integer, nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    # SHA-256 of the stored bytes: the ETag, never shown in a URL.
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index(None, "message_id"),
)

# The full-text index on ``messages.content`` (migration 0006) differs per database and
# is not declared here: an FTS5 table with its shadow tables on SQLite, a GIN index on
# ``to_tsvector('simple', content)`` on PostgreSQL. The schema comparison skips them.
MESSAGE_SEARCH_TABLE = "messages_fts"
MESSAGE_SEARCH_INDEX = "ix_messages_content_search"


def is_message_search_object(name: str | None) -> bool:
    """True for the search index's own tables and index, which ``metadata`` omits."""
    if name is None:
        return False
    return name == MESSAGE_SEARCH_INDEX or name.startswith(MESSAGE_SEARCH_TABLE)

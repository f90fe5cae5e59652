"""The local store's schema, as an ordered list of migrations.

Invariants:

- ``PRAGMA user_version`` is the number of migrations applied. Migration ``n`` (1-based)
  runs in one transaction together with setting ``user_version = n``, so a crash leaves
  the schema at ``n - 1`` or ``n``, never in between.
- Migrations are append-only: a released one is never edited, a change is a new one.
- A store written by a newer Nexus (``user_version`` above what we know) is refused
  rather than guessed at.
"""

from __future__ import annotations

from typing import Final

from .._exceptions import StoreError
from ._database import Database

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: caches, read states, key/value meta, the outbox.
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # ``position`` keeps the order the relay sent; ``data`` is the JSON object.
        "CREATE TABLE guilds (id INTEGER PRIMARY KEY, position INTEGER NOT NULL,"
        " data TEXT NOT NULL)",
        "CREATE TABLE channels (id INTEGER PRIMARY KEY, guild_id INTEGER,"
        " position INTEGER NOT NULL, data TEXT NOT NULL)",
        "CREATE INDEX channels_by_guild ON channels (guild_id, position)",
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, channel_id INTEGER NOT NULL,"
        " data TEXT NOT NULL)",
        "CREATE INDEX messages_by_channel ON messages (channel_id, id)",
        "CREATE TABLE read_states (channel_id INTEGER PRIMARY KEY,"
        " last_message_id INTEGER, mention_count INTEGER NOT NULL)",
        # AUTOINCREMENT: a local id is never reused, even after the newest row is pruned,
        # so local ids order every message ever enqueued.
        "CREATE TABLE outbox ("
        " local_id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " channel_id INTEGER NOT NULL,"
        " content TEXT NOT NULL,"
        " nonce TEXT NOT NULL UNIQUE,"
        " reply_to INTEGER,"
        " state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),"
        " message_id INTEGER,"
        " error TEXT,"
        " created_at REAL NOT NULL)",
        "CREATE INDEX outbox_by_state ON outbox (state, local_id)",
    ),
    # 2: end-to-end encryption: this device's X3DH state, ratchet sessions per peer
    # device, the identity keys seen per peer device, and digests of envelopes already
    # decrypted (replay rejection).
    (
        "CREATE TABLE e2ee_identity (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " user_id INTEGER NOT NULL, device_id TEXT NOT NULL, state TEXT NOT NULL,"
        " published INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE e2ee_sessions (user_id INTEGER NOT NULL, device_id TEXT NOT NULL,"
        " state TEXT NOT NULL, PRIMARY KEY (user_id, device_id))",
        "CREATE TABLE e2ee_peers (user_id INTEGER NOT NULL, device_id TEXT NOT NULL,"
        " identity_key BLOB NOT NULL, changed INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (user_id, device_id))",
        "CREATE TABLE e2ee_seen (digest BLOB PRIMARY KEY, seen_at REAL NOT NULL)",
        "CREATE INDEX e2ee_seen_by_time ON e2ee_seen (seen_at)",
    ),
    # 3: Megolm group sessions: this device's outbound session per channel (and the
    # devices it was shared with), inbound sessions bound to their sender and channel,
    # and the (session, message index) pairs already decrypted (replay filter).
    (
        "CREATE TABLE e2ee_group_out (channel_id INTEGER PRIMARY KEY,"
        " session_id TEXT NOT NULL, pickle TEXT NOT NULL, shared_with TEXT NOT NULL,"
        " created_at REAL NOT NULL)",
        "CREATE TABLE e2ee_group_in (session_id TEXT PRIMARY KEY, channel_id INTEGER NOT NULL,"
        " sender_user INTEGER NOT NULL, sender_device TEXT NOT NULL, pickle TEXT NOT NULL)",
        "CREATE TABLE e2ee_group_seen (session_id TEXT NOT NULL,"
        " message_index INTEGER NOT NULL, PRIMARY KEY (session_id, message_index))",
    ),
    # 4: the archive of end-to-end encrypted messages: what each one decrypted to (or why
    # it did not), and this device's own sent messages. A ratchet message decrypts only
    # once, so unlike the message cache this table is never trimmed.
    (
        "CREATE TABLE e2ee_archive (message_id INTEGER PRIMARY KEY,"
        " channel_id INTEGER NOT NULL, data TEXT NOT NULL)",
        "CREATE INDEX e2ee_archive_by_channel ON e2ee_archive (channel_id, message_id)",
    ),
    # 5: the image cache: avatars, banners and community icons by (kind, owner, hash,
    # size), with their byte counts and last use for least-recently-used eviction.
    (
        "CREATE TABLE image_cache (kind TEXT NOT NULL, owner_id INTEGER NOT NULL,"
        " hash TEXT NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL,"
        " bytes INTEGER NOT NULL, used_at REAL NOT NULL,"
        " PRIMARY KEY (kind, owner_id, hash, size))",
        "CREATE INDEX image_cache_by_use ON image_cache (used_at)",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)


def schema_version(database: Database) -> int:
    row = database.fetchone("PRAGMA user_version")
    return int(row[0]) if row else 0


def migrate(database: Database) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns how many migrations ran."""
    current = schema_version(database)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the local store {database.path} has schema {current}, newer than this "
            f"version of Nexus understands ({SCHEMA_VERSION}); update Nexus"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with database.transaction():
            if schema_version(database) >= version:
                continue  # another process sharing the file got here first
            for statement in MIGRATIONS[version - 1]:
                database.execute(statement)
            # A pragma takes no bound parameters; ``version`` is our own int.
            database.execute(f"PRAGMA user_version = {version:d}")
    return SCHEMA_VERSION - current

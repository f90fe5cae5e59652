"""``LocalStore``: one account's encrypted cache of guilds, channels, messages, read
states and images, its key/value ``meta``, and the rows of its outbox.

Objects from the relay are kept as the JSON objects it sent (Discord's shapes, ids as
strings or ints); the store only reads the ids it indexes on. It never interprets the
rest, so a newer relay's extra fields round-trip untouched.

Invariants:

- Every method that writes is one transaction: all of it is on disk when it returns, or
  none of it is.
- At most ``MESSAGES_PER_CHANNEL`` messages are cached per channel: the newest by id.
- The file is only ever opened keyed (see ``_database``); no plaintext, ever.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from ._database import Database
from ._e2ee_table import E2EETable
from ._image_table import ImageCacheTable
from ._keys import ScryptParams, keyring_key, passphrase_key
from ._migrations import migrate
from ._outbox_table import OutboxTable

MESSAGES_PER_CHANNEL: Final = 500

JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReadState:
    channel_id: int
    last_message_id: int | None
    mention_count: int


def _snowflake(value: object, what: str) -> int:
    """An id from a relay object: Discord sends them as strings, tests often as ints."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be a snowflake, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{what} must be a snowflake, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{what} must be a snowflake, got {value!r}")
    return number


def _encode(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _decode(text: str) -> JSONObject:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


class LocalStore:
    """One account's SQLCipher store. Open with ``LocalStore.open``; use as a context
    manager or call ``close``. Methods are synchronous: each is a short local transaction,
    fine to call from the event loop."""

    def __init__(self, database: Database) -> None:
        self._db = database
        migrate(database)
        #: The outbox's table; ``nexus_client.outbox.Outbox`` is the API to use.
        self.outbox_rows = OutboxTable(database)
        self.outbox_rows.recover()
        #: End-to-end encryption state; ``nexus_client.e2ee`` is the API to use.
        self.e2ee = E2EETable(database)
        #: Avatars, banners and icons; ``Client.fetch_image`` is the API to use.
        self.images = ImageCacheTable(database)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        keyring_username: str | None = None,
        kdf: ScryptParams | None = None,
    ) -> LocalStore:
        """Open or create the store at ``path``.

        With ``passphrase``, the key is derived from it (scrypt, salt in ``<path>.salt``).
        Without, a random key is kept in the OS keyring under service ``"nexus"`` and
        ``keyring_username`` (default: the store's absolute path).

        Raises ``StoreLocked`` if the file exists and the key does not open it (the file
        is left untouched), ``NoKeyAvailable`` if there is no passphrase and no usable
        keyring. ``kdf`` sets the scrypt cost of a new passphrase store.
        """
        db_path = Path(path).absolute()
        exists = db_path.exists() and db_path.stat().st_size > 0
        if passphrase is not None:
            key = passphrase_key(
                db_path, passphrase, db_exists=exists, params=kdf or ScryptParams()
            )
        else:
            key = keyring_key(keyring_username or str(db_path), db_exists=exists)
        return cls.open_with_key(db_path, key)

    @classmethod
    def open_with_key(cls, path: str | os.PathLike[str], key: bytes) -> LocalStore:
        """Open or create the store at ``path`` with a raw 32-byte key the caller keeps."""
        database = Database.open(Path(path).absolute(), key)
        try:
            return cls(database)
        except BaseException:
            database.close()
            raise

    @property
    def path(self) -> Path:
        return self._db.path

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- guilds and channels ---------------------------------------------------------

    def save_guilds(self, guilds: Iterable[Mapping[str, Any]]) -> None:
        """Replace the cached guilds with ``guilds`` (the full list, e.g. from READY)."""
        rows = [(_snowflake(g.get("id"), "guild id"), i, _encode(g)) for i, g in enumerate(guilds)]
        with self._db.transaction():
            self._db.execute("DELETE FROM guilds")
            self._db.executemany("INSERT INTO guilds (id, position, data) VALUES (?, ?, ?)", rows)

    def guilds(self) -> list[JSONObject]:
        return [
            _decode(r[0]) for r in self._db.fetchall("SELECT data FROM guilds ORDER BY position")
        ]

    def save_channels(self, guild_id: int | None, channels: Iterable[Mapping[str, Any]]) -> None:
        """Replace the cached channels of ``guild_id`` (None: DMs and group DMs) with
        ``channels``, the guild's full list."""
        rows = [
            (_snowflake(c.get("id"), "channel id"), guild_id, i, _encode(c))
            for i, c in enumerate(channels)
        ]
        with self._db.transaction():
            self._db.execute("DELETE FROM channels WHERE guild_id IS ?", (guild_id,))
            # A row left from another list (a stale guild id) is replaced, not duplicated.
            self._db.executemany(
                "INSERT OR REPLACE INTO channels (id, guild_id, position, data)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )

    def channels(self, guild_id: int | None) -> list[JSONObject]:
        return [
            _decode(r[0])
            for r in self._db.fetchall(
                "SELECT data FROM channels WHERE guild_id IS ? ORDER BY position", (guild_id,)
            )
        ]

    # -- messages --------------------------------------------------------------------

    def save_messages(self, channel_id: int, messages: Iterable[Mapping[str, Any]]) -> None:
        """Insert or replace ``messages`` (by id) in ``channel_id``'s cache, then keep only
        the newest ``MESSAGES_PER_CHANNEL``."""
        rows = [(_snowflake(m.get("id"), "message id"), channel_id, _encode(m)) for m in messages]
        with self._db.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO messages (id, channel_id, data) VALUES (?, ?, ?)", rows
            )
            self._trim_messages(channel_id)

    def apply_message_update(self, update: Mapping[str, Any]) -> bool:
        """Merge a partial message (MESSAGE_UPDATE's payload) into the cached one.
        Returns False, changing nothing, if that message is not cached."""
        message_id = _snowflake(update.get("id"), "message id")
        with self._db.transaction():
            row = self._db.fetchone("SELECT data FROM messages WHERE id = ?", (message_id,))
            if row is None:
                return False
            merged = _decode(row[0])
            merged.update(update)
            self._db.execute(
                "UPDATE messages SET data = ? WHERE id = ?", (_encode(merged), message_id)
            )
        return True

    def delete_messages(self, channel_id: int, message_ids: Iterable[int | str]) -> int:
        """Drop messages from the cache; returns how many were cached."""
        ids = [(_snowflake(i, "message id"), channel_id) for i in message_ids]
        deleted = 0
        with self._db.transaction():
            for params in ids:
                deleted += self._db.execute(
                    "DELETE FROM messages WHERE id = ? AND channel_id = ?", params
                ).rowcount
        return deleted

    def messages(
        self, channel_id: int, limit: int = 50, before: int | None = None
    ) -> list[JSONObject]:
        """Cached messages of a channel, newest first; only ids below ``before`` if given."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        sql = "SELECT data FROM messages WHERE channel_id = ?"
        params: list[int] = [channel_id]
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [_decode(r[0]) for r in self._db.fetchall(sql, params)]

    def _trim_messages(self, channel_id: int) -> None:
        self._db.execute(
            "DELETE FROM messages WHERE channel_id = ? AND id < ("
            " SELECT id FROM messages WHERE channel_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (channel_id, channel_id, MESSAGES_PER_CHANNEL - 1),
        )

    # -- read states -----------------------------------------------------------------

    def save_read_state(
        self, channel_id: int, last_message_id: int | None, mention_count: int
    ) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO read_states (channel_id, last_message_id, mention_count)"
                " VALUES (?, ?, ?)",
                (channel_id, last_message_id, mention_count),
            )

    def read_states(self) -> dict[int, ReadState]:
        return {
            int(r[0]): ReadState(
                channel_id=int(r[0]),
                last_message_id=None if r[1] is None else int(r[1]),
                mention_count=int(r[2]),
            )
            for r in self._db.fetchall(
                "SELECT channel_id, last_message_id, mention_count FROM read_states"
            )
        }

    # -- meta ------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        """Set ``key``; None removes it."""
        with self._db.transaction():
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
                )

"""The end-to-end encryption tables: this device's X3DH state, ratchet sessions, the
identity keys seen for peer devices, digests of envelopes already decrypted, the
Megolm group sessions (outbound per channel, inbound per session, the replay filter),
and the archive of what encrypted messages decrypted to.
The policy lives in ``nexus_client.e2ee``; this module only reads and writes rows.

Invariants:

- A session's new state and the digest of the envelope that produced it are written
  in one transaction: after a crash either both are on disk or neither is, so an
  envelope is never decrypted twice and a message key is never lost half-way.
- An archived message is never overwritten: the first outcome recorded for a message id
  (its plaintext, or why it did not decrypt) is the one kept.
- At most ``MAX_SEEN`` digests are kept (the oldest go first); the ratchet itself also
  refuses a message key used before, so an older replay is still rejected.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

from ._database import Database

MAX_SEEN: Final = 100_000


class E2EETable:
    def __init__(self, database: Database) -> None:
        self._db = database

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several of the writes below, committed together (nested writes join it)."""
        with self._db.transaction():
            yield

    # -- this device ------------------------------------------------------------------

    def identity(self) -> tuple[int, str, str, bool] | None:
        """``(user_id, device_id, state_json, published)`` of this device, if created."""
        row = self._db.fetchone(
            "SELECT user_id, device_id, state, published FROM e2ee_identity WHERE id = 1"
        )
        if row is None:
            return None
        return int(row[0]), str(row[1]), str(row[2]), bool(row[3])

    def save_identity(self, user_id: int, device_id: str, state: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO e2ee_identity (id, user_id, device_id, state) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                (user_id, device_id, state),
            )

    def mark_published(self) -> None:
        with self._db.transaction():
            self._db.execute("UPDATE e2ee_identity SET published = 1 WHERE id = 1")

    def forget_identity(self) -> None:
        """This device was removed: drop its keys, its sessions and its outbound group
        sessions (what it decrypted stays archived). The next setup makes a new device."""
        with self._db.transaction():
            self._db.execute("DELETE FROM e2ee_identity")
            self._db.execute("DELETE FROM e2ee_sessions")
            self._db.execute("DELETE FROM e2ee_group_out")

    # -- sessions -----------------------------------------------------------------------

    def sessions(self) -> dict[tuple[int, str], str]:
        return {
            (int(r[0]), str(r[1])): str(r[2])
            for r in self._db.fetchall("SELECT user_id, device_id, state FROM e2ee_sessions")
        }

    def save_session(
        self,
        user_id: int,
        device_id: str,
        state: str,
        *,
        seen: bytes | None = None,
        identity_state: str | None = None,
    ) -> None:
        """Store a peer device's sessions; with ``seen``, also the digest of the envelope
        just decrypted; with ``identity_state``, this device's X3DH state (a one-time
        prekey used up) — all in one transaction."""
        with self._db.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO e2ee_sessions (user_id, device_id, state) VALUES (?, ?, ?)",
                (user_id, device_id, state),
            )
            if seen is not None:
                self._db.execute(
                    "INSERT OR IGNORE INTO e2ee_seen (digest, seen_at) VALUES (?, ?)",
                    (seen, time.time()),
                )
            if identity_state is not None:
                self._db.execute(
                    "UPDATE e2ee_identity SET state = ? WHERE id = 1", (identity_state,)
                )
        if seen is not None:
            self._trim_seen()

    def has_seen(self, digest: bytes) -> bool:
        return self._db.fetchone("SELECT 1 FROM e2ee_seen WHERE digest = ?", (digest,)) is not None

    def _trim_seen(self) -> None:
        row = self._db.fetchone("SELECT COUNT(*) FROM e2ee_seen")
        if row is not None and int(row[0]) > MAX_SEEN:
            with self._db.transaction():
                self._db.execute(
                    "DELETE FROM e2ee_seen WHERE digest IN (SELECT digest FROM e2ee_seen"
                    " ORDER BY seen_at LIMIT ?)",
                    (int(row[0]) - MAX_SEEN,),
                )

    # -- peers' identity keys (trust on first use) ----------------------------------------

    def peer_keys(self, user_id: int) -> dict[str, bytes]:
        return {
            str(r[0]): bytes(r[1])
            for r in self._db.fetchall(
                "SELECT device_id, identity_key FROM e2ee_peers WHERE user_id = ?", (user_id,)
            )
        }

    def save_peer_key(self, user_id: int, device_id: str, identity_key: bytes) -> bool:
        """Record a device's identity key; True if it replaced a different one."""
        with self._db.transaction():
            row = self._db.fetchone(
                "SELECT identity_key FROM e2ee_peers WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            changed = row is not None and bytes(row[0]) != identity_key
            self._db.execute(
                "INSERT OR REPLACE INTO e2ee_peers (user_id, device_id, identity_key, changed)"
                " VALUES (?, ?, ?, ?)",
                (user_id, device_id, identity_key, int(changed)),
            )
        return changed

    def forget_peer(self, user_id: int, device_id: str) -> None:
        """A peer device that is gone: its identity key and our sessions with it."""
        with self._db.transaction():
            self._db.execute(
                "DELETE FROM e2ee_peers WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
            self._db.execute(
                "DELETE FROM e2ee_sessions WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )

    # -- the archive of decrypted messages ------------------------------------------------

    def archive(self, channel_id: int, message_id: int, data: str) -> bool:
        """Record a message's outcome; False (nothing written) if one is recorded already."""
        with self._db.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO e2ee_archive (message_id, channel_id, data)"
                " VALUES (?, ?, ?)",
                (message_id, channel_id, data),
            )
        return cursor.rowcount == 1

    def archived(self, message_ids: Iterable[int]) -> dict[int, str]:
        ids = list(message_ids)
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.fetchall(
                f"SELECT message_id, data FROM e2ee_archive WHERE message_id IN ({marks})",
                chunk,
            ):
                found[int(row[0])] = str(row[1])
        return found

    def archived_page(self, channel_id: int, limit: int, before: int | None) -> list[str]:
        """A channel's archived messages, newest first, ids below ``before`` if given."""
        rows = self._db.fetchall(
            "SELECT data FROM e2ee_archive WHERE channel_id = ? AND message_id < ?"
            " ORDER BY message_id DESC LIMIT ?",
            (channel_id, before if before is not None else 2**63 - 1, limit),
        )
        return [str(row[0]) for row in rows]

    # -- Megolm group sessions ------------------------------------------------------------

    def group_outbound(self, channel_id: int) -> tuple[str, str, str] | None:
        """``(session_id, pickle, shared_with)`` of this device's session in the channel."""
        row = self._db.fetchone(
            "SELECT session_id, pickle, shared_with FROM e2ee_group_out WHERE channel_id = ?",
            (channel_id,),
        )
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def save_group_outbound(
        self, channel_id: int, session_id: str, pickle: str, shared_with: str
    ) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO e2ee_group_out"
                " (channel_id, session_id, pickle, shared_with, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (channel_id, session_id, pickle, shared_with, time.time()),
            )

    def drop_group_outbound(self, channel_id: int) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM e2ee_group_out WHERE channel_id = ?", (channel_id,))

    def group_inbound(self, session_id: str) -> tuple[int, int, str, str] | None:
        """``(channel_id, sender_user, sender_device, pickle)`` of an inbound session."""
        row = self._db.fetchone(
            "SELECT channel_id, sender_user, sender_device, pickle FROM e2ee_group_in"
            " WHERE session_id = ?",
            (session_id,),
        )
        if row is None:
            return None
        return int(row[0]), int(row[1]), str(row[2]), str(row[3])

    def save_group_inbound(
        self, session_id: str, channel_id: int, sender_user: int, sender_device: str, pickle: str
    ) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO e2ee_group_in"
                " (session_id, channel_id, sender_user, sender_device, pickle)"
                " VALUES (?, ?, ?, ?, ?)",
                (session_id, channel_id, sender_user, sender_device, pickle),
            )

    def group_seen(self, session_id: str, message_index: int) -> bool:
        row = self._db.fetchone(
            "SELECT 1 FROM e2ee_group_seen WHERE session_id = ? AND message_index = ?",
            (session_id, message_index),
        )
        return row is not None

    def mark_group_seen(self, session_id: str, message_index: int) -> bool:
        """Record a decrypted (session, index); False if it was there already."""
        with self._db.transaction():
            if self.group_seen(session_id, message_index):
                return False
            self._db.execute(
                "INSERT INTO e2ee_group_seen (session_id, message_index) VALUES (?, ?)",
                (session_id, message_index),
            )
        return True

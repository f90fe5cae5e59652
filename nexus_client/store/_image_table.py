"""The image cache: avatars, banners and community icons as the relay served them, kept
in the encrypted store so they show offline. ``Client.fetch_image`` is the API to use.

Invariants:

- Rows are keyed by (kind, owner id, hash, size); ``size`` 0 is the full image. The
  bytes behind a hash never change on the relay, so a cached row is never stale, only
  unused.
- Storing an image drops that owner's other images of the same kind: a new hash means
  the old picture was replaced, and nothing shows an old one.
- The total is kept under ``max_bytes`` by dropping the least recently used rows.
  ``used_at`` is refreshed at most every ``TOUCH_AFTER`` seconds, so showing a member
  list of cached avatars costs reads, not one committed write per avatar.
"""

from __future__ import annotations

import time
from typing import Final

from ._database import Database

IMAGE_CACHE_BYTES: Final = 50 * 1024 * 1024
TOUCH_AFTER: Final = 600.0


class ImageCacheTable:
    def __init__(self, database: Database, max_bytes: int = IMAGE_CACHE_BYTES) -> None:
        self._db = database
        self.max_bytes = max_bytes

    def get(self, kind: str, owner_id: int, image_hash: str, size: int) -> bytes | None:
        key = (kind, owner_id, image_hash, size)
        row = self._db.fetchone(
            "SELECT data, used_at FROM image_cache"
            " WHERE kind = ? AND owner_id = ? AND hash = ? AND size = ?",
            key,
        )
        if row is None:
            return None
        now = time.time()
        if now - float(row[1]) > TOUCH_AFTER:
            with self._db.transaction():
                self._db.execute(
                    "UPDATE image_cache SET used_at = ?"
                    " WHERE kind = ? AND owner_id = ? AND hash = ? AND size = ?",
                    (now, *key),
                )
        return bytes(row[0])

    def put(self, kind: str, owner_id: int, image_hash: str, size: int, data: bytes) -> None:
        with self._db.transaction():
            self._db.execute(
                "DELETE FROM image_cache WHERE kind = ? AND owner_id = ? AND hash != ?",
                (kind, owner_id, image_hash),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO image_cache"
                " (kind, owner_id, hash, size, data, bytes, used_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, owner_id, image_hash, size, data, len(data), time.time()),
            )
            self._evict()

    def total_bytes(self) -> int:
        row = self._db.fetchone("SELECT COALESCE(SUM(bytes), 0) FROM image_cache")
        return int(row[0]) if row else 0

    def _evict(self) -> None:
        excess = self.total_bytes() - self.max_bytes
        if excess <= 0:
            return
        doomed: list[tuple[int]] = []
        for rowid, size in self._db.fetchall(
            "SELECT rowid, bytes FROM image_cache ORDER BY used_at, rowid"
        ):
            if excess <= 0:
                break
            doomed.append((int(rowid),))
            excess -= int(size)
        self._db.executemany("DELETE FROM image_cache WHERE rowid = ?", doomed)

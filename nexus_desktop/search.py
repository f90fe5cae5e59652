"""Encrypted DM and group DM history as this app saw it, and client-side search over it.

The relay only holds ciphertext, so it cannot search DMs: the app keeps what it
decrypted (and what it sent) in the account's encrypted store — one JSON-lines blob
per conversation under the meta key ``desktop.dm_log.<channel_id>`` — and searches
that. Entries are small dicts:

- ``{"type": "text", "id", "author_id", "text", "ts"}`` (``edited`` once an edit
  arrived; edits replace ``text``; ``reply_to``: the id of the message it answers;
  ``reactions``: emoji → ids of the users reacting with it, as strings). A deleted
  message's entry is removed.
- ``{"type": "undecryptable", "id", "author_id", "reason", "detail", "ts"}`` — shown,
  never dropped,
- ``{"type": "key_change", "user_id", "device_id", "ts"}`` — a contact's keys changed,
- ``{"type": "member_added" | "member_removed", "actor_id", "actor_name", "user_id",
  "user_name", "verified", "ts"}`` — a group DM's membership changed (``verified``:
  its signed statement checked out).

Group DMs share the same log, so their messages are searched like any DM's.

No Qt here."""

from __future__ import annotations

import json
import time
from typing import Any

from .e2ee_state import MetaStore

Entry = dict[str, Any]

LIMIT = 5_000  # entries kept per conversation (oldest dropped first)


class DMLog:
    PREFIX = "desktop.dm_log"

    def __init__(self, meta: MetaStore) -> None:
        self._meta = meta
        self._cache: dict[int, list[Entry]] = {}

    def channel_ids(self) -> list[int]:
        raw = self._meta.get_meta(f"{self.PREFIX}.channels") or ""
        return [int(part) for part in raw.split(",") if part.isdigit()]

    def entries(self, channel_id: int) -> list[Entry]:
        """The conversation's entries, oldest first (a copy)."""
        cached = self._cache.get(channel_id)
        if cached is None:
            raw = self._meta.get_meta(f"{self.PREFIX}.{channel_id}") or ""
            cached = []
            for line in raw.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    cached.append(entry)
            self._cache[channel_id] = cached
        return [dict(e) for e in cached]

    def _save(self, channel_id: int, entries: list[Entry]) -> None:
        entries = entries[-LIMIT:]
        self._cache[channel_id] = entries
        blob = "\n".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in entries)
        self._meta.set_meta(f"{self.PREFIX}.{channel_id}", blob)
        known = self.channel_ids()
        if channel_id not in known:
            known.append(channel_id)
            self._meta.set_meta(f"{self.PREFIX}.channels", ",".join(map(str, known)))

    def add(self, channel_id: int, entry: Entry) -> bool:
        """Append an entry (a message already logged, by id, is not added twice; an edit
        updates its target). Returns True if the log changed."""
        entries = self.entries(channel_id)
        entry = {"ts": time.time(), **entry}
        if entry.get("type") == "edit":
            target = str(entry.get("target"))
            for existing in entries:
                if existing.get("type") == "text" and str(existing.get("id")) == target:
                    if entry.get("author_id") != existing.get("author_id"):
                        return False  # only the author may edit a message
                    existing["text"] = entry.get("text", "")
                    existing["edited"] = True
                    self._save(channel_id, entries)
                    return True
            return False
        if "id" in entry and any(
            str(e.get("id")) == str(entry["id"]) for e in entries if "id" in e
        ):
            return False
        entries.append(entry)
        self._save(channel_id, entries)
        return True

    def update(self, channel_id: int, message_id: int, changes: Entry | None) -> bool:
        """Change the fields of message ``message_id``'s entry (``changes`` None: remove
        the entry, the message was deleted). Returns True if the log changed."""
        entries = self.entries(channel_id)
        for index, existing in enumerate(entries):
            if existing.get("type") != "text" or str(existing.get("id")) != str(message_id):
                continue
            if changes is None:
                del entries[index]
            elif all(existing.get(k) == v for k, v in changes.items()):
                return False
            else:
                existing.update(changes)
            self._save(channel_id, entries)
            return True
        return False

    def merge(self, channel_id: int, found: list[Entry]) -> bool:
        """Put messages fetched from history (each with an ``id``) in id order among the
        entries already logged; those logged before are left as they are. Returns True
        if the log changed."""
        entries = self.entries(channel_id)
        known = {str(e.get("id")) for e in entries if "id" in e}
        added = False
        for entry in sorted(found, key=lambda e: int(e["id"])):
            if str(entry["id"]) in known:
                continue
            new_id = int(entry["id"])
            position = next(
                (
                    i
                    for i, e in enumerate(entries)
                    if str(e.get("id", "")).isdigit() and int(e["id"]) > new_id
                ),
                len(entries),
            )
            entries.insert(position, {"ts": time.time(), **entry})
            known.add(str(entry["id"]))
            added = True
        if added:
            self._save(channel_id, entries)
        return added

    def search(self, query: str, channel_id: int | None = None) -> list[tuple[int, Entry]]:
        """Text entries containing every word of ``query`` (case-insensitive), oldest
        first, as (channel id, entry); in one conversation or in all of them."""
        words = query.casefold().split()
        if not words:
            return []
        channels = [channel_id] if channel_id is not None else self.channel_ids()
        found = []
        for channel in channels:
            for entry in self.entries(channel):
                if entry.get("type") != "text":
                    continue
                text = str(entry.get("text", "")).casefold()
                if all(word in text for word in words):
                    found.append((channel, entry))
        return found


def matches(entry: Entry, query: str) -> bool:
    """Whether a log entry passes a search box's filter (an empty query passes all;
    a query passes only the text entries that contain each of its words)."""
    words = query.casefold().split()
    if not words:
        return True
    if entry.get("type") != "text":
        return False
    text = str(entry.get("text", "")).casefold()
    return all(word in text for word in words)

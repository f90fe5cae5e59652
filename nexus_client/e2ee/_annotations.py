"""What later encrypted messages say about earlier ones — edits, deletions, reactions —
recorded in the store's meta table under the id of the message they name:
``e2ee.edit.<id>`` and ``e2ee.delete.<id>`` by the change's author, ``e2ee.reaction.<id>``
by reacting user and emoji.

Such a change may be decrypted before the message it names (history is read newest page
first); its author cannot be checked then, so it is kept by its *claimed* author, and a
forged change cannot push out the real one. Each record is bounded, so a crowd of
forgers cannot grow it without limit. An unreadable record is dropped with a log line.

No network, no cryptography: this is bookkeeping over ``get_meta`` / ``set_meta``."""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

log = logging.getLogger(__name__)

ChangeKind = Literal["edit", "delete"]

_KEYS: dict[str, str] = {
    "edit": "e2ee.edit.",
    "delete": "e2ee.delete.",
    "reaction": "e2ee.reaction.",
}
MAX_PENDING_AUTHORS = 8  # claimed authors of edits or deletions of a message not seen yet
MAX_REACTIONS = 400  # (user, emoji) pairs recorded per message
MAX_EMOJI_LENGTH = 64  # characters: room for the longest ZWJ sequences and custom names


class MetaStore(Protocol):
    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def set_meta(self, key: str, value: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Change:
    """An edit (with its new ``text``) or a deletion, by the message that made it."""

    message_id: int
    channel_id: int
    text: str = ""


@dataclass(frozen=True, slots=True)
class ReactionMark:
    """One user's latest word on one emoji of one message: added or taken back."""

    message_id: int
    channel_id: int
    add: bool


def valid_emoji(value: object) -> str | None:
    """``value`` if it can be shown as a reaction: a string of 1 to 64 characters, not
    blank, with no control characters; None otherwise."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_EMOJI_LENGTH:
        return None
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        return None
    return value


def _encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Annotations:
    def __init__(self, meta: MetaStore) -> None:
        self._meta = meta

    def changes(self, kind: ChangeKind, message_id: int) -> dict[int, Change]:
        """The edits or deletions recorded for ``message_id``, by their author."""
        raw = self._meta.get_meta(f"{_KEYS[kind]}{message_id}")
        if raw is None:
            return {}
        try:
            return {
                int(author): Change(
                    int(c["message_id"]), int(c["channel_id"]), str(c.get("text", ""))
                )
                for author, c in json.loads(raw).items()
            }
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("dropped the unreadable %s record of message %s", kind, message_id)
            return {}

    def save_changes(
        self, kind: ChangeKind, message_id: int, changes: Mapping[int, Change]
    ) -> None:
        value = {
            str(author): {
                "message_id": str(c.message_id),
                "channel_id": str(c.channel_id),
                **({"text": c.text} if kind == "edit" else {}),
            }
            for author, c in changes.items()
        }
        self._meta.set_meta(f"{_KEYS[kind]}{message_id}", _encode(value) if value else None)

    def reactions(self, message_id: int) -> dict[int, dict[str, ReactionMark]]:
        """Each reacting user's latest mark per emoji on ``message_id``."""
        raw = self._meta.get_meta(f"{_KEYS['reaction']}{message_id}")
        if raw is None:
            return {}
        try:
            return {
                int(user): {
                    str(emoji): ReactionMark(int(m[0]), int(m[1]), bool(m[2]))
                    for emoji, m in marks.items()
                }
                for user, marks in json.loads(raw).items()
            }
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):
            log.warning("dropped the unreadable reaction record of message %s", message_id)
            return {}

    def save_reactions(
        self, message_id: int, marks: Mapping[int, Mapping[str, ReactionMark]]
    ) -> None:
        value = {
            str(user): {
                emoji: [str(m.message_id), str(m.channel_id), m.add] for emoji, m in by.items()
            }
            for user, by in marks.items()
            if by
        }
        self._meta.set_meta(f"{_KEYS['reaction']}{message_id}", _encode(value) if value else None)

    def reaction_counts(self, message_id: int, channel_id: int) -> dict[str, tuple[int, ...]]:
        """Who reacts with what to ``message_id`` now: emoji → user ids (sorted), the
        emoji in the order they were first added; marks from another channel ignored."""
        first: dict[str, int] = {}
        users: dict[str, list[int]] = {}
        for user, by in self.reactions(message_id).items():
            for emoji, mark in by.items():
                if mark.add and mark.channel_id == channel_id:
                    users.setdefault(emoji, []).append(user)
                    first[emoji] = min(first.get(emoji, mark.message_id), mark.message_id)
        return {e: tuple(sorted(users[e])) for e in sorted(users, key=lambda e: first[e])}

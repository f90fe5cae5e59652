"""What encrypted messages decrypted to, as the SDK hands them out (``DMMessage``,
``GroupMessage``, ``UndecryptableMessage``), and the archive that keeps them in the
local SQLCipher store.

A pairwise (Double Ratchet) message can be decrypted once only: its key is deleted as
it is used. So the outcome of every decryption — the plaintext, or why there was none
— is archived for good, and so is every message this device sends (nobody can decrypt
those for it later). History is read from here first; the relay is asked only for what
this device has not seen yet.

Invariants:

- The first outcome recorded for a message id is the one kept (never overwritten).
- A decrypted message also goes to the store's message cache (client-side search, and
  ``Client.cached_messages``), as the relay's message object with ``content`` set to the
  plaintext and ``e2ee`` to the decrypted payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..store import LocalStore

# Fields of a relay message that only matter on the way in.
_TRANSPORT_FIELDS = ("envelopes", "megolm")


@dataclass(frozen=True, slots=True)
class DMMessage:
    """A decrypted DM. ``kind`` is "text", "edit", "delete" or "reaction"; ``payload`` is
    the whole decrypted object (``target`` names the message an edit applies to)."""

    channel_id: int
    message_id: int
    author_id: int
    sender_device: str
    kind: str
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """A decrypted message of a group DM or an encrypted channel."""

    channel_id: int
    message_id: int
    author_id: int
    sender_device: str
    session_id: str
    message_index: int
    kind: str
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UndecryptableMessage:
    channel_id: int
    message_id: int
    author_id: int
    reason: str
    detail: str


DecryptedMessage = DMMessage | GroupMessage | UndecryptableMessage


def parse_payload(plaintext: bytes) -> dict[str, Any]:
    """A decrypted payload: a JSON object; ValueError otherwise."""
    payload = json.loads(plaintext)
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload


def _plain(message: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in _TRANSPORT_FIELDS}


class PlaintextArchive:
    """The archive of one account's store. ``message`` arguments are the relay's message
    objects (``id``, ``channel_id``, ``author`` …) as they arrived or were returned."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store

    def keep(
        self,
        message: Mapping[str, Any],
        payload: dict[str, Any],
        *,
        sender_device: str,
        session: tuple[str, int] | None = None,
    ) -> None:
        """Archive a decrypted (or sent) message; ``session`` is its Megolm session id and
        index for a group message. Also cached like any message, for search."""
        text = str(payload.get("text", ""))
        body = {**_plain(message), "content": text, "e2ee": payload}
        record: dict[str, Any] = {
            "message": body,
            "payload": payload,
            "sender_device": sender_device,
        }
        if session is not None:
            record["session"] = [session[0], session[1]]
        channel_id = int(message["channel_id"])
        with self._store.e2ee.transaction():
            if self._store.e2ee.archive(channel_id, int(message["id"]), _encode(record)):
                self._store.save_messages(channel_id, [body])

    def keep_failure(self, message: Mapping[str, Any], reason: str, detail: str) -> None:
        """Archive why a message did not decrypt, so it is never tried again."""
        record = {"message": _plain(message), "reason": reason, "detail": detail}
        self._store.e2ee.archive(int(message["channel_id"]), int(message["id"]), _encode(record))

    def get(self, message_id: int) -> DecryptedMessage | None:
        found = self._store.e2ee.archived([message_id])
        return _decode(found[message_id]) if message_id in found else None

    def get_many(self, message_ids: list[int]) -> dict[int, DecryptedMessage]:
        return {k: _decode(v) for k, v in self._store.e2ee.archived(message_ids).items()}

    def page(self, channel_id: int, limit: int, before: int | None) -> list[DecryptedMessage]:
        """Archived messages of a channel, newest first."""
        return [_decode(d) for d in self._store.e2ee.archived_page(channel_id, limit, before)]


def _encode(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _decode(text: str) -> DecryptedMessage:
    record = json.loads(text)
    message = record["message"]
    channel_id = int(message["channel_id"])
    message_id = int(message["id"])
    author_id = int(message["author"]["id"])
    if "reason" in record:
        return UndecryptableMessage(
            channel_id, message_id, author_id, str(record["reason"]), str(record["detail"])
        )
    payload: dict[str, Any] = record["payload"]
    kind = str(payload.get("kind", "text"))
    text = str(payload.get("text", ""))
    device = str(record["sender_device"])
    session = record.get("session")
    if session is not None:
        return GroupMessage(
            channel_id=channel_id,
            message_id=message_id,
            author_id=author_id,
            sender_device=device,
            session_id=str(session[0]),
            message_index=int(session[1]),
            kind=kind,
            text=text,
            payload=payload,
        )
    return DMMessage(channel_id, message_id, author_id, device, kind, text, payload)

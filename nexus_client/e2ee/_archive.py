"""What encrypted messages decrypted to, as the SDK hands them out (``DMMessage``,
``GroupMessage``, ``UndecryptableMessage``), and the archive that keeps them in the
local SQLCipher store.

A pairwise (Double Ratchet) message can be decrypted once only: its key is deleted as
it is used. So the outcome of every decryption — the plaintext, or why there was none
— is archived for good, and so is every message this device sends (nobody can decrypt
those for it later). History is read from here first; the relay is asked only for what
this device has not seen yet.

Edits and replies of group messages travel inside the ciphertext, so only the archive
knows them. A reply names its target in its payload (``reply_to``). An edit is a message
of its own (``{"kind": "edit", "target": id, "text": …}``); it counts only if its sender
wrote the target, in the same channel. The latest edit of each message is recorded in
the store's meta table under ``e2ee.edit.<target id>``, by the edit's author: an edit
may be decrypted before its target (history is read newest page first), and then who
wrote the target is not known yet, so a forged edit must not push out the real one.

Invariants:

- The first outcome recorded for a message id is the one kept (never overwritten); an
  edit changes what a message reads as, never the record of what it decrypted to.
- A decrypted message also goes to the store's message cache (client-side search, and
  ``Client.cached_messages``), as the relay's message object with ``content`` set to the
  plaintext (its latest edit, for a group message) and ``e2ee`` to the decrypted
  payload. An edit of a group message updates its target there rather than adding
  itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexus_protocol.snowflake import MAX_SNOWFLAKE, snowflake_time

from ..store import LocalStore

log = logging.getLogger(__name__)

# Fields of a relay message that only matter on the way in.
_TRANSPORT_FIELDS = ("envelopes", "megolm")
_EDIT_KEY = "e2ee.edit."
# Edits of one message recorded before its author is known: one per claimed author,
# so a crowd of forgers cannot grow the record without bound.
_MAX_PENDING_AUTHORS = 8


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
    """A decrypted message of a group DM or an encrypted channel.

    ``kind`` "text": ``text`` is what the message says now (its author's latest edit,
    whose message id is ``last_edit_id``), ``reply_to`` the message it answers, if any.
    ``kind`` "edit": ``text`` is the new text of message ``target``. ``payload`` is the
    decrypted object as it arrived."""

    channel_id: int
    message_id: int
    author_id: int
    sender_device: str
    session_id: str
    message_index: int
    kind: str
    text: str
    payload: dict[str, Any]
    reply_to: int | None = None
    target: int | None = None
    last_edit_id: int | None = None

    @property
    def edited(self) -> bool:
        return self.last_edit_id is not None


@dataclass(frozen=True, slots=True)
class UndecryptableMessage:
    channel_id: int
    message_id: int
    author_id: int
    reason: str
    detail: str


DecryptedMessage = DMMessage | GroupMessage | UndecryptableMessage


@dataclass(frozen=True, slots=True)
class _Edit:
    message_id: int
    channel_id: int
    text: str


def parse_payload(plaintext: bytes) -> dict[str, Any]:
    """A decrypted payload: a JSON object; ValueError otherwise."""
    payload = json.loads(plaintext)
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload


def message_id_in(payload: Mapping[str, Any], field: str) -> int | None:
    """The message id a payload names in ``field`` (a decimal string or an integer), or
    None if it is absent or not an id."""
    value = payload.get(field)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_SNOWFLAKE else None


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
        index for a group message. Also cached like any message, for search; a group
        edit is applied to its target instead (see the module's docstring)."""
        channel_id = int(message["channel_id"])
        message_id = int(message["id"])
        body: dict[str, Any] = {
            **_plain(message),
            "content": str(payload.get("text", "")),
            "e2ee": payload,
        }
        record: dict[str, Any] = {
            "message": body,
            "payload": payload,
            "sender_device": sender_device,
        }
        if session is not None:
            record["session"] = [session[0], session[1]]
        with self._store.e2ee.transaction():
            if not self._store.e2ee.archive(channel_id, message_id, _encode(record)):
                return
            cached: dict[str, Any] | None = body
            if session is not None:
                cached = self._group_body(dict(body), int(message["author"]["id"]), payload)
            if cached is not None:
                self._store.save_messages(channel_id, [cached])

    def _group_body(
        self, body: dict[str, Any], author_id: int, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A group message as the message cache holds it: a text with its reply target
        and its latest edit, if one arrived first; nothing for an edit (it is applied to
        its target) or for a kind this version does not know."""
        channel_id = int(body["channel_id"])
        message_id = int(body["id"])
        kind = str(payload.get("kind", "text"))
        if kind == "edit":
            self._note_edit(channel_id, message_id, author_id, payload)
            return None
        if kind != "text":
            log.info("ignored an encrypted payload of unknown kind %r (%s)", kind[:40], message_id)
            return None
        reply_to = message_id_in(payload, "reply_to")
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to), "channel_id": str(channel_id)}
        elif "reply_to" in payload:
            log.info("ignored the malformed reply target of message %s", message_id)
        edits = self._edits(message_id)
        if edits:
            # Edits that came before their target: only its author's counts.
            edit = edits.get(author_id)
            mine = {author_id: edit} if edit is not None else {}
            self._save_edits(message_id, mine)
            if edit is not None and edit.channel_id == channel_id:
                body["content"] = edit.text
                body["edited_timestamp"] = snowflake_time(edit.message_id).isoformat()
        return body

    def _note_edit(
        self, channel_id: int, message_id: int, author_id: int, payload: dict[str, Any]
    ) -> None:
        """Record an edit as its target's latest if it is newer; an edit of a message
        known here counts only if it is its author's, in its channel."""
        target_id = message_id_in(payload, "target")
        if target_id is None or target_id == message_id:
            log.info("ignored edit %s: its target is not a message id", message_id)
            return
        target = self.get(target_id)
        if target is not None and not (
            isinstance(target, GroupMessage)
            and target.kind == "text"
            and target.channel_id == channel_id
            and target.author_id == author_id
        ):
            log.info(
                "ignored edit %s of message %s by user %s: only its author edits a message",
                message_id,
                target_id,
                author_id,
            )
            return
        edits = self._edits(target_id)
        known = edits.get(author_id)
        if known is not None and known.message_id >= message_id:
            return  # a later edit is recorded already
        if target is None and known is None and len(edits) >= _MAX_PENDING_AUTHORS:
            log.info(
                "ignored edit %s: too many claimed authors for message %s", message_id, target_id
            )
            return
        text = str(payload.get("text", ""))
        edits[author_id] = _Edit(message_id, channel_id, text)
        if target is not None:
            edits = {author_id: edits[author_id]}
            self._store.apply_message_update(
                {
                    "id": str(target_id),
                    "content": text,
                    "edited_timestamp": snowflake_time(message_id).isoformat(),
                }
            )
        self._save_edits(target_id, edits)

    def _edits(self, message_id: int) -> dict[int, _Edit]:
        raw = self._store.get_meta(f"{_EDIT_KEY}{message_id}")
        if raw is None:
            return {}
        try:
            return {
                int(author): _Edit(int(e["message_id"]), int(e["channel_id"]), str(e["text"]))
                for author, e in json.loads(raw).items()
            }
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("dropped the unreadable edit record of message %s", message_id)
            return {}

    def _save_edits(self, message_id: int, edits: Mapping[int, _Edit]) -> None:
        value = {
            str(author): {
                "message_id": str(e.message_id),
                "channel_id": str(e.channel_id),
                "text": e.text,
            }
            for author, e in edits.items()
        }
        self._store.set_meta(f"{_EDIT_KEY}{message_id}", _encode(value) if value else None)

    def keep_failure(self, message: Mapping[str, Any], reason: str, detail: str) -> None:
        """Archive why a message did not decrypt, so it is never tried again."""
        record = {"message": _plain(message), "reason": reason, "detail": detail}
        self._store.e2ee.archive(int(message["channel_id"]), int(message["id"]), _encode(record))

    def get(self, message_id: int) -> DecryptedMessage | None:
        found = self._store.e2ee.archived([message_id])
        return self._decode(found[message_id]) if message_id in found else None

    def get_many(self, message_ids: list[int]) -> dict[int, DecryptedMessage]:
        return {k: self._decode(v) for k, v in self._store.e2ee.archived(message_ids).items()}

    def page(self, channel_id: int, limit: int, before: int | None) -> list[DecryptedMessage]:
        """Archived messages of a channel, newest first."""
        return [self._decode(d) for d in self._store.e2ee.archived_page(channel_id, limit, before)]

    def edit_target(self, edit: GroupMessage) -> GroupMessage | None:
        """The message ``edit`` changed, as it reads now; None if the edit does not count
        (not its author's, another channel, not an edit) or its target is not here yet."""
        if edit.kind != "edit" or edit.target is None:
            return None
        target = self.get(edit.target)
        if (
            isinstance(target, GroupMessage)
            and target.kind == "text"
            and target.channel_id == edit.channel_id
            and target.author_id == edit.author_id
        ):
            return target
        return None

    def _decode(self, text: str) -> DecryptedMessage:
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
        if session is None:
            return DMMessage(channel_id, message_id, author_id, device, kind, text, payload)
        last_edit_id = None
        if kind == "text":
            edit = self._edits(message_id).get(author_id)
            if edit is not None and edit.channel_id == channel_id:
                text, last_edit_id = edit.text, edit.message_id
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
            reply_to=message_id_in(payload, "reply_to") if kind == "text" else None,
            target=message_id_in(payload, "target") if kind == "edit" else None,
            last_edit_id=last_edit_id,
        )


def _encode(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)

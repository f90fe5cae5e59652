"""What encrypted messages decrypted to, as the SDK hands them out (``DMMessage``,
``GroupMessage``, ``UndecryptableMessage``), and the archive that keeps them in the
local SQLCipher store.

A pairwise (Double Ratchet) message can be decrypted once only: its key is deleted as
it is used. So the outcome of every decryption — the plaintext, or why there was none
— is archived for good, and so is every message this device sends (nobody can decrypt
those for it later). History is read from here first; the relay is asked only for what
this device has not seen yet.

Replies, edits, deletions and reactions travel inside the ciphertext (one-to-one DMs and
groups alike), so only the archive knows them. A reply names its target in its payload
(``reply_to``). The others are messages of their own, naming their ``target``:
``{"kind": "edit", "target", "text"}`` and ``{"kind": "delete", "target"}`` count only
if their sender wrote the target, in the same channel; ``{"kind": "reaction", "target",
"emoji", "add"}`` counts from anyone in the target's channel, once per sender and emoji
(the sender's latest reaction message wins). They are recorded by the message they name
(``_annotations``), also when they are decrypted before it.

Invariants:

- The first outcome recorded for a message id is the one kept (never overwritten); an
  edit or a deletion changes what a message reads as, never the record of what it
  decrypted to.
- A decrypted message also goes to the store's message cache (client-side search, and
  ``Client.cached_messages``), as the relay's message object with ``content`` set to the
  plaintext (its latest edit) and ``e2ee`` to the decrypted payload. An edit updates its
  target there rather than adding itself; a deletion removes its target; a reaction is
  not cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nexus_protocol.snowflake import MAX_SNOWFLAKE, snowflake_time

from ..store import LocalStore
from ._annotations import (
    MAX_PENDING_AUTHORS,
    MAX_REACTIONS,
    Annotations,
    Change,
    ChangeKind,
    ReactionMark,
    valid_emoji,
)

log = logging.getLogger(__name__)

# Fields of a relay message that only matter on the way in.
_TRANSPORT_FIELDS = ("envelopes", "megolm")
# Kinds that name another message and change how it reads.
ACTION_KINDS = frozenset({"edit", "delete", "reaction"})


@dataclass(frozen=True, slots=True)
class DMMessage:
    """A decrypted one-to-one DM.

    ``kind`` "text": ``text`` is what the message says now (its author's latest edit,
    whose message id is ``last_edit_id``; "" once ``deleted``), ``reply_to`` the message
    it answers, ``reactions`` emoji → the ids of the users reacting with it.
    ``kind`` "edit", "delete" or "reaction": ``target`` is the message it applies to
    (an edit's ``text`` is the new text; a reaction's ``payload`` holds ``emoji`` and
    ``add``). ``payload`` is the decrypted object as it arrived."""

    channel_id: int
    message_id: int
    author_id: int
    sender_device: str
    kind: str
    text: str
    payload: dict[str, Any]
    reply_to: int | None = None
    target: int | None = None
    last_edit_id: int | None = None
    deleted: bool = False
    reactions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def edited(self) -> bool:
        return self.last_edit_id is not None


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """A decrypted message of a group DM or an encrypted channel: the fields of
    ``DMMessage``, and the Megolm session and index it was encrypted with."""

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
    deleted: bool = False
    reactions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

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


def _is_text_in(target: DecryptedMessage | None, channel_id: int) -> bool:
    return (
        isinstance(target, DMMessage | GroupMessage)
        and target.kind == "text"
        and target.channel_id == channel_id
    )


class PlaintextArchive:
    """The archive of one account's store. ``message`` arguments are the relay's message
    objects (``id``, ``channel_id``, ``author`` …) as they arrived or were returned."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._notes = Annotations(store)

    def keep(
        self,
        message: Mapping[str, Any],
        payload: dict[str, Any],
        *,
        sender_device: str,
        session: tuple[str, int] | None = None,
    ) -> None:
        """Archive a decrypted (or sent) message; ``session`` is its Megolm session id and
        index for a group message. Also cached like any message, for search; an edit,
        deletion or reaction is applied to its target instead (see the module's
        docstring)."""
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
            cached = self._readable_body(dict(body), int(message["author"]["id"]), payload)
            if cached is not None:
                self._store.save_messages(channel_id, [cached])

    def _readable_body(
        self, body: dict[str, Any], author_id: int, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A message as the message cache holds it: a text with its reply target and its
        latest edit, if one arrived first; nothing for a change to another message (it
        is applied to its target), a deleted text or a kind this version does not know."""
        channel_id = int(body["channel_id"])
        message_id = int(body["id"])
        kind = str(payload.get("kind", "text"))
        if kind in ACTION_KINDS:
            self._note_action(kind, channel_id, message_id, author_id, payload)
            return None
        if kind != "text":
            log.info("ignored an encrypted payload of unknown kind %r (%s)", kind[:40], message_id)
            return None
        reply_to = message_id_in(payload, "reply_to")
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to), "channel_id": str(channel_id)}
        elif "reply_to" in payload:
            log.info("ignored the malformed reply target of message %s", message_id)
        deletion = self._settle("delete", message_id, author_id)
        if deletion is not None and deletion.channel_id == channel_id:
            return None
        edit = self._settle("edit", message_id, author_id)
        if edit is not None and edit.channel_id == channel_id:
            body["content"] = edit.text
            body["edited_timestamp"] = snowflake_time(edit.message_id).isoformat()
        return body

    def _settle(self, kind: ChangeKind, message_id: int, author_id: int) -> Change | None:
        """Changes that came before their target, now that its author is known: only
        that author's counts; the others are dropped."""
        changes = self._notes.changes(kind, message_id)
        if not changes:
            return None
        change = changes.get(author_id)
        self._notes.save_changes(kind, message_id, {author_id: change} if change else {})
        return change

    def _note_action(
        self, kind: str, channel_id: int, message_id: int, author_id: int, payload: dict[str, Any]
    ) -> None:
        target_id = message_id_in(payload, "target")
        if target_id is None or target_id == message_id:
            log.info("ignored %s %s: its target is not a message id", kind, message_id)
            return
        target = self.get(target_id)
        if kind == "reaction":
            self._note_reaction(channel_id, message_id, author_id, payload, target_id, target)
        elif kind == "edit":
            self._note_change("edit", channel_id, message_id, author_id, payload, target_id, target)
        else:
            self._note_change(
                "delete", channel_id, message_id, author_id, payload, target_id, target
            )

    def _note_change(
        self,
        kind: ChangeKind,
        channel_id: int,
        message_id: int,
        author_id: int,
        payload: dict[str, Any],
        target_id: int,
        target: DecryptedMessage | None,
    ) -> None:
        """Record an edit or a deletion as its target's latest if it is newer; one of a
        message known here counts only if it is its author's, in its channel."""
        if target is not None and not (
            _is_text_in(target, channel_id) and target.author_id == author_id
        ):
            log.info(
                "ignored %s %s of message %s by user %s: only its author %s a message",
                kind,
                message_id,
                target_id,
                author_id,
                "edits" if kind == "edit" else "deletes",
            )
            return
        text = payload.get("text", "")
        if kind == "edit" and not isinstance(text, str):
            log.info("ignored edit %s: its text is not a string", message_id)
            return
        changes = self._notes.changes(kind, target_id)
        known = changes.get(author_id)
        if known is not None and known.message_id >= message_id:
            return  # a later one is recorded already
        if target is None and known is None and len(changes) >= MAX_PENDING_AUTHORS:
            log.info(
                "ignored %s %s: too many claimed authors for message %s",
                kind,
                message_id,
                target_id,
            )
            return
        changes[author_id] = Change(message_id, channel_id, text if kind == "edit" else "")
        if target is not None:
            changes = {author_id: changes[author_id]}
            if kind == "edit":
                self._store.apply_message_update(
                    {
                        "id": str(target_id),
                        "content": text,
                        "edited_timestamp": snowflake_time(message_id).isoformat(),
                    }
                )
            else:
                self._store.delete_messages(channel_id, [target_id])
        self._notes.save_changes(kind, target_id, changes)

    def _note_reaction(
        self,
        channel_id: int,
        message_id: int,
        author_id: int,
        payload: dict[str, Any],
        target_id: int,
        target: DecryptedMessage | None,
    ) -> None:
        emoji = valid_emoji(payload.get("emoji"))
        add = payload.get("add", True)
        if emoji is None or not isinstance(add, bool):
            log.info("ignored reaction %s: malformed emoji or add", message_id)
            return
        if target is not None and not _is_text_in(target, channel_id):
            log.info("ignored reaction %s: message %s is not in its channel", message_id, target_id)
            return
        marks = self._notes.reactions(target_id)
        known = marks.get(author_id, {}).get(emoji)
        if known is not None and known.message_id >= message_id:
            return  # a later reaction of that user with that emoji is recorded already
        if known is None and sum(len(m) for m in marks.values()) >= MAX_REACTIONS:
            log.info("ignored reaction %s: message %s has too many", message_id, target_id)
            return
        marks.setdefault(author_id, {})[emoji] = ReactionMark(message_id, channel_id, add)
        self._notes.save_reactions(target_id, marks)

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

    def applies(self, message: DMMessage | GroupMessage) -> bool:
        """Whether a message is shown: a text, or an edit, deletion or reaction that
        counts for a target known here (see the module's docstring)."""
        if message.kind == "text":
            return True
        if message.kind not in ACTION_KINDS or message.target is None:
            return False
        target = self.get(message.target)
        if not _is_text_in(target, message.channel_id):
            return False
        assert isinstance(target, DMMessage | GroupMessage)
        if message.kind == "reaction":
            return valid_emoji(message.payload.get("emoji")) is not None and isinstance(
                message.payload.get("add", True), bool
            )
        return target.author_id == message.author_id

    def edit_target(self, edit: DMMessage | GroupMessage) -> DMMessage | GroupMessage | None:
        """The message ``edit`` changed, as it reads now; None if the edit does not count
        (not its author's, another channel, not an edit) or its target is not here yet."""
        if edit.kind != "edit" or edit.target is None or not self.applies(edit):
            return None
        target = self.get(edit.target)
        assert isinstance(target, DMMessage | GroupMessage)
        return target

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
        last_edit_id = None
        deleted = False
        reactions: dict[str, tuple[int, ...]] = {}
        if kind == "text":
            deletion = self._notes.changes("delete", message_id).get(author_id)
            edit = self._notes.changes("edit", message_id).get(author_id)
            if deletion is not None and deletion.channel_id == channel_id:
                text, deleted = "", True
            elif edit is not None and edit.channel_id == channel_id:
                text, last_edit_id = edit.text, edit.message_id
            if not deleted:
                reactions = self._notes.reaction_counts(message_id, channel_id)
        common: dict[str, Any] = {
            "reply_to": message_id_in(payload, "reply_to") if kind == "text" else None,
            "target": message_id_in(payload, "target") if kind in ACTION_KINDS else None,
            "last_edit_id": last_edit_id,
            "deleted": deleted,
            "reactions": reactions,
        }
        device = str(record["sender_device"])
        session = record.get("session")
        if session is None:
            return DMMessage(
                channel_id, message_id, author_id, device, kind, text, payload, **common
            )
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
            **common,
        )


def _encode(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)

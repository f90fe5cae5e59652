"""The encrypted payloads that answer, edit, delete or react to a message, checked
before anything is encrypted: the same for one-to-one DMs (Olm) and groups (Megolm).
A wrong argument raises ``ValueError`` (or ``E2EEError`` when the message is not one
this device may act on), naming the argument."""

from __future__ import annotations

from typing import Any

from ._annotations import valid_emoji
from ._archive import DMMessage, GroupMessage, PlaintextArchive, message_id_in
from ._errors import E2EEError


def _message_id(value: object, name: str) -> int:
    found = message_id_in({name: value}, name)
    if found is None:
        raise ValueError(f"{name}: not a message id: {value!r}")
    return found


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"text: must be a string, not {type(value).__name__}")
    return value


def text_payload(text: str, reply_to: int | None = None) -> dict[str, Any]:
    """A text, answering message ``reply_to`` if given (the relay cannot link the two)."""
    payload: dict[str, Any] = {"kind": "text", "text": _text(text)}
    if reply_to is not None:
        payload["reply_to"] = str(_message_id(reply_to, "reply_to"))
    return payload


def _readable(
    archive: PlaintextArchive, channel_id: int, message_id: int, author_id: int | None = None
) -> DMMessage | GroupMessage:
    """The text ``message_id`` of the channel, known here and not deleted (and written
    by ``author_id``, if given); ``E2EEError`` naming ``message_id`` otherwise."""
    target = archive.get(_message_id(message_id, "message_id"))
    if (
        isinstance(target, DMMessage | GroupMessage)
        and target.kind == "text"
        and target.channel_id == channel_id
        and not target.deleted
        and author_id in (None, target.author_id)
    ):
        return target
    if author_id is not None:
        raise E2EEError(
            "message_id: not one of your encrypted messages in this channel (only those"
            " sent or read on this device, and not deleted, can be edited or deleted)"
        )
    raise E2EEError(
        "message_id: not an encrypted message of this channel (only those sent or read"
        " on this device, and not deleted, can be reacted to)"
    )


def _own(
    archive: PlaintextArchive, me: int, channel_id: int, message_id: int
) -> DMMessage | GroupMessage:
    return _readable(archive, channel_id, message_id, me)


def edit_payload(
    archive: PlaintextArchive, me: int, channel_id: int, message_id: int, text: str
) -> dict[str, Any]:
    """An edit of user ``me``'s message ``message_id``; an empty text is refused."""
    text = _text(text)
    if not text.strip():
        raise ValueError("text: an edit cannot be empty")
    target = _own(archive, me, channel_id, message_id)
    return {"kind": "edit", "target": str(target.message_id), "text": text}


def delete_payload(
    archive: PlaintextArchive, me: int, channel_id: int, message_id: int
) -> dict[str, Any]:
    """The deletion of user ``me``'s message ``message_id``."""
    target = _own(archive, me, channel_id, message_id)
    return {"kind": "delete", "target": str(target.message_id)}


def reaction_payload(
    archive: PlaintextArchive, channel_id: int, message_id: int, emoji: str, add: bool
) -> dict[str, Any]:
    """Add (or, with ``add`` False, take back) this user's ``emoji`` on any message of
    the channel."""
    checked = valid_emoji(emoji)
    if checked is None:
        raise ValueError(f"emoji: not a reaction: {emoji!r}")
    if not isinstance(add, bool):
        raise ValueError(f"add: must be True or False, not {add!r}")
    target = _readable(archive, channel_id, message_id)
    return {"kind": "reaction", "target": str(target.message_id), "emoji": checked, "add": add}

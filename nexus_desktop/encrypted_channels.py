"""Community channels that are end-to-end encrypted: which ones, and what their messages
say.

The relay marks such a channel ``"e2ee": true`` in the channel object (GUILD_CREATE,
CHANNEL_CREATE / _UPDATE). The SDK's ``Channel`` model does not keep that flag, so the
app notes it from the raw dispatches and keeps the set in the account's encrypted store,
so the lock shows before the relay answers. Once on, it stays on (the relay refuses to
turn it off).

Messages there arrive as Megolm ciphertext with an empty ``content``; the SDK decrypts
each once and archives the outcome. ``reveal`` gives the message people read: the
plaintext, or a notice saying why it could not be decrypted. Replies and edits travel
inside the ciphertext too: ``reveal`` adds the reply link and the edited mark, and
``fold`` takes an edit (a message of its own on the relay) out of the list and applies
it to its target. No Qt here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nexus_client import Client, GroupMessage, UndecryptableMessage
from nexus_protocol.models import Emoji, Message, MessageReference, Reaction
from nexus_protocol.snowflake import snowflake_time

from .e2ee_state import MetaStore

log = logging.getLogger(__name__)

META_KEY = "desktop.e2ee_channels"
UNREADABLE_QUOTE = "🔒 Original message could not be decrypted"
# Encrypted messages that change another one instead of being a row.
_FOLDED_KINDS = ("edit", "delete", "reaction")

REASONS = {
    "unknown_session": "no key was shared with this device; it was sent before you could read",
    "missing_key": "the key held here starts after this message",
    "not_for_this_device": "it was sent before this device existed",
    "replay": "a copy of a message already received",
    "tampered": "it was altered on the way",
    "malformed": "it was not readable",
}


class EncryptedChannels:
    """The encrypted community channels of one account."""

    def __init__(self, meta: MetaStore | None) -> None:
        self._meta = meta
        raw = meta.get_meta(META_KEY) if meta is not None else None
        self._ids = {int(part) for part in (raw or "").split(",") if part.isdigit()}

    def is_encrypted(self, channel_id: int) -> bool:
        return channel_id in self._ids

    def mark(self, channel_id: int) -> bool:
        """Note a channel as encrypted; True if it was not known to be."""
        if channel_id in self._ids:
            return False
        self._ids.add(channel_id)
        if self._meta is not None:
            self._meta.set_meta(META_KEY, ",".join(map(str, sorted(self._ids))))
        return True

    def note(self, event: str, data: Any) -> int | None:
        """Read a raw dispatch; the community id whose channel list changed, if any."""
        if not isinstance(data, dict):
            return None
        try:
            if event == "GUILD_CREATE":
                changed = False
                for channel in data.get("channels") or []:
                    if isinstance(channel, dict) and channel.get("e2ee"):
                        changed = self.mark(int(channel["id"])) or changed
                return int(data["id"]) if changed else None
            is_channel = event in ("CHANNEL_CREATE", "CHANNEL_UPDATE") and data.get("guild_id")
            if is_channel and data.get("e2ee") and self.mark(int(data["id"])):
                return int(data["guild_id"])
        except (KeyError, TypeError, ValueError):
            log.info("ignored a malformed %s dispatch", event)
        return None


def undecryptable_notice(reason: str) -> str:
    explain = REASONS.get(reason, "")
    why = f"{reason}: {explain}" if explain else reason
    return f"🔒 *This message could not be decrypted ({why}).*"


def reveal(client: Client, message: Message) -> Message | None:
    """The message of an encrypted channel as people read it, from the SDK's archive of
    what this device decrypted or sent: its text (latest edit applied, with the edited
    mark), the message it replies to, or a notice saying why it could not be decrypted;
    None if this device has no outcome for it, or it is not a message to show (see
    ``fold``). The client's cache and store are updated, so the message view and search
    see it too."""
    if client.dms is None:
        return None
    outcome = client.decrypted_message(message.id)
    update: dict[str, Any]
    if isinstance(outcome, GroupMessage):
        if outcome.kind != "text":
            return None
        if outcome.deleted:
            forget(client, message.channel_id, message.id)
            return None
        update = {"content": outcome.text, "reactions": _reactions(client, outcome)}
        if outcome.last_edit_id is not None:
            update["edited_timestamp"] = snowflake_time(outcome.last_edit_id)
        if outcome.reply_to is not None:
            update["message_reference"] = MessageReference(
                message_id=outcome.reply_to, channel_id=message.channel_id
            )
            update["referenced_message"] = _unreadable_quote(client, message, outcome.reply_to)
    elif isinstance(outcome, UndecryptableMessage):
        update = {"content": undecryptable_notice(outcome.reason)}
    else:
        return None
    shown = message.model_copy(update=update)
    cached = client.cache.messages.get(message.channel_id)
    if cached is not None and message.id in cached:
        cached[message.id] = shown
    if client.store is not None and isinstance(outcome, GroupMessage):
        client.store.save_messages(message.channel_id, [shown.wire()])
    return shown


@dataclass(frozen=True, slots=True)
class Folded:
    """What an encrypted message that is no row of its own did to the rows: ``changed``
    is its target as it now reads (an edit, a reaction), ``deleted`` the id of the
    message it deleted."""

    changed: Message | None = None
    deleted: int | None = None


def fold(client: Client, message: Message) -> Folded | None:
    """None if ``message`` is a row of its own; else it is an encrypted edit, deletion,
    reaction or a payload of a kind this app does not know: it is dropped from the
    client's caches, and what it did to its target (if that is cached here) comes back.
    Only the author's edits and deletions count (the SDK checks; so does this)."""
    outcome = client.decrypted_message(message.id) if client.dms is not None else None
    if not isinstance(outcome, GroupMessage) or outcome.kind == "text":
        return None
    forget(client, message.channel_id, message.id)
    if outcome.kind not in _FOLDED_KINDS or outcome.target is None:
        log.info("not shown: an encrypted payload of kind %r", outcome.kind[:40])
        return Folded()
    target = _cached(client, message.channel_id, outcome.target)
    if target is None:
        return Folded()
    if outcome.kind != "reaction" and target.author.id != outcome.author_id:
        return Folded()
    revealed = reveal(client, target)
    if revealed is None and outcome.kind == "delete":
        return Folded(deleted=target.id)
    return Folded(changed=revealed)


def forget(client: Client, channel_id: int, message_id: int) -> None:
    """Drop a message from the client's cache and store (it is no row, or deleted)."""
    cached = client.cache.messages.get(channel_id)
    if cached is not None:
        cached.pop(message_id, None)
    if client.store is not None:
        client.store.delete_messages(channel_id, [message_id])


def _reactions(client: Client, outcome: GroupMessage) -> list[Reaction]:
    me = client.user.id if client.user is not None else None
    return [
        Reaction(count=len(users), me=me in users, emoji=Emoji(name=emoji))
        for emoji, users in outcome.reactions.items()
        if users
    ]


def _cached(client: Client, channel_id: int, message_id: int) -> Message | None:
    """A message of the client's memory cache, else of its store."""
    cached = client.cache.messages.get(channel_id)
    if cached is not None and message_id in cached:
        return cached[message_id]
    if client.store is None:
        return None
    # The newest stored message below ``message_id + 1`` is that message, if stored.
    rows = client.store.messages(channel_id, limit=1, before=message_id + 1)
    if rows and int(rows[0]["id"]) == message_id:
        return Message.model_validate(rows[0])
    return None


def _unreadable_quote(client: Client, reply: Message, target_id: int) -> Message | None:
    """What a reply quotes when the message it answers cannot be read here: that message
    with a notice for its text. None when it can be read (the view quotes it as it is
    now, edits included) or is not here at all."""
    outcome = client.decrypted_message(target_id)
    if isinstance(outcome, GroupMessage):
        return None
    target = _cached(client, reply.channel_id, target_id)
    if target is None:
        return None
    if outcome is None and target.content:
        return None  # sent before the channel was encrypted: readable as it is
    return target.model_copy(
        update={"content": UNREADABLE_QUOTE, "referenced_message": None, "reactions": []}
    )

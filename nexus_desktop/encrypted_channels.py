"""Community channels that are end-to-end encrypted: which ones, and what their messages
say.

The relay marks such a channel ``"e2ee": true`` in the channel object (GUILD_CREATE,
CHANNEL_CREATE / _UPDATE). The SDK's ``Channel`` model does not keep that flag, so the
app notes it from the raw dispatches and keeps the set in the account's encrypted store,
so the lock shows before the relay answers. Once on, it stays on (the relay refuses to
turn it off).

Messages there arrive as Megolm ciphertext with an empty ``content``; the SDK decrypts
each once and archives the outcome. ``reveal`` gives the message people read: the
plaintext, or a notice saying why it could not be decrypted. No Qt here."""

from __future__ import annotations

import logging
from typing import Any

from nexus_client import Client, GroupMessage, UndecryptableMessage
from nexus_protocol.models import Message

from .e2ee_state import MetaStore

log = logging.getLogger(__name__)

META_KEY = "desktop.e2ee_channels"

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
    what this device decrypted or sent; None if this device has no outcome for it. The
    client's cache and store are updated, so the message view and search see it too."""
    if client.dms is None:
        return None
    outcome = client.dms.archive.get(message.id)
    if isinstance(outcome, GroupMessage):
        if outcome.kind != "text":
            return None
        content = outcome.text
    elif isinstance(outcome, UndecryptableMessage):
        content = undecryptable_notice(outcome.reason)
    else:
        return None
    shown = message.model_copy(update={"content": content})
    cached = client.cache.messages.get(message.channel_id)
    if cached is not None and message.id in cached:
        cached[message.id] = shown
    if client.store is not None and isinstance(outcome, GroupMessage):
        client.store.save_messages(message.channel_id, [shown.wire()])
    return shown

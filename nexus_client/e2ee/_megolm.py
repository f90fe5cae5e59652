"""Megolm group sessions (``vodozemac``) for group DMs and encrypted channels.

No network code: ``nexus_client._groups`` shares session keys over the pairwise
sessions and posts the ciphertexts. See docs/e2ee.md.

Invariants, the guards Megolm itself lacks:

- Replay filter: a (session id, message index) decrypts once; the pair is written to
  the store in the same step that accepts it, so a restart does not reopen it.
- An inbound session is bound to the channel, user and device that shared it over a
  pairwise session: a ciphertext claiming another sender or channel is refused.
- An outbound session is used for at most ``ROTATE_AFTER`` messages and only with the
  exact set of devices it was shared with; anything else starts a new session, whose
  key only the current devices receive (a newcomer cannot read what came before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import vodozemac

from ..store import E2EETable
from ._errors import E2EEError, Undecryptable, UndecryptableReason
from ._identity import DeviceIdentity

ROTATE_AFTER: Final = 100
WIRE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class GroupHeader:
    sender_device: str
    session_id: str
    body: bytes  # the Megolm message


@dataclass(frozen=True, slots=True)
class GroupDecrypted:
    sender_user: int
    sender_device: str
    session_id: str
    message_index: int
    plaintext: bytes


@dataclass(frozen=True, slots=True)
class Outbound:
    session_id: str
    message_index: int
    shared_with: frozenset[str]  # "user_id:device_id" of every device that has the key


def encode_group(header: GroupHeader) -> bytes:
    device = header.sender_device.encode("ascii")
    session = header.session_id.encode("ascii")
    return (
        bytes([WIRE_VERSION, len(device)]) + device + bytes([len(session)]) + session + header.body
    )


def decode_group(data: bytes) -> GroupHeader:
    try:
        if data[0] != WIRE_VERSION:
            raise ValueError("unknown version")
        at = 2 + data[1]
        device = data[2:at].decode("ascii")
        end = at + 1 + data[at]
        session = data[at + 1 : end].decode("ascii")
        body = data[end:]
        if not device or not session or not body or len(data) < end:
            raise ValueError("truncated")
    except (IndexError, ValueError) as exc:
        raise Undecryptable(UndecryptableReason.MALFORMED, f"group message: {exc}") from None
    return GroupHeader(device, session, body)


class GroupSessions:
    """This device's Megolm sessions, persisted in the SQLCipher store."""

    def __init__(
        self, table: E2EETable, user_id: int, device_id: str, identity: DeviceIdentity
    ) -> None:
        self._table = table
        self.user_id = user_id
        self.device_id = device_id
        self._key = identity.secret_digest

    # -- sending --------------------------------------------------------------------------

    def outbound(self, channel_id: int) -> Outbound | None:
        stored = self._table.group_outbound(channel_id)
        if stored is None:
            return None
        session = vodozemac.GroupSession.from_pickle(stored[1], self._key)
        shared = frozenset(s for s in stored[2].split(",") if s)
        return Outbound(stored[0], session.message_index, shared)

    def needs_rotation(self, channel_id: int, devices: frozenset[str]) -> bool:
        """True unless the current session was shared with exactly ``devices`` and has
        sent fewer than ``ROTATE_AFTER`` messages."""
        current = self.outbound(channel_id)
        return (
            current is None
            or current.message_index >= ROTATE_AFTER
            or current.shared_with != devices
        )

    def start(self, channel_id: int) -> tuple[str, str]:
        """A new outbound session for the channel (the old one is forgotten; nobody is
        marked as holding the new key yet). Returns ``(session_id, session_key)``."""
        session = vodozemac.GroupSession()
        key = session.session_key.to_base64()
        self._table.save_group_outbound(
            channel_id, session.session_id, session.pickle(self._key), ""
        )
        # Our own copy, so this device can read its messages from history too.
        inbound = vodozemac.InboundGroupSession(vodozemac.SessionKey(key))
        self._table.save_group_inbound(
            session.session_id, channel_id, self.user_id, self.device_id, inbound.pickle(self._key)
        )
        return session.session_id, key

    def mark_shared(self, channel_id: int, session_id: str, devices: frozenset[str]) -> None:
        """Every device in ``devices`` has received the session key (the relay took it)."""
        stored = self._table.group_outbound(channel_id)
        if stored is not None and stored[0] == session_id:
            self._table.save_group_outbound(
                channel_id, session_id, stored[1], ",".join(sorted(devices))
            )

    def discard(self, channel_id: int) -> None:
        """Forget the outbound session: the next message starts a new one."""
        self._table.drop_group_outbound(channel_id)

    def encrypt(self, channel_id: int, plaintext: bytes) -> tuple[str, int, bytes]:
        """``(session_id, message_index, wire bytes)``; the advanced session is on disk
        before the ciphertext leaves (an index is never used twice)."""
        stored = self._table.group_outbound(channel_id)
        if stored is None:
            raise E2EEError("no outbound group session for this channel")
        session = vodozemac.GroupSession.from_pickle(stored[1], self._key)
        message = session.encrypt(plaintext)
        self._table.save_group_outbound(channel_id, stored[0], session.pickle(self._key), stored[2])
        wire = encode_group(GroupHeader(self.device_id, stored[0], message.to_bytes()))
        return stored[0], message.message_index(), wire

    # -- receiving ------------------------------------------------------------------------

    def add_inbound(
        self, channel_id: int, sender_user: int, sender_device: str, session_id: str, key: str
    ) -> bool:
        """Accept a session key shared by ``sender_user:sender_device``; False if it is
        refused (malformed, a different session id, or bound to another sender)."""
        try:
            inbound = vodozemac.InboundGroupSession(vodozemac.SessionKey(key))
        except ValueError:
            return False
        if inbound.session_id != session_id:
            return False
        existing = self._table.group_inbound(session_id)
        if existing is not None:
            if existing[:3] != (channel_id, sender_user, sender_device):
                return False
            old = vodozemac.InboundGroupSession.from_pickle(existing[3], self._key)
            if old.first_known_index <= inbound.first_known_index:
                return True  # keep the one that reaches further back
        self._table.save_group_inbound(
            session_id, channel_id, sender_user, sender_device, inbound.pickle(self._key)
        )
        return True

    def decrypt(self, channel_id: int, sender_user: int, data: bytes) -> GroupDecrypted:
        header = decode_group(data)
        stored = self._table.group_inbound(header.session_id)
        if stored is None:
            raise Undecryptable(
                UndecryptableReason.UNKNOWN_SESSION,
                f"no key for session {header.session_id} (shared before this device joined,"
                " or not shared with it)",
            )
        if stored[:3] != (channel_id, sender_user, header.sender_device):
            raise Undecryptable(
                UndecryptableReason.TAMPERED, "the session belongs to another sender or channel"
            )
        try:
            message = vodozemac.MegolmMessage.from_bytes(header.body)
        except ValueError as exc:
            raise Undecryptable(UndecryptableReason.MALFORMED, str(exc)) from None
        index = message.message_index()
        if self._table.group_seen(header.session_id, index):
            raise Undecryptable(UndecryptableReason.REPLAY, f"index {index} already decrypted")
        session = vodozemac.InboundGroupSession.from_pickle(stored[3], self._key)
        if index < session.first_known_index:
            raise Undecryptable(
                UndecryptableReason.MISSING_KEY,
                f"index {index} is before the shared key (from {session.first_known_index})",
            )
        try:
            decrypted = session.decrypt(message)
        except ValueError as exc:  # vodozemac's MegolmDecryptionException
            raise Undecryptable(UndecryptableReason.TAMPERED, str(exc)) from None
        if not self._table.mark_group_seen(header.session_id, index):
            raise Undecryptable(UndecryptableReason.REPLAY, f"index {index} already decrypted")
        return GroupDecrypted(
            sender_user, header.sender_device, header.session_id, index, decrypted.plaintext
        )

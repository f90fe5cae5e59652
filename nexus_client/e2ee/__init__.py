"""End-to-end encryption for DMs: X3DH + Double Ratchet between devices; Megolm group
sessions (``vodozemac``) for group DMs and encrypted channels (Signal's
protocol, from the ``x3dh`` and ``doubleratchet`` packages), persisted in the local
SQLCipher store, and safety numbers. No network code here (see ``nexus_client._dm``).
See docs/e2ee.md for the protocol."""

from ._archive import (
    DecryptedMessage,
    DMMessage,
    GroupMessage,
    PlaintextArchive,
    UndecryptableMessage,
    parse_payload,
)
from ._device import MAX_SESSIONS, Decrypted, E2EEDevice
from ._errors import E2EEError, Undecryptable, UndecryptableReason
from ._identity import DeviceIdentity, PeerBundle
from ._megolm import ROTATE_AFTER, GroupDecrypted, GroupSessions, Outbound
from ._ratchet import MAX_SKIP, Ratchet
from ._safety import fingerprint, format_safety_number, safety_number

__all__ = [
    "MAX_SESSIONS",
    "MAX_SKIP",
    "ROTATE_AFTER",
    "DMMessage",
    "Decrypted",
    "DecryptedMessage",
    "DeviceIdentity",
    "E2EEDevice",
    "E2EEError",
    "GroupDecrypted",
    "GroupMessage",
    "GroupSessions",
    "Outbound",
    "PeerBundle",
    "PlaintextArchive",
    "Ratchet",
    "Undecryptable",
    "UndecryptableMessage",
    "UndecryptableReason",
    "fingerprint",
    "format_safety_number",
    "parse_payload",
    "safety_number",
]

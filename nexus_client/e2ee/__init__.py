"""End-to-end encryption for DMs: X3DH + Double Ratchet between devices; Megolm group
sessions (``vodozemac``) for group DMs and encrypted channels (Signal's
protocol, from the ``x3dh`` and ``doubleratchet`` packages), persisted in the local
SQLCipher store, and safety numbers. No network code here (see ``nexus_client._dm``).
See docs/e2ee.md for the protocol."""

from typing import TYPE_CHECKING, Any

from ._actions import delete_payload, edit_payload, reaction_payload, text_payload
from ._archive import (
    ACTION_KINDS,
    DecryptedMessage,
    DMMessage,
    GroupMessage,
    PlaintextArchive,
    UndecryptableMessage,
    message_id_in,
    parse_payload,
)
from ._errors import E2EEError, Undecryptable, UndecryptableReason

if TYPE_CHECKING:
    from ._device import MAX_SESSIONS, Decrypted, E2EEDevice
    from ._identity import DeviceIdentity, PeerBundle
    from ._megolm import ROTATE_AFTER, GroupDecrypted, GroupSessions, Outbound
    from ._ratchet import MAX_SKIP, Ratchet
    from ._safety import fingerprint, format_safety_number, safety_number

# The cryptography (x3dh, doubleratchet, vodozemac) loads on first use: importing the SDK,
# or showing the app's window from its cache, needs none of it.
_LAZY = {
    "MAX_SESSIONS": "._device",
    "Decrypted": "._device",
    "E2EEDevice": "._device",
    "DeviceIdentity": "._identity",
    "PeerBundle": "._identity",
    "ROTATE_AFTER": "._megolm",
    "GroupDecrypted": "._megolm",
    "GroupSessions": "._megolm",
    "Outbound": "._megolm",
    "MAX_SKIP": "._ratchet",
    "Ratchet": "._ratchet",
    "fingerprint": "._safety",
    "format_safety_number": "._safety",
    "safety_number": "._safety",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTION_KINDS",
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
    "delete_payload",
    "edit_payload",
    "fingerprint",
    "format_safety_number",
    "message_id_in",
    "parse_payload",
    "reaction_payload",
    "safety_number",
    "text_payload",
]

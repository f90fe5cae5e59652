"""What the app remembers about the people it has encrypted DMs with: whom the user
verified, which keys it has seen, and the rule for a key change.

The rule: a contact's key change (a replaced identity key or a new device: either
changes the safety number) is shown in the conversation. If the user had verified that
contact, sending to them is blocked until the user acknowledges the change;
acknowledging clears the verification (compare the new safety number to verify again).

Everything lives in the account's encrypted store (``LocalStore`` meta keys), so it
survives restarts and never leaves the computer. No Qt here."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol


class MetaStore(Protocol):
    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def set_meta(self, key: str, value: str | None) -> None: ...


def key_fingerprint(peer_keys: Mapping[str, bytes]) -> str:
    """One digest over a contact's devices and their identity keys (order-free)."""
    digest = hashlib.sha256()
    for device_id in sorted(peer_keys):
        digest.update(device_id.encode() + b"\x00" + peer_keys[device_id] + b"\x01")
    return digest.hexdigest()


class E2EEState:
    """Verification and key-change bookkeeping for one account."""

    PREFIX = "desktop.e2ee"

    def __init__(self, meta: MetaStore) -> None:
        self._meta = meta

    def _key(self, kind: str, user_id: int) -> str:
        return f"{self.PREFIX}.{kind}.{user_id}"

    # Observing keys --------------------------------------------------------------------

    def observe(self, user_id: int, fingerprint: str) -> bool:
        """Note the contact's current key fingerprint; True if it differs from the one
        seen before (the first sighting is trusted: trust on first use)."""
        seen = self._meta.get_meta(self._key("seen", user_id))
        if seen == fingerprint:
            return False
        self._meta.set_meta(self._key("seen", user_id), fingerprint)
        return seen is not None

    def seen(self, user_id: int) -> str | None:
        return self._meta.get_meta(self._key("seen", user_id))

    # Verification ----------------------------------------------------------------------

    def mark_verified(self, user_id: int, fingerprint: str) -> None:
        """The user compared safety numbers: remember the keys they vouched for."""
        self._meta.set_meta(self._key("verified", user_id), fingerprint)
        self._meta.set_meta(self._key("seen", user_id), fingerprint)

    def clear_verified(self, user_id: int) -> None:
        self._meta.set_meta(self._key("verified", user_id), None)

    def verified_fingerprint(self, user_id: int) -> str | None:
        return self._meta.get_meta(self._key("verified", user_id))

    def is_verified(self, user_id: int, fingerprint: str) -> bool:
        """Verified, and still with the keys that were verified."""
        return self.verified_fingerprint(user_id) == fingerprint

    def send_blocked(self, user_id: int, fingerprint: str) -> bool:
        """The contact was verified and their keys changed since: no sending until the
        user acknowledges the change."""
        verified = self.verified_fingerprint(user_id)
        return verified is not None and verified != fingerprint

    def acknowledge(self, user_id: int, fingerprint: str) -> None:
        """The user saw the key change: sending is allowed again, the contact is no
        longer verified (verify the new safety number to restore it)."""
        self.clear_verified(user_id)
        self._meta.set_meta(self._key("seen", user_id), fingerprint)

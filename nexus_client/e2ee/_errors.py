"""E2EE errors: part of the client's one tree (``NexusError``)."""

from __future__ import annotations

from enum import StrEnum

from .._exceptions import NexusError


class UndecryptableReason(StrEnum):
    REPLAY = "replay"  # this envelope (or its message key) was used before
    TAMPERED = "tampered"  # authentication failed: altered ciphertext, header or routing
    NO_SESSION = "no_session"  # a plain message from a device we share no session with
    UNKNOWN_PREKEY = "unknown_prekey"  # a prekey message for keys we no longer hold
    BAD_KEY = "bad_key"  # a peer key of small order, or malformed
    TOO_FAR_AHEAD = "too_far_ahead"  # more than the skipped-message window ahead
    MALFORMED = "malformed"  # not an envelope this version understands
    NOT_FOR_THIS_DEVICE = "not_for_this_device"
    # Megolm (group DMs, encrypted channels):
    UNKNOWN_SESSION = "unknown_session"  # no key for this group session was shared with us
    MISSING_KEY = "missing_key"  # we hold the session only from a later message on


class E2EEError(NexusError):
    """End-to-end encryption could not be set up or used."""


class Undecryptable(E2EEError):
    """An envelope that will not decrypt; ``reason`` says why (never silently dropped)."""

    def __init__(self, reason: UndecryptableReason, detail: str = "") -> None:
        super().__init__(f"cannot decrypt: {reason.value}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail

"""End-to-end encryption of voice frames, after SFrame (RFC 9605), so the SFU forwards
Opus packets it cannot read.

Keys. Every participant makes a *sender key* (32 random bytes) per *epoch* and hands it to
the others over the conversation's existing E2EE sessions; this module only takes and gives
the bytes. A new epoch, with a fresh random key, starts whenever call membership changes:
whoever left never receives the new key, and a newcomer never receives the old one. From a
sender key, HKDF-SHA256 with the sender id and epoch in its info derives a 16-byte
AES-128-GCM key and a 12-byte salt, so one sender key can never be confused with another
sender's or another epoch's, even if the transport mislabels the sender.

Frame layout, ``header || ciphertext || 16-byte tag``. The header is RFC 9605's::

    +-+-+-+-+-+-+-+-+----------------------+---------------------+
    |X|  K  |Y|  C  | epoch (0 or 1-8 B)   | counter (0 or 1-8 B)|
    +-+-+-+-+-+-+-+-+----------------------+---------------------+

- ``X = 0``: the epoch (0-7) is ``K`` itself; ``X = 1``: ``K + 1`` big-endian bytes follow.
- ``Y = 0``: the counter (0-7) is ``C`` itself; ``Y = 1``: ``C + 1`` big-endian bytes follow.

The first byte is the only flags byte; there are no version bits, as in RFC 9605: a
different format would travel with a different key, announced in the key message. An
epoch below 256 and a counter below 2**32 (two years of 20 ms frames) take at most six
bytes.

Nonce = salt XOR the counter (big-endian, right-aligned); AAD = the header, so changing
the epoch or the counter fails authentication.

Invariants:

- An encryptor never repeats a counter under a key, never reuses an epoch it has used,
  and refuses to encrypt past ``COUNTER_LIMIT`` (the caller must rotate first).
- A decryptor holds at most ``KEPT_EPOCHS`` epochs per sender (the most recently set), so
  frames still in flight after a rotation decrypt, and older keys are gone.
- A (sender, epoch, counter) decrypts at most once: a sliding window of
  ``REPLAY_WINDOW`` counters per (sender, epoch) accepts reordering inside it and refuses
  duplicates and anything older. The window moves only after authentication succeeds, so a
  forged frame cannot push genuine ones out.
- Raw sender keys are kept only by the encryptor that must hand its own out; decryptors
  keep derived keys only. No key is logged, put in an error message or shown by ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._exceptions import NexusError

SENDER_KEY_BYTES: Final = 32
AES_KEY_BYTES: Final = 16
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
# Far below AES-GCM's usage limits for one key, and beyond any call's length at 50 frames/s.
COUNTER_LIMIT: Final = 2**32 - 1
REPLAY_WINDOW: Final = 1024
KEPT_EPOCHS: Final = 2
MAX_ID: Final = 2**64 - 1  # epochs and sender ids fit the header's 8-byte fields
_KDF_LABEL: Final = b"Nexus voice SFrame v1 "

RejectReason = Literal["malformed", "unknown_key", "authentication", "replay"]
REJECT_REASONS: Final[tuple[RejectReason, ...]] = (
    "malformed",
    "unknown_key",
    "authentication",
    "replay",
)


class FrameRejected(NexusError, ValueError):
    """A frame that will not decrypt; ``reason`` says why. The frame is dropped."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"voice frame rejected: {reason} ({detail})")
        self.reason: RejectReason = reason


class CounterExhausted(NexusError, RuntimeError):
    """The encryptor's key has sent ``COUNTER_LIMIT`` frames: rotate to a new epoch."""


def new_sender_key() -> bytes:
    """A fresh random sender key for one epoch."""
    return os.urandom(SENDER_KEY_BYTES)


def _check_id(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValueError(f"{what} must be an integer in 0..2**64-1, got {value!r}")


def _check_sender_key(sender_key: bytes) -> None:
    if not isinstance(sender_key, bytes) or len(sender_key) != SENDER_KEY_BYTES:
        # The key itself stays out of the message.
        raise ValueError(f"sender_key must be {SENDER_KEY_BYTES} bytes")


def _derive(sender_id: int, epoch: int, sender_key: bytes) -> tuple[AESGCM, bytes]:
    info = _KDF_LABEL + sender_id.to_bytes(8, "big") + epoch.to_bytes(8, "big")
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=AES_KEY_BYTES + NONCE_BYTES,
        salt=None,
        info=info,
    ).derive(sender_key)
    return AESGCM(okm[:AES_KEY_BYTES]), okm[AES_KEY_BYTES:]


def _nonce(salt: bytes, counter: int) -> bytes:
    return (int.from_bytes(salt, "big") ^ counter).to_bytes(NONCE_BYTES, "big")


def _encode_field(value: int) -> tuple[int, bytes]:
    """The 4 config bits (X/Y flag and 3-bit value) and the trailing bytes for one field."""
    if value < 8:
        return value, b""
    length = (value.bit_length() + 7) // 8
    return 0b1000 | (length - 1), value.to_bytes(length, "big")


def encode_header(epoch: int, counter: int) -> bytes:
    epoch_bits, epoch_bytes = _encode_field(epoch)
    counter_bits, counter_bytes = _encode_field(counter)
    return bytes([epoch_bits << 4 | counter_bits]) + epoch_bytes + counter_bytes


def decode_header(frame: bytes) -> tuple[int, int, int]:
    """``(epoch, counter, header length)``; ``FrameRejected("malformed")`` if truncated."""
    if not frame:
        raise FrameRejected("malformed", "empty frame")
    config = frame[0]
    position = 1
    values: list[int] = []
    for bits in (config >> 4, config & 0x0F):
        if bits & 0b1000:
            length = (bits & 0b0111) + 1
            if len(frame) < position + length:
                raise FrameRejected("malformed", "header longer than the frame")
            values.append(int.from_bytes(frame[position : position + length], "big"))
            position += length
        else:
            values.append(bits)
    return values[0], values[1], position


class FrameEncryptor:
    """Encrypts one participant's outgoing frames under its current epoch's sender key."""

    __slots__ = (
        "_aead",
        "_counter",
        "_counter_limit",
        "_epoch",
        "_salt",
        "_sender_id",
        "_sender_key",
        "_used_epochs",
    )

    def __init__(
        self,
        sender_id: int,
        epoch: int,
        sender_key: bytes,
        *,
        counter_limit: int = COUNTER_LIMIT,
    ) -> None:
        _check_id("sender_id", sender_id)
        if not 0 < counter_limit <= COUNTER_LIMIT:
            raise ValueError(f"counter_limit must be in 1..{COUNTER_LIMIT}, got {counter_limit}")
        self._sender_id = sender_id
        self._counter_limit = counter_limit
        self._used_epochs: set[int] = set()
        self._install(epoch, sender_key)

    def _install(self, epoch: int, sender_key: bytes) -> None:
        _check_id("epoch", epoch)
        _check_sender_key(sender_key)
        if epoch in self._used_epochs:
            # Same epoch, counter back at 0: receivers would drop the frames as replays,
            # or, with the same key, two frames would share a nonce.
            raise ValueError(f"epoch {epoch} was already used by this sender; pick a new one")
        self._aead, self._salt = _derive(self._sender_id, epoch, sender_key)
        self._sender_key = sender_key
        self._epoch = epoch
        self._counter = 0
        self._used_epochs.add(epoch)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def sender_key(self) -> bytes:
        """The current epoch's key, to hand to the other participants."""
        return self._sender_key

    @property
    def frames_left(self) -> int:
        """How many more frames this epoch can encrypt before ``rotate`` is required."""
        return self._counter_limit - self._counter

    def rotate(self, epoch: int, sender_key: bytes) -> None:
        """Switch to a new epoch and key; the counter starts again at 0."""
        if sender_key == self._sender_key:
            raise ValueError("rotate needs a new sender key, not the current one")
        self._install(epoch, sender_key)

    def encrypt(self, plaintext: bytes) -> bytes:
        if self._counter >= self._counter_limit:
            raise CounterExhausted(
                f"epoch {self._epoch} has sent its {self._counter_limit} frames; rotate first"
            )
        counter = self._counter
        self._counter += 1
        header = encode_header(self._epoch, counter)
        return header + self._aead.encrypt(_nonce(self._salt, counter), bytes(plaintext), header)

    def __repr__(self) -> str:
        return (
            f"<FrameEncryptor sender={self._sender_id} epoch={self._epoch} "
            f"frames_sent={self._counter}>"
        )


@dataclass(slots=True)
class _ReplayWindow:
    """Counters seen for one (sender, epoch): the highest, and a bitmap of those below it."""

    highest: int = -1
    seen: int = 0  # bit i set: counter ``highest - i`` was accepted

    def check(self, counter: int) -> None:
        if counter > self.highest:
            return
        offset = self.highest - counter
        if offset >= REPLAY_WINDOW:
            raise FrameRejected("replay", f"counter {counter} is older than the window")
        if self.seen >> offset & 1:
            raise FrameRejected("replay", f"counter {counter} was already received")

    def accept(self, counter: int) -> None:
        if counter > self.highest:
            shift = counter - self.highest
            kept = self.seen << shift if shift < REPLAY_WINDOW else 0
            self.seen = (kept | 1) & ((1 << REPLAY_WINDOW) - 1)
            self.highest = counter
        else:
            self.seen |= 1 << (self.highest - counter)


@dataclass(slots=True)
class _ReceiveKey:
    aead: AESGCM = field(repr=False)
    salt: bytes = field(repr=False)
    window: _ReplayWindow = field(default_factory=_ReplayWindow)


@dataclass(frozen=True, slots=True)
class FrameStats:
    decrypted: int
    rejected: dict[RejectReason, int]


class FrameDecryptor:
    """Decrypts the frames of every other participant of one call."""

    __slots__ = ("_decrypted", "_keys", "_rejected")

    def __init__(self) -> None:
        # sender id -> epoch -> key, in the order the epochs were set (oldest first)
        self._keys: dict[int, dict[int, _ReceiveKey]] = {}
        self._decrypted = 0
        self._rejected: dict[RejectReason, int] = dict.fromkeys(REJECT_REASONS, 0)

    def set_key(self, sender_id: int, epoch: int, sender_key: bytes) -> None:
        """Accept a sender's key for an epoch. The sender's previous epoch stays usable
        for frames still in flight; anything older is forgotten."""
        _check_id("sender_id", sender_id)
        _check_id("epoch", epoch)
        _check_sender_key(sender_key)
        aead, salt = _derive(sender_id, epoch, sender_key)
        epochs = self._keys.setdefault(sender_id, {})
        epochs.pop(epoch, None)  # re-set: it becomes the newest, with a fresh window
        epochs[epoch] = _ReceiveKey(aead, salt)
        while len(epochs) > KEPT_EPOCHS:
            del epochs[next(iter(epochs))]

    def forget_sender(self, sender_id: int) -> None:
        """Drop every key of a participant who left."""
        self._keys.pop(sender_id, None)

    def known_epochs(self, sender_id: int) -> tuple[int, ...]:
        """The epochs held for a sender, oldest first."""
        return tuple(self._keys.get(sender_id, ()))

    @property
    def stats(self) -> FrameStats:
        return FrameStats(self._decrypted, dict(self._rejected))

    def decrypt(self, sender_id: int, frame: bytes) -> bytes:
        try:
            plaintext = self._decrypt(sender_id, bytes(frame))
        except FrameRejected as rejected:
            self._rejected[rejected.reason] += 1
            raise
        self._decrypted += 1
        return plaintext

    def _decrypt(self, sender_id: int, frame: bytes) -> bytes:
        epoch, counter, header_length = decode_header(frame)
        if len(frame) < header_length + TAG_BYTES:
            raise FrameRejected("malformed", "frame shorter than its header and tag")
        key = self._keys.get(sender_id, {}).get(epoch)
        if key is None:
            raise FrameRejected("unknown_key", f"no key for sender {sender_id} epoch {epoch}")
        key.window.check(counter)
        header = frame[:header_length]
        try:
            plaintext = key.aead.decrypt(_nonce(key.salt, counter), frame[header_length:], header)
        except InvalidTag:
            raise FrameRejected("authentication", "tag does not match") from None
        key.window.accept(counter)
        return plaintext

    def __repr__(self) -> str:
        held = {sender: list(epochs) for sender, epochs in self._keys.items()}
        return f"<FrameDecryptor epochs={held} decrypted={self._decrypted}>"

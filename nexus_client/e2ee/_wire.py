"""The bytes of one envelope's ciphertext. The relay stores them opaque.

    version (1) = 1
    kind (1): 1 prekey message, 2 message
    sender device id length (1), sender device id (ASCII)
    prekey only: initiator identity key (32), ephemeral key (32), signed prekey (32),
                 has one-time prekey (1), one-time prekey (32, if present)
    ratchet public key (32), previous chain length (4), message number (4)
    AEAD ciphertext (AES-256-CBC + HMAC-SHA-256 tag)

Everything before the ciphertext is authenticated: it is part of the associated data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from nexus_protocol.e2ee import is_valid_device_id

from ._errors import Undecryptable, UndecryptableReason

VERSION: Final = 1
KIND_PREKEY: Final = 1
KIND_MESSAGE: Final = 2


@dataclass(frozen=True, slots=True)
class X3DHHeader:
    identity_key: bytes
    ephemeral_key: bytes
    signed_prekey: bytes
    one_time_prekey: bytes | None


@dataclass(frozen=True, slots=True)
class Envelope:
    sender_device: str
    x3dh: X3DHHeader | None
    ratchet_pub: bytes
    previous_chain_length: int
    message_number: int
    ciphertext: bytes

    @property
    def is_prekey(self) -> bool:
        return self.x3dh is not None

    def header_bytes(self) -> bytes:
        device = self.sender_device.encode("ascii")
        out = bytearray([VERSION, KIND_PREKEY if self.x3dh else KIND_MESSAGE, len(device)])
        out += device
        if self.x3dh is not None:
            out += self.x3dh.identity_key + self.x3dh.ephemeral_key + self.x3dh.signed_prekey
            otk = self.x3dh.one_time_prekey
            out += b"\x01" + otk if otk is not None else b"\x00"
        out += self.ratchet_pub
        out += self.previous_chain_length.to_bytes(4, "big")
        out += self.message_number.to_bytes(4, "big")
        return bytes(out)

    def encode(self) -> bytes:
        return self.header_bytes() + self.ciphertext


def _malformed(why: str) -> Undecryptable:
    return Undecryptable(UndecryptableReason.MALFORMED, why)


def decode(data: bytes) -> Envelope:
    if len(data) < 3 or data[0] != VERSION or data[1] not in (KIND_PREKEY, KIND_MESSAGE):
        raise _malformed("unknown version or kind")
    pos = 3 + data[2]
    try:
        device = data[3:pos].decode("ascii")
    except UnicodeDecodeError:
        raise _malformed("sender device id") from None
    if not is_valid_device_id(device):
        raise _malformed("sender device id")
    header: X3DHHeader | None = None
    if data[1] == KIND_PREKEY:
        keys = data[pos : pos + 97]
        if len(keys) != 97 or keys[96] not in (0, 1):
            raise _malformed("prekey header")
        pos += 97
        otk: bytes | None = None
        if keys[96] == 1:
            otk = data[pos : pos + 32]
            pos += 32
        header = X3DHHeader(keys[:32], keys[32:64], keys[64:96], otk)
    fixed = data[pos : pos + 40]
    if len(fixed) != 40 or (
        header and header.one_time_prekey is not None and len(header.one_time_prekey) != 32
    ):
        raise _malformed("ratchet header")
    return Envelope(
        sender_device=device,
        x3dh=header,
        ratchet_pub=fixed[:32],
        previous_chain_length=int.from_bytes(fixed[32:36], "big"),
        message_number=int.from_bytes(fixed[36:40], "big"),
        ciphertext=data[pos + 40 :],
    )

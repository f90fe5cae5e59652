"""End-to-end encryption on the wire: request bodies for device keys and encrypted DM
messages, and the key checks that the relay and the client both apply.

Invariants:

- Keys travel as standard base64 (with padding). Identity keys are Ed25519 public keys
  (X3DH's ``ED_25519`` identity format); prekeys are X25519 public keys.
- A signed prekey's signature is an Ed25519 signature by the identity key over
  ``encode_curve_key(signed_prekey)``: the relay can check it with any Ed25519 library.
- No public key of small order (or all zeros) is ever accepted: ``is_low_order_x25519``
  and ``is_low_order_ed25519`` say which; see the X25519 low-order list (libsodium's).
- The relay never interprets ``ciphertext``: every DM edit, delete, reply and reaction is
  a ciphertext like any other.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .models import Snowflake

MAX_PREKEYS_PER_UPLOAD: Final = 100
MAX_PREKEYS_STORED: Final = 500
MAX_ENVELOPES: Final = 64
MAX_CIPHERTEXT_BYTES: Final = 64 * 1024
DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{8,64}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)

# Type prefixes when a public key is hashed or signed (Signal's 0x05 is Curve25519).
CURVE_KEY_TYPE: Final = b"\x05"
EDWARDS_KEY_TYPE: Final = b"\xed"

_P: Final = 2**255 - 19
# u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519 (canonical, mod p).
# Every low-order public key, including the non-canonical encodings in libsodium's
# blocklist, reduces to one of these.
_LOW_ORDER_U: Final = frozenset(
    {
        0,
        1,
        _P - 1,
        int.from_bytes(
            bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            "little",
        ),
        int.from_bytes(
            bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            "little",
        ),
    }
)


def is_valid_device_id(value: str) -> bool:
    return bool(_DEVICE_ID.match(value))


def is_low_order_x25519(public_key: bytes) -> bool:
    """True for an X25519 public key whose DH output is predictable (or all zeros)."""
    if len(public_key) != 32:
        return True
    u = int.from_bytes(public_key, "little")
    # A key generated honestly is canonical (below p, top bit clear). Refusing the rest
    # also covers the non-canonical encodings of low-order points in libsodium's list,
    # whatever an X25519 implementation does with the top bit.
    if u >= _P:
        return True
    return u in _LOW_ORDER_U


def is_low_order_ed25519(public_key: bytes) -> bool:
    """True for an Ed25519 public key of small order (its Montgomery form is low order)."""
    if len(public_key) != 32:
        return True
    y = (int.from_bytes(public_key, "little") & ((1 << 255) - 1)) % _P
    if y == 1:  # the neutral element
        return True
    # The birational map to Curve25519: u = (1 + y) / (1 - y).
    u = (1 + y) * pow((1 - y) % _P, _P - 2, _P) % _P
    return u in _LOW_ORDER_U


def encode_curve_key(public_key: bytes) -> bytes:
    return CURVE_KEY_TYPE + public_key


def encode_edwards_key(public_key: bytes) -> bytes:
    return EDWARDS_KEY_TYPE + public_key


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict standard base64; ValueError otherwise."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not valid base64") from exc


Base64Key = Annotated[str, StringConstraints(min_length=1, max_length=100)]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UploadKeysBody(_Body):
    """``PUT /users/@me/devices/{device_id}/keys``: the first upload names the identity
    key; later uploads may add one-time prekeys or rotate the signed prekey."""

    identity_key: Base64Key
    signed_prekey: Base64Key | None = None
    signed_prekey_signature: Base64Key | None = None
    one_time_prekeys: Annotated[list[Base64Key], Field(max_length=MAX_PREKEYS_PER_UPLOAD)] = []
    name: Annotated[str, StringConstraints(max_length=64)] = ""


class EnvelopeType(StrEnum):
    PREKEY = "prekey"
    MESSAGE = "message"


class EnvelopeBody(_Body):
    user_id: Snowflake
    device_id: DeviceId
    type: EnvelopeType
    ciphertext: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CIPHERTEXT_BYTES)]


class CreateDMBody(_Body):
    recipient_id: Snowflake

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
- A group DM's membership changes are statements signed by the acting device's identity
  key (Ed25519 over ``membership_statement(...)``, canonical JSON): the relay checks and
  keeps them; clients check them again before they share a group key with anyone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .models import Snowflake

MAX_PREKEYS_PER_UPLOAD: Final = 100
MAX_PREKEYS_STORED: Final = 500
MAX_ENVELOPES: Final = 256  # key shares to every device of an encrypted channel
MAX_CIPHERTEXT_BYTES: Final = 64 * 1024
MAX_GROUP_DM_MEMBERS: Final = 10  # the creator included (Discord's limit)
MEMBERSHIP_VERSION: Final = 1
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


class MembershipOp(StrEnum):
    CREATE = "create"
    ADD = "add"
    REMOVE = "remove"


def membership_statement(
    *,
    op: MembershipOp,
    channel_id: int | None,
    actor_id: int,
    device_id: str,
    targets: list[int],
    nonce: str,
) -> str:
    """The canonical text a member's device signs for a group DM membership change.
    ``channel_id`` is None for ``create`` (the id does not exist yet); ``targets`` are
    every member for ``create`` and the one member added or removed otherwise."""
    return json.dumps(
        {
            "v": MEMBERSHIP_VERSION,
            "op": op.value,
            "channel_id": None if channel_id is None else str(channel_id),
            "actor_id": str(actor_id),
            "device_id": device_id,
            "targets": sorted(str(t) for t in set(targets)),
            "nonce": nonce,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def parse_membership_statement(text: str) -> dict[str, Any]:
    """The statement's fields; ValueError unless it is exactly the canonical form."""
    try:
        data = json.loads(text)
        statement = membership_statement(
            op=MembershipOp(data["op"]),
            channel_id=None if data["channel_id"] is None else int(data["channel_id"]),
            actor_id=int(data["actor_id"]),
            device_id=str(data["device_id"]),
            targets=[int(t) for t in data["targets"]],
            nonce=str(data["nonce"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a membership statement: {exc}") from None
    if statement != text or data["v"] != MEMBERSHIP_VERSION:
        raise ValueError("not the canonical form of a membership statement")
    return {
        "op": MembershipOp(data["op"]),
        "channel_id": None if data["channel_id"] is None else int(data["channel_id"]),
        "actor_id": int(data["actor_id"]),
        "device_id": str(data["device_id"]),
        "targets": [int(t) for t in data["targets"]],
        "nonce": str(data["nonce"]),
    }


class MembershipBody(_Body):
    """A signed membership statement: ``statement`` is the canonical JSON text, and
    ``signature`` (base64) is the Ed25519 signature of its UTF-8 bytes by ``device_id``."""

    device_id: DeviceId
    statement: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    signature: Base64Key


class CreateDMBody(_Body):
    """``POST /users/@me/channels``: ``recipient_id`` opens a one-to-one DM;
    ``recipients`` (Discord's group DM shape) creates a group DM, with its signed
    ``membership`` statement (op ``create``)."""

    recipient_id: Snowflake | None = None
    recipients: Annotated[list[Snowflake], Field(max_length=MAX_GROUP_DM_MEMBERS - 1)] | None = None
    membership: MembershipBody | None = None


class RecipientBody(_Body):
    """``PUT``/``DELETE /channels/{id}/recipients/{user_id}``."""

    membership: MembershipBody

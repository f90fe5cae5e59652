"""Safety numbers in Signal's numeric fingerprint form (version 0): 60 digits, the same
on both sides, changing whenever either user's keys change.

Each side's 30 digits: SHA-512 iterated 5,200 times over (version, the user's identity
keys, the user's id), the first 30 bytes read as six 5-byte big-endian numbers, each
mod 100,000. A Nexus user has one identity key per device, so "the user's key" is the
sorted concatenation of their devices' keys. The two halves are ordered so both users
compute the same string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

from nexus_protocol.e2ee import encode_edwards_key

ITERATIONS: Final = 5200
_VERSION: Final = b"\x00\x00"


def fingerprint(user_id: int, identity_keys: Iterable[bytes]) -> str:
    keys = b"".join(sorted(encode_edwards_key(k) for k in identity_keys))
    digest = hashlib.sha512(_VERSION + keys + str(user_id).encode("ascii")).digest()
    for _ in range(ITERATIONS):
        digest = hashlib.sha512(digest + keys).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
    )


def safety_number(
    local_user: int,
    local_keys: Iterable[bytes],
    remote_user: int,
    remote_keys: Iterable[bytes],
) -> str:
    """60 digits; show them in twelve groups of five (``format_safety_number``)."""
    halves = sorted((fingerprint(local_user, local_keys), fingerprint(remote_user, remote_keys)))
    return halves[0] + halves[1]


def format_safety_number(number: str) -> str:
    return " ".join(number[i : i + 5] for i in range(0, len(number), 5))

"""The voice media headers: what rides inside each RTP payload between a client and the SFU.

Every participant has one WebRTC peer connection to the SFU with one Opus audio track.
The SFU never decodes audio (it may not even be able to: the frame can be end-to-end
encrypted), so everything it needs is put in front of the frame in the clear.

Client → SFU (``TALKER_HEADER_SIZE`` = 1 byte, then the frame)::

    +-------+---------------------------------------------+
    | level | frame (Opus packet or opaque encrypted data) |
    +-------+---------------------------------------------+

``level`` is the frame's audio level in -dBov, 0 (loudest) .. 127 (silence), as in
RFC 6464. The SFU uses it to pick the loudest talkers to forward.

SFU → listener (``LISTENER_HEADER_SIZE`` = 13 bytes, then the frame)::

    +-------------------+------------------+-------+-------+
    | user_id (8, BE)   | timestamp (4, BE)| level | frame |
    +-------------------+------------------+-------+-------+

``user_id`` is the talker's id and ``timestamp`` the RTP timestamp of the talker's packet
as the SFU received it. All talkers reach a listener multiplexed on one outgoing track,
whose own RTP timestamps and sequence numbers belong to the SFU; a listener keeps one
jitter buffer per ``user_id``, ordered by this timestamp.

Invariants: headers are fixed size; the frame is carried byte for byte and may be empty;
unpacking input shorter than the header raises ``MediaHeaderError`` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

TALKER_HEADER_SIZE: Final = 1
LISTENER_HEADER_SIZE: Final = 13
SILENCE_LEVEL: Final = 127
MAX_LEVEL: Final = 127
MAX_USER_ID: Final = (1 << 64) - 1
MAX_TIMESTAMP: Final = (1 << 32) - 1

_LISTENER_HEADER: Final = struct.Struct(">QIB")


class MediaHeaderError(ValueError):
    """A media payload is too short for its header, or a header field is out of range."""


@dataclass(frozen=True, slots=True)
class TalkerPayload:
    """A client → SFU payload, split into its level and the untouched frame."""

    level: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class ListenerPayload:
    """An SFU → listener payload, split into who spoke, when, how loud, and the frame."""

    user_id: int
    timestamp: int
    level: int
    frame: bytes


def _check_level(level: int) -> None:
    if not 0 <= level <= MAX_LEVEL:
        raise MediaHeaderError(f"audio level must be within 0..{MAX_LEVEL} -dBov, got {level}")


def pack_talker_payload(level: int, frame: bytes) -> bytes:
    """Build the client → SFU payload for one frame."""
    _check_level(level)
    return bytes((level,)) + frame


def unpack_talker_payload(payload: bytes) -> TalkerPayload:
    """Split a client → SFU payload; the level byte is clamped to silence if out of range."""
    if len(payload) < TALKER_HEADER_SIZE:
        raise MediaHeaderError(
            f"talker payload needs at least {TALKER_HEADER_SIZE} byte (level), got 0"
        )
    return TalkerPayload(level=min(payload[0], MAX_LEVEL), frame=bytes(payload[1:]))


def pack_listener_header(user_id: int, timestamp: int, level: int) -> bytes:
    """Build the 13-byte header the SFU puts in front of a forwarded frame."""
    if not 0 <= user_id <= MAX_USER_ID:
        raise MediaHeaderError(f"user_id must fit in 64 unsigned bits, got {user_id}")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MediaHeaderError(f"RTP timestamp must fit in 32 unsigned bits, got {timestamp}")
    _check_level(level)
    return _LISTENER_HEADER.pack(user_id, timestamp, level)


def pack_listener_payload(user_id: int, timestamp: int, level: int, frame: bytes) -> bytes:
    """Build a whole SFU → listener payload."""
    return pack_listener_header(user_id, timestamp, level) + frame


def unpack_listener_payload(payload: bytes) -> ListenerPayload:
    """Split an SFU → listener payload into its header fields and the frame."""
    if len(payload) < LISTENER_HEADER_SIZE:
        raise MediaHeaderError(
            f"listener payload needs at least {LISTENER_HEADER_SIZE} bytes "
            f"(user_id, timestamp, level), got {len(payload)}"
        )
    user_id, timestamp, level = _LISTENER_HEADER.unpack_from(payload)
    return ListenerPayload(
        user_id=user_id, timestamp=timestamp, level=level, frame=bytes(payload[13:])
    )

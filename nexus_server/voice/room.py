"""A voice room inside one SFU worker: who is in it, and where each talker's packet goes.

No I/O here: a packet comes in as bytes and lands in the listeners' outboxes, which the
peer connections drain. The frame after the level byte is never looked at; the SFU may
not be able to read it (end-to-end encryption) and must not decode it (cost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nexus_protocol.voice_media import (
    MAX_LEVEL,
    TALKER_HEADER_SIZE,
    pack_listener_header,
)
from nexus_server.voice.errors import VoiceRequestError
from nexus_server.voice.loudest import LoudestTalkers
from nexus_server.voice.outbox import Outbox


@dataclass(slots=True, eq=False)
class Participant:
    user_id: int
    outbox: Outbox = field(default_factory=Outbox)
    muted: bool = False  # by the server: their audio is not forwarded
    deaf: bool = False  # they receive nothing
    packets_in: int = 0
    packets_out: int = 0
    malformed: int = 0

    def counters(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "muted": self.muted,
            "deaf": self.deaf,
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "dropped": self.outbox.dropped,
            "malformed": self.malformed,
            "queue_depth": len(self.outbox),
        }


class VoiceRoom:
    def __init__(self, room_id: str, *, forward_loudest: int) -> None:
        self.room_id = room_id
        self.participants: dict[int, Participant] = {}
        self._loudest = LoudestTalkers(forward_loudest)

    def add(self, participant: Participant) -> None:
        self.participants[participant.user_id] = participant

    def remove(self, participant: Participant) -> None:
        """Remove exactly this participant (a newer one with the same id stays)."""
        if self.participants.get(participant.user_id) is participant:
            del self.participants[participant.user_id]
            self._loudest.forget(participant.user_id)
        participant.outbox.close()

    def set_muted(self, user_id: int, muted: bool) -> None:
        self._member(user_id).muted = muted
        if muted:
            self._loudest.forget(user_id)

    def set_deaf(self, user_id: int, deaf: bool) -> None:
        self._member(user_id).deaf = deaf

    def forward(self, talker: Participant, payload: bytes, rtp_timestamp: int, now: float) -> None:
        """Fan one client → SFU payload out to the listeners that should hear it."""
        talker.packets_in += 1
        if len(payload) < TALKER_HEADER_SIZE:
            talker.malformed += 1
            return
        if talker.muted or self.participants.get(talker.user_id) is not talker:
            return
        level = min(payload[0], MAX_LEVEL)
        talker_id = talker.user_id
        self._loudest.hear(talker_id, level, now)
        # One header per packet, shared by every listener: the payload is the same for all.
        forwarded = pack_listener_header(talker_id, rtp_timestamp, level) + payload[1:]
        audience = self._loudest.audience(talker_id, now)
        participants = self.participants
        if audience is None:
            listeners: Iterable[Participant] = participants.values()
        else:
            listeners = [participants[uid] for uid in audience if uid in participants]
        for listener in listeners:
            if listener is talker or listener.deaf:
                continue
            listener.outbox.put(forwarded)
            listener.packets_out += 1

    def counters(self) -> dict[str, Any]:
        return {
            "room": self.room_id,
            "participants": [p.counters() for p in self.participants.values()],
        }

    def _member(self, user_id: int) -> Participant:
        participant = self.participants.get(user_id)
        if participant is None:
            raise VoiceRequestError(f"user {user_id} is not in voice room {self.room_id!r}")
        return participant

"""One participant's WebRTC peer connection to the SFU, and whether it is still alive.

The client offers one sendrecv Opus transceiver; the SFU answers, takes the client's RTP
raw into the room (no decoder) and sends the room's audio back on one outgoing track.

Liveness: a silent client sends no RTP (VAD/DTX), but its RTCP sender reports keep coming
about once a second, so "nothing at all for ``SILENCE_TIMEOUT``" means the peer vanished
without a word (killed, unplugged). ICE/DTLS failure or closure is reported by aiortc
through the connection state and is acted on at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from nexus_server.voice.control import IceServerConfig
from nexus_server.voice.errors import VoiceRequestError
from nexus_server.voice.raw_rtp import PayloadTrack, tap_incoming_rtcp, tap_incoming_rtp
from nexus_server.voice.room import Participant, VoiceRoom
from nexus_server.voice.rtp_out import DirectRtpSender

logger = logging.getLogger(__name__)

SILENCE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 15.0


class VoicePeer:
    def __init__(
        self,
        room: VoiceRoom,
        participant: Participant,
        *,
        ice_servers: list[IceServerConfig] | None,
        on_lost: Callable[[VoicePeer, str], None],
    ) -> None:
        self.room = room
        self.participant = participant
        self._on_lost = on_lost
        # Always an explicit list: aiortc's default STUN server stalls gathering offline.
        servers = [
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in ice_servers or []
        ]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.pc.on("connectionstatechange", self._on_connection_state)
        self._created_at = time.monotonic()
        self._heard_at = self._created_at
        self._connected = False

    @property
    def user_id(self) -> int:
        return self.participant.user_id

    async def answer(self, offer_sdp: str) -> str:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except ValueError as exc:
            raise VoiceRequestError(f"the SDP offer is not valid: {exc}") from exc
        transceivers = self.pc.getTransceivers()
        if len(transceivers) != 1 or transceivers[0].kind != "audio":
            raise VoiceRequestError(
                "the SDP offer must have exactly one audio m-line, "
                f"got {[t.kind for t in transceivers]}"
            )
        receiver = transceivers[0].receiver
        tap_incoming_rtp(receiver, self._on_rtp_payload)
        tap_incoming_rtcp(receiver.transport, self._note_heard)
        # The track only gives aiortc's sender a stream to run; the payloads bypass it.
        DirectRtpSender(
            self.pc.addTrack(PayloadTrack(self.participant.outbox)), self.participant.outbox
        )
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def lost_reason(self, now: float) -> str | None:
        """Why this peer counts as gone at ``now``, or ``None`` while it is alive."""
        if self._connected and now - self._heard_at > SILENCE_TIMEOUT:
            return "timeout"
        if not self._connected and now - self._created_at > CONNECT_TIMEOUT:
            return "connect_timeout"
        return None

    async def close(self) -> None:
        self.pc.remove_all_listeners("connectionstatechange")
        await self.pc.close()

    def _on_rtp_payload(self, payload: bytes, rtp_timestamp: int) -> None:
        now = time.monotonic()
        self._heard_at = now
        self.room.forward(self.participant, payload, rtp_timestamp, now)

    def _note_heard(self) -> None:
        self._heard_at = time.monotonic()

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("room %s user %s: connection %s", self.room.room_id, self.user_id, state)
        if state == "connected":
            self._connected = True
            self._heard_at = time.monotonic()
        elif state in ("failed", "closed"):
            self._on_lost(self, state)

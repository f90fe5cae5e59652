"""One WebRTC peer connection carrying raw audio payloads each way.

The client encodes (and, in encrypted calls, encrypts) its own Opus frames, and runs its
own jitter buffer, so aiortc is used only for what it is good at here: ICE, DTLS-SRTP and
RTP. Outgoing payloads go out as pre-encoded packets (aiortc's Opus "encoder" sends a
packet's bytes as they are); incoming RTP packets are taken off the receiver before
aiortc's jitter buffer (80 ms of delay at its defaults) and decoder see them. The hook
relies on aiortc 1.16's ``RTCRtpReceiver._handle_rtp_packet``, looked up per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import re
from collections import deque
from collections.abc import Callable
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

OPUS_CLOCK_RATE = 48_000
_TIME_BASE = fractions.Fraction(1, OPUS_CLOCK_RATE)
# About a quarter of a second of audio: late audio is worthless, so a stalled link drops
# the oldest rather than building delay.
SEND_QUEUE_LIMIT = 12

# (payload, RTP timestamp, arrival time on the loop clock)
PayloadHandler = Callable[[bytes, int, float], None]

_CANDIDATE_LINE = re.compile(r"^a=candidate:.*\r?\n", re.MULTILINE)


def without_candidates(sdp: str) -> str:
    """``sdp`` with no ICE candidates: what the other side sees when every direct path
    between the two is blocked (and what "never reveal my address" sends)."""
    return _CANDIDATE_LINE.sub("", sdp)


class _PayloadTrack(MediaStreamTrack):
    """Outgoing audio made of ready payloads, each stamped with its capture timestamp."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[tuple[bytes, int]] = deque(maxlen=SEND_QUEUE_LIMIT)
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, payload: bytes, timestamp: int) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((payload, timestamp))
        self._ready.set()

    async def recv(self) -> av.Packet[Any]:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        payload, timestamp = self._queue.popleft()
        packet = av.Packet(payload)
        packet.pts = timestamp
        packet.time_base = _TIME_BASE
        return packet

    def stop(self) -> None:
        super().stop()
        self._ready.set()


def _tap(receiver: RTCRtpReceiver, on_payload: PayloadHandler) -> None:
    loop = asyncio.get_running_loop()

    async def take_raw_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        on_payload(packet.payload, packet.timestamp, loop.time())

    receiver._handle_rtp_packet = take_raw_packet  # type: ignore[method-assign]


class MediaPeer:
    """A peer connection to the SFU, or directly to the other person in a call."""

    def __init__(
        self, on_payload: PayloadHandler, *, ice_servers: list[dict[str, Any]] | None = None
    ) -> None:
        servers = [
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in ice_servers or ()
        ]
        # An explicit empty list: aiortc would otherwise ask a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._on_payload = on_payload
        self._track = _PayloadTrack()
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()
        self.pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            self.failed.set()

    async def create_offer(self) -> str:
        transceiver = self.pc.addTransceiver(self._track, direction="sendrecv")
        _tap(transceiver.receiver, self._on_payload)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def answer_offer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        audio = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise ValueError("the offer carries no audio")
        transceiver = audio[0]
        transceiver.direction = "sendrecv"
        transceiver.sender.replaceTrack(self._track)
        _tap(transceiver.receiver, self._on_payload)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def send(self, payload: bytes, timestamp: int) -> None:
        self._track.put(payload, timestamp)

    @property
    def dropped(self) -> int:
        return self._track.dropped

    async def wait_connected(self, timeout: float) -> bool:
        """Whether ICE and DTLS completed within ``timeout`` seconds."""
        done = asyncio.ensure_future(self.connected.wait())
        failed = asyncio.ensure_future(self.failed.wait())
        try:
            await asyncio.wait({done, failed}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            done.cancel()
            failed.cancel()
        return self.connected.is_set() and not self.failed.is_set()

    async def close(self) -> None:
        self._track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()

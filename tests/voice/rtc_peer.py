"""A minimal voice participant for tests: one aiortc peer connection to the SFU.

It sends given client → SFU payloads at 50 packets/s (one per 20 ms Opus frame), records
the RTP timestamp and payload of every packet it put on the wire, and collects what the
SFU forwards, split by the SFU → listener header.

Run as ``python -m tests.voice.rtc_peer`` it is a participant in a process of its own, to
be killed without a goodbye: it prints ``{"offer": sdp}``, reads ``{"answer": sdp}``,
prints ``{"connected": true}`` and then keeps the connection up until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRemoteOutboundRtpStreamStats,
    RTCSessionDescription,
)
from aiortc.rtp import RtpPacket, is_rtcp

from nexus_protocol.voice_media import (
    ListenerPayload,
    MediaHeaderError,
    pack_talker_payload,
    unpack_listener_payload,
)
from nexus_server.voice.outbox import Outbox
from nexus_server.voice.raw_rtp import PayloadTrack, tap_incoming_rtp

PACKET_INTERVAL = 0.02


@dataclass(frozen=True, slots=True)
class SentPacket:
    rtp_timestamp: int
    payload: bytes


def talker_payloads(level: int, count: int, tag: bytes = b"") -> list[bytes]:
    """``count`` distinct ~100-byte payloads at ``level`` (frames are opaque to the SFU)."""
    return [
        pack_talker_payload(level, tag + b"#%05d|" % n + bytes((n + i) % 256 for i in range(90)))
        for n in range(count)
    ]


class RtcTestPeer:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.sent: list[SentPacket] = []
        self.received: list[ListenerPayload] = []
        self.unreadable = 0
        self._outbox = Outbox(capacity=1024)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def offer(self) -> str:
        transceiver = self.pc.addTransceiver(PayloadTrack(self._outbox), direction="sendrecv")
        tap_incoming_rtp(transceiver.receiver, self._on_payload)
        transport = transceiver.sender.transport
        send_rtp = transport._send_rtp

        async def record_and_send(data: bytes) -> None:
            if not is_rtcp(data):  # RTCP leaves through the same call
                packet = RtpPacket.parse(data)
                self.sent.append(SentPacket(packet.timestamp, packet.payload))
            await send_rtp(data)

        transport._send_rtp = record_and_send  # type: ignore[method-assign]
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        await asyncio.wait_for(self._connected.wait(), 10)

    async def send(self, payloads: list[bytes]) -> None:
        """Send ``payloads`` one per 20 ms and return once all are on the wire."""
        sent_before = len(self.sent)
        start = time.monotonic()
        for n, payload in enumerate(payloads):
            self._outbox.put(payload)
            await asyncio.sleep(max(0.0, start + (n + 1) * PACKET_INTERVAL - time.monotonic()))
        await wait_until(lambda: len(self.sent) >= sent_before + len(payloads))

    async def last_sender_report(self) -> RTCRemoteOutboundRtpStreamStats | None:
        """What the SFU's latest RTCP sender report to this peer said, if one came."""
        report = await self.pc.getReceivers()[0].getStats()
        for stats in report.values():
            if isinstance(stats, RTCRemoteOutboundRtpStreamStats):
                return stats
        return None

    def heard_from(self, user_id: int) -> list[ListenerPayload]:
        return [p for p in self.received if p.user_id == user_id]

    async def close(self) -> None:
        await self.pc.close()

    def _on_payload(self, payload: bytes, rtp_timestamp: int) -> None:
        try:
            self.received.append(unpack_listener_payload(payload))
        except MediaHeaderError:
            self.unreadable += 1

    def _on_connection_state(self) -> None:
        if self.pc.connectionState == "connected":
            self._connected.set()


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


async def _run_in_own_process(user_id: int) -> None:
    peer = RtcTestPeer(user_id)
    print(json.dumps({"offer": await peer.offer()}), flush=True)
    answer = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await peer.accept(json.loads(answer)["answer"])
    print(json.dumps({"connected": True}), flush=True)
    while True:
        await peer.send(talker_payloads(60, 50))


if __name__ == "__main__":
    asyncio.run(_run_in_own_process(int(sys.argv[1])))

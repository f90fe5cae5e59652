"""Raw RTP payloads in and out of aiortc, with no jitter buffer and no codec in between.

aiortc normally depacketises incoming audio into a jitter buffer and decodes it on a
thread, and encodes outgoing audio frames. The SFU must do neither: a frame is forwarded
byte for byte (it may be end-to-end encrypted), and decoding plus re-encoding per listener
collapses at a handful of talkers. So:

* ``tap_incoming_rtp`` replaces a receiver's ``_handle_rtp_packet`` with a callback that
  gets the payload and RTP timestamp of each packet, so nothing reaches the decoder.
* ``tap_incoming_rtcp`` lets RTCP through as usual but tells the caller it arrived: the
  peer's sender reports keep coming while its microphone is silent (DTX/VAD), which is
  how a quiet participant is told apart from a vanished one.
* ``PayloadTrack`` is an outgoing track whose ``recv()`` hands out ``av.Packet`` objects;
  aiortc's Opus encoder sends a packet's bytes as they are (``OpusEncoder.pack``), with
  its pts/time_base as the RTP timestamp. Any aiortc peer can send raw payloads this way.
  The SFU itself sends through ``rtp_out.DirectRtpSender`` instead, which skips the
  per-packet track and sender loop altogether.

These hooks lean on aiortc 1.16 internals (``RTCRtpReceiver._handle_rtp_packet``
and ``RTCDtlsTransport._handle_rtcp_data``, each looked up on the instance per packet).
"""

from __future__ import annotations

import fractions
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCDtlsTransport, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from nexus_server.voice.outbox import Outbox

OPUS_CLOCK_RATE = 48_000
_TIME_BASE = fractions.Fraction(1, OPUS_CLOCK_RATE)

RtpPayloadHandler = Callable[[bytes, int], None]


def tap_incoming_rtp(receiver: RTCRtpReceiver, on_payload: RtpPayloadHandler) -> None:
    """Route every RTP packet of ``receiver`` to ``on_payload(payload, rtp_timestamp)``."""

    async def take_raw_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        on_payload(packet.payload, packet.timestamp)

    receiver._handle_rtp_packet = take_raw_packet  # type: ignore[method-assign]


def tap_incoming_rtcp(transport: RTCDtlsTransport, on_rtcp: Callable[[], None]) -> None:
    """Call ``on_rtcp()`` whenever an RTCP datagram arrives, then handle it as aiortc would."""
    handle_rtcp_data = transport._handle_rtcp_data

    async def note_rtcp(data: bytes) -> None:
        on_rtcp()
        await handle_rtcp_data(data)

    transport._handle_rtcp_data = note_rtcp  # type: ignore[method-assign]


class PayloadTrack(MediaStreamTrack):
    """An outgoing audio track that sends the payloads put in its ``Outbox`` unchanged.

    The RTP timestamp follows the wall clock since the track started (never going back),
    so RTCP sender reports stay truthful while many talkers share this one stream.
    """

    kind = "audio"

    def __init__(self, outbox: Outbox) -> None:
        super().__init__()
        self.outbox = outbox
        self._started_at = time.monotonic()
        self._last_pts = -1

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        payload = await self.outbox.get()
        if payload is None:
            raise MediaStreamError
        packet = av.Packet(payload)
        packet.pts = self.next_pts()
        packet.time_base = _TIME_BASE
        return packet

    def next_pts(self) -> int:
        pts = max(int((time.monotonic() - self._started_at) * OPUS_CLOCK_RATE), self._last_pts)
        self._last_pts = pts
        return pts

    def stop(self) -> None:
        self.outbox.close()
        super().stop()

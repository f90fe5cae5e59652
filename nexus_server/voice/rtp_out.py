"""The SFU's send path to one listener: SRTP packets straight onto the listener's socket.

The SFU sends thousands of packets a second, each one the same small payload to many
listeners. aiortc's sender would, per packet and per listener, wake a task, build an
``RtpPacket`` with header extensions, serialise it and pass it down three coroutines
(DTLS transport, ICE transport, ICE connection) before the socket. Here ``put`` on the
listener's ``Outbox`` sends synchronously, in the receive callback of the talker's
packet: a fixed 12-byte RTP header, the MID header extension (constant per listener, so
built once; a receiver may route by it), the payload, SRTP-protected with the DTLS-SRTP
session aiortc negotiated, then ``sendto`` on the ICE pair's datagram transport. Nothing
leaves unencrypted: no send happens before aiortc has started the sender, which it does
only once DTLS is connected, nor after DTLS has left the connected state.

aiortc stays in charge of everything else. Its sender still starts and stops this
stream (its RTP task becomes the drain of the outbox's queue: payloads put before the
connection was up, while the socket is not writable, or over a TURN relay, whose send is
asynchronous), and still sends the RTCP sender reports on its schedule; the report's
sender information (NTP time and this stream's RTP time at that moment, packet and octet
counts) is filled in from this path's own counters as the report leaves.
Sequence numbers and timestamps are this stream's own: the RTP timestamp follows a
48 kHz clock since the stream started, so it never goes back while many talkers share it.

This leans on aiortc 1.16 / aioice 0.10+ internals, each read per packet or at start:
``RTCRtpSender.send``, ``_next_encoded_frame``, ``_send_rtcp``, ``_ssrc`` and the
name-mangled last-sender-report fields (for its round-trip time estimate);
``RTCDtlsTransport._state`` and ``_tx_srtp``; ``RTCIceTransport._connection``;
``aioice.Connection._nominated`` and ``StunProtocol.transport``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from typing import Any, NoReturn

from aioice.ice import StunProtocol
from aiortc import RTCRtpCodecParameters, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import (
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)

from nexus_server.voice.outbox import Outbox
from nexus_server.voice.srtp_protect import SrtpProtector

logger = logging.getLogger(__name__)

OPUS_CLOCK_RATE = 48_000
RTP_COMPONENT = 1
WRITABLE_POLL_SECONDS = 0.005
# Seconds from the NTP epoch (1900) to the Unix epoch (1970), for RTCP sender reports.
NTP_UNIX_OFFSET = 2_208_988_800
_NTP_FRACTION = float(1 << 32)

# Version, padding, extension, CSRC count and marker/payload type as one 16-bit field,
# then sequence number, timestamp, SSRC: the fixed RTP header.
_RTP_FIXED_HEADER = struct.Struct("!HHII")

# What aiortc's sender remembers of its last report, to time the receiver's answer
# (name-mangled in RTCRtpSender).
_LAST_SR_NTP_MIDDLE = "_RTCRtpSender__lsr"
_LAST_SR_SENT_AT = "_RTCRtpSender__lsr_time"


class DirectRtpSender:
    """Sends the payloads put in ``outbox`` on ``sender``'s stream, bypassing its RTP loop."""

    _srtp: SrtpProtector  # once aiortc has started the sender

    def __init__(self, sender: RTCRtpSender, outbox: Outbox) -> None:
        self._sender = sender
        self._outbox = outbox
        self._parameters: RTCRtpSendParameters | None = None
        self._dtls: Any = None
        self._ice: Any = None
        self._flags = 0
        self._ssrc = 0
        self._header_extension = b""
        self._sequence_number = random.randrange(1 << 15)  # low half: no early wrap
        self._timestamp_origin = random.randrange(1 << 32)
        self._clock_start = 0.0
        self._packet_count = 0
        self._octet_count = 0
        self._draining = False
        self._pair: Any = None
        self._transport: Any = None
        self._remote_addr: tuple[str, int] = ("", 0)

        start_sending = sender.send
        send_rtcp = sender._send_rtcp

        async def send(parameters: RTCRtpSendParameters) -> None:
            self._parameters = parameters
            await start_sending(parameters)

        async def send_truthful_rtcp(packets: list[AnyRtcpPacket]) -> None:
            for packet in packets:
                if isinstance(packet, RtcpSrPacket):
                    packet.sender_info = self._sender_info()
            await send_rtcp(packets)

        sender.send = send  # type: ignore[method-assign]
        sender._next_encoded_frame = self._drain  # type: ignore[method-assign]
        sender._send_rtcp = send_truthful_rtcp  # type: ignore[method-assign]

    def _start(self, codec: RTCRtpCodecParameters) -> None:
        """Called once aiortc starts the sender, which it does when DTLS is connected."""
        parameters = self._parameters
        assert parameters is not None, "aiortc started its RTP loop before send()"
        self._dtls = self._sender.transport
        self._ice = self._dtls.transport._connection
        self._srtp = SrtpProtector(self._dtls._tx_srtp)
        self._ssrc = self._sender._ssrc
        extensions_map = HeaderExtensionsMap()
        extensions_map.configure(parameters)
        # aiortc marks every audio packet; the header extension block holds the MID only.
        assert codec.payloadType is not None, "aiortc sends only negotiated codecs"
        template = RtpPacket(payload_type=codec.payloadType, marker=1, ssrc=self._ssrc)
        template.extensions.mid = parameters.muxId
        fixed_and_extension = template.serialize(extensions_map)
        self._flags = int.from_bytes(fixed_and_extension[:2], "big")
        self._header_extension = fixed_and_extension[_RTP_FIXED_HEADER.size :]
        self._clock_start = time.monotonic()
        self._outbox.send_through(self._send_now)

    async def _drain(self, codec: RTCRtpCodecParameters) -> NoReturn:
        """Stands in for aiortc's ``_next_encoded_frame``: its RTP task drains the queue.

        Never returns a frame; ending with ``MediaStreamError`` or ``ConnectionError``
        ends aiortc's RTP loop quietly, and cancelling that loop (``sender.stop()``) ends
        this.
        """
        self._start(codec)
        while (payload := await self._outbox.get()) is not None:
            self._draining = True
            try:
                await self._send_queued(payload)
            finally:
                self._draining = False
        raise MediaStreamError

    def _send_now(self, payload: bytes) -> bool:
        if self._draining or self._dtls._state is not DtlsState.CONNECTED:
            return False
        pair = self._ice._nominated.get(RTP_COMPONENT)
        if pair is not self._pair:
            self._use_pair(pair)
        transport = self._transport
        # Datagram transports buffer (unboundedly) when the socket is full: queue instead.
        if transport is None or transport.get_write_buffer_size():
            return False
        try:
            transport.sendto(self._protect(payload), self._remote_addr)
        except Exception:  # the talker's receive path must never see a listener's failure
            logger.exception("direct RTP send failed; queueing instead")
            return False
        return True

    def _use_pair(self, pair: Any) -> None:
        """Remember the ICE pair's socket, if it can be written to synchronously."""
        self._pair = pair
        self._transport = None
        if pair is not None and type(pair.protocol) is StunProtocol:
            self._transport = pair.protocol.transport
            self._remote_addr = pair.remote_addr

    async def _send_queued(self, payload: bytes) -> None:
        while True:
            if self._dtls._state is not DtlsState.CONNECTED:
                raise ConnectionError("DTLS is no longer connected")
            pair = self._ice._nominated.get(RTP_COMPONENT)
            if pair is None:
                raise ConnectionError("ICE has no nominated pair")
            if type(pair.protocol) is not StunProtocol:  # a TURN relay: asynchronous send
                await pair.protocol.send_data(self._protect(payload), pair.remote_addr)
                return
            transport: Any = pair.protocol.transport
            if not transport.get_write_buffer_size():
                transport.sendto(self._protect(payload), pair.remote_addr)
                return
            await asyncio.sleep(WRITABLE_POLL_SECONDS)

    def _protect(self, payload: bytes) -> bytes:
        """The next SRTP packet of this stream, carrying ``payload``."""
        sequence_number = self._sequence_number
        self._sequence_number = (sequence_number + 1) & 0xFFFF
        self._packet_count += 1
        self._octet_count += len(payload)
        elapsed = time.monotonic() - self._clock_start
        timestamp = (self._timestamp_origin + int(elapsed * OPUS_CLOCK_RATE)) & 0xFFFFFFFF
        return self._srtp.protect(
            _RTP_FIXED_HEADER.pack(self._flags, sequence_number, timestamp, self._ssrc)
            + self._header_extension
            + payload
        )

    def _rtp_time(self) -> int:
        elapsed = time.monotonic() - self._clock_start
        return (self._timestamp_origin + int(elapsed * OPUS_CLOCK_RATE)) & 0xFFFFFFFF

    def _sender_info(self) -> RtcpSenderInfo:
        """This stream's sender information for a report leaving now (RFC 3550 6.4.1)."""
        ntp_time = int((time.time() + NTP_UNIX_OFFSET) * _NTP_FRACTION)
        setattr(self._sender, _LAST_SR_NTP_MIDDLE, (ntp_time >> 16) & 0xFFFFFFFF)
        setattr(self._sender, _LAST_SR_SENT_AT, time.time())
        return RtcpSenderInfo(
            ntp_timestamp=ntp_time,
            rtp_timestamp=self._rtp_time() if self._clock_start else 0,
            packet_count=self._packet_count & 0xFFFFFFFF,
            octet_count=self._octet_count & 0xFFFFFFFF,
        )

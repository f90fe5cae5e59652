"""Opus through PyAV's libopus: one packet per frame out, one frame per packet back.

The encoder runs in the ``voip`` application (speech-tuned, and the only mode where in-band
FEC exists) with a fixed frame duration, so every 10 or 20 ms frame becomes exactly one
packet with no buffering beyond libopus's own 6.5 ms look-ahead.

Packet-loss concealment: libopus conceals when it is handed a frame of zero bytes, and an
Opus packet made of a TOC byte alone is exactly that (RFC 6716 §3.2.1). PyAV passes such a
packet straight to ``opus_decode``, so :meth:`OpusDecoder.conceal` reaches the real PLC,
which extrapolates the voice and fades it out over consecutive losses. An *empty* packet is
never sent to the decoder: FFmpeg reads it as "end of stream" and would drain it.
"""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

from .._exceptions import NexusError
from .audio import SAMPLE_RATE, Frame, samples_per_frame

# RFC 6716 §3.2: no frame's payload exceeds 1275 bytes; with framing, 1500 bounds a packet.
MAX_PACKET_BYTES = 1500
# TOC bytes for CELT full-band, one mono frame of 2.5 / 5 / 10 / 20 ms (configs 28 to 31,
# code 0). Only the duration matters: with no payload the decoder keeps its previous mode.
_CONCEAL_TOC = {120: 0xE0, 240: 0xE8, 480: 0xF0, 960: 0xF8}
# libopus' default expected loss before it spends bits on FEC is 0; a modest figure makes
# it protect speech without starving the main payload.
EXPECTED_PACKET_LOSS_PERCENT = 10


class OpusError(NexusError, ValueError):
    """A packet that is not valid Opus, or a frame the encoder cannot take."""


class OpusEncoder:
    def __init__(self, *, frame_ms: int = 20, bitrate: int = 64_000, channels: int = 1) -> None:
        self.frame_ms = frame_ms
        self.samples_per_frame = samples_per_frame(frame_ms)
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels!r}")
        if not 6_000 <= bitrate <= 510_000:
            raise ValueError(f"bitrate must be within 6000..510000 bit/s, not {bitrate!r}")
        self.channels = channels
        self.bitrate = bitrate
        self._layout = "mono" if channels == 1 else "stereo"
        context = av.CodecContext.create("libopus", "w")
        assert isinstance(context, av.AudioCodecContext)
        context.sample_rate = SAMPLE_RATE
        context.layout = self._layout
        context.format = "flt"
        context.bit_rate = bitrate
        context.options = {
            "application": "voip",
            "frame_duration": str(frame_ms),
            "fec": "1",
            "packet_loss": str(EXPECTED_PACKET_LOSS_PERCENT),
        }
        context.open()
        self._context = context
        self._pts = 0

    def encode(self, frame: npt.NDArray[np.float32]) -> bytes:
        """Encode one frame ((n,) mono or (n, 2) stereo) into one Opus packet."""
        samples = np.asarray(frame, dtype=np.float32)
        expected = (self.samples_per_frame,) if self.channels == 1 else (self.samples_per_frame, 2)
        if samples.shape != expected:
            raise OpusError(f"the encoder takes frames of shape {expected}, got {samples.shape}")
        interleaved = np.ascontiguousarray(np.clip(samples, -1.0, 1.0)).reshape(1, -1)
        audio = av.AudioFrame.from_ndarray(interleaved, format="flt", layout=self._layout)
        audio.sample_rate = SAMPLE_RATE
        audio.pts = self._pts
        self._pts += self.samples_per_frame
        packets = self._context.encode(audio)
        if len(packets) != 1:
            raise OpusError(f"libopus returned {len(packets)} packets for one frame")
        return bytes(packets[0])


class OpusDecoder:
    """Decodes one speaker's packets to 48 kHz mono float32."""

    def __init__(self) -> None:
        context = av.CodecContext.create("libopus", "r")
        assert isinstance(context, av.AudioCodecContext)
        context.sample_rate = SAMPLE_RATE
        context.layout = "mono"
        context.open()
        self._context = context
        self._decoded_any = False

    def decode(self, packet: bytes) -> Frame:
        if not isinstance(packet, bytes | bytearray | memoryview):
            raise TypeError(f"an Opus packet is bytes, not {type(packet).__name__}")
        if not 0 < len(packet) <= MAX_PACKET_BYTES:
            raise OpusError(f"an Opus packet holds 1..{MAX_PACKET_BYTES} bytes, not {len(packet)}")
        samples = self._run(bytes(packet))
        self._decoded_any = True
        return samples

    def conceal(self, samples: int) -> Frame:
        """Audio to stand in for ``samples`` lost samples (a multiple of 2.5 ms)."""
        if samples <= 0 or samples % 120:
            raise ValueError(f"samples must be a positive multiple of 120 (2.5 ms), not {samples}")
        if not self._decoded_any:
            return np.zeros(samples, dtype=np.float32)
        parts: list[Frame] = []
        remaining = samples
        for size in (960, 480, 240, 120):
            while remaining >= size:
                parts.append(self._run(bytes([_CONCEAL_TOC[size]])))
                remaining -= size
        concealed = np.concatenate(parts)
        if len(concealed) != samples:
            raise OpusError(f"concealment produced {len(concealed)} samples, not {samples}")
        return concealed

    def _run(self, payload: bytes) -> Frame:
        try:
            frames = self._context.decode(av.Packet(payload))
        except av.FFmpegError as exc:
            raise OpusError(f"malformed Opus packet ({len(payload)} bytes): {exc}") from exc
        if not frames:
            raise OpusError(f"Opus packet of {len(payload)} bytes decoded to nothing")
        return np.concatenate([_to_float_mono(frame) for frame in frames])


def _to_float_mono(frame: av.AudioFrame) -> Frame:
    samples = frame.to_ndarray()
    if samples.dtype == np.int16:
        return (samples.reshape(-1) / 32768.0).astype(np.float32)
    return samples.reshape(-1).astype(np.float32, copy=False)

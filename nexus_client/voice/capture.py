"""The sending half of a voice call: microphone frames in, Opus packets out.

Per frame: level meter → noise suppression (optional) → voice activity → Opus. Only frames
the user means to send are encoded; the timestamp still advances over the others, so the
receiver sees the gap as a gap (silence) and not as lost packets to conceal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from .audio import AudioSource, samples_per_frame
from .denoise import NoiseSuppressor
from .opus import OpusEncoder
from .vad import LEVEL_FLOOR_DB, VoiceActivityDetector, level_db

CaptureMode = Literal["vad", "ptt"]
PacketCallback = Callable[[bytes, int, float], None]


@dataclass(frozen=True, slots=True)
class CaptureStats:
    frames_read: int
    frames_sent: int
    frames_silent: int
    """Read but not sent: quiet, muted or push-to-talk released."""
    frames_invalid: int
    """Dropped because the source produced something that is not a frame."""


class CapturePipeline:
    def __init__(
        self,
        source: AudioSource,
        on_packet: PacketCallback,
        *,
        frame_ms: int = 20,
        noise_suppression: bool = True,
        mode: CaptureMode = "vad",
        bitrate: int = 64_000,
    ) -> None:
        self.samples_per_frame = samples_per_frame(frame_ms)
        if source.frame_ms != frame_ms:
            raise ValueError(f"source delivers {source.frame_ms} ms frames, not {frame_ms} ms")
        if mode not in ("vad", "ptt"):
            raise ValueError(f"mode must be 'vad' or 'ptt', not {mode!r}")
        self.frame_ms = frame_ms
        self.mode: CaptureMode = mode
        self.muted = False
        self.noise_suppression = noise_suppression
        self._source = source
        self._on_packet = on_packet
        self._encoder = OpusEncoder(frame_ms=frame_ms, bitrate=bitrate)
        self._suppressor: NoiseSuppressor | None = None
        self._vad = VoiceActivityDetector(frame_ms=frame_ms)
        self._push_to_talk = False
        self._speaking = False
        self._level_db = LEVEL_FLOOR_DB
        self._timestamp = 0
        self._frames_read = 0
        self._frames_sent = 0
        self._frames_silent = 0
        self._frames_invalid = 0
        self._stop = asyncio.Event()

    @property
    def level_db(self) -> float:
        """Input level of the latest frame, before noise suppression (for the meter)."""
        return self._level_db

    @property
    def speaking(self) -> bool:
        """Whether the latest frame was sent: what the user's own talk indicator shows."""
        return self._speaking

    @property
    def stats(self) -> CaptureStats:
        return CaptureStats(
            frames_read=self._frames_read,
            frames_sent=self._frames_sent,
            frames_silent=self._frames_silent,
            frames_invalid=self._frames_invalid,
        )

    def set_push_to_talk(self, pressed: bool) -> None:
        self._push_to_talk = pressed

    async def run(self) -> None:
        """Read, process and send frames until the source ends or :meth:`stop`."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                reading = asyncio.ensure_future(self._source.read_frame())
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    break
                frame = reading.result()
                if frame is None:
                    break
                self.process_frame(frame, loop.time())
        finally:
            stopping.cancel()

    def stop(self) -> None:
        self._stop.set()

    def process_frame(self, frame: npt.NDArray[np.float32], capture_time: float) -> None:
        """Handle one frame read at ``capture_time`` (loop clock). :meth:`run` calls this;
        it is public so a caller with its own clock (a benchmark, a test) can drive it."""
        self._frames_read += 1
        samples = np.asarray(frame, dtype=np.float32)
        if samples.shape != (self.samples_per_frame,) or not np.all(np.isfinite(samples)):
            self._frames_invalid += 1
            self._timestamp += self.samples_per_frame
            self._speaking = False
            return
        samples = np.clip(samples, -1.0, 1.0)
        self._level_db = level_db(samples)
        speech_probability: float | None = None
        if self.noise_suppression:
            if self._suppressor is None:
                self._suppressor = NoiseSuppressor()
            samples, speech_probability = self._suppressor.process(samples)
        voiced = self._vad.update(samples, speech_probability)
        wanted = voiced if self.mode == "vad" else self._push_to_talk
        self._speaking = wanted and not self.muted
        timestamp = self._timestamp
        self._timestamp += self.samples_per_frame
        if not self._speaking:
            self._frames_silent += 1
            return
        payload = self._encoder.encode(samples)
        self._frames_sent += 1
        self._on_packet(payload, timestamp, capture_time)

"""The receiving half of a voice call: decrypted Opus packets in, one stereo stream out.

Each speaker gets a jitter buffer and a decoder on their first packet. A ticker on the loop
clock fires once per frame (deadline based, so it never drifts against the senders) and
for every speaker pops the buffer, decodes or conceals, then mixes and writes exactly one
frame to the sink, silence included, so the output device is never starved.

A bad packet from one speaker costs that speaker one concealed frame and a counter tick;
nobody else hears a thing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from .audio import AudioSink, Frame, FrameClock, loop_time, samples_per_frame
from .jitter import JitterBuffer, JitterStats
from .mixer import Mixer
from .opus import MAX_PACKET_BYTES, OpusDecoder, OpusError

SPEAKING_WINDOW_S = 0.25
RTP_TIMESTAMP_MODULUS = 2**32


@dataclass(frozen=True, slots=True)
class PlaybackStats:
    ticks: int
    frames_decoded: int
    frames_concealed: int
    malformed: int
    jitter: dict[int, JitterStats] = field(default_factory=dict)
    """Each speaker's jitter buffer."""


class _Speaker:
    def __init__(self, frame_ms: int) -> None:
        self.jitter = JitterBuffer(frame_ms=frame_ms)
        self.decoder = OpusDecoder()
        self.last_audio_at: float | None = None
        self._last_timestamp: int | None = None

    def extend_timestamp(self, timestamp: int) -> int:
        """RTP carries timestamps modulo 2**32 (they wrap within a day); map a 32-bit one
        to the sample count nearest the previous packet's, so the jitter buffer only ever
        sees a growing count."""
        previous = self._last_timestamp
        if previous is None or timestamp >= RTP_TIMESTAMP_MODULUS:
            extended = timestamp
        else:
            half = RTP_TIMESTAMP_MODULUS // 2
            step = (timestamp - previous + half) % RTP_TIMESTAMP_MODULUS - half
            extended = previous + step if previous + step >= 0 else timestamp
        self._last_timestamp = extended
        return extended


class PlaybackPipeline:
    def __init__(self, sink: AudioSink, *, frame_ms: int = 20, spatial: bool = False) -> None:
        self.frame_ms = frame_ms
        self.samples_per_frame = samples_per_frame(frame_ms)
        self.deafened = False
        self._sink = sink
        self._mixer = Mixer(frame_ms=frame_ms)
        self._mixer.spatial = spatial
        self._speakers: dict[int, _Speaker] = {}
        self._silence = np.zeros((self.samples_per_frame, 2), dtype=np.float32)
        self._last_tick: float | None = None
        self._ticks = 0
        self._frames_decoded = 0
        self._frames_concealed = 0
        self._malformed = 0
        self._stop = asyncio.Event()

    @property
    def spatial(self) -> bool:
        return self._mixer.spatial

    @spatial.setter
    def spatial(self, enabled: bool) -> None:
        self._mixer.spatial = enabled

    @property
    def stats(self) -> PlaybackStats:
        return PlaybackStats(
            ticks=self._ticks,
            frames_decoded=self._frames_decoded,
            frames_concealed=self._frames_concealed,
            malformed=self._malformed,
            jitter={sid: speaker.jitter.stats for sid, speaker in self._speakers.items()},
        )

    def receive(
        self, speaker_id: int, payload: bytes, timestamp: int, arrival: float | None = None
    ) -> None:
        """Queue one decrypted Opus packet; ``arrival`` defaults to now on the loop clock."""
        if not isinstance(payload, bytes | bytearray):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        if not 0 < len(payload) <= MAX_PACKET_BYTES or timestamp < 0:
            self._malformed += 1
            return
        speaker = self._speakers.get(speaker_id)
        if speaker is None:
            speaker = self._speakers[speaker_id] = _Speaker(self.frame_ms)
        speaker.jitter.put(
            speaker.extend_timestamp(timestamp),
            bytes(payload),
            loop_time() if arrival is None else arrival,
        )

    def remove_speaker(self, speaker_id: int) -> None:
        self._speakers.pop(speaker_id, None)
        self._mixer.forget(speaker_id)

    def set_volume(self, speaker_id: int, gain: float) -> None:
        self._mixer.set_volume(speaker_id, gain)

    def set_position(self, speaker_id: int, pan: float) -> None:
        self._mixer.set_position(speaker_id, pan)

    def speakers(self) -> set[int]:
        return set(self._speakers)

    def speaking(self, speaker_id: int) -> bool:
        """Whether this speaker's voice was played within the last quarter second."""
        speaker = self._speakers.get(speaker_id)
        if speaker is None or speaker.last_audio_at is None or self._last_tick is None:
            return False
        return self._last_tick - speaker.last_audio_at <= SPEAKING_WINDOW_S

    async def run(self) -> None:
        """Tick once per frame until :meth:`stop`."""
        clock = FrameClock(self.frame_ms)
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                ticking = asyncio.ensure_future(clock.wait())
                await asyncio.wait({ticking, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not ticking.done():
                    ticking.cancel()
                    break
                self.tick(ticking.result())
        finally:
            stopping.cancel()

    def stop(self) -> None:
        self._stop.set()

    def tick(self, now: float) -> None:
        """Produce and write one output frame for playout time ``now`` (loop clock).
        :meth:`run` calls this; it is public so a caller with its own clock can drive it."""
        self._ticks += 1
        self._last_tick = now
        frames: dict[int, Frame] = {}
        for speaker_id, speaker in self._speakers.items():
            audio = self._next_audio(speaker, now)
            if audio is not None:
                frames[speaker_id] = audio
        if self.deafened or not frames:
            self._sink.write(self._silence.copy())
        else:
            self._sink.write(self._mixer.mix(frames))

    def _next_audio(self, speaker: _Speaker, now: float) -> Frame | None:
        kind, payload = speaker.jitter.pop(now)
        if kind == "silence":
            return None
        if kind == "frame":
            assert payload is not None
            try:
                audio = speaker.decoder.decode(payload)
            except OpusError:
                self._malformed += 1
            else:
                if len(audio) == self.samples_per_frame and np.all(np.isfinite(audio)):
                    self._frames_decoded += 1
                    speaker.last_audio_at = now
                    return audio
                self._malformed += 1
        self._frames_concealed += 1
        try:
            return speaker.decoder.conceal(self.samples_per_frame)
        except OpusError:
            return None

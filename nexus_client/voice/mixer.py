"""Mixes the speakers' mono frames into one stereo frame.

Panning follows the constant-power law (left = cos θ, right = sin θ), so a voice keeps its
loudness as it moves; with spatial audio off every voice sits in the centre at full level.
Speakers with no chosen position get distinct automatic ones, spread from the centre out
and never hard left or right (a voice in one ear only tires the listener).

The sum goes through a soft limiter: linear up to :data:`LIMITER_KNEE`, then bent with
``tanh`` towards ±1 so several loud voices at once compress instead of clipping.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .audio import Frame, samples_per_frame

MAX_GAIN = 2.0
LIMITER_KNEE = 0.8
# Where automatic positions may go: keeps clear of the extremes.
AUTO_PAN_SPREAD = 0.8

Stereo = npt.NDArray[np.float32]


def auto_pan(order: int) -> float:
    """The position for the ``order``-th speaker to appear: 0, -½, +½, -¼, +¼, -¾, +¾, …
    (a van der Corput sequence folded around the centre, scaled by the spread)."""
    if order == 0:
        return 0.0
    index = (order + 1) // 2
    fraction, denominator = 0.0, 1.0
    while index:
        denominator *= 2
        index, bit = divmod(index, 2)
        fraction += bit / denominator
    side = -1.0 if order % 2 else 1.0
    return side * fraction * AUTO_PAN_SPREAD


def soft_limit(mixed: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    magnitude = np.abs(mixed)
    over = magnitude > LIMITER_KNEE
    if not np.any(over):
        return mixed
    headroom = 1.0 - LIMITER_KNEE
    bent = LIMITER_KNEE + headroom * np.tanh((magnitude[over] - LIMITER_KNEE) / headroom)
    limited = mixed.copy()
    limited[over] = np.sign(mixed[over]) * np.minimum(bent, 1.0)
    return limited


class Mixer:
    def __init__(self, *, frame_ms: int = 20) -> None:
        self.frame_ms = frame_ms
        self.samples_per_frame = samples_per_frame(frame_ms)
        self.spatial = False
        self._volumes: dict[int, float] = {}
        self._positions: dict[int, float] = {}
        self._auto_positions: dict[int, float] = {}
        self._next_auto = 0

    def set_volume(self, speaker: int, gain: float) -> None:
        if not (0.0 <= gain <= MAX_GAIN):
            raise ValueError(f"volume of speaker {speaker} must be within 0.0..2.0, not {gain!r}")
        self._volumes[speaker] = float(gain)

    def volume(self, speaker: int) -> float:
        return self._volumes.get(speaker, 1.0)

    def set_position(self, speaker: int, pan: float) -> None:
        if not (-1.0 <= pan <= 1.0):
            raise ValueError(f"pan of speaker {speaker} must be within -1.0..1.0, not {pan!r}")
        self._positions[speaker] = float(pan)

    def position(self, speaker: int) -> float:
        """Where the speaker is heard (-1 left … 1 right); 0 while spatial audio is off."""
        if not self.spatial:
            return 0.0
        if speaker in self._positions:
            return self._positions[speaker]
        if speaker not in self._auto_positions:
            self._auto_positions[speaker] = auto_pan(self._next_auto)
            self._next_auto += 1
        return self._auto_positions[speaker]

    def forget(self, speaker: int) -> None:
        """Drop a departed speaker's volume and positions."""
        self._volumes.pop(speaker, None)
        self._positions.pop(speaker, None)
        self._auto_positions.pop(speaker, None)

    def mix(self, frames: dict[int, Frame]) -> Stereo:
        mixed = np.zeros((self.samples_per_frame, 2), dtype=np.float32)
        for speaker in sorted(frames):
            samples = np.asarray(frames[speaker], dtype=np.float32)
            if samples.shape != (self.samples_per_frame,):
                raise ValueError(
                    f"frame of speaker {speaker} must hold {self.samples_per_frame} mono "
                    f"samples, got shape {samples.shape}"
                )
            left, right = self._channel_gains(speaker)
            mixed[:, 0] += samples * left
            mixed[:, 1] += samples * right
        return soft_limit(mixed)

    def _channel_gains(self, speaker: int) -> tuple[float, float]:
        volume = self.volume(speaker)
        if not self.spatial:
            return volume, volume
        angle = (self.position(speaker) + 1.0) * math.pi / 4
        return volume * math.cos(angle), volume * math.sin(angle)

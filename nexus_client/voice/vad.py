"""Voice activity: decides, frame by frame, whether the user is talking.

An energy gate alone opens on a slammed door or a fan turned up; RNNoise's speech
probability alone opens on quiet breathing. A frame counts as voiced when it is loud enough
*and*, when a probability is given, probably speech. Opening takes a single voiced frame so
the first syllable goes out whole; closing waits ``hangover_ms`` of unvoiced frames so word
endings and short pauses are not clipped.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .audio import samples_per_frame

LEVEL_FLOOR_DB = -100.0
SPEECH_PROBABILITY_THRESHOLD = 0.5


def level_db(frame: npt.NDArray[np.float32]) -> float:
    """RMS level in dBFS (a full-scale square wave is 0 dB), never below -100."""
    samples = np.asarray(frame, dtype=np.float32)
    if samples.size == 0:
        return LEVEL_FLOOR_DB
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    if mean_square <= 0.0 or not math.isfinite(mean_square):
        return LEVEL_FLOOR_DB
    return max(LEVEL_FLOOR_DB, 10.0 * math.log10(mean_square))


class VoiceActivityDetector:
    def __init__(
        self, *, threshold_db: float = -45.0, hangover_ms: int = 300, frame_ms: int = 20
    ) -> None:
        samples_per_frame(frame_ms)
        if hangover_ms < 0:
            raise ValueError(f"hangover_ms must not be negative, not {hangover_ms!r}")
        self.threshold_db = threshold_db
        self.hangover_frames = math.ceil(hangover_ms / frame_ms)
        self._frames_left = 0
        self.level_db = LEVEL_FLOOR_DB

    @property
    def speaking(self) -> bool:
        return self._frames_left > 0

    def update(
        self, frame: npt.NDArray[np.float32], speech_probability: float | None = None
    ) -> bool:
        """Feed one frame; return whether the user counts as speaking after it."""
        self.level_db = level_db(frame)
        voiced = self.level_db > self.threshold_db
        if speech_probability is not None:
            voiced = voiced and speech_probability >= SPEECH_PROBABILITY_THRESHOLD
        if voiced:
            # One for this frame, then the hangover.
            self._frames_left = self.hangover_frames + 1
        elif self._frames_left > 0:
            self._frames_left -= 1
        return self.speaking

    def reset(self) -> None:
        self._frames_left = 0

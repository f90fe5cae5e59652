"""Noise suppression with RNNoise, frame in, frame out.

RNNoise works on 10 ms (480-sample) frames at 48 kHz, our capture rate, so a frame is
processed in place, 10 ms at a time, with no resampling and no buffering of our own. The
only delay is the network's own look-ahead: output sample ``k`` is input sample
``k - 960``, i.e. :data:`RNNOISE_DELAY_MS` (measured against this build of the library and
checked by the tests).

pyrnnoise's ``RNNoise`` class routes audio through an FFmpeg filter graph to resample and
re-frame it; we call the library's frame function directly instead, which adds nothing.
"""

from __future__ import annotations

import ctypes
import weakref

import numpy as np
import numpy.typing as npt
from pyrnnoise import rnnoise

from .audio import Frame, samples_per_frame

RNNOISE_FRAME_SAMPLES = 480
RNNOISE_DELAY_MS = 20.0
# RNNoise expects 16-bit sample magnitudes in float form.
_INT16_SCALE = 32768.0


class NoiseSuppressor:
    """Suppresses stationary and non-stationary noise in 10 or 20 ms mono frames."""

    delay_ms = RNNOISE_DELAY_MS

    def __init__(self) -> None:
        self._state = rnnoise.create()
        self._finalizer = weakref.finalize(self, rnnoise.destroy, self._state)
        self._work = np.zeros(samples_per_frame(20), dtype=np.float32)

    def process(self, frame: npt.NDArray[np.float32]) -> tuple[Frame, float]:
        """Return the denoised frame and the probability (0..1) that it holds speech. For a
        20 ms frame that is the higher of its two halves, so a word starting halfway through
        still counts."""
        samples = np.asarray(frame, dtype=np.float32)
        if samples.shape not in ((samples_per_frame(10),), (samples_per_frame(20),)):
            raise ValueError(
                f"NoiseSuppressor takes 10 or 20 ms mono frames (480 or 960 samples), "
                f"got shape {samples.shape}"
            )
        n = len(samples)
        work = self._work[:n]
        np.multiply(samples, _INT16_SCALE, out=work)
        probability = 0.0
        for start in range(0, n, RNNOISE_FRAME_SAMPLES):
            chunk = work[start : start + RNNOISE_FRAME_SAMPLES]
            pointer = chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            probability = max(
                probability, float(rnnoise.lib.rnnoise_process_frame(self._state, pointer, pointer))
            )
        denoised = np.clip(work / _INT16_SCALE, -1.0, 1.0).astype(np.float32)
        return denoised, probability

    def reset(self) -> None:
        """Forget the noise profile (e.g. after switching microphones)."""
        self._finalizer()
        self._state = rnnoise.create()
        self._finalizer = weakref.finalize(self, rnnoise.destroy, self._state)

"""Real speech for voice tests: espeak-ng renders a sentence, PyAV brings it to 48 kHz."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from nexus_client.voice.audio import SAMPLE_RATE

SENTENCE = (
    "Voice channels carry speech from one member to the others. "
    "The quick brown fox jumps over the lazy dog, twice, and then sits down."
)


def make_speech_wav(path: Path, text: str = SENTENCE) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path`` (a WAV at espeak's own rate)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def load_mono_48k(path: Path) -> npt.NDArray[np.float32]:
    """Decode any audio file to 48 kHz mono float32 in [-1, 1]."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[npt.NDArray[np.float32]] = []
    with av.open(str(path)) as container:
        for decoded in container.decode(audio=0):
            chunks.extend(_samples(f) for f in resampler.resample(decoded))
    chunks.extend(_samples(f) for f in resampler.resample(None))
    return np.clip(np.concatenate(chunks), -1.0, 1.0).astype(np.float32)


def _samples(frame: av.AudioFrame) -> npt.NDArray[np.float32]:
    return np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)


def speech_samples(directory: Path, text: str = SENTENCE) -> npt.NDArray[np.float32]:
    return load_mono_48k(make_speech_wav(directory / "speech.wav", text))

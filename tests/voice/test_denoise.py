"""RNNoise on real (synthesised) speech: it must make noisy speech measurably cleaner.

Quality is measured against the known clean signal: after removing RNNoise's delay, the
output is projected onto the clean speech; what the projection does not explain counts
as noise (residual noise and distortion alike), so the figure cannot be flattered by
simply turning everything down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from nexus_client.voice.audio import SAMPLE_RATE
from nexus_client.voice.denoise import NoiseSuppressor

from .speech import speech_samples

FRAME = 960
INPUT_SNR_DB = 5.0


@pytest.fixture(scope="module")
def clean_speech(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.float32]:
    speech = speech_samples(
        Path(tmp_path_factory.mktemp("speech")),
        "Voice channels carry speech from one member to the others.",
    )
    # Half a second of lead-in lets RNNoise learn the noise before the first word.
    lead_in = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    signal = np.concatenate([lead_in, speech * 0.5])
    return signal[: len(signal) // FRAME * FRAME]


def pink_noise(samples: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.fft.rfftfreq(samples)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, samples)


def mix_at_snr(
    clean: npt.NDArray[np.float32], noise: npt.NDArray[np.float64], snr_db: float
) -> npt.NDArray[np.float32]:
    # Power over the whole clip, the same definition :func:`snr_db` measures with.
    speech_power = np.mean(np.square(clean, dtype=np.float64))
    noise *= np.sqrt(speech_power / np.mean(np.square(noise)) / 10 ** (snr_db / 10))
    return np.clip(clean + noise, -1.0, 1.0).astype(np.float32)


def denoise(signal: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], list[float]]:
    suppressor = NoiseSuppressor()
    frames, probabilities = [], []
    for start in range(0, len(signal), FRAME):
        frame, probability = suppressor.process(signal[start : start + FRAME])
        frames.append(frame)
        probabilities.append(probability)
    return np.concatenate(frames), probabilities


def snr_db(output: npt.NDArray[np.float32], clean: npt.NDArray[np.float32], delay: int) -> float:
    """Speech-to-noise ratio of ``output`` against ``clean`` delayed by ``delay`` samples."""
    reference = clean[: len(clean) - delay].astype(np.float64)
    aligned = output[delay:].astype(np.float64)
    gain = np.dot(aligned, reference) / np.dot(reference, reference)
    residual = aligned - gain * reference
    return float(10 * np.log10(np.sum(np.square(gain * reference)) / np.sum(np.square(residual))))


def best_delay(output: npt.NDArray[np.float32], clean: npt.NDArray[np.float32]) -> int:
    return max(
        range(0, 2 * FRAME + 1, 48),
        key=lambda d: float(np.dot(output[d:], clean[: len(clean) - d])),
    )


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_rnnoise_raises_the_speech_to_noise_ratio(
    clean_speech: npt.NDArray[np.float32], colour: str
) -> None:
    rng = np.random.default_rng(2024)
    raw_noise = rng.standard_normal(len(clean_speech))
    noise = raw_noise if colour == "white" else pink_noise(len(clean_speech), rng)
    noisy = mix_at_snr(clean_speech, noise, INPUT_SNR_DB)

    denoised, _ = denoise(noisy)
    delay = best_delay(denoised, clean_speech)
    before = snr_db(noisy, clean_speech, 0)
    after = snr_db(denoised, clean_speech, delay)
    print(
        f"\n{colour} noise: SNR {before:.1f} dB in, {after:.1f} dB out after RNNoise "
        f"(+{after - before:.1f} dB), delay {delay / 48:.1f} ms"
    )
    assert before == pytest.approx(INPUT_SNR_DB, abs=0.5)
    assert after - before >= 3.0


def test_the_stated_delay_is_the_measured_one(clean_speech: npt.NDArray[np.float32]) -> None:
    denoised, _ = denoise(clean_speech)
    assert best_delay(denoised, clean_speech) == round(NoiseSuppressor.delay_ms * 48)


def test_speech_probability_tells_speech_from_noise(
    clean_speech: npt.NDArray[np.float32],
) -> None:
    rng = np.random.default_rng(5)
    noisy = mix_at_snr(clean_speech, rng.standard_normal(len(clean_speech)), 10.0)
    _, probabilities = denoise(noisy)
    voiced = [
        np.mean(np.square(clean_speech[i * FRAME : (i + 1) * FRAME])) > 1e-3
        for i in range(len(probabilities))
    ]
    on_speech = np.mean([p for p, v in zip(probabilities, voiced, strict=True) if v])
    lead_in = np.mean(probabilities[5:25])  # the noise-only half second
    assert on_speech > 0.5
    assert lead_in < 0.2


def test_ten_millisecond_frames_and_bad_frames() -> None:
    suppressor = NoiseSuppressor()
    frame, probability = suppressor.process(np.zeros(480, dtype=np.float32))
    assert frame.shape == (480,) and frame.dtype == np.float32
    assert 0.0 <= probability <= 1.0
    with pytest.raises(ValueError, match="480 or 960"):
        suppressor.process(np.zeros(500, dtype=np.float32))

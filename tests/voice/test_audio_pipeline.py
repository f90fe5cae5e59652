"""The client's audio path end to end: sources, capture (VAD, push-to-talk, mute, Opus),
playback (jitter buffer, decoding, mixing) and sinks, all real, in one process.

Most tests drive both pipelines with an invented clock (``process_frame`` / ``tick``) so
positions in the output are exact; one runs them on the event loop's clock as the app does.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from nexus_client.voice.audio import (
    SAMPLE_RATE,
    ArraySource,
    AudioDeviceError,
    BufferSink,
    FileSource,
    GeneratorSource,
    MicrophoneSource,
    NullSink,
    SpeakerSink,
    ToneSource,
    list_input_devices,
    list_output_devices,
    samples_per_frame,
)
from nexus_client.voice.capture import CaptureMode, CapturePipeline
from nexus_client.voice.mixer import Mixer
from nexus_client.voice.opus import OpusDecoder, OpusEncoder, OpusError
from nexus_client.voice.playback import PlaybackPipeline
from nexus_client.voice.vad import VoiceActivityDetector, level_db

from .speech import load_mono_48k, make_speech_wav

FRAME = 960
TICK = 0.02
LINK_DELAY = 0.003
OPUS_DELAY = 306  # libopus' voip look-ahead as measured, ~6.4 ms


def tone(freq_hz: float, samples: int, amplitude: float = 0.5) -> npt.NDArray[np.float32]:
    t = np.arange(samples) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def marker(samples: int = 4800) -> npt.NDArray[np.float32]:
    """A 1 kHz burst with soft edges, easy to find by cross-correlation."""
    return (tone(1000, samples) * np.hanning(samples)).astype(np.float32)


def find(haystack: npt.NDArray[np.float32], needle: npt.NDArray[np.float32]) -> tuple[int, float]:
    """Where ``needle`` sits in ``haystack`` and how well it matches (normalised, 0..1)."""
    correlation = np.correlate(haystack, needle, "valid")
    position = int(np.argmax(np.abs(correlation)))
    window = haystack[position : position + len(needle)]
    norm = float(np.linalg.norm(window) * np.linalg.norm(needle)) or 1.0
    return position, float(abs(correlation[position]) / norm)


def rms_db(samples: npt.NDArray[np.float32]) -> float:
    return float(10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-20))


class Call:
    """One sender's capture pipeline wired straight into a listener's playback pipeline,
    on an invented clock: frame k is read at k * 20 ms, arrives 3 ms later, and the
    listener's ticks fall 10 ms after each read. Noise suppression is off unless asked
    for: RNNoise rightly treats a test tone as noise."""

    def __init__(
        self,
        signal: npt.NDArray[np.float32],
        *,
        speaker_id: int = 1,
        spatial: bool = False,
        noise_suppression: bool = False,
        mode: CaptureMode = "vad",
    ) -> None:
        self.sink = BufferSink()
        self.playback = PlaybackPipeline(self.sink, spatial=spatial)
        self.source = ArraySource(signal, realtime=False)
        self.speaker_id = speaker_id
        self.packets: list[tuple[bytes, int, float]] = []
        self.capture = CapturePipeline(
            self.source, self.deliver, noise_suppression=noise_suppression, mode=mode
        )

    def deliver(self, payload: bytes, timestamp: int, capture_time: float) -> None:
        self.packets.append((payload, timestamp, capture_time))
        self.playback.receive(self.speaker_id, payload, timestamp, capture_time + LINK_DELAY)

    async def run(self, trailing_ticks: int = 10) -> npt.NDArray[np.float32]:
        k = 0
        while (frame := await self.source.read_frame()) is not None:
            self.capture.process_frame(frame, k * TICK)
            self.playback.tick(k * TICK + TICK / 2)
            k += 1
        for extra in range(trailing_ticks):
            self.playback.tick((k + extra) * TICK + TICK / 2)
        return self.sink.samples()


def signal_with_marker(at: int, total: int = SAMPLE_RATE) -> npt.NDArray[np.float32]:
    signal = np.zeros(total, dtype=np.float32)
    burst = marker()
    signal[at : at + len(burst)] = burst
    return signal


# --- frames, sources, devices -------------------------------------------------------------


def test_frame_sizes() -> None:
    assert samples_per_frame(10) == 480
    assert samples_per_frame(20) == 960
    with pytest.raises(ValueError, match="frame_ms"):
        samples_per_frame(15)


def test_device_listing_is_empty_and_opening_a_device_fails_clearly() -> None:
    assert list_input_devices() == []
    assert list_output_devices() == []
    with pytest.raises(AudioDeviceError, match="microphone"):
        MicrophoneSource()
    with pytest.raises(AudioDeviceError, match="speaker"):
        SpeakerSink(3)


async def test_tone_source_plays_its_frequency_for_its_duration() -> None:
    source = ToneSource(440, amplitude=0.25, duration_s=0.5, realtime=False)
    frames = []
    while (frame := await source.read_frame()) is not None:
        frames.append(frame)
    assert len(frames) == 25
    samples = np.concatenate(frames)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * SAMPLE_RATE / len(samples) == pytest.approx(440, abs=3)
    assert np.max(np.abs(samples)) == pytest.approx(0.25, abs=0.01)
    assert await source.read_frame() is None


async def test_array_and_generator_sources() -> None:
    array = ArraySource(np.ones(FRAME + 10, dtype=np.float32) * 0.1, realtime=False)
    first, second = await array.read_frame(), await array.read_frame()
    assert first is not None and second is not None
    assert second[:10].tolist() == pytest.approx([0.1] * 10)
    assert not np.any(second[10:])  # the tail is padded with silence
    assert await array.read_frame() is None

    generated = GeneratorSource(
        lambda i: np.full(FRAME, i / 10, dtype=np.float32) if i < 3 else None, realtime=False
    )
    values = []
    while (frame := await generated.read_frame()) is not None:
        values.append(float(frame[0]))
    assert values == pytest.approx([0.0, 0.1, 0.2])

    wrong = GeneratorSource(lambda i: np.zeros(100), realtime=False)
    with pytest.raises(ValueError, match="960 samples"):
        await wrong.read_frame()


async def test_file_source_decodes_and_resamples_to_48k_mono(tmp_path: Path) -> None:
    wav = make_speech_wav(tmp_path / "hello.wav", "Hello there.")
    expected = load_mono_48k(wav)
    source = FileSource(wav, realtime=False)
    frames = []
    while (frame := await source.read_frame()) is not None:
        frames.append(frame)
    decoded = np.concatenate(frames)
    assert len(decoded) == -(-len(expected) // FRAME) * FRAME
    assert np.allclose(decoded[: len(expected)], expected, atol=1e-6)

    looping = FileSource(wav, loop=True, realtime=False)
    for _ in range(len(frames) * 2 + 5):
        assert await looping.read_frame() is not None

    with pytest.raises(FileNotFoundError):
        FileSource(tmp_path / "missing.wav")


# --- capture → playback -------------------------------------------------------------------


async def test_marker_tone_crosses_capture_and_playback_intact_and_on_time() -> None:
    at = 19_200 + 123  # 0.4 s in, not on a frame boundary
    call = Call(signal_with_marker(at))
    output = await call.run()

    position, match = find(output[:, 0], marker())
    assert match > 0.95
    # One frame in the jitter buffer (its 20 ms minimum) plus Opus' look-ahead, no more.
    latency = position - at
    assert FRAME + OPUS_DELAY - 48 <= latency <= FRAME + OPUS_DELAY + 48
    assert np.allclose(output[:, 0], output[:, 1])  # spatial off: centred

    jitter = call.playback.stats.jitter[1]
    assert (jitter.lost, jitter.late, jitter.duplicates) == (0, 0, 0)
    sent = [timestamp for _, timestamp, _ in call.packets]
    assert sent == list(range(sent[0], sent[-1] + FRAME, FRAME))  # no gap in the talk spurt
    assert call.playback.stats.frames_decoded == len(sent)


async def test_pipelines_on_the_loop_clock_carry_the_marker() -> None:
    at = 9_600 + 77
    sink = BufferSink()
    playback = PlaybackPipeline(sink)
    capture_times: dict[int, float] = {}

    def deliver(payload: bytes, timestamp: int, capture_time: float) -> None:
        capture_times[timestamp] = capture_time
        playback.receive(5, payload, timestamp)

    capture = CapturePipeline(
        ArraySource(signal_with_marker(at, total=SAMPLE_RATE // 2)),
        deliver,
        noise_suppression=False,
    )
    ticker = asyncio.create_task(playback.run())
    await capture.run()
    await asyncio.sleep(0.3)  # the last packets play out, then a little silence
    playback.stop()
    await ticker

    output = sink.samples()[:, 0]
    position, match = find(output, marker())
    assert match > 0.95
    jitter = playback.stats.jitter[5]
    assert (jitter.lost, jitter.late) == (0, 0)
    assert playback.stats.frames_decoded == capture.stats.frames_sent
    marker_frame = (at // FRAME) * FRAME
    written_at = sink.frames[(position + at % FRAME) // FRAME][0]
    print(
        f"\nloop-clock run: marker read at {capture_times[marker_frame]:.3f} s, "
        f"played at {written_at:.3f} s: capture-to-output "
        f"{(written_at - capture_times[marker_frame]) * 1000:.1f} ms "
        f"(+{OPUS_DELAY / 48:.1f} ms Opus look-ahead inside the frame)"
    )


async def test_silence_sends_nothing_and_speech_resumes_with_a_timestamp_gap() -> None:
    signal = np.zeros(SAMPLE_RATE, dtype=np.float32)
    signal[24_000:28_800] = tone(300, 4800)
    call = Call(signal)
    await call.run()
    stats = call.capture.stats
    assert stats.frames_read == 50
    first_timestamp = call.packets[0][1]
    assert first_timestamp == 24_000  # the 25 silent frames before still count
    # 5 voiced frames, then the hangover (300 ms = 15 frames) keeps the tail of the word.
    assert stats.frames_sent == 5 + 15
    assert stats.frames_silent == 50 - stats.frames_sent


async def test_muted_sends_nothing() -> None:
    call = Call(tone(300, SAMPLE_RATE // 2))
    call.capture.muted = True
    await call.run()
    assert call.packets == []
    assert call.capture.stats.frames_silent == 25
    assert not call.capture.speaking
    assert call.capture.level_db > -10  # the meter still shows the voice


async def test_push_to_talk_sends_only_while_pressed() -> None:
    signal = tone(300, SAMPLE_RATE // 2)
    call = Call(signal, mode="ptt")
    source = call.source
    k = 0
    while (frame := await source.read_frame()) is not None:
        call.capture.set_push_to_talk(10 <= k < 15)
        call.capture.process_frame(frame, k * TICK)
        k += 1
    assert [timestamp // FRAME for _, timestamp, _ in call.packets] == [10, 11, 12, 13, 14]


async def test_push_to_talk_sends_quiet_frames_too() -> None:
    call = Call(np.zeros(FRAME * 5, dtype=np.float32), mode="ptt")
    call.capture.set_push_to_talk(True)
    await call.run()
    assert len(call.packets) == 5


async def test_deafened_output_is_silent_while_buffers_still_drain() -> None:
    call = Call(tone(300, SAMPLE_RATE // 2))
    call.playback.deafened = True
    output = await call.run(trailing_ticks=2)
    assert len(output) == 27 * FRAME
    assert not np.any(output)
    assert call.playback.stats.frames_decoded == 25
    assert call.playback.stats.jitter[1].buffered == 0
    assert call.playback.speaking(1)  # the UI still shows who is talking
    call.playback.deafened = False
    call.playback.receive(1, OpusEncoder().encode(tone(300, FRAME)), 30 * FRAME, 0.6)
    call.playback.tick(0.64)
    assert np.any(call.sink.samples()[-FRAME:])


async def test_speaking_follows_the_last_quarter_second_of_audio() -> None:
    call = Call(tone(300, FRAME * 10))
    await call.run(trailing_ticks=0)
    assert call.playback.speaking(1)
    assert not call.playback.speaking(2)
    for extra in range(30):
        call.playback.tick(2.0 + extra * TICK)
    assert not call.playback.speaking(1)


async def test_volume_scales_one_speaker() -> None:
    loud = await Call(tone(300, SAMPLE_RATE // 2)).run()
    quiet_call = Call(tone(300, SAMPLE_RATE // 2))
    quiet_call.playback.set_volume(1, 0.5)
    quiet = await quiet_call.run()
    assert rms_db(quiet) - rms_db(loud) == pytest.approx(-6.02, abs=0.3)
    with pytest.raises(ValueError, match=r"0\.0\.\.2\.0"):
        quiet_call.playback.set_volume(1, 2.5)


async def test_a_speaker_panned_left_is_heard_on_the_left() -> None:
    call = Call(tone(300, SAMPLE_RATE // 2), spatial=True)
    call.playback.set_position(1, -0.8)
    output = await call.run()
    assert len(output) > 0
    left, right = rms_db(output[:, 0]), rms_db(output[:, 1])
    assert left - right > 10


def test_spatial_mixing_gives_unplaced_speakers_distinct_positions() -> None:
    mixer = Mixer()
    mixer.spatial = True
    frames = {sid: tone(300, FRAME) for sid in (11, 12, 13)}
    mixer.mix(frames)
    positions = [mixer.position(sid) for sid in (11, 12, 13)]
    assert len(set(positions)) == 3
    assert all(-1.0 < p < 1.0 for p in positions)
    # Each voice keeps its place from frame to frame.
    assert [mixer.position(sid) for sid in (11, 12, 13)] == positions
    # Constant power: a voice is as loud wherever it is placed.
    for sid in frames:
        solo = mixer.mix({sid: frames[sid] * 0.1})
        assert np.sum(np.square(solo)) == pytest.approx(np.sum(np.square(frames[sid] * 0.1)))
    mixer.spatial = False
    assert [mixer.position(sid) for sid in (11, 12, 13)] == [0.0, 0.0, 0.0]


def test_mixer_soft_limits_instead_of_clipping() -> None:
    mixer = Mixer()
    frames = {sid: tone(300, FRAME, amplitude=0.9) for sid in range(4)}
    for sid in frames:
        mixer.set_volume(sid, 2.0)
    mixed = mixer.mix(frames)
    assert np.max(np.abs(mixed)) <= 1.0
    assert np.max(np.abs(mixed)) > 0.95
    # Quiet audio passes untouched.
    quiet = mixer.mix({0: tone(300, FRAME, amplitude=0.1)})
    assert np.allclose(quiet[:, 0], tone(300, FRAME, amplitude=0.2))
    with pytest.raises(ValueError, match="speaker 9"):
        mixer.mix({9: np.zeros(10, dtype=np.float32)})
    with pytest.raises(ValueError, match="pan"):
        mixer.set_position(1, 1.5)


async def test_a_malformed_packet_is_dropped_and_counted_and_the_stream_goes_on() -> None:
    sink = BufferSink()
    playback = PlaybackPipeline(sink)
    encoder = OpusEncoder()
    signal = tone(300, FRAME * 20)
    for k in range(20):
        payload = encoder.encode(signal[k * FRAME : (k + 1) * FRAME])
        if k == 8:
            payload = b"\xff\xff\xff"  # not Opus
        if k == 9:
            payload = b""
        playback.receive(1, payload, k * FRAME, k * TICK)
        playback.tick(k * TICK + TICK / 2)
    for k in range(20, 25):
        playback.tick(k * TICK + TICK / 2)
    stats = playback.stats
    assert stats.malformed == 2
    assert stats.frames_decoded == 18
    output = sink.samples()[:, 0]
    # The frames after the bad ones are played: the last 200 ms hold the tone.
    assert rms_db(output[-10 * FRAME : -5 * FRAME]) > -12


def test_rtp_timestamps_that_wrap_around_play_on_in_order() -> None:
    playback = PlaybackPipeline(BufferSink())
    encoder = OpusEncoder()
    start = 2**32 - 3 * FRAME
    for k in range(8):
        timestamp = (start + k * FRAME) % 2**32
        playback.receive(1, encoder.encode(tone(300, FRAME)), timestamp, k * TICK)
        playback.tick(k * TICK + TICK / 2)
    jitter = playback.stats.jitter[1]
    assert (jitter.late, jitter.lost) == (0, 0)
    assert playback.stats.frames_decoded == 8


def test_opus_round_trip_and_concealment() -> None:
    encoder, decoder = OpusEncoder(frame_ms=10, bitrate=32_000), OpusDecoder()
    signal = tone(440, 480 * 50)
    decoded = np.concatenate(
        [decoder.decode(encoder.encode(signal[i : i + 480])) for i in range(0, len(signal), 480)]
    )
    lag = max(range(200, 500), key=lambda d: float(np.dot(decoded[d:], signal[: len(signal) - d])))
    assert abs(lag - OPUS_DELAY) < 24
    error = decoded[lag:] - signal[: len(signal) - lag]
    assert rms_db(signal) - rms_db(error[4800:]) > 20  # a clean tone comes back clean
    concealed = decoder.conceal(960)
    assert concealed.shape == (960,) and concealed.dtype == np.float32
    assert rms_db(concealed) > -30  # the decoder extrapolates the voice, not silence
    assert not np.any(OpusDecoder().conceal(480))
    with pytest.raises(OpusError):
        decoder.decode(b"\xff\xff\xff")
    with pytest.raises(OpusError):
        decoder.decode(b"")
    with pytest.raises(OpusError, match="shape"):
        encoder.encode(np.zeros(960, dtype=np.float32))
    assert len(decoder.decode(encoder.encode(signal[:480]))) == 480  # still decoding


def test_voice_activity_opens_at_once_and_holds_over_pauses() -> None:
    vad = VoiceActivityDetector(threshold_db=-45, hangover_ms=100, frame_ms=20)
    quiet, loud = np.zeros(FRAME, dtype=np.float32), tone(300, FRAME, amplitude=0.1)
    assert not vad.update(quiet)
    assert vad.update(loud)
    assert [vad.update(quiet) for _ in range(6)] == [True] * 5 + [False]
    assert not vad.update(loud, speech_probability=0.1)  # loud but not speech
    assert vad.update(loud, speech_probability=0.9)
    assert level_db(np.ones(FRAME, dtype=np.float32)) == pytest.approx(0.0)
    assert level_db(quiet) == -100.0
    assert level_db(tone(300, FRAME, amplitude=1.0)) == pytest.approx(-3.01, abs=0.01)


def test_sinks() -> None:
    sink = BufferSink()
    sink.write(np.zeros((FRAME, 2), dtype=np.float32))
    sink.write(np.ones((FRAME, 2), dtype=np.float32))
    assert sink.samples().shape == (2 * FRAME, 2)
    with pytest.raises(ValueError, match="stereo"):
        sink.write(np.zeros(FRAME, dtype=np.float32))
    null = NullSink()
    null.write(np.zeros((FRAME, 2), dtype=np.float32))
    assert null.frames_written == 1


# --- cost ----------------------------------------------------------------------------------


async def test_cpu_cost_per_speaker(tmp_path: Path) -> None:
    """Capture (denoise + VAD + encode) and playback (decode + mix) cost per speaker, as a
    share of one core at 50 frames/s, over a few seconds of real speech."""
    speech = load_mono_48k(make_speech_wav(tmp_path / "cost.wav"))[: 4 * SAMPLE_RATE]
    frames = [speech[i : i + FRAME] for i in range(0, len(speech) - FRAME + 1, FRAME)]
    packets: list[tuple[bytes, int]] = []
    capture = CapturePipeline(
        ArraySource(speech, realtime=False), lambda p, ts, _: packets.append((p, ts))
    )
    capture.set_push_to_talk(True)
    capture.mode = "ptt"  # encode every frame: the worst case
    started = time.process_time()
    for k, frame in enumerate(frames):
        capture.process_frame(frame, k * TICK)
    capture_s = time.process_time() - started

    playback = PlaybackPipeline(NullSink())
    started = time.process_time()
    for k, (payload, timestamp) in enumerate(packets):
        playback.receive(1, payload, timestamp, k * TICK)
        playback.tick(k * TICK + TICK / 2)
    playback_s = time.process_time() - started

    seconds_of_audio = len(frames) * TICK
    capture_pct = 100 * capture_s / seconds_of_audio
    playback_pct = 100 * playback_s / seconds_of_audio
    print(
        f"\nCPU over {seconds_of_audio:.1f} s of speech: capture {capture_pct:.2f}% of a core "
        f"({1000 * capture_s / len(frames):.3f} ms/frame), playback {playback_pct:.2f}% per "
        f"speaker ({1000 * playback_s / len(packets):.3f} ms/frame)"
    )
    assert playback.stats.frames_decoded == len(packets) == len(frames)
    assert capture_pct < 50  # generous: the figure doubles on a busy machine
    assert playback_pct < 10


async def test_noise_alone_stays_off_the_air_while_speech_goes_out(tmp_path: Path) -> None:
    speech = load_mono_48k(make_speech_wav(tmp_path / "s.wav", "Can everyone hear me now?"))
    lead_in = SAMPLE_RATE  # one second of fan noise before the first word
    clean = np.concatenate([np.zeros(lead_in, dtype=np.float32), speech * 0.5])
    noise = np.random.default_rng(1).standard_normal(len(clean)) * 0.01  # about -40 dBFS
    noisy = (clean + noise).astype(np.float32)

    async def sent_frames(noise_suppression: bool) -> set[int]:
        call = Call(noisy, noise_suppression=noise_suppression)
        await call.run()
        return {timestamp // FRAME for _, timestamp, _ in call.packets}

    with_suppression = await sent_frames(noise_suppression=True)
    without = await sent_frames(noise_suppression=False)
    speech_frames = {
        k for k in range(len(clean) // FRAME) if rms_db(clean[k * FRAME : (k + 1) * FRAME]) > -40
    }
    lead_in_frames = set(range(lead_in // FRAME))
    assert len(without & lead_in_frames) == len(lead_in_frames)  # the energy gate alone opens
    assert len(with_suppression & lead_in_frames) <= 2
    assert len(with_suppression & speech_frames) >= 0.9 * len(speech_frames)


async def test_noise_suppression_can_be_switched_during_a_call() -> None:
    noise = (np.random.default_rng(4).standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32)
    call = Call(noise, noise_suppression=True)
    for k in range(50):
        if k == 30:
            call.capture.noise_suppression = False
        call.capture.process_frame(noise[k * FRAME : (k + 1) * FRAME], k * TICK)
    sent = [timestamp // FRAME for _, timestamp, _ in call.packets]
    assert sent == list(range(30, 50))  # without it, the energy gate alone lets noise through

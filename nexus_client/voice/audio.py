"""Audio frames, where they come from and where they go.

A frame is a mono ``numpy.float32`` array in [-1, 1] holding ``samples_per_frame(frame_ms)``
samples at 48 kHz, the rate Opus and RNNoise both run at natively, so nothing downstream
resamples. Sources produce frames (``read_frame``), sinks take stereo blocks (``write``).

Realtime sources and the playout ticker pace themselves with :class:`FrameClock`, which
schedules against absolute deadlines on the event loop's clock: a late wake-up shortens the
next wait instead of pushing every later frame back, so the stream never drifts.

PortAudio is optional: ``sounddevice`` raises ``OSError`` at import when the library is
missing, so it is imported only when a device is actually listed or opened, and every
failure to open one surfaces as :class:`AudioDeviceError`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt

from .._exceptions import NexusError

SAMPLE_RATE = 48_000
SUPPORTED_FRAME_MS = (10, 20)
# After a stall longer than this (a suspended laptop, a blocked loop) pacing restarts from
# "now" rather than bursting every missed frame at once.
MAX_CLOCK_LAG_S = 0.2
# Microphone frames waiting for the pipeline; older ones are dropped so a slow consumer
# never turns into ever-growing latency.
MICROPHONE_QUEUE_FRAMES = 5
# Speaker ring buffer: enough to absorb a late tick, small enough to add little delay.
SPEAKER_BUFFER_FRAMES = 4

Frame = npt.NDArray[np.float32]


class AudioDeviceError(NexusError):
    """A microphone or speaker could not be listed or opened (no PortAudio, no device…)."""


class AudioFileError(NexusError, ValueError):
    """An audio file could not be decoded."""


def samples_per_frame(frame_ms: int) -> int:
    if frame_ms not in SUPPORTED_FRAME_MS:
        raise ValueError(f"frame_ms must be 10 or 20, not {frame_ms!r}")
    return SAMPLE_RATE * frame_ms // 1000


class AudioSource(Protocol):
    frame_ms: int

    async def read_frame(self) -> Frame | None:
        """The next frame, or None once the source has ended."""
        ...


class AudioSink(Protocol):
    def write(self, stereo: npt.NDArray[np.float32]) -> None:
        """Take one stereo block of shape (n, 2)."""
        ...


@dataclass(frozen=True, slots=True)
class AudioDevice:
    index: int
    name: str
    channels: int
    default: bool


class FrameClock:
    """Wakes once per frame on the loop clock, against deadlines so there is no drift."""

    def __init__(self, frame_ms: int) -> None:
        samples_per_frame(frame_ms)
        self._period_s = frame_ms / 1000
        self._deadline: float | None = None

    async def wait(self) -> float:
        """Sleep until the next deadline and return the loop time on waking. The first call
        returns at once and anchors the schedule."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._deadline is None or now - self._deadline > MAX_CLOCK_LAG_S:
            self._deadline = now
        if self._deadline > now:
            await asyncio.sleep(self._deadline - now)
        self._deadline += self._period_s
        return loop.time()


def _as_frame(samples: object, expected: int, what: str) -> Frame:
    frame = np.asarray(samples, dtype=np.float32)
    if frame.shape != (expected,):
        raise ValueError(f"{what} must be a mono frame of {expected} samples, got {frame.shape}")
    return frame


class _PacedSource:
    """Shared pacing and end-of-stream handling for the synthetic and file sources."""

    def __init__(self, frame_ms: int, realtime: bool) -> None:
        self.frame_ms = frame_ms
        self.samples_per_frame = samples_per_frame(frame_ms)
        self._clock = FrameClock(frame_ms) if realtime else None
        self._ended = False

    async def read_frame(self) -> Frame | None:
        if self._ended:
            return None
        if self._clock is not None:
            await self._clock.wait()
        frame = self._next_frame()
        if frame is None:
            self._ended = True
        return frame

    def _next_frame(self) -> Frame | None:
        raise NotImplementedError


class ToneSource(_PacedSource):
    """A sine wave, phase-continuous across frames; endless unless ``duration_s`` is set."""

    def __init__(
        self,
        freq_hz: float,
        *,
        amplitude: float,
        frame_ms: int = 20,
        duration_s: float | None = None,
        realtime: bool = True,
    ) -> None:
        super().__init__(frame_ms, realtime)
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError(f"amplitude must be within 0..1, not {amplitude!r}")
        if not 0.0 < freq_hz < SAMPLE_RATE / 2:
            raise ValueError(f"freq_hz must be within 0..{SAMPLE_RATE // 2} Hz, not {freq_hz!r}")
        if duration_s is not None and duration_s < 0:
            raise ValueError(f"duration_s must not be negative, not {duration_s!r}")
        self.freq_hz = freq_hz
        self.amplitude = amplitude
        self._total = None if duration_s is None else round(duration_s * SAMPLE_RATE)
        self._position = 0

    def _next_frame(self) -> Frame | None:
        if self._total is not None and self._position >= self._total:
            return None
        n = self.samples_per_frame
        index = np.arange(self._position, self._position + n, dtype=np.float64)
        frame = self.amplitude * np.sin(2 * np.pi * self.freq_hz * index / SAMPLE_RATE)
        if self._total is not None and self._position + n > self._total:
            frame[self._total - self._position :] = 0.0
        self._position += n
        return frame.astype(np.float32)


class GeneratorSource(_PacedSource):
    """Frames computed by ``fn(frame_index)``; the source ends when ``fn`` returns None."""

    def __init__(
        self,
        fn: Callable[[int], npt.NDArray[Any] | None],
        *,
        frame_ms: int = 20,
        realtime: bool = True,
    ) -> None:
        super().__init__(frame_ms, realtime)
        self._fn = fn
        self._index = 0

    def _next_frame(self) -> Frame | None:
        samples = self._fn(self._index)
        if samples is None:
            return None
        frame = _as_frame(samples, self.samples_per_frame, f"frame {self._index}")
        self._index += 1
        return frame


class ArraySource(_PacedSource):
    """Plays a mono array once; the last frame is padded with silence."""

    def __init__(
        self, samples: npt.NDArray[Any], *, frame_ms: int = 20, realtime: bool = True
    ) -> None:
        super().__init__(frame_ms, realtime)
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"samples must be a mono 1-D array, got shape {samples.shape}")
        self._samples = samples
        self._position = 0

    def _next_frame(self) -> Frame | None:
        if self._position >= len(self._samples):
            return None
        n = self.samples_per_frame
        chunk = self._samples[self._position : self._position + n]
        self._position += n
        if len(chunk) < n:
            chunk = np.pad(chunk, (0, n - len(chunk)))
        return chunk.copy()


def _decode_file(path: Path) -> Iterator[Frame]:
    """Decode any audio file PyAV can read into 48 kHz mono float32 chunks."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise AudioFileError(f"cannot open audio file {path}: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise AudioFileError(f"{path} has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for decoded in container.decode(audio=0):
                for frame in resampler.resample(decoded):
                    yield frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            for frame in resampler.resample(None):
                yield frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        except av.FFmpegError as exc:
            raise AudioFileError(f"cannot decode audio file {path}: {exc}") from exc


class FileSource(_PacedSource):
    """An audio file (any format FFmpeg reads), resampled to 48 kHz mono, decoded as it
    plays so a long file never sits in memory whole."""

    def __init__(
        self,
        path: str | Path,
        *,
        frame_ms: int = 20,
        loop: bool = False,
        realtime: bool = True,
    ) -> None:
        super().__init__(frame_ms, realtime)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"audio file not found: {self.path}")
        self.loop = loop
        self._chunks = _decode_file(self.path)
        self._pending = np.zeros(0, dtype=np.float32)
        self._produced_any = False

    def _next_frame(self) -> Frame | None:
        n = self.samples_per_frame
        while len(self._pending) < n:
            chunk = next(self._chunks, None)
            if chunk is not None:
                self._pending = np.concatenate([self._pending, chunk])
                self._produced_any = True
            elif self.loop and self._produced_any:
                self._chunks = _decode_file(self.path)
                self._produced_any = False
            else:
                break
        if len(self._pending) == 0:
            return None
        frame, self._pending = self._pending[:n], self._pending[n:]
        if len(frame) < n:
            frame = np.pad(frame, (0, n - len(frame)))
        return np.clip(frame, -1.0, 1.0)


def _import_sounddevice() -> ModuleType:
    try:
        import sounddevice
    except OSError as exc:
        raise AudioDeviceError(f"audio devices are unavailable: {exc}") from exc
    module: ModuleType = sounddevice
    return module


def _list_devices(kind: str) -> list[AudioDevice]:
    try:
        sd = _import_sounddevice()
    except AudioDeviceError:
        return []
    channel_key = f"max_{kind}_channels"
    try:
        devices = sd.query_devices()
        default_pair = sd.default.device
    except sd.PortAudioError:
        return []
    default_index = default_pair[0 if kind == "input" else 1]
    return [
        AudioDevice(
            index=int(info["index"]),
            name=str(info["name"]),
            channels=int(info[channel_key]),
            default=int(info["index"]) == default_index,
        )
        for info in devices
        if int(info[channel_key]) > 0
    ]


def list_input_devices() -> list[AudioDevice]:
    """Microphones PortAudio can see; [] when there are none or PortAudio is missing."""
    return _list_devices("input")


def list_output_devices() -> list[AudioDevice]:
    """Speakers and headsets PortAudio can see; [] when there are none."""
    return _list_devices("output")


class MicrophoneSource:
    """Frames from a sound card. PortAudio calls back on its own thread; frames cross to
    the loop through a small bounded queue that drops the oldest frame when full."""

    def __init__(self, device: int | str | None = None, *, frame_ms: int = 20) -> None:
        self.frame_ms = frame_ms
        self.samples_per_frame = samples_per_frame(frame_ms)
        self.dropped_frames = 0
        sd = _import_sounddevice()
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=MICROPHONE_QUEUE_FRAMES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        try:
            self._stream = sd.InputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="float32",
                blocksize=self.samples_per_frame,
                latency="low",
                device=device,
                callback=self._on_audio,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(f"cannot open microphone {device!r}: {exc}") from exc

    def _on_audio(self, data: npt.NDArray[np.float32], frames: int, _time: Any, _s: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, data[:, 0].copy())

    def _enqueue(self, frame: Frame) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped_frames += 1
        self._queue.put_nowait(frame)

    async def read_frame(self) -> Frame | None:
        if self._closed:
            return None
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._stream.start()
        return await self._queue.get()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.stop()
            self._stream.close()


class BufferSink:
    """Keeps every block written, with the loop time it arrived (tests, recording)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, npt.NDArray[np.float32]]] = []

    def write(self, stereo: npt.NDArray[np.float32]) -> None:
        block = _as_stereo(stereo)
        self.frames.append((loop_time(), block.copy()))

    def samples(self) -> npt.NDArray[np.float32]:
        if not self.frames:
            return np.zeros((0, 2), dtype=np.float32)
        return np.concatenate([block for _, block in self.frames])


class NullSink:
    """Discards what it is given (a muted output device, benchmarks)."""

    def __init__(self) -> None:
        self.frames_written = 0

    def write(self, stereo: npt.NDArray[np.float32]) -> None:
        _as_stereo(stereo)
        self.frames_written += 1


class _StereoRing:
    """A fixed-size stereo FIFO shared between the loop (writer) and PortAudio's thread
    (reader). When full the oldest audio goes, keeping added latency bounded; when empty
    the reader gets silence."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros((capacity, 2), dtype=np.float32)
        self._start = 0
        self._size = 0
        self._lock = threading.Lock()
        self.underruns = 0
        self.overruns = 0

    def push(self, block: npt.NDArray[np.float32]) -> None:
        capacity = len(self._data)
        block = block[-capacity:]
        with self._lock:
            overflow = self._size + len(block) - capacity
            if overflow > 0:
                self._start = (self._start + overflow) % capacity
                self._size -= overflow
                self.overruns += 1
            end = (self._start + self._size) % capacity
            first = min(len(block), capacity - end)
            self._data[end : end + first] = block[:first]
            self._data[: len(block) - first] = block[first:]
            self._size += len(block)

    def pull_into(self, out: npt.NDArray[np.float32]) -> None:
        capacity = len(self._data)
        with self._lock:
            n = min(len(out), self._size)
            first = min(n, capacity - self._start)
            out[:first] = self._data[self._start : self._start + first]
            out[first:n] = self._data[: n - first]
            self._start = (self._start + n) % capacity
            self._size -= n
            if n < len(out):
                out[n:] = 0.0
                self.underruns += 1


class SpeakerSink:
    """Plays stereo blocks on a sound card through a small ring buffer."""

    def __init__(self, device: int | str | None = None, *, frame_ms: int = 20) -> None:
        self.frame_ms = frame_ms
        frame_samples = samples_per_frame(frame_ms)
        sd = _import_sounddevice()
        self._ring = _StereoRing(frame_samples * SPEAKER_BUFFER_FRAMES)
        try:
            self._stream = sd.OutputStream(
                samplerate=SAMPLE_RATE,
                channels=2,
                dtype="float32",
                blocksize=frame_samples,
                latency="low",
                device=device,
                callback=self._on_needed,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(f"cannot open speaker {device!r}: {exc}") from exc

    @property
    def underruns(self) -> int:
        return self._ring.underruns

    def _on_needed(self, out: npt.NDArray[np.float32], frames: int, _t: Any, _s: Any) -> None:
        self._ring.pull_into(out)

    def write(self, stereo: npt.NDArray[np.float32]) -> None:
        self._ring.push(_as_stereo(stereo))

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()


def _as_stereo(stereo: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    block = np.asarray(stereo, dtype=np.float32)
    if block.ndim != 2 or block.shape[1] != 2:
        raise ValueError(f"a sink takes stereo blocks of shape (n, 2), got {block.shape}")
    return block


def loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        # The default loop's clock is time.monotonic, so the two stay comparable.
        return time.monotonic()

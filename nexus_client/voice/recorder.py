"""Call recording with consent: one Ogg/Opus file per consenting speaker, plus a mix.

Consent. Every speaker starts as *not consenting*. A packet from a speaker who has not
consented at the moment it arrives is dropped before it is buffered, decoded or written, and
counted in ``dropped_packets``. Revoking consent stops that speaker's track from then on;
what was recorded while they consented stays, because they had agreed to it then (packets
already held for reordering arrived with consent, so they are written too). Whether a
recording may start at all (everyone present agreed) is the call's decision, not this
module's: this module guarantees that nobody's audio is written without their consent.

Per-speaker files carry the sender's Opus packets as they were, without re-encoding, in
Ogg pages written here (RFC 3533, RFC 7845). Every track starts at the recording's start, so
the files line up when opened side by side. Time the speaker did not send (silence,
packet loss, a pause in consent, the time before they first spoke) is filled with Opus
packets holding zero-length frames, as RFC 7845 section 4.1 recommends: a decoder plays
them as concealment fading to silence, and granule positions stay true to the timestamps.
Pre-skip is 0: the packets come from the middle of a live stream whose receivers decoded
them from the first one on, exactly as a player of the file will.

Timeline. A speaker's RTP-style timestamps (48 kHz, 32-bit wrap handled) place their
packets relative to each other; the speakers' clocks are unrelated, so each speaker is
placed on the recording's timeline by when their first packets arrived (``arrival``,
seconds on any monotonic clock shared by all calls of ``add_packet``; the recorder reads
``time.monotonic()`` when it is omitted, so pass it for every packet or for none). The
earliest ``arrival - timestamp`` over the packets held for reordering wins, so a first
packet that was delayed or overtaken does not shift the speaker. The recording starts with
the earliest speaker. Placement is to 2.5 ms, the smallest duration an Opus packet fills;
clock drift between a speaker and the receiver over a call is not corrected.

The mix decodes the written tracks with libopus, sums them, limits peaks to
``MIX_CEILING`` with a smooth gain (no hard clipping) and encodes Ogg/Opus with PyAV.

Files are written under temporary names in the recording's directory and renamed at
``close``; a crash leaves hidden ``.part`` files and never a half file under a final name.
``close`` decodes and encodes the whole call: run it off the event loop.
"""

from __future__ import annotations

import heapq
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

import av
import numpy as np
from numpy.typing import NDArray

from .._exceptions import NexusError

SAMPLE_RATE: Final = 48_000  # Opus and Ogg/Opus granule positions always count 48 kHz
MIX_CEILING: Final = 0.89  # about -1 dBFS: room for the encoder's overshoot
MIX_BIT_RATE: Final = 64_000
FILL_UNIT: Final = 120  # 2.5 ms, the shortest Opus frame
REORDER_DEPTH: Final = 6  # packets held per speaker so late UDP packets still fit in
PACKETS_PER_PAGE: Final = 50  # about a second of audio per Ogg page
_MAX_PACKET_SAMPLES: Final = 5760  # 120 ms, RFC 6716's limit for one packet
_SILK_MS: Final = (10, 20, 40, 60)
_HYBRID_MS: Final = (10, 20)
_CELT_SAMPLES: Final = (120, 240, 480, 960)
# A CELT fullband TOC byte (code 0) per frame size, to fill gaps the previous packet's
# frame size does not divide; the stereo bit is copied from the speaker's packets.
_CELT_FB_TOC: Final = {960: 31 << 3, 480: 30 << 3, 240: 29 << 3, 120: 28 << 3}


class RecordingError(NexusError):
    """A recording could not be written."""


class RecorderClosed(RecordingError):
    """``add_packet`` or ``set_consent`` after ``close``."""


@dataclass(frozen=True, slots=True)
class RecordingResult:
    directory: Path
    speaker_files: dict[int, Path]
    mix_file: Path | None
    # Packets refused because their speaker had not consented when they arrived.
    dropped_packets: dict[int, int]
    # Packets of consenting speakers that could not be written: malformed Opus, or too late
    # to fit the timeline (older than what was already written).
    discarded_packets: dict[int, int]


def opus_packet_samples(packet: bytes) -> int:
    """Duration of an Opus packet at 48 kHz, from its TOC (RFC 6716 section 3.1)."""
    if not packet:
        raise ValueError("empty Opus packet")
    config, code = packet[0] >> 3, packet[0] & 0b11
    if config < 12:
        frame = _SILK_MS[config % 4] * 48
    elif config < 16:
        frame = _HYBRID_MS[config % 2] * 48
    else:
        frame = _CELT_SAMPLES[config % 4]
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    elif len(packet) < 2:
        raise ValueError("Opus code-3 packet without its frame count byte")
    else:
        count = packet[1] & 0x3F
    if count == 0 or frame * count > _MAX_PACKET_SAMPLES:
        raise ValueError(f"Opus packet of {count} frames of {frame} samples")
    return frame * count


def _filler_packets(toc: int, samples: int) -> Iterator[tuple[bytes, int]]:
    """Packets of zero-length frames covering ``samples`` (rounded down to 2.5 ms): first
    in the frame size of ``toc`` (so the decoder keeps its mode), the rest in CELT sizes."""
    single = toc & 0xFC  # code 0: one frame, here of zero bytes
    step = opus_packet_samples(bytes([single]))
    for _ in range(samples // step):
        yield bytes([single]), step
    remainder = samples % step
    for size, celt_toc in _CELT_FB_TOC.items():
        while remainder >= size:
            yield bytes([celt_toc | (toc & 0b100)]), size
            remainder -= size


_BIT_REVERSED: Final = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0, no final XOR).

    zlib computes the reflected form of the same polynomial in C; reflecting the input
    bytes and the result turns one into the other, far faster than a Python loop."""
    reflected = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _lacing(length: int) -> bytes:
    return b"\xff" * (length // 255) + bytes([length % 255])


class _OggOpusWriter:
    """One logical Ogg/Opus stream in one file; packets are never split across pages."""

    def __init__(self, file: BinaryIO, channels: int) -> None:
        self._file = file
        self._serial = int.from_bytes(os.urandom(4), "little")
        self._sequence = 0
        self._pending: list[bytes] = []
        self._pending_lacing = b""
        self.end = 0  # granule position after the last packet added
        head = b"OpusHead" + bytes([1, channels]) + (0).to_bytes(2, "little")
        head += SAMPLE_RATE.to_bytes(4, "little") + (0).to_bytes(2, "little") + b"\x00"
        self._write_page([head], _lacing(len(head)), granule=0, flags=0x02)
        vendor = b"Nexus"
        tags = b"OpusTags" + len(vendor).to_bytes(4, "little") + vendor + bytes(4)
        self._write_page([tags], _lacing(len(tags)), granule=0, flags=0)

    def add(self, packet: bytes, samples: int) -> None:
        lacing = _lacing(len(packet))
        if self._pending and (
            len(self._pending_lacing) + len(lacing) > 255 or len(self._pending) >= PACKETS_PER_PAGE
        ):
            self._write_page(self._pending, self._pending_lacing, granule=self.end, flags=0)
            self._pending, self._pending_lacing = [], b""
        self._pending.append(packet)
        self._pending_lacing += lacing
        self.end += samples

    def finish(self) -> None:
        """Write the last page, marked end of stream, and make it durable."""
        self._write_page(self._pending, self._pending_lacing, granule=self.end, flags=0x04)
        self._pending, self._pending_lacing = [], b""
        self._file.flush()
        os.fsync(self._file.fileno())

    def _write_page(self, packets: list[bytes], lacing: bytes, *, granule: int, flags: int) -> None:
        header = (
            b"OggS\x00"
            + bytes([flags])
            + granule.to_bytes(8, "little")
            + self._serial.to_bytes(4, "little")
            + self._sequence.to_bytes(4, "little")
            + bytes(4)  # CRC, computed over the page with this field zeroed
            + bytes([len(lacing)])
            + lacing
        )
        page = bytearray(header + b"".join(packets))
        page[22:26] = ogg_crc(bytes(page)).to_bytes(4, "little")
        self._file.write(page)
        self._sequence += 1


@dataclass(slots=True)
class _Track:
    """One speaker: consent, their clock mapped onto the recording, and their file.

    Timestamps are kept relative to the speaker's first packet (``rel``). Where ``rel = 0``
    falls on the recording is estimated from arrivals as the earliest ``arrival - rel``
    over the packets seen before the first write, which ignores a first packet that was
    late or overtaken, and is fixed at the first write."""

    temporary: Path
    consented: bool = False
    dropped: int = 0
    discarded: int = 0
    first_timestamp: int | None = None
    last_raw_timestamp: int = 0
    last_rel: int = 0
    implied_start: int | None = None  # samples after the recorder's first arrival
    earliest_rel: int = 0  # of the packets seen before the first write
    offset: int | None = None  # recording position of ``rel = 0`` once fixed
    reorder: list[tuple[int, int, bytes, int]] = field(default_factory=list)
    writer: _OggOpusWriter | None = None
    file: BinaryIO | None = None
    last_toc: int = 0

    def relative(self, timestamp: int, arrival: int) -> int:
        if self.first_timestamp is None:
            self.first_timestamp = self.last_raw_timestamp = timestamp
        else:
            # Signed 32-bit difference: RTP timestamps wrap, and values a caller already
            # unwrapped differ by far less than 2**31 between packets.
            delta = (timestamp - self.last_raw_timestamp + 2**31) % 2**32 - 2**31
            self.last_raw_timestamp = timestamp
            self.last_rel += delta
        if self.offset is None:
            self.earliest_rel = min(self.earliest_rel, self.last_rel)
            start = arrival - self.last_rel
            self.implied_start = (
                start if self.implied_start is None else min(start, self.implied_start)
            )
        return self.last_rel

    def write(self, position: int, packet: bytes, samples: int) -> None:
        if position < 0:
            self.discarded += 1  # from before the recording's start
            return
        if self.writer is None:
            self.file = self.temporary.open("wb")
            self.writer = _OggOpusWriter(self.file, channels=2 if packet[0] & 0b100 else 1)
            self.last_toc = packet[0]
        if position < self.writer.end:
            self.discarded += 1  # overlaps what is already written
            return
        for filler, filler_samples in _filler_packets(self.last_toc, position - self.writer.end):
            self.writer.add(filler, filler_samples)
        self.writer.add(packet, samples)
        self.last_toc = packet[0]

    def finish(self) -> bool:
        """Close the file; ``False`` if nothing was ever written."""
        if self.writer is None or self.file is None:
            return False
        self.writer.finish()
        self.file.close()
        return True


class CallRecorder:
    """Records one call on this machine. Not thread-safe: feed it from one task."""

    def __init__(self, directory: Path, *, frame_ms: int = 20) -> None:
        if frame_ms not in (10, 20, 40, 60):
            raise ValueError(f"frame_ms must be 10, 20, 40 or 60, got {frame_ms}")
        self._frame_ms = frame_ms
        self._directory = _new_recording_directory(Path(directory))
        self._tracks: dict[int, _Track] = {}
        self._first_arrival: float | None = None  # arrivals count in samples from here
        self._origin: int | None = None  # the recording's start, fixed at the first write
        self._sequence = 0  # tie-breaker for packets with equal timestamps
        self._result: RecordingResult | None = None

    @property
    def directory(self) -> Path:
        return self._directory

    def _track(self, speaker_id: int) -> _Track:
        if isinstance(speaker_id, bool) or not isinstance(speaker_id, int) or speaker_id < 0:
            raise ValueError(f"speaker_id must be a non-negative integer, got {speaker_id!r}")
        track = self._tracks.get(speaker_id)
        if track is None:
            track = _Track(temporary=self._directory / f".{speaker_id}.opus.part")
            self._tracks[speaker_id] = track
        return track

    def set_consent(self, speaker_id: int, consented: bool) -> None:
        if self._result is not None:
            raise RecorderClosed("the recording is closed")
        track = self._track(speaker_id)
        if track.consented and not consented:
            self._flush(track)  # these arrived while the speaker consented
        track.consented = consented

    def add_packet(
        self,
        speaker_id: int,
        opus_payload: bytes,
        timestamp: int,
        arrival: float | None = None,
    ) -> None:
        """Record one decrypted Opus packet; ``timestamp`` counts 48 kHz samples on the
        speaker's own clock."""
        if self._result is not None:
            raise RecorderClosed("the recording is closed")
        track = self._track(speaker_id)
        if not track.consented:
            track.dropped += 1
            return
        if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
            raise ValueError(f"timestamp must be a non-negative integer, got {timestamp!r}")
        packet = bytes(opus_payload)
        try:
            samples = opus_packet_samples(packet)
        except ValueError:
            track.discarded += 1
            return
        if len(_lacing(len(packet))) > 255:
            track.discarded += 1  # larger than one Ogg page can carry; no real packet is
            return
        arrival = time.monotonic() if arrival is None else arrival
        if self._first_arrival is None:
            self._first_arrival = arrival
        arrival_samples = round((arrival - self._first_arrival) * SAMPLE_RATE)
        rel = track.relative(timestamp, arrival_samples)
        self._sequence += 1
        heapq.heappush(track.reorder, (rel, self._sequence, packet, samples))
        if len(track.reorder) > REORDER_DEPTH:
            self._write_oldest(track)

    def _write_oldest(self, track: _Track) -> None:
        rel, _, packet, samples = heapq.heappop(track.reorder)
        if track.offset is None:
            assert track.implied_start is not None
            if self._origin is None:
                self._origin = min(
                    t.implied_start + t.earliest_rel
                    for t in self._tracks.values()
                    if t.implied_start is not None and t.offset is None
                )
            start = track.implied_start + track.earliest_rel - self._origin
            track.offset = max(0, start) // FILL_UNIT * FILL_UNIT - track.earliest_rel
        track.write(track.offset + rel, packet, samples)

    def _flush(self, track: _Track) -> None:
        while track.reorder:
            self._write_oldest(track)

    def close(self) -> RecordingResult:
        """Finish every file and the mix; return where they are. Calling it again returns
        the same result."""
        if self._result is not None:
            return self._result
        written: dict[int, Path] = {}
        for speaker_id, track in self._tracks.items():
            self._flush(track)
            if track.finish():
                written[speaker_id] = track.temporary
        speaker_files: dict[int, Path] = {}
        for speaker_id, temporary in sorted(written.items()):
            final = self._directory / f"{speaker_id}.opus"
            os.replace(temporary, final)
            speaker_files[speaker_id] = final
        mix_file: Path | None = None
        if speaker_files:
            mix_file = self._directory / "mix.opus"
            temporary = self._directory / ".mix.opus.part"
            try:
                _write_mix(list(speaker_files.values()), temporary, self._frame_ms)
            except (av.FFmpegError, OSError) as exc:
                temporary.unlink(missing_ok=True)
                raise RecordingError(f"could not write the mix: {exc}") from exc
            os.replace(temporary, mix_file)
        _fsync_directory(self._directory)
        self._result = RecordingResult(
            directory=self._directory,
            speaker_files=speaker_files,
            mix_file=mix_file,
            dropped_packets={s: t.dropped for s, t in self._tracks.items()},
            discarded_packets={s: t.discarded for s, t in self._tracks.items()},
        )
        return self._result

    def __repr__(self) -> str:
        return f"<CallRecorder {self._directory} speakers={sorted(self._tracks)}>"


def _new_recording_directory(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("recording-%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        candidate = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RecordingError(f"no free recording directory name under {parent}")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------- mix


Samples = NDArray[np.float32]


def _decoded_track(path: Path) -> Iterator[Samples]:
    """A track's audio, mono float, contiguous from the recording's start."""
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "mono"
    with av.open(str(path), format="ogg") as container:
        for packet in container.demux(container.streams.audio[0]):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            for frame in decoder.decode(av.Packet(bytes(packet))):
                samples = frame.to_ndarray().astype(np.float32)
                if frame.format.name in ("s16", "s16p"):
                    samples /= 32768.0
                yield samples.reshape(-1)


class _TrackReader:
    """Reads a decoded track in blocks of any size."""

    def __init__(self, frames: Iterator[Samples]) -> None:
        self._frames = frames
        self._buffer = np.zeros(0, dtype=np.float32)
        self._ended = False

    def read(self, count: int) -> Samples:
        """Up to ``count`` samples; fewer only once the track has ended."""
        chunks = [self._buffer]
        have = len(self._buffer)
        while have < count and not self._ended:
            frame = next(self._frames, None)
            if frame is None:
                self._ended = True
            else:
                chunks.append(frame)
                have += len(frame)
        joined = np.concatenate(chunks)
        self._buffer = joined[count:]
        return joined[:count]


class _PeakLimiter:
    """Keeps the mix within ``MIX_CEILING`` with a gain that drops one 5 ms block ahead of
    a peak and recovers over about 100 ms, so loud overlaps duck instead of clipping."""

    BLOCK = 240
    RELEASE_PER_BLOCK = 0.05

    def __init__(self) -> None:
        self._gain = 1.0

    def process(self, samples: Samples) -> Samples:
        blocks = -(-len(samples) // self.BLOCK)
        padded = np.pad(samples, (0, blocks * self.BLOCK - len(samples))).reshape(blocks, -1)
        peaks = np.abs(padded).max(axis=1)
        targets = np.minimum(1.0, MIX_CEILING / np.maximum(peaks, 1e-9))
        gains = np.empty(blocks)
        gain = self._gain
        for index, target in enumerate(targets):
            gain = min(float(target), gain + self.RELEASE_PER_BLOCK)
            gains[index] = gain
        # Each block ramps linearly between its edges; an edge takes the lower gain of the
        # two blocks it joins, so no sample gets more gain than its own block allows.
        left = np.minimum(np.concatenate(([self._gain], gains[:-1])), gains)
        right = np.minimum(gains, np.concatenate((gains[1:], gains[-1:])))
        ramp = np.arange(self.BLOCK) / self.BLOCK
        envelope = left[:, None] + (right - left)[:, None] * ramp[None, :]
        self._gain = gain
        limited = (padded * envelope).reshape(-1)[: len(samples)]
        return limited.astype(np.float32)


def _write_mix(tracks: list[Path], destination: Path, frame_ms: int) -> None:
    readers = [_TrackReader(_decoded_track(path)) for path in tracks]
    limiter = _PeakLimiter()
    chunk = SAMPLE_RATE  # one second at a time keeps memory flat for long calls
    with av.open(str(destination), "w", format="ogg") as container:
        stream = container.add_stream(
            "libopus", rate=SAMPLE_RATE, options={"frame_duration": str(frame_ms)}
        )
        stream.layout = "mono"
        stream.bit_rate = MIX_BIT_RATE
        position = 0
        while True:
            blocks = [reader.read(chunk) for reader in readers]
            length = max(len(block) for block in blocks)
            if length == 0:
                break
            mixed = np.zeros(length, dtype=np.float32)
            for block in blocks:
                mixed[: len(block)] += block
            limited = limiter.process(mixed)
            frame = av.AudioFrame.from_ndarray(limited[None, :], format="flt", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = position
            position += length
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with destination.open("rb+") as written:
        os.fsync(written.fileno())

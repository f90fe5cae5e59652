"""Call recording: a speaker who does not consent is never heard in any file, and what is
written plays back with the right timing."""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from nexus_client.voice.recorder import (
    CallRecorder,
    RecorderClosed,
    RecordingResult,
    ogg_crc,
    opus_packet_samples,
)

RATE = 48_000
FRAME = 960  # 20 ms
TONES = {1: 440.0, 2: 660.0, 3: 880.0}


def opus_packets(frequency: float, count: int, amplitude: float = 0.3) -> list[bytes]:
    """``count`` real 20 ms Opus packets (48 kHz mono) of a sine tone."""
    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    times = np.arange(FRAME * (count + 1)) / RATE
    tone = (amplitude * 32767 * np.sin(2 * np.pi * frequency * times)).astype(np.int16)
    packets: list[bytes] = []
    for start in range(0, len(tone), FRAME):
        frame = av.AudioFrame.from_ndarray(tone[None, start : start + FRAME], layout="mono")
        frame.sample_rate = RATE
        frame.pts = start
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    return packets[:count]


PACKETS = {speaker: opus_packets(frequency, 100) for speaker, frequency in TONES.items()}


def decode(path: Path) -> NDArray[np.float64]:
    """The file as a player hears it: mono samples from the start, through PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
    samples = np.concatenate(chunks).astype(np.float64)
    return samples / 32768 if np.abs(samples).max() > 2 else samples


def demuxed_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [bytes(packet) for packet in container.demux(stream) if packet.size]


def tone_level(samples: NDArray[np.float64], frequency: float) -> float:
    """Amplitude of a sine at ``frequency`` (a 0.3 tone gives about 0.3)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / RATE)
    near = np.abs(frequencies - frequency) < 5
    return float(spectrum[near].max() * 4 / len(samples))


def rms(samples: NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def window(samples: NDArray[np.float64], start_s: float, end_s: float) -> NDArray[np.float64]:
    return samples[int(start_s * RATE) : int(end_s * RATE)]


def three_speaker_call(tmp_path: Path, consenting: set[int]) -> RecordingResult:
    """Two seconds of three speakers, each on their own clock; speaker 3 joins 0.5 s late."""
    recorder = CallRecorder(tmp_path)
    for speaker in TONES:
        recorder.set_consent(speaker, speaker in consenting)
    clock_starts = {1: 12_345, 2: 7, 3: 2**32 - 960 * 10}  # speaker 3's clock wraps
    for index in range(100):
        for speaker, start in clock_starts.items():
            if speaker == 3 and index >= 75:
                continue
            arrival = index * 0.02 + (0.5 if speaker == 3 else 0.0)
            timestamp = (start + index * FRAME) % 2**32
            recorder.add_packet(speaker, PACKETS[speaker][index], timestamp, arrival=arrival)
    return recorder.close()


def test_a_speaker_who_refuses_is_in_no_file(tmp_path: Path) -> None:
    result = three_speaker_call(tmp_path, consenting={1, 3})

    assert set(result.speaker_files) == {1, 3}
    assert result.mix_file is not None
    assert sorted(p.name for p in result.directory.iterdir()) == ["1.opus", "3.opus", "mix.opus"]
    assert result.dropped_packets == {1: 0, 2: 100, 3: 0}
    assert result.discarded_packets == {1: 0, 2: 0, 3: 0}

    first, third, mix = (decode(p) for p in (*result.speaker_files.values(), result.mix_file))
    assert tone_level(first, 440) > 0.2 and tone_level(third, 880) > 0.2
    assert tone_level(mix, 440) > 0.15 and tone_level(mix, 880) > 0.15
    for samples in (first, third, mix):
        assert tone_level(samples, 660) < 0.003  # speaker 2's tone: nowhere


def test_tracks_line_up_and_last_as_long_as_the_speech(tmp_path: Path) -> None:
    result = three_speaker_call(tmp_path, consenting={1, 2, 3})
    tracks = {speaker: decode(path) for speaker, path in result.speaker_files.items()}
    assert result.mix_file is not None
    mix = decode(result.mix_file)

    assert len(tracks[1]) == len(tracks[2]) == 2 * RATE
    # Speaker 3 (whose clock wrapped) joined 0.5 s in and spoke for 1.5 s.
    assert len(tracks[3]) == 2 * RATE
    assert rms(window(tracks[3], 0.0, 0.48)) < 1e-3
    assert rms(window(tracks[3], 0.55, 2.0)) > 0.15
    assert abs(len(mix) - 2 * RATE) <= FRAME
    assert tone_level(window(mix, 0.05, 0.45), 880) < 0.003
    assert tone_level(window(mix, 0.6, 1.9), 880) > 0.15
    for frequency in TONES.values():
        assert tone_level(window(mix, 0.6, 1.9), frequency) > 0.15


def test_the_speakers_packets_are_stored_as_they_were_sent(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path)
    recorder.set_consent(1, True)
    order = list(range(50))
    shuffled = random.Random(4).sample(order, k=len(order))
    # Network reordering: each packet at most a few places from where it belongs.
    arrival_order = sorted(order, key=lambda i: i + shuffled.index(i) % 4)
    for arrived, index in enumerate(arrival_order):
        recorder.add_packet(1, PACKETS[1][index], 500 + index * FRAME, arrival=arrived * 0.02)
    result = recorder.close()
    assert arrival_order != order
    assert demuxed_packets(result.speaker_files[1]) == PACKETS[1][:50]


def test_gaps_in_timestamps_stay_gaps(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path)
    recorder.set_consent(1, True)
    for index in range(100):
        if 30 <= index < 70:  # 0.6 s to 1.4 s: nothing sent (muted, or lost)
            continue
        recorder.add_packet(1, PACKETS[1][index], index * FRAME, arrival=index * 0.02)
    result = recorder.close()
    samples = decode(result.speaker_files[1])

    assert len(samples) == 2 * RATE
    assert rms(window(samples, 0.0, 0.6)) > 0.15
    assert rms(window(samples, 0.75, 1.4)) < 1e-3  # concealment fades out, then silence
    assert rms(window(samples, 1.45, 2.0)) > 0.15
    assert tone_level(window(samples, 1.45, 2.0), 440) > 0.2
    written = demuxed_packets(result.speaker_files[1])
    assert written[:30] == PACKETS[1][:30] and written[-30:] == PACKETS[1][70:]
    assert all(len(packet) == 1 for packet in written[30:-30])  # zero-length frames


def test_revoking_consent_stops_writing_from_then_on(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path)
    recorder.set_consent(1, True)
    for index in range(100):
        if index == 50:
            recorder.set_consent(1, False)
        # After revoking, the speaker says something else: it must not reach the file.
        packet = PACKETS[1][index] if index < 50 else PACKETS[2][index]
        recorder.add_packet(1, packet, index * FRAME, arrival=index * 0.02)
    result = recorder.close()
    samples = decode(result.speaker_files[1])

    assert result.dropped_packets == {1: 50}
    assert len(samples) == RATE  # what was said with consent stays
    assert tone_level(samples, 440) > 0.2
    assert tone_level(samples, 660) < 0.003
    assert result.mix_file is not None
    assert tone_level(decode(result.mix_file), 660) < 0.003


def test_files_appear_under_their_names_only_when_complete(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path)
    recorder.set_consent(1, True)
    for index in range(60):
        recorder.add_packet(1, PACKETS[1][index], index * FRAME, arrival=index * 0.02)
    during = sorted(p.name for p in recorder.directory.iterdir())
    assert during == [".1.opus.part"]  # written as it comes, under a temporary name

    result = recorder.close()
    assert result.directory == recorder.directory
    assert result.directory.parent == tmp_path
    assert sorted(p.name for p in result.directory.iterdir()) == ["1.opus", "mix.opus"]
    assert recorder.close() is result
    with pytest.raises(RecorderClosed):
        recorder.add_packet(1, PACKETS[1][60], 60 * FRAME)
    # A second recording in the same place gets a directory of its own.
    assert CallRecorder(tmp_path).directory != result.directory


def test_malformed_packets_are_counted_and_skipped(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path)
    recorder.set_consent(1, True)
    recorder.add_packet(1, b"", 0, arrival=0.0)
    recorder.add_packet(1, bytes([0x7B]), 0, arrival=0.0)  # code 3 without its frame count
    recorder.add_packet(1, bytes([0x7B, 0x00]), 0, arrival=0.0)  # code 3, zero frames
    for index in range(10):
        recorder.add_packet(1, PACKETS[1][index], index * FRAME, arrival=index * 0.02)
    recorder.add_packet(1, PACKETS[1][3], 3 * FRAME, arrival=0.5)  # long after its place
    result = recorder.close()
    assert result.discarded_packets == {1: 4}
    assert demuxed_packets(result.speaker_files[1]) == PACKETS[1][:10]
    with pytest.raises(ValueError, match="speaker_id"):
        CallRecorder(tmp_path).add_packet(-1, PACKETS[1][0], 0)


def test_nobody_consenting_writes_nothing(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path)
    recorder.add_packet(1, PACKETS[1][0], 0, arrival=0.0)
    result = recorder.close()
    assert result.speaker_files == {} and result.mix_file is None
    assert result.dropped_packets == {1: 1}
    assert list(result.directory.iterdir()) == []


def test_opus_packet_durations_come_from_the_toc() -> None:
    assert opus_packet_samples(PACKETS[1][0]) == FRAME
    assert opus_packet_samples(bytes([31 << 3])) == 960  # CELT 20 ms
    assert opus_packet_samples(bytes([28 << 3])) == 120  # CELT 2.5 ms
    assert opus_packet_samples(bytes([3 << 3 | 1, 0, 0])) == 2 * 2880  # SILK 2 x 60 ms
    assert opus_packet_samples(bytes([19 << 3 | 3, 6])) == 6 * 960
    with pytest.raises(ValueError):
        opus_packet_samples(bytes([3 << 3 | 3, 3]))  # 180 ms: over the 120 ms limit


def test_ogg_pages_carry_valid_checksums(tmp_path: Path) -> None:
    def bitwise_crc(data: bytes) -> int:
        crc = 0
        for byte in data:
            crc ^= byte << 24
            for _ in range(8):
                crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
                crc &= 0xFFFFFFFF
        return crc

    sample = bytes(random.Random(1).randbytes(3000))
    assert ogg_crc(sample) == bitwise_crc(sample)

    result = three_speaker_call(tmp_path, consenting={1})
    assert result.mix_file is not None
    # Our pages, and the pages FFmpeg's own muxer wrote for the mix, check out alike.
    for path in (result.speaker_files[1], result.mix_file):
        data = path.read_bytes()
        pages, offset, granules = 0, 0, []
        while offset < len(data):
            assert data[offset : offset + 4] == b"OggS"
            segments = data[offset + 26]
            body = sum(data[offset + 27 : offset + 27 + segments])
            end = offset + 27 + segments + body
            page = bytearray(data[offset:end])
            stored = int.from_bytes(page[22:26], "little")
            page[22:26] = bytes(4)
            assert ogg_crc(bytes(page)) == stored
            granules.append(int.from_bytes(page[6:14], "little"))
            pages, offset = pages + 1, end
        assert pages >= 3 and granules == sorted(granules)
        assert data[5] == 0x02  # first page opens the stream
        last_page = data.rindex(b"OggS")
        assert data[last_page + 5] & 0x04  # last page closes it


def test_loud_overlapping_speakers_are_limited_not_clipped(tmp_path: Path) -> None:
    loud = {1: opus_packets(440, 50, amplitude=0.8), 3: opus_packets(880, 50, amplitude=0.8)}
    recorder = CallRecorder(tmp_path)
    for speaker in loud:
        recorder.set_consent(speaker, True)
    for index in range(50):
        for speaker, packets in loud.items():
            recorder.add_packet(speaker, packets[index], index * FRAME, arrival=index * 0.02)
    result = recorder.close()
    assert result.mix_file is not None
    mix = decode(result.mix_file)
    steady = window(mix, 0.3, 0.9)
    assert np.abs(mix).max() < 0.99  # the sum peaks near 1.6 before limiting
    assert tone_level(steady, 440) > 0.3 and tone_level(steady, 880) > 0.3
    # A smooth gain, not clipping: hardly any energy at the clipping products' frequencies.
    assert tone_level(steady, 1320) < 0.02 and tone_level(steady, 2200) < 0.02

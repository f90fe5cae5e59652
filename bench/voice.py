"""Voice: mouth-to-ear through the relay's SFU on loopback, the client pipeline's CPU, and
the SFU's CPU and memory with 10 and 25 people (``bench/voice_sfu.py``).

Mouth-to-ear is measured from the moment a click's first sample is captured (a real
microphone hands over a frame only once it is full, so the frame's length counts) to
the moment the block holding it is written to the listener's output buffer. Sender and
listener are SDK clients in this process, on one loop clock; the relay (``nexus-server``)
and its SFU worker are their own processes, as deployed.

Baseline (``DESIGN.md``, measured here with throwaway prototypes): Mumble ~27 ms
mouth-to-ear before its jitter buffer, its server 38% of a core for 25 talkers; aiortc's
stock relay 108 to 275 ms.

    .venv/bin/python bench/voice.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _relay
from nexus_client import Client
from nexus_client.voice.audio import (
    SAMPLE_RATE,
    BufferSink,
    GeneratorSource,
    NullSink,
)
from nexus_client.voice.capture import CapturePipeline
from nexus_client.voice.playback import PlaybackPipeline

MUMBLE_MOUTH_TO_EAR_MS = 27.0
CLICK_EVERY_S = 0.75
CLICK_MS = 250


def spoken_word() -> npt.NDArray[np.float32]:
    """ "pa", spoken by espeak-ng, at 48 kHz, trimmed to start at its first loud sample: a
    real voice, so noise suppression passes it as it would a person."""
    import subprocess
    import tempfile

    import av

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pa.wav"
        subprocess.run(["espeak-ng", "-w", str(path), "pa"], check=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        with av.open(str(path)) as container:
            for frame in container.decode(audio=0):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    word = np.concatenate(chunks).astype(np.float32)
    word = 0.5 * word / np.max(np.abs(word))
    first = int(np.nonzero(np.abs(word) > 0.05)[0][0])
    return word[first : first + int(CLICK_MS * SAMPLE_RATE / 1000)]


def click_source(frame_ms: int, onsets: list[tuple[float, int]]) -> GeneratorSource:
    """Silence with a spoken word every half second; records (loop time the frame with a
    word's onset was read, the onset's offset in that frame)."""
    frame = SAMPLE_RATE * frame_ms // 1000
    period = int(CLICK_EVERY_S * SAMPLE_RATE)
    word = spoken_word()
    loop = asyncio.get_running_loop()

    def make(index: int) -> npt.NDArray[np.float32]:
        start = index * frame
        positions = np.arange(start, start + frame)
        phase = positions % period
        out = word[np.minimum(phase, len(word) - 1)] * (phase < len(word))
        onset = np.nonzero(phase == 0)[0]
        if len(onset):
            onsets.append((loop.time(), int(onset[0])))
        return out.astype(np.float32)

    return GeneratorSource(make, frame_ms=frame_ms)


def delays_heard(
    sink: BufferSink, mouths: list[float], word: npt.NDArray[np.float32]
) -> list[float]:
    """For each word spoken at ``mouths``, when it reached the output buffer: the output
    around that time is cross-correlated with the word, and the best lag is its delay.
    (Noise suppression fades a word's first milliseconds in; correlation still finds the
    word, where a level threshold would count the fade as delay.)"""
    if not sink.frames:
        return []
    starts = np.array([at for at, _ in sink.frames])
    block = len(sink.frames[0][1])
    audio = np.concatenate([b for _, b in sink.frames]).mean(axis=1)
    delays = []
    for mouth in mouths:
        first = int(np.searchsorted(starts, mouth - 0.02))
        segment = audio[first * block : first * block + 2 * len(word) + SAMPLE_RATE // 5]
        if len(segment) < len(word):
            continue
        score = np.correlate(segment, word, mode="valid")
        best = int(np.argmax(score))
        if score[best] < 0.3 * float(np.dot(word, word)):
            continue  # not heard
        block_index, offset = divmod(best, block)
        ear = starts[first + block_index] + offset / SAMPLE_RATE
        delays.append((ear - mouth) * 1000)
    return delays


async def mouth_to_ear(
    base_url: str, frame_ms: int, noise_suppression: bool, seconds: float
) -> list[float]:
    talker, listener = Client(base_url), Client(base_url)
    suffix = f"{frame_ms}{int(noise_suppression)}{int(time.time() * 1000) % 100000}"
    await talker.register(f"talk{suffix}", "correct horse battery")
    await listener.register(f"hear{suffix}", "correct horse battery")
    for client in (talker, listener):
        await client.start()
        await client.wait_until_online()
    try:
        guild = await talker.create_guild("bench")
        text = (await talker.fetch_channels(guild.id))[0]
        invite = await talker.create_invite(text.id)
        await listener.join(invite.code)
        channel = await talker.create_channel(guild.id, "Voice", type=2)
        sink = BufferSink()
        heard = await listener.join_voice(
            channel.id,
            source=GeneratorSource(
                lambda i: np.zeros(SAMPLE_RATE * frame_ms // 1000), frame_ms=frame_ms
            ),
            sink=sink,
            frame_ms=frame_ms,
            noise_suppression=noise_suppression,
        )
        await heard.wait_connected()
        onsets: list[tuple[float, int]] = []
        speaker = await talker.join_voice(
            channel.id,
            source=click_source(frame_ms, onsets),
            sink=NullSink(),
            frame_ms=frame_ms,
            noise_suppression=noise_suppression,
        )
        await speaker.wait_connected()
        onsets.clear()
        sink.frames.clear()
        await asyncio.sleep(seconds)
        frame_s = frame_ms / 1000
        captured = [read_at - frame_s + offset / SAMPLE_RATE for read_at, offset in onsets]
        return delays_heard(sink, captured[:-1], spoken_word())
    finally:
        await talker.close()
        await listener.close()


def pipeline_cpu(seconds: float, frame_ms: int) -> dict[str, float]:
    """CPU per frame of the capture side (denoise + VAD + encode) and per speaker of the
    playback side (decode + mix), on speech-like noise, as % of one core in real time."""
    frame = SAMPLE_RATE * frame_ms // 1000
    frames = int(seconds * 1000 / frame_ms)
    rng = np.random.default_rng(1)
    audio = (0.2 * rng.standard_normal(frames * frame)).astype(np.float32)
    packets: list[tuple[bytes, int]] = []

    def keep(payload: bytes, timestamp: int, _at: float) -> None:
        packets.append((payload, timestamp))

    figures = {}
    for label, suppress in (("capture, noise suppression on", True), ("capture, off", False)):
        packets.clear()
        capture = CapturePipeline(
            GeneratorSource(lambda i: None), keep, frame_ms=frame_ms, noise_suppression=suppress
        )
        started = time.process_time()
        for index in range(frames):
            capture.process_frame(
                audio[index * frame : (index + 1) * frame], index * frame_ms / 1e3
            )
        figures[label] = 100 * (time.process_time() - started) / seconds
    playback = PlaybackPipeline(NullSink(), frame_ms=frame_ms)
    started = time.process_time()
    for index, (payload, timestamp) in enumerate(packets):
        playback.receive(1, payload, timestamp, index * frame_ms / 1e3)
        playback.tick(index * frame_ms / 1e3 + frame_ms / 1e3)
    figures["playback, per speaker"] = 100 * (time.process_time() - started) / seconds
    return figures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--seconds", type=float, default=12.0, help="per mouth-to-ear run")
    parser.add_argument("--no-sfu", action="store_true", help="skip the SFU load figures")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 4.0
    logging.basicConfig(level=logging.ERROR)

    print("== client pipeline CPU (% of one core, real time) ==")
    for label, value in pipeline_cpu(5.0 if args.quick else 15.0, 20).items():
        print(f"  {label:34s} {value:5.1f}%   (target < 6% per speaker)")

    relay = _relay.Relay()
    try:
        url = relay.start()
        print("\n== mouth-to-ear through the relay's SFU, loopback (capture -> output buffer) ==")
        for frame_ms, suppress in ((20, False), (20, True), (10, False), (10, True)):
            delays = asyncio.run(mouth_to_ear(url, frame_ms, suppress, args.seconds))
            if not delays:
                print(f"  {frame_ms} ms frames, noise suppression {suppress}: no clicks heard")
                continue
            p50, p95 = statistics.median(delays), percentile(delays, 0.95)
            print(
                f"  {frame_ms} ms frames, noise suppression {'on ' if suppress else 'off'}: "
                f"p50 {p50:5.1f} ms  p95 {p95:5.1f} ms  (n={len(delays)})  "
                f"Mumble ~{MUMBLE_MOUTH_TO_EAR_MS:.0f} ms before jitter buffer: "
                f"x{p50 / MUMBLE_MOUTH_TO_EAR_MS:.2f}; target < 60 ms"
            )
    finally:
        relay.stop()

    if not args.no_sfu:
        from bench.voice_sfu import main as sfu_main

        print()
        sfu_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

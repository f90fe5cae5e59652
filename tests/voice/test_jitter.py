"""The jitter buffer under an invented clock: every arrival and tick time is chosen, so
each scenario (reorder, loss, lateness, talk gaps, jitter) is exact and repeatable."""

from __future__ import annotations

import random

import pytest

from nexus_client.voice.jitter import JitterBuffer, PopResult

FRAME_MS = 20
FRAME = 960  # samples per 20 ms frame
TICK = FRAME_MS / 1000


def payload(index: int) -> bytes:
    return f"frame-{index}".encode()


def drain(buffer: JitterBuffer, first_tick: float, ticks: int) -> list[PopResult]:
    return [buffer.pop(first_tick + k * TICK) for k in range(ticks)]


def played_indices(results: list[PopResult]) -> list[int]:
    return [int(p.decode().split("-")[1]) for kind, p in results if kind == "frame" and p]


def run_stream(
    buffer: JitterBuffer,
    frames: int,
    arrival_delay: dict[int, float] | None = None,
    skip: set[int] = frozenset(),  # type: ignore[assignment]
    tick_phase: float = 0.007,
) -> list[PopResult]:
    """Frame k is sent at k * 20 ms and arrives after 5 ms plus its extra delay; the
    playout ticks every 20 ms, offset by ``tick_phase``. Events are processed in time order."""
    arrival_delay = arrival_delay or {}
    events: list[tuple[float, int, int]] = []
    for k in range(frames):
        if k not in skip:
            events.append((k * TICK + 0.005 + arrival_delay.get(k, 0.0), 0, k))
    total_ticks = frames + 40
    events += [(k * TICK + tick_phase, 1, k) for k in range(total_ticks)]
    results = []
    for time, is_tick, k in sorted(events):
        if is_tick:
            results.append(buffer.pop(time))
        else:
            buffer.put(k * FRAME, payload(k), time)
    return results


def test_clean_link_plays_everything_in_order_at_the_minimum_delay() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    results = run_stream(buffer, 200)
    assert played_indices(results) == list(range(200))
    stats = buffer.stats
    assert stats.target_ms == pytest.approx(FRAME_MS)
    assert FRAME_MS / 2 <= stats.depth_ms <= FRAME_MS * 1.5
    assert (stats.lost, stats.late, stats.duplicates) == (0, 0, 0)
    # When the talker stops, at most 60 ms are concealed before the buffer falls silent.
    assert stats.concealed <= 3
    assert results[-1] == ("silence", None)


def test_reordered_packets_come_out_in_order() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS, min_delay_ms=40)
    # Frames 10 and 11 swap places on the way, 30 overtakes 29.
    results = run_stream(buffer, 60, arrival_delay={10: 0.025, 29: 0.022})
    assert played_indices(results) == list(range(60))
    assert buffer.stats.lost == 0
    assert buffer.stats.late == 0


def test_duplicates_are_dropped_and_counted() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    buffer.put(0, payload(0), 0.0)
    buffer.put(0, payload(0), 0.001)
    assert buffer.pop(0.02) == ("frame", payload(0))
    buffer.put(0, payload(0), 0.021)  # a copy of one already played
    buffer.put(FRAME, payload(1), 0.022)
    assert buffer.pop(0.04) == ("frame", payload(1))
    assert buffer.stats.duplicates == 2
    assert buffer.stats.late == 0


def test_a_lost_packet_is_reported_once_for_concealment() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    results = run_stream(buffer, 50, skip={20})
    assert played_indices(results) == [k for k in range(50) if k != 20]
    assert buffer.stats.lost == 1
    # Between frame 19 and 21 the caller was told to conceal, never to fall silent.
    kinds = [kind for kind, _ in results]
    first, last = kinds.index("frame"), len(kinds) - 1 - kinds[::-1].index("frame")
    assert "silence" not in kinds[first:last]
    assert "lost" in kinds[first:last]


def test_a_packet_after_its_playout_time_is_dropped_as_late() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    # Frame 20 is 150 ms late: by then 21 onwards have been played in its place.
    results = run_stream(buffer, 50, arrival_delay={20: 0.150})
    played = played_indices(results)
    assert 20 not in played
    assert played == sorted(played)
    assert buffer.stats.late == 1
    assert buffer.stats.lost == 1


def test_a_talk_gap_is_silence_then_playout_resynchronises() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    spurt_two = range(100, 130)  # the sender stayed quiet for frames 30..99 (1.4 s)
    results = run_stream(buffer, 130, skip=set(range(30, 100)))
    kinds = [kind for kind, _ in results]
    assert played_indices(results) == [*range(30), *spurt_two]
    # A dry buffer is concealed for at most 60 ms, the rest of the gap is plain silence.
    gap = kinds[kinds.index("frame") + 30 : kinds.index("frame") + 100]
    assert gap.count("lost") <= 3
    assert gap.count("silence") >= len(gap) - 3
    assert buffer.stats.lost == 0
    # The second spurt starts at the minimum delay again, not 1.4 s late.
    assert buffer.stats.depth_ms <= FRAME_MS * 1.5


def test_timestamp_jump_while_buffered_is_a_new_spurt_not_a_loss() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS, min_delay_ms=150)
    # Three frames, a pause of 80 ms (frames 3..6 never sent), then talk again.
    results = run_stream(buffer, 12, skip={3, 4, 5, 6})
    kinds = [kind for kind, _ in results]
    assert played_indices(results) == [0, 1, 2, *range(7, 12)]
    assert buffer.stats.lost == 0
    pause = kinds[kinds.index("frame") + 3 : kinds.index("frame") + 7]
    assert pause == ["silence"] * 4


def test_delay_grows_under_jitter_and_recovers_the_stream() -> None:
    rng = random.Random(7)
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    jitter = {k: rng.uniform(0.0, 0.060) for k in range(400)}
    results = run_stream(buffer, 400, arrival_delay=jitter)
    stats = buffer.stats
    assert stats.target_ms >= 50  # up from 20: covers most of the 60 ms spread
    assert stats.target_ms <= 100
    # Once adapted, nearly everything plays: losses are the early misses only.
    assert stats.late + stats.lost < 20
    played = played_indices(results)
    assert played == sorted(played)
    assert len(played) > 380


def test_delay_shrinks_slowly_when_the_jitter_stops() -> None:
    rng = random.Random(3)
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    jitter = {k: rng.uniform(0.0, 0.080) for k in range(250)}
    run_stream(buffer, 250, arrival_delay=jitter)
    raised = buffer.stats.target_ms
    targets = []
    for k in range(300, 300 + 500):  # the same talker, after a pause, on a calm link
        buffer.put(k * FRAME, payload(k), k * TICK + 0.005)
        buffer.pop(k * TICK + 0.012)
        targets.append(buffer.stats.target_ms)
    # At most a frame per second down, so a calm second is not enough to undo it…
    assert targets[49] >= raised - FRAME_MS - 1
    # …but ten calm seconds bring it back to the minimum.
    assert targets[-1] == pytest.approx(FRAME_MS)


def test_memory_is_bounded_when_nobody_pops() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS, max_delay_ms=200)
    for k in range(10_000):
        buffer.put(k * FRAME, payload(k), k * TICK)
    assert buffer.stats.buffered <= 200 // FRAME_MS + 3
    # The newest audio is what is kept.
    assert buffer.pop(10_000 * TICK)[1] is not None


def test_a_restarted_sender_is_followed_not_dropped_as_late() -> None:
    buffer = JitterBuffer(frame_ms=FRAME_MS)
    run_stream(buffer, 100)
    buffer.put(0, payload(0), 100.0)  # timestamps start again from zero
    assert drain(buffer, 100.02, 2)[0] == ("frame", payload(0))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        JitterBuffer(frame_ms=30)
    with pytest.raises(ValueError, match="min_delay_ms"):
        JitterBuffer(min_delay_ms=300, max_delay_ms=200)
    with pytest.raises(ValueError, match="timestamp"):
        JitterBuffer().put(-1, b"x", 0.0)

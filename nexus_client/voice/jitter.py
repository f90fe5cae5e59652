"""An adaptive jitter buffer for one speaker: packets in at any time, one decision per tick.

No I/O and no clock of its own: ``put`` is given the arrival time and ``pop`` the playout
time, so the same object runs under the real ticker and under a test's invented clock.

Model. Each packet's *relative arrival* is ``arrival - timestamp / 48000``; the smallest one
over the last few seconds is the link's best case (the *baseline*), and a packet's jitter is
how much later than that it came. The target delay is a high percentile of recent jitter
plus half a frame (a tick can fall anywhere within a frame), clamped to
``[min_delay_ms, max_delay_ms]``. It grows the moment jitter does and shrinks by at most
one frame per second, so a single quiet spell does not undo it.

Invariants:

* A talk spurt starts playing at the tick nearest to ``baseline + timestamp + target``: a
  clean link therefore costs ``min_delay_ms`` (one frame by default), not aiortc's 80 ms.
* While playing, timestamps come out strictly increasing, one frame per tick. Anything at
  or behind the playout point on arrival is a duplicate (already held or played) or late,
  and is dropped and counted.
* A missing frame with later audio already buffered is "lost" (the caller conceals it).
  A buffer that runs dry is stretched with concealment (the delay grows by a frame per
  tick) for at most :data:`MAX_CONCEAL_MS`; past that the talker has stopped (VAD/DTX), the
  buffer goes idle and answers "silence", and the next packet starts a new spurt. A jump
  forward of more than :data:`MAX_CONCEAL_MS` is likewise a new spurt, never concealment.
* If playout has run more than a frame behind target for a second, one frame is skipped;
  beyond ``max_delay_ms`` frames are skipped at once. The buffer holds at most
  ``max_delay_ms`` of audio plus a margin; the oldest goes first.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from .audio import SAMPLE_RATE, samples_per_frame

PopResult = tuple[Literal["frame", "lost", "silence"], bytes | None]

MAX_CONCEAL_MS = 60
JITTER_WINDOW_S = 4.0
JITTER_PERCENTILE = 0.95
SHRINK_AFTER_S = 1.0
# A timestamp this far behind playout is a restarted sender, not a late packet.
RESTART_AFTER_S = 1.0
# Played timestamps remembered to tell a duplicate from a late first copy.
PLAYED_MEMORY = 64


@dataclass(frozen=True, slots=True)
class JitterStats:
    depth_ms: float
    """Delay added to the latest played frame beyond the link's best case."""
    target_ms: float
    buffered: int
    late: int
    lost: int
    duplicates: int
    concealed: int
    """Ticks answered "lost": lost frames plus stretches of a dry buffer."""
    skipped: int
    """Frames discarded to bring the delay back down."""


class JitterBuffer:
    def __init__(
        self, *, frame_ms: int = 20, min_delay_ms: float | None = None, max_delay_ms: float = 200
    ) -> None:
        self.frame_ms = frame_ms
        self._frame_samples = samples_per_frame(frame_ms)
        self._frame_s = frame_ms / 1000
        min_delay_ms = frame_ms if min_delay_ms is None else min_delay_ms
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError(
                f"need 0 <= min_delay_ms <= max_delay_ms, got {min_delay_ms} and {max_delay_ms}"
            )
        self.min_delay_s = min_delay_ms / 1000
        self.max_delay_s = max_delay_ms / 1000
        self._capacity = math.ceil(max_delay_ms / frame_ms) + math.ceil(MAX_CONCEAL_MS / frame_ms)
        self._max_conceal_ticks = math.ceil(MAX_CONCEAL_MS / frame_ms)
        self._shrink_after_ticks = round(SHRINK_AFTER_S / self._frame_s)
        self._shrink_step_s = self._frame_s * self._frame_s / SHRINK_AFTER_S

        self._packets: dict[int, bytes] = {}
        self._relative_arrivals: deque[float] = deque(maxlen=round(JITTER_WINDOW_S / self._frame_s))
        self._baseline_s = 0.0
        self._target_s = self.min_delay_s
        self._played: deque[int] = deque(maxlen=PLAYED_MEMORY)
        self._played_set: set[int] = set()

        self._playing = False
        self._next_ts: int | None = None
        self._dry_ticks = 0
        self._excess_ticks = 0
        self._depth_s = 0.0

        self._late = 0
        self._lost = 0
        self._duplicates = 0
        self._concealed = 0
        self._skipped = 0

    @property
    def stats(self) -> JitterStats:
        return JitterStats(
            depth_ms=self._depth_s * 1000,
            target_ms=self._target_s * 1000,
            buffered=len(self._packets),
            late=self._late,
            lost=self._lost,
            duplicates=self._duplicates,
            concealed=self._concealed,
            skipped=self._skipped,
        )

    @property
    def playing(self) -> bool:
        return self._playing

    def put(self, timestamp: int, payload: bytes, arrival: float) -> None:
        if timestamp < 0:
            raise ValueError(f"timestamp must not be negative, not {timestamp}")
        if timestamp in self._packets or timestamp in self._played_set:
            self._duplicates += 1
            return
        if self._next_ts is not None and self._next_ts - timestamp > RESTART_AFTER_S * SAMPLE_RATE:
            self._restart()
        self._measure(timestamp, arrival)
        if self._next_ts is not None and timestamp < self._next_ts:
            self._late += 1
            return
        self._packets[timestamp] = payload
        while len(self._packets) > self._capacity:
            del self._packets[min(self._packets)]
            self._skipped += 1

    def pop(self, now: float) -> PopResult:
        if not self._playing and not self._start_spurt(now):
            return ("silence", None)
        assert self._next_ts is not None
        if not self._packets:
            self._dry_ticks += 1
            if self._dry_ticks > self._max_conceal_ticks:
                self._playing = False
                return ("silence", None)
            self._concealed += 1
            return ("lost", None)
        earliest = min(self._packets)
        if earliest - self._next_ts >= self._frame_samples:
            if earliest - self._next_ts > self._max_conceal_ticks * self._frame_samples:
                # The sender went quiet and has started again: resynchronise to it.
                self._playing = False
                return self.pop(now)
            self._lost += 1
            self._concealed += 1
            self._next_ts += self._frame_samples
            return ("lost", None)
        return ("frame", self._play(earliest, now))

    def reset(self) -> None:
        """Forget the stream, keeping the counters (e.g. the sender restarted)."""
        self._restart()

    def _restart(self) -> None:
        self._packets.clear()
        self._relative_arrivals.clear()
        self._played.clear()
        self._played_set.clear()
        self._playing = False
        self._next_ts = None
        self._target_s = self.min_delay_s
        self._depth_s = 0.0

    def _measure(self, timestamp: int, arrival: float) -> None:
        self._relative_arrivals.append(arrival - timestamp / SAMPLE_RATE)
        ordered = sorted(self._relative_arrivals)
        self._baseline_s = ordered[0]
        jitter_s = ordered[min(len(ordered) - 1, int(JITTER_PERCENTILE * len(ordered)))]
        jitter_s -= self._baseline_s
        wanted = min(self.max_delay_s, max(self.min_delay_s, jitter_s + self._frame_s / 2))
        self._target_s = max(wanted, self._target_s - self._shrink_step_s)

    def _start_spurt(self, now: float) -> bool:
        if not self._packets:
            return False
        first = min(self._packets)
        due = first / SAMPLE_RATE + self._baseline_s + self._target_s - self._frame_s / 2
        if now < due:
            return False
        self._playing = True
        self._next_ts = first
        self._dry_ticks = 0
        self._excess_ticks = 0
        return True

    def _play(self, timestamp: int, now: float) -> bytes:
        payload = self._packets.pop(timestamp)
        self._depth_s = now - (timestamp / SAMPLE_RATE + self._baseline_s)
        following = timestamp + self._frame_samples
        if self._depth_s > self._target_s + self._frame_s:
            self._excess_ticks += 1
        else:
            self._excess_ticks = 0
        too_deep = self._depth_s > self.max_delay_s
        if following in self._packets and (
            too_deep or self._excess_ticks >= self._shrink_after_ticks
        ):
            self._skipped += 1
            self._excess_ticks = 0
            self._remember(timestamp)
            timestamp, payload = following, self._packets.pop(following)
            self._depth_s -= self._frame_s
        self._remember(timestamp)
        self._next_ts = timestamp + self._frame_samples
        self._dry_ticks = 0
        return payload

    def _remember(self, timestamp: int) -> None:
        if len(self._played) == self._played.maxlen:
            self._played_set.discard(self._played[0])
        self._played.append(timestamp)
        self._played_set.add(timestamp)

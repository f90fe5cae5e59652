"""Which talkers a room forwards: the N loudest of those heard just now.

More than a few simultaneous voices are unintelligible, and forwarding every talker to
every listener costs talkers times listeners packets, so each listener gets only the N
loudest recent talkers other than itself.

Loudness is the talker's level byte (-dBov, 0 loud .. 127 silent) turned around and
smoothed with a ~200 ms exponential average, so a single loud click does not steal a slot.
A talker counts only if heard in the last ~300 ms: clients stop sending in silence, so a
talker who stopped is not holding a slot with a stale level.

The ranking keeps the N + 1 loudest, because a listener who is itself among the N
loudest hears the (N + 1)-th in its place. It is recomputed at most once per packet
interval, not per packet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nexus_protocol.voice_media import MAX_LEVEL

SMOOTHING_SECONDS = 0.2
RECENT_SECONDS = 0.3
RERANK_SECONDS = 0.02


@dataclass(slots=True)
class _TalkerLoudness:
    loudness: float
    heard_at: float


class LoudestTalkers:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the number of talkers to forward must be at least 1, got {limit}")
        self.limit = limit
        self._talkers: dict[int, _TalkerLoudness] = {}
        self._forwarded: tuple[int, ...] = ()  # the N loudest recent talkers
        self._runner_up: int | None = None  # the (N + 1)-th, heard by those N
        self._ranked_at = -math.inf

    def hear(self, user_id: int, level: int, now: float) -> None:
        loudness = float(MAX_LEVEL - level)
        talker = self._talkers.get(user_id)
        if talker is None or now - talker.heard_at > RECENT_SECONDS:
            self._talkers[user_id] = _TalkerLoudness(loudness, now)
            self._ranked_at = -math.inf  # a new voice may belong in the ranking right away
            return
        weight = 1.0 - math.exp(-(now - talker.heard_at) / SMOOTHING_SECONDS)
        talker.loudness += weight * (loudness - talker.loudness)
        talker.heard_at = now

    def forget(self, user_id: int) -> None:
        if self._talkers.pop(user_id, None) is not None:
            self._ranked_at = -math.inf

    def audience(self, talker_id: int, now: float) -> tuple[int, ...] | None:
        """Who should get this talker's packet: ``None`` for every listener, else these ids.

        The talker itself is never meant, whatever this says: the caller skips it.
        Answered once per packet rather than per listener, as a room's fan-out is the
        SFU's hot loop.
        """
        self._rerank_if_due(now)
        if talker_id in self._forwarded:
            return None
        if talker_id == self._runner_up:
            return self._forwarded
        return ()

    def _rerank_if_due(self, now: float) -> None:
        if now - self._ranked_at >= RERANK_SECONDS:
            recent = [
                (talker.loudness, user_id)
                for user_id, talker in self._talkers.items()
                if now - talker.heard_at <= RECENT_SECONDS
            ]
            recent.sort(reverse=True)
            ranking = tuple(user_id for _, user_id in recent[: self.limit + 1])
            self._forwarded = ranking[: self.limit]
            self._runner_up = ranking[self.limit] if len(ranking) > self.limit else None
            self._ranked_at = now

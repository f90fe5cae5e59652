"""Recording consent: who records in which channel, and who agreed to be recorded.

The relay never records (it never sees audio it could write); it keeps the one shared
truth of the consent state so that every client shows the same indicator and the
recorder's client knows whose audio it may write. Everyone present is asked; a newcomer
is asked on joining; only an explicit yes counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recording:
    channel_id: int
    guild_id: int | None
    recorder_id: int
    # None: asked, no answer yet (treated as a refusal until they say yes).
    consents: dict[int, bool | None] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        return {
            "channel_id": str(self.channel_id),
            "guild_id": None if self.guild_id is None else str(self.guild_id),
            "recorder_id": str(self.recorder_id),
            "consents": {str(user): answer for user, answer in sorted(self.consents.items())},
        }


def stopped(channel_id: int, guild_id: int | None) -> dict[str, Any]:
    return {
        "channel_id": str(channel_id),
        "guild_id": None if guild_id is None else str(guild_id),
        "recorder_id": None,
        "consents": {},
    }


class RecordingConsents:
    def __init__(self) -> None:
        self._by_channel: dict[int, Recording] = {}

    def get(self, channel_id: int) -> Recording | None:
        return self._by_channel.get(channel_id)

    def request(
        self, channel_id: int, guild_id: int | None, recorder_id: int, present: list[int]
    ) -> Recording | None:
        """Start asking; None if someone else already records here."""
        current = self._by_channel.get(channel_id)
        if current is not None and current.recorder_id != recorder_id:
            return None
        recording = Recording(channel_id, guild_id, recorder_id)
        for user_id in present:
            recording.consents[user_id] = True if user_id == recorder_id else None
        self._by_channel[channel_id] = recording
        return recording

    def answer(self, channel_id: int, user_id: int, consent: bool) -> Recording | None:
        recording = self._by_channel.get(channel_id)
        if recording is None or user_id not in recording.consents:
            return None
        recording.consents[user_id] = consent
        return recording

    def joined(self, channel_id: int, user_id: int) -> Recording | None:
        """A newcomer is asked before anything of theirs may be written."""
        recording = self._by_channel.get(channel_id)
        if recording is None:
            return None
        recording.consents.setdefault(user_id, None)
        return recording

    def left(self, channel_id: int, user_id: int) -> tuple[Recording | None, bool]:
        """(the recording, whether it ended because its recorder left)."""
        recording = self._by_channel.get(channel_id)
        if recording is None:
            return None, False
        if recording.recorder_id == user_id:
            del self._by_channel[channel_id]
            return recording, True
        recording.consents.pop(user_id, None)
        return recording, False

    def stop(self, channel_id: int, user_id: int) -> Recording | None:
        recording = self._by_channel.get(channel_id)
        if recording is None or recording.recorder_id != user_id:
            return None
        del self._by_channel[channel_id]
        return recording

"""Who is in which voice channel or call, on this node.

Voice states are live facts, not records: they exist while a gateway session is in a
call, and vanish with it (as on Discord). Nothing here is written to the database; the
server mute and deafen flags they carry come from the member rows, which are.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nexus_protocol.voice import voice_state


@dataclass
class VoiceState:
    user_id: int
    channel_id: int
    guild_id: int | None  # None: a DM or group DM call
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False
    mute: bool = False  # by a moderator, or for want of SPEAK
    deaf: bool = False
    # The one-use token the client must present with its SDP offer (op 40).
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Whether the client's media reached the SFU (an answer was returned).
    media_connected: bool = False

    def render(self, member: dict[str, Any] | None = None) -> dict[str, Any]:
        return voice_state(
            user_id=self.user_id,
            channel_id=self.channel_id,
            guild_id=self.guild_id,
            session_id=self.session_id,
            self_mute=self.self_mute,
            self_deaf=self.self_deaf,
            mute=self.mute,
            deaf=self.deaf,
            member=member,
        )

    def render_left(self) -> dict[str, Any]:
        """The dispatch that tells others this user left the channel."""
        body = self.render()
        body["channel_id"] = None
        return body

    @property
    def silenced(self) -> bool:
        """Whether the SFU must not forward this user's audio."""
        return self.mute

    @property
    def hears_nothing(self) -> bool:
        """Whether the SFU may stop forwarding to this user (saves their bandwidth)."""
        return self.deaf or self.self_deaf


class VoiceStateTable:
    """One voice state per user: joining another channel moves them there."""

    def __init__(self) -> None:
        self._by_user: dict[int, VoiceState] = {}
        self._by_channel: dict[int, dict[int, VoiceState]] = {}

    def get(self, user_id: int) -> VoiceState | None:
        return self._by_user.get(user_id)

    def put(self, state: VoiceState) -> VoiceState | None:
        """Store ``state``; returns the state it replaced in another channel, if any."""
        previous = self._by_user.get(state.user_id)
        if previous is not None:
            self._discard(previous)
        self._by_user[state.user_id] = state
        self._by_channel.setdefault(state.channel_id, {})[state.user_id] = state
        return previous if previous is not None and previous is not state else None

    def remove(self, user_id: int) -> VoiceState | None:
        state = self._by_user.pop(user_id, None)
        if state is not None:
            self._discard(state)
        return state

    def _discard(self, state: VoiceState) -> None:
        members = self._by_channel.get(state.channel_id)
        if members is not None and members.get(state.user_id) is state:
            del members[state.user_id]
            if not members:
                del self._by_channel[state.channel_id]
        if self._by_user.get(state.user_id) is state:
            del self._by_user[state.user_id]

    def in_channel(self, channel_id: int) -> list[VoiceState]:
        return list(self._by_channel.get(channel_id, {}).values())

    def in_guild(self, guild_id: int) -> list[VoiceState]:
        return [state for state in self._by_user.values() if state.guild_id == guild_id]

    def __iter__(self) -> Iterator[VoiceState]:
        return iter(list(self._by_user.values()))

    def __len__(self) -> int:
        return len(self._by_user)

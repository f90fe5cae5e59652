"""Who is in which voice channel or call, as the gateway last said.

Kept apart from the voice package on purpose: it is what the channel list needs to
show people in voice channels, and it must not pull in the audio stack (numpy, PyAV,
aiortc) for someone who never joins a call.
"""

from __future__ import annotations

from typing import Any


class VoiceStateTracker:
    def __init__(self) -> None:
        self._by_user: dict[int, dict[str, Any]] = {}

    def apply(self, event: str, data: Any) -> bool:
        """Fold one dispatch in; True if voice states changed."""
        if not isinstance(data, dict):
            return False
        if event == "VOICE_STATE_UPDATE":
            return self._put(data)
        if event == "GUILD_CREATE":
            guild_id = data.get("id")
            for user_id in [u for u, s in self._by_user.items() if s.get("guild_id") == guild_id]:
                del self._by_user[user_id]
            for state in data.get("voice_states") or ():
                if isinstance(state, dict):
                    self._put({**state, "guild_id": guild_id})
            return True
        if event in ("CALL_CREATE", "CALL_UPDATE"):
            for state in data.get("voice_states") or ():
                if isinstance(state, dict):
                    self._put(state)
            return True
        return False

    def _put(self, state: dict[str, Any]) -> bool:
        try:
            user_id = int(state["user_id"])
        except (KeyError, TypeError, ValueError):
            return False
        if state.get("channel_id") is None:
            return self._by_user.pop(user_id, None) is not None
        self._by_user[user_id] = state
        return True

    def of_user(self, user_id: int) -> dict[str, Any] | None:
        return self._by_user.get(user_id)

    def in_channel(self, channel_id: int) -> list[dict[str, Any]]:
        wanted = str(channel_id)
        return [s for s in self._by_user.values() if s.get("channel_id") == wanted]

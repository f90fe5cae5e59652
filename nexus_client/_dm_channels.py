"""The user's DM and group DM channels, with their recipients, kept current from the
gateway: READY's ``private_channels``, ``CHANNEL_CREATE`` / ``CHANNEL_DELETE`` for
channels without a guild, ``CHANNEL_RECIPIENT_ADD`` / ``_REMOVE``, recipients' profiles
from ``USER_UPDATE`` and the ``last_message_id`` of each new message. A malformed payload
is counted and dropped."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from pydantic import ValidationError

from nexus_protocol.models import User

DM: Final = 1
GROUP_DM: Final = 3


@dataclass(frozen=True, slots=True)
class DMChannel:
    """A DM (``type`` 1) or group DM (3). ``recipients`` are the other members (you are
    not listed, as in Discord); ``owner_id`` is set for a group DM."""

    id: int
    type: int
    recipients: tuple[User, ...]
    owner_id: int | None
    last_message_id: int | None

    @property
    def is_group(self) -> bool:
        return self.type == GROUP_DM


def _channel(data: dict[str, Any]) -> DMChannel:
    kind = int(data["type"])
    if kind not in (DM, GROUP_DM) or data.get("guild_id"):
        raise ValueError("not a DM channel")
    owner = data.get("owner_id")
    last = data.get("last_message_id")
    return DMChannel(
        id=int(data["id"]),
        type=kind,
        recipients=tuple(User.model_validate(u) for u in data.get("recipients") or []),
        owner_id=None if owner is None else int(owner),
        last_message_id=None if last is None else int(last),
    )


class DMChannels:
    """What the gateway said about the user's private channels."""

    def __init__(self) -> None:
        self._channels: dict[int, DMChannel] = {}
        self._me: int | None = None
        self.malformed = 0  # payloads that could not be read (dropped)

    def all(self) -> list[DMChannel]:
        """Every DM and group DM, the most recently active first."""
        return sorted(
            self._channels.values(), key=lambda c: c.last_message_id or c.id, reverse=True
        )

    def get(self, channel_id: int) -> DMChannel | None:
        return self._channels.get(channel_id)

    def remember(self, data: dict[str, Any]) -> None:
        """A channel object the relay returned (opening a DM, creating a group DM)."""
        self.apply("CHANNEL_CREATE", data)

    def apply(self, event: str, data: Any) -> None:
        try:
            self._apply(event, data)
        except (AttributeError, KeyError, TypeError, ValueError, ValidationError):
            self.malformed += 1

    def _apply(self, event: str, data: Any) -> None:
        if event == "READY":
            self._me = int(data["user"]["id"])
            channels = [_channel(c) for c in data.get("private_channels") or []]
            self._channels = {c.id: c for c in channels}
        elif event in ("CHANNEL_CREATE", "CHANNEL_UPDATE"):
            if data.get("guild_id") or int(data["type"]) not in (DM, GROUP_DM):
                return
            channel = _channel(data)
            self._channels[channel.id] = channel
        elif event == "CHANNEL_DELETE":
            if not data.get("guild_id"):
                self._channels.pop(int(data["id"]), None)
        elif event in ("CHANNEL_RECIPIENT_ADD", "CHANNEL_RECIPIENT_REMOVE"):
            self._recipient(event == "CHANNEL_RECIPIENT_ADD", data)
        elif event == "USER_UPDATE":
            self._profile_changed(User.model_validate(data))
        elif event == "MESSAGE_CREATE":
            known = self._channels.get(int(data["channel_id"]))
            if known is not None:
                message_id = int(data["id"])
                if known.last_message_id is None or message_id > known.last_message_id:
                    self._channels[known.id] = replace(known, last_message_id=message_id)

    def _profile_changed(self, user: User) -> None:
        for channel in list(self._channels.values()):
            if any(u.id == user.id for u in channel.recipients):
                recipients = tuple(user if u.id == user.id else u for u in channel.recipients)
                self._channels[channel.id] = replace(channel, recipients=recipients)

    def _recipient(self, added: bool, data: dict[str, Any]) -> None:
        channel = self._channels.get(int(data["channel_id"]))
        user = User.model_validate(data["user"])
        if channel is None or user.id == self._me:
            return  # our own arrival or departure comes as CHANNEL_CREATE / _DELETE
        others = [u for u in channel.recipients if u.id != user.id]
        if added:
            others.append(user)
        owner = channel.owner_id
        if not added and owner == user.id:
            # The relay's rule: the remaining member with the lowest id owns it.
            remaining = [u.id for u in others] + ([self._me] if self._me is not None else [])
            owner = min(remaining) if remaining else None
        self._channels[channel.id] = replace(channel, recipients=tuple(others), owner_id=owner)

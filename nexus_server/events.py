"""What the fan-out bus carries: one dispatch, encoded once, with the users it reaches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Event:
    """A gateway dispatch on its way to every socket of ``user_ids``.

    ``data`` is the JSON of the dispatch's ``d``, encoded once for all receivers.
    ``guild_id`` lets nodes drop cached permissions when the guild changes.
    """

    name: str
    data: bytes
    user_ids: frozenset[int]
    guild_id: int | None = None

    @classmethod
    def of(
        cls, name: str, payload: Any, user_ids: frozenset[int], guild_id: int | None = None
    ) -> Event:
        return cls(name, orjson.dumps(payload), user_ids, guild_id)

    def to_bytes(self) -> bytes:
        header = orjson.dumps({"t": self.name, "u": sorted(self.user_ids), "g": self.guild_id})
        return header + b"\n" + self.data

    @classmethod
    def from_bytes(cls, raw: bytes) -> Event:
        header_raw, _, data = raw.partition(b"\n")
        header = orjson.loads(header_raw)
        return cls(header["t"], data, frozenset(header["u"]), header["g"])


# Relay-internal: login sessions were revoked (``d``: {"revoked": [ids]} or {"except": id
# or null}); every node closes the gateway sockets opened with them. Never sent to clients.
SESSIONS_REVOKED = "NEXUS_SESSIONS_REVOKED"

# Dispatches after which a guild's cached permissions or audience may be wrong.
PERMISSION_CHANGING = frozenset(
    {
        "GUILD_UPDATE",
        "GUILD_DELETE",
        "GUILD_ROLE_CREATE",
        "GUILD_ROLE_UPDATE",
        "GUILD_ROLE_DELETE",
        "CHANNEL_CREATE",
        "CHANNEL_UPDATE",
        "CHANNEL_DELETE",
        "GUILD_MEMBER_ADD",
        "GUILD_MEMBER_UPDATE",
        "GUILD_MEMBER_REMOVE",
    }
)

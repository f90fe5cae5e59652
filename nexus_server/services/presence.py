"""Presence: who is online, idle, do-not-disturb or invisible (shown as offline).

Held in memory on the node that serves the user's sockets; told to everyone who
shares a community with them.
"""

from __future__ import annotations

from typing import Any

from nexus_protocol.models import PresenceStatus

from ..events import Event
from ..store import guilds as guild_store
from .context import Context


class PresenceService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._status: dict[int, PresenceStatus] = {}

    def status_of(self, user_id: int) -> PresenceStatus:
        """What others see: invisible users look offline."""
        status = self._status.get(user_id, PresenceStatus.OFFLINE)
        return PresenceStatus.OFFLINE if status is PresenceStatus.INVISIBLE else status

    def presences(self, user_ids: set[int]) -> list[dict[str, Any]]:
        return [
            presence_json(user_id, self.status_of(user_id))
            for user_id in user_ids
            if self.status_of(user_id) is not PresenceStatus.OFFLINE
        ]

    async def do_connect(self, user_id: int, status: str | None) -> None:
        if status is None:
            if user_id in self._status:
                return
            status = PresenceStatus.ONLINE
        await self.do_update(user_id, status)

    async def do_disconnect(self, user_id: int) -> None:
        await self.do_update(user_id, PresenceStatus.OFFLINE)
        self._status.pop(user_id, None)

    async def do_update(self, user_id: int, status: str) -> None:
        try:
            new = PresenceStatus(status)
        except ValueError:
            new = PresenceStatus.ONLINE
        before = self.status_of(user_id)
        self._status[user_id] = new
        after = self.status_of(user_id)
        if before is after:
            return
        async with self._ctx.db.read("presence_guilds") as tx:
            guilds = await guild_store.guilds_of_user(tx, user_id)
        events = []
        for guild in guilds:
            audience = await self._ctx.permissions.guild_audience(guild.id)
            payload = presence_json(user_id, after) | {"guild_id": str(guild.id)}
            events.append(Event.of("PRESENCE_UPDATE", payload, audience, guild.id))
        await self._ctx.publish(events)


def presence_json(user_id: int, status: PresenceStatus) -> dict[str, Any]:
    return {
        "user": {"id": str(user_id)},
        "status": status.value,
        "activities": [],
        "client_status": {"desktop": status.value} if status is not PresenceStatus.OFFLINE else {},
    }

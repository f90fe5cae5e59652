"""Presence: who is online, idle, do-not-disturb or invisible (shown as offline).

Held in memory on the node that serves the user's sockets; told to everyone who
shares a community with them, and to a community's members when someone joins it while
connected (Discord sends PRESENCE_UPDATE right after GUILD_MEMBER_ADD).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import orjson

from nexus_protocol.models import PresenceStatus

from ..events import Event
from ..store import guilds as guild_store
from .context import Context

log = logging.getLogger(__name__)


class PresenceService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._status: dict[int, PresenceStatus] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

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

    def on_event(self, event: Event) -> None:
        """Every node sees every bus event. A newcomer is announced to their new community
        by the node that serves their sockets: only it knows their status, and the join
        itself may have been asked of another node."""
        if event.name != "GUILD_MEMBER_ADD" or event.guild_id is None:
            return
        user_id = _member_user_id(event.data)
        if user_id is not None and self.status_of(user_id) is not PresenceStatus.OFFLINE:
            self._spawn(self._announce_newcomer(event.guild_id, user_id))

    async def _announce_newcomer(self, guild_id: int, user_id: int) -> None:
        audience = await self._ctx.permissions.guild_audience(guild_id)
        # Read after the await: a status changed meanwhile was already told to everyone.
        status = self.status_of(user_id)
        if status is PresenceStatus.OFFLINE or user_id not in audience:
            return
        payload = presence_json(user_id, status) | {"guild_id": str(guild_id)}
        await self._ctx.publish([Event.of("PRESENCE_UPDATE", payload, audience, guild_id)])

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name="presence-announce")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("announcing a presence failed", exc_info=task.exception())


def _member_user_id(data: bytes) -> int | None:
    """The user id of a GUILD_MEMBER_ADD payload, or None if it has none."""
    try:
        user = orjson.loads(data).get("user")
        return int(user["id"]) if isinstance(user, dict) else None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def presence_json(user_id: int, status: PresenceStatus) -> dict[str, Any]:
    return {
        "user": {"id": str(user_id)},
        "status": status.value,
        "activities": [],
        "client_status": {"desktop": status.value} if status is not PresenceStatus.OFFLINE else {},
    }

"""Routes each bus event to the local gateway sessions of the users it names.

Owns the registry of sessions on this node: live ones by user, and detached ones by
session id until they expire, so a client that reconnects can RESUME.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nexus_protocol.gateway import EVENT_INTENTS, Intents
from nexus_protocol.session import ServerSession

from ..events import PERMISSION_CHANGING, Event

if TYPE_CHECKING:
    from .connection import GatewayConnection

log = logging.getLogger(__name__)


@dataclass(eq=False)
class SessionEntry:
    """A logical gateway session on this node and the connection serving it, if any."""

    session: ServerSession
    user_id: int
    intents: Intents
    connection: GatewayConnection | None = None
    detached_at: float | None = None
    # Events that arrive while READY is being built go out right after it.
    pending: list[Event] | None = field(default_factory=list)

    def deliver(self, event: Event) -> None:
        needed = EVENT_INTENTS.get(event.name)
        if needed is not None and not self.intents & needed:
            return
        if self.pending is not None:
            self.pending.append(event)
            return
        frame = self.session.dispatch(event.name, event.data)
        if self.connection is not None:
            self.connection.send_frame(frame)


class GatewayHub:
    def __init__(self, *, detached_ttl: float = 120.0) -> None:
        self._by_user: dict[int, set[SessionEntry]] = defaultdict(set)
        self._by_session_id: dict[str, SessionEntry] = {}
        self._detached_ttl = detached_ttl

    def on_event(self, event: Event) -> None:
        for user_id in event.user_ids:
            entries = self._by_user.get(user_id)
            if entries:
                for entry in tuple(entries):
                    entry.deliver(event)

    def register(self, entry: SessionEntry, session_id: str) -> None:
        self._by_user[entry.user_id].add(entry)
        self._by_session_id[session_id] = entry

    def find(self, session_id: str) -> SessionEntry | None:
        return self._by_session_id.get(session_id)

    def forget(self, entry: SessionEntry) -> None:
        entries = self._by_user.get(entry.user_id)
        if entries is not None:
            entries.discard(entry)
            if not entries:
                del self._by_user[entry.user_id]
        session_id = entry.session.session_id
        if session_id is not None and self._by_session_id.get(session_id) is entry:
            del self._by_session_id[session_id]

    def live_connections(self) -> list[GatewayConnection]:
        return [
            entry.connection
            for entries in self._by_user.values()
            for entry in entries
            if entry.connection is not None
        ]

    def has_sessions(self, user_id: int) -> bool:
        """Whether the user has a live session here, or one that may still resume."""
        return bool(self._by_user.get(user_id))

    def expire_detached(self, now: float | None = None) -> list[SessionEntry]:
        now = time.monotonic() if now is None else now
        expired = [
            entry
            for entry in self._by_session_id.values()
            if entry.connection is None
            and entry.detached_at is not None
            and now - entry.detached_at > self._detached_ttl
        ]
        for entry in expired:
            self.forget(entry)
        return expired

    @staticmethod
    def changes_permissions(event: Event) -> bool:
        return event.name in PERMISSION_CHANGING and event.guild_id is not None

"""Routes each bus event to the local gateway sessions of the users it names.

Owns the registry of sessions on this node: live ones by user, and detached ones by
session id until they expire, so a client that reconnects can RESUME.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from nexus_protocol.gateway import DM_EVENT_INTENTS, EVENT_INTENTS, CloseCode, Intents
from nexus_protocol.session import ServerSession

from ..events import PERMISSION_CHANGING, SESSIONS_REVOKED, Event

if TYPE_CHECKING:
    from .connection import GatewayConnection

log = logging.getLogger(__name__)

# Gateway writes start at most this often (seconds): frames queued meanwhile go out
# together, one write per socket (see GatewayHub.schedule_flush). A send() syscall per
# frame per socket was the largest single cost of fan-out; with this, a socket costs at
# most 1 / FLUSH_INTERVAL writes a second however fast events come, and an event that
# follows a quiet spell (anything slower than 50 events/s) still goes out at once.
FLUSH_INTERVAL = 0.020


# Dispatches whose content a bot without the MESSAGE_CONTENT intent does not see.
CONTENT_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE"})
# EVENT_INTENTS as plain ints: enum.Flag's ``&`` is a Python call, per receiver per event.
_EVENT_INTENT_BITS: dict[str, int] = {name: int(bits) for name, bits in EVENT_INTENTS.items()}
_DM_EVENT_INTENT_BITS: dict[str, int] = {name: int(bits) for name, bits in DM_EVENT_INTENTS.items()}
_MESSAGE_CONTENT_BIT = int(Intents.MESSAGE_CONTENT)

_REDACTED_FIELDS: dict[str, Any] = {
    "content": "",
    "embeds": [],
    "attachments": [],
    "components": [],
}


class RedactedMessage:
    """A message dispatch as a bot without MESSAGE_CONTENT sees it (Discord's rule: empty
    content, embeds, attachments and components unless the bot wrote the message or is
    mentioned in it). Decoded and re-encoded at most once per event, and only when such
    a bot receives it: everyone else gets the shared bytes."""

    __slots__ = ("_data", "_event", "_exempt")

    def __init__(self, event: Event) -> None:
        self._event = event
        self._data: bytes | None = None
        self._exempt: frozenset[int] = frozenset()

    def data_for(self, user_id: int) -> bytes:
        if self._data is None:
            body = orjson.loads(self._event.data)
            exempt = {_user_id(body.get("author"))}
            exempt.update(_user_id(m) for m in body.get("mentions") or ())
            self._exempt = frozenset(u for u in exempt if u is not None)
            for key, empty in _REDACTED_FIELDS.items():
                if key in body:
                    body[key] = empty
            self._data = orjson.dumps(body)
        return self._event.data if user_id in self._exempt else self._data


def _user_id(user: object) -> int | None:
    if isinstance(user, dict) and str(user.get("id", "")).isdigit():
        return int(user["id"])
    return None


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
    bot: bool = False
    resumes: int = 0
    # The login session whose token opened this gateway session (closed if revoked).
    auth_session_id: int | None = None
    # int(intents), kept in step by __setattr__ (not an __init__ argument).
    _intent_bits: int = field(init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "intents":  # keep the int copy that deliver() tests in step
            object.__setattr__(self, "_intent_bits", int(value))

    @property
    def redacts_content(self) -> bool:
        """Users always see content; bots only with the MESSAGE_CONTENT intent."""
        return self.bot and not self._intent_bits & _MESSAGE_CONTENT_BIT

    def deliver(self, event: Event, redacted: RedactedMessage | None = None) -> None:
        name = event.name
        table = _EVENT_INTENT_BITS if event.guild_id is not None else _DM_EVENT_INTENT_BITS
        needed = table.get(name)
        if needed is not None and not self._intent_bits & needed:
            return
        if self.pending is not None:
            self.pending.append(event)
            return
        data = event.data
        if self.bot and name in CONTENT_EVENTS and self.redacts_content:
            data = (redacted or RedactedMessage(event)).data_for(self.user_id)
        frame = self.session.dispatch(name, data)
        connection = self.connection
        if connection is not None:
            connection.send_frame(frame)


class GatewayHub:
    def __init__(
        self, *, detached_ttl: float = 120.0, flush_interval: float = FLUSH_INTERVAL
    ) -> None:
        self._by_user: dict[int, set[SessionEntry]] = defaultdict(set)
        self._by_session_id: dict[str, SessionEntry] = {}
        self._detached_ttl = detached_ttl
        # Connections with frames queued since the last flush (see schedule_flush).
        self._dirty: list[GatewayConnection] = []
        self._flush_interval = flush_interval
        self._last_flush = -flush_interval
        # Told when a session ends for good (its voice state goes with it).
        self.on_forget: Callable[[SessionEntry], None] | None = None

    def on_event(self, event: Event) -> None:
        if event.name == SESSIONS_REVOKED:
            self._close_revoked(event)
            return
        redacted = RedactedMessage(event) if event.name in CONTENT_EVENTS else None
        by_user = self._by_user
        for user_id in event.user_ids:
            entries = by_user.get(user_id)
            if entries:
                if len(entries) == 1:
                    for entry in entries:  # deliver() never changes the registry
                        entry.deliver(event, redacted)
                else:
                    for entry in tuple(entries):
                        entry.deliver(event, redacted)

    def schedule_flush(self, connection: GatewayConnection) -> None:
        """Have ``connection.flush()`` called soon, together with every connection that
        queues frames before then: at the next loop iteration, or ``flush_interval``
        after the previous flush if that is later. One callback per flush for all
        sockets, and one write per socket for every event routed in between."""
        dirty = self._dirty
        dirty.append(connection)
        if len(dirty) == 1:
            loop = asyncio.get_running_loop()
            due = self._last_flush + self._flush_interval
            if loop.time() >= due:
                loop.call_soon(self._flush, loop)
            else:
                loop.call_at(due, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last_flush = loop.time()
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            try:
                connection.flush()
            except Exception:
                log.exception("gateway flush failed")

    def _close_revoked(self, event: Event) -> None:
        """A revoked token's gateway sessions end now, live or waiting to resume."""
        revoked = orjson.loads(event.data)
        ids = set(revoked.get("revoked") or ())
        keep = revoked.get("except")
        for user_id in event.user_ids:
            for entry in tuple(self._by_user.get(user_id, ())):
                gone = (
                    entry.auth_session_id in ids
                    if ids
                    else "except" in revoked and entry.auth_session_id != keep
                )
                if not gone:
                    continue
                if entry.connection is not None:
                    entry.connection.close(CloseCode.AUTHENTICATION_FAILED, "session revoked")
                self.forget(entry)

    def sessions_of(self, user_id: int) -> list[SessionEntry]:
        return list(self._by_user.get(user_id, ()))

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
        if self.on_forget is not None:
            self.on_forget(entry)

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

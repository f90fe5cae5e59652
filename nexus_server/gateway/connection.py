"""One gateway WebSocket: reads frames into the session machine, writes its frames out
through a bounded queue. A consumer too slow to drain the queue is disconnected with a
resumable close, so memory never grows without bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import zlib
from typing import TYPE_CHECKING

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from nexus_protocol.gateway import CloseCode, Opcode
from nexus_protocol.requests import PresenceBody
from nexus_protocol.session import (
    Command,
    GatewayProtocolError,
    Heartbeat,
    Identify,
    Resume,
    ServerSession,
)

from ..errors import Unauthorized
from .hub import SessionEntry

if TYPE_CHECKING:
    from ..relay import Relay

log = logging.getLogger(__name__)

# Resumable: the client reconnects and RESUMEs (Discord treats 4000 as resumable).
SLOW_CONSUMER_CLOSE = CloseCode.UNKNOWN_ERROR


class GatewayConnection:
    def __init__(self, websocket: WebSocket, relay: Relay) -> None:
        self._ws = websocket
        self._relay = relay
        self._settings = relay.settings
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(
            maxsize=relay.settings.gateway_queue_limit
        )
        self._entry: SessionEntry | None = None
        self._closing: tuple[int, str] | None = None
        self._writer: asyncio.Task[None] | None = None
        # Discord's transport compression: one zlib stream for the socket's lifetime,
        # each frame flushed with Z_SYNC_FLUSH (ends in 00 00 ff ff) and sent as binary.
        # Other kinds (zstd-stream) are ignored: the frames go out as text.
        self._zlib = (
            zlib.compressobj() if websocket.query_params.get("compress") == "zlib-stream" else None
        )

    @property
    def entry(self) -> SessionEntry | None:
        return self._entry

    def send_frame(self, frame: bytes) -> None:
        if self._closing is not None:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(SLOW_CONSUMER_CLOSE, "send queue overflow: resume")

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued so far (if it fits); idempotent."""
        if self._closing is not None:
            return
        self._closing = (code, reason)
        # Drop what a slow consumer has not taken; the replay buffer still holds it.
        if self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(None)

    def request_reconnect(self) -> None:
        """Op 7 RECONNECT, then a resumable close: the client reconnects and RESUMEs
        (used before a node restarts, and by tests)."""
        if self._entry is not None and self._closing is None:
            self.send_frame(self._entry.session.reconnect())
        self.close(CloseCode.UNKNOWN_ERROR, "reconnect requested")

    async def serve(self) -> None:
        await self._ws.accept()
        session = ServerSession(
            heartbeat_interval_ms=self._settings.heartbeat_interval_ms,
            replay_limit=self._settings.replay_limit,
        )
        self._writer = asyncio.create_task(self._write_loop(), name="gateway-writer")
        self.send_frame(session.hello(time.monotonic()))
        try:
            await self._read_loop(session)
        except WebSocketDisconnect:
            pass
        except GatewayProtocolError as exc:
            self.close(exc.close_code, exc.reason)
        except Exception:
            log.exception("gateway connection failed")
            self.close(CloseCode.UNKNOWN_ERROR, "internal error")
        finally:
            self.close(1000, "")
            await self._finish()

    async def _read_loop(self, session: ServerSession) -> None:
        while self._closing is None:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame: str | bytes | None = message.get("text")
            if frame is None:
                frame = message.get("bytes")
            if frame is None:
                continue
            current = self._entry.session if self._entry is not None else session
            event = current.receive(frame, time.monotonic())
            if isinstance(event, Heartbeat):
                self.send_frame(current.heartbeat_ack())
            elif isinstance(event, Identify):
                await self._identify(session, event)
            elif isinstance(event, Resume):
                await self._resume(session, event)
            elif isinstance(event, Command):
                await self._command(event)

    async def _identify(self, session: ServerSession, identify: Identify) -> None:
        relay = self._relay
        try:
            principal = await relay.accounts.authenticate(identify.token)
        except Unauthorized:
            raise GatewayProtocolError(
                CloseCode.AUTHENTICATION_FAILED, "Authentication failed"
            ) from None
        session_id = secrets.token_hex(16)
        entry = SessionEntry(
            session=session,
            user_id=principal.user_id,
            intents=identify.intents,
            bot=principal.bot,
        )
        entry.connection = self
        relay.hub.register(entry, session_id)
        self._entry = entry
        ready, guild_creates = await relay.ready_payload(principal, session_id)
        self.send_frame(session.establish(session_id, orjson.dumps(ready), time.monotonic()))
        for guild in guild_creates:
            self.send_frame(session.dispatch("GUILD_CREATE", orjson.dumps(guild)))
        pending, entry.pending = entry.pending or [], None
        for event in pending:
            entry.deliver(event)
        status = "online"
        if identify.presence and isinstance(identify.presence.get("status"), str):
            status = str(identify.presence["status"])
        await relay.presence.do_connect(principal.user_id, status)

    async def _resume(self, fresh: ServerSession, resume: Resume) -> None:
        relay = self._relay
        entry = relay.hub.find(resume.session_id)
        try:
            principal = await relay.accounts.authenticate(resume.token)
        except Unauthorized:
            principal = None
        if entry is None or principal is None or principal.user_id != entry.user_id:
            self.send_frame(fresh.invalid_session(False))
            return
        old = entry.connection
        if old is not None and old is not self:
            old.close(CloseCode.UNKNOWN_ERROR, "session resumed elsewhere")
            entry.connection = None
            entry.session.detach()
        frames = entry.session.resume_onto(fresh, resume.seq, time.monotonic())
        if frames is None:
            self.send_frame(fresh.invalid_session(False))
            return
        entry.connection = self
        entry.detached_at = None
        entry.resumes += 1
        self._entry = entry
        for frame in frames:
            self.send_frame(frame)
        await relay.presence.do_connect(entry.user_id, None)

    async def _command(self, command: Command) -> None:
        assert self._entry is not None
        if command.op == Opcode.PRESENCE_UPDATE and isinstance(command.data, dict):
            try:
                body = PresenceBody.model_validate(command.data)
            except ValueError:
                raise GatewayProtocolError(CloseCode.DECODE_ERROR, "invalid presence") from None
            await self._relay.presence.do_update(self._entry.user_id, body.status)
        elif command.op == Opcode.REQUEST_GUILD_MEMBERS and isinstance(command.data, dict):
            await self._relay.send_member_chunks(self._entry, command.data)
        # VOICE_STATE_UPDATE is the voice issue's; it is accepted and ignored for now.

    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                frame = await self._queue.get()
                if frame is None:
                    break
                if self._zlib is not None:
                    await ws.send_bytes(
                        self._zlib.compress(frame) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    )
                else:
                    await ws.send_text(frame.decode())
        except Exception:  # the peer went away mid-send; the reader notices too
            pass
        code, reason = self._closing or (1000, "")
        if ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)

    async def _finish(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer, timeout=5)
        entry = self._entry
        if entry is not None and entry.connection is self:
            entry.connection = None
            if entry.session.detached or entry.session.session_id is not None:
                entry.session.detach()
            entry.detached_at = time.monotonic()
            if not entry.session.detached:
                self._relay.hub.forget(entry)
            # A dropped socket that may still resume keeps the user online; they go
            # offline when their last session ends or expires (see Relay).
            if not self._relay.hub.has_sessions(entry.user_id):
                await self._relay.presence.do_disconnect(entry.user_id)

    def check_heartbeat(self, now: float) -> None:
        entry = self._entry
        if entry is not None and entry.session.heartbeat_expired(now):
            self.close(CloseCode.SESSION_TIMED_OUT, "Session timed out")

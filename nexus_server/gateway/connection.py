"""One gateway WebSocket: reads frames into the session machine, writes its frames out
through a bounded queue. A consumer too slow to drain the queue is disconnected with a
resumable close, so memory never grows without bound.

The write path is the relay's hottest code (one frame per receiver per event), so on
uvicorn's ``websockets-sansio`` protocol it skips the ASGI ``send`` chain (starlette's
state checks, the exception middleware's wrapper, uvicorn's ``send``, a ``str`` round
trip and websockets' ``Frame`` object) and frames the bytes itself. Frames are queued,
and the hub flushes every connection that has some in one callback, at the next loop
iteration or at most every ``hub.FLUSH_INTERVAL``: one ``transport.write`` per socket
for all the frames queued since its last write. While the transport is paused (the peer
is not reading), the frames wait in the bounded queue and a writer task writes them when
it resumes. Any other ASGI server (or a test stand-in) goes through
``websocket.send_text``/``send_bytes`` from the writer task, one frame at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

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

# Voice signalling, handled by VoiceService (Discord's op 4 and Nexus's 40 to 43).
VOICE_OPS = frozenset(
    {
        Opcode.VOICE_STATE_UPDATE,
        Opcode.VOICE_OFFER,
        Opcode.CALL_SIGNAL,
        Opcode.VOICE_RECORDING,
        Opcode.VOICE_KEYS,
    }
)

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn without websockets
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from ..relay import Relay

log = logging.getLogger(__name__)

# Resumable: the client reconnects and RESUMEs (Discord treats 4000 as resumable).
SLOW_CONSUMER_CLOSE = CloseCode.UNKNOWN_ERROR

# Server-to-client WebSocket frame headers (RFC 6455 5.2: FIN + opcode, unmasked length).
_TEXT_HEADERS = [bytes((0x81, n)) for n in range(126)]
_BINARY_HEADERS = [bytes((0x82, n)) for n in range(126)]
_pack_header16 = struct.Struct("!BBH").pack
_pack_header64 = struct.Struct("!BBQ").pack


def _frame_header(small: list[bytes], opcode_byte: int, length: int) -> bytes:
    if length < 126:
        return small[length]
    if length < 65536:
        return _pack_header16(opcode_byte, 126, length)
    return _pack_header64(opcode_byte, 127, length)


def _sansio_protocol(websocket: WebSocket) -> Any:
    """uvicorn's websockets-sansio protocol object behind this socket, or None.

    The ASGI ``receive`` that uvicorn hands the app is the protocol's bound method, and
    no middleware here wraps a WebSocket's ``receive``; anything else (another server,
    a test stand-in) gets None and the plain ASGI path."""
    if WebSocketsSansIOProtocol is None:
        return None
    protocol = getattr(getattr(websocket, "_receive", None), "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    for attribute in ("transport", "conn", "writable", "close_sent", "disconnected"):
        if not hasattr(protocol, attribute):  # pragma: no cover - a different uvicorn
            return None
    return protocol


class GatewayConnection:
    def __init__(self, websocket: WebSocket, relay: Relay) -> None:
        self._ws = websocket
        self._relay = relay
        self._settings = relay.settings
        self._limit = relay.settings.gateway_queue_limit
        # Frames not yet handed to the transport, oldest first; never more than _limit.
        self._queue = _FrameQueue()
        self._entry: SessionEntry | None = None
        self._closing: tuple[int, str] | None = None
        self._writer: asyncio.Task[None] | None = None
        # Wakes the writer task: on close, and (fast path) when the transport is paused.
        self._wake = asyncio.Event()
        self._protocol = _sansio_protocol(websocket)
        self._flush_scheduled = False
        self._schedule_flush = relay.hub.schedule_flush
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
        """Queue one frame (the session's JSON bytes); it goes out in queue order."""
        if self._closing is not None:
            return
        queue = self._queue
        if len(queue) >= self._limit:
            self.close(SLOW_CONSUMER_CLOSE, "send queue overflow: resume")
            return
        queue.append(frame)
        if self._protocol is None:
            self._wake.set()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._schedule_flush(self)

    def flush(self) -> None:
        """Hand every queued frame to the transport in one write, unless the transport
        is paused: then the writer task does it when the peer has read enough. Called by
        the hub (``GatewayHub.schedule_flush``) for each connection that queued frames."""
        self._flush_scheduled = False
        if not self._queue:
            return
        if self._protocol.writable.is_set():
            self._write_queued()
        else:
            self._wake.set()

    def _write_queued(self) -> None:
        """Fast path: frame and write everything queued, in order, in one write."""
        queue = self._queue
        protocol = self._protocol
        transport = protocol.transport
        if protocol.close_sent or protocol.disconnected or transport.is_closing():
            queue.clear()  # the reader sees the disconnect; a resume replays these
            return
        compressor = self._zlib
        conn = protocol.conn
        if conn.extensions:  # permessage-deflate: websockets frames and deflates
            try:
                for frame in queue:
                    if compressor is not None:
                        conn.send_binary(
                            compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH)
                        )
                    else:
                        conn.send_text(frame)
            except Exception:  # websockets' InvalidState: the connection is closing
                queue.clear()
                return
            queue.clear()
            transport.write(b"".join(conn.data_to_send()))
            return
        if compressor is not None:
            parts = []
            for frame in queue:
                data = compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH)
                parts.append(_frame_header(_BINARY_HEADERS, 0x82, len(data)))
                parts.append(data)
            queue.clear()
            transport.write(b"".join(parts))
        elif len(queue) == 1:
            frame = queue.popleft()
            transport.write(_frame_header(_TEXT_HEADERS, 0x81, len(frame)) + frame)
        else:
            parts = []
            for frame in queue:
                parts.append(_frame_header(_TEXT_HEADERS, 0x81, len(frame)))
                parts.append(frame)
            queue.clear()
            transport.write(b"".join(parts))

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued so far (if it fits); idempotent."""
        if self._closing is not None:
            return
        self._closing = (code, reason)
        # Drop what a slow consumer has not taken; the replay buffer still holds it.
        if len(self._queue) >= self._limit:
            self._queue.clear()
        self._wake.set()

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
            auth_session_id=principal.session_id,
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
        elif command.op in VOICE_OPS:
            data = command.data if isinstance(command.data, dict) else {}
            await self._relay.voice.on_command(self._entry, command.op, data)

    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            if self._protocol is not None:
                await self._write_paused()
            else:
                await self._write_asgi()
        except Exception:  # the peer went away mid-send; the reader notices too
            pass
        code, reason = self._closing or (1000, "")
        if ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)

    async def _write_paused(self) -> None:
        """Fast path's writer: flushes what piled up while the transport was paused, and
        what is left at close; until then it sleeps."""
        queue = self._queue
        writable = self._protocol.writable
        while True:
            if queue and not writable.is_set():
                await writable.wait()
            if queue:
                self._write_queued()
            if self._closing is not None:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _write_asgi(self) -> None:
        """Any other ASGI server: one ``send`` per frame, in queue order."""
        ws = self._ws
        queue = self._queue
        while True:
            while queue:
                frame = queue.popleft()
                if self._zlib is not None:
                    await ws.send_bytes(
                        self._zlib.compress(frame) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    )
                else:
                    await ws.send_text(frame.decode())
            if self._closing is not None:
                return
            self._wake.clear()
            await self._wake.wait()

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


class _FrameQueue(deque[bytes]):
    """The connection's outgoing frames (a deque; ``qsize`` for tests and metrics)."""

    __slots__ = ()

    def qsize(self) -> int:
        return len(self)

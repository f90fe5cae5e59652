"""The relay side of a gateway session; see ``nexus_protocol.session`` for the
invariants it keeps."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from types import MappingProxyType
from typing import Final

from nexus_protocol.gateway import ALL_INTENTS, CloseCode, Intents, Opcode

from ._gateway_frames import (
    Command,
    GatewayProtocolError,
    Heartbeat,
    Identify,
    Resume,
    SessionStateError,
    _decode_error,
    _is_int,
    _load_object,
    _object_field,
    _opcode,
    _seq_field,
    _str_field,
)

# -- wire helpers -------------------------------------------------------------------

_CLIENT_OPS: Final = frozenset(
    {
        Opcode.HEARTBEAT,
        Opcode.IDENTIFY,
        Opcode.PRESENCE_UPDATE,
        Opcode.VOICE_STATE_UPDATE,
        Opcode.RESUME,
        Opcode.REQUEST_GUILD_MEMBERS,
        Opcode.VOICE_OFFER,
        Opcode.CALL_SIGNAL,
        Opcode.VOICE_RECORDING,
        Opcode.VOICE_KEYS,
    }
)
_EVENT_NAME: Final = re.compile(r"[A-Z0-9_]{1,64}")

_HEARTBEAT_ACK_FRAME: Final = b'{"op":11,"d":null,"s":null,"t":null}'
_RECONNECT_FRAME: Final = b'{"op":7,"d":null,"s":null,"t":null}'
_INVALID_SESSION_FRAMES: Final = {
    True: b'{"op":9,"d":true,"s":null,"t":null}',
    False: b'{"op":9,"d":false,"s":null,"t":null}',
}


@lru_cache(maxsize=256)
def _dispatch_name(event: str) -> bytes:
    # The name goes into the frame unescaped, so only Discord's alphabet is allowed.
    if not _EVENT_NAME.fullmatch(event):
        raise ValueError(f"event name must match {_EVENT_NAME.pattern}: {event!r}")
    return event.encode("ascii")


# -- server -------------------------------------------------------------------------


class ServerState(Enum):
    AWAITING_IDENTIFY = "awaiting_identify"
    ESTABLISHED = "established"
    CLOSED = "closed"


@dataclass(slots=True)
class _Connection:
    """What belongs to one socket rather than to the session; moves on resume."""

    heartbeat_interval_ms: int
    last_beat: float | None = None  # None until HELLO is sent
    handshake: Identify | Resume | None = None  # received, awaiting the relay's answer
    window_start: float = 0.0
    window_frames: int = 0


class ServerSession:
    """Relay side of one logical gateway session. Owns: the per-connection state, the
    sequence counter, the heartbeat deadline, and a bounded replay buffer of
    already-encoded dispatch frames."""

    def __init__(
        self,
        *,
        heartbeat_interval_ms: int = 41_250,
        max_frame_bytes: int = 32 * 1024,  # Discord: 4096; SDP offers and voice keys need more
        replay_limit: int = 4096,
        replay_bytes_limit: int = 8 * 1024 * 1024,
        rate_limit_frames: int = 120,
        rate_limit_window: float = 60.0,
    ) -> None:
        if heartbeat_interval_ms <= 0 or max_frame_bytes <= 0 or rate_limit_frames <= 0:
            raise ValueError("intervals and limits must be positive")
        if replay_limit < 0 or replay_bytes_limit < 0 or rate_limit_window <= 0:
            raise ValueError("intervals and limits must be positive")
        self._max_frame_bytes = max_frame_bytes
        self._replay_limit = replay_limit
        self._replay_bytes_limit = replay_bytes_limit
        self._rate_limit_frames = rate_limit_frames
        self._rate_limit_window = rate_limit_window
        self._conn: _Connection | None = _Connection(heartbeat_interval_ms)
        self._session_id: str | None = None
        self._ended = False
        self._seq = 0
        # (seq, event name, data): ``data`` is the one encoded payload that every
        # session receiving the event shares, so a replay entry costs a few dozen
        # bytes, not a copy of the frame. Frames are rebuilt on resume.
        self._replay: deque[tuple[int, bytes, bytes]] = deque()
        self._replay_bytes = 0
        self._evicted_through = 0  # seq of the newest frame evicted

    # state

    @property
    def state(self) -> ServerState:
        if self._conn is None:
            return ServerState.CLOSED
        if self._session_id is None:
            return ServerState.AWAITING_IDENTIFY
        return ServerState.ESTABLISHED

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def detached(self) -> bool:
        """Established once, its connection gone, still resumable."""
        return self._conn is None and self._session_id is not None and not self._ended

    def _live(self) -> _Connection:
        if self._conn is None:
            raise SessionStateError("the connection is closed")
        return self._conn

    # connection phase

    def hello(self, now: float) -> bytes:
        conn = self._live()
        if conn.last_beat is not None or self._session_id is not None:
            raise SessionStateError("HELLO is sent once, first")
        conn.last_beat = now
        conn.window_start = now
        return b'{"op":10,"d":{"heartbeat_interval":%d},"s":null,"t":null}' % (
            conn.heartbeat_interval_ms
        )

    def receive(self, frame: str | bytes, now: float) -> Identify | Resume | Heartbeat | Command:
        conn = self._live()
        if conn.last_beat is None:
            raise SessionStateError("send hello() before receiving frames")
        if len(frame) > self._max_frame_bytes:
            raise _decode_error(f"frame longer than {self._max_frame_bytes} bytes")
        if isinstance(frame, str):
            # Count bytes, not characters; surrogatepass keeps lone surrogates as
            # invalid UTF-8 for orjson to reject.
            frame = frame.encode("utf-8", "surrogatepass")
            if len(frame) > self._max_frame_bytes:
                raise _decode_error(f"frame longer than {self._max_frame_bytes} bytes")
        self._count_frame(conn, now)
        payload = _load_object(frame)
        op = _opcode(payload, _CLIENT_OPS)
        if op is Opcode.HEARTBEAT:
            beat = payload.get("d")
            if beat is not None and not (_is_int(beat) and beat >= 0):
                raise _decode_error("heartbeat d must be null or a non-negative integer")
            conn.last_beat = now
            return Heartbeat(beat)
        established = self._session_id is not None
        if op is Opcode.IDENTIFY or op is Opcode.RESUME:
            if established:
                raise GatewayProtocolError(CloseCode.ALREADY_AUTHENTICATED, "already established")
            if conn.handshake is not None:
                raise GatewayProtocolError(
                    CloseCode.ALREADY_AUTHENTICATED, "an IDENTIFY or RESUME is already pending"
                )
            event = _parse_identify(payload) if op is Opcode.IDENTIFY else _parse_resume(payload)
            conn.handshake = event
            return event
        if not established:
            raise GatewayProtocolError(CloseCode.NOT_AUTHENTICATED, f"{op.name} before IDENTIFY")
        return Command(op, _object_field(payload, "d"))

    def _count_frame(self, conn: _Connection, now: float) -> None:
        if now - conn.window_start >= self._rate_limit_window:
            conn.window_start = now
            conn.window_frames = 0
        conn.window_frames += 1
        if conn.window_frames > self._rate_limit_frames:
            raise GatewayProtocolError(
                CloseCode.RATE_LIMITED,
                f"more than {self._rate_limit_frames} frames in {self._rate_limit_window} s",
            )

    def establish(self, session_id: str, ready_data: bytes, now: float) -> bytes:
        """The relay accepted the pending IDENTIFY: returns the READY frame (seq 1)."""
        conn = self._live()
        if self._session_id is not None or not isinstance(conn.handshake, Identify):
            raise SessionStateError("establish() answers a pending IDENTIFY")
        if not session_id:
            raise ValueError("session_id must be non-empty")
        conn.handshake = None
        conn.last_beat = now
        self._session_id = session_id
        return self._frame(b"READY", ready_data, replayable=True)

    def detach(self) -> None:
        """The socket went away. An established session keeps its seq and buffer."""
        self._conn = None

    def resume_onto(self, fresh: ServerSession, seq: int, now: float) -> list[bytes] | None:
        """Resume this detached session on ``fresh``'s connection.

        ``fresh`` is the object that sent HELLO on the new socket and received the
        RESUME; ``seq`` is that RESUME's seq. On success this session takes over the
        connection (invariant 6), ``fresh`` is CLOSED and must be dropped, and the
        result is the missed frames then RESUMED, to send in order. On ``None``
        nothing changed: answer on ``fresh`` with ``invalid_session(False)``.

        If the old socket is still open (a zombie the relay has not noticed yet), close
        it and ``detach()`` this session first: one session never serves two sockets.
        """
        if fresh is self or not self.detached:
            raise SessionStateError("resume_onto() is called on a detached session")
        conn = fresh._conn
        pending = conn.handshake if conn is not None else None
        if conn is None or fresh._session_id is not None or not isinstance(pending, Resume):
            raise SessionStateError("the fresh session has no pending RESUME")
        if pending.session_id != self._session_id or pending.seq != seq:
            raise SessionStateError("the pending RESUME is for another session or seq")
        missed = self.frames_since(seq)
        if missed is None:
            return None
        fresh._conn = None
        fresh._ended = True
        conn.handshake = None
        conn.last_beat = now
        self._conn = conn
        missed.append(self._frame(b"RESUMED", b"{}", replayable=False))
        return missed

    # dispatches and the replay buffer

    def dispatch(self, event: str, data: bytes) -> bytes:
        """Frame an event; ``data`` is the already-encoded JSON of ``d``, trusted as is.

        Allowed when ESTABLISHED or detached; the frame is kept for replay either way.
        READY and RESUMED are the session's own: ``establish()`` and ``resume_onto()``.
        """
        if self._session_id is None or self._ended:
            raise SessionStateError("dispatch() needs an established session")
        if event in ("READY", "RESUMED"):
            raise ValueError(f"{event} is sent by the session itself")
        return self._frame(_dispatch_name(event), data, replayable=True)

    def _frame(self, event: bytes, data: bytes, *, replayable: bool) -> bytes:
        self._seq += 1
        frame = _build_frame(self._seq, event, data)
        if replayable:
            self._replay.append((self._seq, event, data))
            self._replay_bytes += len(frame)
            while self._replay and (
                len(self._replay) > self._replay_limit
                or self._replay_bytes > self._replay_bytes_limit
            ):
                number, old_event, old_data = self._replay.popleft()
                self._evicted_through = number
                self._replay_bytes -= _frame_length(number, old_event, old_data)
        return frame

    def frames_since(self, seq: int) -> list[bytes] | None:
        """Frames numbered above ``seq`` in order, or None when they cannot all be
        given: ``seq`` is in the future, some were evicted, or the session ended."""
        if self._session_id is None or self._ended:
            return None
        if seq > self._seq or seq < self._evicted_through:
            return None
        return [
            _build_frame(number, event, data)
            for number, event, data in self._replay
            if number > seq
        ]

    # control frames

    def heartbeat_ack(self) -> bytes:
        self._live()
        return _HEARTBEAT_ACK_FRAME

    def reconnect(self) -> bytes:
        """Ask the client to reconnect and resume; the caller then closes and detaches."""
        self._live()
        return _RECONNECT_FRAME

    def invalid_session(self, resumable: bool) -> bytes:
        """Refuse a pending IDENTIFY/RESUME, or end an established session.

        Before establishment the pending handshake is dropped, so the client may send
        a fresh IDENTIFY on this connection. When established and ``resumable`` is
        False, the session ends: state CLOSED, buffer dropped, never resumable; the
        caller closes the socket. With ``resumable`` True nothing changes: the caller
        closes and detaches, and the client resumes.
        """
        conn = self._live()
        conn.handshake = None
        if self._session_id is not None and not resumable:
            self._conn = None
            self._ended = True
            self._replay.clear()
            self._replay_bytes = 0
        return _INVALID_SESSION_FRAMES[resumable]

    def heartbeat_expired(self, now: float) -> bool:
        """No heartbeat for 1.5 intervals plus 5 s: close with SESSION_TIMED_OUT.
        Always False without a live connection that has sent HELLO."""
        conn = self._conn
        if conn is None or conn.last_beat is None:
            return False
        return now - conn.last_beat > conn.heartbeat_interval_ms * 1.5 / 1000 + 5.0


def _build_frame(seq: int, event: bytes, data: bytes) -> bytes:
    return b'{"op":0,"s":%d,"t":"%b","d":%b}' % (seq, event, data)


def _frame_length(seq: int, event: bytes, data: bytes) -> int:
    # len(_build_frame(...)) without building it: 25 bytes of fixed text.
    return 25 + len(str(seq)) + len(event) + len(data)


def _parse_identify(payload: Mapping[str, object]) -> Identify:
    data = _object_field(payload, "d")
    token = _str_field(data, "token")
    intents = data.get("intents")
    if not _is_int(intents) or intents < 0 or intents & ~ALL_INTENTS.value:
        raise GatewayProtocolError(CloseCode.INVALID_INTENTS, "intents has undefined bits")
    properties = data.get("properties", {})
    if not isinstance(properties, dict) or not all(
        isinstance(value, str) for value in properties.values()
    ):
        raise _decode_error("d.properties must be an object of strings")
    presence = data.get("presence")
    if presence is not None and not isinstance(presence, dict):
        raise _decode_error("d.presence must be an object or null")
    compress = data.get("compress", False)
    if not isinstance(compress, bool):
        raise _decode_error("d.compress must be a boolean")
    return Identify(
        token=token,
        intents=Intents(intents),
        properties=MappingProxyType(properties),
        presence=MappingProxyType(presence) if presence is not None else None,
        compress=compress,
    )


def _parse_resume(payload: Mapping[str, object]) -> Resume:
    data = _object_field(payload, "d")
    return Resume(
        token=_str_field(data, "token"),
        session_id=_str_field(data, "session_id"),
        seq=_seq_field(data, "seq"),
    )


# -- client -------------------------------------------------------------------------

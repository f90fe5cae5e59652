"""The gateway session as a pure state machine: no I/O, no asyncio, no clock.

Both ends of a Discord-v10-shaped gateway live here, in the form h11 gives HTTP/1.1:
the caller feeds in the frames it read (``receive``) and the time it read them, asks
for the frames it should write, and owns the socket, the timers and the event loop.
The relay (``nexus_server``), the client (``nexus_client``) and the tests wrap the same
objects.

Wire frames are JSON objects ``{"op": int, "d": ..., "s": int | null, "t": str | null}``.

Server side (`ServerSession`)
=============================

One object is one *logical session*. It is created for a new connection, and lives
on after that connection drops, until the relay forgets it or it can no longer be
resumed::

    AWAITING_IDENTIFY --establish()--> ESTABLISHED --detach()--> CLOSED (detached)
           |                                ^                         |
           +--detach() / consumed by        +---- old.resume_onto(fresh, ...) ----+
              resume_onto() --> CLOSED

Invariants:

1. ``hello()`` is the first thing sent on a connection, once; ``receive()`` refuses
   frames before it (that is a bug in the caller: `SessionStateError`).
2. Before establishment only IDENTIFY, RESUME and HEARTBEAT are accepted; one
   IDENTIFY or RESUME may be awaiting the relay's answer at a time. Once established,
   IDENTIFY and RESUME are refused.
3. ``seq`` is the sequence number of the last dispatch built; it starts at 0, READY
   is 1, and every dispatch (RESUMED included) takes the next number. Numbers are
   never reused or skipped.
4. The replay buffer holds every dispatch numbered above the last evicted one, except
   RESUMED frames: a RESUMED replayed inside a later resume would tell the client
   that resume had finished before its replay had. At most ``replay_limit`` frames
   and ``replay_bytes_limit`` bytes are held; the oldest go first. A resume from
   ``n`` succeeds exactly when nothing numbered above ``n`` was evicted.
5. A detached session (CLOSED, but established before) keeps its ``session_id``,
   ``seq`` and buffer, and ``dispatch()`` keeps buffering into it, so a RESUME on a
   new connection loses nothing. A session ended by ``invalid_session(False)`` keeps
   nothing and can never be resumed.
6. Resuming moves the *new connection* onto the *old session*: the old object (which
   the relay's registry and fan-out already point at) adopts the fresh object's
   connection state (heartbeat interval and deadline, rate-limit window), and the
   fresh object, which only carried the pre-identify phase, is CLOSED for good. The
   relay then serves the socket from the old object.
7. The heartbeat deadline restarts on HELLO, on every HEARTBEAT received, and when
   the session is established on a connection (READY or RESUMED).
8. Every frame a client sends counts against ``rate_limit_frames`` per
   ``rate_limit_window`` seconds (Discord: 120 per 60 s).

Client side (`ClientSession`)
=============================

One object survives every reconnect of one client, so it can RESUME::

    AWAITING_HELLO --connect_frame()--> IDENTIFYING --READY-----> ESTABLISHED
                                  \\--> RESUMING ----RESUMED---/
    any --RECONNECT--> CLOSED;  INVALID_SESSION --> AWAITING_HELLO (handshake again)
    any --connection_lost()--> AWAITING_HELLO (new connection, waiting for HELLO)

Invariants:

1. ``seq`` is the highest sequence number received in this session (``None`` before
   the first dispatch); dispatches are never dropped, even if a number repeats.
2. ``session_id`` and ``seq`` are kept across connections and forgotten by an
   IDENTIFY, by INVALID_SESSION with ``d: false``, and by ``forget()``.
3. ``heartbeat_acked`` is False between a heartbeat sent and its ACK; a heartbeat due
   while it is False means a zombie connection: the caller reconnects and resumes.

Errors: `GatewayProtocolError` means the peer broke the protocol (it carries the close
code to send); `SessionStateError` means the caller used the state machine out of
order, a bug in Nexus, never something a peer can cause.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from types import MappingProxyType
from typing import Final, TypeGuard

import orjson

from nexus_protocol.gateway import ALL_INTENTS, CloseCode, Intents, Opcode

__all__ = [
    "ClientSession",
    "ClientState",
    "Command",
    "Dispatch",
    "GatewayProtocolError",
    "Heartbeat",
    "HeartbeatAck",
    "Hello",
    "Identify",
    "InvalidSession",
    "Reconnect",
    "Resume",
    "ServerSession",
    "ServerState",
    "SessionStateError",
]


class GatewayProtocolError(Exception):
    """The peer broke the gateway protocol; close the socket with ``close_code``."""

    def __init__(self, close_code: CloseCode, reason: str) -> None:
        super().__init__(f"{close_code.value} {close_code.name}: {reason}")
        self.close_code = close_code
        self.reason = reason


class SessionStateError(RuntimeError):
    """The caller asked for something the session's current state does not allow."""


# -- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    heartbeat_interval: int  # milliseconds


@dataclass(frozen=True, slots=True)
class Identify:
    token: str = field(repr=False)
    intents: Intents
    properties: Mapping[str, str]
    presence: Mapping[str, object] | None
    compress: bool


@dataclass(frozen=True, slots=True)
class Resume:
    token: str = field(repr=False)
    session_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    seq: int | None


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    pass


@dataclass(frozen=True, slots=True)
class Dispatch:
    event: str
    seq: int
    data: object


@dataclass(frozen=True, slots=True)
class Reconnect:
    pass


@dataclass(frozen=True, slots=True)
class InvalidSession:
    resumable: bool


@dataclass(frozen=True, slots=True)
class Command:
    """PRESENCE_UPDATE, VOICE_STATE_UPDATE or REQUEST_GUILD_MEMBERS; ``data`` is the
    decoded ``d`` object, for the relay to validate."""

    op: Opcode
    data: object


# -- wire helpers -------------------------------------------------------------------

_CLIENT_OPS: Final = frozenset(
    {
        Opcode.HEARTBEAT,
        Opcode.IDENTIFY,
        Opcode.PRESENCE_UPDATE,
        Opcode.VOICE_STATE_UPDATE,
        Opcode.RESUME,
        Opcode.REQUEST_GUILD_MEMBERS,
    }
)
_EVENT_NAME: Final = re.compile(r"[A-Z0-9_]{1,64}")

_HEARTBEAT_ACK_FRAME: Final = b'{"op":11,"d":null,"s":null,"t":null}'
_RECONNECT_FRAME: Final = b'{"op":7,"d":null,"s":null,"t":null}'
_INVALID_SESSION_FRAMES: Final = {
    True: b'{"op":9,"d":true,"s":null,"t":null}',
    False: b'{"op":9,"d":false,"s":null,"t":null}',
}

_NO_RECONNECT_CODES: Final = frozenset(
    {
        CloseCode.AUTHENTICATION_FAILED,
        CloseCode.INVALID_SHARD,
        CloseCode.SHARDING_REQUIRED,
        CloseCode.INVALID_API_VERSION,
        CloseCode.INVALID_INTENTS,
        CloseCode.DISALLOWED_INTENTS,
    }
)
_FORGET_SESSION_CODES: Final = frozenset({CloseCode.INVALID_SEQ, CloseCode.SESSION_TIMED_OUT})

# Sent in IDENTIFY when the caller gives none: Discord requires the keys; a relay
# has no business knowing the user's operating system.
_DEFAULT_PROPERTIES: Final[Mapping[str, str]] = MappingProxyType(
    {"os": "unknown", "browser": "nexus", "device": "nexus"}
)


def _is_int(value: object) -> TypeGuard[int]:
    # JSON true/false decode to bool, a subclass of int that must not pass as one.
    return type(value) is int


def _decode_error(reason: str) -> GatewayProtocolError:
    return GatewayProtocolError(CloseCode.DECODE_ERROR, reason)


def _load_object(frame: str | bytes) -> dict[str, object]:
    """Parse one frame. orjson refuses NaN, Infinity, invalid UTF-8, lone surrogates
    and nesting deeper than 1024, so all of those become DECODE_ERROR here."""
    try:
        payload: object = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(f"frame is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise _decode_error("frame is not a JSON object")
    return payload


def _opcode(payload: Mapping[str, object], allowed: frozenset[Opcode]) -> Opcode:
    raw = payload.get("op")
    if not _is_int(raw):
        raise _decode_error("op is missing or not an integer")
    try:
        op = Opcode(raw)
    except ValueError:
        raise GatewayProtocolError(CloseCode.UNKNOWN_OPCODE, f"unknown opcode {raw}") from None
    if op not in allowed:
        raise GatewayProtocolError(CloseCode.UNKNOWN_OPCODE, f"opcode {op.name} not allowed")
    return op


def _object_field(payload: Mapping[str, object], name: str) -> dict[str, object]:
    value = payload.get(name)
    if not isinstance(value, dict):
        raise _decode_error(f"{name} must be an object")
    return value


def _str_field(data: Mapping[str, object], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _decode_error(f"d.{name} must be a non-empty string")
    return value


def _seq_field(data: Mapping[str, object], name: str) -> int:
    value = data.get(name)
    if not _is_int(value) or value < 0:
        raise _decode_error(f"{name} must be a non-negative integer")
    return value


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
        max_frame_bytes: int = 4096,
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


class ClientState(Enum):
    AWAITING_HELLO = "awaiting_hello"
    IDENTIFYING = "identifying"
    RESUMING = "resuming"
    ESTABLISHED = "established"
    CLOSED = "closed"


_SERVER_OPS: Final = frozenset(
    {
        Opcode.DISPATCH,
        Opcode.HEARTBEAT,
        Opcode.RECONNECT,
        Opcode.INVALID_SESSION,
        Opcode.HELLO,
        Opcode.HEARTBEAT_ACK,
    }
)


class ClientSession:
    """Client side. Survives reconnects: keeps session_id, seq and resume_gateway_url
    so it can RESUME."""

    def __init__(
        self, token: str, intents: Intents, properties: Mapping[str, str] | None = None
    ) -> None:
        if not token:
            raise ValueError("token must be non-empty")
        self._token = token
        self._intents = Intents(intents)
        self._properties = dict(properties if properties is not None else _DEFAULT_PROPERTIES)
        self._state = ClientState.AWAITING_HELLO
        self._session_id: str | None = None
        self._seq: int | None = None
        self._resume_gateway_url: str | None = None
        self._heartbeat_interval: int | None = None
        self._heartbeat_acked = True

    def __repr__(self) -> str:  # never the token
        return f"<ClientSession {self._state.name} session_id={self._session_id} seq={self._seq}>"

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def seq(self) -> int | None:
        return self._seq

    @property
    def resume_gateway_url(self) -> str | None:
        return self._resume_gateway_url

    @property
    def heartbeat_interval(self) -> int | None:
        """Milliseconds, from this connection's HELLO; None before it."""
        return self._heartbeat_interval

    @property
    def heartbeat_acked(self) -> bool:
        return self._heartbeat_acked

    @property
    def can_resume(self) -> bool:
        return self._session_id is not None and self._seq is not None

    def receive(
        self, frame: str | bytes
    ) -> Hello | Dispatch | Heartbeat | HeartbeatAck | Reconnect | InvalidSession:
        if self._state is ClientState.CLOSED:
            raise SessionStateError("the connection is closed; call connection_lost()")
        payload = _load_object(frame)
        op = _opcode(payload, _SERVER_OPS)
        if self._heartbeat_interval is None:
            if op is not Opcode.HELLO:
                raise _out_of_order(f"{op.name} before HELLO")
            data = _object_field(payload, "d")
            interval = data.get("heartbeat_interval")
            if not _is_int(interval) or interval <= 0:
                raise _decode_error("heartbeat_interval must be a positive integer")
            self._heartbeat_interval = interval
            return Hello(interval)
        if op is Opcode.DISPATCH:
            return self._receive_dispatch(payload)
        if op is Opcode.HEARTBEAT_ACK:
            self._heartbeat_acked = True
            return HeartbeatAck()
        if op is Opcode.HEARTBEAT:
            beat = payload.get("d")
            if beat is not None and not _is_int(beat):
                raise _decode_error("heartbeat d must be null or an integer")
            return Heartbeat(beat)
        if op is Opcode.RECONNECT:
            self._state = ClientState.CLOSED
            return Reconnect()
        if op is Opcode.INVALID_SESSION:
            resumable = payload.get("d")
            if not isinstance(resumable, bool):
                raise _decode_error("invalid session d must be a boolean")
            if not resumable:
                self.forget()
            self._state = ClientState.AWAITING_HELLO
            return InvalidSession(resumable)
        raise _out_of_order("HELLO twice")

    def _receive_dispatch(self, payload: Mapping[str, object]) -> Dispatch:
        seq, event, data = payload.get("s"), payload.get("t"), payload.get("d")
        if not _is_int(seq) or not isinstance(event, str):
            raise _decode_error("dispatch needs an integer s and a string t")
        state = self._state
        if event == "READY":
            if state is not ClientState.IDENTIFYING:
                raise _out_of_order(f"READY while {state.name}")
            if not isinstance(data, dict):
                raise _decode_error("READY d must be an object")
            url = data.get("resume_gateway_url")
            if url is not None and not isinstance(url, str):
                raise _decode_error("resume_gateway_url must be a string")
            self._session_id = _str_field(data, "session_id")
            self._resume_gateway_url = url
            self._state = ClientState.ESTABLISHED
        elif event == "RESUMED":
            if state is not ClientState.RESUMING:
                raise _out_of_order(f"RESUMED while {state.name}")
            self._state = ClientState.ESTABLISHED
        elif state not in (ClientState.RESUMING, ClientState.ESTABLISHED):
            raise _out_of_order(f"{event} while {state.name}")
        self._seq = seq if self._seq is None else max(self._seq, seq)
        return Dispatch(event, seq, data)

    def connect_frame(self) -> bytes:
        """After HELLO: RESUME when the session can be resumed, IDENTIFY otherwise."""
        if self._state is not ClientState.AWAITING_HELLO or self._heartbeat_interval is None:
            raise SessionStateError("connect_frame() comes once, after HELLO")
        if self.can_resume:
            self._state = ClientState.RESUMING
            resume = {"token": self._token, "session_id": self._session_id, "seq": self._seq}
            return orjson.dumps({"op": Opcode.RESUME.value, "d": resume})
        self.forget()
        self._state = ClientState.IDENTIFYING
        identify = {
            "token": self._token,
            "intents": self._intents.value,
            "properties": self._properties,
        }
        return orjson.dumps({"op": Opcode.IDENTIFY.value, "d": identify})

    def heartbeat(self) -> bytes:
        if self._state is ClientState.CLOSED or self._heartbeat_interval is None:
            raise SessionStateError("heartbeat() needs a connection that got HELLO")
        self._heartbeat_acked = False
        if self._seq is None:
            return b'{"op":1,"d":null}'
        return b'{"op":1,"d":%d}' % self._seq

    def connection_lost(self, close_code: int | None = None) -> None:
        """The socket closed. Resume info is kept unless ``close_code`` rules it out."""
        self._state = ClientState.AWAITING_HELLO
        self._heartbeat_interval = None
        self._heartbeat_acked = True
        if close_code is not None and (
            close_code in _FORGET_SESSION_CODES or not self.close_code_allows_reconnect(close_code)
        ):
            self.forget()

    def forget(self) -> None:
        """Drop the session: the next connect_frame() is an IDENTIFY."""
        self._session_id = None
        self._seq = None
        self._resume_gateway_url = None

    @staticmethod
    def close_code_allows_reconnect(code: int) -> bool:
        """False for close codes that a reconnect cannot fix (bad token, intents,
        sharding, API version). 4007 and 4009 reconnect after ``forget()``."""
        return code not in _NO_RECONNECT_CODES


def _out_of_order(reason: str) -> GatewayProtocolError:
    return GatewayProtocolError(CloseCode.UNKNOWN_ERROR, reason)

"""The client side of a gateway session; see ``nexus_protocol.session`` for the
invariants it keeps."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final

import orjson

from nexus_protocol.gateway import CloseCode, Intents, Opcode

from ._gateway_frames import (
    Dispatch,
    GatewayProtocolError,
    Heartbeat,
    HeartbeatAck,
    Hello,
    InvalidSession,
    Reconnect,
    SessionStateError,
    _decode_error,
    _is_int,
    _load_object,
    _object_field,
    _opcode,
    _str_field,
)

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
